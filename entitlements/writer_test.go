package entitlements_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

func purchase(player, key, item string, qty int64, currency string, amount int64) entitlements.PurchaseRequest {
	return entitlements.PurchaseRequest{PlayerID: player, IdempotencyKey: key, ItemID: item, Quantity: qty,
		Price: catalog.Price{Currency: currency, Amount: amount}}
}

func TestABatchGivesEachPostingItsOwnOutcome(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "rich", map[string]int64{"gold": 1000})
	fund(t, l, "poor", map[string]int64{"gold": 50})
	fund(t, l, "full", map[string]int64{"gold": 1000})
	for i := range 3 {
		if _, err := buy(l, "full", fmt.Sprint("elixir-", i), "elixir", 1, "gold", 10); err != nil {
			t.Fatal(err)
		}
	}
	fund(t, l, "again", map[string]int64{"gold": 1000})
	first, err := buy(l, "again", "k-again", "potion", 1, "gold", 100)
	if err != nil {
		t.Fatal(err)
	}
	fund(t, l, "reuser", map[string]int64{"gold": 1000})
	if _, err := buy(l, "reuser", "k-reused", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	before := holdings(t, l, "reuser")

	outs, errs := entitlements.PurchaseBatch(l, []entitlements.PurchaseRequest{
		purchase("rich", "k-rich", "potion", 2, "gold", 100),
		purchase("poor", "k-poor", "potion", 1, "gold", 100),
		purchase("full", "k-full", "elixir", 1, "gold", 10),
		purchase("again", "k-again", "potion", 1, "gold", 100),
		purchase("reuser", "k-reused", "potion", 2, "gold", 100),
	})

	if errs[0] != nil || outs[0].Replayed || !containsJSON(outs[0].Body, `"balances":{"gems":0,"gold":800}`) {
		t.Errorf("rich: %v %s, want a purchase leaving 800 gold", errs[0], outs[0].Body)
	}
	if rejectionCode(errs[1]) != entitlements.CodeInsufficientFunds {
		t.Errorf("poor: %v, want insufficient_funds", errs[1])
	}
	if rejectionCode(errs[2]) != entitlements.CodeLimitExceeded {
		t.Errorf("full: %v, want limit_exceeded", errs[2])
	}
	if errs[3] != nil || !outs[3].Replayed || !bytes.Equal(outs[3].Body, first.Body) {
		t.Errorf("replayed key: %v replayed=%v %s, want %s replayed", errs[3], outs[3].Replayed, outs[3].Body, first.Body)
	}
	if !errors.Is(errs[4], entitlements.ErrIdempotencyKeyReused) {
		t.Errorf("reused key: %v, want ErrIdempotencyKeyReused", errs[4])
	}
	for player, want := range map[string][2]int64{"rich": {800, 2}, "poor": {50, 0}, "full": {970, 3}, "again": {900, 1}} {
		h := holdings(t, l, player)
		item := map[string]string{"full": "elixir"}[player]
		if item == "" {
			item = "potion"
		}
		if h.Currencies["gold"] != want[0] || h.Items[item] != want[1] {
			t.Errorf("%s holds %v %v, want %d gold and %d %s", player, h.Currencies, h.Items, want[0], want[1], item)
		}
	}
	if after := holdings(t, l, "reuser"); !sameHoldings(before, after) {
		t.Errorf("a reused key changed holdings: %+v → %+v", before, after)
	}
	// The rejections are stored with their keys, as outside a batch.
	if _, err := buy(l, "poor", "k-poor", "potion", 1, "gold", 100); rejectionCode(err) != entitlements.CodeInsufficientFunds {
		t.Errorf("retrying the poor purchase: %v", err)
	} else if r := (*entitlements.Rejection)(nil); errors.As(err, &r) && !r.Replayed {
		t.Errorf("retrying the poor purchase was not a replay")
	}
	if s := l.WriterStats(); s.Fallbacks != 0 {
		t.Errorf("stats %+v: the batch fell back to single postings", s)
	}
	assertAuditOK(t, l)
}

