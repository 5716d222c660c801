package entitlements

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"
	"golang.org/x/sync/singleflight"
)

// Cache keeps each player's holdings in Redis for the hot read path.
// Postgres stays the system of record; the cache may lose anything, but it
// never serves holdings older than a change this process or another has
// committed and reported, because:
//
//   - every entry carries the player's ledger version, and entries are
//     written with a compare-on-version script, so an older snapshot never
//     overwrites a newer one whichever writer finishes last;
//   - every entry carries the cache epoch from Postgres (table cache_state);
//     a committed change that cannot be written to Redis bumps the epoch, so
//     every replica refuses entries from before it, which also covers a
//     Redis that restarts with old data;
//   - a Redis that comes back with other data than it had (a restart from a
//     snapshot, a failover to a lagging replica) is noticed by its run ids,
//     or by the breaker closing after an outage, and also bumps the epoch;
//   - an entry is stamped with the epoch in force before Postgres was read,
//     so a load that raced a bump can never look current;
//   - while Redis is failing, a circuit breaker sends reads to Postgres.
//
// Keys: <prefix>{<player>}:holdings (hash: e epoch, v version, d data) and
// <prefix>{<player>}:loading (a short lock so replicas load a cold player
// once). The hash tag keeps a player's keys in one Redis Cluster slot.
type Cache struct {
	rdb      redis.UniversalClient
	cfg      CacheConfig
	log      *slog.Logger
	db       *pgxpool.Pool
	load     func(context.Context, string) (Holdings, error)
	loadMany func(context.Context, []string) (map[string]Holdings, error)
	group    singleflight.Group
	breaker  *gobreaker.CircuitBreaker[any]
	epoch    atomic.Int64
	// epochUnknown is set when this process cannot be sure it knows the
	// current epoch (at start, after Redis recovers, after a failed bump);
	// entries are not trusted until the epoch is read from Postgres again.
	epochUnknown atomic.Bool
	// suspect is set when Redis may hold data older than what was written
	// to it; the epoch is bumped before any entry is trusted again.
	suspect atomic.Bool
	// pendingBump is set when a committed change reached neither Redis nor
	// the epoch: until a bump succeeds, this process trusts no entry, and
	// the bump is retried (by the next read and by RunEpochRefresh) so the
	// other replicas stop trusting theirs as soon as Postgres takes it.
	pendingBump atomic.Bool
	// dials counts the Redis connections dialed, and verifiedDials how many
	// of them an identity check has covered: the server behind a new
	// connection may have restarted from an old snapshot, so an entry read
	// while dials > verifiedDials is trusted only after a check (one at a
	// time, shared through identityCheck).
	dials, verifiedDials atomic.Uint64
	identityCheck        singleflight.Group
	// scriptLoaded is set once patchScript is known to Redis.
	scriptLoaded atomic.Bool
	metrics      cacheMetrics
	// reader sends the entry reads of concurrent checks together.
	reader entryReader
	// loads counts the cold loads begun, so a read shares only a load that
	// began after it did (see holdings).
	loads atomic.Uint64
	// bumps coalesces the epoch bumps of failed cache writes (see
	// bumpAfterFailedWrite).
	bumps bumpQueue
}

// bumpQueue shares one epoch bump among the failed cache writes waiting for
// one. While Redis is down every committed batch needs a bump; one UPDATE
// each, from every replica, would queue on the cache_state row and hold a
// pool connection apiece while they wait, starving the purchases of
// connections (the chaos suite's Redis kill saw acknowledgements drop to a
// few a second and purchases time out). A bump whose UPDATE runs after a
// write failed covers that write, so the writes that fail while one bump
// runs all wait for the next, which starts when it ends: at most one bump
// runs per process, and one more is queued.
type bumpQueue struct {
	mu   sync.Mutex // guards next
	next *bumpCall  // the bump that writes failing now will share
	run  sync.Mutex // held by the bump running
}

type bumpCall struct {
	done chan struct{}
	err  error
}

