package server_test

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// TestPriceMismatchCarriesCurrentPrices: a client with a stale price learns
// the current ones from the rejection and can buy with them.
func TestPriceMismatchCarriesCurrentPrices(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 500}, nil)

	r := e.purchase(t, "p1", "stale", buy("sword", 1, "gold", 450))
	p := assertProblem(t, r, http.StatusConflict, "price_mismatch")
	if p["item_id"] != "sword" {
		t.Errorf("item_id = %v, want sword", p["item_id"])
	}
	var body struct {
		Prices []struct {
			Currency string `json:"currency"`
			Amount   int64  `json:"amount"`
		} `json:"prices"`
	}
	r.decode(t, &body)
	if got := fmt.Sprint(body.Prices); got != "[{gold 500} {gems 5}]" {
		t.Fatalf("prices = %s, want [{gold 500} {gems 5}]", got)
	}
	if w := e.wallet(t, "p1"); w["gold"] != 500 {
		t.Fatalf("gold after a rejection = %d, want 500", w["gold"])
	}
	r = e.purchase(t, "p1", "fresh", buy("sword", 1, body.Prices[0].Currency, body.Prices[0].Amount))
	if r.status != http.StatusCreated {
		t.Fatalf("purchase at the current price: %s", r)
	}
}

// TestRejectionsAreStoredAndReplayed: business rejections belong to the key.
// A retry gets the same status and body, flagged as a replay, even after the
// player could now afford it; only a new key buys.
func TestRejectionsAreStoredAndReplayed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 50}, nil)
	body := buy("potion", 1, "gold", 100)

	first := e.purchase(t, "p1", "k", body)
	assertProblem(t, first, http.StatusPaymentRequired, "insufficient_funds")
	if h := first.header.Get("Idempotent-Replayed"); h != "" {
		t.Errorf("first answer has Idempotent-Replayed: %q", h)
	}
	for i := range 3 {
		again := e.purchase(t, "p1", "k", body)
		assertProblem(t, again, http.StatusPaymentRequired, "insufficient_funds")
		if !bytes.Equal(again.body, first.body) {
			t.Errorf("replay %d body:\n%s\nfirst:\n%s", i, again.body, first.body)
		}
		if h := again.header.Get("Idempotent-Replayed"); h != "true" {
			t.Errorf("replay %d: Idempotent-Replayed = %q, want true", i, h)
		}
		if again.header.Get("Content-Type") != problemCT {
			t.Errorf("replay %d: Content-Type = %q", i, again.header.Get("Content-Type"))
		}
	}

	// Funds arrive; the stored answer still stands for this key.
	e.grant(t, "p1", "top-up", map[string]int64{"gold": 50}, nil)
	replay := e.purchase(t, "p1", "k", body)
	if replay.status != http.StatusPaymentRequired || !bytes.Equal(replay.body, first.body) || replay.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("retry after top-up: %s, want the stored 402 replayed", replay)
	}
	if r := e.purchase(t, "p1", "k2", body); r.status != http.StatusCreated {
		t.Fatalf("new key after top-up: %s", r)
	}

	// Other stored rejections replay the same way.
	for _, tc := range []struct {
		body   string
		status int
		code   string
	}{
		{buy("dragon", 1, "gold", 1), 404, "item_not_found"},
		{buy("relic", 1, "gold", 10), 409, "item_unavailable"},
		{buy("potion", 1, "gold", 1), 409, "price_mismatch"},
		{buy("sword", 2, "gold", 500), 409, "limit_exceeded"},
	} {
		key := "replay-" + tc.code
		first := e.purchase(t, "p1", key, tc.body)
		assertProblem(t, first, tc.status, tc.code)
		again := e.purchase(t, "p1", key, tc.body)
		assertProblem(t, again, tc.status, tc.code)
		if !bytes.Equal(again.body, first.body) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Errorf("%s replay: %s (replayed %q), first %s", tc.code, again, again.header.Get("Idempotent-Replayed"), first)
		}
		// The key is taken by that request: another body is a reused key.
		assertProblem(t, e.purchase(t, "p1", key, buy("potion", 1, "gold", 100)), 422, "idempotency_key_reused")
	}
	if w := e.wallet(t, "p1"); w["gold"] != 0 {
		t.Errorf("gold = %d, want 0 after one potion", w["gold"])
	}
	e.assertAuditOK(t)
}

// TestInvalidRequestsAreNotStored: 400 and 401 answers do not take the key,
// so the corrected retry with the same key succeeds.
func TestInvalidRequestsAreNotStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 300}, nil)

	assertProblem(t, e.purchase(t, "p1", "k", `{"item_id":"potion","quantity":0,"price":{"currency":"gold","amount":100}}`),
		http.StatusBadRequest, "invalid_request")
	assertProblem(t, e.purchase(t, "p1", "k", `{"item_id":"potion"`), http.StatusBadRequest, "invalid_request")
	req := purchaseRequest("p1", "k", buy("potion", 1, "gold", 100))
	req.Header.Set("Authorization", "Bearer expired.or.bogus")
	assertProblem(t, e.do(t, req), http.StatusUnauthorized, "unauthenticated")

	r := e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100))
	if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("corrected retry: %s (replayed %q), want a fresh 201", r, r.header.Get("Idempotent-Replayed"))
	}
	if w := e.wallet(t, "p1"); w["gold"] != 200 {
		t.Fatalf("gold = %d, want 200", w["gold"])
	}
}

