package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop/server"
)

// setting is one COINOP_* variable with its flag. The README's
// configuration table lists the same settings with the same defaults.
type setting struct {
	env, flag, def, help string
	secret               bool
}

var settings = []setting{
	{"COINOP_ADDR", "addr", ":8080", "address the HTTP API listens on", false},
	{"COINOP_DATABASE_URL", "database-url", "postgres://postgres@127.0.0.1:5432/coinop?sslmode=disable", "Postgres connection URL (system of record)", true},
	{"COINOP_DB_MAX_CONNS", "db-max-conns", "20", "most Postgres connections in the pool", false},
	{"COINOP_REDIS_URL", "redis-url", "redis://127.0.0.1:6379/0", "Redis URL; several comma-separated URLs mean Redis Cluster", true},
	{"COINOP_REDIS_MASTER_NAME", "redis-master-name", "", "Sentinel master name; when set, COINOP_REDIS_URL lists the sentinels", false},
	{"COINOP_REDIS_PREFIX", "redis-prefix", "coinop:", "prefix of every Redis key", false},
	{"COINOP_JWT_SECRET", "jwt-secret", "", "HS256 secret of player tokens (required, at least 32 bytes)", true},
	{"COINOP_JWT_ISSUER", "jwt-issuer", "", "required iss of player tokens, when set", false},
	{"COINOP_JWT_AUDIENCE", "jwt-audience", "", "required aud of player tokens, when set", false},
	{"COINOP_ADMIN_TOKEN", "admin-token", "", "bootstrap bearer token of the admin API, with every role; empty means only admin API keys work", true},
	{"COINOP_SERVER_TOKEN", "server-token", "", "bearer key of game servers for entitlement checks; empty disables them", true},
	{"COINOP_RATE_LIMIT", "rate-limit", server.DefaultRateLimits, "limits per player and per IP on the player API, and of refused credentials per IP on every route (N/s, N/m, N/h), or off", false},
	{"COINOP_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated IPs or CIDRs of load balancers whose X-Forwarded-For names the client (per-IP rate limit)", false},
	{"COINOP_CACHE_TTL", "cache-ttl", "10m", "how long a player's cached holdings live in Redis", false},
	{"COINOP_AUTO_MIGRATE", "auto-migrate", "false", "apply database migrations when serve starts", false},
	{"COINOP_REQUEST_TIMEOUT", "request-timeout", "10s", "most time spent on one request", false},
	{"COINOP_SHUTDOWN_TIMEOUT", "shutdown-timeout", "20s", "how long SIGTERM waits for in-flight requests", false},
	{"COINOP_BODY_LIMIT", "body-limit", "65536", "largest player or grant request body, in bytes", false},
	{"COINOP_IDEMPOTENCY_RETENTION", "idempotency-retention", "24h", "how long idempotency keys are kept (at least 24h)", false},
	{"COINOP_COMMIT_LANES", "commit-lanes", "2", "purchase batches in flight at once, each one transaction (group commit); 0 sends each purchase alone", false},
	{"COINOP_COMMIT_BATCH", "commit-batch", "64", "most purchases in one group-commit batch", false},
	{"COINOP_IDEMPOTENCY_WAIT", "idempotency-wait", "5s", "how long a duplicate waits for the first request before 409 idempotency_key_in_use", false},
	{"COINOP_CATALOG_REFRESH", "catalog-refresh", "1s", "how often each replica checks Postgres for a newer catalog", false},
	{"COINOP_KEY_CACHE_TTL", "key-cache-ttl", "10s", "how long a verified admin API key is trusted before Postgres is asked again (a revoked key stops working within it)", false},
	{"COINOP_WEBHOOK_WORKER", "webhook-worker", "true", "run the webhook delivery worker in this replica", false},
	{"COINOP_WEBHOOK_TIMEOUT", "webhook-timeout", "10s", "most time one webhook attempt may take", false},
	{"COINOP_WEBHOOK_CONCURRENCY", "webhook-concurrency", "8", "webhooks one replica posts at once", false},
	{"COINOP_WEBHOOK_POLL", "webhook-poll", "1s", "how often an idle webhook worker looks for new events and due retries", false},
	{"COINOP_WEBHOOK_ALLOW_INSECURE", "webhook-allow-insecure", "false", "accept http:// webhook URLs (development only; https is otherwise required)", false},
	// The creator program (creators.go).
	{"COINOP_CREATOR_PROGRAM", "creator-program", "false", "run the creator program: creator codes, creator-made item shares, tips, earnings and payouts", false},
	{"COINOP_CREATOR_SHARE", "creator-share", "5%", "what a purchase or server spend under an active creator code credits the creator (a percentage, exact to 0.0001%)", false},
	{"COINOP_CREATOR_CODE_DAYS", "creator-code-days", "14", "how many days a creator code a player sets stays active", false},
	{"COINOP_CREATOR_HOLD", "creator-hold", "720h", "how long a credit stays pending before a payout may pay it (long enough for store refunds)", false},
	{"COINOP_CREATOR_PAYOUT_MIN", "creator-payout-min", "1", "the least a payout pays of a currency, in whole units", false},
	{"COINOP_CREATOR_TIP_FEE", "creator-tip-fee", "0%", "the studio's fee on a tip (a percentage)", false},
	{"COINOP_CREATOR_TIP_DAILY_LIMIT", "creator-tip-daily-limit", "10000", "the most one player may tip of one currency per UTC day, in whole units", false},
	{"COINOP_CREATOR_CURRENCIES", "creator-currencies", "", "comma list of the currencies the code share covers; empty means every currency", false},
	{"COINOP_CREATOR_OWN_CODE", "creator-own-code", "false", "let a creator's linked player support their own code", false},
	{"COINOP_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", false},
	{"COINOP_LOG_FORMAT", "log-format", "json", "json or text", false},
	// Stores (see stores.go).
	{"COINOP_STORES", "stores", "", "stores whose purchases are accepted: comma list of apple, google, fake; empty disables receipts", false},
	{"COINOP_APPLE_BUNDLE_ID", "apple-bundle-id", "", "bundle id of the iOS app", false},
	{"COINOP_APPLE_APP_APPLE_ID", "apple-app-apple-id", "", "numeric Apple id of the app (required when the environment is production)", false},
	{"COINOP_APPLE_ENVIRONMENT", "apple-environment", "production", "App Store environment accepted: production, sandbox or xcode", false},
	{"COINOP_APPLE_ROOT_CERTS", "apple-root-certs", "", "comma list of PEM or DER root certificate files; empty means the embedded Apple Root CA G3", false},
	{"COINOP_APPLE_SHARED_SECRET", "apple-shared-secret", "", "app-specific shared secret for verifyReceipt (app receipts with subscriptions)", true},
	{"COINOP_APPLE_API_KEY_ID", "apple-api-key-id", "", "App Store Server API key id; with the issuer id and private key, StoreKit 2 transactions are confirmed with Apple", false},
	{"COINOP_APPLE_API_ISSUER_ID", "apple-api-issuer-id", "", "App Store Server API issuer id", false},
	{"COINOP_APPLE_API_PRIVATE_KEY", "apple-api-private-key", "", "path of the App Store Server API private key (.p8)", true},
	{"COINOP_APPLE_CONSUMPTION_INFO", "apple-consumption-info", "false", "answer Apple's CONSUMPTION_REQUEST with consumption information from the ledger (needs the App Store Server API and the players' consent)", false},
	{"COINOP_APPLE_API_URL", "apple-api-url", "", "App Store Server API base URL (scheme and host); empty means Apple's for the environment; with COINOP_STORES=fake only a loopback URL (a local fake)", false},
	{"COINOP_GOOGLE_PLAY_API_URL", "google-play-api-url", "", "Google Play Developer API base URL (scheme and host); empty means Google's; another host logs a warning", false},
	{"COINOP_GOOGLE_PACKAGE_NAME", "google-package-name", "", "Android package name", false},
	{"COINOP_GOOGLE_ENVIRONMENT", "google-environment", "production", "Google Play purchases accepted: production, or sandbox (license testers only)", false},
	{"COINOP_GOOGLE_SERVICE_ACCOUNT", "google-service-account", "", "path of the service account JSON key for the Play Developer API", true},
	{"COINOP_GOOGLE_PUSH_AUDIENCE", "google-push-audience", "", "audience of the OIDC tokens of Pub/Sub pushes (real-time developer notifications)", false},
	{"COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT", "google-push-service-account", "", "service account email the Pub/Sub pushes authenticate as", false},
	{"COINOP_STORE_TESTERS", "store-testers", "", "comma list of player ids whose sandbox purchases a production deployment accepts", false},
	{"COINOP_CLAWBACK_POLICY", "clawback-policy", "clamp", "what a refund does with currency already spent: clamp, negative or flag", false},
	{"COINOP_STORE_SWEEP_INTERVAL", "store-sweep-interval", "1h", "how often Apple's notification history and Google's voided purchases are swept for what notifications missed (one replica per interval); 0 turns the sweep off", false},
	{"COINOP_STORE_SWEEP_LOOKBACK", "store-sweep-lookback", "72h", "how far before the last sweep's end each sweep reads again (stores list some records late)", false},
	{"COINOP_FAKE_STORE_DIR", "fake-store-dir", ".dev/fakestore", "where the fake store keeps its test CA (COINOP_STORES=fake)", false},
}

