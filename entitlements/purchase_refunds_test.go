package entitlements_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

// refundEnv is a ledger with the creator program on (5% code share, a
// 30-day hold) and the creators service over the same database and clock:
// ninja has code NINJA, maker made the map-pack (30%).
type refundEnv struct {
	pool   *pgxpool.Pool
	ledger *entitlements.Ledger
	svc    *creators.Service
	now    atomic.Int64
}

func newRefundEnv(t testing.TB) *refundEnv {
	t.Helper()
	pool, _ := testenv.NewPool(t)
	e := &refundEnv{pool: pool}
	e.now.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, e.now.Load()).UTC() }
	cat := &catalog.Catalog{
		Currencies: []catalog.Currency{{ID: "gems", Name: "Gems"}, {ID: "gold", Name: "Gold"}},
		Items: []catalog.Item{
			{ID: "potion", Name: "Potion", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gems", Amount: 100}}},
			{ID: "sword", Name: "Sword", Kind: catalog.KindDurable, Prices: []catalog.Price{{Currency: "gems", Amount: 7}}},
			{ID: "map-pack", Name: "Map pack", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gems", Amount: 10}},
				CreatorID: "maker", CreatorSharePPM: 300_000},
		},
		Bundles: []catalog.Bundle{{ID: "chest", Name: "Chest", Prices: []catalog.Price{{Currency: "gems", Amount: 30}},
			Contents: catalog.Grants{Items: map[string]int64{"potion": 2}, Currencies: map[string]int64{"gold": 50}}}},
	}
	snap, err := catalog.NewSnapshot(1, clock(), cat)
	if err != nil {
		t.Fatal(err)
	}
	program := creators.DefaultProgram()
	e.ledger = entitlements.New(pool, staticCatalog{snap}, entitlements.WithClock(clock), entitlements.WithCreatorProgram(program))
	e.svc = creators.New(pool, program, creators.WithClock(clock))
	for _, cr := range []creators.CreateRequest{
		{ID: "ninja", DisplayName: "Ninja", Codes: []string{"NINJA"}},
		{ID: "maker", DisplayName: "Map Maker"},
	} {
		if _, err := e.svc.Create(context.Background(), cr, audit.Attribution{Actor: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

func (e *refundEnv) advance(d time.Duration) { e.now.Add(int64(d)) }

// buy makes a purchase under the player's code (set afresh, so it is
// active whatever the clock did) and returns its ledger transaction id.
func (e *refundEnv) buy(t testing.TB, player, key, item string, qty, price int64) int64 {
	t.Helper()
	if _, err := e.svc.SetPlayerCode(context.Background(), player, "NINJA"); err != nil {
		t.Fatal(err)
	}
	out, err := e.ledger.Purchase(context.Background(), entitlements.PurchaseRequest{PlayerID: player, IdempotencyKey: key,
		ItemID: item, Quantity: qty, Price: catalog.Price{Currency: "gems", Amount: price}})
	if err != nil {
		t.Fatalf("buy %s: %v", item, err)
	}
	return out.Version
}

func (e *refundEnv) refund(player, key string, tx, qty int64, policy entitlements.ClawbackPolicy) (entitlements.Outcome, error) {
	return e.ledger.RefundPurchase(context.Background(), entitlements.PurchaseRefundRequest{PlayerID: player, IdempotencyKey: key,
		TransactionID: tx, Quantity: qty, Reason: "charged twice", Policy: policy, Actor: "support-alice", RequestID: "req-1"})
}

func (e *refundEnv) mustRefund(t testing.TB, player, key string, tx, qty int64) refundBody {
	t.Helper()
	out, err := e.refund(player, key, tx, qty, "")
	if err != nil {
		t.Fatalf("refund %d of transaction %d: %v", qty, tx, err)
	}
	var b refundBody
	if err := json.Unmarshal(out.Body, &b); err != nil {
		t.Fatal(err)
	}
	return b
}

type refundBody struct {
	RefundID      string           `json:"refund_id"`
	TransactionID int64            `json:"transaction_id"`
	Quantity      int64            `json:"quantity"`
	Refunded      int64            `json:"refunded_quantity"`
	Purchased     int64            `json:"purchased_quantity"`
	GivenBack     map[string]int64 `json:"given_back"`
	TakenBack     map[string]int64 `json:"taken_back"`
	Shortfall     map[string]int64 `json:"shortfall"`
	Balances      map[string]int64 `json:"balances"`
}

// earned is what the creator has earned in gems, in micro-units, net of
// reversals (pending and matured alike).
func (e *refundEnv) earned(t testing.TB, creator string) creators.Earning {
	t.Helper()
	es, err := e.svc.Earnings(context.Background(), creator)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range es {
		if x.Currency == "gems" {
			return x
		}
	}
	return creators.Earning{Currency: "gems"}
}

func (e *refundEnv) count(t testing.TB, sql string, args ...any) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), sql, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestAFullRefundGivesBackExactlyWhatThePurchaseMoved(t *testing.T) {
	e := newRefundEnv(t)
	fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
	tx := e.buy(t, "p1", "buy", "potion", 3, 100)
	if got := e.earned(t, "ninja"); got.EarnedMicro != 15*creators.MicroPerUnit {
		t.Fatalf("credit %+v, want 15 gems", got)
	}
	b := e.mustRefund(t, "p1", "r1", tx, 0) // 0: all of it
	if b.Quantity != 3 || b.Refunded != 3 || b.GivenBack["gems"] != 300 || b.TakenBack["potion"] != 3 || len(b.Shortfall) != 0 {
		t.Fatalf("refund body %+v", b)
	}
	h := holdings(t, e.ledger, "p1")
	if h.Currencies["gems"] != 1000 || h.Items["potion"] != 0 {
		t.Fatalf("after the refund: %+v, want 1000 gems and no potion", h)
	}
	if got := e.earned(t, "ninja"); got.EarnedMicro != 0 || got.PendingMicro != 0 {
		t.Fatalf("creator after a full refund: %+v, want nothing", got)
	}
	for sql, want := range map[string]int{
		`SELECT count(*) FROM events WHERE type = 'ledger.purchase_refund'`:                                                               1,
		`SELECT count(*) FROM events WHERE type = 'creator.reversal'`:                                                                     1,
		`SELECT count(*) FROM audit_log WHERE action = 'player.purchase_refund' AND actor = 'support-alice'`:                              1,
		`SELECT count(*) FROM purchase_refunds WHERE quantity = 3 AND actor = 'support-alice' AND idempotency_key = 'r1'`:                 1,
		`SELECT count(*) FROM ledger_transactions WHERE kind = 'purchase_refund' AND (metadata->>'reverses')::bigint = ` + fmt.Sprint(tx): 1,
	} {
		if n := e.count(t, sql); n != want {
			t.Errorf("%s: %d, want %d", sql, n, want)
		}
	}
	// The same key again answers the first answer and moves nothing.
	out, err := e.refund("p1", "r1", tx, 0, "")
	if err != nil || !out.Replayed {
		t.Fatalf("replay: %+v %v", out, err)
	}
	if h := holdings(t, e.ledger, "p1"); h.Currencies["gems"] != 1000 {
		t.Fatalf("replay moved gems: %d", h.Currencies["gems"])
	}
	assertAuditOK(t, e.ledger)
}

func TestPartialRefundsMoveInProportionAndNeverMoreThanThePurchase(t *testing.T) {
	e := newRefundEnv(t)
	fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
	// 3 map packs: 30 gems, ninja's code 5% (1.5 gems), maker's item 30% (9).
	tx := e.buy(t, "p1", "buy", "map-pack", 3, 10)
	ninja, maker := e.earned(t, "ninja").EarnedMicro, e.earned(t, "maker").EarnedMicro
	if ninja != 1_500_000 || maker != 9_000_000 {
		t.Fatalf("credits ninja %d maker %d", ninja, maker)
	}
	for i, want := range []struct{ gems, packs, ninja, maker int64 }{
		{980, 2, 1_000_000, 6_000_000},
		{990, 1, 500_000, 3_000_000},
		{1000, 0, 0, 0},
	} {
		b := e.mustRefund(t, "p1", fmt.Sprintf("r%d", i), tx, 1)
		h := holdings(t, e.ledger, "p1")
		if b.GivenBack["gems"] != 10 || h.Currencies["gems"] != want.gems || h.Items["map-pack"] != want.packs || b.Refunded != int64(i+1) {
			t.Fatalf("refund %d: %+v, holdings %+v", i+1, b, h)
		}
		if n, m := e.earned(t, "ninja").EarnedMicro, e.earned(t, "maker").EarnedMicro; n != want.ninja || m != want.maker {
			t.Fatalf("after refund %d: ninja %d, maker %d micro, want %d and %d", i+1, n, m, want.ninja, want.maker)
		}
	}
	var re *entitlements.RefundError
	if _, err := e.refund("p1", "r-again", tx, 1, ""); !errors.As(err, &re) || re.Code != entitlements.CodePurchaseAlreadyRefunded || re.Refunded != 3 {
		t.Fatalf("a refund past full: %v, want purchase_already_refunded", err)
	}
	// Never reversed more than credited, per credit.
	if n := e.count(t, `SELECT count(*) FROM creator_credits c WHERE c.ledger_transaction_id = $1 AND c.kind IN ('code', 'item')
		AND c.micro <> -(SELECT sum(r.micro) FROM creator_credits r WHERE r.reverses = c.id)`, tx); n != 0 {
		t.Fatalf("%d credits not reversed exactly", n)
	}

	// A bundle bought 3 times: each refunded unit gives back a third of
	// every leg (gems spent, potions and gold granted).
	tx2 := e.buy(t, "p1", "chests", "chest", 3, 30) // 90 gems, 6 potions, 150 gold
	if _, err := e.refund("p1", "too-many", tx2, 4, ""); !errors.As(err, &re) || re.Code != entitlements.CodeRefundExceedsPurchase || re.Purchased != 3 {
		t.Fatalf("4 of 3: %v, want refund_exceeds_purchase", err)
	}
	b := e.mustRefund(t, "p1", "two-chests", tx2, 2)
	if b.GivenBack["gems"] != 60 || b.TakenBack["potion"] != 4 || b.TakenBack["gold"] != 100 {
		t.Fatalf("2 of 3 chests: %+v", b)
	}
	if _, err := e.refund("p1", "too-many-2", tx2, 2, ""); !errors.As(err, &re) || re.Code != entitlements.CodeRefundExceedsPurchase || re.Refunded != 2 {
		t.Fatalf("2 more of 1 left: %v, want refund_exceeds_purchase", err)
	}
	if got := e.earned(t, "ninja").EarnedMicro; got != 1_500_000 {
		t.Fatalf("ninja after 2 of 3 chests refunded: %d micro, want 1.5 gems", got)
	}
	assertAuditOK(t, e.ledger)
}

func TestARefundAfterPayoutLeavesADebtTheNextEarningsPayFirst(t *testing.T) {
	e := newRefundEnv(t)
	ctx := context.Background()
	fund(t, e.ledger, "p1", map[string]int64{"gems": 10_000})
	tx := e.buy(t, "p1", "paid", "potion", 4, 100) // 400 gems: 20 gems to ninja
	e.advance(e.svc.Program().Hold + time.Second)
	po, err := e.svc.Payout(ctx, creators.PayoutRequest{CreatorID: "ninja", IdempotencyKey: "po-1", Actor: "test"})
	if err != nil || po.Amounts["gems"] != 20 {
		t.Fatalf("payout: %+v %v, want 20 gems", po, err)
	}
	e.mustRefund(t, "p1", "half", tx, 2)
	if got := e.earned(t, "ninja"); got.DebtMicro != 10*creators.MicroPerUnit || got.Available != 0 || got.Paid != 20 {
		t.Fatalf("refund after payout: %+v, want 10 gems of debt", got)
	}
	if _, err := e.svc.Payout(ctx, creators.PayoutRequest{CreatorID: "ninja", IdempotencyKey: "po-2", Actor: "test"}); !errors.Is(err, creators.ErrBelowMinimum) {
		t.Fatalf("a payout while in debt: %v, want nothing to pay", err)
	}
	e.buy(t, "p1", "next", "potion", 6, 100) // 30 gems: the debt first
	e.advance(e.svc.Program().Hold + time.Second)
	if got := e.earned(t, "ninja"); got.Available != 20 || got.DebtMicro != 0 {
		t.Fatalf("after the next earnings: %+v, want 30 − 10 = 20 available", got)
	}
	po, err = e.svc.Payout(ctx, creators.PayoutRequest{CreatorID: "ninja", IdempotencyKey: "po-3", Actor: "test"})
	if err != nil || po.Amounts["gems"] != 20 {
		t.Fatalf("payout after the debt: %+v %v, want 20 gems", po, err)
	}
	assertAuditOK(t, e.ledger)
}

func TestARefundOfSpentItemsFollowsTheClawbackPolicy(t *testing.T) {
	for _, tt := range []struct {
		policy      entitlements.ClawbackPolicy
		taken, left int64 // potions taken back and left to the player
		debtAccount int64 // potions posted against system:debt:<player>
	}{
		{entitlements.ClawbackClamp, 1, 0, 0},
		{entitlements.ClawbackNegative, 1, 0, 2},
		{entitlements.ClawbackFlag, 0, 1, 0},
	} {
		t.Run(string(tt.policy), func(t *testing.T) {
			e := newRefundEnv(t)
			ctx := context.Background()
			fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
			tx := e.buy(t, "p1", "buy", "potion", 3, 100)
			if _, err := e.ledger.Move(ctx, entitlements.MoveRequest{Kind: entitlements.MoveConsume, PlayerID: "p1", IdempotencyKey: "drink",
				Source: "match", Reason: "drank", Take: entitlements.Assets{Items: map[string]int64{"potion": 2}}}); err != nil {
				t.Fatal(err)
			}
			out, err := e.refund("p1", "r", tx, 0, tt.policy)
			if err != nil {
				t.Fatal(err)
			}
			var b refundBody
			_ = json.Unmarshal(out.Body, &b)
			wantShort := 3 - tt.taken
			if b.GivenBack["gems"] != 300 || b.TakenBack["potion"] != tt.taken || b.Shortfall["potion"] != wantShort {
				t.Fatalf("body %s", out.Body)
			}
			if h := holdings(t, e.ledger, "p1"); h.Items["potion"] != tt.left || h.Currencies["gems"] != 1000 {
				t.Fatalf("holdings %+v", h)
			}
			debts, err := e.ledger.Debts(ctx, "p1", 10)
			if err != nil || len(debts) != 1 || debts[0].Store != entitlements.DebtStoreCoinop || debts[0].TransactionID != fmt.Sprint(tx) ||
				debts[0].AssetID != "potion" || debts[0].Amount != wantShort || debts[0].Policy != string(tt.policy) {
				t.Fatalf("debts %+v %v", debts, err)
			}
			var onDebt int64
			_ = e.pool.QueryRow(ctx, `SELECT coalesce(-sum(amount), 0)::bigint FROM ledger_entries
				WHERE account = 'system:debt:p1' AND asset_id = 'potion'`).Scan(&onDebt)
			if onDebt != tt.debtAccount {
				t.Fatalf("debt account holds %d potions, want %d", onDebt, tt.debtAccount)
			}
			assertAuditOK(t, e.ledger)
		})
	}
}

func TestRefundsOfWhatIsNotTheirPurchaseAreRefused(t *testing.T) {
	e := newRefundEnv(t)
	fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
	tx := e.buy(t, "p1", "buy", "potion", 1, 100)
	grant, err := e.ledger.Grant(context.Background(), entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g",
		Reason: "gift", Currencies: map[string]int64{"gold": 5}})
	if err != nil {
		t.Fatal(err)
	}
	var re *entitlements.RefundError
	for _, tt := range []struct {
		name   string
		player string
		tx     int64
		want   entitlements.Code
	}{
		{"an unknown transaction", "p1", tx + 1000, entitlements.CodePurchaseNotFound},
		{"another player's purchase", "p2", tx, entitlements.CodePurchaseOfAnotherPlayer},
		{"a grant", "p1", grant.Version, entitlements.CodeNotAPurchase},
	} {
		if _, err := e.refund(tt.player, "k-"+string(tt.want), tt.tx, 0, ""); !errors.As(err, &re) || re.Code != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.want)
		}
	}
	var inv *entitlements.InvalidError
	if _, err := e.ledger.RefundPurchase(context.Background(), entitlements.PurchaseRefundRequest{PlayerID: "p1",
		IdempotencyKey: "k", TransactionID: tx}); !errors.As(err, &inv) || inv.Field != "reason" {
		t.Errorf("no reason: %v", err)
	}
	e.mustRefund(t, "p1", "k", tx, 1)
	if _, err := e.refund("p1", "k", tx, 0, ""); !errors.Is(err, entitlements.ErrIdempotencyKeyReused) {
		t.Errorf("the key with another body: %v, want ErrIdempotencyKeyReused", err)
	}
	if h := holdings(t, e.ledger, "p1"); h.Currencies["gems"] != 1000 || h.Currencies["gold"] != 5 {
		t.Fatalf("holdings %+v", h)
	}
}