// CacheConfig tunes the cache; zero values take the defaults shown.
type CacheConfig struct {
	// Prefix starts every key ("coinop:"). It must not contain '{'.
	Prefix string
	// TTL is how long an entry lives (10m); each write adds up to 10% jitter
	// so entries written together do not expire together.
	TTL time.Duration
	// EpochRefresh is how often the epoch is re-read from Postgres (250ms).
	EpochRefresh time.Duration
	// BreakerCooldown is how long reads bypass Redis after it fails (2s).
	BreakerCooldown time.Duration
	// LockWait is how long a replica waits for another replica loading the
	// same cold player before loading it itself (150ms).
	LockWait time.Duration
	// ReadRoundTrips is how many entry reads may be in flight to Redis
	// before further reads wait to share the next round trip, as one
	// pipeline (GOMAXPROCS). See entryReader.
	ReadRoundTrips int
	Logger         *slog.Logger
}

// NewCache returns a cache over rdb whose epoch lives in db; pass it to New
// with WithCache.
func NewCache(rdb redis.UniversalClient, db *pgxpool.Pool, cfg CacheConfig) *Cache {
	if cfg.Prefix == "" {
		cfg.Prefix = "coinop:"
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 10 * time.Minute
	}
	if cfg.EpochRefresh <= 0 {
		cfg.EpochRefresh = 250 * time.Millisecond
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = 2 * time.Second
	}
	if cfg.LockWait <= 0 {
		cfg.LockWait = 150 * time.Millisecond
	}
	if cfg.ReadRoundTrips <= 0 {
		cfg.ReadRoundTrips = runtime.GOMAXPROCS(0)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cache{rdb: rdb, db: db, cfg: cfg, log: cfg.Logger, metrics: newCacheMetrics()}
	c.reader = entryReader{c: c, max: cfg.ReadRoundTrips}
	c.epochUnknown.Store(true)
	c.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:    "redis",
		Timeout: cfg.BreakerCooldown,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= 3
		},
		IsSuccessful: func(err error) bool { return err == nil || errors.Is(err, redis.Nil) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			c.metrics.breaker.Set(float64(to))
			c.log.Warn("redis circuit breaker", slog.String("from", from.String()), slog.String("to", to.String()))
			if to == gobreaker.StateClosed {
				// Redis is back, possibly restarted with old data.
				c.suspect.Store(true)
			}
		},
	})
	rdb.AddHook(dialWatch{c})
	return c
}

func (c *Cache) holdingsKey(player string) string { return c.cfg.Prefix + "{" + player + "}:holdings" }
func (c *Cache) loadingKey(player string) string  { return c.cfg.Prefix + "{" + player + "}:loading" }

// storeScript writes an entry unless the stored one is newer: a higher
// epoch, or the same epoch and a higher version.
var storeScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'e', 'v')
local ce, cv = tonumber(cur[1]), tonumber(cur[2])
local ne, nv = tonumber(ARGV[1]), tonumber(ARGV[2])
if ce and cv and (ce > ne or (ce == ne and cv > nv)) then
  return 0
