package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The coinop API as this tool sees it. These types are declared here rather
// than imported from the server so that a change to the server's wire format
// breaks the load test instead of silently following along.

// Price is what one unit of an item or bundle costs in one currency.
type Price struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

// CatalogDocument is the body of GET /v1/catalog.
type CatalogDocument struct {
	Version int64   `json:"version"`
	Catalog Catalog `json:"catalog"`
}

// Catalog lists what players can buy.
type Catalog struct {
	Currencies    []Currency     `json:"currencies"`
	Items         []Item         `json:"items"`
	Bundles       []Bundle       `json:"bundles"`
	StoreProducts []StoreProduct `json:"store_products,omitempty"`
}

// StoreProduct is a product sold through an app store and what redeeming
// it grants.
type StoreProduct struct {
	Store     string `json:"store"`
	ProductID string `json:"product_id"`
}

// Currency is a virtual currency.
type Currency struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Tippable: players may tip creators in this currency.
	Tippable bool `json:"tippable,omitempty"`
}

// Item is a durable or consumable catalog item.
type Item struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Kind           string     `json:"kind"` // durable | consumable
	Prices         []Price    `json:"prices"`
	MaxPerPlayer   *int64     `json:"max_per_player,omitempty"`
	AvailableFrom  *time.Time `json:"available_from,omitempty"`
	AvailableUntil *time.Time `json:"available_until,omitempty"`
	// CreatorID made the item; every sale credits it CreatorSharePPM of the
	// price, which caps what a creator code may take of the same sale.
	CreatorID       string `json:"creator_id,omitempty"`
	CreatorSharePPM int64  `json:"creator_share_ppm,omitempty"`
}

// Bundle sells several items and currencies as one purchase.
type Bundle struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	Prices         []Price        `json:"prices"`
	Contents       BundleContents `json:"contents"`
	AvailableFrom  *time.Time     `json:"available_from,omitempty"`
	AvailableUntil *time.Time     `json:"available_until,omitempty"`
}

// BundleContents is what one bundle grants.
type BundleContents struct {
	Items      map[string]int64 `json:"items"`
	Currencies map[string]int64 `json:"currencies"`
}

// Wallet is the body of GET /v1/wallet.
type Wallet struct {
	PlayerID string           `json:"player_id"`
	Balances map[string]int64 `json:"balances"`
}

// Entitlement is a quantity of one item a player holds.
type Entitlement struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
}

// Entitlements is the body of GET /v1/entitlements.
type Entitlements struct {
	PlayerID     string        `json:"player_id"`
	Entitlements []Entitlement `json:"entitlements"`
}

// PurchaseRequest is the body of POST /v1/purchases.
type PurchaseRequest struct {
	ItemID   string `json:"item_id"`
	Quantity int64  `json:"quantity"`
	Price    Price  `json:"price"`
}

// PurchaseResult is the body of a 201 from POST /v1/purchases.
type PurchaseResult struct {
	PurchaseID   string           `json:"purchase_id"`
	ItemID       string           `json:"item_id"`
	Quantity     int64            `json:"quantity"`
	Price        Price            `json:"price"`
	Balances     map[string]int64 `json:"balances"`
	Entitlements []Entitlement    `json:"entitlements"`
}

// GrantRequest is the body of POST /admin/v1/players/{id}/grants.
type GrantRequest struct {
	Reason     string           `json:"reason"`
	Currencies map[string]int64 `json:"currencies"`
	Items      map[string]int64 `json:"items"`
}

// GrantResult is the body of a 201 from the admin grant API.
type GrantResult struct {
	GrantID      string           `json:"grant_id"`
	Balances     map[string]int64 `json:"balances"`
	Entitlements []Entitlement    `json:"entitlements"`
}

// LedgerPage is one page of GET /admin/v1/players/{id}/ledger, newest first.
type LedgerPage struct {
	PlayerID     string              `json:"player_id"`
	Transactions []LedgerTransaction `json:"transactions"`
	NextBefore   *int64              `json:"next_before"`
}

// LedgerTransaction is one double-entry transaction.
type LedgerTransaction struct {
	ID        int64           `json:"id"`
	Kind      string          `json:"kind"` // purchase, admin_grant, ...
	Reference string          `json:"reference"`
	CreatedAt string          `json:"created_at"`
	Metadata  json.RawMessage `json:"metadata,omitempty"`
	Entries   []LedgerEntry   `json:"entries"`
}

// LedgerEntry moves amount of one asset into (positive) or out of an account.
type LedgerEntry struct {
	Account   string `json:"account"`    // player:<id> or system:<name>
	AssetType string `json:"asset_type"` // currency | item
	AssetID   string `json:"asset_id"`
	Amount    int64  `json:"amount"`
}

