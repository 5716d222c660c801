package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coinop/coinop/entitlements"
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

// newServerKey creates a key with the server role and these limits (a JSON
// object, or "" for none) and returns its secret.
func (e *env) newServerKey(t testing.TB, name, limits string) string {
	t.Helper()
	body := `{"name":"` + name + `","roles":["server"]}`
	if limits != "" {
		body = `{"name":"` + name + `","roles":["server"],"limits":` + limits + `}`
	}
	r := e.do(t, newRequest(http.MethodPost, "/admin/v1/keys", []byte(body), "Authorization", bearer(adminToken), "Content-Type", "application/json"))
	if r.status != http.StatusCreated {
		t.Fatalf("create key %s: %s", name, r)
	}
	var created struct{ Secret string }
	r.decode(t, &created)
	return created.Secret
}

func TestServerKeyLimits(t *testing.T) {
	t.Parallel()
	var now atomic.Int64
	now.Store(time.Date(2026, 12, 2, 15, 30, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	e := newEnv(t, withLedgerOptions(entitlements.WithClock(clock)))
	key := e.newServerKey(t, "gs-gold", `{"currencies":["gold"],"items":["potion"],"max_per_posting":500,"hourly_budget":{"gold":1000}}`)

	t.Run("a key allowed only gold cannot touch gems", func(t *testing.T) {
		pb := assertProblem(t, e.do(t, moveRequest("awards", "lim-1", "g1", `{"source":"s","reason":"r","currencies":{"gems":1}}`, key)), http.StatusForbidden, "asset_not_allowed")
		if pb["asset_id"] != "gems" || pb["asset_type"] != "currency" {
			t.Errorf("problem: %v", pb)
		}
		assertProblem(t, e.do(t, moveRequest("spends", "lim-1", "g2", `{"source":"s","reason":"r","currencies":{"gems":1}}`, key)), http.StatusForbidden, "asset_not_allowed")
		assertProblem(t, e.do(t, moveRequest("awards", "lim-1", "g3", `{"source":"s","reason":"r","items":{"sword":1}}`, key)), http.StatusForbidden, "asset_not_allowed")
		assertProblem(t, e.do(t, moveRequest("exchanges", "lim-1", "g4", `{"source":"s","reason":"r","take":{"currencies":{"gold":1}},"give":{"currencies":{"gems":1}}}`, key)), http.StatusForbidden, "asset_not_allowed")
		pb = assertProblem(t, e.do(t, moveRequest("awards", "lim-1", "g5", `{"source":"s","reason":"r","currencies":{"gold":501}}`, key)), http.StatusForbidden, "posting_too_large")
		if fmt.Sprint(pb["max_per_posting"]) != "500" {
			t.Errorf("problem: %v", pb)
		}
		if w := e.wallet(t, "lim-1"); w["gems"] != 0 || w["gold"] != 0 {
			t.Errorf("refused postings moved holdings: %v", w)
		}
	})

	t.Run("a budget of 1000 gold an hour lets exactly 10 of 50 concurrent awards of 100 through", func(t *testing.T) {
		var wg sync.WaitGroup
		results := make([]response, 50)
		for i := range results {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := e.send(moveRequest("awards", fmt.Sprintf("bud-%d", i%7), fmt.Sprintf("b-%d", i), `{"source":"match","reason":"won","currencies":{"gold":100}}`, key))
				if err != nil {
					t.Error(err)
				}
				results[i] = r
			}()
		}
		wg.Wait()
		ok, refused := 0, 0
		var refusedAt int
		for i, r := range results {
			switch r.status {
			case http.StatusCreated:
				ok++
			case http.StatusTooManyRequests:
				refused++
				refusedAt = i
				pb := assertProblem(t, r, http.StatusTooManyRequests, "budget_exceeded")
				if pb["resets_at"] != "2026-12-02T16:00:00Z" || fmt.Sprint(pb["budget"]) != "1000" || r.header.Get("Retry-After") == "" {
					t.Errorf("budget problem: %s (Retry-After %q)", r.body, r.header.Get("Retry-After"))
				}
			default:
				t.Errorf("award %d: %s", i, r)
			}
		}
		if ok != 10 || refused != 40 {
			t.Fatalf("%d awards succeeded and %d were refused, want 10 and 40", ok, refused)
		}
		var total int64
		for p := range 7 {
			total += e.wallet(t, fmt.Sprintf("bud-%d", p))["gold"]
		}
		if total != 1000 {
			t.Errorf("players got %d gold in all, want 1000", total)
		}
		// Spending takes nothing from the budget, and the refusal was not
		// stored: the same request succeeds in the next hour.
		now.Add(int64(time.Hour))
		r := e.do(t, moveRequest("awards", fmt.Sprintf("bud-%d", refusedAt%7), fmt.Sprintf("b-%d", refusedAt), `{"source":"match","reason":"won","currencies":{"gold":100}}`, key))
		if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
			t.Errorf("the refused award in the next hour: %s", r)
		}
		e.assertAuditOK(t)
	})

	t.Run("limits are changed through the admin API and audited", func(t *testing.T) {
		put := func(ref, body string) response {
			return e.do(t, newRequest(http.MethodPut, "/admin/v1/keys/"+ref+"/limits", []byte(body), "Authorization", bearer(adminToken), "Content-Type", "application/json"))
		}
		r := put("gs-gold", `{"currencies":["gold","gems"],"hourly_budget":{"gems":5}}`)
		if r.status != http.StatusOK {
			t.Fatalf("put limits: %s", r)
		}
		if r := e.do(t, moveRequest("awards", "lim-2", "l1", `{"source":"s","reason":"r","currencies":{"gems":5}}`, key)); r.status != http.StatusCreated {
			t.Errorf("gems after allowing them: %s", r)
		}
		assertProblem(t, e.do(t, moveRequest("awards", "lim-2", "l2", `{"source":"s","reason":"r","currencies":{"gems":1}}`, key)), http.StatusTooManyRequests, "budget_exceeded")
		assertProblem(t, put("gs-gold", `{"hourly_budget":{"gems":0}}`), http.StatusBadRequest, "invalid_request")
		assertProblem(t, put("nobody", `null`), http.StatusNotFound, "key_not_found")
		if r := put("gs-gold", `null`); r.status != http.StatusOK {
			t.Fatalf("remove limits: %s", r)
		}
		if r := e.do(t, moveRequest("awards", "lim-2", "l3", `{"source":"s","reason":"r","currencies":{"gems":100}}`, key)); r.status != http.StatusCreated {
			t.Errorf("an unlimited key: %s", r)
		}
		log := e.get(t, "/admin/v1/audit-log?action=key.limits", adminToken)
		var body struct {
			Entries []struct {
				Action string          `json:"action"`
				After  json.RawMessage `json:"after"`
			} `json:"entries"`
		}
		log.decode(t, &body)
		if len(body.Entries) != 2 {
			t.Fatalf("audit log: %s", log.body)
		}
	})
}

