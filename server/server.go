// Package server is coinop's HTTP API: it authenticates requests, decodes and
// validates bodies, calls one domain method per request and encodes the
// result. It holds no business rules and opens no transactions; errors become
// RFC 9457 problem documents in errors.go, the only such map.
package server

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/outbox"
	"github.com/coinop/coinop/stores"
	"github.com/coinop/coinop/webhooks"
)

// Config holds the server's settings; cmd/coinop fills it from COINOP_*.
type Config struct {
	// JWTSecret verifies player tokens (HS256).
	JWTSecret []byte
	// JWTIssuer and JWTAudience, when set, must match the token's iss and aud.
	JWTIssuer, JWTAudience string
	// AdminToken is the bearer token of the admin API; empty disables it.
	AdminToken string
	// ServerToken is the game-server key for entitlement checks; empty
	// disables those routes.
	ServerToken string
	// RateLimits caps the player API; zero limits mean none.
	RateLimits RateLimits
	// RedisPrefix starts the rate limiter's Redis keys.
	RedisPrefix string
	// TrustedProxies are the load balancers (IPs or CIDRs) whose
	// X-Forwarded-For names the client for the per-IP rate limit; requests
	// from anywhere else are keyed on their connection address.
	TrustedProxies []string
	// RequestTimeout bounds the work done for one request.
	RequestTimeout time.Duration
	// BodyLimit is the largest request body for the player API.
	BodyLimit int
	// CatalogBodyLimit is the largest catalog document an admin may upload.
	CatalogBodyLimit int
	// KeyCacheTTL is how long a verified admin API key is trusted before
	// Postgres is asked again (and so how long a revoked key may still work
	// on other replicas); 0 means access.DefaultCacheTTL.
	KeyCacheTTL time.Duration
	// StoreTesters are the players whose sandbox (test) store purchases a
	// production deployment accepts.
	StoreTesters []string
}

// Deps are the parts the server calls.
type Deps struct {
	Ledger *entitlements.Ledger
	// Cache, when set, has its metrics exported and its state in /readyz.
	Cache    *entitlements.Cache
	Catalogs *catalog.Store
	Live     *catalog.Live
	DB       *pgxpool.Pool
	Redis    redis.UniversalClient
	Logger   *slog.Logger
	// Registry receives the server's metrics; nil means a fresh registry.
	Registry *prometheus.Registry
	// Keys verifies admin API keys and AuditLog reads the audit log; nil
	// means built on DB.
	Keys     *access.Keys
	AuditLog *audit.Log
	// Stores verify store purchases and notifications; none means receipts
	// are disabled.
	Stores Stores
	// Creators runs the creator program (the Ledger must have the same
	// program, entitlements.WithCreatorProgram); nil means it is off and
	// the creator routes answer 404 creators_disabled.
	Creators *creators.Service
	// Webhooks manages webhook endpoints (the admin routes); nil means
	// built on DB, https URLs only.
	Webhooks *webhooks.Endpoints
}

// Server is the HTTP API.
type Server struct {
	cfg      Config
	ledger   *entitlements.Ledger
	catalogs *catalog.Store
	live     *catalog.Live
	db       *pgxpool.Pool
	redis    redis.UniversalClient
	log      *slog.Logger
	metrics  *metrics
	limiter  *rateLimiter
	cache    *entitlements.Cache
	app      *fiber.App
	keys     *access.Keys
	auditLog *audit.Log
	stores   *stores.Service
	feed     *outbox.Feed
	creators *creators.Service
	webhooks *webhooks.Endpoints

	catalogBody atomic.Pointer[catalogBody]
	// schemaProblem, when set, says why the database schema cannot serve
	// this binary (not migrated, or older): every route but the health
	// and metrics ones answers 503 until it is cleared.
	schemaProblem atomic.Pointer[string]
}

// StoreWorkerOptions tune the store worker (see stores.WorkerOptions).
type StoreWorkerOptions = stores.WorkerOptions

// StoreWorker returns the store worker (stores.Worker) over the server's
// ledger, catalog and stores.
func (s *Server) StoreWorker(o StoreWorkerOptions) *stores.Worker { return s.stores.Worker(o) }