end
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[4])
return 1
`)

// do runs one Redis call through the breaker.
func (c *Cache) do(fn func() error) error {
	_, err := c.breaker.Execute(func() (any, error) { return nil, fn() })
	if err != nil && !errors.Is(err, redis.Nil) {
		if !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests) {
			c.metrics.redisErrors.Inc()
		}
	}
	return err
}

// usable reports whether entries may be read now.
func (c *Cache) usable(ctx context.Context) bool {
	if c.breaker.State() == gobreaker.StateOpen {
		return false
	}
	if c.suspect.Load() {
		if err := c.bumpEpochAfterReconnect(ctx); err != nil {
			return false
		}
		c.suspect.Store(false)
	}
	if c.unverifiedDials() {
		if err := c.verifyIdentity(ctx); err != nil {
			return false
		}
	}
	if c.epochUnknown.Load() {
		if err := c.establishEpoch(ctx); err != nil {
			return false
		}
	}
	return true
}

func (c *Cache) unverifiedDials() bool { return c.dials.Load() > c.verifiedDials.Load() }

// verifyIdentity checks the Redis run ids (bumping the epoch if they
// changed) and marks every connection dialed before it started as covered.
// Concurrent callers share one check.
func (c *Cache) verifyIdentity(ctx context.Context) error {
	_, err, _ := c.identityCheck.Do("identity", func() (any, error) {
		upTo := c.dials.Load()
		if err := c.checkRedisIdentity(ctx); err != nil {
			return nil, err
		}
		for {
			cur := c.verifiedDials.Load()
			if upTo <= cur || c.verifiedDials.CompareAndSwap(cur, upTo) {
				return nil, nil
			}
		}
	})
	return err
}

// dialWatch counts every connection go-redis dials.
type dialWatch struct{ c *Cache }

func (d dialWatch) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err == nil {
			d.c.dials.Add(1)
		}
		return conn, err
	}
}

func (d dialWatch) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (d dialWatch) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// establishEpoch learns the epoch before any entry is trusted (at start, or
// after losing Postgres). It first makes sure the Redis we talk to is the
// one the epoch was recorded for: left to the periodic check, the first
// tick would bump the epoch under entries this process had already served
// and cached, and a Redis restored from an old snapshot would be trusted
// until then.
func (c *Cache) establishEpoch(ctx context.Context) error {
	if c.pendingBump.Load() {
		if err := c.bumpEpoch(ctx, ""); err != nil {
			return err
		}
		c.pendingBump.Store(false)
		return nil
	}
	if err := c.checkRedisIdentity(ctx); err != nil {
		return err
	}
	return c.refreshEpoch(ctx)
}

// bumpEpoch invalidates every entry on every replica. With redisIDs set it
// bumps only if no other replica has already recorded those run ids.
func (c *Cache) bumpEpoch(ctx context.Context, redisIDs string) error {
	var epoch int64
	var err error
	if redisIDs == "" {
		err = c.db.QueryRow(ctx, `UPDATE cache_state SET epoch = epoch + 1 RETURNING epoch`).Scan(&epoch)
	} else {
		err = c.db.QueryRow(ctx, `UPDATE cache_state SET epoch = epoch + 1, redis_ids = $1
			WHERE redis_ids <> $1 RETURNING epoch`, redisIDs).Scan(&epoch)
		if errors.Is(err, pgx.ErrNoRows) {
			return c.refreshEpoch(ctx)
		}
	}
	if err != nil {
		return fmt.Errorf("entitlements: bump cache epoch: %w", err)
	}
	c.metrics.epochBumps.Inc()
	c.setEpoch(epoch)
	c.epochUnknown.Store(false)
	return nil
}

// bumpEpochAfterReconnect invalidates every entry once Redis is back after
// an outage (it may have restarted with older data), and records the run
// ids it came back with, so the periodic identity check does not bump again
// under the entries cached since.
func (c *Cache) bumpEpochAfterReconnect(ctx context.Context) error {
	ids, err := c.redisRunIDs(ctx)
	if err != nil || ids == "" {
		return c.bumpEpoch(ctx, "")
	}
	var epoch int64
	if err := c.db.QueryRow(ctx, `UPDATE cache_state SET epoch = epoch + 1, redis_ids = $1 RETURNING epoch`, ids).Scan(&epoch); err != nil {
		return fmt.Errorf("entitlements: bump cache epoch: %w", err)
	}
	c.metrics.epochBumps.Inc()
	c.setEpoch(epoch)
	c.epochUnknown.Store(false)
	return nil
}

// checkRedisIdentity compares the run ids of the Redis servers with those
// recorded in Postgres; different ones mean Redis restarted or failed over,
// possibly with older data, so the epoch moves.
func (c *Cache) checkRedisIdentity(ctx context.Context) error {
	ids, err := c.redisRunIDs(ctx)
	if err != nil || ids == "" {
		return err
	}
	var recorded string
	var epoch int64
	if err := c.db.QueryRow(ctx, `SELECT redis_ids, epoch FROM cache_state`).Scan(&recorded, &epoch); err != nil {
		return fmt.Errorf("entitlements: read redis ids: %w", err)
	}
	if recorded == ids {
		// Another replica may have seen the restart first and bumped the
		// epoch: take its epoch now, not at the next refresh, so entries
		// from before the restart are refused here too.
		c.setEpoch(epoch)
		return nil
	}
	if recorded != "" {
		c.log.Warn("redis restarted or failed over; cached entries are discarded", slog.String("was", recorded), slog.String("now", ids))
	}
	return c.bumpEpoch(ctx, ids)
}

func (c *Cache) redisRunIDs(ctx context.Context) (string, error) {
	var ids []string
	var mu sync.Mutex
	collect := func(ctx context.Context, client *redis.Client) error {
		info, err := client.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
				mu.Lock()
				ids = append(ids, v)
				mu.Unlock()
			}
		}
		return nil
	}
	var err error
	switch r := c.rdb.(type) {
	case *redis.ClusterClient:
		err = r.ForEachMaster(ctx, collect)
	case *redis.Client:
		err = collect(ctx, r)
	default:
		return "", nil // Sentinel/ring: rely on the breaker and failed writes
	}
	if err != nil {
		return "", err
	}
	sort.Strings(ids)
	return strings.Join(ids, ","), nil
}

func (c *Cache) refreshEpoch(ctx context.Context) error {
	var epoch int64
	if err := c.db.QueryRow(ctx, `SELECT epoch FROM cache_state`).Scan(&epoch); err != nil {
		return fmt.Errorf("entitlements: read cache epoch: %w", err)
	}
	c.setEpoch(epoch)
	c.epochUnknown.Store(false)
	return nil
}

// bumpAfterFailedWrite bumps the epoch for a committed change that Redis
// did not take, sharing the bump with every other write that failed before
// it starts (see bumpQueue). The first writer to find no bump queued leads
// it: it waits for the running bump to end, closes the queue to later
// arrivals, then bumps; those that joined wait for its outcome.
func (c *Cache) bumpAfterFailedWrite(ctx context.Context) error {
	q := &c.bumps
	q.mu.Lock()
	call, lead := q.next, false
	if call == nil {
		call, lead = &bumpCall{done: make(chan struct{})}, true
		q.next = call
	}
	q.mu.Unlock()
	if !lead {
		select {
		case <-call.done:
			return call.err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q.run.Lock()
	q.mu.Lock()
	q.next = nil // writes failing from now on need a bump that starts later
	q.mu.Unlock()
	call.err = c.bumpEpoch(ctx, "")
	q.run.Unlock()
	close(call.done)
	return call.err
}

// bumpFailed records that a bump the cache needed did not happen.
func (c *Cache) bumpFailed() {
	c.pendingBump.Store(true)
	c.epochUnknown.Store(true)
}

func (c *Cache) setEpoch(e int64) {
	for {
		cur := c.epoch.Load()
		if e <= cur || c.epoch.CompareAndSwap(cur, e) {
			return
		}
	}
}

// RunEpochRefresh re-reads the epoch from Postgres until ctx ends, so a bump
// by another replica takes effect here within CacheConfig.EpochRefresh.
func (c *Cache) RunEpochRefresh(ctx context.Context) {
	t := time.NewTicker(c.cfg.EpochRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if c.breaker.State() == gobreaker.StateClosed {
				if err := c.checkRedisIdentity(ctx); err != nil && ctx.Err() == nil {
					c.log.Debug("redis identity check failed", slog.Any("error", err))
				}
			}
			if c.pendingBump.Load() {
				// A plain refresh would trust the old epoch again.
				if err := c.establishEpoch(ctx); err != nil && ctx.Err() == nil {
					c.log.Warn("cache epoch bump still failing", slog.Any("error", err))
				}
				continue
			}
			if err := c.refreshEpoch(ctx); err != nil && ctx.Err() == nil {
				c.epochUnknown.Store(true)
				c.log.Warn("cache epoch refresh failed", slog.Any("error", err))
			}
		}
	}
}

// get reads one entry; ok is false on a miss or an entry from an old epoch.
func (c *Cache) get(ctx context.Context, player string) (h Holdings, ok bool, err error) {
	vals, err := c.reader.read(ctx, c.holdingsKey(player))
	if err != nil {
		return Holdings{}, false, err
	}
	return c.decodeEntry(player, vals)
}

func (c *Cache) decodeEntry(player string, vals []any) (Holdings, bool, error) {
	if len(vals) != 3 || vals[0] == nil || vals[1] == nil || vals[2] == nil {
		return Holdings{}, false, nil
	}
	es, _ := vals[0].(string)
	vs, _ := vals[1].(string)
	ds, _ := vals[2].(string)
	epoch, err1 := strconv.ParseInt(es, 10, 64)
	version, err2 := strconv.ParseInt(vs, 10, 64)
	if err1 != nil || err2 != nil {
		return Holdings{}, false, nil
	}
	if epoch != c.epoch.Load() {
		c.metrics.staleRefusals.Inc()
		return Holdings{}, false, nil
	}
	h := Holdings{PlayerID: player, Version: version}
	if err := decodeHoldings([]byte(ds), &h); err != nil {
		return Holdings{}, false, nil
	}
	return h, true, nil
}

// store writes h, stamped with the current epoch, unless the cache holds
// something newer. Use it for state read after the change committed.
func (c *Cache) store(ctx context.Context, h Holdings) error {
	return c.storeAt(ctx, h, c.epoch.Load())
}

// storeAt writes h stamped with epoch: for a load, the epoch in force
// before Postgres was read, so a bump during the load makes it stale.
func (c *Cache) storeAt(ctx context.Context, h Holdings, epoch int64) error {
	data, err := json.Marshal(holdingsJSON{Currencies: h.Currencies, Items: h.Items, Subscriptions: h.Subscriptions})
	if err != nil {
		return err
	}
	ttl := c.cfg.TTL + time.Duration(rand.Int64N(int64(c.cfg.TTL/10)+1))
	return c.do(func() error {
		return storeScript.Run(ctx, c.rdb, []string{c.holdingsKey(h.PlayerID)},
			epoch, h.Version, data, ttl.Milliseconds()).Err()
	})
}

// holdings is the cached read path behind Ledger.Holdings.
func (c *Cache) holdings(ctx context.Context, player string) (Holdings, error) {
	if !c.usable(ctx) {
		c.metrics.bypass.Inc()
		return c.load(ctx, player)
	}
	before, began := c.epoch.Load(), c.loads.Load()
	h, ok, err := c.get(ctx, player)
	if err != nil {
		c.metrics.bypass.Inc()
		return c.load(ctx, player)
	}
	if ok && c.unverifiedDials() {
		// The read may have gone over a new connection, to a Redis
		// restarted with older data. Check its identity before trusting
		// the entry; if the epoch moved since before the read (this check
		// or a concurrent one bumped it), the entry is from before it.
		if err := c.verifyIdentity(ctx); err != nil {
			c.metrics.bypass.Inc()
			return c.load(ctx, player)
		}
		ok = c.epoch.Load() == before
	}
	if ok {
		c.metrics.hits.Inc()
		return h, nil
	}
	c.metrics.misses.Inc()
	// One load per player per process at a time; the caller's deadline
	// still applies to its own wait. A load already in flight is shared
	// only if it began after this read did: one that began before may have
	// read Postgres before a change this caller must see (it was committed
	// and reported before the read), so the caller waits for it and then
	// takes the next load.
	for {
		ch := c.group.DoChan(player, func() (any, error) {
			began := c.loads.Add(1)
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			h, err := c.fill(fctx, player)
			return sharedLoad{h, began}, err
		})
		select {
		case r := <-ch:
			if r.Err != nil {
				return Holdings{}, r.Err
			}
			if l := r.Val.(sharedLoad); l.began > began {
				return l.h, nil
			}
		case <-ctx.Done():
			return Holdings{}, ctx.Err()
		}
	}
}

// sharedLoad is a cold load's result and when it began (Cache.loads).
type sharedLoad struct {
	h     Holdings
	began uint64
}

// fill loads a cold player. Across replicas, the one that takes the
// loading lock reads Postgres; the others wait briefly for its entry.
func (c *Cache) fill(ctx context.Context, player string) (Holdings, error) {
	var locked bool
	err := c.do(func() error {
		var err error
		locked, err = c.rdb.SetNX(ctx, c.loadingKey(player), "1", time.Second).Result()
		return err
	})
	if err == nil && !locked {
		deadline := time.Now().Add(c.cfg.LockWait)
		for time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			if h, ok, err := c.get(ctx, player); err == nil && ok {
				return h, nil
			} else if err != nil {
				break
			}
		}
	}
	epoch := c.epoch.Load()
	h, err := c.load(ctx, player)
	if err != nil {
		return Holdings{}, err
	}
	if c.usable(ctx) {
		_ = c.storeAt(ctx, h, epoch)
		if locked {
			_ = c.do(func() error { return c.rdb.Del(ctx, c.loadingKey(player)).Err() })
		}
	}
	return h, nil
}

// holdingsMany is the cached batch read: one pipelined round trip to Redis,
// one Postgres query for all misses.
func (c *Cache) holdingsMany(ctx context.Context, players []string) (map[string]Holdings, error) {
	if !c.usable(ctx) {
		c.metrics.bypass.Add(float64(len(players)))
		return c.loadMany(ctx, players)
	}
	before := c.epoch.Load()
	cmds := make([]*redis.SliceCmd, len(players))
	err := c.do(func() error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, id := range players {
				cmds[i] = p.HMGet(ctx, c.holdingsKey(id), "e", "v", "d")
			}
			return nil
		})
		return err
	})
	if err != nil {
		c.metrics.bypass.Add(float64(len(players)))
		return c.loadMany(ctx, players)
	}
	out := make(map[string]Holdings, len(players))
	var missing []string
	// As in holdings: entries read over a freshly dialed connection are
	// trusted only once that Redis' identity is checked; until then they
	// come from Postgres.
	redialed := false
	if c.unverifiedDials() {
		// Checks the identity, bumping the epoch if it changed.
		redialed = c.verifyIdentity(ctx) != nil || c.epoch.Load() != before
	}
	for i, id := range players {
		h, ok, _ := c.decodeEntry(id, cmds[i].Val())
		if ok && !redialed {
			out[id] = h
			continue
		}
		missing = append(missing, id)
	}
	c.metrics.hits.Add(float64(len(players) - len(missing)))
	c.metrics.misses.Add(float64(len(missing)))
	if len(missing) == 0 {
		return out, nil
	}
	epoch := c.epoch.Load()
	loaded, err := c.loadMany(ctx, missing)
	if err != nil {
		return nil, err
	}
	for id, h := range loaded {
		out[id] = h
		_ = c.storeAt(ctx, h, epoch)
	}
	return out, nil
}

// committed records a change that Postgres has committed. If Redis cannot
// take it, the epoch is bumped so no replica serves the older entry.
func (c *Cache) committed(ctx context.Context, h Holdings) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if c.epochUnknown.Load() {
		_ = c.establishEpoch(wctx)
	}
	if !c.epochUnknown.Load() && c.store(wctx, h) == nil {
		return
	}
	if err := c.bumpAfterFailedWrite(wctx); err != nil {
		// This process no longer knows a safe epoch: it bypasses the cache
		// until it can read the epoch again.
		c.bumpFailed()
		c.log.Error("cache: committed change not cached and epoch not bumped; other replicas may serve a stale entry until it expires",
			slog.String("player_id", h.PlayerID), slog.Int64("version", h.Version), slog.Any("error", err))
	}
}

// patchScript moves an entry from version ARGV[2] to ARGV[3] with the
// patched data ARGV[4], if it is still at ARGV[2] in epoch ARGV[1]. Any
// other entry older than ARGV[3] keeps only that version, as a floor: a
// reader treats it as a miss, and a load that read Postgres before the
// change can no longer store its older snapshot over it.
var patchScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'e', 'v')
local ce, cv = tonumber(cur[1]), tonumber(cur[2])
local e, prev, v = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if ce and cv and (ce > e or (ce == e and cv >= v)) then
  return 0
end
if ARGV[4] ~= '' and ce == e and cv == prev then
  redis.call('HSET', KEYS[1], 'v', ARGV[3], 'd', ARGV[4])
  return 1
end
redis.call('HDEL', KEYS[1], 'd')
redis.call('HSET', KEYS[1], 'e', ARGV[1], 'v', ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 2
`)

