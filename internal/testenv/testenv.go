// Package testenv is the integration-test harness: it gives each test its own
// fully migrated Postgres database and its own Redis key prefix, so tests and
// packages run in parallel against real servers.
//
// Every package with integration tests has
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Postgres is the server at COINOP_TEST_DATABASE_URL (an admin URL: the
// harness runs CREATE DATABASE there), else localsvc.DefaultPostgresURL when
// it answers, else a throwaway server started once per test binary. Redis is
// chosen the same way from COINOP_TEST_REDIS_URL. When none is available the
// test fails with a message that names what to install; it never skips.
//
// Speed: the migrations run once per test binary, into a template database
// (coinop_tmpl_*); each NewDatabase is then a CREATE DATABASE … TEMPLATE copy
// (coinop_t_*), which takes tens of milliseconds instead of a full migration.
//
// The package owns the databases named coinop_tmpl_* and coinop_t_* and the
// Redis keys under the prefixes it hands out. Only tests import it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/internal/localsvc"
	"github.com/coinop/coinop/migrations"
)

// The environment variables that point the harness at existing servers.
const (
	EnvDatabaseURL = "COINOP_TEST_DATABASE_URL"
	EnvRedisURL    = "COINOP_TEST_REDIS_URL"
)

const (
	// setupTimeout bounds starting a server or migrating the template; a
	// busy 2-core CI running several test binaries at once is slow.
	setupTimeout = 2 * time.Minute
	// opTimeout bounds one CREATE or DROP DATABASE.
	opTimeout = time.Minute
	// staleAfter is how old a coinop_t_/coinop_tmpl_ database must be before
	// a later test binary drops it. Such leftovers come from binaries killed
	// before Main could clean up (Ctrl-C, a test timeout); no test run lasts
	// this long.
	staleAfter = 24 * time.Hour
)

// mainRan is set by Main. Without Main nothing would drop the template
// database or stop the throwaway servers, so the helpers insist on it.
var mainRan atomic.Bool

// Main runs the package's tests and then stops any throwaway servers and drops
// the package's template database. It exits the process with the tests'
// status, or with 1 if the tests passed and the cleanup failed.
func Main(m *testing.M) {
	mainRan.Store(true)
	code := m.Run()
	if err := teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: cleanup: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// teardown undoes whatever the helpers set up, in the reverse order.
func teardown() error {
	var errs []error
	if pg.admin != nil {
		if tmpl.name != "" {
			ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
			errs = append(errs, dropDatabase(ctx, pg.admin, tmpl.name))
			cancel()
		}
		pg.admin.Close()
	}
	if pg.stop != nil {
		pg.stop()
	}
	if rd.stop != nil {
		rd.stop()
	}
	return errors.Join(errs...)
}

// noServer explains why there is no server, and how to provide one.
func noServer(what, env string, err error) error {
	if os.Getenv(env) != "" {
		return fmt.Errorf("%s: %w", env, err)
	}
	return fmt.Errorf("no %s for tests (%s is unset): %w", what, env, err)
}

func requireMain(t testing.TB) {
	t.Helper()
	if !mainRan.Load() {
		t.Fatal("testenv: this package needs func TestMain(m *testing.M) { testenv.Main(m) }, " +
			"which drops the template database and stops throwaway servers when the tests end")
	}
}

// pg is the Postgres server of this test binary, set up on first use.
var pg struct {
	once  sync.Once
	url   string        // admin URL
	admin *pgxpool.Pool // for CREATE/DROP DATABASE
	stop  func()
	err   error
}

func postgres(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	requireMain(t)
	pg.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		u, stop, err := localsvc.EnsurePostgres(ctx, os.Getenv(EnvDatabaseURL), "")
		if err != nil {
			pg.err = noServer("Postgres", EnvDatabaseURL, err)
			return
		}
		pg.stop = stop
		cfg, err := pgxpool.ParseConfig(u)
		if err != nil {
			pg.err = fmt.Errorf("postgres URL: %w", err)
			return
		}
		// CREATE DATABASE runs one at a time per template anyway; a few
		// connections are plenty and leave room for the tests' own pools.
		cfg.MaxConns = 4
		if pg.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
			pg.err = fmt.Errorf("connect to postgres: %w", err)
			return
		}
		pg.url = u
	})
	if pg.err != nil {
		t.Fatalf("testenv: %v", pg.err)
	}
	return pg.url, pg.admin
}

