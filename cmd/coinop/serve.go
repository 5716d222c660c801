package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/migrations"
	"github.com/coinop/coinop/server"
	"github.com/coinop/coinop/webhooks"
)

func runServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := bindSettings(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	logger, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	w, err := wire(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer w.close()
	return w.serve(ctx, nil)
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := bindSettings(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if err := migrations.Up(ctx, cfg.str("COINOP_DATABASE_URL")); err != nil {
		return err
	}
	fmt.Fprintln(stderr, "coinop: migrations applied")
	return nil
}

func newLogger(cfg *config, w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.str("COINOP_LOG_LEVEL"))); err != nil {
		return nil, fmt.Errorf("COINOP_LOG_LEVEL: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch cfg.str("COINOP_LOG_FORMAT") {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("COINOP_LOG_FORMAT: %q is not json or text", cfg.str("COINOP_LOG_FORMAT"))
}

// wired is a running set of parts: pools, catalog, ledger and server.
type wired struct {
	cfg       *config
	log       *slog.Logger
	db        *pgxpool.Pool
	redis     redis.UniversalClient
	catalogs  *catalog.Store
	live      *catalog.Live
	ledger    *entitlements.Ledger
	cache     *entitlements.Cache
	server    *server.Server
	retention time.Duration
	stop      context.CancelFunc
	// background counts the goroutines close must wait for; running is the
	// same count, readable by tests.
	background sync.WaitGroup
	running    atomic.Int32
}

// minTokenLength is the shortest COINOP_ADMIN_TOKEN or COINOP_SERVER_TOKEN
// serve accepts, as for COINOP_JWT_SECRET.
const minTokenLength = 32

func wire(ctx context.Context, cfg *config, logger *slog.Logger) (_ *wired, err error) {
	secret := cfg.str("COINOP_JWT_SECRET")
	if len(secret) < 32 {
		return nil, errors.New("COINOP_JWT_SECRET must be set to at least 32 bytes (for example: openssl rand -hex 32)")
	}
	logger.Info("configuration", slog.Any("settings", cfg))
	// Bearer tokens are compared, not rate-limited per guess, so they must
	// be as unguessable as the JWT secret.
	for _, env := range []string{"COINOP_ADMIN_TOKEN", "COINOP_SERVER_TOKEN"} {
		if v := cfg.str(env); v != "" && len(v) < minTokenLength && !cfg.dev {
			return nil, fmt.Errorf("%s must be at least %d bytes when set (for example: openssl rand -hex 32)", env, minTokenLength)
		}
	}
	if cfg.str("COINOP_ADMIN_TOKEN") == "" {
		logger.Warn("COINOP_ADMIN_TOKEN is empty: only admin API keys (coinop keys create) can use the admin API")
	}
	durations := map[string]time.Duration{}
	for _, env := range []string{"COINOP_CACHE_TTL", "COINOP_REQUEST_TIMEOUT", "COINOP_SHUTDOWN_TIMEOUT", "COINOP_IDEMPOTENCY_RETENTION", "COINOP_IDEMPOTENCY_WAIT", "COINOP_CATALOG_REFRESH", "COINOP_KEY_CACHE_TTL", "COINOP_WEBHOOK_TIMEOUT", "COINOP_WEBHOOK_POLL", "COINOP_STORE_SWEEP_INTERVAL", "COINOP_STORE_SWEEP_LOOKBACK"} {
		if durations[env], err = cfg.duration(env); err != nil {
			return nil, err
		}
	}
	if durations["COINOP_IDEMPOTENCY_RETENTION"] < 24*time.Hour {
		return nil, errors.New("COINOP_IDEMPOTENCY_RETENTION must be at least 24h: clients retry for up to a day")
	}
	rateLimits, err := server.ParseRateLimits(cfg.str("COINOP_RATE_LIMIT"))
	if err != nil {
		return nil, fmt.Errorf("COINOP_RATE_LIMIT: %w", err)
	}
	prefix := cfg.str("COINOP_REDIS_PREFIX")
	if strings.ContainsAny(prefix, "{}") {
		return nil, errors.New("COINOP_REDIS_PREFIX must not contain { or }: they would break Redis Cluster hash tags")
	}
	maxConns, err := cfg.integer("COINOP_DB_MAX_CONNS")
	if err != nil {
		return nil, err
	}
	lanes, err := cfg.integer("COINOP_COMMIT_LANES")
	if err != nil {
		return nil, err
	}
	batch, err := cfg.integer("COINOP_COMMIT_BATCH")
	if err != nil {
		return nil, err
	}
	bodyLimit, err := cfg.integer("COINOP_BODY_LIMIT")
	if err != nil {
		return nil, err
	}
	autoMigrate, err := cfg.boolean("COINOP_AUTO_MIGRATE")
	if err != nil {
		return nil, err
	}
	webhookWorker, err := cfg.boolean("COINOP_WEBHOOK_WORKER")
	if err != nil {
		return nil, err
	}
	webhookInsecure, err := cfg.boolean("COINOP_WEBHOOK_ALLOW_INSECURE")
	if err != nil {
		return nil, err
	}
	webhookConcurrency, err := cfg.integer("COINOP_WEBHOOK_CONCURRENCY")
	if err != nil {
		return nil, err
	}
	stores, err := buildStores(cfg, logger)
	if err != nil {
		return nil, err
	}
	program, err := creatorProgram(cfg)
	if err != nil {
		return nil, err
	}

	dbURL := cfg.str("COINOP_DATABASE_URL")
	if autoMigrate {
		if err := migrations.Up(ctx, dbURL); err != nil {
			return nil, err
		}
		logger.Info("migrations applied")
	}
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("COINOP_DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		poolCfg.MaxConns = int32(maxConns)
	}
	db, err := pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	rdb, err := newRedis(cfg.str("COINOP_REDIS_URL"), cfg.str("COINOP_REDIS_MASTER_NAME"))
	if err != nil {
		db.Close()
		return nil, err
	}

	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	w := &wired{cfg: cfg, log: logger, db: db, redis: rdb, stop: stop, retention: durations["COINOP_IDEMPOTENCY_RETENTION"]}
	// Publishes are announced on Redis so every replica loads them at once;
	// the poll of Live.Run is the fallback when Redis is down.
	notifier := catalog.NewNotifier(rdb, prefix)
	w.catalogs = catalog.NewStore(db, catalog.WithNotifier(notifier))
	w.live = catalog.NewLive(w.catalogs)
	w.cache = entitlements.NewCache(rdb, db, entitlements.CacheConfig{Prefix: prefix, TTL: durations["COINOP_CACHE_TTL"], Logger: logger})
	ledgerOpts := []entitlements.Option{entitlements.WithKeyWait(durations["COINOP_IDEMPOTENCY_WAIT"]), entitlements.WithCache(w.cache),
		entitlements.WithGroupCommit(lanes, batch)}
	var creatorService *creators.Service
	if program != nil {
		// The writer and the service must run one program.
		ledgerOpts = append(ledgerOpts, entitlements.WithCreatorProgram(*program))
		creatorService = creators.New(db, *program)
	}
	w.ledger = entitlements.New(db, w.live, ledgerOpts...)
	registry := prometheus.NewRegistry()
	w.server = server.New(server.Config{
		JWTSecret:      []byte(secret),
		JWTIssuer:      cfg.str("COINOP_JWT_ISSUER"),
		JWTAudience:    cfg.str("COINOP_JWT_AUDIENCE"),
		AdminToken:     cfg.str("COINOP_ADMIN_TOKEN"),
		ServerToken:    cfg.str("COINOP_SERVER_TOKEN"),
		RateLimits:     rateLimits,
		RedisPrefix:    prefix,
		TrustedProxies: splitList(cfg.str("COINOP_TRUSTED_PROXIES")),
		RequestTimeout: durations["COINOP_REQUEST_TIMEOUT"],
		BodyLimit:      bodyLimit,
		KeyCacheTTL:    durations["COINOP_KEY_CACHE_TTL"],
		StoreTesters:   stores.testers,
	}, server.Deps{Cache: w.cache, Ledger: w.ledger, Catalogs: w.catalogs, Live: w.live, DB: db, Redis: rdb, Logger: logger,
		Stores: stores.stores, Registry: registry, Creators: creatorService, Webhooks: webhooks.NewEndpoints(db, webhookInsecure)})
	background := func() {
		if _, err := w.live.Refresh(ctx); err != nil && !errors.Is(err, catalog.ErrNoCatalog) {
			logger.Warn("catalog not loaded at start; will retry", slog.Any("error", err))
		}
		w.spawn(func() { w.live.Run(runCtx, durations["COINOP_CATALOG_REFRESH"]) })
		w.spawn(func() { notifier.Listen(runCtx, w.live) })
		w.spawn(func() { w.cache.RunEpochRefresh(runCtx) })
		w.spawn(func() { w.purgeIdempotencyKeys(runCtx) })
		if webhookWorker {
			// Deliveries: fan-out of new events, retries, a crashed
			// replica's expired leases.
			worker := webhooks.NewWorker(db, webhooks.Options{Timeout: durations["COINOP_WEBHOOK_TIMEOUT"],
				Concurrency: webhookConcurrency, Poll: durations["COINOP_WEBHOOK_POLL"], Logger: logger})
			registry.MustRegister(worker.Collectors()...)
			w.spawn(func() { worker.Run(runCtx) })
		}
		if stores.stores.Enabled() {
			// Refunds, renewals and Google acknowledgements left over by a crash.
			worker := w.server.StoreWorker(server.StoreWorkerOptions{Policy: stores.policy, ConsumptionInfo: stores.consumption})
			w.spawn(func() { worker.Run(runCtx) })
		}
		if iv := durations["COINOP_STORE_SWEEP_INTERVAL"]; iv > 0 && stores.stores.Enabled() {
			// What lost notifications missed, leased: one replica per interval.
			sweeper := w.server.StoreSweeper(server.StoreSweepOptions{Interval: iv,
				Lookback: durations["COINOP_STORE_SWEEP_LOOKBACK"], GoogleVoided: stores.voided})
			w.spawn(func() { sweeper.Run(runCtx) })
		}
	}
	if err := migrations.Check(ctx, db); err != nil {
		// Without the schema every background loop and request would fail
		// on a missing relation, several times a second. Say so once, answer
		// 503 (readiness included) and start the rest when it is migrated.
		logger.Error("not ready: "+err.Error(), slog.Int("schema_version_needed", int(migrations.Latest())))
		w.server.SetSchemaProblem(err)
		w.spawn(func() { w.awaitSchema(runCtx, background) })
	} else {
		background()
	}
	return w, nil
}

// awaitSchema polls until the database schema serves this binary (another
// process ran `coinop migrate`), then clears the 503 and starts the
// background work. It logs once when it does.
func (w *wired) awaitSchema(ctx context.Context, start func()) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := migrations.Check(ctx, w.db); err == nil {
			w.server.SetSchemaProblem(nil)
			w.log.Info("database schema migrated; ready", slog.Int("schema_version", int(migrations.Latest())))
			start()
			return
		}
	}
}

