package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/webhooks"
)

// TestWebhooksDeliverEveryPostingAsTheFeedHasIt: every event the postings
// and the catalog publish write reaches a receiver, signed (verified with
// the Standard Webhooks reference library), with the envelope's type,
// player and data equal to the feed's.
func TestWebhooksDeliverEveryPostingAsTheFeedHasIt(t *testing.T) {
	t.Parallel()
	e := newEconomyEnv(t)
	var (
		mu     sync.Mutex
		got    = map[int64]webhooks.Envelope{}
		secret string
	)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil || wh.Verify(body, r.Header) != nil {
			t.Errorf("signature does not verify: %v", err)
		}
		var env webhooks.Envelope
		if err := json.Unmarshal(body, &env); err != nil || r.Header.Get("webhook-id") == "" {
			t.Errorf("body %s: %v", body, err)
		}
		got[env.ID] = env
	}))
	defer rcv.Close()
	u := rcv.URL
	_, s, err := webhooks.NewEndpoints(e.pool, true).Create(context.Background(), webhooks.Settings{URL: &u}, audit.Attribution{Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = s
	mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		webhooks.NewWorker(e.pool, webhooks.Options{Poll: 10 * time.Millisecond}).Run(ctx)
		close(done)
	}()
	defer func() { cancel(); <-done }()

	const p = "hook-1"
	e.grant(t, p, "g1", map[string]int64{"gold": 1000}, nil)
	if r := e.purchase(t, p, "buy-1", buy("potion", 2, "gold", 100)); r.status != http.StatusCreated {
		t.Fatalf("purchase: %s", r)
	}
	for _, m := range []struct{ route, key, body string }{
		{"awards", "a1", `{"source":"m","reason":"won","items":{"arrow":3}}`},
		{"spends", "s1", `{"source":"m","reason":"fee","currencies":{"gold":10}}`},
		{"consumptions", "c1", `{"source":"m","reason":"drank","items":{"potion":1}}`},
		{"exchanges", "x1", `{"source":"m","reason":"craft","take":{"items":{"potion":1}},"give":{"currencies":{"gems":1}}}`},
	} {
		if r := e.move(t, m.route, p, m.key, m.body); r.status != http.StatusCreated {
			t.Fatalf("%s: %s", m.route, r)
		}
	}
	if r := e.do(t, newRequest(http.MethodPut, "/admin/v1/catalog", readFile(t, "catalog.json"),
		"Authorization", bearer(adminToken), "Content-Type", "application/json")); r.status != http.StatusCreated {
		t.Fatalf("publish: %s", r)
	}
	feed := e.feed(t, "?after=0")
	var want []int64
	for _, ev := range feed.Events[1:] { // the first publish precedes the endpoint
		want = append(want, ev.ID)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n >= len(want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("got %d of %d webhooks", n, len(want))
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, ev := range feed.Events[1:] {
		h, ok := got[ev.ID]
		var data map[string]any
		_ = json.Unmarshal(h.Data, &data)
		a, _ := json.Marshal(data)
		b, _ := json.Marshal(ev.Data)
		if !ok || h.Type != ev.Type || string(a) != string(b) || (ev.PlayerID == nil) != (h.PlayerID == nil) {
			t.Errorf("event %d %s: webhook %+v", ev.ID, ev.Type, h)
		}
	}
}