// AdminURL returns the URL of the Postgres server the harness uses, for tests
// that need the server itself rather than a database of their own. Tests must
// not change or drop databases they did not create there.
func AdminURL(t testing.TB) string {
	t.Helper()
	u, _ := postgres(t)
	return u
}

// tmpl is the migrated template database of this test binary.
var tmpl struct {
	once sync.Once
	name string
	err  error
}

func template(t testing.TB) string {
	t.Helper()
	adminURL, admin := postgres(t)
	tmpl.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		dropStale(ctx, admin)
		name := dbName("coinop_tmpl_")
		if err := createDatabase(ctx, admin, name, ""); err != nil {
			tmpl.err = err
			return
		}
		u, err := withDatabase(adminURL, name)
		if err == nil {
			// Up closes its connection when done: CREATE DATABASE … TEMPLATE
			// fails while anyone is connected to the template.
			err = migrations.Up(ctx, u)
		}
		if err != nil {
			tmpl.err = fmt.Errorf("migrate template database %s: %w", name, err)
			_ = dropDatabase(ctx, admin, name)
			return
		}
		tmpl.name = name
	})
	if tmpl.err != nil {
		t.Fatalf("testenv: %v", tmpl.err)
	}
	return tmpl.name
}

// NewDatabase creates a fresh, fully migrated database for this test and
// returns its URL. The database is dropped in t.Cleanup, along with any
// connections the test left open. It fails the test if no Postgres is
// available or the database cannot be created.
func NewDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, template(t))
}

// NewEmptyDatabase creates a database with no schema at all (never
// migrated), for tests of what happens before `coinop migrate`, and returns
// its URL. It is dropped in t.Cleanup.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return newDatabase(t, "")
}

