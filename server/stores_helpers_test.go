package server_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/awa/go-iap/appstore"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/api/androidpublisher/v3"
	"google.golang.org/api/googleapi"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
	"github.com/coinop/coinop/stores"
)

// Problem titles of the store codes, for assertProblem.
func init() {
	titles["receipt_invalid"] = "Receipt invalid"
	titles["receipt_owned_by_another_player"] = "Receipt redeemed by another player"
	titles["store_unavailable"] = "Store unavailable"
	titles["store_disabled"] = "Store not enabled"
	titles["store_misconfigured"] = "Store configuration refused"
}

const (
	testBundle   = "com.example.game"
	testAppID    = int64(1234567890)
	testPackage  = "com.example.game.android"
	pushAudience = "https://coinop.example/v1/stores/google/notifications"
	pushEmail    = "rtdn-push@coinop.iam.gserviceaccount.com"
)

// storeEnv is a server with every store wired to a fake: Apple signed data
// to a test CA, verifyReceipt, the Play Developer API and Google's OIDC keys
// to httptest servers.
type storeEnv struct {
	*env
	ca     *fakestore.CA
	legacy *fakestore.VerifyReceiptServer
	play   *fakestore.PlayServer
	api    *flakyPlayAPI
	jwks   *rsa.PrivateKey
	worker *stores.Worker
}

type storeConfig struct {
	testers  []string
	appleEnv receipts.Environment
	policy   entitlements.ClawbackPolicy
	stores   func(*server.Stores)
}

type storeOption func(*storeConfig)

func withTesters(ids ...string) storeOption {
	return func(c *storeConfig) { c.testers = append(c.testers, ids...) }
}

func withPolicy(p entitlements.ClawbackPolicy) storeOption {
	return func(c *storeConfig) { c.policy = p }
}

// withStores edits the stores before the server is built, e.g. to disable one.
func withStores(f func(*server.Stores)) storeOption { return func(c *storeConfig) { c.stores = f } }

