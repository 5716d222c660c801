package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// Problem titles of the webhook codes, for assertProblem.
func init() {
	titles["webhook_not_found"] = "Webhook endpoint not found"
	titles["event_not_found"] = "Event not found"
	titles["invalid_webhook"] = "Webhook setting refused"
}

// hookEndpoint is the endpoint as the admin routes answer it.
type hookEndpoint struct {
	ID           int64     `json:"id"`
	URL          string    `json:"url"`
	Description  string    `json:"description"`
	EventTypes   *[]string `json:"event_types"`
	Enabled      bool      `json:"enabled"`
	FailingSince *string   `json:"failing_since"`
	CreatedBy    string    `json:"created_by"`
}

func (e *env) hookAdmin(t testing.TB, method, path, body string) response {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req := newRequest(method, path, b, "Authorization", bearer(adminToken))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(t, req)
}

// TestWebhookAdminRoutes: the whole life of an endpoint over HTTP, each
// write in the audit log, the secret shown only on create and rotation.
func TestWebhookAdminRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.hookAdmin(t, "POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/a","description":"game","event_types":["ledger.*"]}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	var created struct {
		Webhook hookEndpoint `json:"webhook"`
		Secret  string       `json:"secret"`
	}
	r.decode(t, &created)
	h := created.Webhook
	if !strings.HasPrefix(created.Secret, "whsec_") || len(created.Secret) < 20 {
		t.Errorf("secret = %q, want a whsec_ secret", created.Secret)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
	if got, want := r.header.Get("Location"), "/admin/v1/webhooks/"+jsonInt(h.ID); got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if h.URL != "https://hooks.example.com/a" || h.Description != "game" || !h.Enabled ||
		h.EventTypes == nil || len(*h.EventTypes) != 1 || (*h.EventTypes)[0] != "ledger.*" || h.CreatedBy == "" {
		t.Errorf("created endpoint = %+v", h)
	}
	path := "/admin/v1/webhooks/" + jsonInt(h.ID)

	t.Run("the list and a read never show the secret", func(t *testing.T) {
		for _, p := range []string{"/admin/v1/webhooks", path} {
			r := e.hookAdmin(t, "GET", p, "")
			if r.status != http.StatusOK {
				t.Fatalf("GET %s: %s", p, r)
			}
			if strings.Contains(string(r.body), created.Secret) || strings.Contains(string(r.body), "secret") {
				t.Errorf("GET %s shows a secret: %s", p, r.body)
			}
		}
		var list struct {
			Webhooks []hookEndpoint `json:"webhooks"`
		}
		e.hookAdmin(t, "GET", "/admin/v1/webhooks", "").decode(t, &list)
		if len(list.Webhooks) != 1 || list.Webhooks[0].ID != h.ID {
			t.Errorf("list = %+v", list.Webhooks)
		}
	})

	t.Run("a patch changes only the fields given", func(t *testing.T) {
		r := e.hookAdmin(t, "PATCH", path, `{"enabled":false}`)
		if r.status != http.StatusOK {
			t.Fatalf("patch: %s", r)
		}
		var got struct{ Webhook hookEndpoint }
		r.decode(t, &got)
		if got.Webhook.Enabled || got.Webhook.URL != h.URL || got.Webhook.EventTypes == nil {
			t.Errorf("after disabling: %+v", got.Webhook)
		}
		r = e.hookAdmin(t, "PATCH", path, `{"enabled":true,"event_types":null,"description":"all"}`)
		r.decode(t, &got)
		if r.status != http.StatusOK || !got.Webhook.Enabled || got.Webhook.EventTypes != nil || got.Webhook.Description != "all" {
			t.Errorf("after enabling for every event: %s", r)
		}
	})

	t.Run("rotation answers a new secret once", func(t *testing.T) {
		r := e.hookAdmin(t, "POST", path+"/rotate-secret", "")
		if r.status != http.StatusOK {
			t.Fatalf("rotate: %s", r)
		}
		var got struct {
			Webhook hookEndpoint `json:"webhook"`
			Secret  string       `json:"secret"`
		}
		r.decode(t, &got)
		if !strings.HasPrefix(got.Secret, "whsec_") || got.Secret == created.Secret || got.Webhook.ID != h.ID {
			t.Errorf("rotation: %s", r)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
	})

	t.Run("redeliveries queue one event or a range", func(t *testing.T) {
		if g := e.grant(t, "p-hook", "hook-grant-1", map[string]int64{"gold": 5}, nil); g.status != http.StatusOK && g.status != http.StatusCreated {
			t.Fatalf("grant: %s", g)
		}
		var eventID int64
		if err := e.pool.QueryRow(t.Context(), `SELECT max(id) FROM events`).Scan(&eventID); err != nil {
			t.Fatal(err)
		}
		r := e.hookAdmin(t, "POST", path+"/redeliveries", `{"event_id":`+jsonInt(eventID)+`}`)
		if r.status != http.StatusAccepted || r.object(t)["queued"] != json.Number("1") {
			t.Errorf("one event: %s", r)
		}
		r = e.hookAdmin(t, "POST", path+"/redeliveries", `{"since":"2000-01-01T00:00:00Z","until":"2100-01-01T00:00:00Z"}`)
		if n, _ := r.object(t)["queued"].(json.Number).Int64(); r.status != http.StatusAccepted || n < 1 {
			t.Errorf("a range: %s", r)
		}
		assertProblem(t, e.hookAdmin(t, "POST", path+"/redeliveries", `{"event_id":999999999}`), 404, "event_not_found")
	})

	t.Run("every write is in the audit log", func(t *testing.T) {
		rows, err := e.pool.Query(t.Context(), `SELECT action, actor FROM audit_log WHERE target = $1 ORDER BY id`, "webhooks/"+jsonInt(h.ID))
		if err != nil {
			t.Fatal(err)
		}
		var actions []string
		for rows.Next() {
			var action, actor string
			if err := rows.Scan(&action, &actor); err != nil {
				t.Fatal(err)
			}
			if actor == "" || actor == "unknown" {
				t.Errorf("%s attributed to %q", action, actor)
			}
			actions = append(actions, action)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		want := "webhook.create webhook.disable webhook.enable webhook.rotate_secret webhook.redeliver webhook.redeliver"
		if got := strings.Join(actions, " "); got != want {
			t.Errorf("audit actions = %q, want %q", got, want)
		}
	})

	t.Run("delete answers the endpoint, then it is gone", func(t *testing.T) {
		r := e.hookAdmin(t, "DELETE", path, "")
		if r.status != http.StatusOK {
			t.Fatalf("delete: %s", r)
		}
		assertProblem(t, e.hookAdmin(t, "GET", path, ""), 404, "webhook_not_found")
		assertProblem(t, e.hookAdmin(t, "DELETE", path, ""), 404, "webhook_not_found")
	})
}

// TestWebhookAdminRefusals: every refused input, with its problem code and
// the field it names.
func TestWebhookAdminRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.hookAdmin(t, "POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/r"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %s", r)
	}
	var created struct{ Webhook hookEndpoint }
	r.decode(t, &created)
	path := "/admin/v1/webhooks/" + jsonInt(created.Webhook.ID)

	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, field              string
	}{
		{"create without a url", "POST", "/admin/v1/webhooks", `{"description":"x"}`, 400, "invalid_request", ""},
		{"create with an unknown field", "POST", "/admin/v1/webhooks", `{"url":"https://a.example.com","secret":"x"}`, 400, "invalid_request", ""},
		{"create with malformed JSON", "POST", "/admin/v1/webhooks", `{"url":`, 400, "invalid_request", ""},
		{"create with a url of the wrong type", "POST", "/admin/v1/webhooks", `{"url":5}`, 400, "invalid_request", ""},
		{"create with event types not an array", "POST", "/admin/v1/webhooks", `{"url":"https://a.example.com","event_types":"ledger.*"}`, 400, "invalid_request", ""},
		{"an http url", "POST", "/admin/v1/webhooks", `{"url":"http://hooks.example.com/x"}`, 422, "invalid_webhook", "url"},
		{"a url with credentials", "POST", "/admin/v1/webhooks", `{"url":"https://u:p@hooks.example.com/x"}`, 422, "invalid_webhook", "url"},
		{"an empty url", "POST", "/admin/v1/webhooks", `{"url":""}`, 422, "invalid_webhook", "url"},
		{"a bad event type", "POST", "/admin/v1/webhooks", `{"url":"https://a.example.com","event_types":["Ledger Purchase"]}`, 422, "invalid_webhook", "event_types"},
		{"an empty event type list", "POST", "/admin/v1/webhooks", `{"url":"https://a.example.com","event_types":[]}`, 422, "invalid_webhook", "event_types"},
		{"a description too long", "POST", "/admin/v1/webhooks", `{"url":"https://a.example.com","description":"` + strings.Repeat("d", 501) + `"}`, 422, "invalid_webhook", "description"},
		{"a patch with a bad url", "PATCH", path, `{"url":"ftp://a.example.com"}`, 422, "invalid_webhook", "url"},
		{"a patch with an unknown field", "PATCH", path, `{"cursor":1}`, 400, "invalid_request", ""},
		{"a patch of an unknown endpoint", "PATCH", "/admin/v1/webhooks/999999", `{}`, 404, "webhook_not_found", ""},
		{"a read of a non-numeric id", "GET", "/admin/v1/webhooks/abc", "", 404, "webhook_not_found", ""},
		{"a read of id zero", "GET", "/admin/v1/webhooks/0", "", 404, "webhook_not_found", ""},
		{"a rotation of an unknown endpoint", "POST", "/admin/v1/webhooks/999999/rotate-secret", "", 404, "webhook_not_found", ""},
		{"a redelivery to an unknown endpoint", "POST", "/admin/v1/webhooks/999999/redeliveries", `{"event_id":1}`, 404, "webhook_not_found", ""},
		{"a redelivery of nothing", "POST", path + "/redeliveries", `{}`, 422, "invalid_webhook", "since"},
		{"a redelivery of half a range", "POST", path + "/redeliveries", `{"since":"2026-01-01T00:00:00Z"}`, 422, "invalid_webhook", "since"},
		{"a redelivery of an event and a range", "POST", path + "/redeliveries", `{"event_id":1,"since":"2026-01-01T00:00:00Z","until":"2026-01-02T00:00:00Z"}`, 422, "invalid_webhook", "event_id"},
		{"a redelivery of an empty range", "POST", path + "/redeliveries", `{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}`, 422, "invalid_webhook", "until"},
		{"a redelivery of event zero", "POST", path + "/redeliveries", `{"event_id":0}`, 422, "invalid_webhook", "event_id"},
		{"a redelivery with a bad time", "POST", path + "/redeliveries", `{"since":"yesterday","until":"today"}`, 400, "invalid_request", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := assertProblem(t, e.hookAdmin(t, tc.method, tc.path, tc.body), tc.status, tc.code)
			if tc.field != "" && p["field"] != tc.field {
				t.Errorf("field = %v, want %s", p["field"], tc.field)
			}
		})
	}

	t.Run("a body that is not JSON", func(t *testing.T) {
		req := newRequest("POST", "/admin/v1/webhooks", []byte(`url=x`), "Authorization", bearer(adminToken), "Content-Type", "text/plain")
		assertProblem(t, e.do(t, req), 415, "unsupported_media_type")
	})
	t.Run("nothing was created by the refusals", func(t *testing.T) {
		var n int
		if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM webhook_endpoints`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("%d endpoints, want 1", n)
		}
	})
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