// SetSchemaProblem records that the database schema cannot serve this
// binary (err, a sentence for operators), or that it can again (nil).
func (s *Server) SetSchemaProblem(err error) {
	if err == nil {
		s.schemaProblem.Store(nil)
		return
	}
	msg := err.Error()
	s.schemaProblem.Store(&msg)
}

// requireSchema answers 503 while the schema is not migrated, instead of
// letting each request fail on a missing relation.
func (s *Server) requireSchema(c *fiber.Ctx) error {
	if msg := s.schemaProblem.Load(); msg != nil {
		return newProblem(fiber.StatusServiceUnavailable, codeUnavailable, "Not ready: "+*msg+".")
	}
	return c.Next()
}

// New builds the server and its routes.
func New(cfg Config, deps Deps) *Server {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = 64 << 10
	}
	if cfg.CatalogBodyLimit <= 0 {
		cfg.CatalogBodyLimit = catalog.MaxDocumentSize
	}
	if deps.Logger == nil {
		deps.Logger = slog.Default()
	}
	if deps.Registry == nil {
		deps.Registry = prometheus.NewRegistry()
	}
	s := &Server{
		cfg: cfg, ledger: deps.Ledger, catalogs: deps.Catalogs, live: deps.Live,
		db: deps.DB, redis: deps.Redis, log: deps.Logger, cache: deps.Cache, creators: deps.Creators,
	}
	s.stores = stores.New(deps.Stores, stores.Config{Ledger: deps.Ledger, Live: deps.Live, Testers: cfg.StoreTesters, Logger: deps.Logger})
	if deps.Keys == nil && deps.DB != nil {
		deps.Keys = access.NewKeys(deps.DB, access.KeysConfig{CacheTTL: cfg.KeyCacheTTL, Logger: deps.Logger})
	}
	if deps.AuditLog == nil && deps.DB != nil {
		deps.AuditLog = audit.New(deps.DB)
	}
	s.keys, s.auditLog = deps.Keys, deps.AuditLog
	if deps.DB != nil {
		s.feed = outbox.NewFeed(deps.DB)
	}
	if deps.Webhooks == nil && deps.DB != nil {
		deps.Webhooks = webhooks.NewEndpoints(deps.DB, false)
	}
	s.webhooks = deps.Webhooks
	s.metrics = newMetrics(deps.Registry, deps.DB)
	if deps.Cache != nil {
		deps.Registry.MustRegister(deps.Cache.Collectors()...)
	}
	if deps.Ledger != nil && deps.DB != nil {
		deps.Registry.MustRegister(sweepCollector{deps.Ledger})
	}
	s.limiter = newRateLimiter(deps.Redis, cfg.RedisPrefix, cfg.RateLimits, cfg.TrustedProxies)
	s.app = fiber.New(fiber.Config{
		AppName:               "coinop",
		DisableStartupMessage: true,
		ErrorHandler:          s.errorHandler,
		// Success and problem bodies go through one encoder.
		JSONEncoder: encodeJSON,
		// Paths are exact: /v1/catalog/ and /V1/CATALOG are not /v1/catalog
		// but unknown routes (404), as docs/openapi.yaml has them.
		StrictRouting: true,
		CaseSensitive: true,
		// fasthttp refuses bodies above this before a handler runs; routes
		// then apply their own, smaller limits.
		BodyLimit: max(cfg.BodyLimit, cfg.CatalogBodyLimit, 1<<20),
		// Without streaming, fasthttp allocates the declared Content-Length
		// before routing: headers alone declaring 4 MiB on a few hundred
		// connections took a gigabyte, unauthenticated. Streamed, a body
		// costs memory only as its bytes arrive and only on routes that
		// read it (limitBody), after authentication.
		StreamRequestBody: true,
		// Behind a load balancer every connection comes from it; only its
		// forwarded header says who the client is, and only it is believed.
		EnableTrustedProxyCheck: len(cfg.TrustedProxies) > 0,
		TrustedProxies:          cfg.TrustedProxies,
		ProxyHeader:             proxyHeader(cfg.TrustedProxies),
		EnableIPValidation:      true,
		ReadTimeout:             30 * time.Second,
		WriteTimeout:            30 * time.Second,
		IdleTimeout:             120 * time.Second,
	})
	s.routes()
	return s
}

