package entitlements

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/internal/testenv"
)

type fixedCatalog struct{ snap *catalog.Snapshot }

func (s fixedCatalog) Current() *catalog.Snapshot { return s.snap }

func goldCatalog(t *testing.T) fixedCatalog {
	t.Helper()
	snap, err := catalog.NewSnapshot(1, time.Now(), &catalog.Catalog{
		Currencies: []catalog.Currency{{ID: "gold", Name: "Gold"}},
		Items:      []catalog.Item{{ID: "potion", Name: "P", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gold", Amount: 1}}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return fixedCatalog{snap}
}

func grantGold(t *testing.T, l *Ledger, key string) {
	t.Helper()
	if _, err := l.Grant(context.Background(), GrantRequest{PlayerID: "p1", IdempotencyKey: key, Reason: "r", Currencies: map[string]int64{"gold": 100}}); err != nil {
		t.Fatal(err)
	}
}

// A cold load that read Postgres before a commit whose cache write failed
// must not store its older snapshot as current under the new epoch.
func TestALoadRacingAnEpochBumpIsNotServedAfterwards(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	cat := goldCatalog(t)
	ca := NewCache(rdb, pool, CacheConfig{Prefix: prefix})
	a := New(pool, cat, WithCache(ca))
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = dead.Close() })
	b := New(pool, cat, WithCache(NewCache(dead, pool, CacheConfig{Prefix: prefix})))

	grantGold(t, a, "k1") // gold 100, cached
	rdb.Del(ctx, prefix+"{p1}:holdings")
	loaded, release := make(chan struct{}), make(chan struct{})
	realLoad := ca.load
	ca.load = func(ctx context.Context, p string) (Holdings, error) {
		h, err := realLoad(ctx, p)
		close(loaded)
		<-release
		return h, err
	}
	done := make(chan struct{})
	go func() { _, _ = a.Holdings(ctx, "p1"); close(done) }()
	<-loaded
	grantGold(t, b, "k2") // replica b commits 200; its Redis write fails; epoch bumped
	if err := ca.refreshEpoch(ctx); err != nil {
		t.Fatal(err)
	}
	close(release)
	<-done
	ca.load = realLoad

	c := New(pool, cat, WithCache(NewCache(rdb, pool, CacheConfig{Prefix: prefix})))
	for name, l := range map[string]*Ledger{"a": a, "c": c} {
		h, err := l.Holdings(ctx, "p1")
		if err != nil {
			t.Fatal(err)
		}
		if h.Currencies["gold"] != 200 {
			t.Errorf("replica %s serves gold=%d (version %d) after a committed change to 200", name, h.Currencies["gold"], h.Version)
		}
	}
}

// Redis back with older data (a snapshot restore, a failover to a lagging
// replica) after the breaker closes: the epoch moves, the old entry is refused.
func TestRedisBackWithOlderDataIsNotServed(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	ca := NewCache(rdb, pool, CacheConfig{Prefix: prefix})
	a := New(pool, goldCatalog(t), WithCache(ca))
	grantGold(t, a, "k1")
	dump, err := rdb.Dump(ctx, prefix+"{p1}:holdings").Result()
	if err != nil {
		t.Fatal(err)
	}
	grantGold(t, a, "k2")
	if err := rdb.RestoreReplace(ctx, prefix+"{p1}:holdings", 0, dump).Err(); err != nil {
		t.Fatal(err)
	}
	ca.suspect.Store(true) // what the breaker does when it closes after an outage
	if h, _ := a.Holdings(ctx, "p1"); h.Currencies["gold"] != 200 {
		t.Errorf("served gold=%d from the older data, committed 200", h.Currencies["gold"])
	}
}

// A Redis restart that no request noticed is caught by its new run id.
func TestARedisRestartIsNoticedByItsRunID(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	srv := testenv.NewRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ca := NewCache(rdb, pool, CacheConfig{Prefix: "coinop:"})
	a := New(pool, goldCatalog(t), WithCache(ca))
	if err := ca.checkRedisIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	grantGold(t, a, "k1")
	old, _ := rdb.HGetAll(ctx, "coinop:{p1}:holdings").Result()
	grantGold(t, a, "k2")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// It comes back holding the entry from before the second grant.
	if err := rdb.HSet(ctx, "coinop:{p1}:holdings", "e", old["e"], "v", old["v"], "d", old["d"]).Err(); err != nil {
		t.Fatal(err)
	}
	if err := ca.checkRedisIdentity(ctx); err != nil { // RunEpochRefresh does this on every tick
		t.Fatal(err)
	}
	if h, _ := a.Holdings(ctx, "p1"); h.Currencies["gold"] != 200 {
		t.Errorf("served gold=%d from before the restart, committed 200", h.Currencies["gold"])
	}
}

// Entries a process cached before its first periodic identity check must
// survive that check: the Redis identity is settled before anything is
// trusted, not by the first tick, so how long a test or a request takes
// decides nothing.
func TestTheFirstIdentityCheckDoesNotDiscardWarmEntries(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	c := NewCache(rdb, pool, CacheConfig{Prefix: prefix})
	l := New(pool, goldCatalog(t), WithCache(c))
	grantGold(t, l, "k1")
	if _, err := l.Holdings(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	loads := l.PostgresLoads()
	// What RunEpochRefresh does on its first tick.
	if err := c.checkRedisIdentity(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Holdings(ctx, "p1"); err != nil {
		t.Fatal(err)
	}
	if n := l.PostgresLoads() - loads; n != 0 {
		t.Fatalf("the first identity check discarded a warm entry: %d Postgres loads after it", n)
	}
}

// When a committed change reaches neither Redis nor the epoch (both time
// out under overload), the bump is owed: this process trusts no entry until
// it has made it, and once it has, every other replica refuses the entries
// from before (F4).
func TestAFailedBumpIsOwedUntilMade(t *testing.T) {
	ctx := context.Background()
	t.Run("a change that reached neither Redis nor Postgres leaves the bump owed", func(t *testing.T) {
		pool, _ := testenv.NewPool(t)
		dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
		t.Cleanup(func() { _ = dead.Close() })
		c := NewCache(dead, pool, CacheConfig{})
		pool.Close() // Postgres out of reach too
		c.patched(ctx, []holdingsPatch{{PlayerID: "p1", Prev: 1, Version: 2}})
		if !c.pendingBump.Load() || !c.epochUnknown.Load() {
			t.Errorf("pending %v, epoch unknown %v: the missed bump is forgotten", c.pendingBump.Load(), c.epochUnknown.Load())
		}
	})
	t.Run("the owed bump is made before any entry is trusted", func(t *testing.T) {
		pool, _ := testenv.NewPool(t)
		rdb, prefix := testenv.RedisClient(t)
		a := NewCache(rdb, pool, CacheConfig{Prefix: prefix})
		b := NewCache(rdb, pool, CacheConfig{Prefix: prefix})
		la, lb := New(pool, goldCatalog(t), WithCache(a)), New(pool, goldCatalog(t), WithCache(b))
		grantGold(t, la, "k1")
		if _, err := lb.Holdings(ctx, "p1"); err != nil { // b caches the entry
			t.Fatal(err)
		}
		var before int64
		if err := pool.QueryRow(ctx, `SELECT epoch FROM cache_state`).Scan(&before); err != nil {
			t.Fatal(err)
		}
		a.bumpFailed() // as if a's next change had reached neither
		if !a.usable(ctx) {
			t.Fatal("a cannot use the cache although Postgres and Redis are back")
		}
		var after int64
		if err := pool.QueryRow(ctx, `SELECT epoch FROM cache_state`).Scan(&after); err != nil {
			t.Fatal(err)
		}
		if after <= before || a.pendingBump.Load() {
			t.Fatalf("epoch %d -> %d, pending %v: the owed bump was not made", before, after, a.pendingBump.Load())
		}
		if err := b.refreshEpoch(ctx); err != nil {
			t.Fatal(err)
		}
		loads := lb.PostgresLoads()
		if _, err := lb.Holdings(ctx, "p1"); err != nil {
			t.Fatal(err)
		}
		if lb.PostgresLoads() == loads {
			t.Error("another replica still trusts an entry from before the owed bump")
		}
	})
}

// A read that misses while a cold load of the same player is in flight
// must not take that load's result if the load read Postgres before a
// change that was committed (and reported) before the read began.
func TestAReadDoesNotShareALoadFromBeforeACommit(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	ca := NewCache(rdb, pool, CacheConfig{Prefix: prefix})
	a := New(pool, goldCatalog(t), WithCache(ca))
	grantGold(t, a, "k1") // gold 100, cached
	rdb.Del(ctx, prefix+"{p1}:holdings")
	loaded, release := make(chan struct{}), make(chan struct{})
	var first sync.Once
	realLoad := ca.load
	ca.load = func(ctx context.Context, p string) (Holdings, error) {
		h, err := realLoad(ctx, p)
		first.Do(func() {
			close(loaded)
			<-release
		})
		return h, err
	}
	go func() { _, _ = a.Holdings(ctx, "p1") }() // a cold load, held after reading gold 100
	<-loaded
	grantGold(t, a, "k2") // gold 200 committed; the entry is left a version floor
	got := make(chan Holdings, 1)
	go func() {
		h, err := a.Holdings(ctx, "p1")
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	// Release the held load once the second read has missed (and so joins
	// the load in flight, or starts its own).
	for deadline := time.Now().Add(10 * time.Second); counterValue(ca.metrics.misses) < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second read did not miss")
		}
	}
	close(release)
	if h := <-got; h.Currencies["gold"] != 200 {
		t.Fatalf("a read begun after the grant was answered %v, from a load begun before it", h.Currencies)
	}
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// While Redis is down every committed batch needs an epoch bump. They are
// shared: many failed writes at once make a few bumps, not one UPDATE each
// queueing on the cache_state row, and each write's bump still starts after
// the write failed, so it covers that write.
func TestFailedWritesShareEpochBumps(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = dead.Close() })
	c := NewCache(dead, pool, CacheConfig{})
	epoch := func() int64 {
		var e int64
		if err := pool.QueryRow(ctx, `SELECT epoch FROM cache_state`).Scan(&e); err != nil {
			t.Error(err)
		}
		return e
	}
	start := epoch()
	const writers = 200
	var wg sync.WaitGroup
	failures := make(chan string, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			before := epoch() // the write fails after this: the bump must come later
			if err := c.bumpAfterFailedWrite(ctx); err != nil {
				failures <- fmt.Sprintf("writer %d: %v", i, err)
				return
			}
			if after := epoch(); after <= before {
				failures <- fmt.Sprintf("writer %d: epoch %d before its failure, %d after its bump", i, before, after)
			}
		}()
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Error(f)
	}
	bumps := epoch() - start
	if bumps < 1 || bumps >= writers {
		t.Errorf("%d failed writes made %d bumps; want at least one and fewer than one each", writers, bumps)
	}
	t.Logf("%d failed writes, %d bumps", writers, bumps)
}
