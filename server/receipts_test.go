package server_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/androidpublisher/v3"

	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

// assertNothingRecorded checks that player has no store purchase and holds
// nothing.
func (e *env) assertNothingRecorded(t testing.TB, player string) {
	t.Helper()
	if ps := e.storePurchases(t, player); len(ps) != 0 {
		t.Errorf("store purchases of %s = %+v, want none", player, ps)
	}
	for id, n := range e.wallet(t, player) {
		if n != 0 {
			t.Errorf("%s holds %d %s, want 0", player, n, id)
		}
	}
	if items := e.items(t, player); len(items) != 0 {
		t.Errorf("%s holds items %v, want none", player, items)
	}
}

func TestAppleSignedTransaction(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t, withTesters("tester"))

	t.Run("a signed transaction grants its store product, and a retry replays the grant", func(t *testing.T) {
		jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "1001", AppAccountToken: server.AppAccountToken("p1")})
		r := se.redeem(t, "p1", appleJWS(jws))
		if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
			t.Fatalf("first redemption: %s", r)
		}
		first := r.receipt(t)
		if first.Result != "granted" || len(first.Redemptions) != 1 {
			t.Fatalf("first redemption: %s", r.body)
		}
		g := first.Redemptions[0]
		if g.Result != "granted" || g.Store != "apple" || g.TransactionID != "1001" || g.ProductID != "com.example.gems100" ||
			g.Quantity != 1 || g.Balances["gems"] != 100 || g.Balances["gold"] != 0 || g.PurchaseID == "" {
			t.Fatalf("grant = %+v", g)
		}
		r = se.redeem(t, "p1", appleJWS(jws))
		if r.status != http.StatusOK || r.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry: %s (replayed %q)", r, r.header.Get("Idempotent-Replayed"))
		}
		again := r.receipt(t)
		if again.Result != "receipt_already_redeemed" || len(again.Redemptions) != 1 ||
			again.Redemptions[0].Result != "receipt_already_redeemed" || again.Redemptions[0].PurchaseID != g.PurchaseID ||
			again.Redemptions[0].Balances["gems"] != 100 {
			t.Fatalf("retry body: %s", r.body)
		}
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("wallet = %v, want 100 gems", w)
		}
		ps := se.storePurchases(t, "p1")
		if len(ps) != 1 || ps[0].TransactionID != "1001" || ps[0].Environment != "production" || ps[0].RevokedAt != nil {
			t.Fatalf("store purchases = %+v", ps)
		}
		if k := se.ledgerKinds(t, "p1"); strings.Join(k, " ") != "store_purchase" {
			t.Fatalf("ledger kinds = %v", k)
		}
	})

	t.Run("a transaction whose account token is the player id is accepted", func(t *testing.T) {
		const player = "6f1c1b9e-8a64-4f4b-9d0e-3d2f8d7c1a01"
		jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.sword", AppAccountToken: player})
		if r := se.redeem(t, player, appleJWS(jws)); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if items := se.items(t, player); items["sword"] != 1 {
			t.Fatalf("items = %v", items)
		}
	})

	t.Run("a sandbox transaction is accepted from a listed tester", func(t *testing.T) {
		jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", Environment: "Sandbox"})
		r := se.redeem(t, "tester", appleJWS(jws))
		if r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if ps := se.storePurchases(t, "tester"); len(ps) != 1 || ps[0].Environment != "sandbox" {
			t.Fatalf("store purchases = %+v", ps)
		}
	})

	otherCA, err := fakestore.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	good := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100"})
	parts := strings.Split(good, ".")
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	payload = bytes.Replace(payload, []byte(`"quantity":1`), []byte(`"quantity":9`), 1)
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(payload) + "." + parts[2]
	foreign, err := otherCA.MintTransaction(fakestore.TransactionClaims{BundleID: testBundle, ProductID: "com.example.gems100", Environment: "Production"})
	if err != nil {
		t.Fatal(err)
	}
	rejections := []struct {
		name, reason string
		jws          string
	}{
		{"a transaction for another app is refused", "bundle",
			se.mint(t, fakestore.TransactionClaims{BundleID: "com.other.app", ProductID: "com.example.gems100"})},
		{"a sandbox transaction is refused from a player who is not a tester", "environment",
			se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", Environment: "Sandbox"})},
		{"an Xcode transaction is refused in production", "environment",
			se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", Environment: "Xcode"})},
		{"a product the catalog does not sell is refused", "product",
			se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.unknown"})},
		{"a transaction made for another player's account is refused", "account",
			se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", AppAccountToken: server.AppAccountToken("someone-else")})},
		{"a refunded transaction is refused", "state",
			se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", RevocationDate: time.Now()})},
		{"a transaction signed by another CA is refused", "chain", foreign},
		{"a tampered transaction is refused", "signature", tampered},
		{"a truncated transaction is refused", "format", good[:len(good)/2]},
		{"garbage is refused", "format", "not a JWS at all"},
	}
	for i, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			player := fmt.Sprintf("rejected-%d", i)
			r := se.redeem(t, player, appleJWS(tc.jws))
			p := assertProblem(t, r, http.StatusUnprocessableEntity, "receipt_invalid")
			if p["reason"] != tc.reason {
				t.Errorf("reason = %v, want %s: %s", p["reason"], tc.reason, r.body)
			}
			se.assertNothingRecorded(t, player)
		})
	}
	se.assertAuditOK(t)
}

// Fifty concurrent redemptions of one transaction: one grant, whoever asks.
func TestConcurrentRedemptionsGrantOnce(t *testing.T) {
	t.Parallel()
	t.Run("by one player: one 201, every other answer a 200 replay", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", AppAccountToken: server.AppAccountToken("p1")})
		statuses := redeemConcurrently(t, se, jws, func(int) string { return "p1" })
		if statuses["p1 201"] != 1 || statuses["p1 200"] != 49 || len(statuses) != 2 {
			t.Fatalf("statuses = %v, want one 201 and 49 200s", statuses)
		}
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("wallet = %v, want 100 gems", w)
		}
		if ps := se.storePurchases(t, "p1"); len(ps) != 1 {
			t.Fatalf("store purchases = %+v", ps)
		}
		if k := se.ledgerKinds(t, "p1"); len(k) != 1 {
			t.Fatalf("ledger kinds = %v, want one store_purchase", k)
		}
		se.assertAuditOK(t)
	})
	t.Run("by two players: one grant, the other player gets 409 every time", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100"})
		statuses := redeemConcurrently(t, se, jws, func(i int) string { return []string{"alice", "bob"}[i%2] })
		winner, loser := "alice", "bob"
		if statuses["bob 201"] == 1 {
			winner, loser = loser, winner
		}
		if statuses[winner+" 201"] != 1 || statuses[winner+" 200"] != 24 || statuses[loser+" 409"] != 25 || len(statuses) != 3 {
			t.Fatalf("statuses = %v, want for the winner one 201 and 24 200s, for the other 25 409s", statuses)
		}
		if w := se.wallet(t, winner); w["gems"] != 100 {
			t.Fatalf("winner's wallet = %v", w)
		}
		se.assertNothingRecorded(t, loser)
		se.assertAuditOK(t)
	})
}

