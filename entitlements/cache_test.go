package entitlements_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/migrations"
)

// redisSetup names a Redis topology the cache suite runs against.
type redisSetup struct {
	name   string
	client func(t *testing.T) (redis.UniversalClient, string)
}

var redisSetups = []redisSetup{
	{"single", func(t *testing.T) (redis.UniversalClient, string) { return testenv.RedisClient(t) }},
	{"cluster", func(t *testing.T) (redis.UniversalClient, string) {
		cl := testenv.NewRedisCluster(t)
		c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: cl.Addrs()})
		t.Cleanup(func() { _ = c.Close() })
		return c, "t" + strconv.FormatUint(rand.Uint64(), 36) + ":"
	}},
}

// forEachRedis runs the test against a single Redis and a 3-node cluster.
func forEachRedis(t *testing.T, test func(t *testing.T, rdb redis.UniversalClient, prefix string)) {
	for _, setup := range redisSetups {
		t.Run(setup.name, func(t *testing.T) {
			rdb, prefix := setup.client(t)
			test(t, rdb, prefix)
		})
	}
}

func cachedLedger(t *testing.T, pool *pgxpool.Pool, rdb redis.UniversalClient, prefix string, cfg entitlements.CacheConfig) (*entitlements.Ledger, *entitlements.Cache) {
	t.Helper()
	cfg.Prefix = prefix
	cache := entitlements.NewCache(rdb, pool, cfg)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go cache.RunEpochRefresh(ctx)
	return entitlements.New(pool, staticCatalog{fixtureCatalog(t)}, entitlements.WithCache(cache)), cache
}

func uncached(t *testing.T, pool *pgxpool.Pool) *entitlements.Ledger {
	return entitlements.New(pool, staticCatalog{fixtureCatalog(t)})
}

func sameHoldings(a, b entitlements.Holdings) bool {
	return a.Version == b.Version && fmt.Sprint(a.Currencies) == fmt.Sprint(b.Currencies) && fmt.Sprint(a.Items) == fmt.Sprint(b.Items)
}

func TestCacheServesReadsAndSeesEveryWrite(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		pool, _ := testenv.NewPool(t)
		l, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		fund(t, l, "p1", map[string]int64{"gold": 1000})
		first := holdings(t, l, "p1")
		loads := l.PostgresLoads()
		for i := 0; i < 10; i++ {
			if h := holdings(t, l, "p1"); !sameHoldings(h, first) {
				t.Fatalf("read %d = %+v, want %+v", i, h, first)
			}
		}
		if l.PostgresLoads() != loads {
			t.Errorf("warm reads reached Postgres %d times", l.PostgresLoads()-loads)
		}
		// Read your writes: the state after a purchase is what the next read shows.
		if _, err := buy(l, "p1", "k1", "potion", 2, "gold", 100); err != nil {
			t.Fatal(err)
		}
		h := holdings(t, l, "p1")
		if h.Currencies["gold"] != 800 || h.Items["potion"] != 2 {
			t.Fatalf("after purchase: %+v", h)
		}
		if db := holdings(t, uncached(t, pool), "p1"); !sameHoldings(h, db) {
			t.Fatalf("cache %+v, postgres %+v", h, db)
		}
	})
}

// Writers and cache loads race; once writes stop, the cache must hold the
// committed state, never an older snapshot written late.
func TestCacheNeverKeepsAnOlderSnapshotAfterRacingWrites(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		pool, _ := testenv.NewPool(t)
		// Two replicas sharing Postgres and Redis.
		a, cacheA := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		b, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		fund(t, a, "p1", map[string]int64{"gold": 1_000_000})
		var stop atomic.Bool
		var readers sync.WaitGroup
		for i := 0; i < 8; i++ {
			readers.Add(1)
			go func(i int) {
				defer readers.Done()
				l := a
				if i%2 == 1 {
					l = b
				}
				for !stop.Load() {
					if _, err := l.Holdings(context.Background(), "p1"); err != nil {
						t.Error(err)
						return
					}
					if i%4 == 0 {
						// Force cold loads racing the writers.
						_ = rdb.Del(context.Background(), prefix+"{p1}:holdings").Err()
					}
				}
			}(i)
		}
		var writers sync.WaitGroup
		for w := 0; w < 4; w++ {
			writers.Add(1)
			go func(w int) {
				defer writers.Done()
				l := a
				if w%2 == 1 {
					l = b
				}
				for i := 0; i < 25; i++ {
					var err error
					if i%3 == 0 {
						_, err = l.Grant(context.Background(), entitlements.GrantRequest{PlayerID: "p1",
							IdempotencyKey: fmt.Sprintf("g-%d-%d", w, i), Reason: "race", Currencies: map[string]int64{"gems": 1}})
					} else {
						_, err = buy(l, "p1", fmt.Sprintf("b-%d-%d", w, i), "potion", 1, "gold", 100)
					}
					if err != nil {
						t.Error(err)
					}
				}
			}(w)
		}
		writers.Wait()
		stop.Store(true)
		readers.Wait()
		want := holdings(t, uncached(t, pool), "p1")
		for name, l := range map[string]*entitlements.Ledger{"replica a": a, "replica b": b} {
			if got := holdings(t, l, "p1"); !sameHoldings(got, want) {
				t.Errorf("%s reads %+v, committed %+v", name, got, want)
			}
		}
		// Whatever Redis holds must not be older than the last commit.
		v, err := rdb.HGet(context.Background(), prefix+"{p1}:holdings", "v").Int64()
		if err == nil && v != want.Version {
			t.Errorf("Redis entry at version %d, committed %d", v, want.Version)
		}
		_ = cacheA
	})
}

