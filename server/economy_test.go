package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/coinop/coinop/server"
)

const economyServerToken = "economy-server-token"

func newEconomyEnv(t *testing.T) *env {
	t.Helper()
	return newEnv(t, withConfig(func(c *server.Config) { c.ServerToken = economyServerToken }))
}

// move sends one server posting with the game-server token.
func (e *env) move(t testing.TB, route, player, key, body string) response {
	t.Helper()
	return e.do(t, moveRequest(route, player, key, body, economyServerToken))
}

func moveRequest(route, player, key, body, token string) *http.Request {
	r := newRequest(http.MethodPost, "/v1/players/"+player+"/"+route, []byte(body),
		"Content-Type", "application/json", "Idempotency-Key", key)
	if token != "" {
		r.Header.Set("Authorization", bearer(token))
	}
	return r
}

type moveResult struct {
	PostingID    string           `json:"posting_id"`
	Kind         string           `json:"kind"`
	PlayerID     string           `json:"player_id"`
	Source       string           `json:"source"`
	Reason       string           `json:"reason"`
	Balances     map[string]int64 `json:"balances"`
	Entitlements []struct {
		ItemID   string `json:"item_id"`
		Quantity int64  `json:"quantity"`
	} `json:"entitlements"`
}

func decodeMove(t testing.TB, r response, status int) moveResult {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r)
	}
	var m moveResult
	r.decode(t, &m)
	return m
}

