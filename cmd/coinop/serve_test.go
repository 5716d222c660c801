package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestServeFinishesInFlightRequestsOnShutdown starts the real binary's serve
// path, blocks a purchase on a row lock, asks the server to stop (as SIGTERM
// does) and checks the purchase still completes before serve returns.
func TestServeFinishesInFlightRequestsOnShutdown(t *testing.T) {
	secret := strings.Repeat("k", 32)
	dbURL, base, cancel, served := startServe(t, map[string]string{
		"COINOP_JWT_SECRET":  secret,
		"COINOP_ADMIN_TOKEN": adminSecret,
		"COINOP_LOG_LEVEL":   "warn",
	})

	do := func(method, path, token, key, body, contentType string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, path, err)
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	doc := `{"currencies":[{"id":"gold","name":"Gold"}],"items":[{"id":"potion","name":"Potion","kind":"consumable","prices":[{"currency":"gold","amount":100}]}]}`
	if code, body := do("PUT", "/admin/v1/catalog", adminSecret, "", doc, "application/json"); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if code, body := do("POST", "/admin/v1/players/p1/grants", adminSecret, "fund", `{"reason":"test","currencies":{"gold":500}}`, "application/json"); code != 201 {
		t.Fatalf("grant: %d %s", code, body)
	}
	token, err := playerToken(secret, "p1", "", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Hold the player's row lock so the purchase is in flight when shutdown begins.
	conn, err := pgx.Connect(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	tx, err := conn.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(context.Background(), `SELECT 1 FROM players WHERE player_id = 'p1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		code int
		body string
	}
	purchase := make(chan result, 1)
	go func() {
		code, body := do("POST", "/v1/purchases", token, "k1", `{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100}}`, "application/json")
		purchase <- result{code, body}
	}()
	time.Sleep(300 * time.Millisecond) // let the purchase reach the lock
	cancel()
	time.Sleep(300 * time.Millisecond) // shutdown has begun and is waiting
	select {
	case err := <-served:
		t.Fatalf("serve returned while a request was in flight: %v", err)
	default:
	}
	if err := tx.Rollback(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := <-purchase
	if r.code != 201 || !bytes.Contains([]byte(r.body), []byte(`"gold":400`)) {
		t.Fatalf("in-flight purchase: %d %s", r.code, r.body)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after shutdown")
	}
}

func newFlagSetForTest() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// startServe runs serve's own wiring on a fresh database, this test's Redis
// prefix and a free loopback port, with settings on top. cancel stops it as
// SIGTERM does; served receives serve's result.
func startServe(t *testing.T, settings map[string]string) (dbURL, base string, cancel context.CancelFunc, served <-chan error) {
	t.Helper()
	return startServeLogging(t, testenv.NewDatabase(t), settings, io.Discard)
}

// startServeLogging is startServe on the database at dbURL, with serve's
// log written to logs.
func startServeLogging(t *testing.T, dbURL string, settings map[string]string, logs io.Writer) (_, base string, cancel context.CancelFunc, served <-chan error) {
	t.Helper()
	redisURL, prefix := testenv.Redis(t)
	all := map[string]string{
		"COINOP_DATABASE_URL": dbURL, "COINOP_REDIS_URL": redisURL, "COINOP_REDIS_PREFIX": prefix,
		"COINOP_AUTO_MIGRATE": "true", "COINOP_ADDR": "127.0.0.1:0",
	}
	for k, v := range settings {
		all[k] = v
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	cfg := bindSettings(newFlagSetForTest(), env(all))
	logger, err := newLogger(cfg, logs)
	if err != nil {
		t.Fatal(err)
	}
	w, err := wire(ctx, cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	finished := make(chan struct{})
	go func() {
		done <- w.serve(ctx, func(a string) { addrc <- a })
		close(finished)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
		}
		w.close()
	})
	return dbURL, "http://" + <-addrc, cancel, done
}

// syncBuffer is a log sink the test reads while serve writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// serve against a database nobody migrated says so once, answers 503
// (readiness included) instead of 500s and a 200 /readyz, and becomes ready
// by itself once `coinop migrate` has run.
func TestServeOnAnUnmigratedDatabaseIsNotReadyUntilMigrated(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewEmptyDatabase(t)
	logs := &syncBuffer{}
	_, base, _, _ := startServeLogging(t, dbURL, map[string]string{"COINOP_AUTO_MIGRATE": "false", "COINOP_JWT_SECRET": strings.Repeat("s", 32)}, logs)

	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"schema":{"ok":false`) || !strings.Contains(body, "coinop migrate") {
		t.Fatalf("/readyz on an unmigrated database: %d %s", code, body)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d: the process is alive, only not ready", code)
	}
	code, body = get("/v1/catalog")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"unavailable"`) || !strings.Contains(body, "COINOP_AUTO_MIGRATE") {
		t.Errorf("a request before migration: %d %s", code, body)
	}

	// Migrate from outside, as an operator would.
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"migrate"}, env(map[string]string{"COINOP_DATABASE_URL": dbURL}), io.Discard, &stderr); err != nil {
		t.Fatalf("coinop migrate: %v: %s", err, stderr.String())
	}
	waitFor(t, "readiness after the migration", func() bool { c, _ := get("/readyz"); return c == http.StatusOK })

	out := logs.String()
	if n := strings.Count(out, "not ready: the database schema is missing"); n != 1 {
		t.Errorf("the missing schema was reported %d times, want once:\n%s", n, out)
	}
	if strings.Contains(out, "does not exist") {
		t.Errorf("the log repeats relation-missing errors:\n%s", out)
	}
	if !strings.Contains(out, "database schema migrated; ready") {
		t.Errorf("the log does not say the server became ready:\n%s", out)
	}
}

// adminSecret is a COINOP_ADMIN_TOKEN long enough for serve.
const adminSecret = "admin-secret-admin-secret-admin-secret"

// Short bearer tokens are refused at start: they are compared on every
// request and guessable ones would open the admin API or the game-server
// routes.
func TestServeRefusesShortTokens(t *testing.T) {
	for _, name := range []string{"COINOP_ADMIN_TOKEN", "COINOP_SERVER_TOKEN"} {
		cfg := bindSettings(newFlagSetForTest(), env(map[string]string{
			"COINOP_JWT_SECRET": strings.Repeat("s", 32), name: "x",
		}))
		_, err := wire(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil || !strings.Contains(err.Error(), name+" must be at least 32 bytes") {
			t.Errorf("%s=x: %v", name, err)
		}
	}
}

// docker-compose.yml must start: its secrets meet serve's minimums.
func TestComposeSecretsMeetServesMinimums(t *testing.T) {
	data, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"COINOP_JWT_SECRET", "COINOP_ADMIN_TOKEN", "COINOP_SERVER_TOKEN"} {
		for _, line := range strings.Split(string(data), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+":"); ok {
				if v = strings.Trim(strings.TrimSpace(v), `"`); len(v) < minTokenLength {
					t.Errorf("docker-compose.yml sets %s to %d bytes; serve refuses fewer than %d", name, len(v), minTokenLength)
				}
			}
		}
	}
}