// Ledger transaction kinds the verification understands.
const (
	KindPurchase   = "purchase"
	KindAdminGrant = "admin_grant"
	// Store redemptions and refunds, as the store chaos checks them.
	KindStorePurchase = "store_purchase"
	KindStoreRefund   = "store_refund"
	// KindTip: a player's tip to a creator (POST /v1/creators/{id}/tips).
	KindTip = "tip"
)

// Audit is the body of GET /admin/v1/audit.
type Audit struct {
	OK     bool         `json:"ok"`
	Checks []AuditCheck `json:"checks"`
}

// AuditCheck is one server-side consistency check.
type AuditCheck struct {
	Name   string          `json:"name"`
	OK     bool            `json:"ok"`
	Detail json.RawMessage `json:"detail,omitempty"`
}

// OwnershipCheck is the body of the server-to-server entitlement check.
type OwnershipCheck struct {
	PlayerID string `json:"player_id"`
	ItemID   string `json:"item_id"`
	Owned    bool   `json:"owned"`
	Quantity int64  `json:"quantity"`
}

// Response is what the tool keeps of one HTTP exchange.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
	// Code is the problem+json code of an error response, or "http_<status>"
	// when the body carries none; empty for 2xx and 304.
	Code string
}

// Client sends coinop API requests to one base URL. It never follows
// redirects and ignores proxy settings, so a run reaches exactly the host the
// operator named.
type Client struct {
	base        string
	http        *http.Client
	timeout     time.Duration
	adminToken  string
	serverToken string
}

// maxBody bounds how much of a response the tool reads; ledger pages are the
// largest bodies it expects.
const maxBody = 16 << 20

// NewClient returns a client for baseURL with a connection pool of conns
// and a per-request timeout.
func NewClient(baseURL string, conns int, timeout time.Duration, adminToken, serverToken string) *Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   true,
	}
	return &Client{
		base: strings.TrimRight(baseURL, "/"),
		http: &http.Client{
			Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
		timeout:     timeout,
		adminToken:  adminToken,
		serverToken: serverToken,
	}
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Do sends one request with a bearer token and JSON body (nil for none) and
// reads the whole response. It returns an error only when no response
// arrived; any HTTP status is a Response.
func (c *Client) Do(ctx context.Context, method, path, token string, body any, header http.Header) (*Response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, err
	}
	r := &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if resp.StatusCode >= 400 {
		r.Code = problemCode(resp.StatusCode, b)
	}
	return r, nil
}