// patched records changes a batch has committed: the new quantities of the
// assets it touched, not whole holdings. One pipeline reads the entries, a
// second applies each patch to an entry at the version before the batch
// and leaves a version floor everywhere else. If Redis fails, the epoch is
// bumped so no replica serves an older entry.
func (c *Cache) patched(ctx context.Context, patches []holdingsPatch) {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	if c.epochUnknown.Load() {
		_ = c.establishEpoch(wctx)
	}
	err := errors.New("epoch unknown")
	if !c.epochUnknown.Load() {
		err = c.applyPatches(wctx, patches)
	}
	if err == nil {
		return
	}
	c.scriptLoaded.Store(false) // a restarted Redis forgot it
	if err := c.bumpAfterFailedWrite(wctx); err != nil {
		c.bumpFailed()
		c.log.Error("cache: committed changes not cached and epoch not bumped; other replicas may serve stale entries until they expire",
			slog.Int("players", len(patches)), slog.Any("error", err))
	}
}

func (c *Cache) applyPatches(ctx context.Context, patches []holdingsPatch) error {
	epoch := c.epoch.Load()
	reads := make([]*redis.SliceCmd, len(patches))
	err := c.do(func() error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pt := range patches {
				reads[i] = p.HMGet(ctx, c.holdingsKey(pt.PlayerID), "e", "v", "d")
			}
			return nil
		})
		return err
	})
	if err != nil {
		return err
	}
	if err := c.loadScripts(ctx); err != nil {
		return err
	}
	ttl := c.cfg.TTL + time.Duration(rand.Int64N(int64(c.cfg.TTL/10)+1))
	return c.do(func() error {
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, pt := range patches {
				data := ""
				if h, ok, _ := c.decodeEntry(pt.PlayerID, reads[i].Val()); ok && h.Version == pt.Prev {
					for id, n := range pt.Currencies {
						h.Currencies[id] = n
					}
					for id, n := range pt.Items {
						if n > 0 {
							h.Items[id] = n
						} else {
							delete(h.Items, id)
						}
					}
					b, err := json.Marshal(holdingsJSON{Currencies: h.Currencies, Items: h.Items, Subscriptions: h.Subscriptions})
					if err != nil {
						return err
					}
					data = string(b)
				}
				patchScript.EvalSha(ctx, p, []string{c.holdingsKey(pt.PlayerID)},
					epoch, pt.Prev, pt.Version, data, ttl.Milliseconds())
			}
			return nil
		})
		return err
	})
}