// TestOneKeyOneCharge sends one key 20 times at once and 5 times more: the
// player is charged once, every answer is the same 201 body, and all but
// the first are flagged as replays. The key means nothing to another player.
func TestOneKeyOneCharge(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 1000}, nil)
	e.grant(t, "p2", "fund", map[string]int64{"gold": 1000}, nil)
	body := buy("potion", 2, "gold", 100)

	const concurrent = 20
	results := make([]response, concurrent)
	errs := make([]error, concurrent)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range concurrent {
		wg.Go(func() {
			<-start
			results[i], errs[i] = e.send(purchaseRequest("p1", "same-key", body))
		})
	}
	close(start)
	wg.Wait()
	for range 5 {
		r, err := e.send(purchaseRequest("p1", "same-key", body))
		results, errs = append(results, r), append(errs, err)
	}

	fresh := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		if r.status != http.StatusCreated {
			t.Fatalf("request %d: %s", i, r)
		}
		if !bytes.Equal(r.body, results[0].body) {
			t.Errorf("request %d body differs:\n%s\n%s", i, r.body, results[0].body)
		}
		switch h := r.header.Get("Idempotent-Replayed"); h {
		case "":
			fresh++
			if i >= concurrent {
				t.Errorf("sequential retry %d not flagged as a replay", i-concurrent)
			}
		case "true":
		default:
			t.Errorf("request %d: Idempotent-Replayed = %q", i, h)
		}
	}
	if fresh != 1 {
		t.Errorf("%d answers not flagged as replays, want exactly 1", fresh)
	}

	var receipt struct {
		PurchaseID string           `json:"purchase_id"`
		ItemID     string           `json:"item_id"`
		Quantity   int64            `json:"quantity"`
		Balances   map[string]int64 `json:"balances"`
	}
	results[0].decode(t, &receipt)
	if receipt.PurchaseID == "" || receipt.ItemID != "potion" || receipt.Quantity != 2 || receipt.Balances["gold"] != 800 {
		t.Errorf("receipt = %+v", receipt)
	}
	if w := e.wallet(t, "p1"); w["gold"] != 800 {
		t.Errorf("gold = %d, want 800: charged more than once", w["gold"])
	}
	if it := e.items(t, "p1"); it["potion"] != 2 {
		t.Errorf("potions = %d, want 2", it["potion"])
	}
	page := e.ledgerPage(t, "p1", "")
	purchases := 0
	for _, tx := range page.Transactions {
		if tx.Kind == "purchase" {
			purchases++
			if tx.Reference != receipt.PurchaseID {
				t.Errorf("ledger purchase %s, receipt %s", tx.Reference, receipt.PurchaseID)
			}
		}
	}
	if purchases != 1 {
		t.Errorf("%d purchases in the ledger, want 1", purchases)
	}

	t.Run("the same key with another body is idempotency_key_reused", func(t *testing.T) {
		assertProblem(t, e.purchase(t, "p1", "same-key", buy("potion", 3, "gold", 100)), 422, "idempotency_key_reused")
		assertProblem(t, e.purchase(t, "p1", "same-key", buy("sword", 1, "gold", 500)), 422, "idempotency_key_reused")
		if w := e.wallet(t, "p1"); w["gold"] != 800 {
			t.Errorf("gold = %d, want 800", w["gold"])
		}
	})

	t.Run("another player's same key is their own purchase", func(t *testing.T) {
		r := e.purchase(t, "p2", "same-key", body)
		if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("p2 with p1's key: %s (replayed %q), want a fresh 201", r, r.header.Get("Idempotent-Replayed"))
		}
		var p2 struct {
			PurchaseID string `json:"purchase_id"`
		}
		r.decode(t, &p2)
		if p2.PurchaseID == receipt.PurchaseID {
			t.Error("p2 got p1's receipt")
		}
		if w := e.wallet(t, "p2"); w["gold"] != 800 {
			t.Errorf("p2 gold = %d, want 800", w["gold"])
		}
		if w := e.wallet(t, "p1"); w["gold"] != 800 {
			t.Errorf("p1 gold = %d, want 800", w["gold"])
		}
		// And p2's key with another body is reused for p2 alone.
		assertProblem(t, e.purchase(t, "p2", "same-key", buy("potion", 1, "gold", 100)), 422, "idempotency_key_reused")
	})
	e.assertAuditOK(t)
}

// TestGrantIsIdempotent: an admin grant retried with its key credits once.
func TestGrantIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	first := e.grant(t, "p1", "g", map[string]int64{"gold": 100}, map[string]int64{"potion": 3})
	again := e.grant(t, "p1", "g", map[string]int64{"gold": 100}, map[string]int64{"potion": 3})
	if !bytes.Equal(first.body, again.body) || again.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("grant replay: first %s, again %s (replayed %q)", first, again, again.header.Get("Idempotent-Replayed"))
	}
	var g struct {
		GrantID      string           `json:"grant_id"`
		PlayerID     string           `json:"player_id"`
		Reason       string           `json:"reason"`
		Balances     map[string]int64 `json:"balances"`
		Entitlements []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	}
	first.decode(t, &g)
	if g.GrantID == "" || g.PlayerID != "p1" || g.Reason != "test funding" || g.Balances["gold"] != 100 || g.Balances["gems"] != 0 ||
		fmt.Sprint(g.Entitlements) != "[{potion 3}]" {
		t.Errorf("grant response = %s", first.body)
	}
	if w := e.wallet(t, "p1"); w["gold"] != 100 {
		t.Errorf("gold = %d, want 100", w["gold"])
	}
	if it := e.items(t, "p1"); it["potion"] != 3 {
		t.Errorf("potions = %d, want 3", it["potion"])
	}
}