func TestServerPostings(t *testing.T) {
	t.Parallel()
	e := newEconomyEnv(t)
	const p = "eco-1"

	t.Run("an award gives currencies and items once per key", func(t *testing.T) {
		body := `{"source":"match:1","reason":"match won","currencies":{"gold":500},"items":{"potion":3,"sword":1}}`
		r := e.move(t, "awards", p, "a1", body)
		m := decodeMove(t, r, http.StatusCreated)
		if m.Kind != "award" || m.Source != "match:1" || m.Reason != "match won" || m.PlayerID != p || m.PostingID == "" {
			t.Errorf("award body: %s", r.body)
		}
		if m.Balances["gold"] != 500 || m.Balances["gems"] != 0 {
			t.Errorf("balances %v", m.Balances)
		}
		again := e.move(t, "awards", p, "a1", body)
		if again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(r.body) {
			t.Errorf("replay: %s", again)
		}
		assertProblem(t, e.move(t, "awards", p, "a1", `{"source":"match:1","reason":"match won","currencies":{"gold":501}}`),
			http.StatusUnprocessableEntity, "idempotency_key_reused")
		if got := e.wallet(t, p)["gold"]; got != 500 {
			t.Errorf("gold = %d after an award and its replay, want 500", got)
		}
	})

	t.Run("an award is refused for an owned durable, a limit, and unknown ids", func(t *testing.T) {
		assertProblem(t, e.move(t, "awards", p, "a2", `{"source":"s","reason":"r","items":{"sword":1}}`), http.StatusConflict, "already_owned")
		assertProblem(t, e.move(t, "awards", p, "a3", `{"source":"s","reason":"r","items":{"potion":97}}`), http.StatusConflict, "limit_exceeded")
		pb := assertProblem(t, e.move(t, "awards", p, "a4", `{"source":"s","reason":"r","currencies":{"rubies":1},"items":{"starter":1}}`), http.StatusNotFound, "item_not_found")
		if fmt.Sprint(pb["unknown"]) != "[currencies.rubies items.starter]" {
			t.Errorf("unknown = %v", pb["unknown"])
		}
		// A stored rejection replays.
		r := e.move(t, "awards", p, "a2", `{"source":"s","reason":"r","items":{"sword":1}}`)
		assertProblem(t, r, http.StatusConflict, "already_owned")
		if r.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("the stored rejection was not replayed")
		}
	})

	t.Run("a spend takes currencies and is refused beyond the balance", func(t *testing.T) {
		m := decodeMove(t, e.move(t, "spends", p, "s1", `{"source":"shop:npc","reason":"repair","currencies":{"gold":120}}`), http.StatusCreated)
		if m.Kind != "spend" || m.Balances["gold"] != 380 {
			t.Errorf("spend: %+v", m)
		}
		pb := assertProblem(t, e.move(t, "spends", p, "s2", `{"source":"s","reason":"r","currencies":{"gold":381}}`), http.StatusPaymentRequired, "insufficient_funds")
		if pb["asset_id"] != "gold" {
			t.Errorf("insufficient_funds names %v", pb["asset_id"])
		}
		assertProblem(t, e.move(t, "spends", p, "s3", `{"source":"s","reason":"r","items":{"potion":1}}`), http.StatusBadRequest, "invalid_request")
		assertProblem(t, e.move(t, "spends", p, "s4", `{"source":"s","reason":"r","currencies":{"gold":0}}`), http.StatusBadRequest, "invalid_request")
		assertProblem(t, e.move(t, "spends", p, "s5", `{"reason":"r","currencies":{"gold":1}}`), http.StatusBadRequest, "invalid_request")
	})

	t.Run("a consumption takes items and says what is left", func(t *testing.T) {
		m := decodeMove(t, e.move(t, "consumptions", p, "c1", `{"source":"match:2","reason":"drank","items":{"potion":1}}`), http.StatusCreated)
		if m.Kind != "consume" || len(m.Entitlements) != 1 || m.Entitlements[0].ItemID != "potion" || m.Entitlements[0].Quantity != 2 {
			t.Errorf("consume: %+v", m)
		}
		assertProblem(t, e.move(t, "consumptions", p, "c2", `{"source":"s","reason":"r","items":{"potion":3}}`), http.StatusPaymentRequired, "insufficient_funds")
		assertProblem(t, e.move(t, "consumptions", p, "c3", `{"source":"s","reason":"r","items":{"elixir":1}}`), http.StatusNotFound, "item_not_found")
		assertProblem(t, e.move(t, "consumptions", p, "c4", `{"source":"s","reason":"r","currencies":{"gold":1}}`), http.StatusBadRequest, "invalid_request")
	})

	t.Run("an exchange takes and gives all or nothing", func(t *testing.T) {
		m := decodeMove(t, e.move(t, "exchanges", p, "x1",
			`{"source":"craft:arrows","reason":"crafted","take":{"currencies":{"gold":80},"items":{"potion":1}},"give":{"items":{"arrow":20}}}`), http.StatusCreated)
		if m.Kind != "exchange" || m.Balances["gold"] != 300 {
			t.Errorf("exchange: %+v", m)
		}
		before, beforeItems := e.wallet(t, p), e.items(t, p)
		// The gold is there, the potions are not: nothing moves.
		assertProblem(t, e.move(t, "exchanges", p, "x2",
			`{"source":"craft","reason":"r","take":{"currencies":{"gold":10},"items":{"potion":5}},"give":{"currencies":{"gems":5}}}`),
			http.StatusPaymentRequired, "insufficient_funds")
		// The take is there, the give exceeds a limit: nothing moves.
		assertProblem(t, e.move(t, "exchanges", p, "x3",
			`{"source":"craft","reason":"r","take":{"currencies":{"gold":10}},"give":{"items":{"sword":1}}}`),
			http.StatusConflict, "already_owned")
		if after, afterItems := e.wallet(t, p), e.items(t, p); fmt.Sprint(after) != fmt.Sprint(before) || fmt.Sprint(afterItems) != fmt.Sprint(beforeItems) {
			t.Errorf("a refused exchange moved holdings: %v %v → %v %v", before, beforeItems, after, afterItems)
		}
		assertProblem(t, e.move(t, "exchanges", p, "x4", `{"source":"s","reason":"r","take":{"items":{"arrow":1}},"give":{"items":{"arrow":2}}}`), http.StatusBadRequest, "invalid_request")
		assertProblem(t, e.move(t, "exchanges", p, "x5", `{"source":"s","reason":"r","take":{"items":{"arrow":1}}}`), http.StatusBadRequest, "invalid_request")
	})

	t.Run("each posting is its own ledger kind against its own account", func(t *testing.T) {
		accounts := map[string]string{}
		for _, tx := range e.ledgerPage(t, p, "?limit=100").Transactions {
			for _, en := range tx.Entries {
				if en.Account != "player:"+p {
					accounts[tx.Kind] = en.Account
				}
			}
			if tx.Kind == "award" {
				var meta map[string]any
				if err := json.Unmarshal(tx.Metadata, &meta); err != nil || meta["source"] != "match:1" || meta["actor"] != "server-token" {
					t.Errorf("award metadata: %s", tx.Metadata)
				}
			}
		}
		want := map[string]string{"award": "system:awards", "spend": "system:spends", "consume": "system:consumption", "exchange": "system:exchanges"}
		if fmt.Sprint(accounts) != fmt.Sprint(want) {
			t.Errorf("accounts by kind = %v, want %v", accounts, want)
		}
		e.assertAuditOK(t)
	})

	t.Run("only the game server may post", func(t *testing.T) {
		body := `{"source":"s","reason":"r","currencies":{"gold":1}}`
		assertProblem(t, e.do(t, moveRequest("awards", p, "z1", body, playerToken(p))), http.StatusForbidden, "forbidden")
		assertProblem(t, e.do(t, moveRequest("awards", p, "z2", body, adminToken)), http.StatusForbidden, "forbidden")
		assertProblem(t, e.do(t, moveRequest("awards", p, "z3", body, "")), http.StatusUnauthorized, "unauthenticated")
		r := e.do(t, newRequest(http.MethodPost, "/v1/players/"+p+"/awards", []byte(body), "Authorization", bearer(economyServerToken)))
		assertProblem(t, r, http.StatusBadRequest, "idempotency_key_missing")
	})
}

// TestServerPostingSameKeyConcurrently: 20 requests with one key make one
// posting; every one answers the same body.
func TestServerPostingSameKeyConcurrently(t *testing.T) {
	t.Parallel()
	e := newEconomyEnv(t)
	const p = "eco-race"
	body := `{"source":"match:9","reason":"won","currencies":{"gold":50},"items":{"potion":1}}`
	var wg sync.WaitGroup
	results := make([]response, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := e.send(moveRequest("awards", p, "same", body, economyServerToken))
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.status == http.StatusConflict {
			// idempotency_key_in_use is allowed only if the key wait ran out.
			t.Errorf("request %d: %s", i, r)
			continue
		}
		if r.status != http.StatusCreated || string(r.body) != string(results[0].body) {
			t.Errorf("request %d: %s", i, r)
		}
	}
	if got := e.wallet(t, p)["gold"]; got != 50 {
		t.Errorf("gold = %d, want 50", got)
	}
	if got := e.items(t, p)["potion"]; got != 1 {
		t.Errorf("potions = %d, want 1", got)
	}
	if n := len(e.ledgerPage(t, p, "").Transactions); n != 1 {
		t.Errorf("%d ledger transactions, want 1", n)
	}
	e.assertAuditOK(t)
}
