package loadtest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// fakeCoinop is a small in-memory coinop server for tests: the catalog,
// wallet, entitlements, purchases with idempotency, admin grants, the
// ledger with pagination, the audit, the server-to-server ownership check
// and receipt redemption. Fault knobs make it misbehave the ways the
// verification phase must catch. It listens on loopback only (httptest).
type fakeCoinop struct {
	secret                  []byte
	adminToken, serverToken string

	// Faults, by 1-based order of arrival; 0 disables.
	loseGrant         int           // answer 201 to this grant but record nothing
	losePurchase      int           // answer 201 to this purchase but record nothing
	duplicatePurchase int           // record this purchase twice
	noOwnershipRoute  bool          // behave like a server without the s2s route
	noReceiptRoute    bool          // behave like a server without a store configured
	walletDelay       time.Duration // a slow GET /v1/wallet
	throttleWallet    atomic.Int32  // answer this many wallet reads 429 rate_limited

	requests atomic.Int64 // every request received
	// capacity, when set, is a modelled limit on load requests: a token
	// bucket refilling at this many per second; a request finding it
	// empty is answered 503 overloaded.
	capacity *tokenBucket
	// doubleRefund is a deliberately broken refund guard: the first
	// refunded transaction is refunded again by every duplicate delivery.
	doubleRefund bool
	brokenTx     string
	// forgetEarlyRefunds is another broken guard: a refund that arrives
	// before its redemption is forgotten, so the redemption grants and
	// nothing ever takes it back.
	forgetEarlyRefunds bool
	noMetrics          bool // answer /metrics 404, as a server behind a proxy might
	// doubleAward is a deliberately broken award: from this one on (1-based),
	// every award is applied twice, one ledger transaction per application.
	doubleAward int
	// failPostings answers this many server postings 503 after applying
	// them, as a server that commits and then loses the answer would.
	failPostings atomic.Int32
	postings     map[string]int // by kind, postings applied
	// program, when set, runs the creator program (fake_creators_test.go);
	// nil answers its routes 404 creators_disabled, as the server does
	// with COINOP_CREATOR_PROGRAM off.
	program *CreatorProgram
	// creditOff is a deliberately broken accrual: the first creator credit
	// is off by this many micro-units.
	creditOff  int64
	creators   map[string]*fakeCreator
	playerCode map[string]string // player → creator
	tips       int
	// failTips answers this many tips 503 after applying them.
	failTips atomic.Int32

	traceMu  sync.Mutex
	trace    []string     // load requests as "player METHOD path [item×qty]", the run id left out
	loadReqs atomic.Int64 // requests to player-facing and s2s routes

	mu        sync.Mutex
	doc       CatalogDocument
	etag      string
	nextTx    int64
	grants    int
	purchases int
	ledger    map[string][]LedgerTransaction // by player, oldest first
	holdings  map[string]map[string]int64    // player → "currency:gold" → amount
	idem      map[string]idemRecord

	storeTx       map[string]string // fake-store transaction id → player
	refundedTx    map[string]bool
	notifications map[string]bool // by notification id
}

type idemRecord struct {
	body   string // the request, to refuse a reused key with another body
	status int
	resp   []byte
}

func newFakeCoinop() *fakeCoinop {
	now := time.Now()
	past, soon, later := now.Add(-time.Hour), now.Add(10*time.Second), now.Add(24*time.Hour)
	one := int64(1)
	return &fakeCoinop{
		secret:        []byte("test-secret"),
		adminToken:    "admin-token",
		serverToken:   "server-token",
		etag:          `"catalog-v3"`,
		ledger:        map[string][]LedgerTransaction{},
		holdings:      map[string]map[string]int64{},
		idem:          map[string]idemRecord{},
		storeTx:       map[string]string{},
		refundedTx:    map[string]bool{},
		notifications: map[string]bool{},
		doc: CatalogDocument{Version: 3, Catalog: Catalog{
			Currencies: []Currency{{ID: "gold", Name: "Gold"}, {ID: "gems", Name: "Gems", Tippable: true}},
			Items: []Item{
				{ID: "potion", Name: "Potion", Kind: "consumable", Prices: []Price{{"gold", 10}}},
				{ID: "elixir", Name: "Elixir", Kind: "consumable", Prices: []Price{{"gems", 3}}, AvailableFrom: &past, AvailableUntil: &later},
				{ID: "sword", Name: "Sword", Kind: "durable", Prices: []Price{{"gold", 100}}},
				{ID: "founder", Name: "Founder pass", Kind: "consumable", Prices: []Price{{"gold", 5}}, MaxPerPlayer: &one},
				{ID: "flash", Name: "Flash sale", Kind: "consumable", Prices: []Price{{"gold", 1}}, AvailableUntil: &soon},
			},
			Bundles: []Bundle{
				{ID: "starter", Name: "Starter pack", Prices: []Price{{"gold", 50}},
					Contents: BundleContents{Items: map[string]int64{"potion": 5}, Currencies: map[string]int64{"gems": 10}}},
				{ID: "knight", Name: "Knight pack", Prices: []Price{{"gold", 120}},
					Contents: BundleContents{Items: map[string]int64{"sword": 1, "potion": 1}}},
			},
			StoreProducts: []StoreProduct{{Store: "apple", ProductID: "com.example.gems10"}, {Store: "google", ProductID: "com.example.gems10"}},
		}},
	}
}