// redeemConcurrently posts jws 50 times at once, as player(i), and counts
// "player status" answers; 409s must be receipt_owned_by_another_player.
func redeemConcurrently(t *testing.T, se *storeEnv, jws string, player func(int) string) map[string]int {
	t.Helper()
	var mu sync.Mutex
	statuses := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			p := player(i)
			r, err := se.send(receiptRequest(p, appleJWS(jws)))
			if err != nil {
				t.Error(err)
				return
			}
			if r.status == http.StatusConflict && !strings.Contains(string(r.body), `"receipt_owned_by_another_player"`) {
				t.Errorf("409 body: %s", r.body)
			}
			if r.status >= 500 {
				t.Errorf("%s", r)
			}
			mu.Lock()
			statuses[fmt.Sprintf("%s %d", p, r.status)]++
			mu.Unlock()
		}()
	}
	// The audit holds while the redemptions run, not only after.
	done := make(chan struct{})
	audited := make(chan struct{})
	go func() {
		defer close(audited)
		for {
			select {
			case <-done:
				return
			default:
			}
			r, err := se.send(newRequest(http.MethodGet, "/admin/v1/audit", nil, "Authorization", bearer(adminToken)))
			if err != nil || r.status != http.StatusOK || !strings.Contains(string(r.body), `"ok":true`) {
				t.Errorf("audit during the redemptions: %v %s", err, r)
				return
			}
		}
	}()
	close(start)
	wg.Wait()
	close(done)
	<-audited
	return statuses
}