func proxyHeader(trusted []string) string {
	if len(trusted) == 0 {
		return ""
	}
	return fiber.HeaderXForwardedFor
}

// App returns the fiber app, for Listen and for tests (app.Test).
func (s *Server) App() *fiber.App { return s.app }

// Shutdown stops accepting connections and waits for in-flight requests.
func (s *Server) Shutdown(ctx context.Context) error { return s.app.ShutdownWithContext(ctx) }

func (s *Server) routes() {
	app := s.app
	app.Use(s.requestContext, s.observe, s.recoverPanics)

	app.Get("/healthz", s.healthz)
	app.Get("/readyz", s.readyz)
	app.Get("/metrics", s.metrics.handler())
	app.Use(s.requireSchema)

	// The web console: its page at /console, its files at /console/NAME.
	serveConsole := s.serveConsole()
	app.Get("/console", serveConsole)
	app.Get("/console/:file", serveConsole)

	v1 := app.Group("/v1")
	v1.Get("/catalog", s.getCatalog)
	// Game-server routes come first: /v1/players/... and /v1/entitlements/check
	// must not fall into the player group's middleware.
	v1.Get("/players/:player_id/entitlements/:item_id", s.requireServer, s.getEntitlementCheck)
	v1.Post("/entitlements/check", s.requireServer, s.limitBody(1<<20), s.postEntitlementChecks)
	v1.Get("/events", s.requireServer, s.getEvents)
	v1.Post("/players/:player_id/awards", s.requireServer, s.limitBody(s.cfg.BodyLimit), s.postMove(entitlements.MoveAward))
	v1.Post("/players/:player_id/spends", s.requireServer, s.limitBody(s.cfg.BodyLimit), s.postMove(entitlements.MoveSpend))
	v1.Post("/players/:player_id/consumptions", s.requireServer, s.limitBody(s.cfg.BodyLimit), s.postMove(entitlements.MoveConsume))
	v1.Post("/players/:player_id/exchanges", s.requireServer, s.limitBody(s.cfg.BodyLimit), s.postMove(entitlements.MoveExchange))
	// Store notifications authenticate themselves (Apple's signature, Google's
	// OIDC push token), so they too come before the player group.
	// Unauthenticated until their signature is checked: limited per IP
	// like the player API, before the body is read.
	v1.Post("/stores/apple/notifications", s.limiter.check, s.limitBody(notificationBodyLimit), s.postAppleNotification)
	v1.Post("/stores/google/notifications", s.limiter.check, s.limitBody(notificationBodyLimit), s.postGoogleNotification)

	player := v1.Group("", s.requirePlayer, s.limiter.check)
	player.Get("/wallet", s.getWallet)
	player.Get("/entitlements", s.getEntitlements)
	player.Post("/purchases", s.limitBody(s.cfg.BodyLimit), s.postPurchase)
	player.Post("/consumptions", s.limitBody(s.cfg.BodyLimit), s.postPlayerConsumption)
	player.Post("/receipts", s.limitBody(receiptBodyLimit), s.postReceipt)
	// Creators (creators.go): the code the player supports, and tips.
	player.Get("/creator-code", s.requireCreators, s.getCreatorCode)
	player.Put("/creator-code", s.requireCreators, s.limitBody(s.cfg.BodyLimit), s.putCreatorCode)
	player.Delete("/creator-code", s.requireCreators, s.deleteCreatorCode)
	player.Post("/creators/:creator_id/tips", s.requireCreators, s.limitBody(s.cfg.BodyLimit), s.postTip)

	// The admin API: requireAdmin says who the caller is, allow says what
	// they may do. Every route names its role (README, "Roles and keys").
	admin := app.Group("/admin/v1", s.requireAdmin)
	viewer, editor, publisher := s.allow(access.RoleViewer), s.allow(access.RoleEditor), s.allow(access.RolePublisher)
	support, keyAdmin := s.allow(access.RoleSupport), s.allow(access.RoleAdmin)
	catalogBody := s.limitBody(s.cfg.CatalogBodyLimit)
	admin.Put("/catalog", publisher, catalogBody, s.putCatalog)
	admin.Get("/catalog/draft", viewer, s.getDraft)
	admin.Put("/catalog/draft", editor, catalogBody, s.putDraft)
	admin.Post("/catalog/draft/validate", viewer, catalogBody, s.postValidateDraft)
	admin.Get("/catalog/draft/diff", viewer, s.getDraftDiff)
	admin.Get("/catalog/draft/:section/:id", viewer, s.getDraftEntity)
	admin.Put("/catalog/draft/:section/:id", editor, catalogBody, s.putDraftEntity)
	admin.Delete("/catalog/draft/:section/:id", editor, s.deleteDraftEntity)
	admin.Post("/catalog/publish", publisher, s.limitBody(s.cfg.BodyLimit), s.postPublish)
	admin.Post("/catalog/rollback", publisher, s.limitBody(s.cfg.BodyLimit), s.postRollback)
	admin.Get("/catalog/versions", viewer, s.getVersions)
	admin.Get("/catalog/versions/:version", viewer, s.getVersion)
	admin.Post("/players/:player_id/grants", support, s.limitBody(s.cfg.BodyLimit), s.postGrant)
	admin.Get("/players/:player_id/ledger", support, s.getLedger)
	admin.Get("/players/:player_id/holdings", support, s.getHoldings)
	admin.Get("/players/:player_id/debts", support, s.getPlayerDebts)
	admin.Post("/players/:player_id/purchases/:transaction_id/refund", support, s.limitBody(s.cfg.BodyLimit), s.postPurchaseRefund)
	admin.Get("/me", s.getMe) // any admin caller: the console asks what it may show
	admin.Get("/audit", support, s.getAudit)
	admin.Get("/audit-log", support, s.getAuditLog)
	admin.Get("/players/:player_id/store-purchases", support, s.getStorePurchases)
	admin.Get("/refunds", support, s.getRefunds)
	admin.Get("/store-notifications", support, s.getStoreNotifications)
	admin.Get("/store-sweeps", support, s.getStoreSweeps)
	admin.Get("/keys", keyAdmin, s.getKeys)
	admin.Post("/keys", keyAdmin, s.limitBody(s.cfg.BodyLimit), s.postKey)
	admin.Delete("/keys/:key", keyAdmin, s.deleteKey)
	admin.Put("/keys/:key/limits", keyAdmin, s.limitBody(s.cfg.BodyLimit), s.putKeyLimits)
	// Creators (creators.go): support manages them and reads their
	// earnings; only admin records a payout, the one route that says money
	// is owed out of the studio.
	admin.Get("/creators", support, s.requireCreators, s.getCreators)
	admin.Post("/creators", support, s.requireCreators, s.limitBody(s.cfg.BodyLimit), s.postCreator)
	admin.Get("/creators/:creator_id", support, s.requireCreators, s.getCreator)
	admin.Patch("/creators/:creator_id", support, s.requireCreators, s.limitBody(s.cfg.BodyLimit), s.patchCreator)
	admin.Post("/creators/:creator_id/codes", support, s.requireCreators, s.limitBody(s.cfg.BodyLimit), s.postCreatorCode)
	admin.Get("/creators/:creator_id/earnings", support, s.requireCreators, s.getCreatorEarnings)
	admin.Get("/creators/:creator_id/statement", support, s.requireCreators, s.getCreatorStatement)
	admin.Post("/creators/:creator_id/payouts", keyAdmin, s.requireCreators, s.postCreatorPayout)
	admin.Get("/webhooks", keyAdmin, s.getWebhooks)
	admin.Post("/webhooks", keyAdmin, s.limitBody(s.cfg.BodyLimit), s.postWebhook)
	admin.Get("/webhooks/:id", keyAdmin, s.getWebhook)
	admin.Patch("/webhooks/:id", keyAdmin, s.limitBody(s.cfg.BodyLimit), s.patchWebhook)
	admin.Delete("/webhooks/:id", keyAdmin, s.deleteWebhook)
	admin.Post("/webhooks/:id/rotate-secret", keyAdmin, s.postWebhookRotateSecret)
	admin.Post("/webhooks/:id/redeliveries", keyAdmin, s.limitBody(s.cfg.BodyLimit), s.postWebhookRedeliveries)

	app.Use(func(c *fiber.Ctx) error { return fiber.ErrNotFound })
}