// newDatabase creates a database copied from template ("" for an empty
// one), dropped in t.Cleanup, and returns its URL.
func newDatabase(t testing.TB, from string) string {
	t.Helper()
	adminURL, admin := postgres(t)
	name := dbName("coinop_t_")
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	if err := createDatabase(ctx, admin, name, from); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		// t.Context() is already canceled when cleanups run.
		ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
		defer cancel()
		if err := dropDatabase(ctx, admin, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	u, err := withDatabase(adminURL, name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return u
}

// NewPool is NewDatabase plus a pool connected to the new database, closed in
// t.Cleanup before the database is dropped.
func NewPool(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	u := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatalf("testenv: connect to %s: %v", u, err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("testenv: ping %s: %v", u, err)
	}
	return pool, u
}

// createDatabase creates name, as a copy of template unless that is "".
// Postgres refuses to copy a template while another session is connected to
// it (SQLSTATE 55006), and the backend of the migration's connection can
// outlive the connection briefly, so that error is retried for a while.
func createDatabase(ctx context.Context, admin *pgxpool.Pool, name, template string) error {
	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		sql += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
	}
	for delay := 10 * time.Millisecond; ; delay = min(2*delay, 200*time.Millisecond) {
		_, err := admin.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55006" {
			if err != nil {
				return fmt.Errorf("create database %s: %w", name, err)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create database %s: template still in use: %w", name, err)
		case <-time.After(delay):
		}
	}
}

// dropDatabase drops name, disconnecting whoever is still connected.
func dropDatabase(ctx context.Context, admin *pgxpool.Pool, name string) error {
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// dropStale drops databases of this harness older than staleAfter, judged by
// the creation time in their names. It is best effort: a server shared with
// other users may not let us drop them, and that must not fail the tests.
func dropStale(ctx context.Context, admin *pgxpool.Pool) {
	rows, err := admin.Query(ctx,
		`SELECT datname FROM pg_database WHERE datname LIKE 'coinop\_t\_%' OR datname LIKE 'coinop\_tmpl\_%'`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		if created, ok := dbCreated(n); ok && time.Since(created) > staleAfter {
			_ = dropDatabase(ctx, admin, n)
		}
	}
}

// dbName returns prefix + creation time in Unix seconds + random hex, so
// that leftovers can be recognised as stale by age.
func dbName(prefix string) string {
	return prefix + strconv.FormatInt(time.Now().Unix(), 10) + "_" + randomHex(6)
}

// dbCreated parses the creation time out of a name made by dbName.
func dbCreated(name string) (time.Time, bool) {
	for _, p := range []string{"coinop_tmpl_", "coinop_t_"} {
		if rest, ok := strings.CutPrefix(name, p); ok {
			ts, _, ok := strings.Cut(rest, "_")
			if !ok {
				return time.Time{}, false
			}
			sec, err := strconv.ParseInt(ts, 10, 64)
			if err != nil {
				return time.Time{}, false
			}
			return time.Unix(sec, 0), true
		}
	}
	return time.Time{}, false
}

// withDatabase returns the Postgres URL u pointing at database name.
func withDatabase(u, name string) (string, error) {
	parsed, err := url.Parse(u)
	if err != nil || (parsed.Scheme != "postgres" && parsed.Scheme != "postgresql") {
		return "", fmt.Errorf("postgres URL %q: want postgres://… (keyword=value strings are not supported)", redacted(u))
	}
	parsed.Path = "/" + name
	parsed.RawPath = ""
	return parsed.String(), nil
}

func redacted(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Redacted()
	}
	return "(unparsable)"
}

// rd is the Redis server of this test binary, set up on first use.
var rd struct {
	once sync.Once
	url  string
	stop func()
	err  error
}

// Redis returns the URL of the Redis server for tests and a key prefix unique
// to this test ("t<random>:"), so that tests and packages can share the
// server in parallel. The test must use only keys with the prefix and must
// not FLUSHDB; keys with the prefix are deleted in t.Cleanup. It fails the
// test if no Redis is available.
func Redis(t testing.TB) (url, prefix string) {
	t.Helper()
	requireMain(t)
	rd.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		u, stop, err := localsvc.EnsureRedis(ctx, os.Getenv(EnvRedisURL), "")
		if err != nil {
			rd.err = noServer("Redis", EnvRedisURL, err)
			return
		}
		rd.url, rd.stop = u, stop
	})
	if rd.err != nil {
		t.Fatalf("testenv: %v", rd.err)
	}
	prefix = "t" + randomHex(8) + ":"
	u := rd.url
	t.Cleanup(func() {
		if err := deleteKeys(u, prefix); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return u, prefix
}

// deleteKeys deletes every key that starts with prefix. SCAN rather than KEYS,
// so that a large keyspace does not block the server other tests share.
func deleteKeys(u, prefix string) error {
	opt, err := redis.ParseURL(u)
	if err != nil {
		return fmt.Errorf("redis URL: %w", err)
	}
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	// The prefix is hex and a colon, so it holds no glob characters.
	iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 1000 {
			if err := c.Unlink(ctx, batch...).Err(); err != nil {
				return fmt.Errorf("delete keys %s*: %w", prefix, err)
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return fmt.Errorf("scan keys %s*: %w", prefix, err)
	}
	if len(batch) > 0 {
		if err := c.Unlink(ctx, batch...).Err(); err != nil {
			return fmt.Errorf("delete keys %s*: %w", prefix, err)
		}
	}
	return nil
}

// RedisClient returns a client for Redis(t), closed in t.Cleanup, and the
// test's key prefix.
func RedisClient(t testing.TB) (redis.UniversalClient, string) {
	t.Helper()
	u, prefix := Redis(t)
	opt, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("testenv: redis URL: %v", err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c, prefix
}

// NewRedisServer starts a redis-server owned by this test, which may Stop and
// Start it to simulate an outage; it is stopped in t.Cleanup. It fails the
// test if redis-server is not installed.
func NewRedisServer(t testing.TB) *localsvc.Redis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	r, err := localsvc.StartRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	return r
}

// NewRedisCluster starts a 3-node Redis Cluster owned by this test; it is
// stopped in t.Cleanup. It takes about two seconds, because a new master
// waits before it declares the cluster ok. It fails the test if Redis is not
// installed or the cluster does not form.
func NewRedisCluster(t testing.TB) *localsvc.RedisCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	c, err := localsvc.StartRedisCluster(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	return c
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
