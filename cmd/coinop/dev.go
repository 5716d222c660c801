package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/localsvc"
)

// Development-only credentials, printed by `coinop dev`. serve never has
// defaults for secrets.
const (
	devJWTSecret  = "coinop-dev-only-secret-0123456789abcdef"
	devAdminToken = "dev-admin-token"
	devPlayer     = "demo-player"
	// devDatabase is the database dev uses on a server it finds: the one in
	// COINOP_DATABASE_URL's default, so `coinop keys`, `coinop migrate` and
	// the other commands reach make dev's data without settings.
	devDatabase = "coinop"
	// devAddr binds loopback only: dev's credentials are public.
	devAddr = "127.0.0.1:8080"
)

func runDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	catalogFile := fs.String("catalog", "examples/catalog.yaml", "catalog file to publish")
	stateDir := fs.String("dir", ".dev", "where throwaway Postgres and Redis keep their files")
	devEnv := func(k string) string {
		if v := getenv(k); v != "" {
			return v
		}
		switch k {
		case "COINOP_JWT_SECRET":
			return devJWTSecret
		case "COINOP_ADMIN_TOKEN":
			return devAdminToken
		case "COINOP_AUTO_MIGRATE":
			return "true"
		case "COINOP_ADDR":
			return devAddr
		case "COINOP_LOG_FORMAT":
			return "text"
		case "COINOP_WEBHOOK_ALLOW_INSECURE":
			return "true"
		case "COINOP_STORES":
			return devStores
		case "COINOP_APPLE_BUNDLE_ID":
			return devBundleID
		case "COINOP_APPLE_ENVIRONMENT":
			return devAppleEnvironment
		case "COINOP_CREATOR_PROGRAM":
			return "true"
		case "COINOP_CREATOR_HOLD":
			// No hold, so a walk-through can pay out what it just earned.
			return "0s"
		}
		return ""
	}
	cfg := bindSettings(fs, devEnv)
	cfg.dev = true
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}

	// A URL given by flag or environment is used as is; otherwise dev finds
	// or starts a server and uses its own database there.
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	givenURL := func(env, flagName string) string {
		if explicit[flagName] || getenv(env) != "" {
			return cfg.str(env)
		}
		return ""
	}
	pgURL, stopPG, err := localsvc.EnsurePostgres(ctx, givenURL("COINOP_DATABASE_URL", "database-url"), filepath.Join(*stateDir, "postgres"))
	if err != nil {
		return err
	}
	defer stopPG()
	if givenURL("COINOP_DATABASE_URL", "database-url") == "" {
		if pgURL, err = ensureDatabase(ctx, pgURL, devDatabase); err != nil {
			return err
		}
	}
	redisURL, stopRedis, err := localsvc.EnsureRedis(ctx, givenURL("COINOP_REDIS_URL", "redis-url"), filepath.Join(*stateDir, "redis"))
	if err != nil {
		return err
	}
	defer stopRedis()
	cfg.values["COINOP_DATABASE_URL"] = pgURL
	cfg.values["COINOP_REDIS_URL"] = redisURL

	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	w, err := wire(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer w.close()
	if err := w.publishIfChanged(ctx, *catalogFile); err != nil {
		return err
	}
	snap := w.live.Current()
	funding := demoFunding(snap)
	// One funding a day per catalog's currencies, so restarts do not print money.
	_, err = w.ledger.Grant(ctx, entitlements.GrantRequest{
		PlayerID:       devPlayer,
		IdempotencyKey: fmt.Sprintf("dev-funding-%s-%s", time.Now().UTC().Format("2006-01-02"), strings.Join(snap.CurrencyIDs(), ",")),
		Reason:         "make dev demo funding",
		Actor:          "coinop dev",
		Currencies:     funding,
	})
	var rej *entitlements.Rejection
	if err != nil && !errors.As(err, &rej) && !errors.Is(err, entitlements.ErrIdempotencyKeyReused) {
		return fmt.Errorf("funding %s: %w", devPlayer, err)
	}
	token, err := playerToken(cfg.str("COINOP_JWT_SECRET"), devPlayer, cfg.str("COINOP_JWT_ISSUER"), cfg.str("COINOP_JWT_AUDIENCE"), 24*time.Hour, time.Now())
	if err != nil {
		return err
	}
	return w.serve(ctx, func(addr string) {
		printDevBanner(stdout, addr, token, cfg.str("COINOP_ADMIN_TOKEN"), snap)
		printStoreBanner(stdout, addr, token, cfg, snap)
	})
}