func TestAppleAppReceipt(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t, withTesters("tester"))

	t.Run("a receipt's transactions are all granted, and a retry replays them", func(t *testing.T) {
		se.legacy.Answer(receiptAnswer("Production", inApp("com.example.gems100", "2001"), inApp("com.example.sword", "2002")), nil)
		r := se.redeem(t, "p1", appleReceipt(someReceipt))
		if r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		rr := r.receipt(t)
		if rr.Result != "granted" || len(rr.Redemptions) != 2 || rr.Redemptions[0].TransactionID != "2001" || rr.Redemptions[1].TransactionID != "2002" ||
			rr.Redemptions[0].Result != "granted" || rr.Redemptions[1].Result != "granted" {
			t.Fatalf("body: %s", r.body)
		}
		if w, items := se.wallet(t, "p1"), se.items(t, "p1"); w["gems"] != 100 || items["sword"] != 1 {
			t.Fatalf("wallet %v, items %v", w, items)
		}
		if calls := se.legacy.Calls(); calls != "/prod" {
			t.Errorf("verifyReceipt calls = %s", calls)
		}
		r = se.redeem(t, "p1", appleReceipt(someReceipt))
		rr = r.receipt(t)
		if r.status != http.StatusOK || r.header.Get("Idempotent-Replayed") != "true" || rr.Result != "receipt_already_redeemed" ||
			rr.Redemptions[0].Result != "receipt_already_redeemed" || rr.Redemptions[1].Result != "receipt_already_redeemed" {
			t.Fatalf("retry: %s", r)
		}
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("wallet after retry = %v", w)
		}
	})

	t.Run("a sandbox receipt (21007) falls back to the sandbox for a tester", func(t *testing.T) {
		se.legacy.Answer(statusAnswer(21007), receiptAnswer("Sandbox", inApp("com.example.gems100", "2101")))
		r := se.redeem(t, "tester", appleReceipt(someReceipt))
		if r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if calls := se.legacy.Calls(); calls != "/prod,/sandbox" {
			t.Errorf("verifyReceipt calls = %s, want /prod,/sandbox", calls)
		}
		if ps := se.storePurchases(t, "tester"); len(ps) != 1 || ps[0].Environment != "sandbox" || ps[0].TransactionID != "2101" {
			t.Fatalf("store purchases = %+v", ps)
		}
	})

	t.Run("a sandbox receipt (21007) from a player who is not a tester is refused without asking the sandbox", func(t *testing.T) {
		se.legacy.Answer(statusAnswer(21007), receiptAnswer("Sandbox", inApp("com.example.gems100", "2201")))
		r := se.redeem(t, "p-21007", appleReceipt(someReceipt))
		if p := assertProblem(t, r, http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "environment" {
			t.Errorf("reason = %v", p["reason"])
		}
		if calls := se.legacy.Calls(); calls != "/prod" {
			t.Errorf("verifyReceipt calls = %s, want /prod only", calls)
		}
		se.assertNothingRecorded(t, "p-21007")
	})

	t.Run("a receipt Apple cannot authenticate (21003) is refused", func(t *testing.T) {
		se.legacy.Answer(statusAnswer(21003), nil)
		r := se.redeem(t, "p-21003", appleReceipt(someReceipt))
		if p := assertProblem(t, r, http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "signature" {
			t.Errorf("reason = %v", p["reason"])
		}
		se.assertNothingRecorded(t, "p-21003")
	})

	t.Run("a 5xx from verifyReceipt is store_unavailable and records nothing", func(t *testing.T) {
		se.legacy.Answer(httpAnswer(http.StatusInternalServerError), nil)
		r := se.redeem(t, "p-5xx", appleReceipt(someReceipt))
		assertProblem(t, r, http.StatusServiceUnavailable, "store_unavailable")
		if ra := r.header.Get("Retry-After"); ra != "5" {
			t.Errorf("Retry-After = %q, want 5", ra)
		}
		se.assertNothingRecorded(t, "p-5xx")
	})

	t.Run("Apple's own retry status (21005) is store_unavailable", func(t *testing.T) {
		se.legacy.Answer(statusAnswer(21005), nil)
		assertProblem(t, se.redeem(t, "p-21005", appleReceipt(someReceipt)), http.StatusServiceUnavailable, "store_unavailable")
		se.assertNothingRecorded(t, "p-21005")
	})

	t.Run("our shared secret refused (21004) is a 500 store_misconfigured", func(t *testing.T) {
		se.legacy.Answer(statusAnswer(21004), nil)
		assertProblem(t, se.redeem(t, "p-21004", appleReceipt(someReceipt)), http.StatusInternalServerError, "store_misconfigured")
		se.assertNothingRecorded(t, "p-21004")
	})

	t.Run("entries that cannot be granted are reported one by one while the others are granted", func(t *testing.T) {
		se.legacy.Answer(receiptAnswer("Production", inApp("com.example.unknown", "2301"), inApp("com.example.gems100", "2302")), nil)
		r := se.redeem(t, "p-mixed", appleReceipt(someReceipt))
		rr := r.receipt(t)
		if r.status != http.StatusCreated || rr.Result != "granted" || len(rr.Redemptions) != 2 ||
			rr.Redemptions[0].Result != "receipt_invalid" || rr.Redemptions[0].Reason != "product" || rr.Redemptions[0].TransactionID != "2301" ||
			rr.Redemptions[1].Result != "granted" || rr.Redemptions[1].TransactionID != "2302" {
			t.Fatalf("redeem: %s", r)
		}
		if ps := se.storePurchases(t, "p-mixed"); len(ps) != 1 || ps[0].TransactionID != "2302" {
			t.Fatalf("store purchases = %+v", ps)
		}
	})

	t.Run("a receipt whose every entry fails answers with the first failure and lists them all", func(t *testing.T) {
		se.legacy.Answer(receiptAnswer("Production", inApp("com.example.gems100", "2001"), inApp("com.example.unknown", "2401")), nil)
		r := se.redeem(t, "p-thief", appleReceipt(someReceipt))
		p := assertProblem(t, r, http.StatusConflict, "receipt_owned_by_another_player")
		list, _ := p["redemptions"].([]any)
		if len(list) != 2 || !strings.Contains(string(r.body), `"reason":"product"`) {
			t.Fatalf("redemptions: %s", r.body)
		}
		se.assertNothingRecorded(t, "p-thief")
	})

	t.Run("a receipt with no in-app purchase is receipt_invalid state", func(t *testing.T) {
		se.legacy.Answer(receiptAnswer("Production"), nil)
		if p := assertProblem(t, se.redeem(t, "p-empty", appleReceipt(someReceipt)), http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "state" {
			t.Errorf("reason = %v", p["reason"])
		}
	})

	t.Run("a receipt that is not base64 is refused before Apple is asked", func(t *testing.T) {
		se.legacy.Answer(nil, nil)
		if p := assertProblem(t, se.redeem(t, "p-b64", appleReceipt("%%%")), http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "format" {
			t.Errorf("reason = %v", p["reason"])
		}
		if calls := se.legacy.Calls(); calls != "" {
			t.Errorf("verifyReceipt was called: %s", calls)
		}
	})
	se.assertAuditOK(t)
}

func TestGooglePlayPurchase(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t, withTesters("tester"))

	t.Run("a consumable product is granted and consumed", func(t *testing.T) {
		se.play.AddProduct("tok-gems", playProduct("com.example.gems100", "GPA.1", 0))
		r := se.redeem(t, "p1", googlePurchase("com.example.gems100", "tok-gems"))
		rr := r.receipt(t)
		if r.status != http.StatusCreated || rr.Redemptions[0].TransactionID != "GPA.1" || rr.Redemptions[0].Store != "google" {
			t.Fatalf("redeem: %s", r)
		}
		if w, items := se.wallet(t, "p1"), se.items(t, "p1"); w["gems"] != 100 || items["potion"] != 2 {
			t.Fatalf("wallet %v, items %v", w, items)
		}
		if p := se.play.Product("tok-gems"); p.ConsumptionState != 1 || p.AcknowledgementState != 1 {
			t.Fatalf("Play purchase after the grant: consumed %d, acknowledged %d", p.ConsumptionState, p.AcknowledgementState)
		}
		if ps := se.storePurchases(t, "p1"); len(ps) != 1 || !ps[0].Consumable || ps[0].AcknowledgedAt == nil {
			t.Fatalf("store purchases = %+v", ps)
		}
		r = se.redeem(t, "p1", googlePurchase("com.example.gems100", "tok-gems"))
		if r.status != http.StatusOK || r.receipt(t).Result != "receipt_already_redeemed" {
			t.Fatalf("retry: %s", r)
		}
	})

	t.Run("a durable product is acknowledged, not consumed", func(t *testing.T) {
		se.play.AddProduct("tok-sword", playProduct("com.example.sword", "GPA.2", 0))
		if r := se.redeem(t, "p2", googlePurchase("com.example.sword", "tok-sword")); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if p := se.play.Product("tok-sword"); p.ConsumptionState != 0 || p.AcknowledgementState != 1 {
			t.Fatalf("Play purchase: consumed %d, acknowledged %d", p.ConsumptionState, p.AcknowledgementState)
		}
		if ps := se.storePurchases(t, "p2"); len(ps) != 1 || ps[0].Consumable || ps[0].AcknowledgedAt == nil {
			t.Fatalf("store purchases = %+v", ps)
		}
	})

	t.Run("a subscription token is verified as a subscription and acknowledged", func(t *testing.T) {
		expiry := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
		se.play.AddSubscription("tok-vip", &androidpublisher.SubscriptionPurchaseV2{
			SubscriptionState: "SUBSCRIPTION_STATE_ACTIVE", LatestOrderId: "GPA.3", StartTime: time.Now().Add(-time.Minute).UTC().Format(time.RFC3339),
			AcknowledgementState: "ACKNOWLEDGEMENT_STATE_PENDING",
			LineItems:            []*androidpublisher.SubscriptionPurchaseLineItem{{ProductId: "com.example.vip", ExpiryTime: expiry.Format(time.RFC3339)}},
		})
		r := se.redeem(t, "p3", googlePurchase("com.example.vip", "tok-vip"))
		rr := r.receipt(t)
		if r.status != http.StatusCreated || rr.Redemptions[0].ExpiresAt == nil || !rr.Redemptions[0].ExpiresAt.Equal(expiry) {
			t.Fatalf("redeem: %s", r)
		}
		if items := se.items(t, "p3"); items["vip"] != 1 {
			t.Fatalf("items = %v", items)
		}
		acked := false
		for _, c := range se.play.Calls() {
			acked = acked || strings.HasSuffix(c, "/purchases/subscriptions/com.example.vip/tokens/tok-vip:acknowledge")
		}
		if !acked {
			t.Fatalf("no subscription acknowledgement in %v", se.play.Calls())
		}
	})

	t.Run("an acknowledgement lost after the grant committed is made by the store worker", func(t *testing.T) {
		se.play.AddProduct("tok-crash", playProduct("com.example.gems100", "GPA.4", 0))
		se.api.failAcks.Store(true)
		r := se.redeem(t, "p4", googlePurchase("com.example.gems100", "tok-crash"))
		se.api.failAcks.Store(false)
		if r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if p := se.play.Product("tok-crash"); p.ConsumptionState != 0 || p.AcknowledgementState != 0 {
			t.Fatalf("Play purchase before the worker: consumed %d, acknowledged %d", p.ConsumptionState, p.AcknowledgementState)
		}
		if ps := se.storePurchases(t, "p4"); len(ps) != 1 || ps[0].AcknowledgedAt != nil {
			t.Fatalf("store purchases before the worker = %+v", ps)
		}
		se.runWorker(t)
		if p := se.play.Product("tok-crash"); p.ConsumptionState != 1 || p.AcknowledgementState != 1 {
			t.Fatalf("Play purchase after the worker: consumed %d, acknowledged %d", p.ConsumptionState, p.AcknowledgementState)
		}
		if ps := se.storePurchases(t, "p4"); len(ps) != 1 || ps[0].AcknowledgedAt == nil {
			t.Fatalf("store purchases after the worker = %+v", ps)
		}
		calls := se.api.acks.Load()
		se.runWorker(t)
		if n := se.api.acks.Load(); n != calls {
			t.Fatalf("the worker acknowledged again: %d calls, then %d", calls, n)
		}
		if w := se.wallet(t, "p4"); w["gems"] != 100 {
			t.Fatalf("wallet = %v", w)
		}
	})

	rejections := []struct {
		name     string
		purchase *androidpublisher.ProductPurchase
		status   int
		code     string
		reason   string
	}{
		{"a pending purchase is refused", playProduct("com.example.gems100", "GPA.10", 2), 422, "receipt_invalid", "state"},
		{"a cancelled purchase is refused", playProduct("com.example.gems100", "GPA.11", 1), 422, "receipt_invalid", "state"},
		{"a purchase for another player's account is refused", func() *androidpublisher.ProductPurchase {
			p := playProduct("com.example.gems100", "GPA.12", 0)
			p.ObfuscatedExternalAccountId = server.AppAccountToken("someone-else")
			return p
		}(), 422, "receipt_invalid", "account"},
		{"a license-tester purchase is refused from a player who is not a tester", func() *androidpublisher.ProductPurchase {
			p := playProduct("com.example.gems100", "GPA.13", 0)
			p.PurchaseType = new(int64)
			return p
		}(), 422, "receipt_invalid", "environment"},
		{"a product the catalog does not sell is refused", playProduct("com.example.unknown", "GPA.14", 0), 422, "receipt_invalid", "product"},
	}
	for i, tc := range rejections {
		t.Run(tc.name, func(t *testing.T) {
			token, player := fmt.Sprintf("tok-bad-%d", i), fmt.Sprintf("google-rejected-%d", i)
			se.play.AddProduct(token, tc.purchase)
			r := se.redeem(t, player, googlePurchase(tc.purchase.ProductId, token))
			if p := assertProblem(t, r, tc.status, tc.code); p["reason"] != tc.reason {
				t.Errorf("reason = %v, want %s", p["reason"], tc.reason)
			}
			se.assertNothingRecorded(t, player)
		})
	}

	t.Run("an unknown token is refused", func(t *testing.T) {
		r := se.redeem(t, "p-unknown", googlePurchase("com.example.gems100", "tok-never-issued"))
		if p := assertProblem(t, r, http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "signature" {
			t.Errorf("reason = %v", p["reason"])
		}
	})

	t.Run("a 5xx from Play is store_unavailable and records nothing", func(t *testing.T) {
		se.play.AddProduct("tok-5xx", playProduct("com.example.gems100", "GPA.20", 0))
		se.play.FailWith(http.StatusServiceUnavailable)
		r := se.redeem(t, "p-play-5xx", googlePurchase("com.example.gems100", "tok-5xx"))
		se.play.FailWith(0)
		assertProblem(t, r, http.StatusServiceUnavailable, "store_unavailable")
		se.assertNothingRecorded(t, "p-play-5xx")
		// Nothing was recorded, so the retry grants.
		if r := se.redeem(t, "p-play-5xx", googlePurchase("com.example.gems100", "tok-5xx")); r.status != http.StatusCreated {
			t.Fatalf("retry after the outage: %s", r)
		}
	})
	se.assertAuditOK(t)
}

func TestReceiptRequestErrors(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	bodies := []struct{ name, body, detail string }{
		{"an empty body is refused", ``, "JSON object"},
		{"a missing store is refused", `{"signed_transaction":"x"}`, `"store" is required`},
		{"an unknown store is refused", `{"store":"amazon","receipt":"x"}`, `"apple" or "google"`},
		{"an unknown field is refused", `{"store":"apple","signed_transaction":"x","player_id":"p2"}`, `"player_id"`},
		{"an Apple body without a transaction or receipt is refused", `{"store":"apple"}`, "signed_transaction"},
		{"an Apple body with both forms is refused", `{"store":"apple","signed_transaction":"x","receipt":"y"}`, "not both"},
		{"an Apple body with Google fields is refused", `{"store":"apple","signed_transaction":"x","purchase_token":"t"}`, "purchase_token"},
		{"a Google body without a token is refused", `{"store":"google","product_id":"p"}`, `"purchase_token" is required`},
		{"a Google body without a product is refused", `{"store":"google","purchase_token":"t"}`, `"product_id" is required`},
		{"a Google body with an Apple field is refused", `{"store":"google","product_id":"p","purchase_token":"t","receipt":"r"}`, "receipt"},
		{"an empty transaction is refused", `{"store":"apple","signed_transaction":""}`, "must not be empty"},
		{"a numeric token is refused", `{"store":"google","product_id":"p","purchase_token":7}`, `"purchase_token" must be a string`},
		{"trailing data is refused", `{"store":"apple","signed_transaction":"x"}{}`, "after the JSON object"},
		{"a field name in another case is refused", `{"Store":"apple","signed_transaction":"x"}`, `"Store"`},
		{"a repeated field is refused", `{"store":"google","store":"apple","signed_transaction":"x"}`, "more than once"},
	}
	var cases []errorCase
	for _, b := range bodies {
		cases = append(cases, errorCase{name: b.name, status: 400, code: "invalid_request", detail: b.detail,
			send: func(t *testing.T) response { return se.redeem(t, "p-body", []byte(b.body)) }})
	}
	cases = append(cases,
		errorCase{name: "a receipt without a player token is unauthenticated", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response {
				return se.do(t, newRequest(http.MethodPost, "/v1/receipts", []byte(`{"store":"apple","signed_transaction":"x"}`), "Content-Type", "application/json"))
			}},
		errorCase{name: "a form-encoded receipt is refused", status: 415, code: "unsupported_media_type",
			send: func(t *testing.T) response {
				return se.do(t, newRequest(http.MethodPost, "/v1/receipts", []byte(`store=apple`),
					"Authorization", bearer(playerToken("p1")), "Content-Type", "application/x-www-form-urlencoded"))
			}},
		errorCase{name: "a receipt over 1 MiB is refused", status: 413, code: "request_too_large",
			send: func(t *testing.T) response {
				return se.redeem(t, "p1", appleReceipt(strings.Repeat("A", 1<<20)))
			}},
	)
	runErrorCases(t, cases)
	se.assertNothingRecorded(t, "p-body")
}

func TestDisabledStores(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t, withStores(func(s *server.Stores) { *s = server.Stores{} }))
	jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100"})
	cases := []errorCase{
		{name: "a signed transaction is refused when Apple is not enabled", status: 404, code: "store_disabled", detail: "COINOP_STORES",
			send: func(t *testing.T) response { return se.redeem(t, "p1", appleJWS(jws)) }},
		{name: "an app receipt is refused when Apple is not enabled", status: 404, code: "store_disabled",
			send: func(t *testing.T) response { return se.redeem(t, "p1", appleReceipt(someReceipt)) }},
		{name: "a Google purchase is refused when Google is not enabled", status: 404, code: "store_disabled",
			send: func(t *testing.T) response { return se.redeem(t, "p1", googlePurchase("com.example.gems100", "t")) }},
		{name: "an App Store notification is refused when Apple is not enabled", status: 404, code: "store_disabled",
			send: func(t *testing.T) response { return se.postApple(t, []byte(`{"signedPayload":"x"}`)) }},
		{name: "a Google notification is refused when Google is not enabled", status: 404, code: "store_disabled",
			send: func(t *testing.T) response { return se.postGoogle(t, "", []byte(`{}`)) }},
	}
	runErrorCases(t, cases)
	se.assertNothingRecorded(t, "p1")
}

// The appAccountToken of a player is a documented UUIDv5, which games
// compute on their side: this pins it.
func TestAppAccountTokenIsUUIDv5OfThePlayerURN(t *testing.T) {
	if got := server.AppAccountToken("demo-player"); got != appAccountTokenOfDemoPlayer {
		t.Fatalf("AppAccountToken(demo-player) = %s, want %s", got, appAccountTokenOfDemoPlayer)
	}
	if a, b := server.AppAccountToken("p1"), server.AppAccountToken("p2"); a == b || len(a) != 36 || a[14] != '5' {
		t.Fatalf("tokens %s and %s", a, b)
	}
}

// appAccountTokenOfDemoPlayer was computed outside Go:
// python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, 'urn:coinop:player:demo-player'))"
const appAccountTokenOfDemoPlayer = "d39a0d2f-0176-529a-9c20-e48fd7b7eeaa"