// TestPlayerConsumption: players use up what the catalog marks
// player_consumable (arrow in the fixture), and nothing else.
func TestPlayerConsumption(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const p = "eco-player"
	e.grant(t, p, "fund", nil, map[string]int64{"arrow": 3, "potion": 2})
	consume := func(key, body string) response {
		return e.do(t, newRequest(http.MethodPost, "/v1/consumptions", []byte(body),
			"Authorization", bearer(playerToken(p)), "Content-Type", "application/json", "Idempotency-Key", key))
	}
	r := consume("c1", `{"item_id":"arrow","quantity":2}`)
	if r.status != http.StatusCreated {
		t.Fatalf("consume: %s", r)
	}
	var body struct {
		ConsumptionID string `json:"consumption_id"`
		Entitlements  []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	}
	r.decode(t, &body)
	if body.ConsumptionID == "" || len(body.Entitlements) != 1 || body.Entitlements[0].Quantity != 1 {
		t.Errorf("consume body: %s", r.body)
	}
	if again := consume("c1", `{"item_id":"arrow","quantity":2}`); again.status != http.StatusCreated || string(again.body) != string(r.body) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("replay: %s", again)
	}
	assertProblem(t, consume("c2", `{"item_id":"potion","quantity":1}`), http.StatusConflict, "not_consumable")
	assertProblem(t, consume("c3", `{"item_id":"arrow","quantity":2}`), http.StatusPaymentRequired, "insufficient_funds")
	assertProblem(t, consume("c4", `{"item_id":"arrow","quantity":0}`), http.StatusBadRequest, "invalid_request")
	if got := e.items(t, p); got["arrow"] != 1 || got["potion"] != 2 {
		t.Errorf("holdings after consumption: %v", got)
	}
	kinds := map[string]int{}
	for _, tx := range e.ledgerPage(t, p, "").Transactions {
		kinds[tx.Kind]++
	}
	if kinds["player_consume"] != 1 {
		t.Errorf("ledger kinds: %v", kinds)
	}
	e.assertAuditOK(t)
}
