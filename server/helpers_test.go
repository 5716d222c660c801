package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/server"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const (
	testSecret = "test-secret-0123456789abcdef0123456789"
	adminToken = "test-admin-token"
	problemCT  = "application/problem+json"
)

// env is one server wired as cmd/coinop wires it, over its own database.
type env struct {
	pool   *pgxpool.Pool
	ledger *entitlements.Ledger
	store  *catalog.Store
	live   *catalog.Live
	srv    *server.Server
	app    *fiber.App
	// checks holds the exchanges of send, checked against
	// docs/openapi.yaml when the test ends (openapi_test.go).
	checks *specChecks
}

type envConfig struct {
	cfg        server.Config
	noCatalog  bool
	ledgerOpts []entitlements.Option
	redis      redis.UniversalClient
	pool       *pgxpool.Pool
	// creators, when set, turns the creator program on (creators_test.go).
	creators *creators.Program
}

type option func(*envConfig)

// withoutCatalog leaves the database with no published catalog.
func withoutCatalog() option { return func(c *envConfig) { c.noCatalog = true } }

// withConfig adjusts the server's configuration.
func withConfig(f func(*server.Config)) option { return func(c *envConfig) { f(&c.cfg) } }

func withLedgerOptions(opts ...entitlements.Option) option {
	return func(c *envConfig) { c.ledgerOpts = append(c.ledgerOpts, opts...) }
}

// withRedis replaces the test Redis client.
func withRedis(r redis.UniversalClient) option { return func(c *envConfig) { c.redis = r } }

// withPool runs everything over pool instead of a fresh test database; the
// fixture catalog is then installed in memory only.
func withPool(p *pgxpool.Pool) option { return func(c *envConfig) { c.pool = p } }

// newEnv builds a server over a fresh migrated database with the fixture
// catalog (testdata/catalog.json) published as version 1.
func newEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	ec := envConfig{cfg: server.Config{JWTSecret: []byte(testSecret), AdminToken: adminToken}}
	for _, o := range opts {
		o(&ec)
	}
	pool := ec.pool
	if pool == nil {
		pool, _ = testenv.NewPool(t)
	}
	if ec.redis == nil {
		var prefix string
		ec.redis, prefix = testenv.RedisClient(t)
		if ec.cfg.RedisPrefix == "" {
			ec.cfg.RedisPrefix = prefix
		}
	}
	e := &env{pool: pool, store: catalog.NewStore(pool)}
	e.checkSpecAtEnd(t)
	e.live = catalog.NewLive(e.store)
	e.ledger = entitlements.New(pool, e.live, ec.ledgerOpts...)
	if !ec.noCatalog {
		doc := fixtureCatalog(t)
		if ec.pool != nil {
			snap, err := catalog.NewSnapshot(1, time.Now(), doc)
			if err != nil {
				t.Fatalf("fixture catalog: %v", err)
			}
			e.live.Set(snap)
		} else {
			snap, err := e.store.Publish(context.Background(), doc, "fixture", "test")
			if err != nil {
				t.Fatalf("publish fixture catalog: %v", err)
			}
			e.live.Set(snap)
		}
	}
	deps := server.Deps{
		Ledger: e.ledger, Catalogs: e.store, Live: e.live, DB: pool, Redis: ec.redis,
		Logger: testLogger(t),
	}
	if ec.creators != nil {
		deps.Creators = creators.New(pool, *ec.creators)
	}
	e.srv = server.New(ec.cfg, deps)
	e.app = e.srv.App()
	// fiber builds its route tree on the first request; make that happen
	// here, before any test sends requests concurrently.
	if r := e.get(t, "/healthz", ""); r.status != http.StatusOK {
		t.Fatalf("GET /healthz = %d", r.status)
	}
	return e
}

func fixtureCatalog(t testing.TB) *catalog.Catalog {
	t.Helper()
	doc, err := catalog.Parse(readFile(t, "catalog.json"), catalog.FormatJSON)
	if err != nil {
		t.Fatalf("fixture catalog: %v", err)
	}
	return doc
}

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testLogger sends the server's warnings and errors (5xx, panics) to the
// test log, where a failing test shows them.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// response is an HTTP response with its body read.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) String() string {
	return fmt.Sprintf("%d %s %s", r.status, r.header.Get("Content-Type"), r.body)
}

// object decodes the body as a JSON object.
func (r response) object(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("response body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// decode decodes the body into v.
func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %T: %v: %s", v, err, r.body)
	}
}

// send runs req through the app with no timeout and reads the response. It
// is safe to call from any goroutine. The request and response are checked
// against docs/openapi.yaml when the test ends (checkSpecAtEnd), so that
// checking adds no time to what a test measures.
func (e *env) send(req *http.Request) (response, error) {
	x, err := e.exchange(req)
	if err == nil && e.checks != nil {
		e.checks.add(x)
	}
	return x.resp, err
}