// close returns only once every background goroutine (catalog refresh,
// notifier, cache epoch, purge, store worker) has stopped, so none of them
// uses Postgres or Redis after they are closed.
func TestCloseWaitsForTheBackgroundWork(t *testing.T) {
	redisURL, prefix := testenv.Redis(t)
	cfg := bindSettings(newFlagSetForTest(), env(map[string]string{
		"COINOP_DATABASE_URL": testenv.NewDatabase(t), "COINOP_REDIS_URL": redisURL, "COINOP_REDIS_PREFIX": prefix,
		"COINOP_JWT_SECRET": strings.Repeat("s", 32), "COINOP_STORES": "fake", "COINOP_APPLE_BUNDLE_ID": "com.example.coinop", "COINOP_APPLE_ENVIRONMENT": "sandbox",
	}))
	w, err := wire(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if n := w.running.Load(); n < 5 {
		t.Fatalf("%d background goroutines running, want at least 5", n)
	}
	w.close()
	if n := w.running.Load(); n != 0 {
		t.Errorf("%d background goroutines still running after close", n)
	}
}

// serve logs the settings it runs with, and never a secret.
func TestServeLogsItsSettingsWithSecretsMasked(t *testing.T) {
	logs := &syncBuffer{}
	jwt, admin := strings.Repeat("j", 32), "admin-token-that-must-never-be-logged-0123"
	db := testenv.NewDatabase(t)
	startServeLogging(t, db, map[string]string{"COINOP_JWT_SECRET": jwt, "COINOP_ADMIN_TOKEN": admin, "COINOP_LOG_LEVEL": "info"}, logs)
	out := logs.String()
	if !strings.Contains(out, `"msg":"configuration"`) || !strings.Contains(out, `"COINOP_REQUEST_TIMEOUT":"10s"`) ||
		!strings.Contains(out, `"COINOP_ADMIN_TOKEN":"[set]"`) || !strings.Contains(out, `"COINOP_SERVER_TOKEN":""`) {
		t.Errorf("the start-up log does not show the settings:\n%s", out)
	}
	for _, secret := range []string{jwt, admin} {
		if strings.Contains(out, secret) {
			t.Errorf("a secret is in the log:\n%s", out)
		}
	}
	u, _ := url.Parse(db)
	if !strings.Contains(out, `"COINOP_DATABASE_URL":"`+u.Redacted()) {
		t.Errorf("the database URL is not shown (password masked):\n%s", out)
	}
}

// A refused Redis must fail a command at once, so a committed purchase's
// cache update does not hold its answer (see newRedis): one dial attempt
// per connection, and the short timeouts.
func TestRedisClientFailsFast(t *testing.T) {
	rdb, err := newRedis("redis://127.0.0.1:1/0", "")
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	c, ok := rdb.(*redis.Client)
	if !ok {
		t.Fatalf("one URL gave a %T, want *redis.Client", rdb)
	}
	o := c.Options()
	if o.DialerRetries != 1 || o.DialTimeout != 500*time.Millisecond || o.ReadTimeout != 250*time.Millisecond {
		t.Errorf("dial retries %d, dial timeout %s, read timeout %s; want 1, 500ms, 250ms", o.DialerRetries, o.DialTimeout, o.ReadTimeout)
	}
}