// start serves the fake on loopback for the test's lifetime.
func (f *fakeCoinop) start(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/catalog", f.catalog)
	mux.HandleFunc("GET /v1/wallet", f.wallet)
	mux.HandleFunc("GET /v1/entitlements", f.entitlements)
	mux.HandleFunc("POST /v1/purchases", f.purchase)
	mux.HandleFunc("POST /v1/receipts", f.receipt)
	mux.HandleFunc("POST /v1/stores/apple/notifications", f.appleNotification)
	mux.HandleFunc("GET /v1/players/{player_id}/entitlements/{item_id}", f.ownership)
	mux.HandleFunc("POST /admin/v1/players/{player_id}/grants", f.grant)
	mux.HandleFunc("GET /admin/v1/players/{player_id}/ledger", f.ledgerPage)
	mux.HandleFunc("GET /admin/v1/audit", f.audit)
	mux.HandleFunc("POST /v1/players/{player_id}/awards", f.serverPosting(KindAward))
	mux.HandleFunc("POST /v1/players/{player_id}/spends", f.serverPosting(KindSpend))
	mux.HandleFunc("POST /v1/players/{player_id}/consumptions", f.serverPosting(KindConsume))
	mux.HandleFunc("POST /admin/v1/creators", f.createCreator)
	mux.HandleFunc("GET /admin/v1/creators/{creator_id}/earnings", f.creatorEarnings)
	mux.HandleFunc("GET /admin/v1/creators/{creator_id}/statement", f.creatorStatement)
	mux.HandleFunc("PUT /v1/creator-code", f.setCreatorCode)
	mux.HandleFunc("POST /v1/creators/{creator_id}/tips", f.tip)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.requests.Add(1)
		if r.URL.Path == "/metrics" {
			f.metrics(w)
			return
		}
		if !strings.HasPrefix(r.URL.Path, "/admin/") {
			f.loadReqs.Add(1)
			f.traceRequest(r)
			if f.capacity != nil && !f.capacity.take(time.Now()) {
				problem(w, http.StatusServiceUnavailable, "overloaded")
				return
			}
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	if !IsLoopback(srv.URL) {
		t.Fatalf("test server %s is not on loopback", srv.URL)
	}
	return srv.URL
}

// metrics answers a Prometheus exposition that moves with the load: a
// millisecond of CPU and a cache hit per load request, a pool wait every
// tenth, and each purchase in the route histogram.
func (f *fakeCoinop) metrics(w http.ResponseWriter) {
	if f.noMetrics {
		http.NotFound(w, nil)
		return
	}
	n := float64(f.loadReqs.Load())
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP process_cpu_seconds_total CPU.\n# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total %g\n", n/1000)
	fmt.Fprintf(w, "process_resident_memory_bytes %g\ngo_goroutines 12\n", 64.0*(1<<20))
	fmt.Fprintf(w, "coinop_db_pool_acquires_total %g\ncoinop_db_pool_empty_acquires_total %g\ncoinop_db_pool_acquire_wait_seconds_total %g\n", n, math.Floor(n/10), math.Floor(n/10)*0.002)
	fmt.Fprintf(w, "coinop_db_pool_connections{state=\"acquired\"} 3\ncoinop_db_pool_max_connections 20\n")
	fmt.Fprintf(w, "coinop_cache_hits_total %g\ncoinop_cache_misses_total %g\n", n*0.9, n*0.1)
	fmt.Fprintf(w, "coinop_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/wallet\",status=\"200\",le=\"0.001\"} %g\n", n*0.5)
	fmt.Fprintf(w, "coinop_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/wallet\",status=\"200\",le=\"0.005\"} %g\n", n)
	fmt.Fprintf(w, "coinop_http_request_duration_seconds_bucket{method=\"GET\",route=\"/v1/wallet\",status=\"200\",le=\"+Inf\"} %g\n", n)
	fmt.Fprintf(w, "coinop_http_request_duration_seconds_sum{method=\"GET\",route=\"/v1/wallet\",status=\"200\"} %g\n", n*0.002)
	fmt.Fprintf(w, "coinop_http_request_duration_seconds_count{method=\"GET\",route=\"/v1/wallet\",status=\"200\"} %g\n", n)
}

// tokenBucket admits rate requests per second with bursts of up to burst.
type tokenBucket struct {
	rate, burst float64

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newTokenBucket(rate, burst float64) *tokenBucket {
	return &tokenBucket{rate: rate, burst: burst, tokens: burst}
}

func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// traceRequest notes a load request by player number (lt-<run>-<n> → p<n>)
// and, for purchases, what was asked for, so two runs can be compared.
func (f *fakeCoinop) traceRequest(r *http.Request) {
	who := r.PathValue("player_id")
	path := r.URL.Path
	if tok, _, err := jwt.NewParser().ParseUnverified(bearer(r), &jwt.RegisteredClaims{}); err == nil {
		who, _ = tok.Claims.GetSubject()
	}
	if parts := strings.Split(path, "/"); len(parts) > 3 && parts[2] == "players" {
		who = parts[3]
		parts[3] = "{id}"
		path = strings.Join(parts, "/")
	}
	if i := strings.LastIndexByte(who, '-'); i >= 0 {
		who = "p" + who[i+1:]
	}
	line := who + " " + r.Method + " " + path
	if r.Method == http.MethodPost && r.URL.Path == "/v1/purchases" {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(body)))
		var req PurchaseRequest
		if json.Unmarshal(body, &req) == nil {
			line += fmt.Sprintf(" %s×%d@%d", req.ItemID, req.Quantity, req.Price.Amount)
		}
	}
	f.traceMu.Lock()
	f.trace = append(f.trace, line)
	f.traceMu.Unlock()
}