func TestColdPlayerLoadsOnceUnderConcurrentReads(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		pool, _ := testenv.NewPool(t)
		a, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		b, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		fund(t, uncached(t, pool), "cold", map[string]int64{"gold": 5})
		startA, startB := a.PostgresLoads(), b.PostgresLoads()
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := 0; i < 500; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-gate
				l := a
				if i%2 == 1 {
					l = b
				}
				h, err := l.Holdings(context.Background(), "cold")
				if err != nil || h.Currencies["gold"] != 5 {
					t.Errorf("read %d: %+v %v", i, h, err)
				}
			}(i)
		}
		close(gate)
		wg.Wait()
		loads := a.PostgresLoads() - startA + b.PostgresLoads() - startB
		if loads > 4 {
			t.Errorf("500 concurrent cold reads on two replicas made %d Postgres loads, want at most 4", loads)
		}
		t.Logf("Postgres loads for 500 cold reads: %d", loads)
	})
}

// With Redis gone mid-test, reads and purchases keep working from Postgres,
// and after Redis returns (here: restored with an old entry, as from an old
// snapshot) the cache refuses the stale state.
func TestCacheSurvivesARedisOutage(t *testing.T) {
	pool, _ := testenv.NewPool(t)
	srv := testenv.NewRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr(), DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	l, cache := cachedLedger(t, pool, rdb, "coinop:", entitlements.CacheConfig{BreakerCooldown: 300 * time.Millisecond})
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	before := holdings(t, l, "p1") // cached now
	old, err := rdb.HGetAll(context.Background(), "coinop:{p1}:holdings").Result()
	if err != nil || old["v"] == "" {
		t.Fatalf("no cache entry before the outage: %v %v", old, err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := buy(l, "p1", fmt.Sprintf("outage-%d", i), "potion", 1, "gold", 100); err != nil {
			t.Fatalf("purchase during the outage: %v", err)
		}
		h, err := l.Holdings(context.Background(), "p1")
		if err != nil || h.Currencies["gold"] != 900-int64(i)*100 {
			t.Fatalf("read during the outage: %+v %v", h, err)
		}
	}
	if !cache.BreakerOpen() {
		t.Error("breaker still closed after repeated Redis failures")
	}

	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Redis comes back holding the pre-outage entry.
	if err := rdb.HSet(context.Background(), "coinop:{p1}:holdings", "e", old["e"], "v", old["v"], "d", old["d"]).Err(); err != nil {
		t.Fatal(err)
	}
	want := holdings(t, uncached(t, pool), "p1")
	if want.Version == before.Version {
		t.Fatal("test setup: no write happened during the outage")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := holdings(t, l, "p1")
		if got.Version < want.Version {
			t.Fatalf("served version %d from before the outage, committed %d", got.Version, want.Version)
		}
		if !cache.BreakerOpen() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("breaker did not close after Redis returned")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Back to serving from Redis, with the current state.
	holdings(t, l, "p1")
	loads := l.PostgresLoads()
	if got := holdings(t, l, "p1"); !sameHoldings(got, want) || l.PostgresLoads() != loads {
		t.Errorf("after recovery: %+v (Postgres loads +%d), want %+v from Redis", got, l.PostgresLoads()-loads, want)
	}
}

// A second replica that had no traffic during the outage still refuses the
// stale entry, because the epoch lives in Postgres.
func TestOtherReplicasRefuseEntriesFromBeforeAFailedCacheWrite(t *testing.T) {
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	a, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
	b, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{EpochRefresh: 50 * time.Millisecond})
	fund(t, a, "p1", map[string]int64{"gold": 1000})
	holdings(t, b, "p1")
	old, _ := rdb.HGetAll(context.Background(), prefix+"{p1}:holdings").Result()

	// Replica a commits while its Redis is unreachable.
	dead := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 50 * time.Millisecond, MaxRetries: -1})
	t.Cleanup(func() { _ = dead.Close() })
	cut, _ := cachedLedger(t, pool, dead, prefix, entitlements.CacheConfig{})
	if _, err := buy(cut, "p1", "k", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	// The old entry is still in the shared Redis.
	if cur, _ := rdb.HGet(context.Background(), prefix+"{p1}:holdings", "v").Result(); cur != old["v"] {
		t.Fatalf("setup: entry version %s, want the old %s", cur, old["v"])
	}
	time.Sleep(200 * time.Millisecond) // b's epoch refresh
	if h := holdings(t, b, "p1"); h.Currencies["gold"] != 900 {
		t.Fatalf("replica b served %+v from before the committed purchase", h)
	}
}