func newStoreEnv(t testing.TB, opts ...storeOption) *storeEnv {
	t.Helper()
	sc := storeConfig{appleEnv: receipts.EnvProduction, policy: entitlements.ClawbackClamp}
	for _, o := range opts {
		o(&sc)
	}
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	e := &env{pool: pool, store: catalog.NewStore(pool)}
	e.checkSpecAtEnd(t)
	e.live = catalog.NewLive(e.store)
	e.ledger = entitlements.New(pool, e.live)
	doc, err := catalog.Parse(readFile(t, "store_catalog.json"), catalog.FormatJSON)
	if err != nil {
		t.Fatalf("store catalog: %v", err)
	}
	snap, err := e.store.Publish(ctx, doc, "store fixture", "test")
	if err != nil {
		t.Fatalf("publish store catalog: %v", err)
	}
	e.live.Set(snap)

	se := &storeEnv{env: e, legacy: fakestore.NewVerifyReceiptServer(nil, nil), play: fakestore.NewPlayServer()}
	if se.ca, err = fakestore.NewCA(); err != nil {
		t.Fatal(err)
	}
	var st server.Stores
	if st.Apple, err = receipts.NewAppleVerifier(receipts.AppleConfig{
		BundleID: testBundle, AppAppleID: testAppID, Environment: sc.appleEnv, Roots: se.ca.Roots(),
	}); err != nil {
		t.Fatal(err)
	}
	legacySrv := httptest.NewServer(se.legacy)
	t.Cleanup(legacySrv.Close)
	legacyEnv := sc.appleEnv
	if legacyEnv == receipts.EnvXcode {
		legacyEnv = receipts.EnvSandbox
	}
	if st.AppleLegacy, err = receipts.NewAppleLegacy(receipts.AppleLegacyConfig{
		BundleID: testBundle, Environment: legacyEnv, ProductionURL: legacySrv.URL + "/prod", SandboxURL: legacySrv.URL + "/sandbox",
		HTTPClient: &http.Client{Timeout: 5 * time.Second},
	}); err != nil {
		t.Fatal(err)
	}
	playSrv := httptest.NewServer(se.play)
	t.Cleanup(playSrv.Close)
	key, client, err := fakestore.PlayClient(playSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	api, err := receipts.NewPlayAPI(key, client)
	if err != nil {
		t.Fatal(err)
	}
	se.api = &flakyPlayAPI{PlayAPI: api}
	if st.Google, err = receipts.NewGooglePlay(receipts.GooglePlayConfig{PackageName: testPackage, Environment: receipts.EnvProduction, Timeout: 5 * time.Second}, se.api); err != nil {
		t.Fatal(err)
	}
	jwksURL := se.serveJWKS(t)
	if st.GooglePush, err = receipts.NewPushAuthenticator(receipts.PushAuthConfig{Audience: pushAudience, ServiceAccountEmail: pushEmail, JWKSURL: jwksURL}); err != nil {
		t.Fatal(err)
	}
	if sc.stores != nil {
		sc.stores(&st)
	}
	e.srv = server.New(server.Config{JWTSecret: []byte(testSecret), AdminToken: adminToken, RedisPrefix: prefix, StoreTesters: sc.testers},
		server.Deps{Ledger: e.ledger, Catalogs: e.store, Live: e.live, DB: pool, Redis: rdb, Logger: testLogger(t), Stores: st})
	e.app = e.srv.App()
	if r := e.get(t, "/healthz", ""); r.status != http.StatusOK {
		t.Fatalf("GET /healthz = %d", r.status)
	}
	// AckDelay -1: acknowledge whatever is pending, however recent.
	se.worker = e.srv.StoreWorker(server.StoreWorkerOptions{Policy: sc.policy, AckDelay: -1})
	return se
}

// runWorker runs one round of the store worker and fails on inbox errors.
func (se *storeEnv) runWorker(t testing.TB) {
	t.Helper()
	if err := se.worker.RunOnce(context.Background()); err != nil {
		t.Fatalf("store worker: %v", err)
	}
}

// mint signs a StoreKit 2 transaction with the test CA; zero fields get
// the test bundle and Production.
func (se *storeEnv) mint(t testing.TB, c fakestore.TransactionClaims) string {
	t.Helper()
	if c.BundleID == "" {
		c.BundleID = testBundle
	}
	if c.Environment == "" {
		c.Environment = "Production"
	}
	jws, err := se.ca.MintTransaction(c)
	if err != nil {
		t.Fatal(err)
	}
	return jws
}

// appleNotification signs an App Store notification body about c.
func (se *storeEnv) appleNotification(t testing.TB, typ, uuid string, c fakestore.TransactionClaims) []byte {
	t.Helper()
	return se.appleNotificationClaims(t, typ, uuid, 0, c)
}

// appleStatusNotification signs a notification carrying a subscription
// status (1 active, 2 expired, 3 billing retry, 4 grace period, 5 revoked).
func (se *storeEnv) appleStatusNotification(t testing.TB, typ string, status int32, c fakestore.TransactionClaims) []byte {
	t.Helper()
	return se.appleNotificationClaims(t, typ, "", status, c)
}

func (se *storeEnv) appleNotificationClaims(t testing.TB, typ, uuid string, status int32, c fakestore.TransactionClaims) []byte {
	t.Helper()
	if c.Environment == "" {
		c.Environment = "Production"
	}
	body, err := se.ca.MintNotification(fakestore.NotificationClaims{
		Type: typ, NotificationUUID: uuid, BundleID: testBundle, AppAppleID: testAppID, Environment: c.Environment, Transaction: &c, Status: status,
	})
	if err != nil {
		t.Fatal(err)
	}
	return body
}

// redeem posts body to /v1/receipts as player.
func (e *env) redeem(t testing.TB, player string, body any) response {
	t.Helper()
	r, err := e.send(receiptRequest(player, body))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func receiptRequest(player string, body any) *http.Request {
	b, ok := body.([]byte)
	if !ok {
		b, _ = json.Marshal(body)
	}
	return newRequest(http.MethodPost, "/v1/receipts", b,
		"Authorization", bearer(playerToken(player)), "Content-Type", "application/json")
}

func appleJWS(jws string) map[string]string {
	return map[string]string{"store": "apple", "signed_transaction": jws}
}

func appleReceipt(b64 string) map[string]string {
	return map[string]string{"store": "apple", "receipt": b64}
}

func googlePurchase(product, token string) map[string]string {
	return map[string]string{"store": "google", "product_id": product, "purchase_token": token}
}

// receiptResult is a decoded POST /v1/receipts success.
type receiptResult struct {
	Result      string `json:"result"`
	Redemptions []struct {
		Result        string           `json:"result"`
		Reason        string           `json:"reason"`
		PurchaseID    string           `json:"purchase_id"`
		Store         string           `json:"store"`
		TransactionID string           `json:"transaction_id"`
		ProductID     string           `json:"product_id"`
		Quantity      int64            `json:"quantity"`
		ExpiresAt     *time.Time       `json:"expires_at"`
		Balances      map[string]int64 `json:"balances"`
		Entitlements  []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	} `json:"redemptions"`
}

func (r response) receipt(t testing.TB) receiptResult {
	t.Helper()
	var rr receiptResult
	r.decode(t, &rr)
	return rr
}

// storePurchase is one row of the admin store-purchases listing.
type storePurchase struct {
	Store          string     `json:"store"`
	TransactionID  string     `json:"transaction_id"`
	PlayerID       string     `json:"player_id"`
	ProductID      string     `json:"product_id"`
	Environment    string     `json:"environment"`
	Consumable     bool       `json:"consumable"`
	AcknowledgedAt *time.Time `json:"acknowledged_at"`
	RevokedAt      *time.Time `json:"revoked_at"`
}

// storePurchases lists player's store purchases through the admin API.
func (e *env) storePurchases(t testing.TB, player string) []storePurchase {
	t.Helper()
	r := e.get(t, "/admin/v1/players/"+player+"/store-purchases", adminToken)
	if r.status != http.StatusOK {
		t.Fatalf("GET store-purchases of %s: %s", player, r)
	}
	var body struct {
		PlayerID       string          `json:"player_id"`
		StorePurchases []storePurchase `json:"store_purchases"`
	}
	r.decode(t, &body)
	if body.PlayerID != player {
		t.Fatalf("store-purchases of %s answered for %q", player, body.PlayerID)
	}
	return body.StorePurchases
}

// storeNotification is one row of the admin inbox listing.
type storeNotification struct {
	Store          string `json:"store"`
	NotificationID string `json:"notification_id"`
	Kind           string `json:"kind"`
	Status         string `json:"status"`
	Attempts       int    `json:"attempts"`
	LastError      string `json:"last_error"`
}

func (e *env) storeNotifications(t testing.TB, status string) []storeNotification {
	t.Helper()
	r := e.get(t, "/admin/v1/store-notifications?status="+status, adminToken)
	if r.status != http.StatusOK {
		t.Fatalf("GET store-notifications: %s", r)
	}
	var body struct {
		Notifications []storeNotification `json:"notifications"`
	}
	r.decode(t, &body)
	return body.Notifications
}

// receiptAnswer is a valid verifyReceipt answer holding inApp.
func receiptAnswer(env string, inApp ...map[string]string) func(appstore.IAPRequest) (int, any) {
	return func(appstore.IAPRequest) (int, any) {
		return 200, map[string]any{"status": 0, "environment": env, "receipt": map[string]any{"bundle_id": testBundle, "in_app": inApp}}
	}
}

func statusAnswer(status int) func(appstore.IAPRequest) (int, any) {
	return func(appstore.IAPRequest) (int, any) { return 200, map[string]any{"status": status} }
}

func httpAnswer(code int) func(appstore.IAPRequest) (int, any) {
	return func(appstore.IAPRequest) (int, any) { return code, map[string]any{} }
}

func inApp(product, tx string) map[string]string {
	ms := time.Now().Add(-time.Hour).UnixMilli()
	return map[string]string{"quantity": "1", "product_id": product, "transaction_id": tx, "original_transaction_id": tx,
		"purchase_date_ms": big.NewInt(ms).String()}
}

// someReceipt is an app receipt as the game sends it: base64; the fake
// verifyReceipt does not look inside.
var someReceipt = base64.StdEncoding.EncodeToString([]byte("an app receipt"))

// flakyPlayAPI fails acknowledgements and consumptions on demand, as a crash
// between the grant's commit and the acknowledgement would leave them.
type flakyPlayAPI struct {
	receipts.PlayAPI
	failAcks atomic.Bool
	acks     atomic.Int32
}

var errAckDown = &googleapi.Error{Code: http.StatusServiceUnavailable, Message: "injected"}

func (f *flakyPlayAPI) AcknowledgeProduct(ctx context.Context, pkg, product, token, payload string) error {
	f.acks.Add(1)
	if f.failAcks.Load() {
		return errAckDown
	}
	return f.PlayAPI.AcknowledgeProduct(ctx, pkg, product, token, payload)
}

func (f *flakyPlayAPI) ConsumeProduct(ctx context.Context, pkg, product, token string) error {
	f.acks.Add(1)
	if f.failAcks.Load() {
		return errAckDown
	}
	return f.PlayAPI.ConsumeProduct(ctx, pkg, product, token)
}

func (f *flakyPlayAPI) AcknowledgeSubscription(ctx context.Context, pkg, sub, token string, req *androidpublisher.SubscriptionPurchasesAcknowledgeRequest) error {
	f.acks.Add(1)
	if f.failAcks.Load() {
		return errAckDown
	}
	return f.PlayAPI.AcknowledgeSubscription(ctx, pkg, sub, token, req)
}

// playProduct is a one-time product purchase as Play reports it.
func playProduct(product, order string, state int64) *androidpublisher.ProductPurchase {
	return &androidpublisher.ProductPurchase{ProductId: product, OrderId: order, PurchaseState: state,
		PurchaseTimeMillis: time.Now().Add(-time.Minute).UnixMilli()}
}

// serveJWKS serves a fresh RSA key as Google's OIDC keys and returns its URL.
func (se *storeEnv) serveJWKS(t testing.TB) string {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	se.jwks = key
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		enc := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Cache-Control", "public, max-age=3600")
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1", "n": enc(key.N.Bytes()), "e": enc(big.NewInt(int64(key.E)).Bytes())},
		}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// pushToken is the OIDC token Pub/Sub would send, with claims changed by edit.
func (se *storeEnv) pushToken(t testing.TB, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"iss": "https://accounts.google.com", "aud": pushAudience, "email": pushEmail, "email_verified": true,
		"sub": "1234", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix()}
	if edit != nil {
		edit(claims)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(se.jwks)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// pushBody is a Pub/Sub push carrying a developer notification.
func pushBody(t testing.TB, messageID string, notification map[string]any) []byte {
	t.Helper()
	notification["version"] = "1.0"
	notification["packageName"] = testPackage
	notification["eventTimeMillis"] = big.NewInt(time.Now().UnixMilli()).String()
	data, err := json.Marshal(notification)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"message":      map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": messageID, "publishTime": time.Now().UTC().Format(time.RFC3339Nano)},
		"subscription": "projects/coinop/subscriptions/play-rtdn",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// postGoogle posts a push body with the bearer token.
func (e *env) postGoogle(t testing.TB, token string, body []byte) response {
	t.Helper()
	req := newRequest(http.MethodPost, "/v1/stores/google/notifications", body, "Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.do(t, req)
}

func (e *env) postApple(t testing.TB, body []byte) response {
	t.Helper()
	return e.do(t, newRequest(http.MethodPost, "/v1/stores/apple/notifications", body, "Content-Type", "application/json"))
}

// ledgerKinds lists the kinds of player's ledger transactions, newest first.
func (e *env) ledgerKinds(t testing.TB, player string) []string {
	t.Helper()
	var kinds []string
	for _, tx := range e.ledgerPage(t, player, "").Transactions {
		kinds = append(kinds, tx.Kind)
	}
	return kinds
}