// tracedRequests returns the trace sorted, and clears it.
func (f *fakeCoinop) tracedRequests() []string {
	f.traceMu.Lock()
	defer f.traceMu.Unlock()
	out := f.trace
	f.trace = nil
	sort.Strings(out)
	return out
}

// boughtItems counts purchase requests by item.
func (f *fakeCoinop) boughtItems() map[string]int {
	f.traceMu.Lock()
	defer f.traceMu.Unlock()
	out := map[string]int{}
	for _, l := range f.trace {
		if i := strings.Index(l, " POST /v1/purchases "); i >= 0 {
			item, _, _ := strings.Cut(l[i+len(" POST /v1/purchases "):], "×")
			out[item]++
		}
	}
	return out
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func problem(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"type":"about:blank","title":%q,"status":%d,"code":%q}`, http.StatusText(status), status, code)
}

func writeJSON(w http.ResponseWriter, status int, v any) []byte {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(b)
	return b
}

func bearer(r *http.Request) string {
	tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return tok
}

// player authenticates a player token the way the server must: HS256 only,
// exp required.
func (f *fakeCoinop) player(w http.ResponseWriter, r *http.Request) string {
	tok, err := jwt.Parse(bearer(r), func(*jwt.Token) (any, error) { return f.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil {
		problem(w, http.StatusUnauthorized, "unauthorized")
		return ""
	}
	sub, _ := tok.Claims.GetSubject()
	if sub == "" {
		problem(w, http.StatusUnauthorized, "unauthorized")
	}
	return sub
}

func (f *fakeCoinop) admin(w http.ResponseWriter, r *http.Request) bool {
	if bearer(r) != f.adminToken {
		problem(w, http.StatusUnauthorized, "unauthorized")
		return false
	}
	return true
}

func (f *fakeCoinop) catalog(w http.ResponseWriter, r *http.Request) {
	if f.player(w, r) == "" {
		return
	}
	if r.Header.Get("If-None-Match") == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("ETag", f.etag)
	writeJSON(w, http.StatusOK, f.doc)
}

// balancesLocked returns a player's currencies (every catalog currency,
// zero included) and items.
func (f *fakeCoinop) balancesLocked(pid string) (map[string]int64, []Entitlement) {
	cur := map[string]int64{}
	for _, c := range f.doc.Catalog.Currencies {
		cur[c.ID] = 0
	}
	var items []Entitlement
	for asset, n := range f.holdings[pid] {
		typ, id, _ := strings.Cut(asset, ":")
		if typ == "currency" {
			cur[id] = n
		} else if n > 0 {
			items = append(items, Entitlement{ItemID: id, Quantity: n})
		}
	}
	sort.Slice(items, func(i, j int) bool { return items[i].ItemID < items[j].ItemID })
	return cur, items
}

func (f *fakeCoinop) wallet(w http.ResponseWriter, r *http.Request) {
	time.Sleep(f.walletDelay)
	if f.throttleWallet.Add(-1) >= 0 {
		w.Header().Set("Retry-After", "0")
		problem(w, http.StatusTooManyRequests, "rate_limited")
		return
	}
	pid := f.player(w, r)
	if pid == "" {
		return
	}
	f.mu.Lock()
	cur, _ := f.balancesLocked(pid)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, Wallet{PlayerID: pid, Balances: cur})
}

func (f *fakeCoinop) entitlements(w http.ResponseWriter, r *http.Request) {
	pid := f.player(w, r)
	if pid == "" {
		return
	}
	f.mu.Lock()
	_, items := f.balancesLocked(pid)
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, Entitlements{PlayerID: pid, Entitlements: items})
}

// idempotent runs apply once per (player, scope, key) and replays the first
// answer to retries with the same body.
func (f *fakeCoinop) idempotent(w http.ResponseWriter, r *http.Request, pid, scope string, apply func(body []byte) (int, any), loseAnswer ...func() bool) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		problem(w, http.StatusBadRequest, "idempotency_key_required")
		return
	}
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	id := pid + "|" + scope + "|" + key
	if rec, ok := f.idem[id]; ok {
		if rec.body != string(body) {
			problem(w, http.StatusUnprocessableEntity, "idempotency_key_reused")
			return
		}
		w.Header().Set("Idempotent-Replayed", "true")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.status)
		w.Write(rec.resp)
		return
	}
	status, v := apply(body)
	if p, ok := v.(problemBody); ok {
		b, _ := json.Marshal(p)
		f.idem[id] = idemRecord{body: string(body), status: status, resp: b}
		problem(w, status, p.Code)
		return
	}
	b, _ := json.Marshal(v)
	f.idem[id] = idemRecord{body: string(body), status: status, resp: b}
	if len(loseAnswer) > 0 && loseAnswer[0]() {
		problem(w, http.StatusServiceUnavailable, "unavailable") // committed, answer lost
		return
	}
	writeJSON(w, status, v)
}

type problemBody struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Code   string `json:"code"`
}

func rejection(status int, code string) (int, any) {
	return status, problemBody{Type: "about:blank", Title: http.StatusText(status), Status: status, Code: code}
}

// recordLocked appends a ledger transaction and applies the player's
// entries to holdings.
func (f *fakeCoinop) recordLocked(pid, kind, ref string, meta map[string]any, entries []LedgerEntry) {
	f.nextTx++
	m, _ := json.Marshal(meta)
	f.ledger[pid] = append(f.ledger[pid], LedgerTransaction{
		ID: f.nextTx, Kind: kind, Reference: ref, CreatedAt: time.Now().UTC().Format(time.RFC3339Nano),
		Metadata: m, Entries: entries,
	})
	if f.holdings[pid] == nil {
		f.holdings[pid] = map[string]int64{}
	}
	for _, e := range entries {
		if e.Account == "player:"+pid {
			f.holdings[pid][e.AssetType+":"+e.AssetID] += e.Amount
		}
	}
}

// move is a player/system pair of entries for one asset.
func move(pid, system, typ, id string, amount int64) []LedgerEntry {
	return []LedgerEntry{
		{Account: "player:" + pid, AssetType: typ, AssetID: id, Amount: amount},
		{Account: "system:" + system, AssetType: typ, AssetID: id, Amount: -amount},
	}
}

func (f *fakeCoinop) purchase(w http.ResponseWriter, r *http.Request) {
	pid := f.player(w, r)
	if pid == "" {
		return
	}
	key := r.Header.Get("Idempotency-Key")
	f.idempotent(w, r, pid, "purchase", func(body []byte) (int, any) {
		var req PurchaseRequest
		if json.Unmarshal(body, &req) != nil || req.Quantity < 1 {
			return rejection(http.StatusBadRequest, "invalid_request")
		}
		var prices []Price
		grantItems, grantCur := map[string]int64{}, map[string]int64{}
		for _, it := range f.doc.Catalog.Items {
			if it.ID == req.ItemID {
				prices, grantItems[it.ID] = it.Prices, 1
				if it.Kind == "durable" && f.holdings[pid]["item:"+it.ID] > 0 {
					return rejection(http.StatusConflict, "already_owned")
				}
			}
		}
		for _, b := range f.doc.Catalog.Bundles {
			if b.ID == req.ItemID {
				prices, grantItems, grantCur = b.Prices, b.Contents.Items, b.Contents.Currencies
			}
		}
		if prices == nil {
			return rejection(http.StatusNotFound, "item_not_found")
		}
		var unit *Price
		for i := range prices {
			if prices[i].Currency == req.Price.Currency {
				unit = &prices[i]
			}
		}
		if unit == nil || unit.Amount != req.Price.Amount {
			return rejection(http.StatusConflict, "price_mismatch")
		}
		for _, it := range f.doc.Catalog.Items {
			if n := grantItems[it.ID]; n > 0 && it.MaxPerPlayer != nil && f.holdings[pid]["item:"+it.ID]+n*req.Quantity > *it.MaxPerPlayer {
				return rejection(http.StatusConflict, "limit_exceeded")
			}
		}
		cost := unit.Amount * req.Quantity
		if f.holdings[pid]["currency:"+unit.Currency] < cost {
			return rejection(http.StatusPaymentRequired, "insufficient_funds")
		}
		f.purchases++
		n := f.purchases
		id := fmt.Sprintf("pur-%d", n)
		entries := move(pid, "purchases", "currency", unit.Currency, -cost)
		for it, q := range grantItems {
			entries = append(entries, move(pid, "purchases", "item", it, q*req.Quantity)...)
		}
		for c, q := range grantCur {
			entries = append(entries, move(pid, "purchases", "currency", c, q*req.Quantity)...)
		}
		meta := map[string]any{"item_id": req.ItemID, "quantity": req.Quantity, "idempotency_key": key}
		f.codeCreditLocked(pid, unit.Currency, cost)
		switch n {
		case f.losePurchase:
		case f.duplicatePurchase:
			f.recordLocked(pid, KindPurchase, id, map[string]any{"item_id": req.ItemID, "quantity": req.Quantity}, entries)
			f.recordLocked(pid, KindPurchase, id, map[string]any{"item_id": req.ItemID, "quantity": req.Quantity}, entries)
		default:
			f.recordLocked(pid, KindPurchase, id, meta, entries)
		}
		cur, items := f.balancesLocked(pid)
		return http.StatusCreated, PurchaseResult{PurchaseID: id, ItemID: req.ItemID, Quantity: req.Quantity,
			Price: *unit, Balances: cur, Entitlements: items}
	})
}

func (f *fakeCoinop) grant(w http.ResponseWriter, r *http.Request) {
	if !f.admin(w, r) {
		return
	}
	pid := r.PathValue("player_id")
	f.idempotent(w, r, pid, "grant", func(body []byte) (int, any) {
		var g GrantRequest
		if json.Unmarshal(body, &g) != nil {
			return rejection(http.StatusBadRequest, "invalid_request")
		}
		f.grants++
		id := fmt.Sprintf("grant-%d", f.grants)
		if f.grants != f.loseGrant {
			var entries []LedgerEntry
			for _, c := range sortedKeys(g.Currencies) {
				entries = append(entries, move(pid, "admin_grants", "currency", c, g.Currencies[c])...)
			}
			for _, it := range sortedKeys(g.Items) {
				entries = append(entries, move(pid, "admin_grants", "item", it, g.Items[it])...)
			}
			f.recordLocked(pid, KindAdminGrant, id, map[string]any{"reason": g.Reason}, entries)
		}
		cur, items := f.balancesLocked(pid)
		return http.StatusCreated, GrantResult{GrantID: id, Balances: cur, Entitlements: items}
	})
}

func (f *fakeCoinop) ledgerPage(w http.ResponseWriter, r *http.Request) {
	if !f.admin(w, r) {
		return
	}
	pid := r.PathValue("player_id")
	limit, err := strconv.Atoi(r.URL.Query().Get("limit"))
	if err != nil || limit < 1 || limit > 100 {
		limit = 100
	}
	before := int64(1) << 62
	if b := r.URL.Query().Get("before"); b != "" {
		before, _ = strconv.ParseInt(b, 10, 64)
	}
	f.mu.Lock()
	all := f.ledger[pid]
	var page []LedgerTransaction
	more := false
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].ID >= before {
			continue
		}
		if len(page) == limit {
			more = true
			break
		}
		page = append(page, all[i])
	}
	f.mu.Unlock()
	out := LedgerPage{PlayerID: pid, Transactions: page}
	if more {
		out.NextBefore = &page[len(page)-1].ID
	}
	if out.Transactions == nil {
		out.Transactions = []LedgerTransaction{}
	}
	writeJSON(w, http.StatusOK, out)
}

// audit checks what a real server's audit would: every transaction sums to
// zero per asset, and holdings equal the ledger.
func (f *fakeCoinop) audit(w http.ResponseWriter, r *http.Request) {
	if !f.admin(w, r) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	balanced, matches := true, true
	for pid, txs := range f.ledger {
		sums := map[string]int64{}
		for _, tx := range txs {
			per := map[string]int64{}
			for _, e := range tx.Entries {
				per[e.AssetType+":"+e.AssetID] += e.Amount
				if e.Account == "player:"+pid {
					sums[e.AssetType+":"+e.AssetID] += e.Amount
				}
			}
			for _, v := range per {
				balanced = balanced && v == 0
			}
		}
		for asset, n := range f.holdings[pid] {
			matches = matches && sums[asset] == n
		}
	}
	writeJSON(w, http.StatusOK, Audit{OK: balanced && matches, Checks: []AuditCheck{
		{Name: "transactions_balanced", OK: balanced},
		{Name: "balances_match_ledger", OK: matches},
	}})
}

// serverPosting applies awards, spends and consumptions, once per key,
// refusing with 402 insufficient_funds what the player does not hold.
func (f *fakeCoinop) serverPosting(kind string) http.HandlerFunc {
	account := map[string]string{KindAward: "awards", KindSpend: "spends", KindConsume: "consumption"}[kind]
	return func(w http.ResponseWriter, r *http.Request) {
		if bearer(r) != f.serverToken {
			problem(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		pid := r.PathValue("player_id")
		key := r.Header.Get("Idempotency-Key")
		var lost bool
		f.idempotent(w, r, pid, kind, func(body []byte) (int, any) {
			var req PostingRequest
			if json.Unmarshal(body, &req) != nil {
				return rejection(http.StatusBadRequest, "invalid_request")
			}
			var entries []LedgerEntry
			for asset, n := range req.deltas(kind) {
				typ, id, _ := strings.Cut(asset, ":")
				if f.holdings[pid][asset]+n < 0 {
					return rejection(http.StatusPaymentRequired, "insufficient_funds")
				}
				entries = append(entries, move(pid, account, typ, id, n)...)
			}
			sort.Slice(entries, func(i, j int) bool {
				return entries[i].AssetID+entries[i].Account < entries[j].AssetID+entries[j].Account
			})
			if f.postings == nil {
				f.postings = map[string]int{}
			}
			f.postings[kind]++
			id := fmt.Sprintf("%s-%d", kind, f.postings[kind])
			meta := map[string]any{"source": req.Source, "reason": req.Reason, "idempotency_key": key}
			if kind == KindSpend {
				for _, cur := range sortedKeys(req.Currencies) {
					f.codeCreditLocked(pid, cur, req.Currencies[cur])
				}
			}
			f.recordLocked(pid, kind, id, meta, entries)
			if kind == KindAward && f.doubleAward > 0 && f.postings[kind] >= f.doubleAward {
				f.recordLocked(pid, kind, id, meta, entries)
			}
			lost = f.failPostings.Add(-1) >= 0
			return http.StatusCreated, PostingResult{PostingID: id, Kind: kind, PlayerID: pid}
		}, func() bool { return lost })
	}
}

func (f *fakeCoinop) ownership(w http.ResponseWriter, r *http.Request) {
	if f.noOwnershipRoute {
		http.NotFound(w, r)
		return
	}
	if bearer(r) != f.serverToken {
		problem(w, http.StatusUnauthorized, "unauthorized")
		return
	}
	pid, item := r.PathValue("player_id"), r.PathValue("item_id")
	known := false
	for _, it := range f.doc.Catalog.Items {
		known = known || it.ID == item
	}
	if !known {
		problem(w, http.StatusNotFound, "item_not_found")
		return
	}
	f.mu.Lock()
	q := f.holdings[pid]["item:"+item]
	f.mu.Unlock()
	writeJSON(w, http.StatusOK, OwnershipCheck{PlayerID: pid, ItemID: item, Owned: q > 0, Quantity: q})
}

// receipt redeems any well-formed JWS once, granting 10 gems.
func (f *fakeCoinop) receipt(w http.ResponseWriter, r *http.Request) {
	if f.noReceiptRoute {
		problem(w, http.StatusNotFound, "not_found")
		return
	}
	pid := f.player(w, r)
	if pid == "" {
		return
	}
	var req struct {
		Store string `json:"store"`
		JWS   string `json:"signed_transaction"`
	}
	if json.NewDecoder(r.Body).Decode(&req) != nil || strings.Count(req.JWS, ".") != 2 {
		problem(w, http.StatusBadRequest, "invalid_receipt")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if tx := jwsPayload(req.JWS); tx["transactionId"] != nil {
		// A fake-store transaction: redeemed once per transaction id.
		id, _ := tx["transactionId"].(string)
		if f.refundedTx[id] && f.storeTx[id] == "" && !f.forgetEarlyRefunds {
			problem(w, http.StatusUnprocessableEntity, "invalid_receipt") // refunded before it was redeemed
			return
		}
		if f.storeTx[id] != "" {
			writeJSON(w, http.StatusOK, map[string]any{"result": "receipt_already_redeemed"})
			return
		}
		f.storeTx[id] = pid
		f.recordLocked(pid, KindStorePurchase, "sp-"+id, map[string]any{"store": "apple", "transaction_id": id},
			move(pid, "stores", "currency", "gems", 10))
		writeJSON(w, http.StatusCreated, map[string]any{"result": "granted"})
		return
	}
	id := "receipt|" + req.JWS
	if _, dup := f.idem[id]; dup {
		problem(w, http.StatusConflict, "receipt_already_redeemed")
		return
	}
	f.idem[id] = idemRecord{}
	f.recordLocked(pid, "receipt", "rcpt-"+strconv.Itoa(len(f.idem)), map[string]any{"store": req.Store},
		move(pid, "stores", "currency", "gems", 10))
	writeJSON(w, http.StatusCreated, map[string]any{"player_id": pid, "store": req.Store})
}

// jwsPayload decodes a compact JWS's payload without verifying it (the
// fake trusts its callers), or nil.
func jwsPayload(jws string) map[string]any {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// appleNotification takes an App Store Server Notification: a REFUND
// revokes its transaction's grant once (by notification id, and once per
// transaction), unless the doubleRefund fault makes the first refunded
// transaction lose its guard.
func (f *fakeCoinop) appleNotification(w http.ResponseWriter, r *http.Request) {
	var env struct {
		SignedPayload string `json:"signedPayload"`
	}
	if json.NewDecoder(r.Body).Decode(&env) != nil {
		problem(w, http.StatusBadRequest, "invalid_request")
		return
	}
	n := jwsPayload(env.SignedPayload)
	data, _ := n["data"].(map[string]any)
	signed, _ := data["signedTransactionInfo"].(string)
	tx := jwsPayload(signed)
	nid, _ := n["notificationUUID"].(string)
	txid, _ := tx["transactionId"].(string)
	if nid == "" || txid == "" {
		problem(w, http.StatusBadRequest, "invalid_notification")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	dup := f.notifications[nid]
	f.notifications[nid] = true
	if f.storeTx[txid] == "" && n["notificationType"] == "REFUND" {
		f.refundedTx[txid] = true // remembered: the transaction can no longer be redeemed
	}
	if pid := f.storeTx[txid]; pid != "" && n["notificationType"] == "REFUND" {
		if f.doubleRefund && f.brokenTx == "" {
			f.brokenTx = txid
		}
		if !f.refundedTx[txid] || (txid == f.brokenTx && dup) {
			f.refundedTx[txid] = true
			f.recordLocked(pid, KindStoreRefund, "apple:"+txid, map[string]any{"store": "apple", "transaction_id": txid},
				move(pid, "stores", "currency", "gems", -10))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"notification_id": nid, "duplicate": dup})
}
