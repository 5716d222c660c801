package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/server"
)

type feedPage struct {
	Events []struct {
		ID       int64          `json:"id"`
		Type     string         `json:"type"`
		PlayerID *string        `json:"player_id"`
		Data     map[string]any `json:"data"`
	} `json:"events"`
	NextAfter int64 `json:"next_after"`
}

func (e *env) feed(t testing.TB, query string) feedPage {
	t.Helper()
	r := e.get(t, "/v1/events"+query, economyServerToken)
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/events%s: %s", query, r)
	}
	var p feedPage
	r.decode(t, &p)
	return p
}

func types(p feedPage) string {
	var out []string
	for _, ev := range p.Events {
		out = append(out, ev.Type)
	}
	return strings.Join(out, " ")
}

// TestEventFeed: every posting and every catalog publish is an event, in
// commit order, with stable ids, also after a restart.
func TestEventFeed(t *testing.T) {
	t.Parallel()
	e := newEconomyEnv(t)
	const p = "feed-1"
	e.grant(t, p, "g1", map[string]int64{"gold": 1000}, nil)
	if r := e.purchase(t, p, "buy-1", buy("potion", 2, "gold", 100)); r.status != http.StatusCreated {
		t.Fatalf("purchase: %s", r)
	}
	// A refusal moves nothing and is no event.
	assertProblem(t, e.purchase(t, p, "buy-2", buy("potion", 1000, "gold", 100)), http.StatusPaymentRequired, "insufficient_funds")
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
	// A replay is no event either.
	e.move(t, "awards", p, "a1", `{"source":"m","reason":"won","items":{"arrow":3}}`)
	if r := e.do(t, newRequest(http.MethodPost, "/v1/consumptions", []byte(`{"item_id":"arrow","quantity":1}`),
		"Authorization", bearer(playerToken(p)), "Idempotency-Key", "pc1")); r.status != http.StatusCreated {
		t.Fatalf("player consumption: %s", r)
	}
	if r := e.do(t, newRequest(http.MethodPut, "/admin/v1/catalog", readFile(t, "catalog.json"),
		"Authorization", bearer(adminToken), "Content-Type", "application/json")); r.status != http.StatusCreated {
		t.Fatalf("publish: %s", r)
	}

	all := e.feed(t, "?after=0")
	want := "catalog.published ledger.admin_grant ledger.purchase ledger.award ledger.spend ledger.consume ledger.exchange ledger.player_consume catalog.published"
	if got := types(all); got != want {
		t.Fatalf("event types:\n got %s\nwant %s", got, want)
	}
	for i, ev := range all.Events {
		if i > 0 && ev.ID <= all.Events[i-1].ID {
			t.Errorf("event %d has id %d after %d", i, ev.ID, all.Events[i-1].ID)
		}
		if strings.HasPrefix(ev.Type, "ledger.") && (ev.PlayerID == nil || *ev.PlayerID != p || ev.Data["result"] == nil || ev.Data["ledger_transaction_id"] == nil) {
			t.Errorf("event %s: %+v", ev.Type, ev)
		}
	}
	if all.NextAfter != all.Events[len(all.Events)-1].ID {
		t.Errorf("next_after = %d", all.NextAfter)
	}

	t.Run("pages follow the cursor", func(t *testing.T) {
		first := e.feed(t, "?after=0&limit=4")
		rest := e.feed(t, fmt.Sprintf("?after=%d", first.NextAfter))
		if types(first)+" "+types(rest) != want {
			t.Errorf("pages: %q + %q", types(first), types(rest))
		}
		if end := e.feed(t, fmt.Sprintf("?after=%d", all.NextAfter)); len(end.Events) != 0 || end.NextAfter != all.NextAfter {
			t.Errorf("after the last event: %+v", end)
		}
	})

	t.Run("a restarted server serves the same events", func(t *testing.T) {
		again := newEnv(t, withPool(e.pool), withConfig(func(c *server.Config) { c.ServerToken = economyServerToken }))
		got := again.feed(t, "?after=0")
		g, _ := json.Marshal(got)
		w, _ := json.Marshal(all)
		if string(g) != string(w) {
			t.Errorf("after a restart:\n%+v\nwant\n%+v", got, all)
		}
	})

	t.Run("a waiting request answers when an event commits", func(t *testing.T) {
		done := make(chan feedPage, 1)
		go func() {
			r, err := e.send(newRequest(http.MethodGet, fmt.Sprintf("/v1/events?after=%d&wait=20", all.NextAfter), nil,
				"Authorization", bearer(economyServerToken)))
			if err != nil || r.status != http.StatusOK {
				t.Errorf("long poll: %v %s", err, r)
				done <- feedPage{}
				return
			}
			var pg feedPage
			r.decode(t, &pg)
			done <- pg
		}()
		e.move(t, "awards", p, "a2", `{"source":"m","reason":"won","currencies":{"gold":1}}`)
		if pg := <-done; types(pg) != "ledger.award" {
			t.Errorf("long poll got %q", types(pg))
		}
	})

	t.Run("a wait longer than the request timeout ends empty, not in a 503", func(t *testing.T) {
		short := newEnv(t, withPool(e.pool), withConfig(func(c *server.Config) {
			c.ServerToken = economyServerToken
			c.RequestTimeout = time.Second
		}))
		r := short.get(t, fmt.Sprintf("/v1/events?after=%d&wait=30", all.NextAfter+1000), economyServerToken)
		var pg feedPage
		r.decode(t, &pg)
		if r.status != http.StatusOK || len(pg.Events) != 0 {
			t.Errorf("a long poll past the request timeout: %s", r)
		}
	})

	t.Run("the feed is for game servers", func(t *testing.T) {
		assertProblem(t, e.get(t, "/v1/events", playerToken(p)), http.StatusForbidden, "forbidden")
		assertProblem(t, e.get(t, "/v1/events?after=-1", economyServerToken), http.StatusBadRequest, "invalid_request")
		assertProblem(t, e.get(t, "/v1/events?wait=31", economyServerToken), http.StatusBadRequest, "invalid_request")
	})
}