// sendChecked is send checking the exchange at once and reporting to t, for
// a fuzz target, whose *testing.F cannot report from inside the target.
func (e *env) sendChecked(t *testing.T, req *http.Request) (response, error) {
	x, err := e.exchange(req)
	if err == nil {
		reportMismatches(t, x)
	}
	return x.resp, err
}

// exchange sends req and returns it and its response, bodies read.
func (e *env) exchange(req *http.Request) (exchange, error) {
	x := exchange{method: req.Method, path: req.URL.RequestURI(), reqHeader: req.Header.Clone()}
	if req.Body != nil {
		b, err := io.ReadAll(req.Body)
		if err != nil {
			return x, err
		}
		x.reqBody = b
		req.Body = io.NopCloser(bytes.NewReader(b))
	}
	resp, err := e.app.Test(req, -1)
	if err != nil {
		return x, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return x, err
	}
	x.resp = response{status: resp.StatusCode, header: resp.Header, body: body}
	return x, nil
}

func (e *env) do(t testing.TB, req *http.Request) response {
	t.Helper()
	r, err := e.send(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return r
}

// newRequest builds a request; headers are name, value pairs.
func newRequest(method, path string, body []byte, headers ...string) *http.Request {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

func bearer(token string) string { return "Bearer " + token }

// get sends GET path with token as the bearer token, if not empty.
func (e *env) get(t testing.TB, path, token string) response {
	t.Helper()
	req := newRequest(http.MethodGet, path, nil)
	if token != "" {
		req.Header.Set("Authorization", bearer(token))
	}
	return e.do(t, req)
}

func purchaseRequest(player, key, body string) *http.Request {
	return newRequest(http.MethodPost, "/v1/purchases", []byte(body),
		"Authorization", bearer(playerToken(player)), "Content-Type", "application/json", "Idempotency-Key", key)
}

// purchase posts body to /v1/purchases as player with the idempotency key.
func (e *env) purchase(t testing.TB, player, key, body string) response {
	t.Helper()
	return e.do(t, purchaseRequest(player, key, body))
}

// buy is the body of a purchase of quantity units at a unit price.
func buy(item string, quantity int64, currency string, amount int64) string {
	return fmt.Sprintf(`{"item_id":%q,"quantity":%d,"price":{"currency":%q,"amount":%d}}`, item, quantity, currency, amount)
}

// grant gives player currencies and items through the admin API and fails
// the test unless it answers 201.
func (e *env) grant(t testing.TB, player, key string, currencies, items map[string]int64) response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"reason": "test funding", "currencies": currencies, "items": items})
	if err != nil {
		t.Fatal(err)
	}
	r := e.do(t, newRequest(http.MethodPost, "/admin/v1/players/"+player+"/grants", body,
		"Authorization", bearer(adminToken), "Content-Type", "application/json", "Idempotency-Key", key))
	if r.status != http.StatusCreated {
		t.Fatalf("grant to %s: %s", player, r)
	}
	return r
}

// wallet returns the player's balances as the player sees them.
func (e *env) wallet(t testing.TB, player string) map[string]int64 {
	t.Helper()
	r := e.get(t, "/v1/wallet", playerToken(player))
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/wallet as %s: %s", player, r)
	}
	var w struct {
		PlayerID string           `json:"player_id"`
		Balances map[string]int64 `json:"balances"`
	}
	r.decode(t, &w)
	if w.PlayerID != player {
		t.Fatalf("GET /v1/wallet as %s answered for %q", player, w.PlayerID)
	}
	return w.Balances
}

// items returns the player's entitlements as the player sees them.
func (e *env) items(t testing.TB, player string) map[string]int64 {
	t.Helper()
	r := e.get(t, "/v1/entitlements", playerToken(player))
	if r.status != http.StatusOK {
		t.Fatalf("GET /v1/entitlements as %s: %s", player, r)
	}
	var body struct {
		PlayerID     string `json:"player_id"`
		Entitlements []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	}
	r.decode(t, &body)
	if body.PlayerID != player {
		t.Fatalf("GET /v1/entitlements as %s answered for %q", player, body.PlayerID)
	}
	out := map[string]int64{}
	for _, en := range body.Entitlements {
		out[en.ItemID] = en.Quantity
	}
	return out
}

type ledgerPage struct {
	PlayerID     string `json:"player_id"`
	Transactions []struct {
		ID        int64           `json:"id"`
		Kind      string          `json:"kind"`
		Reference string          `json:"reference"`
		Metadata  json.RawMessage `json:"metadata"`
		Entries   []struct {
			Account   string `json:"account"`
			AssetType string `json:"asset_type"`
			AssetID   string `json:"asset_id"`
			Amount    int64  `json:"amount"`
		} `json:"entries"`
	} `json:"transactions"`
	NextBefore *int64 `json:"next_before"`
}