// ensureDatabase creates name on the server at serverURL when missing and
// returns a URL that points at it.
func ensureDatabase(ctx context.Context, serverURL, name string) (string, error) {
	conn, err := pgx.Connect(ctx, serverURL)
	if err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", fmt.Errorf("postgres: %w", err)
	}
	if !exists {
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			return "", fmt.Errorf("postgres: create database %s: %w", name, err)
		}
	}
	u, err := url.Parse(serverURL)
	if err != nil {
		return "", err
	}
	u.Path = "/" + name
	return u.String(), nil
}

// publishIfChanged publishes the file unless the live catalog already has
// the same content, so restarting `make dev` does not pile up versions.
func (w *wired) publishIfChanged(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("catalog: %w", err)
	}
	doc, err := catalog.Parse(data, formatOf(path))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if cur := w.live.Current(); cur != nil {
		a, _ := json.Marshal(cur.Catalog)
		b, _ := json.Marshal(doc)
		if string(a) == string(b) {
			return nil
		}
	}
	snap, err := w.catalogs.Publish(ctx, doc, "published by coinop dev from "+path, "coinop dev")
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	w.live.Set(snap)
	return nil
}

func demoFunding(snap *catalog.Snapshot) map[string]int64 {
	funding := map[string]int64{}
	for _, id := range snap.CurrencyIDs() {
		funding[id] = 10_000
	}
	return funding
}

func printDevBanner(w io.Writer, addr, token, adminToken string, snap *catalog.Snapshot) {
	base := "http://" + addr
	if host, port, err := netSplit(addr); err == nil && (host == "::" || host == "" || host == "0.0.0.0") {
		base = "http://127.0.0.1:" + port
	}
	item, price := demoItem(snap)
	fmt.Fprintf(w, `
coinop dev is serving on %[1]s (development credentials; never use them in production)

  player:       %[2]s
  player token: %[3]s
  admin token:  %[4]s

Buy an item:
  curl -s -X POST %[1]s/v1/purchases \
    -H 'Authorization: Bearer %[3]s' \
    -H "Idempotency-Key: $(uuidgen 2>/dev/null || date +%%s%%N)" \
    -H 'Content-Type: application/json' \
    -d '{"item_id": "%[5]s", "quantity": 1, "price": {"currency": "%[6]s", "amount": %[7]d}}'

Wallet:
  curl -s %[1]s/v1/wallet -H 'Authorization: Bearer %[3]s'

Console (sign in with the admin token):
  %[1]s/console

`, base, devPlayer, token, adminToken, item, price.Currency, price.Amount)
}

func demoItem(snap *catalog.Snapshot) (string, catalog.Price) {
	now := time.Now()
	var fallback *catalog.Item
	for i := range snap.Catalog.Items {
		it := &snap.Catalog.Items[i]
		if len(it.Prices) == 0 || !it.AvailableAt(now) {
			continue
		}
		if it.Kind == catalog.KindConsumable {
			return it.ID, it.Prices[0]
		}
		if fallback == nil {
			fallback = it
		}
	}
	if fallback != nil {
		return fallback.ID, fallback.Prices[0]
	}
	return "", catalog.Price{}
}

func netSplit(addr string) (host, port string, err error) { return net.SplitHostPort(addr) }