// newRedis accepts one redis:// or rediss:// URL, several (Redis Cluster),
// or sentinels with a master name. Timeouts are short so a slow Redis
// degrades reads to Postgres instead of stalling requests.
func newRedis(urls, masterName string) (redis.UniversalClient, error) {
	var opts redis.UniversalOptions
	for i, u := range strings.Split(urls, ",") {
		o, err := redis.ParseURL(strings.TrimSpace(u))
		if err != nil {
			return nil, fmt.Errorf("COINOP_REDIS_URL: %w", err)
		}
		if i == 0 {
			opts.Username, opts.Password, opts.DB, opts.TLSConfig = o.Username, o.Password, o.DB, o.TLSConfig
		}
		opts.Addrs = append(opts.Addrs, o.Addr)
	}
	opts.MasterName = masterName
	opts.DialTimeout = 500 * time.Millisecond
	// One dial attempt per connection: go-redis otherwise tries five times
	// 100 ms apart, and with its command retries a refused Redis stalled
	// every committed purchase's cache update for the whole second it may
	// take (the chaos suite's Redis kill: acknowledgements fell to a few a
	// second). The command retries still redial, and the breaker does the
	// rest.
	opts.DialerRetries = 1
	opts.ReadTimeout = 250 * time.Millisecond
	opts.WriteTimeout = 250 * time.Millisecond
	return redis.NewUniversalClient(&opts), nil
}