// ledger reads one page of the player's ledger through the admin API.
func (e *env) ledgerPage(t testing.TB, player, query string) ledgerPage {
	t.Helper()
	r := e.get(t, "/admin/v1/players/"+player+"/ledger"+query, adminToken)
	if r.status != http.StatusOK {
		t.Fatalf("GET ledger of %s%s: %s", player, query, r)
	}
	var p ledgerPage
	r.decode(t, &p)
	return p
}

// assertAuditOK fails the test unless GET /admin/v1/audit reports every check ok.
func (e *env) assertAuditOK(t testing.TB) {
	t.Helper()
	r := e.get(t, "/admin/v1/audit", adminToken)
	var body struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		} `json:"checks"`
	}
	r.decode(t, &body)
	if r.status != http.StatusOK || !body.OK || len(body.Checks) == 0 {
		t.Fatalf("GET /admin/v1/audit: %s", r)
	}
	for _, c := range body.Checks {
		if !c.OK {
			t.Errorf("audit check %s failed: %s", c.Name, r.body)
		}
	}
}

// playerToken is a valid player token for player, good for an hour.
func playerToken(player string) string {
	return signHS256(jwt.RegisteredClaims{
		Subject:   player,
		IssuedAt:  jwt.NewNumericDate(time.Now()),
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(time.Hour)),
	}, testSecret)
}

func signHS256(claims jwt.Claims, secret string) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}

// titles are the problem titles clients see, by code.
var titles = map[string]string{
	"invalid_request":         "Invalid request",
	"idempotency_key_missing": "Idempotency-Key header required",
	"idempotency_key_reused":  "Idempotency key reused with a different request",
	"idempotency_key_in_use":  "A request with this idempotency key is in progress",
	"unauthenticated":         "Authentication required",
	"forbidden":               "Forbidden",
	"not_found":               "Not found",
	"request_too_large":       "Request too large",
	"unsupported_media_type":  "Unsupported media type",
	"catalog_invalid":         "Catalog invalid",
	"catalog_not_published":   "No catalog published",
	"unavailable":             "Service unavailable",
	"internal":                "Internal error",
	"rate_limited":            "Too Many Requests",
	"item_not_found":          "Item not found",
	"item_unavailable":        "Item not available now",
	"price_mismatch":          "Price changed",
	"currency_not_offered":    "Not sold in this currency",
	"insufficient_funds":      "Insufficient funds",
	"already_owned":           "Already owned",
	"limit_exceeded":          "Limit exceeded",
	"asset_not_allowed":       "Not allowed for this key",
	"posting_too_large":       "Above this key's most per posting",
	"budget_exceeded":         "Key budget exhausted",
	"key_not_found":           "Key not found",
	"not_consumable":          "Not consumable by players",
	// Purchase refunds (purchase_refunds.go).
	"purchase_not_found":         "Purchase not found",
	"purchase_of_another_player": "Purchase of another player",
	"not_a_purchase":             "Not a purchase",
	"refund_exceeds_purchase":    "Refund exceeds the purchase",
	"purchase_already_refunded":  "Purchase already refunded",
}

// assertProblem checks that r is an RFC 9457 problem with this status and
// code, and returns its body.
func assertProblem(t testing.TB, r response, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status = %d, want %d (%s): %s", r.status, status, code, r)
	}
	if ct := r.header.Get("Content-Type"); ct != problemCT {
		t.Errorf("Content-Type = %q, want %q", ct, problemCT)
	}
	p := r.object(t)
	if p["code"] != code {
		t.Errorf("code = %v, want %s: %s", p["code"], code, r.body)
	}
	if want := "urn:coinop:problem:" + code; p["type"] != want {
		t.Errorf("type = %v, want %s", p["type"], want)
	}
	if want, ok := titles[code]; !ok || p["title"] != want {
		t.Errorf("title = %v, want %q", p["title"], want)
	}
	if n, _ := p["status"].(json.Number); n.String() != fmt.Sprint(status) {
		t.Errorf("status field = %v, want %d", p["status"], status)
	}
	return p
}

// listen serves the app on a loopback port until the test ends and returns
// its base URL, for what app.Test cannot show (fasthttp-level refusals) and
// for benchmarks over real connections.
func (e *env) listen(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.app.Listener(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("listener: %v", err)
		}
	})
	return "http://" + ln.Addr().String()
}

func readResponse(t testing.TB, resp *http.Response) response {
	t.Helper()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// dialRaw opens a connection to a listening server (see listen) for raw
// HTTP, closed when the test ends; reads and writes give up after 10 s.
func dialRaw(t testing.TB, base string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	return conn
}
