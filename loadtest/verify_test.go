package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"
)

// Ledger builders for CheckPlayer tests, in the server's wire shape.

func grantTx(id int64, ref, pid string, gold int64) LedgerTransaction {
	return LedgerTransaction{ID: id, Kind: KindAdminGrant, Reference: ref, Metadata: json.RawMessage(`{"reason":"loadtest funding"}`),
		Entries: move(pid, "admin_grants", "currency", "gold", gold)}
}

func purchaseTx(id int64, ref, pid, item string, qty, unit int64, key string) LedgerTransaction {
	meta := map[string]any{"item_id": item, "quantity": qty}
	if key != "" {
		meta["idempotency_key"] = key
	}
	m, _ := json.Marshal(meta)
	entries := append(move(pid, "purchases", "currency", "gold", -unit*qty), move(pid, "purchases", "item", item, qty)...)
	return LedgerTransaction{ID: id, Kind: KindPurchase, Reference: ref, Metadata: m, Entries: entries}
}

// cleanPlayer is a consistent history: one grant, two purchases, all seen.
func cleanPlayer() (PlayerRecord, []LedgerTransaction, map[string]int64, map[string]int64) {
	obs := NewObserved()
	obs.Grant("p1", "g1", "k-fund", GrantRequest{Currencies: map[string]int64{"gold": 1000}})
	buy := func(id, key string, qty int64) {
		req := PurchaseRequest{ItemID: "potion", Quantity: qty, Price: Price{"gold", 10}}
		obs.Purchase("p1", key, req, &PurchaseResult{PurchaseID: id})
	}
	buy("pur-1", "k1", 2)
	buy("pur-2", "k2", 1)
	ledger := []LedgerTransaction{ // newest first, as the API pages them
		purchaseTx(3, "pur-2", "p1", "potion", 1, 10, "k2"),
		purchaseTx(2, "pur-1", "p1", "potion", 2, 10, "k1"),
		grantTx(1, "g1", "p1", 1000),
	}
	return obs.Player("p1"), ledger, map[string]int64{"gold": 970, "gems": 0}, map[string]int64{"potion": 3}
}

func kinds(probs []Problem) string {
	var ks []string
	for _, p := range probs {
		ks = append(ks, p.Kind)
	}
	return strings.Join(ks, ",")
}

func TestCheckPlayerFindsNothingInAConsistentHistory(t *testing.T) {
	seen, ledger, wallet, items := cleanPlayer()
	probs, unconfirmed := CheckPlayer("p1", seen, ledger, 0, wallet, items)
	if len(probs) != 0 || unconfirmed != 0 {
		t.Fatalf("problems %v, unconfirmed %d", probs, unconfirmed)
	}
}

func TestCheckPlayerFindsEachKindOfInconsistency(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(seen *PlayerRecord, ledger *[]LedgerTransaction, wallet, items map[string]int64)
		want   string // comma-separated problem kinds, in order
	}{
		{"a purchase answered 201 but missing from the ledger is lost",
			func(_ *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				*l = (*l)[1:] // drop pur-2
				w["gold"], i["potion"] = 980, 2
			}, "lost"},
		{"a grant answered 201 but missing from the ledger is lost",
			func(s *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				s.Grants["g2"] = SeenGrant{ID: "g2", Currencies: map[string]int64{"gold": 5}}
			}, "lost"},
		{"a purchase recorded twice under one reference is duplicated",
			func(_ *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				*l = append([]LedgerTransaction{purchaseTx(4, "pur-2", "p1", "potion", 1, 10, "")}, *l...)
				w["gold"], i["potion"] = 960, 4
			}, "duplicated"},
		{"two ledger purchases under one idempotency key are duplicated",
			func(_ *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				*l = append([]LedgerTransaction{purchaseTx(4, "pur-9", "p1", "potion", 1, 10, "k2")}, *l...)
				w["gold"], i["potion"] = 960, 4
			}, "duplicated,unexpected"},
		{"one key answered with two purchase ids is duplicated",
			func(s *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				s.Keys["k2"]["pur-9"] = true
			}, "duplicated"},
		{"a ledger purchase the tool never saw succeed is unexpected",
			func(_ *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				*l = append([]LedgerTransaction{purchaseTx(4, "pur-7", "p1", "potion", 1, 10, "k-other")}, *l...)
				w["gold"], i["potion"] = 960, 4
			}, "unexpected"},
		{"a purchase charging another amount is a mismatch",
			func(_ *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				(*l)[0] = purchaseTx(3, "pur-2", "p1", "potion", 1, 11, "k2")
				w["gold"] = 969
			}, "mismatch"},
		{"a holding that dips below zero is a negative balance",
			func(s *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				// The grant arrives after the purchases it paid for.
				(*l)[2] = grantTx(9, "g1", "p1", 1000)
			}, "negative_balance"},
		{"entries that do not sum to zero are unbalanced",
			func(_ *PlayerRecord, l *[]LedgerTransaction, w, i map[string]int64) {
				(*l)[0].Entries = (*l)[0].Entries[:3] // the system side of the item is missing
			}, "unbalanced"},
		{"a wallet that disagrees with the ledger is a wallet mismatch",
			func(_ *PlayerRecord, _ *[]LedgerTransaction, w, _ map[string]int64) { w["gold"] = 1000 },
			"wallet_mismatch"},
		{"a negative wallet balance is reported as such",
			func(_ *PlayerRecord, _ *[]LedgerTransaction, w, _ map[string]int64) { w["gems"] = -1 },
			"negative_balance,wallet_mismatch"},
		{"entitlements that disagree with the ledger are a cache mismatch",
			func(_ *PlayerRecord, _ *[]LedgerTransaction, _, i map[string]int64) { delete(i, "potion") },
			"entitlements_mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			seen, ledger, wallet, items := cleanPlayer()
			c.mutate(&seen, &ledger, wallet, items)
			probs, _ := CheckPlayer("p1", seen, ledger, 0, wallet, items)
			if got := kinds(probs); got != c.want {
				t.Fatalf("problems %q, want %q: %v", got, c.want, probs)
			}
			for _, p := range probs {
				if p.PlayerID != "p1" || p.Detail == "" {
					t.Errorf("problem without player or detail: %+v", p)
				}
			}
		})
	}
}