// loadScripts makes sure Redis has patchScript: EVALSHA in a pipeline
// cannot fall back to EVAL on NOSCRIPT the way Script.Run does. Once loaded
// it stays until Redis restarts; a NOSCRIPT after that fails the pipeline,
// which bumps the epoch and loads it again next time.
func (c *Cache) loadScripts(ctx context.Context) error {
	if c.scriptLoaded.Load() {
		return nil
	}
	err := c.do(func() error { return patchScript.Load(ctx, c.rdb).Err() })
	if err == nil {
		c.scriptLoaded.Store(true)
	}
	return err
}

// Collectors returns the cache's Prometheus metrics.
func (c *Cache) Collectors() []prometheus.Collector {
	m := c.metrics
	return []prometheus.Collector{m.hits, m.misses, m.bypass, m.staleRefusals, m.redisErrors, m.epochBumps, m.breaker, m.sharedReads}
}

// BreakerOpen reports whether reads currently bypass Redis.
func (c *Cache) BreakerOpen() bool { return c.breaker.State() == gobreaker.StateOpen }

type cacheMetrics struct {
	hits, misses, bypass, staleRefusals, redisErrors, epochBumps prometheus.Counter
	breaker                                                      prometheus.Gauge
	// sharedReads counts entry reads sent in one pipeline with others.
	sharedReads prometheus.Counter
}

func newCacheMetrics() cacheMetrics {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "coinop", Subsystem: "cache", Name: name, Help: help})
	}
	return cacheMetrics{
		hits:          counter("hits_total", "Holdings reads served from Redis."),
		misses:        counter("misses_total", "Holdings reads not in Redis (or from an old epoch), loaded from Postgres."),
		bypass:        counter("bypass_total", "Holdings reads sent straight to Postgres because Redis was failing."),
		staleRefusals: counter("stale_refusals_total", "Entries refused because they predate the current cache epoch."),
		redisErrors:   counter("redis_errors_total", "Redis calls that failed."),
		epochBumps:    counter("epoch_bumps_total", "Cache epoch bumps after a committed change could not be cached."),
		sharedReads:   counter("shared_reads_total", "Entry reads sent to Redis in one pipeline with other concurrent reads."),
		breaker: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "coinop", Subsystem: "cache", Name: "breaker_state",
			Help: "Redis circuit breaker: 0 closed, 1 half-open, 2 open."}),
	}
}