func TestTwoPurchasesByOnePlayerInOneBatchApplyInArrivalOrder(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 100})
	outs, errs := entitlements.PurchaseBatch(l, []entitlements.PurchaseRequest{
		purchase("p1", "first", "potion", 1, "gold", 100),
		purchase("p1", "second", "potion", 1, "gold", 100),
		purchase("p1", "first", "potion", 1, "gold", 100), // the client retried while the first was in flight
	})
	if errs[0] != nil || outs[0].Replayed {
		t.Fatalf("first: %v replayed=%v, want the purchase", errs[0], outs[0].Replayed)
	}
	if rejectionCode(errs[1]) != entitlements.CodeInsufficientFunds {
		t.Errorf("second: %v, want insufficient_funds", errs[1])
	}
	if errs[2] != nil || !outs[2].Replayed || !bytes.Equal(outs[2].Body, outs[0].Body) {
		t.Errorf("retry of the first: %v replayed=%v, want the first answer replayed", errs[2], outs[2].Replayed)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gold"] != 0 || h.Items["potion"] != 1 {
		t.Errorf("holdings %+v, want 0 gold and 1 potion", h)
	}
	assertAuditOK(t, l)
}

// killedBatch fails the first batch's transaction between its reads and its
// writes by terminating its backend, as a Postgres restart or a network
// cut would, or by losing the answer to its commit.
func TestABatchThatFailsAsAWholeAppliesEveryPostingOnce(t *testing.T) {
	for _, tt := range []struct {
		name   string
		before bool
	}{
		{"connection killed before the writes", true},
		{"answer to the commit lost", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, pool := newLedger(t)
			var fired atomic.Bool
			before := func(pid uint32) error {
				if !tt.before || !fired.CompareAndSwap(false, true) {
					return nil
				}
				var ok bool
				if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1, 10000)`, int32(pid)).Scan(&ok); err != nil || !ok {
					t.Errorf("terminating backend %d: %v %v", pid, ok, err)
				}
				return nil
			}
			after := func() error {
				if tt.before || !fired.CompareAndSwap(false, true) {
					return nil
				}
				return errors.New("connection lost after COMMIT was sent")
			}
			entitlements.SetWriterHooks(l, before, after)
			var reqs []entitlements.PurchaseRequest
			for i := range 6 {
				player := fmt.Sprint("p", i%3)
				if i < 3 {
					fund(t, l, player, map[string]int64{"gold": 1000})
				}
				reqs = append(reqs, purchase(player, fmt.Sprint("k", i), "potion", 1, "gold", 100))
			}
			outs, errs := entitlements.PurchaseBatch(l, reqs)
			if !fired.Load() {
				t.Fatal("the batch was never interrupted")
			}
			for i := range reqs {
				if errs[i] != nil || outs[i].Replayed {
					t.Errorf("posting %d: %v replayed=%v, want applied (once) and answered as a first answer", i, errs[i], outs[i].Replayed)
				}
			}
			for i := range 3 {
				if h := holdings(t, l, fmt.Sprint("p", i)); h.Currencies["gold"] != 800 || h.Items["potion"] != 2 {
					t.Errorf("p%d holds %+v, want 800 gold and 2 potions", i, h)
				}
			}
			// A client retry after the fallback replays exactly what it got.
			for i, r := range reqs {
				again, err := l.Purchase(context.Background(), r)
				if err != nil || !again.Replayed || !bytes.Equal(again.Body, outs[i].Body) {
					t.Errorf("retry %d: %v replayed=%v, want the answer replayed", i, err, again.Replayed)
				}
			}
			if s := l.WriterStats(); s.Fallbacks != 1 {
				t.Errorf("stats %+v, want one batch fallen back", s)
			}
			assertAuditOK(t, l)
		})
	}
}

func TestConcurrentPurchasesByOnePlayerSpendExactlyTheirFunds(t *testing.T) {
	l, pool := newLedger(t)
	fund(t, l, "whale", map[string]int64{"gold": 50 * 100})
	var wg sync.WaitGroup
	var ok, short, other atomic.Int64
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := buy(l, "whale", fmt.Sprint("k", i), "potion", 1, "gold", 100)
			switch {
			case err == nil:
				ok.Add(1)
			case rejectionCode(err) == entitlements.CodeInsufficientFunds:
				short.Add(1)
			default:
				other.Add(1)
				t.Errorf("purchase %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 50 || short.Load() != 150 || other.Load() != 0 {
		t.Errorf("%d succeeded, %d insufficient_funds, %d other; want 50, 150, 0", ok.Load(), short.Load(), other.Load())
	}
	if h := holdings(t, l, "whale"); h.Currencies["gold"] != 0 || h.Items["potion"] != 50 {
		t.Errorf("holdings %+v, want 0 gold and 50 potions", h)
	}
	assertLedgerCount(t, pool, "whale", entitlements.KindPurchase, 50)
	if s := l.WriterStats(); s.Postings != 200 {
		t.Errorf("stats %+v, want 200 purchases through group commit", s)
	}
	assertAuditOK(t, l)
}

func assertLedgerCount(t *testing.T, pool *pgxpool.Pool, player, kind string, want int) {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM ledger_transactions WHERE player_id = $1 AND kind = $2`,
		player, kind).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != want {
		t.Errorf("%d %s ledger transactions for %s, want %d", n, kind, player, want)
	}
}

// BenchmarkGroupCommitPurchases runs purchases from many goroutines at
// once, over 50 players, through group commit.
func BenchmarkGroupCommitPurchases(b *testing.B) {
	b.Run("uncached", func(b *testing.B) { benchmarkGroupCommit(b, false) })
	b.Run("cached", func(b *testing.B) { benchmarkGroupCommit(b, true) })
}

func benchmarkGroupCommit(b *testing.B, cached bool) {
	var opts []entitlements.Option
	if cached {
		rdb, prefix := testenv.RedisClient(b)
		pool, _ := testenv.NewPool(b)
		c := entitlements.NewCache(rdb, pool, entitlements.CacheConfig{Prefix: prefix})
		opts = append(opts, entitlements.WithCache(c))
	}
	l, _ := newLedger(b, opts...)
	for i := range 50 {
		fund(b, l, fmt.Sprint("p", i), map[string]int64{"gold": catalog.MaxAmount})
	}
	var n atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := buy(l, fmt.Sprint("p", i%50), fmt.Sprint("k", i), "potion", 1, "gold", 100); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	s := l.WriterStats()
	b.ReportMetric(float64(s.Postings)/float64(max(s.Batches, 1)), "purchases/batch")
	b.ReportMetric(float64(s.Fallbacks), "fallbacks")
}

// A key held by a transaction still running makes the whole batch time out
// on its lock; posted one by one, the others go through and only that one
// is told its key is in use.
func TestAKeyInUseFailsOnlyItsOwnPostingInABatch(t *testing.T) {
	l, pool := newLedger(t, entitlements.WithKeyWait(100*time.Millisecond))
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	fund(t, l, "p2", map[string]int64{"gold": 1000})
	ctx := context.Background()
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (player_id, scope, key, fingerprint, outcome, response)
		VALUES ('p1', $1, 'busy', '\x00', 'pending', '{}')`, entitlements.ScopePurchase); err != nil {
		t.Fatal(err)
	}
	_, errs := entitlements.PurchaseBatch(l, []entitlements.PurchaseRequest{
		purchase("p1", "busy", "potion", 1, "gold", 100),
		purchase("p1", "free", "potion", 1, "gold", 100),
		purchase("p2", "other", "potion", 1, "gold", 100),
	})
	if !errors.Is(errs[0], entitlements.ErrIdempotencyKeyInUse) {
		t.Errorf("the held key: %v, want ErrIdempotencyKeyInUse", errs[0])
	}
	if errs[1] != nil || errs[2] != nil {
		t.Errorf("the others: %v, %v; want both applied", errs[1], errs[2])
	}
	if s := l.WriterStats(); s.Fallbacks != 1 {
		t.Errorf("stats %+v, want the batch fallen back once", s)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for player, gold := range map[string]int64{"p1": 900, "p2": 900} {
		if h := holdings(t, l, player); h.Currencies["gold"] != gold {
			t.Errorf("%s holds %d gold, want %d", player, h.Currencies["gold"], gold)
		}
	}
	assertAuditOK(t, l)
}

// TestNoEventForARolledBackPosting: a batch that fails before its commit
// leaves neither its ledger transaction nor its event.
func TestNoEventForARolledBackPosting(t *testing.T) {
	l, pool := newLedger(t)
	fund(t, l, "ev-1", map[string]int64{"gold": 1000})
	var before int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&before); err != nil {
		t.Fatal(err)
	}
	entitlements.SetWriterHooks(l, func(uint32) error { return errors.New("crash before the write") }, nil)
	_, err := l.Purchase(context.Background(), entitlements.PurchaseRequest{PlayerID: "ev-1", IdempotencyKey: "k1",
		ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gold", Amount: 100}})
	if err == nil {
		t.Fatal("the purchase succeeded through a failing writer")
	}
	var after, txs int
	if err := pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM ledger_transactions WHERE kind = 'purchase')`).Scan(&after, &txs); err != nil {
		t.Fatal(err)
	}
	if after != before || txs != 0 {
		t.Errorf("events %d → %d, purchases %d after a rolled-back posting", before, after, txs)
	}
	if before != 1 {
		t.Errorf("the funding grant wrote %d events, want 1", before)
	}
}