func TestUnansweredRequestsExplainLedgerEntriesWithoutFailing(t *testing.T) {
	seen, ledger, wallet, items := cleanPlayer()
	// Two purchases timed out; the server committed one of them. One is
	// found by its key in the metadata, the other (no key recorded) by item
	// and quantity.
	seen.Unknown["k3"] = Attempt{Kind: KindPurchase, Key: "k3", ItemID: "potion", Quantity: 1}
	seen.Unknown["k4"] = Attempt{Kind: KindPurchase, Key: "k4", ItemID: "potion", Quantity: 4}
	ledger = append([]LedgerTransaction{
		purchaseTx(5, "pur-5", "p1", "potion", 4, 10, ""),
		purchaseTx(4, "pur-4", "p1", "potion", 1, 10, "k3"),
	}, ledger...)
	wallet["gold"], items["potion"] = 920, 8
	probs, unconfirmed := CheckPlayer("p1", seen, ledger, 0, wallet, items)
	if len(probs) != 0 || unconfirmed != 2 {
		t.Fatalf("problems %v, unconfirmed %d; want none and 2", probs, unconfirmed)
	}
	// An unanswered attempt explains one transaction, not two.
	ledger = append([]LedgerTransaction{purchaseTx(6, "pur-6", "p1", "potion", 4, 10, "")}, ledger...)
	wallet["gold"], items["potion"] = 880, 12
	probs, _ = CheckPlayer("p1", seen, ledger, 0, wallet, items)
	if kinds(probs) != ProblemUnexpected {
		t.Fatalf("problems %v, want one unexpected", probs)
	}
}

func TestHistoryBeforeTheRunNeedsNoExplanation(t *testing.T) {
	seen, ledger, wallet, items := cleanPlayer()
	old := purchaseTx(0, "pur-old", "p1", "potion", 1, 0, "")
	old.Entries = old.Entries[2:] // a free potion from long ago
	ledger = append(ledger, old)
	items["potion"] = 4
	if probs, _ := CheckPlayer("p1", seen, ledger, 0, wallet, items); len(probs) != 0 {
		// ID 0 is at the baseline of 0: already history.
		t.Fatalf("problems %v", probs)
	}
	ledger[len(ledger)-1].ID = -1
	if probs, _ := CheckPlayer("p1", seen, ledger, -5, wallet, items); kinds(probs) != ProblemUnexpected {
		t.Fatalf("after the baseline the transaction must be explained: %v", probs)
	}
}

func TestAuditFailuresAreProblems(t *testing.T) {
	probs := AuditProblems(&Audit{OK: false, Checks: []AuditCheck{
		{Name: "balances_match_ledger", OK: false, Detail: json.RawMessage(`{"players":["p1"]}`)},
		{Name: "transactions_balanced", OK: true},
	}})
	if len(probs) != 1 || !strings.Contains(probs[0].Detail, "balances_match_ledger") || !strings.Contains(probs[0].Detail, "p1") {
		t.Fatalf("problems %v", probs)
	}
	if probs := AuditProblems(&Audit{OK: false}); len(probs) != 1 {
		t.Fatalf("ok=false without failed checks must still fail: %v", probs)
	}
	if probs := AuditProblems(&Audit{OK: true, Checks: []AuditCheck{{Name: "x", OK: true}}}); len(probs) != 0 {
		t.Fatalf("problems %v", probs)
	}
}

