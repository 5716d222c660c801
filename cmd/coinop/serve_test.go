package main

import (
	"bytes"
	"context"
	"flag"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

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
		"COINOP_ADMIN_TOKEN": "admin-secret",
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
	if code, body := do("PUT", "/admin/v1/catalog", "admin-secret", "", doc, "application/json"); code != 201 {
		t.Fatalf("publish: %d %s", code, body)
	}
	if code, body := do("POST", "/admin/v1/players/p1/grants", "admin-secret", "fund", `{"reason":"test","currencies":{"gold":500}}`, "application/json"); code != 201 {
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
	dbURL = testenv.NewDatabase(t)
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
	logger, err := newLogger(cfg, io.Discard)
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