// BenchmarkCachedEntitlementCheck measures the game-server check "does this
// player own this item" on a warm cache: one Redis round trip. "alone"
// sends every read on its own round trip; "shared" lets concurrent reads
// share one (the default, CacheConfig.ReadRoundTrips), side by side.
func BenchmarkCachedEntitlementCheck(b *testing.B) {
	pool, _ := testenv.NewPool(b)
	rdb, prefix := testenv.RedisClient(b)
	const players = 256
	for _, bc := range []struct {
		name       string
		roundTrips int
	}{{"alone", 1 << 20}, {"shared", 0}} {
		b.Run(bc.name, func(b *testing.B) {
			cache := entitlements.NewCache(rdb, pool, entitlements.CacheConfig{Prefix: prefix, ReadRoundTrips: bc.roundTrips})
			l := entitlements.New(pool, staticCatalog{fixtureCatalog(b)}, entitlements.WithCache(cache))
			for i := 0; i < players; i++ {
				_, err := l.Grant(context.Background(), entitlements.GrantRequest{PlayerID: fmt.Sprintf("bp-%d", i),
					IdempotencyKey: "fund", Reason: "bench", Items: map[string]int64{"sword": 1}})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := l.Holdings(context.Background(), fmt.Sprintf("bp-%d", i)); err != nil {
					b.Fatal(err)
				}
			}
			loads := l.PostgresLoads()
			var n atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					h, err := l.Holdings(context.Background(), fmt.Sprintf("bp-%d", n.Add(1)%players))
					if err != nil || h.Items["sword"] != 1 {
						b.Errorf("check: %+v %v", h, err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(l.PostgresLoads()-loads)/float64(b.N), "pg-loads/op")
		})
	}
}

// A database created again under the same Redis prefix (dropped and
// recreated, or a second deployment pointed at the same Redis by mistake)
// must not serve the holdings the old one cached: its migrations start the
// cache epoch somewhere else.
func TestARecreatedDatabaseDoesNotServeTheOldOnesCache(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := testenv.RedisClient(t)
	fresh := func() *pgxpool.Pool {
		u := testenv.NewEmptyDatabase(t)
		if err := migrations.Up(ctx, u); err != nil {
			t.Fatal(err)
		}
		pool, err := pgxpool.New(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	oldDB := fresh()
	old, _ := cachedLedger(t, oldDB, rdb, prefix, entitlements.CacheConfig{})
	fund(t, old, "p1", map[string]int64{"gold": 1000})
	if h := holdings(t, old, "p1"); h.Currencies["gold"] != 1000 {
		t.Fatalf("old database: %+v", h)
	}
	newDB := fresh()
	again, _ := cachedLedger(t, newDB, rdb, prefix, entitlements.CacheConfig{})
	if h := holdings(t, again, "p1"); h.Currencies["gold"] != 0 || h.Version != 0 {
		t.Errorf("the new database served the old one's cached holdings: %+v", h)
	}
}

// A committed purchase patches the cached entry with the assets it changed
// and its version, so the next read is served from Redis, not reloaded.
func TestCommittedChangesPatchTheCachedEntry(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		pool, _ := testenv.NewPool(t)
		l, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		fund(t, l, "p1", map[string]int64{"gold": 1000})
		_ = holdings(t, l, "p1") // warm
		loads := l.PostgresLoads()
		out, err := buy(l, "p1", "k1", "potion", 3, "gold", 100)
		if err != nil {
			t.Fatal(err)
		}
		h := holdings(t, l, "p1")
		if h.Version != out.Version || h.Currencies["gold"] != 700 || h.Items["potion"] != 3 {
			t.Fatalf("after the purchase the cache holds %+v, want version %d, 700 gold, 3 potions", h, out.Version)
		}
		if l.PostgresLoads() != loads {
			t.Errorf("the read after the purchase reached Postgres %d times; the entry should have been patched", l.PostgresLoads()-loads)
		}
		if db := holdings(t, uncached(t, pool), "p1"); !sameHoldings(h, db) {
			t.Fatalf("cache %+v, postgres %+v", h, db)
		}
	})
}

// A purchase committed by a replica that died before updating the cache
// leaves Redis with the older entry. The client's retry, replayed on another
// replica, must repair it: the next read there shows the purchase.
func TestAReplayRepairsTheCacheAfterALostAnswer(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		pool, _ := testenv.NewPool(t)
		b, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		fund(t, b, "p1", map[string]int64{"gold": 1000})
		if h := holdings(t, b, "p1"); h.Currencies["gold"] != 1000 {
			t.Fatalf("warm: %+v", h)
		}
		// Replica A commits and dies before its cache write: here, a ledger
		// with no cache at all.
		if _, err := buy(uncached(t, pool), "p1", "lost", "potion", 2, "gold", 100); err != nil {
			t.Fatal(err)
		}
		if h := holdings(t, b, "p1"); h.Currencies["gold"] != 1000 {
			t.Fatalf("test setup: the cache already shows the purchase: %+v", h)
		}
		out, err := buy(b, "p1", "lost", "potion", 2, "gold", 100)
		if err != nil || !out.Replayed {
			t.Fatalf("retry: %+v, %v; want a replay", out, err)
		}
		h := holdings(t, b, "p1")
		if db := holdings(t, uncached(t, pool), "p1"); !sameHoldings(h, db) || h.Currencies["gold"] != 800 {
			t.Errorf("after the replayed retry the cache serves %+v, Postgres holds %+v", h, db)
		}
	})
}

