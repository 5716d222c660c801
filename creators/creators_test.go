package creators_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type staticCatalog struct{ snap *catalog.Snapshot }

func (s staticCatalog) Current() *catalog.Snapshot { return s.snap }

// clock is shared by the ledger and the service, so tests move time.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time          { return time.Unix(0, c.t.Load()).UTC() }
func (c *clock) set(t time.Time)         { c.t.Store(t.UnixNano()) }
func (c *clock) advance(d time.Duration) { c.t.Add(int64(d)) }

type env struct {
	pool   *pgxpool.Pool
	ledger *entitlements.Ledger
	svc    *creators.Service
	clock  *clock
}

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, program creators.Program, opts ...entitlements.Option) *env {
	t.Helper()
	pool, _ := testenv.NewPool(t)
	c := &clock{}
	c.set(start)
	cat := &catalog.Catalog{
		Currencies: []catalog.Currency{{ID: "gems", Name: "Gems", Tippable: true}, {ID: "gold", Name: "Gold"}},
		Items: []catalog.Item{
			{ID: "pebble", Name: "Pebble", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gems", Amount: 1}}},
			{ID: "potion", Name: "Potion", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gems", Amount: 100}, {Currency: "gold", Amount: 7}}},
			{ID: "map-pack", Name: "Map pack", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gems", Amount: 10}},
				CreatorID: "maker", CreatorSharePPM: 300_000},
		},
		// The map pack (10 gems) is worth 10/110 of the crate.
		Bundles: []catalog.Bundle{{ID: "crate", Name: "Crate", Prices: []catalog.Price{{Currency: "gems", Amount: 55}},
			Contents: catalog.Grants{Items: map[string]int64{"map-pack": 1, "potion": 1}}}},
	}
	snap, err := catalog.NewSnapshot(1, start, cat)
	if err != nil {
		t.Fatal(err)
	}
	l := entitlements.New(pool, staticCatalog{snap}, append([]entitlements.Option{
		entitlements.WithClock(c.now), entitlements.WithCreatorProgram(program)}, opts...)...)
	svc := creators.New(pool, program, creators.WithClock(c.now))
	e := &env{pool: pool, ledger: l, svc: svc, clock: c}
	for _, cr := range []creators.CreateRequest{
		{ID: "ninja", DisplayName: "Ninja", Codes: []string{"NINJA"}, PlayerID: ptr("ninja-player")},
		{ID: "maker", DisplayName: "Map Maker", Codes: []string{"maps"}},
	} {
		if _, err := svc.Create(context.Background(), cr, by); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// by attributes the tests' changes in the audit log.
var by = audit.Attribution{Actor: "test"}

func ptr[T any](v T) *T { return &v }

func (e *env) fund(t testing.TB, player string, gems int64) {
	t.Helper()
	if _, err := e.ledger.Grant(context.Background(), entitlements.GrantRequest{PlayerID: player,
		IdempotencyKey: fmt.Sprintf("fund-%s-%d", player, time.Now().UnixNano()), Reason: "test",
		Currencies: map[string]int64{"gems": gems, "gold": gems}}); err != nil {
		t.Fatal(err)
	}
}

func (e *env) buy(t testing.TB, player, key, item string, qty, price int64) entitlements.Outcome {
	t.Helper()
	out, err := e.ledger.Purchase(context.Background(), entitlements.PurchaseRequest{PlayerID: player, IdempotencyKey: key,
		ItemID: item, Quantity: qty, Price: catalog.Price{Currency: "gems", Amount: price}})
	if err != nil {
		t.Fatalf("buy %s: %v", item, err)
	}
	return out
}

func (e *env) setCode(t testing.TB, player, code string) creators.PlayerCode {
	t.Helper()
	pc, err := e.svc.SetPlayerCode(context.Background(), player, code)
	if err != nil {
		t.Fatal(err)
	}
	return pc
}

// earning returns the creator's standing in gems.
func (e *env) earning(t testing.TB, creator string) creators.Earning {
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

func (e *env) matured(t testing.TB) { e.clock.advance(e.svc.Program().Hold + time.Second) }

func TestAPurchaseUnderAnActiveCodeCreditsExactlyTheShare(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	e.fund(t, "p1", 1000)
	e.setCode(t, "p1", "ninja") // any case
	out := e.buy(t, "p1", "k1", "potion", 3, 100)
	if got := e.earning(t, "ninja"); got.PendingMicro != 15*creators.MicroPerUnit || got.Available != 0 {
		t.Fatalf("after 300 gems at 5%%: %+v, want 15 gems pending", got)
	}
	// The player paid the catalog price, no more.
	h, _ := e.ledger.Holdings(context.Background(), "p1")
	if h.Currencies["gems"] != 700 {
		t.Fatalf("player holds %d gems, want 700", h.Currencies["gems"])
	}
	// A replay credits nothing more.
	if again := e.buy(t, "p1", "k1", "potion", 3, 100); !again.Replayed || string(again.Body) != string(out.Body) {
		t.Fatalf("replay: %+v", again)
	}
	e.matured(t)
	if got := e.earning(t, "ninja"); got.PendingMicro != 0 || got.Available != 15 || got.RemainderMicro != 0 {
		t.Fatalf("after the hold: %+v, want 15 available", got)
	}
	// The credit is tied to the purchase's ledger transaction and evented.
	var tx, events int64
	if err := e.pool.QueryRow(context.Background(), `SELECT ledger_transaction_id FROM creator_credits WHERE creator_id = 'ninja'`).Scan(&tx); err != nil {
		t.Fatal(err)
	}
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE type = 'creator.credit' AND data->'postings' @> jsonb_build_array(jsonb_build_object('ledger_transaction_id', $1::bigint))`, tx).Scan(&events); err != nil || events != 1 {
		t.Fatalf("creator.credit events for tx %d: %d, %v", tx, events, err)
	}
	if out.Version != tx {
		t.Fatalf("credit tied to ledger transaction %d, the purchase is %d", tx, out.Version)
	}
}

func TestACodeExpiresAtItsBoundary(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	e.fund(t, "p1", 1000)
	pc := e.setCode(t, "p1", "NINJA")
	if want := start.Add(14 * 24 * time.Hour); !pc.ExpiresAt.Equal(want) {
		t.Fatalf("expires %v, want %v", pc.ExpiresAt, want)
	}
	e.clock.set(pc.ExpiresAt.Add(-time.Second))
	e.buy(t, "p1", "before", "potion", 1, 100)
	e.clock.set(pc.ExpiresAt)
	e.buy(t, "p1", "at", "potion", 1, 100)
	e.clock.set(pc.ExpiresAt.Add(time.Second))
	e.buy(t, "p1", "after", "potion", 1, 100)
	if got := e.earning(t, "ninja"); got.PendingMicro+got.Available*creators.MicroPerUnit != 5*creators.MicroPerUnit {
		t.Fatalf("%+v: want only the purchase a second before expiry credited (5 gems)", got)
	}
	got, ok, err := e.svc.GetPlayerCode(context.Background(), "p1")
	if err != nil || !ok || got.Active {
		t.Fatalf("code after expiry: %+v %v %v, want set but inactive", got, ok, err)
	}
}

func TestACreatorItemUnderAnotherCreatorsCodeCreditsBothOnce(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	e.fund(t, "p1", 1000)
	e.setCode(t, "p1", "ninja")
	e.buy(t, "p1", "k", "map-pack", 2, 10)
	if got := e.earning(t, "maker"); got.PendingMicro != 6*creators.MicroPerUnit {
		t.Errorf("maker: %+v, want 30%% of 20 = 6 gems", got)
	}
	if got := e.earning(t, "ninja"); got.PendingMicro != creators.MicroPerUnit {
		t.Errorf("ninja: %+v, want 5%% of 20 = 1 gem", got)
	}
	var rows int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM creator_credits`).Scan(&rows)
	if rows != 2 {
		t.Errorf("%d credit rows, want 2", rows)
	}
	// Without a code, the item's creator alone.
	if err := e.svc.ClearPlayerCode(context.Background(), "p1"); err != nil {
		t.Fatal(err)
	}
	e.buy(t, "p1", "k2", "map-pack", 1, 10)
	if got := e.earning(t, "maker"); got.PendingMicro != 9*creators.MicroPerUnit {
		t.Errorf("maker: %+v, want 9 gems", got)
	}
	if got := e.earning(t, "ninja"); got.PendingMicro != creators.MicroPerUnit {
		t.Errorf("ninja after clearing the code: %+v, want still 1 gem", got)
	}
}

// A bundle credits the creators of its contents their share of the part of
// its price the contents are worth at list price: the map pack is 10 of the
// crate's 110 gems of list value, so its 30% creator earns
// floor(300000 × 10/110) = 27272 ppm of the 55 gems paid, exactly, and the
// code's 5% is of the whole price.
func TestABundleCreditsItsContentsCreatorsTheirShareOfItsPrice(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	e.fund(t, "p1", 1000)
	e.setCode(t, "p1", "ninja")
	e.buy(t, "p1", "k", "crate", 3, 55)
	if got, want := e.earning(t, "maker").PendingMicro, int64(3*55*27272); got != want {
		t.Errorf("maker earned %d micro, want %d (27272 ppm of 165 gems)", got, want)
	}
	if got, want := e.earning(t, "ninja").PendingMicro, int64(3*55*50_000); got != want {
		t.Errorf("ninja earned %d micro, want %d (5%% of 165 gems)", got, want)
	}
	rows, err := e.pool.Query(context.Background(), `SELECT creator_id || ':' || kind || ':' || spent FROM creator_credits ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"maker:item:165", "ninja:code:165"}; !slices.Equal(kinds, want) {
		t.Errorf("credit rows %v, want %v", kinds, want)
	}
}

// 10,000 purchases of 1 gem at 5% by 100 players, concurrently, all
// crediting one creator: exactly 500 gems, no lost update.
func TestTenThousandPurchasesOfOneUnitAtFivePercentEarnExactlyFiveHundred(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	const players, each = 100, 100
	for p := range players {
		player := fmt.Sprint("fan-", p)
		e.fund(t, player, each)
		e.setCode(t, player, "ninja")
	}
	var wg sync.WaitGroup
	errs := make(chan error, players)
	for p := range players {
		wg.Add(1)
		go func() {
			defer wg.Done()
			player := fmt.Sprint("fan-", p)
			for i := range each {
				if _, err := e.ledger.Purchase(context.Background(), entitlements.PurchaseRequest{PlayerID: player,
					IdempotencyKey: fmt.Sprint("k-", i), ItemID: "pebble", Quantity: 1, Price: catalog.Price{Currency: "gems", Amount: 1}}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	e.matured(t)
	got := e.earning(t, "ninja")
	if got.Available != 500 || got.RemainderMicro != 0 || got.PendingMicro != 0 {
		t.Fatalf("%+v, want exactly 500 gems available", got)
	}
	var credits int
	_ = e.pool.QueryRow(context.Background(), `SELECT count(*) FROM creator_credits WHERE kind = 'code'`).Scan(&credits)
	if credits != players*each {
		t.Fatalf("%d credit rows, want %d", credits, players*each)
	}
}

func TestASuspendedCreatorEarnsNothingNewAndKeepsWhatItEarned(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	ctx := context.Background()
	e.fund(t, "p1", 1000)
	e.setCode(t, "p1", "ninja")
	e.buy(t, "p1", "k1", "potion", 1, 100)
	if _, err := e.svc.SetStatus(ctx, "ninja", creators.StatusSuspended, by); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SetStatus(ctx, "maker", creators.StatusSuspended, by); err != nil {
		t.Fatal(err)
	}
	e.buy(t, "p1", "k2", "potion", 1, 100)
	e.buy(t, "p1", "k3", "map-pack", 1, 10)
	if got := e.earning(t, "ninja"); got.PendingMicro != 5*creators.MicroPerUnit {
		t.Errorf("ninja: %+v, want the 5 gems from before the suspension only", got)
	}
	if got := e.earning(t, "maker"); got.PendingMicro != 0 {
		t.Errorf("maker: %+v, want nothing", got)
	}
	if _, err := e.svc.SetPlayerCode(ctx, "p2", "ninja"); !errors.Is(err, creators.ErrSuspended) {
		t.Errorf("setting a suspended creator's code: %v, want ErrSuspended", err)
	}
	_, err := e.ledger.Tip(ctx, entitlements.TipRequest{PlayerID: "p1", IdempotencyKey: "t", CreatorID: "ninja", Currency: "gems", Amount: 1})
	if !errors.Is(err, creators.ErrSuspended) {
		t.Errorf("tipping a suspended creator: %v, want ErrSuspended", err)
	}
}

func TestCodesAreRefusedWhenUnknownOrOwn(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	ctx := context.Background()
	for _, tc := range []struct {
		player, code string
		want         error
	}{
		{"p1", "nobody", creators.ErrUnknownCode},
		{"p1", "x", creators.ErrUnknownCode},
		{"ninja-player", "ninja", creators.ErrOwnCode},
	} {
		if _, err := e.svc.SetPlayerCode(ctx, tc.player, tc.code); !errors.Is(err, tc.want) {
			t.Errorf("%s sets %q: %v, want %v", tc.player, tc.code, err, tc.want)
		}
	}
	if _, err := e.svc.AddCode(ctx, "maker", "Ninja", by); !errors.Is(err, creators.ErrCodeTaken) {
		t.Errorf("a code taken in another case: %v, want ErrCodeTaken", err)
	}
	if _, err := e.svc.Create(ctx, creators.CreateRequest{ID: "ninja", DisplayName: "again"}, by); !errors.Is(err, creators.ErrExists) {
		t.Errorf("a second creator ninja: %v, want ErrExists", err)
	}
}

func TestTwoHundredConcurrentTipsWithOneKeyTipOnce(t *testing.T) {
	p := creators.DefaultProgram()
	p.TipFeePPM = 300_000
	e := newEnv(t, p)
	e.fund(t, "p1", 1000)
	var wg sync.WaitGroup
	var fresh atomic.Int64
	errs := make(chan error, 200)
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				out, err := e.ledger.Tip(context.Background(), entitlements.TipRequest{PlayerID: "p1", IdempotencyKey: "tip-1",
					CreatorID: "ninja", Currency: "gems", Amount: 10})
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
	h, _ := e.ledger.Holdings(context.Background(), "p1")
	if h.Currencies["gems"] != 990 {
		t.Fatalf("player holds %d gems, want 990", h.Currencies["gems"])
	}
	if got := e.earning(t, "ninja"); got.PendingMicro != 7*creators.MicroPerUnit {
		t.Fatalf("%+v, want the tip less 30%% fee: 7 gems", got)
	}
}

func TestTipsKeepToTheDailyLimitAndTippableCurrencies(t *testing.T) {
	p := creators.DefaultProgram()
	p.TipDailyLimit = 25
	e := newEnv(t, p)
	ctx := context.Background()
	e.fund(t, "p1", 1000)
	tip := func(key, cur string, n int64) error {
		_, err := e.ledger.Tip(ctx, entitlements.TipRequest{PlayerID: "p1", IdempotencyKey: key, CreatorID: "ninja", Currency: cur, Amount: n})
		return err
	}
	if err := tip("a", "gems", 20); err != nil {
		t.Fatal(err)
	}
	var le *entitlements.LimitError
	if err := tip("b", "gems", 6); !errors.As(err, &le) || le.Code != entitlements.CodeTipLimitExceeded || le.Used != 20 {
		t.Fatalf("over the limit: %v, want tip_limit_exceeded with 20 used", err)
	}
	if err := tip("a", "gems", 20); err != nil {
		t.Fatalf("a replay past the limit: %v, want the first answer", err)
	}
	if err := tip("c", "gems", 5); err != nil {
		t.Fatal(err)
	}
	e.clock.advance(24 * time.Hour)
	if err := tip("d", "gems", 25); err != nil {
		t.Fatalf("the next day: %v", err)
	}
	var r *entitlements.Rejection
	if err := tip("e", "gold", 1); !errors.As(err, &r) || r.Code != entitlements.CodeNotTippable {
		t.Fatalf("gold: %v, want not_tippable", err)
	}
	if err := tip("f", "gems", 1); !errors.Is(err, nil) {
		t.Log(err) // limit reached again for the day is fine
	}
	if err := func() error {
		_, err := e.ledger.Tip(ctx, entitlements.TipRequest{PlayerID: "p1", IdempotencyKey: "g", CreatorID: "nobody", Currency: "gems", Amount: 1})
		return err
	}(); !errors.Is(err, creators.ErrNotFound) {
		t.Fatalf("an unknown creator: %v", err)
	}
}

// reverse runs the refund path's call: a fraction of a purchase's credits
// reversed in the caller's transaction.
func (e *env) reverse(t testing.TB, ledgerTx, num, den int64) {
	t.Helper()
	err := pgx.BeginFunc(context.Background(), e.pool, func(tx pgx.Tx) error {
		return entitlements.ReverseCredits(context.Background(), tx, ledgerTx, ledgerTx, num, den)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestRefundsReverseTheShareInProportionAndLeaveDebtAfterPayout(t *testing.T) {
	e := newEnv(t, creators.DefaultProgram())
	ctx := context.Background()
	e.fund(t, "p1", 100_000)
	e.setCode(t, "p1", "ninja")
	full := e.buy(t, "p1", "full", "potion", 2, 100) // 10 gems
	e.reverse(t, full.Version, 1, 1)
	if got := e.earning(t, "ninja"); got.PendingMicro != 0 || got.EarnedMicro != 0 {
		t.Fatalf("after a full refund: %+v, want nothing", got)
	}
	e.reverse(t, full.Version, 1, 1) // a second refund of the same purchase reverses nothing more
	if got := e.earning(t, "ninja"); got.EarnedMicro != 0 {
		t.Fatalf("after a second refund: %+v", got)
	}

	part := e.buy(t, "p1", "part", "potion", 3, 100) // 15 gems
	e.reverse(t, part.Version, 1, 3)
	if got := e.earning(t, "ninja"); got.PendingMicro != 10*creators.MicroPerUnit {
		t.Fatalf("after refunding a third: %+v, want 10 gems pending", got)
	}
	e.reverse(t, part.Version, 2, 3) // the rest, never more than credited
	if got := e.earning(t, "ninja"); got.PendingMicro != 0 {
		t.Fatalf("after refunding the rest: %+v", got)
	}

	paid := e.buy(t, "p1", "paid", "potion", 4, 100) // 20 gems
	e.matured(t)
	po, err := e.svc.Payout(ctx, creators.PayoutRequest{CreatorID: "ninja", IdempotencyKey: "po-1", Actor: "test"})
	if err != nil || po.Amounts["gems"] != 20 {
		t.Fatalf("payout: %+v %v, want 20 gems", po, err)
	}
	e.reverse(t, paid.Version, 1, 2)
	if got := e.earning(t, "ninja"); got.DebtMicro != 10*creators.MicroPerUnit || got.Available != 0 || got.Paid != 20 {
		t.Fatalf("refund after payout: %+v, want 10 gems of debt", got)
	}
	e.setCode(t, "p1", "ninja")              // it expired during the hold
	e.buy(t, "p1", "next", "potion", 6, 100) // 30 gems: the debt first
	e.matured(t)
	if got := e.earning(t, "ninja"); got.Available != 20 || got.DebtMicro != 0 {
		t.Fatalf("after the next earnings: %+v, want 30 − 10 = 20 available", got)
	}
	var events int
	_ = e.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'creator.reversal'`).Scan(&events)
	if events != 4 {
		t.Fatalf("%d creator.reversal events, want 4", events)
	}
}

func TestAPayoutTwiceWithOneKeyPaysOnce(t *testing.T) {
	p := creators.DefaultProgram()
	p.PayoutMin = 10
	e := newEnv(t, p)
	ctx := context.Background()
	e.fund(t, "p1", 10_000)
	e.setCode(t, "p1", "ninja")
	e.buy(t, "p1", "k1", "potion", 1, 100) // 5
	e.matured(t)
	if _, err := e.svc.Payout(ctx, creators.PayoutRequest{CreatorID: "ninja", IdempotencyKey: "early"}); !errors.Is(err, creators.ErrBelowMinimum) {
		t.Fatalf("below the minimum: %v", err)
	}
	e.setCode(t, "p1", "ninja") // it expired during the hold
	e.buy(t, "p1", "k2", "potion", 1, 100)
	e.buy(t, "p1", "k3", "pebble", 1, 1) // 0.05: the remainder carries
	e.matured(t)
	var wg sync.WaitGroup
	results := make([]creators.Payout, 20)
	errs := make([]error, 20)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = e.svc.Payout(ctx, creators.PayoutRequest{CreatorID: "ninja", IdempotencyKey: "po"})
		}()
	}
	wg.Wait()
	fresh := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if !results[i].Replayed {
			fresh++
		}
		if results[i].PayoutID != results[0].PayoutID || results[i].Amounts["gems"] != 10 {
			t.Fatalf("payout %d: %+v, want the same payout of 10", i, results[i])
		}
	}
	if fresh != 1 {
		t.Fatalf("%d payouts made, want 1", fresh)
	}
	got := e.earning(t, "ninja")
	if got.Paid != 10 || got.Available != 0 || got.RemainderMicro != 50_000 {
		t.Fatalf("%+v, want 10 paid and 0.05 carried", got)
	}
	st, err := e.svc.Statement(ctx, "ninja", start, e.clock.now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, l := range st.Lines {
		kinds[l.Kind]++
		if l.Kind == creators.KindCode && (l.LedgerTransactionID == nil || l.LedgerKind == nil || *l.LedgerKind != "purchase") {
			t.Errorf("line %+v is not tied to its purchase", l)
		}
	}
	if kinds["code"] != 3 || kinds["payout"] != 1 || st.Totals["gems"] != 50_000 {
		t.Fatalf("statement %+v", st)
	}
}

// BenchmarkPurchaseUnderACode measures the writer's purchases side by side
// in one run: without a code, under codes of many creators, and with every
// purchase crediting one creator (the hot-row check: credits are appended
// rows, so many players crediting one creator must not serialize). The
// ratio of the last two to the first is what matters; absolute figures
// depend on the machine. 16 purchases in flight.
func BenchmarkPurchaseUnderACode(b *testing.B) {
	for _, tc := range []struct {
		name     string
		creators int // 0: no code
	}{{"plain", 0}, {"many-creators", 64}, {"one-creator", 1}} {
		b.Run(tc.name, func(b *testing.B) {
			e := newEnv(b, creators.DefaultProgram())
			const players = 256
			for i := range tc.creators {
				id := fmt.Sprintf("bench-%d", i)
				if _, err := e.svc.Create(context.Background(), creators.CreateRequest{ID: id, DisplayName: id, Codes: []string{fmt.Sprintf("code-%d", i)}}, by); err != nil {
					b.Fatal(err)
				}
			}
			for p := range players {
				player := fmt.Sprint("bp-", p)
				e.fund(b, player, 1_000_000_000)
				if tc.creators > 0 {
					e.setCode(b, player, fmt.Sprintf("code-%d", p%tc.creators))
				}
			}
			var n atomic.Int64
			b.SetParallelism(8) // 16 in flight on 2 cores
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					if _, err := e.ledger.Purchase(context.Background(), entitlements.PurchaseRequest{PlayerID: fmt.Sprint("bp-", i%players),
						IdempotencyKey: fmt.Sprint("bk-", i), ItemID: "pebble", Quantity: 1, Price: catalog.Price{Currency: "gems", Amount: 1}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// A refund reads its purchase's credits and their reversals through
// indexes: with sequential scans priced out, the plan of its read still has
// none (without the index by credit reversed, migrations/018, every refund
// read the whole journal).
func TestARefundReadsItsCreditsByIndexNotTheJournal(t *testing.T) {
	pool, _ := testenv.NewPool(t)
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(ctx, "EXPLAIN "+creators.SQLLockCredits, int64(1))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if text := strings.Join(plan, "\n"); strings.Contains(text, "Seq Scan") {
		t.Errorf("the refund's read of its credits scans a table:\n%s", text)
	}
}
