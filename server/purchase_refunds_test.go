package server_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/coinop/coinop/access"
)

// latestOfKind is the id of the player's latest ledger transaction of kind,
// as support finds it in the ledger.
func (e *env) latestOfKind(t testing.TB, player, kind string) int64 {
	t.Helper()
	for _, tx := range e.ledgerPage(t, player, "").Transactions {
		if tx.Kind == kind {
			return tx.ID
		}
	}
	t.Fatalf("%s has no %s transaction", player, kind)
	return 0
}

// TestSupportRefundsAPurchaseAndTheCreatorsShareAfterAPayout walks a
// refund end to end over HTTP: a purchase under a code of a creator-made
// item, a payout, a partial refund by support that leaves the paid-out
// creator a debt, the refusals, and the next earnings paying the debt
// first before the next payout.
func TestSupportRefundsAPurchaseAndTheCreatorsShareAfterAPayout(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)
	support := newKey(t, e, "alice", access.RoleSupport)
	e.grant(t, "p1", "fund", map[string]int64{"gems": 1000}, nil)
	if r := e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"NINJA"}`); r.status != http.StatusOK {
		t.Fatal(r)
	}
	// 10 map packs of 10 gems: ninja's code 5% = 5 gems, maker's 30% = 30.
	if r := e.purchase(t, "p1", "buy-1", buy("map-pack", 10, "gems", 10)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	if r := e.admin(t, "POST", "/admin/v1/creators/ninja/payouts", "", "Idempotency-Key", "po-1"); r.status != http.StatusCreated {
		t.Fatalf("payout: %s", r)
	}
	tx := e.latestOfKind(t, "p1", "purchase")
	path := fmt.Sprintf("/admin/v1/players/p1/purchases/%d/refund", tx)
	refund := func(key, body string) response {
		return e.adminAs(t, support, "POST", path, body, "Idempotency-Key", key)
	}

	r := refund("ticket-7", `{"reason":"ticket 7: bought 4 by mistake","quantity":4}`)
	if r.status != http.StatusCreated {
		t.Fatalf("refund: %s", r)
	}
	var b struct {
		TransactionID int64            `json:"transaction_id"`
		Quantity      int64            `json:"quantity"`
		Refunded      int64            `json:"refunded_quantity"`
		GivenBack     map[string]int64 `json:"given_back"`
		TakenBack     map[string]int64 `json:"taken_back"`
		Balances      map[string]int64 `json:"balances"`
	}
	r.decode(t, &b)
	if b.TransactionID != tx || b.Quantity != 4 || b.Refunded != 4 || b.GivenBack["gems"] != 40 || b.TakenBack["map-pack"] != 4 || b.Balances["gems"] != 940 {
		t.Fatalf("refund body: %s", r)
	}
	if again := refund("ticket-7", `{"reason":"ticket 7: bought 4 by mistake","quantity":4}`); again.status != http.StatusCreated ||
		again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(r.body) {
		t.Fatalf("replay: %s", again)
	}
	if got := e.items(t, "p1")["map-pack"]; got != 6 {
		t.Fatalf("map packs after refunding 4 of 10: %d", got)
	}
	// ninja was paid 5 gems: 4/10 of its share (2 gems) is now a debt;
	// maker, not paid yet, keeps 30 − 12.
	if got := e.earnings(t, "ninja")["gems"]; got.DebtMicro != 2_000_000 || got.Paid != 5 || got.Available != 0 {
		t.Fatalf("ninja after the refund: %+v, want a debt of 2 gems", got)
	}
	if got := e.earnings(t, "maker")["gems"]; got.Available != 18 {
		t.Fatalf("maker after the refund: %+v, want 18 available", got)
	}

	grantTx := e.latestOfKind(t, "p1", "admin_grant")
	for _, tt := range []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"more units than are left", path, `{"reason":"x","quantity":7}`, http.StatusConflict, "refund_exceeds_purchase"},
		{"another player's purchase", fmt.Sprintf("/admin/v1/players/p2/purchases/%d/refund", tx), `{"reason":"x"}`, http.StatusUnprocessableEntity, "purchase_of_another_player"},
		{"a grant", fmt.Sprintf("/admin/v1/players/p1/purchases/%d/refund", grantTx), `{"reason":"x"}`, http.StatusUnprocessableEntity, "not_a_purchase"},
		{"an unknown transaction", "/admin/v1/players/p1/purchases/999999/refund", `{"reason":"x"}`, http.StatusNotFound, "purchase_not_found"},
		{"a transaction id that is no number", "/admin/v1/players/p1/purchases/abc/refund", `{"reason":"x"}`, http.StatusBadRequest, "invalid_request"},
		{"a quantity of 0", path, `{"reason":"x","quantity":0}`, http.StatusBadRequest, "invalid_request"},
		{"an unknown policy", path, `{"reason":"x","policy":"forgive"}`, http.StatusBadRequest, "invalid_request"},
		{"no reason", path, `{"quantity":1}`, http.StatusBadRequest, "invalid_request"},
	} {
		p := assertProblem(t, e.adminAs(t, support, "POST", tt.path, tt.body, "Idempotency-Key", "bad-"+tt.code), tt.status, tt.code)
		if tt.code == "refund_exceeds_purchase" && (fmt.Sprint(p["purchased_quantity"]) != "10" || fmt.Sprint(p["refunded_quantity"]) != "4") {
			t.Errorf("%s: %v", tt.name, p)
		}
	}
	assertProblem(t, refund("ticket-7", `{"reason":"ticket 7","quantity":1}`), http.StatusUnprocessableEntity, "idempotency_key_reused")
	assertProblem(t, e.admin(t, "POST", path, `{"reason":"x"}`), http.StatusBadRequest, "idempotency_key_missing")

	// The rest, then nothing is left.
	if r := refund("ticket-8", `{"reason":"ticket 8"}`); r.status != http.StatusCreated {
		t.Fatalf("the rest: %s", r)
	}
	assertProblem(t, refund("ticket-9", `{"reason":"ticket 9"}`), http.StatusConflict, "purchase_already_refunded")
	if got := e.wallet(t, "p1")["gems"]; got != 1000 {
		t.Fatalf("gems after a full refund: %d", got)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.DebtMicro != 5_000_000 || got.EarnedMicro != 0 {
		t.Fatalf("ninja after a full refund: %+v, want all 5 paid gems as debt", got)
	}

	// The next earnings pay the debt first: 10 more packs earn ninja 5.
	if r := e.purchase(t, "p1", "buy-2", buy("map-pack", 10, "gems", 10)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.Available != 0 || got.DebtMicro != 0 {
		t.Fatalf("ninja after the next earnings: %+v, want the debt paid and nothing left", got)
	}
	if r := e.purchase(t, "p1", "buy-3", buy("map-pack", 10, "gems", 10)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	r = e.admin(t, "POST", "/admin/v1/creators/ninja/payouts", "", "Idempotency-Key", "po-2")
	if r.status != http.StatusCreated {
		t.Fatalf("second payout: %s", r)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.Paid != 10 {
		t.Fatalf("ninja paid %d gems in all, want 5 + 5", got.Paid)
	}
	var audited int
	if err := e.pool.QueryRow(t.Context(), `SELECT count(*) FROM audit_log WHERE action = 'player.purchase_refund' AND actor = 'key:alice'`).Scan(&audited); err != nil || audited != 2 {
		t.Fatalf("%d audit entries by alice (%v), want 2", audited, err)
	}
	e.assertAuditOK(t)
}

// TestConcurrentRefundsNeverRefundMoreThanThePurchase sends one refund
// many times under one key beside refunds under keys of their own, all at
// once: each unit is refunded once, the key's duplicates replay, and the
// wallet ends exact.
func TestConcurrentRefundsNeverRefundMoreThanThePurchase(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gems": 1000}, nil)
	if r := e.purchase(t, "p1", "buy", buy("map-pack", 5, "gems", 10)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	path := fmt.Sprintf("/admin/v1/players/p1/purchases/%d/refund", e.latestOfKind(t, "p1", "purchase"))
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh, replayed := 0, 0
	for i := range 30 {
		key := "same"
		if i%2 == 1 {
			key = fmt.Sprintf("own-%d", i)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.admin(t, "POST", path, `{"reason":"at once","quantity":1}`, "Idempotency-Key", key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case r.status == http.StatusCreated && r.header.Get("Idempotent-Replayed") == "true":
				replayed++
			case r.status == http.StatusCreated:
				fresh++
			case r.status == http.StatusConflict:
				p := r.object(t)
				if c := p["code"]; c != "purchase_already_refunded" && c != "idempotency_key_in_use" {
					t.Errorf("refused with %v", c)
				}
			default:
				t.Errorf("unexpected answer %s", r)
			}
		}()
	}
	wg.Wait()
	if fresh != 5 {
		t.Fatalf("%d refunds made (%d replays), want the 5 units once each", fresh, replayed)
	}
	if got := e.wallet(t, "p1")["gems"]; got != 1000 {
		t.Fatalf("gems %d, want all 1000 back", got)
	}
	if got := e.items(t, "p1")["map-pack"]; got != 0 {
		t.Fatalf("%d map packs left", got)
	}
	e.assertAuditOK(t)
}
