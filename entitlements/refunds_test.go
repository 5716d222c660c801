package entitlements_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

// share is a dated Apple-style statement about tx: num/den refunded as of
// at.
func share(tx string, num, den int64, at time.Time, policy entitlements.ClawbackPolicy) entitlements.StoreRevocation {
	return entitlements.StoreRevocation{Store: "apple", TransactionID: tx, Num: num, Den: den, AsOf: at, Reason: "test", Policy: policy}
}

func setShare(t *testing.T, l *entitlements.Ledger, r entitlements.StoreRevocation) entitlements.Revocation {
	t.Helper()
	rev, err := l.SetRevocation(context.Background(), r)
	if err != nil {
		t.Fatalf("set revocation %d/%d: %v", r.Num, r.Den, err)
	}
	return rev
}

func owed(t *testing.T, l *entitlements.Ledger, player string) map[string]int64 {
	t.Helper()
	debts, err := l.Debts(context.Background(), player, 100)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, d := range debts {
		out[d.AssetID] += d.Amount
	}
	return out
}

// countKind counts the ledger transactions of kind for one store
// transaction.
func countKind(t *testing.T, pool *pgxpool.Pool, kind, tx string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_transactions WHERE kind = $1 AND reference = $2`,
		kind, "apple:"+tx).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// debtAccount is the balance of the player's debt account for gems.
func debtAccount(t *testing.T, pool *pgxpool.Pool, player string) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), `SELECT coalesce(sum(amount), 0)::bigint FROM ledger_entries
		WHERE account = 'system:debt:' || $1 AND asset_id = 'gems'`, player).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPartialRefundTakesTheShareRoundedDownOnce(t *testing.T) {
	l, pool := newLedger(t)
	ctx := context.Background()
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-p", "com.example.gems100")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	// REFUND_PRORATED 50%, delivered three times.
	for i := range 3 {
		rev := setShare(t, l, share("tx-p", 500_000, 1_000_000, t0, entitlements.ClawbackClamp))
		if rev.Reversed != (i == 0) || (i == 0 && rev.Taken["gems"] != 50) {
			t.Fatalf("delivery %d: %+v", i, rev)
		}
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 50 {
		t.Fatalf("gems after 50%% refund = %d, want 50", h.Currencies["gems"])
	}
	// A second refund of the same transaction: Apple now says 75% in all,
	// so only the additional 25 go.
	if rev := setShare(t, l, share("tx-p", 75_000, 100_000, t0.Add(time.Minute), entitlements.ClawbackClamp)); rev.Taken["gems"] != 25 {
		t.Fatalf("second partial refund took %v, want 25 gems", rev.Taken)
	}
	// A stale copy of the first (older) statement changes nothing.
	if rev := setShare(t, l, share("tx-p", 500_000, 1_000_000, t0, entitlements.ClawbackClamp)); rev.Reversed {
		t.Fatalf("stale statement applied: %+v", rev)
	}
	// The whole of it, then an undated full revocation: never more than
	// granted.
	setShare(t, l, share("tx-p", 1, 1, t0.Add(2*time.Minute), entitlements.ClawbackClamp))
	if rev, err := l.Revoke(ctx, "apple", "tx-p", "REFUND", entitlements.ClawbackClamp); err != nil || rev.Reversed {
		t.Fatalf("revoke after full refund: %+v %v", rev, err)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 0 {
		t.Fatalf("gems after full refund = %d, want 0", h.Currencies["gems"])
	}
	if n := countKind(t, pool, entitlements.KindStoreRefund, "tx-p"); n != 3 {
		t.Errorf("%d refund postings, want 3 (50%%, +25%%, +25%%)", n)
	}
	if len(owed(t, l, "p1")) != 0 {
		t.Errorf("debts %v, want none", owed(t, l, "p1"))
	}
	assertAuditOK(t, l)
}

func TestPartialRefundRoundsInThePlayersFavour(t *testing.T) {
	for _, tt := range []struct {
		name         string
		product      string
		quantity     int64
		num, den     int64
		gems, elixir int64 // left after the refund
	}{
		{"a third of 100 gems takes 33", "com.example.pack", 1, 1, 3, 67, 1},
		{"one of three packs takes a third", "com.example.pack", 3, 1, 3, 200, 2},
		{"apple's 33.333% of three packs", "com.example.pack", 3, 333_330, 1_000_000, 201, 3},
		{"0.015% takes nothing", "com.example.pack", 1, 150, 1_000_000, 100, 1},
		{"all of it", "com.example.pack", 3, 1, 1, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pool, _ := testenv.NewPool(t)
			l := entitlements.New(pool, &swapCat{reviewCatalog(t, 1, 100)})
			p := entitlements.StorePurchase{Store: "apple", Environment: "production", TransactionID: "t1",
				ProductID: tt.product, Quantity: tt.quantity, PurchasedAt: time.Now()}
			if _, err := l.Redeem(context.Background(), "p1", p); err != nil {
				t.Fatal(err)
			}
			setShare(t, l, share("t1", tt.num, tt.den, time.Now(), entitlements.ClawbackClamp))
			if h := holdings(t, l, "p1"); h.Currencies["gems"] != tt.gems || h.Items["elixir"] != tt.elixir {
				t.Fatalf("left gems %d, elixirs %d; want %d, %d", h.Currencies["gems"], h.Items["elixir"], tt.gems, tt.elixir)
			}
			assertAuditOK(t, l)
		})
	}
}

func TestSetRevocationRefusesBadShares(t *testing.T) {
	l, _ := newLedger(t)
	for _, r := range []entitlements.StoreRevocation{
		{Store: "apple", TransactionID: "x", Num: 1, Den: 0},
		{Store: "apple", TransactionID: "x", Num: -1, Den: 2},
		{Store: "apple", TransactionID: "x", Num: 3, Den: 2},
		{Store: "apple", TransactionID: "x", Num: 1, Den: entitlements.MaxShareDen + 1},
		{Store: "", TransactionID: "x", Num: 1, Den: 1},
	} {
		var ie *entitlements.InvalidError
		if _, err := l.SetRevocation(context.Background(), r); !errors.As(err, &ie) {
			t.Errorf("%+v: %v, want InvalidError", r, err)
		}
	}
}

func TestRefundReversedRestoresWhatTheRefundTook(t *testing.T) {
	for _, tt := range []struct {
		policy entitlements.ClawbackPolicy
		spend  bool
		// after the refund
		gems, debt int64
		// after the reversal
		restored int64
	}{
		{entitlements.ClawbackClamp, false, 0, 0, 100},
		{entitlements.ClawbackClamp, true, 0, 50, 50},
		{entitlements.ClawbackNegative, true, 0, 50, 50},
		{entitlements.ClawbackFlag, true, 50, 100, 50},
	} {
		t.Run(fmt.Sprintf("%s spent=%v", tt.policy, tt.spend), func(t *testing.T) {
			l, pool := newLedger(t)
			ctx := context.Background()
			if _, err := l.Redeem(ctx, "p1", applePurchase("tx-r", "com.example.gems100")); err != nil {
				t.Fatal(err)
			}
			if tt.spend {
				if _, err := buy(l, "p1", "spend", "starter", 1, "gems", 50); err != nil {
					t.Fatal(err)
				}
			}
			t0 := time.Now()
			setShare(t, l, share("tx-r", 1, 1, t0, tt.policy))
			if h := holdings(t, l, "p1"); h.Currencies["gems"] != tt.gems || owed(t, l, "p1")["gems"] != tt.debt {
				t.Fatalf("after refund: gems %d, debts %v; want %d, %d", h.Currencies["gems"], owed(t, l, "p1"), tt.gems, tt.debt)
			}
			// REFUND_REVERSED, three times; then the refund again, late.
			for i := range 3 {
				rev := setShare(t, l, share("tx-r", 0, 1, t0.Add(time.Hour), tt.policy))
				if rev.Reversed != (i == 0) || (i == 0 && !rev.Reinstated) {
					t.Fatalf("reversal %d: %+v", i, rev)
				}
			}
			setShare(t, l, share("tx-r", 1, 1, t0, tt.policy))
			if h := holdings(t, l, "p1"); h.Currencies["gems"] != tt.restored {
				t.Errorf("gems after reversal = %d, want %d", h.Currencies["gems"], tt.restored)
			}
			if d := owed(t, l, "p1"); len(d) != 0 {
				t.Errorf("debts after reversal = %v, want none", d)
			}
			if n := debtAccount(t, pool, "p1"); n != 0 {
				t.Errorf("debt account = %d, want 0", n)
			}
			wantReinstatements := 1
			if tt.policy == entitlements.ClawbackFlag {
				wantReinstatements = 0 // nothing was taken: only the debt goes
			}
			if n := countKind(t, pool, entitlements.KindStoreReinstatement, "tx-r"); n != wantReinstatements {
				t.Errorf("%d reinstatements, want %d", n, wantReinstatements)
			}
			assertAuditOK(t, l)
		})
	}
}

func TestAPartialReversalCancelsDebtBeforeRegranting(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-d", "com.example.gems100")); err != nil {
		t.Fatal(err)
	}
	if _, err := buy(l, "p1", "spend", "starter", 1, "gems", 50); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	setShare(t, l, share("tx-d", 1, 1, t0, entitlements.ClawbackClamp)) // takes 50, owes 50
	// Apple settles at 80%: 20 come back, out of the 50 still owed.
	rev := setShare(t, l, share("tx-d", 4, 5, t0.Add(time.Minute), entitlements.ClawbackClamp))
	if rev.DebtCancelled["gems"] != 20 || rev.Restored["gems"] != 0 {
		t.Fatalf("partial reversal: %+v", rev)
	}
	if d := owed(t, l, "p1"); d["gems"] != 30 {
		t.Fatalf("debts = %v, want 30 gems", d)
	}
	// Then reversed in full: the other 30 of debt go and the 50 taken come
	// back.
	rev = setShare(t, l, share("tx-d", 0, 1, t0.Add(2*time.Minute), entitlements.ClawbackClamp))
	if rev.DebtCancelled["gems"] != 30 || rev.Restored["gems"] != 50 {
		t.Fatalf("full reversal: %+v", rev)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 50 || len(owed(t, l, "p1")) != 0 {
		t.Fatalf("after reversal: gems %d, debts %v", h.Currencies["gems"], owed(t, l, "p1"))
	}
	assertAuditOK(t, l)
}

func TestRefundStatementsInAnyOrderHaveOneEffect(t *testing.T) {
	l, pool := newLedger(t)
	ctx := context.Background()
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-o", "com.example.gems100")); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	// REFUND_REVERSED arrives first, then the REFUND it reverses, twice
	// (two notification UUIDs), concurrently.
	setShare(t, l, share("tx-o", 0, 1, t0.Add(time.Hour), entitlements.ClawbackClamp))
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if _, err := l.SetRevocation(ctx, share("tx-o", 1, 1, t0, entitlements.ClawbackClamp)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 100 {
		t.Fatalf("gems = %d, want 100 (the refund was reversed)", h.Currencies["gems"])
	}
	if n := countKind(t, pool, entitlements.KindStoreRefund, "tx-o"); n != 0 {
		t.Fatalf("%d refund postings, want 0", n)
	}

	// Concurrent deliveries of one refund of another purchase: one posting.
	if _, err := l.Redeem(ctx, "p2", applePurchase("tx-c", "com.example.gems100")); err != nil {
		t.Fatal(err)
	}
	for range 10 {
		wg.Go(func() {
			if _, err := l.SetRevocation(ctx, share("tx-c", 1, 2, t0, entitlements.ClawbackClamp)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if h := holdings(t, l, "p2"); h.Currencies["gems"] != 50 {
		t.Fatalf("gems = %d, want 50", h.Currencies["gems"])
	}
	if n := countKind(t, pool, entitlements.KindStoreRefund, "tx-c"); n != 1 {
		t.Fatalf("%d refund postings, want 1", n)
	}
	assertAuditOK(t, l)
}

func TestAReversedRefundOfAnUnredeemedTransactionAllowsItsRedemption(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	t0 := time.Now()
	if _, err := l.SetRevocation(ctx, share("tx-u", 1, 1, t0, entitlements.ClawbackClamp)); !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		t.Fatalf("refund of unknown: %v", err)
	}
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-u", "com.example.gems100")); !errors.Is(err, entitlements.ErrStorePurchaseRevoked) {
		t.Fatalf("redeem after refund: %v", err)
	}
	if _, err := l.SetRevocation(ctx, share("tx-u", 0, 1, t0.Add(time.Hour), entitlements.ClawbackClamp)); !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		t.Fatalf("reversal of unknown: %v", err)
	}
	// A late copy of the refund does not block it again.
	_, _ = l.SetRevocation(ctx, share("tx-u", 1, 1, t0, entitlements.ClawbackClamp))
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-u", "com.example.gems100")); err != nil {
		t.Fatalf("redeem after reversal: %v", err)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 100 {
		t.Fatalf("gems = %d", h.Currencies["gems"])
	}
}

func TestARefundReversesAndAReversalRestoresCreatorCredits(t *testing.T) {
	l, pool := newLedger(t)
	ctx := context.Background()
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-cr", "com.example.gems100")); err != nil {
		t.Fatal(err)
	}
	// Store purchases credit no creator today; a credit tied to the grant
	// (as a future store-purchase share would be) must follow its refunds.
	var grantTx int64
	if err := pool.QueryRow(ctx, `SELECT ledger_transaction_id FROM store_purchases WHERE transaction_id = 'tx-cr'`).Scan(&grantTx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO creator_credits (creator_id, kind, source_account, currency, micro, spent, player_id, ledger_transaction_id, available_at)
		VALUES ('c1', 'code', 'system:creator_program', 'gems', 5000000, 100, 'p1', $1, now())`, grantTx); err != nil {
		t.Fatal(err)
	}
	credited := func() int64 {
		var n int64
		if err := pool.QueryRow(ctx, `SELECT coalesce(sum(micro), 0)::bigint FROM creator_credits WHERE creator_id = 'c1'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	t0 := time.Now()
	setShare(t, l, share("tx-cr", 1, 2, t0, entitlements.ClawbackClamp))
	if c := credited(); c != 2_500_000 {
		t.Fatalf("after 50%% refund credited %d, want 2500000", c)
	}
	setShare(t, l, share("tx-cr", 0, 1, t0.Add(time.Minute), entitlements.ClawbackClamp))
	if c := credited(); c != 5_000_000 {
		t.Fatalf("after reversal credited %d, want 5000000", c)
	}
	// Refunded again later, in full: the reinstated credit is reversed too.
	setShare(t, l, share("tx-cr", 1, 1, t0.Add(2*time.Minute), entitlements.ClawbackClamp))
	if c := credited(); c != 0 {
		t.Fatalf("after full refund credited %d, want 0", c)
	}
	assertAuditOK(t, l)
}

func TestAReversedRefundRestoresTheSubscription(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	month := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
	sub := applePurchase("tx-sub", "com.example.vip.monthly")
	sub.ExpiresAt = &month
	if _, err := l.Redeem(ctx, "p1", sub); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	setShare(t, l, share("tx-sub", 1, 1, t0, entitlements.ClawbackClamp))
	if h := holdings(t, l, "p1"); h.Quantity("vip", time.Now()) != 0 || h.Currencies["gems"] != 0 {
		t.Fatalf("after refund: %+v", h)
	}
	setShare(t, l, share("tx-sub", 0, 1, t0.Add(time.Minute), entitlements.ClawbackClamp))
	if h := holdings(t, l, "p1"); h.Quantity("vip", time.Now()) != 1 || !h.Subscriptions["vip"].Equal(month) || h.Currencies["gems"] != 10 {
		t.Fatalf("after reversal: %+v", h)
	}
	assertAuditOK(t, l)
}

// TestLifetimeDollarsAreDeclaredOnlyFromUSDPrices: the consumption answer's
// lifetime figures sum the USD prices of the player's store purchases and
// the refunded share of each; one purchase without a USD price makes them
// unknown, since coinop converts no currencies.
func TestLifetimeDollarsAreDeclaredOnlyFromUSDPrices(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	priced := func(tx string, milli int64, currency string) entitlements.StorePurchase {
		p := applePurchase(tx, "com.example.gems100")
		p.PriceMilli, p.Currency = milli, currency
		return p
	}
	for _, p := range []entitlements.StorePurchase{priced("tx-a", 9990, "USD"), priced("tx-b", 19990, "USD")} {
		if _, err := l.Redeem(ctx, "p1", p); err != nil {
			t.Fatal(err)
		}
	}
	setShare(t, l, share("tx-b", 1, 2, time.Now(), entitlements.ClawbackClamp))
	c, err := l.ConsumptionOf(ctx, "apple", "tx-a")
	if err != nil {
		t.Fatal(err)
	}
	if !c.LifetimeKnown || c.LifetimePurchasedMilli != 29980 || c.LifetimeRefundedMilli != 9995 {
		t.Fatalf("USD only: %+v, want 29980 purchased and 9995 refunded", c)
	}
	if _, err := l.Redeem(ctx, "p1", priced("tx-c", 999, "EUR")); err != nil {
		t.Fatal(err)
	}
	if c, err = l.ConsumptionOf(ctx, "apple", "tx-a"); err != nil || c.LifetimeKnown || c.LifetimePurchasedMilli != 0 {
		t.Fatalf("with a EUR purchase: %+v, %v; want unknown", c, err)
	}
	if _, err := l.Redeem(ctx, "p2", applePurchase("tx-d", "com.example.gems100")); err != nil {
		t.Fatal(err)
	}
	if c, err = l.ConsumptionOf(ctx, "apple", "tx-d"); err != nil || c.LifetimeKnown {
		t.Fatalf("without a price: %+v, %v; want unknown", c, err)
	}
}
