package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"sigs.k8s.io/yaml"

	"github.com/coinop/coinop/webhooks"
)

// tlsHookReceiver is a TLS receiver (the admin API takes https URLs only)
// that keeps every body and its headers.
type tlsHookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  [][]byte
	hdrs []http.Header
}

func newTLSHookReceiver(t *testing.T) *tlsHookReceiver {
	h := &tlsHookReceiver{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.got, h.hdrs = append(h.got, body), append(h.hdrs, r.Header.Clone())
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *tlsHookReceiver) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.got)
}

// wait runs worker rounds until the receiver has n bodies.
func (h *tlsHookReceiver) wait(t *testing.T, w *webhooks.Worker, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for h.count() < n {
		if _, err := w.Round(context.Background()); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receiver got %d webhooks, want %d", h.count(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// verify checks delivery i with the Standard Webhooks reference library
// and returns its envelope.
func (h *tlsHookReceiver) verify(t *testing.T, i int, secret string) webhooks.Envelope {
	t.Helper()
	h.mu.Lock()
	body, hdr := h.got[i], h.hdrs[i]
	h.mu.Unlock()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(body, hdr); err != nil {
		t.Fatalf("delivery %d does not verify: %v", i, err)
	}
	var env webhooks.Envelope
	if err := json.Unmarshal(body, &env); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestWebhookAdminSecretsSignDeliveries: the secret the create route
// answers verifies the deliveries (Standard Webhooks reference library);
// after a rotation a redelivered event verifies with the new secret and,
// during the overlap, with the old one too; a range redelivery honours the
// endpoint's filter.
func TestWebhookAdminSecretsSignDeliveries(t *testing.T) {
	t.Parallel()
	e := newEconomyEnv(t)
	rcv := newTLSHookReceiver(t)
	worker := webhooks.NewWorker(e.pool, webhooks.Options{Client: rcv.srv.Client(), Timeout: 10 * time.Second})

	type made struct {
		Webhook webhooks.Endpoint `json:"webhook"`
		Secret  string            `json:"secret"`
	}
	r := e.admin(t, "POST", "/admin/v1/webhooks", `{"url":"`+rcv.srv.URL+`/hook","event_types":["ledger.*"]}`)
	var first made
	r.decode(t, &first)
	if r.status != http.StatusCreated || !strings.HasPrefix(first.Secret, webhooks.SecretPrefix) || first.Webhook.CreatedBy != "admin-token" {
		t.Fatalf("create: %s", r)
	}
	id := strconv.FormatInt(first.Webhook.ID, 10)

	e.grant(t, "hook-admin", "g1", map[string]int64{"gold": 10}, nil)
	// A publish is outside the filter: it is not delivered, nor redelivered by range.
	if r := e.do(t, newRequest(http.MethodPut, "/admin/v1/catalog", readFile(t, "catalog.json"),
		"Authorization", bearer(adminToken), "Content-Type", "application/json")); r.status != http.StatusCreated {
		t.Fatalf("publish: %s", r)
	}
	rcv.wait(t, worker, 1)
	ev := rcv.verify(t, 0, first.Secret)
	checkEnvelopeAsSpecified(t, rcv.body(0))
	if ev.Type != "ledger.admin_grant" || ev.PlayerID == nil || *ev.PlayerID != "hook-admin" {
		t.Fatalf("delivery: %+v", ev)
	}

	r = e.admin(t, "POST", "/admin/v1/webhooks/"+id+"/rotate-secret", "")
	var rotated made
	r.decode(t, &rotated)
	if r.status != http.StatusOK || rotated.Secret == first.Secret {
		t.Fatalf("rotate: %s", r)
	}
	r = e.admin(t, "POST", "/admin/v1/webhooks/"+id+"/redeliveries", `{"event_id":`+strconv.FormatInt(ev.ID, 10)+`}`)
	if r.status != http.StatusAccepted || r.object(t)["queued"] != json.Number("1") {
		t.Fatalf("redeliver one: %s", r)
	}
	rcv.wait(t, worker, 2)
	if again := rcv.verify(t, 1, rotated.Secret); again.ID != ev.ID {
		t.Fatalf("redelivered %d, want %d", again.ID, ev.ID)
	}
	rcv.verify(t, 1, first.Secret)

	since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	until := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	r = e.admin(t, "POST", "/admin/v1/webhooks/"+id+"/redeliveries", `{"since":"`+since+`","until":"`+until+`"}`)
	if r.status != http.StatusAccepted || r.object(t)["queued"] != json.Number("1") {
		t.Fatalf("redeliver a range (only the grant matches the filter): %s", r)
	}
	rcv.wait(t, worker, 3)
	if third := rcv.verify(t, 2, rotated.Secret); third.ID != ev.ID {
		t.Fatalf("range redelivered %d, want %d", third.ID, ev.ID)
	}
}

func (h *tlsHookReceiver) body(i int) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.got[i]
}

// checkEnvelopeAsSpecified: a delivered body has exactly the members of
// docs/openapi.yaml's webhooks.event body, every one required there.
func checkEnvelopeAsSpecified(t *testing.T, body []byte) {
	t.Helper()
	type envelopeSchema struct {
		Required   []string       `json:"required"`
		Properties map[string]any `json:"properties"`
	}
	var spec struct {
		Webhooks map[string]struct {
			Post struct {
				RequestBody struct {
					Content map[string]struct {
						Schema envelopeSchema `json:"schema"`
					} `json:"content"`
				} `json:"requestBody"`
			} `json:"post"`
		} `json:"webhooks"`
	}
	if err := yaml.Unmarshal(readRepoFile(t, "docs/openapi.yaml"), &spec); err != nil {
		t.Fatal(err)
	}
	schema := spec.Webhooks["event"].Post.RequestBody.Content["application/json"].Schema
	if len(schema.Properties) == 0 {
		t.Fatal("docs/openapi.yaml has no webhooks.event request body schema")
	}
	var got map[string]json.RawMessage
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	var keys, props []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range schema.Properties {
		props = append(props, k)
	}
	slices.Sort(keys)
	slices.Sort(props)
	req := slices.Clone(schema.Required)
	slices.Sort(req)
	if !slices.Equal(keys, props) || !slices.Equal(keys, req) {
		t.Errorf("envelope members %v; the spec's properties %v, required %v", keys, props, req)
	}
}