func (w *wired) purgeIdempotencyKeys(ctx context.Context) {
	t := time.NewTicker(10 * time.Minute)
	defer t.Stop()
	for {
		n, err := w.ledger.PurgeIdempotencyKeys(ctx, w.retention)
		if err != nil && ctx.Err() == nil {
			w.log.Warn("purging idempotency keys failed", slog.Any("error", err))
		} else if n > 0 {
			w.log.Info("purged idempotency keys", slog.Int64("deleted", n))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serve listens until ctx ends, then stops taking connections and waits for
// in-flight requests up to COINOP_SHUTDOWN_TIMEOUT. ready, when set, is called
// with the bound address once listening.
func (w *wired) serve(ctx context.Context, ready func(addr string)) error {
	ln, err := net.Listen("tcp", w.cfg.str("COINOP_ADDR"))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	w.log.Info("listening", slog.String("addr", ln.Addr().String()))
	if ready != nil {
		ready(ln.Addr().String())
	}
	errc := make(chan error, 1)
	go func() { errc <- w.server.App().Listener(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	timeout, _ := w.cfg.duration("COINOP_SHUTDOWN_TIMEOUT")
	w.log.Info("shutting down", slog.Duration("timeout", timeout))
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := w.server.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// spawn runs fn in a goroutine that close waits for.
func (w *wired) spawn(fn func()) {
	w.background.Add(1)
	w.running.Add(1)
	go func() {
		defer w.background.Done()
		defer w.running.Add(-1)
		fn()
	}()
}

// close stops the background work, waits for every goroutine spawn started
// to return (a store worker mid-notification finishes its transaction),
// then closes Redis and the pool they used.
func (w *wired) close() {
	w.stop()
	w.background.Wait()
	_ = w.redis.Close()
	w.db.Close()
}

// splitList reads a comma-separated setting, ignoring blanks.
func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