// Redis restarted from an older snapshot is caught on the first read after
// the restart, not at the next periodic identity check (F2): the periodic
// check here is an hour away.
func TestARedisRestoredFromAnOldSnapshotIsNeverServed(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	srv := testenv.NewRedisServer(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	l, _ := cachedLedger(t, pool, rdb, "coinop:", entitlements.CacheConfig{EpochRefresh: time.Hour})
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	holdings(t, l, "p1") // cached
	snapshot, err := rdb.HGetAll(ctx, "coinop:{p1}:holdings").Result()
	if err != nil || snapshot["v"] == "" {
		t.Fatalf("no entry to snapshot: %v %v", snapshot, err)
	}
	if _, err := buy(l, "p1", "k1", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Restored from the snapshot taken before the purchase.
	if err := redis.NewClient(&redis.Options{Addr: srv.Addr()}).HSet(ctx, "coinop:{p1}:holdings", snapshot).Err(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if h := holdings(t, l, "p1"); h.Currencies["gold"] != 900 {
			t.Fatalf("read %d after the restore served %+v, want the 900 gold Postgres holds", i, h)
		}
	}
	many, err := l.HoldingsMany(ctx, []string{"p1"})
	if err != nil || many["p1"].Currencies["gold"] != 900 {
		t.Errorf("batch read after the restore: %+v %v", many, err)
	}
}

// With two replicas, the one that notices a Redis restart second finds the
// new run ids already recorded by the first: it must still take the bumped
// epoch at once, not serve the restored entries until its next refresh.
func TestTheSecondReplicaToSeeARedisRestartServesNothingStale(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	srv := testenv.NewRedisServer(t)
	client := func() redis.UniversalClient {
		c := redis.NewClient(&redis.Options{Addr: srv.Addr()})
		t.Cleanup(func() { _ = c.Close() })
		return c
	}
	a, _ := cachedLedger(t, pool, client(), "coinop:", entitlements.CacheConfig{EpochRefresh: time.Hour})
	b, _ := cachedLedger(t, pool, client(), "coinop:", entitlements.CacheConfig{EpochRefresh: time.Hour})
	fund(t, a, "p1", map[string]int64{"gold": 1000})
	holdings(t, a, "p1")
	holdings(t, b, "p1")
	rdb := client()
	snapshot, err := rdb.HGetAll(ctx, "coinop:{p1}:holdings").Result()
	if err != nil || snapshot["v"] == "" {
		t.Fatalf("no entry to snapshot: %v %v", snapshot, err)
	}
	if _, err := buy(a, "p1", "k1", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	holdings(t, b, "p1")
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := client().HSet(ctx, "coinop:{p1}:holdings", snapshot).Err(); err != nil {
		t.Fatal(err)
	}
	for _, l := range []*entitlements.Ledger{b, a} { // b notices first and records the new ids
		if h := holdings(t, l, "p1"); h.Currencies["gold"] != 900 {
			t.Errorf("after the restore a replica served %+v, want the 900 gold Postgres holds", h)
		}
	}
}