// get reads path, waiting and retrying when the server answers 429 or 503:
// setup and verification must not fail because a rate limiter (coinop's is
// per player and per client IP, and this tool is one IP) or a brief
// overload got in the way. It is only for reads, which are safe to repeat.
func (c *Client) get(ctx context.Context, path, token string) (*Response, error) {
	const attempts = 6
	for i := 1; ; i++ {
		r, err := c.Do(ctx, http.MethodGet, path, token, nil, nil)
		if err != nil || (r.Status != http.StatusTooManyRequests && r.Status != http.StatusServiceUnavailable) || i == attempts {
			return r, err
		}
		wait := retryAfter(r.Header.Get("Retry-After"), time.Duration(i)*250*time.Millisecond)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// retryAfter reads a Retry-After in seconds, capped at 5 s so a confused
// server cannot stall the tool.
func retryAfter(h string, fallback time.Duration) time.Duration {
	if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n >= 0 {
		return min(time.Duration(n)*time.Second, 5*time.Second)
	}
	return fallback
}

// problemCode extracts the problem+json code, falling back to the status so
// every failure still has a name in the error table.
func problemCode(status int, body []byte) string {
	var p struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(body, &p) == nil && p.Code != "" {
		return p.Code
	}
	return "http_" + strconv.Itoa(status)
}

// TransportCode names a failure that produced no response.
func TransportCode(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	default:
		return "transport"
	}
}

// decode unmarshals r's body into v, with the request named in the error.
func (r *Response) decode(what string, v any) error {
	if err := json.Unmarshal(r.Body, v); err != nil {
		return fmt.Errorf("%s: decoding %d response: %w", what, r.Status, err)
	}
	return nil
}

// statusError describes an unexpected answer in setup or verification,
// where any failure stops the phase.
func statusError(what string, r *Response) error {
	body := strings.TrimSpace(string(r.Body))
	if len(body) > 300 {
		body = body[:300] + "…"
	}
	return fmt.Errorf("%s: HTTP %d %s: %s", what, r.Status, r.Code, body)
}

func idemHeader(key string) http.Header {
	return http.Header{"Idempotency-Key": {key}}
}

// FetchCatalog reads the live catalog with a player's token.
func (c *Client) FetchCatalog(ctx context.Context, token string) (*CatalogDocument, error) {
	r, err := c.get(ctx, "/v1/catalog", token)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/catalog: %w", err)
	}
	if r.Status != http.StatusOK {
		return nil, statusError("GET /v1/catalog", r)
	}
	var doc CatalogDocument
	if err := r.decode("GET /v1/catalog", &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// Grant credits a player through the admin API. It returns the response
// (for any status) and the decoded result on 201.
func (c *Client) Grant(ctx context.Context, playerID, key string, g GrantRequest) (*Response, *GrantResult, error) {
	path := "/admin/v1/players/" + url.PathEscape(playerID) + "/grants"
	r, err := c.Do(ctx, http.MethodPost, path, c.adminToken, g, idemHeader(key))
	if err != nil {
		return nil, nil, err
	}
	if r.Status != http.StatusCreated {
		return r, nil, nil
	}
	var res GrantResult
	if err := r.decode("POST "+path, &res); err != nil {
		return r, nil, err
	}
	return r, &res, nil
}

// Ledger reads a player's whole ledger, following next_before. It stops
// with an error after maxPages pages or when the cursor does not move
// backwards, so a misbehaving server cannot keep verification running.
func (c *Client) Ledger(ctx context.Context, playerID string, maxPages int) ([]LedgerTransaction, error) {
	var all []LedgerTransaction
	base := "/admin/v1/players/" + url.PathEscape(playerID) + "/ledger?limit=100"
	var before *int64
	for page := 0; ; page++ {
		if page >= maxPages {
			return all, fmt.Errorf("ledger of %s: more than %d pages", playerID, maxPages)
		}
		path := base
		if before != nil {
			path += "&before=" + strconv.FormatInt(*before, 10)
		}
		r, err := c.get(ctx, path, c.adminToken)
		if err != nil {
			return all, fmt.Errorf("GET %s: %w", path, err)
		}
		if r.Status != http.StatusOK {
			return all, statusError("GET "+path, r)
		}
		var p LedgerPage
		if err := r.decode("GET "+path, &p); err != nil {
			return all, err
		}
		all = append(all, p.Transactions...)
		if p.NextBefore == nil {
			return all, nil
		}
		if before != nil && *p.NextBefore >= *before {
			return all, fmt.Errorf("ledger of %s: next_before %d does not move back from %d", playerID, *p.NextBefore, *before)
		}
		before = p.NextBefore
	}
}

// LatestLedgerID returns the id of a player's newest ledger transaction, 0
// for an empty ledger.
func (c *Client) LatestLedgerID(ctx context.Context, playerID string) (int64, error) {
	path := "/admin/v1/players/" + url.PathEscape(playerID) + "/ledger?limit=1"
	r, err := c.get(ctx, path, c.adminToken)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", path, err)
	}
	if r.Status != http.StatusOK {
		return 0, statusError("GET "+path, r)
	}
	var p LedgerPage
	if err := r.decode("GET "+path, &p); err != nil {
		return 0, err
	}
	var newest int64
	for _, tx := range p.Transactions {
		newest = max(newest, tx.ID)
	}
	return newest, nil
}

// FetchWallet reads a player's balances.
func (c *Client) FetchWallet(ctx context.Context, token string) (*Wallet, error) {
	r, err := c.get(ctx, "/v1/wallet", token)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/wallet: %w", err)
	}
	if r.Status != http.StatusOK {
		return nil, statusError("GET /v1/wallet", r)
	}
	var w Wallet
	return &w, r.decode("GET /v1/wallet", &w)
}

// FetchEntitlements reads a player's items.
func (c *Client) FetchEntitlements(ctx context.Context, token string) (*Entitlements, error) {
	r, err := c.get(ctx, "/v1/entitlements", token)
	if err != nil {
		return nil, fmt.Errorf("GET /v1/entitlements: %w", err)
	}
	if r.Status != http.StatusOK {
		return nil, statusError("GET /v1/entitlements", r)
	}
	var e Entitlements
	return &e, r.decode("GET /v1/entitlements", &e)
}

// FetchAudit runs the server's consistency audit. It returns nil, nil when
// the server has no audit route.
func (c *Client) FetchAudit(ctx context.Context) (*Audit, error) {
	r, err := c.get(ctx, "/admin/v1/audit", c.adminToken)
	if err != nil {
		return nil, fmt.Errorf("GET /admin/v1/audit: %w", err)
	}
	if r.Status == http.StatusNotFound {
		return nil, nil
	}
	if r.Status != http.StatusOK {
		return nil, statusError("GET /admin/v1/audit", r)
	}
	var a Audit
	return &a, r.decode("GET /admin/v1/audit", &a)
}

// CheckOwnership asks the server-to-server route whether a player owns an
// item.
func (c *Client) CheckOwnership(ctx context.Context, playerID, itemID string) (*Response, error) {
	path := "/v1/players/" + url.PathEscape(playerID) + "/entitlements/" + url.PathEscape(itemID)
	return c.Do(ctx, http.MethodGet, path, c.serverToken, nil, nil)
}