// config is the parsed settings.
type config struct {
	values map[string]string
	// dev is set by `coinop dev`, whose published development credentials
	// are exempt from the minimum token strength (it listens on loopback).
	dev bool
}

// bindSettings registers every setting as a flag on fs whose default comes
// from the environment, so flags override COINOP_* which override defaults.
func bindSettings(fs *flag.FlagSet, getenv func(string) string) *config {
	cfg := &config{values: map[string]string{}}
	for _, s := range settings {
		v := s.def
		if e := getenv(s.env); e != "" {
			v = e
		}
		cfg.values[s.env] = v
		// Help shows the built-in default, never the environment's value,
		// so secrets set in the environment are not printed.
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.help, s.env, s.def), func(val string) error {
			cfg.values[s.env] = val
			return nil
		})
	}
	return cfg
}

func (c *config) str(env string) string { return c.values[env] }

// LogValue is every setting as serve runs with it, for the start-up log.
// Secrets never appear: a URL shows with its password replaced, any other
// secret only as set or not.
func (c *config) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, len(settings))
	for _, s := range settings {
		v := c.values[s.env]
		if s.secret && v != "" {
			v = maskSecret(v)
		}
		attrs = append(attrs, slog.String(s.env, v))
	}
	return slog.GroupValue(attrs...)
}

func maskSecret(v string) string {
	var parts []string
	for _, one := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || u.Scheme == "" || u.Host == "" {
			return "[set]"
		}
		parts = append(parts, u.Redacted())
	}
	return strings.Join(parts, ",")
}

func (c *config) duration(env string) (time.Duration, error) {
	d, err := time.ParseDuration(c.values[env])
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a duration like 10s or 24h", env, c.values[env])
	}
	return d, nil
}

func (c *config) integer(env string) (int, error) {
	n, err := strconv.Atoi(c.values[env])
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a non-negative integer", env, c.values[env])
	}
	return n, nil
}

func (c *config) boolean(env string) (bool, error) {
	b, err := strconv.ParseBool(strings.TrimSpace(c.values[env]))
	if err != nil {
		return false, fmt.Errorf("%s: %q is not true or false", env, c.values[env])
	}
	return b, nil
}
