package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/server"
)

// newReplicas starts n servers over one database, each wired as
// cmd/coinop wires one: its own pools, a Live polling every poll, and a
// subscription to catalog notifications on Redis at redisURL. The fixture
// catalog is version 1.
func newReplicas(t *testing.T, n int, redisURL, prefix string, poll time.Duration) []*env {
	t.Helper()
	dbURL := testenv.NewDatabase(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	var out []*env
	for i := range n {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		opt, err := redis.ParseURL(redisURL)
		if err != nil {
			t.Fatal(err)
		}
		// The timeouts of cmd/coinop: a dead Redis fails fast.
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 500*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
		rdb := redis.NewClient(opt)
		t.Cleanup(func() { _ = rdb.Close() })
		notifier := catalog.NewNotifier(rdb, prefix)
		e := &env{pool: pool, store: catalog.NewStore(pool, catalog.WithNotifier(notifier))}
		e.checkSpecAtEnd(t)
		e.live = catalog.NewLive(e.store)
		if i == 0 {
			if _, err := e.store.Publish(ctx, fixtureCatalog(t), "fixture", "test"); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.live.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		go e.live.Run(ctx, poll)
		go notifier.Listen(ctx, e.live)
		e.ledger = entitlements.New(pool, e.live)
		e.srv = server.New(server.Config{JWTSecret: []byte(testSecret), AdminToken: adminToken},
			server.Deps{Ledger: e.ledger, Catalogs: e.store, Live: e.live, DB: pool, Redis: rdb, Logger: testLogger(t)})
		e.app = e.srv.App()
		out = append(out, e)
	}
	return out
}

// waitSubscribed waits until n replicas listen on the catalog channel.
func waitSubscribed(t *testing.T, redisURL, prefix string, n int64) {
	t.Helper()
	opt, _ := redis.ParseURL(redisURL)
	c := redis.NewClient(opt)
	defer c.Close()
	channel := catalog.NewNotifier(c, prefix).Channel()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if subs, err := c.PubSubNumSub(context.Background(), channel).Result(); err == nil && subs[channel] >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%d replicas did not subscribe to %s", n, channel)
}

// servedVersion is the version GET /v1/catalog answers on e.
func servedVersion(t *testing.T, e *env) int64 {
	t.Helper()
	var body catalogResponse
	r := e.getCatalog(t, "")
	r.decode(t, &body)
	return body.Version
}

// waitServed polls e until it serves version v and returns how long that
// took from start, failing after limit.
func waitServed(t *testing.T, e *env, v int64, start time.Time, limit time.Duration) time.Duration {
	t.Helper()
	for {
		if servedVersion(t, e) == v {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("version %d not served after %v", v, time.Since(start))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// raisePotion edits the draft on e (potion to 120 gold) and publishes it.
func raisePotion(t *testing.T, e *env, publishBody string) catalog.VersionInfo {
	t.Helper()
	if r := e.admin(t, "PUT", "/admin/v1/catalog/draft/items/potion",
		`{"name":"Potion","kind":"consumable","prices":[{"currency":"gold","amount":120}],"max_per_player":99}`); r.status != 200 {
		t.Fatalf("edit potion: %s", r)
	}
	r := e.admin(t, "POST", "/admin/v1/catalog/publish", publishBody)
	if r.status != http.StatusCreated {
		t.Fatalf("publish: %s", r)
	}
	var v catalog.VersionInfo
	r.decode(t, &v)
	return v
}

// TestPublishReachesTheOtherReplicaWithinASecond: with the poll set to a
// minute, only the Redis notification can bring the new version to the
// second replica, and it must do so within a second. A purchase sent there
// at the old price then gets 409 price_mismatch with the new price.
func TestPublishReachesTheOtherReplicaWithinASecond(t *testing.T) {
	t.Parallel()
	redisURL, prefix := testenv.Redis(t)
	rs := newReplicas(t, 2, redisURL, prefix, time.Minute)
	a, b := rs[0], rs[1]
	waitSubscribed(t, redisURL, prefix, 2)
	a.grant(t, "p1", "fund", map[string]int64{"gold": 1000}, nil)

	start := time.Now()
	v := raisePotion(t, a, `{"note":"potion up"}`)
	if got := servedVersion(t, a); got != v.Version {
		t.Fatalf("the publishing replica serves version %d, want %d at once", got, v.Version)
	}
	elapsed := waitServed(t, b, v.Version, start, 5*time.Second)
	t.Logf("second replica served version %d %v after the publish request", v.Version, elapsed)
	if elapsed > time.Second {
		t.Errorf("second replica took %v, want within 1s", elapsed)
	}

	p := assertProblem(t, b.purchase(t, "p1", "stale", buy("potion", 1, "gold", 100)), http.StatusConflict, "price_mismatch")
	if prices, _ := json.Marshal(p["prices"]); string(prices) != `[{"amount":120,"currency":"gold"}]` {
		t.Errorf("price_mismatch prices = %s, want the new price", prices)
	}
}

// TestReplicasFallBackToPollingWhenRedisIsDown: with Redis stopped the
// publish still succeeds, and the second replica serves the new version
// within the poll interval (COINOP_CATALOG_REFRESH).
func TestReplicasFallBackToPollingWhenRedisIsDown(t *testing.T) {
	t.Parallel()
	const poll = 300 * time.Millisecond
	rd := testenv.NewRedisServer(t)
	prefix := "fallback:"
	rs := newReplicas(t, 2, rd.URL(), prefix, poll)
	a, b := rs[0], rs[1]
	waitSubscribed(t, rd.URL(), prefix, 2)
	if err := rd.Stop(); err != nil {
		t.Fatal(err)
	}

	// Measure from the start of the publish request, an upper bound of the
	// commit: with Redis down the response itself waits for the failed
	// notification (at most 500 ms).
	if r := a.admin(t, "PUT", "/admin/v1/catalog/draft/items/potion",
		`{"name":"Potion","kind":"consumable","prices":[{"currency":"gold","amount":120}],"max_per_player":99}`); r.status != 200 {
		t.Fatalf("edit potion: %s", r)
	}
	published := make(chan response, 1)
	start := time.Now()
	go func() {
		r, err := a.send(newRequest("POST", "/admin/v1/catalog/publish", []byte(`{"note":"while Redis is down"}`),
			"Authorization", bearer(adminToken), "Content-Type", "application/json"))
		if err != nil {
			t.Error(err)
		}
		published <- r
	}()
	elapsed := waitServed(t, b, 2, start, 10*time.Second)
	t.Logf("with Redis down, second replica served version 2 %v after the publish request (poll %v)", elapsed, poll)
	// The poll fires at most one interval after the commit; allow a little
	// for the refresh itself on a busy CI machine.
	if elapsed > poll+200*time.Millisecond {
		t.Errorf("second replica took %v, want within the poll interval %v", elapsed, poll)
	}
	if r := <-published; r.status != http.StatusCreated {
		t.Fatalf("publish with Redis down: %s", r)
	}

	t.Run("notifications resume when Redis is back", func(t *testing.T) {
		if err := rd.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitSubscribed(t, rd.URL(), prefix, 2)
	})
}

// TestScheduledPublishTakesEffectOnTimeOnEveryReplica schedules a version
// 1.5 s ahead with the poll set to a minute: each replica must switch at
// that time (not before, and promptly after), on its own timer.
func TestScheduledPublishTakesEffectOnTimeOnEveryReplica(t *testing.T) {
	t.Parallel()
	redisURL, prefix := testenv.Redis(t)
	rs := newReplicas(t, 2, redisURL, prefix, time.Minute)
	waitSubscribed(t, redisURL, prefix, 2)

	at := time.Now().Add(1500 * time.Millisecond)
	v := raisePotion(t, rs[0], `{"note":"flash sale","publish_at":"`+at.UTC().Format(time.RFC3339Nano)+`"}`)
	if v.Status != "scheduled" || !v.LiveAt.Equal(at.UTC().Truncate(time.Microsecond)) {
		t.Fatalf("publish = %+v, want scheduled at %v", v, at)
	}
	switched := make([]time.Time, len(rs))
	for time.Since(at) < 3*time.Second {
		for i, e := range rs {
			// The time after the answer: a new version answered before
			// live_at was served early, whatever the request's latency.
			if switched[i].IsZero() && servedVersion(t, e) == v.Version {
				switched[i] = time.Now()
			}
		}
		if !switched[0].IsZero() && !switched[1].IsZero() {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	for i, s := range switched {
		switch {
		case s.IsZero():
			t.Errorf("replica %d never served the scheduled version", i)
		case s.Before(at):
			t.Errorf("replica %d served it %v early", i, at.Sub(s))
		case s.Sub(at) > 500*time.Millisecond:
			t.Errorf("replica %d served it %v late", i, s.Sub(at))
		default:
			t.Logf("replica %d switched %v after live_at", i, s.Sub(at))
		}
	}
}