// runAgainst sets up, runs and verifies a short load phase against a fake.
func runAgainst(t *testing.T, f *fakeCoinop, mutate func(*Config)) (*Verification, *Result) {
	t.Helper()
	return runAgainstArgs(t, f, nil, mutate)
}

// runAgainstArgs is runAgainst with more flags, which override the defaults.
func runAgainstArgs(t *testing.T, f *fakeCoinop, extra []string, mutate func(*Config)) (*Verification, *Result) {
	t.Helper()
	url := f.start(t)
	cfg, err := ParseArgs(append([]string{
		"--url", url, "--rate", "40", "--duration", "1s", "--players", "4",
		"--jwt-secret", string(f.secret), "--admin-token", f.adminToken, "--server-token", f.serverToken,
		"--mix", "purchase=100", "--seed", "7",
	}, extra...), func(string) string { return "" }, &strings.Builder{})
	if err != nil {
		t.Fatal(err)
	}
	if mutate != nil {
		mutate(&cfg)
	}
	c := NewClient(cfg.URL, 16, cfg.Timeout, cfg.AdminToken, cfg.ServerToken)
	defer c.Close()
	obs := NewObserved()
	ctx := context.Background()
	fx, err := Setup(ctx, cfg, c, obs, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, cfg, fx, c, obs, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(ctx, c, fx, obs)
	if err != nil {
		t.Fatal(err)
	}
	return v, res
}

func TestVerifyPassesAgainstAnHonestServer(t *testing.T) {
	v, res := runAgainst(t, newFakeCoinop(), nil)
	if !v.OK {
		t.Fatalf("verification failed against an honest server: %v", v.Problems)
	}
	if v.PurchasesObserved == 0 || v.GrantsObserved != 4 || v.LedgerTransactions != v.PurchasesObserved+4 {
		t.Fatalf("observed %d purchases, %d grants, %d ledger transactions", v.PurchasesObserved, v.GrantsObserved, v.LedgerTransactions)
	}
	if v.Audit == nil || !v.Audit.OK {
		t.Fatalf("audit %+v", v.Audit)
	}
	if e := res.Stats[EndpointPurchase]; e == nil || e.ErrorCount() != 0 {
		t.Fatalf("purchase stats %+v", e)
	}
}

func TestVerifyCatchesALostGrantAndADuplicatedPurchase(t *testing.T) {
	f := newFakeCoinop()
	f.loseGrant = 2         // one player's funding: 201, never recorded
	f.duplicatePurchase = 3 // recorded twice under one purchase id
	v, _ := runAgainst(t, f, nil)
	if v.OK {
		t.Fatal("verification passed against a server that loses and duplicates")
	}
	if v.Counts[ProblemLost] != 1 || v.Counts[ProblemDuplicated] != 1 {
		t.Fatalf("problem counts %v, want one lost and one duplicated: %v", v.Counts, v.Problems)
	}
	var lost, dup Problem
	for _, p := range v.Problems {
		switch p.Kind {
		case ProblemLost:
			lost = p
		case ProblemDuplicated:
			dup = p
		}
	}
	if !strings.Contains(lost.Detail, "grant grant-2") || !strings.Contains(dup.Detail, "purchase pur-3") {
		t.Fatalf("lost %q, duplicated %q", lost.Detail, dup.Detail)
	}
}

func TestVerifyWaitsOutARateLimiter(t *testing.T) {
	f := newFakeCoinop()
	f.throttleWallet.Store(3) // the load is all purchases, so verification meets these
	v, _ := runAgainst(t, f, nil)
	if !v.OK {
		t.Fatalf("a 429 during verification became a problem: %v", v.Problems)
	}
	if f.throttleWallet.Load() >= 0 {
		t.Fatal("the wallet was never throttled; the test proves nothing")
	}
}

func TestVerifyCatchesALostPurchase(t *testing.T) {
	f := newFakeCoinop()
	f.losePurchase = 2
	v, _ := runAgainst(t, f, nil)
	if v.Counts[ProblemLost] != 1 || len(v.Problems) != 1 {
		t.Fatalf("problems %v", v.Problems)
	}
	if want := "purchase pur-2"; !strings.Contains(v.Problems[0].Detail, want) {
		t.Fatalf("problem %v does not name %s", v.Problems[0], want)
	}
}

func TestLedgerPagingFollowsNextBeforeAndIsBounded(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	c := NewClient(url, 4, 5*time.Second, f.adminToken, "")
	defer c.Close()
	f.mu.Lock()
	for i := range 250 {
		f.recordLocked("p1", KindAdminGrant, fmt.Sprintf("g%d", i), nil, move("p1", "admin_grants", "currency", "gold", 1))
	}
	f.mu.Unlock()
	txs, err := c.Ledger(context.Background(), "p1", 10)
	if err != nil || len(txs) != 250 || txs[0].ID != 250 || txs[249].ID != 1 {
		t.Fatalf("Ledger: %d transactions, err %v", len(txs), err)
	}
	if _, err := c.Ledger(context.Background(), "p1", 2); err == nil {
		t.Fatal("Ledger read past its page bound")
	}
	if id, err := c.LatestLedgerID(context.Background(), "p1"); err != nil || id != 250 {
		t.Fatalf("LatestLedgerID = %d, %v", id, err)
	}
}

// postingMix mixes server postings with purchases, which give the items
// consumptions use up.
var postingMix = []string{"--rate", "150", "--mix", "purchase=35,award=30,spend=20,consume=15"}

func TestVerifyCountsServerPostingsOnceThroughLostAnswers(t *testing.T) {
	f := newFakeCoinop()
	f.failPostings.Store(6) // applied, then answered 503: the tool retries with the same key
	v, res := runAgainstArgs(t, f, postingMix, nil)
	if !v.OK {
		t.Fatalf("verification failed against an honest server: %v", v.Problems)
	}
	if f.failPostings.Load() >= 0 {
		t.Fatal("no posting answer was lost; the test proves nothing")
	}
	f.mu.Lock()
	applied := f.postings[KindAward] + f.postings[KindSpend] + f.postings[KindConsume]
	kinds := maps.Clone(f.postings)
	f.mu.Unlock()
	for _, k := range []string{KindAward, KindSpend, KindConsume} {
		if kinds[k] == 0 || res.Stats[k] == nil {
			t.Fatalf("no %s was applied (%v); the mix did not run it", k, kinds)
		}
	}
	// Every posting applied is one the tool saw answered (a lost answer's
	// retry replays it), and the ledger holds each exactly once.
	if v.PostingsObserved != applied {
		t.Fatalf("observed %d postings, the server applied %d", v.PostingsObserved, applied)
	}
	if want := v.PurchasesObserved + v.GrantsObserved + v.PostingsObserved; v.LedgerTransactions != want || v.Unconfirmed != 0 {
		t.Fatalf("%d ledger transactions (%d unconfirmed), want %d", v.LedgerTransactions, v.Unconfirmed, want)
	}
	if n := res.Stats[KindAward].ErrorCount() + res.Stats[KindSpend].ErrorCount() + res.Stats[KindConsume].ErrorCount(); n != 6 {
		t.Fatalf("%d posting errors recorded, want the 6 lost answers", n)
	}
}

func TestVerifyCatchesADoubleAppliedAward(t *testing.T) {
	f := newFakeCoinop()
	f.doubleAward = 3 // the third award and every one after it is applied twice
	v, _ := runAgainstArgs(t, f, postingMix, nil)
	if v.OK || v.Counts[ProblemDuplicated] == 0 {
		t.Fatalf("verification passed a server that applies awards twice: %v", v.Problems)
	}
	for _, p := range v.Problems {
		if p.Kind != ProblemDuplicated || !strings.Contains(p.Detail, "award") {
			t.Fatalf("unexpected problem %v", p)
		}
	}
}

func TestCheckPlayerHoldsPostingsToWhatWasAsked(t *testing.T) {
	seen, ledger, wallet, items := cleanPlayer()
	obs := NewObserved()
	obs.Posting("p1", KindSpend, "k-spend", PostingRequest{Currencies: map[string]int64{"gold": 5}}, "spend-1")
	seen.Postings = obs.Player("p1").Postings
	m, _ := json.Marshal(map[string]any{"idempotency_key": "k-spend"})
	spend := func(gold int64) LedgerTransaction {
		return LedgerTransaction{ID: 4, Kind: KindSpend, Reference: "spend-1", Metadata: m, Entries: move("p1", "spends", "currency", "gold", -gold)}
	}
	wallet["gold"] -= 5
	if probs, _ := CheckPlayer("p1", seen, append([]LedgerTransaction{spend(5)}, ledger...), 0, wallet, items); len(probs) != 0 {
		t.Fatalf("problems %v", probs)
	}
	wallet["gold"] -= 5
	if probs, _ := CheckPlayer("p1", seen, append([]LedgerTransaction{spend(10)}, ledger...), 0, wallet, items); kinds(probs) != ProblemMismatch {
		t.Fatalf("a spend that took twice what was asked: problems %v", probs)
	}
	wallet["gold"] += 10
	if probs, _ := CheckPlayer("p1", seen, ledger, 0, wallet, items); kinds(probs) != ProblemLost {
		t.Fatalf("a spend answered 201 but missing: problems %v", probs)
	}
}