func TestTwoHundredConcurrentRefundsWithOneKeyRefundOnce(t *testing.T) {
	e := newRefundEnv(t)
	fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
	tx := e.buy(t, "p1", "buy", "potion", 5, 100)
	var wg sync.WaitGroup
	var fresh atomic.Int64
	errs := make(chan error, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				out, err := e.refund("p1", "once", tx, 2, "")
				if errors.Is(err, entitlements.ErrIdempotencyKeyInUse) {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				if !out.Replayed {
					fresh.Add(1)
				}
				return
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if fresh.Load() != 1 {
		t.Fatalf("%d first answers, want 1", fresh.Load())
	}
	if h := holdings(t, e.ledger, "p1"); h.Currencies["gems"] != 700 || h.Items["potion"] != 3 {
		t.Fatalf("holdings %+v, want 700 gems and 3 potions", h)
	}
	if n := e.count(t, `SELECT count(*) FROM purchase_refunds`); n != 1 {
		t.Fatalf("%d refunds recorded, want 1", n)
	}
	if got := e.earned(t, "ninja").EarnedMicro; got != 15*creators.MicroPerUnit {
		t.Fatalf("ninja earned %d micro, want 15 gems (25 less 2 of 5)", got)
	}
}

func TestConcurrentRefundsWithDifferentKeysNeverExceedThePurchase(t *testing.T) {
	e := newRefundEnv(t)
	fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
	tx := e.buy(t, "p1", "buy", "potion", 5, 100)
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.refund("p1", fmt.Sprintf("k%d", i), tx, 1, "")
			var re *entitlements.RefundError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &re) && (re.Code == entitlements.CodeRefundExceedsPurchase || re.Code == entitlements.CodePurchaseAlreadyRefunded):
				refused.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var refunded int64
	if err := e.pool.QueryRow(context.Background(), `SELECT coalesce(sum(quantity), 0)::bigint FROM purchase_refunds`).Scan(&refunded); err != nil {
		t.Fatal(err)
	}
	if refunded != 5 || ok.Load() != 5 || refused.Load() != 35 {
		t.Fatalf("refunded %d units in %d refunds (%d refused), want all 5", refunded, ok.Load(), refused.Load())
	}
	if h := holdings(t, e.ledger, "p1"); h.Currencies["gems"] != 1000 || h.Items["potion"] != 0 {
		t.Fatalf("holdings %+v, want 1000 gems and no potion", h)
	}
	if got := e.earned(t, "ninja").EarnedMicro; got != 0 {
		t.Fatalf("ninja keeps %d micro of a fully refunded purchase", got)
	}
	assertAuditOK(t, e.ledger)
}

func TestTheAuditFindsRefundsBeyondThePurchase(t *testing.T) {
	e := newRefundEnv(t)
	ctx := context.Background()
	fund(t, e.ledger, "p1", map[string]int64{"gems": 1000})
	tx := e.buy(t, "p1", "buy", "potion", 3, 100)
	e.mustRefund(t, "p1", "r", tx, 1)
	assertAuditOK(t, e.ledger)
	// A debt recorded for potions the refunds never left owing: 1 taken
	// back and 3 owed is more than the 3 bought.
	if _, err := e.pool.Exec(ctx, `INSERT INTO player_debts (player_id, store, transaction_id, asset_type, asset_id, amount, policy)
		VALUES ('p1', 'coinop', $1, 'item', 'potion', 3, 'clamp')`, fmt.Sprint(tx)); err != nil {
		t.Fatal(err)
	}
	checks, err := e.ledger.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.Name == "purchase_refunds_within_purchase" {
			if c.OK {
				t.Fatal("purchase_refunds_within_purchase passed a refund beyond its purchase")
			}
			return
		}
	}
	t.Fatal("no purchase_refunds_within_purchase check")
}
