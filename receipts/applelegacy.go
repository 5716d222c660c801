package receipts

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/awa/go-iap/appstore"
)

// AppleLegacyConfig configures AppleLegacy.
type AppleLegacyConfig struct {
	BundleID string
	// Environment this deployment accepts: production (Production, and the
	// sandbox fallback when VerifyOptions.AllowSandbox) or sandbox (receipts
	// go to the sandbox endpoint only).
	Environment Environment
	// SharedSecret is the app-specific shared secret, needed only for
	// receipts holding auto-renewable subscriptions. Optional.
	SharedSecret string
	// ProductionURL and SandboxURL default to Apple's verifyReceipt
	// endpoints; tests point them at an httptest server.
	ProductionURL, SandboxURL string
	// HTTPClient defaults to a client with a 10 s timeout.
	HTTPClient *http.Client
}

// AppleLegacy verifies original-StoreKit receipts with Apple's verifyReceipt
// endpoint (deprecated by Apple, still answered) through go-iap's
// appstore.Client.
type AppleLegacy struct {
	cfg     AppleLegacyConfig
	client  *appstore.Client
	sandbox *url.URL
}

// maxLegacyReceipt bounds the base64 receipt accepted from a player.
const maxLegacyReceipt = 1 << 20

type ctxKey int

const noSandboxKey ctxKey = 1

var errSandboxRefused = errors.New("sandbox fallback not allowed for this request")

// sandboxGuard refuses go-iap's automatic 21007 → sandbox retry when the
// request does not allow sandbox receipts, so that call is never made.
type sandboxGuard struct {
	next    http.RoundTripper
	sandbox *url.URL
}

func (g sandboxGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Context().Value(noSandboxKey) != nil && r.URL.Host == g.sandbox.Host && r.URL.Path == g.sandbox.Path {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errSandboxRefused
	}
	return g.next.RoundTrip(r)
}

// NewAppleLegacy checks cfg and returns a verifier.
func NewAppleLegacy(cfg AppleLegacyConfig) (*AppleLegacy, error) {
	if cfg.BundleID == "" {
		return nil, errors.New("receipts: apple legacy: BundleID is required")
	}
	if cfg.Environment != EnvProduction && cfg.Environment != EnvSandbox {
		return nil, fmt.Errorf("receipts: apple legacy: environment %q, want production or sandbox", cfg.Environment)
	}
	if cfg.ProductionURL == "" {
		cfg.ProductionURL = appstore.ProductionURL
	}
	if cfg.SandboxURL == "" {
		cfg.SandboxURL = appstore.SandboxURL
	}
	su, err := url.Parse(cfg.SandboxURL)
	if err != nil {
		return nil, fmt.Errorf("receipts: apple legacy: sandbox URL: %w", err)
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		hc = &c
	}
	next := hc.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	hc.Transport = sandboxGuard{next: next, sandbox: su}
	client := appstore.NewWithClient(hc)
	client.ProductionURL = cfg.ProductionURL
	client.SandboxURL = cfg.SandboxURL
	if cfg.Environment == EnvSandbox {
		// A sandbox deployment sends everything to the sandbox; a production
		// receipt answers 21008 there.
		client.ProductionURL = cfg.SandboxURL
	}
	return &AppleLegacy{cfg: cfg, client: client, sandbox: su}, nil
}

// VerifyReceipt verifies a base64 app receipt and returns one Purchase per
// in_app entry (possibly none). The production endpoint is asked first; a
// 21007 (sandbox receipt) answer is retried on the sandbox endpoint only when
// opt.AllowSandbox, else it fails with ReasonEnvironment. Errors:
// *InvalidError (ReasonFormat, ReasonSignature for 21003, ReasonAccount for
// 21010, ReasonBundle, ReasonEnvironment), ErrStoreUnavailable (network,
// 5xx, 21005, 21009, 211xx, is_retryable), ErrMisconfigured (21004).
func (a *AppleLegacy) VerifyReceipt(ctx context.Context, base64Receipt string, opt VerifyOptions) ([]Purchase, error) {
	if base64Receipt == "" || len(base64Receipt) > maxLegacyReceipt {
		return nil, invalid(ReasonFormat, "receipt is empty or longer than %d bytes", maxLegacyReceipt)
	}
	if _, err := base64.StdEncoding.DecodeString(base64Receipt); err != nil {
		return nil, invalid(ReasonFormat, "receipt is not base64")
	}
	allowSandbox := a.cfg.Environment == EnvSandbox || opt.AllowSandbox
	if !allowSandbox {
		ctx = context.WithValue(ctx, noSandboxKey, true)
	}
	var resp appstore.IAPResponse
	req := appstore.IAPRequest{ReceiptData: base64Receipt, Password: a.cfg.SharedSecret}
	_, err := a.client.VerifyWithStatus(ctx, req, &resp)
	switch {
	case errors.Is(err, errSandboxRefused):
		return nil, invalid(ReasonEnvironment, "sandbox receipt (status 21007) not accepted for this request")
	case err != nil:
		return nil, unavailable("verifyReceipt: %v", err)
	}
	// go-iap decodes the sandbox answer into resp after a 21007 but still
	// returns 21007 as the status: resp.Status is the final one.
	if err := legacyStatus(resp.Status, resp.IsRetryable); err != nil {
		return nil, err
	}
	env, ok := appleEnvironment(string(resp.Environment))
	if !ok || !environmentAllowed(a.cfg.Environment, env, opt.AllowSandbox) {
		return nil, invalid(ReasonEnvironment, "receipt environment %q not accepted", resp.Environment)
	}
	if resp.Receipt.BundleID != a.cfg.BundleID {
		return nil, invalid(ReasonBundle, "bundle id %q, want %q", resp.Receipt.BundleID, a.cfg.BundleID)
	}
	out := make([]Purchase, 0, len(resp.Receipt.InApp))
	for i, in := range resp.Receipt.InApp {
		p, err := legacyPurchase(env, in)
		if err != nil {
			return nil, fmt.Errorf("in_app[%d]: %w", i, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func legacyStatus(status int, retryable bool) error {
	switch {
	case status == 0:
		return nil
	case status == 21005 || status == 21009 || (status >= 21100 && status <= 21199) || retryable:
		return unavailable("verifyReceipt status %d", status)
	case status == 21004:
		return fmt.Errorf("%w: verifyReceipt status 21004 (shared secret)", ErrMisconfigured)
	case status == 21003:
		return invalid(ReasonSignature, "verifyReceipt status 21003: receipt not authenticated")
	case status == 21010:
		return invalid(ReasonAccount, "verifyReceipt status 21010: account not found or purchase not authorized")
	case status == 21007 || status == 21008:
		return invalid(ReasonEnvironment, "verifyReceipt status %d", status)
	}
	// 21000, 21002 and anything unknown.
	return invalid(ReasonFormat, "verifyReceipt status %d", status)
}

func legacyPurchase(env Environment, in appstore.InApp) (Purchase, error) {
	if in.TransactionID == "" || in.ProductID == "" {
		return Purchase{}, invalid(ReasonFormat, "entry without transaction_id or product_id")
	}
	purchased, err := legacyMillis(in.PurchaseDateMS)
	if err != nil || purchased == nil {
		return Purchase{}, invalid(ReasonFormat, "purchase_date_ms %q", in.PurchaseDateMS)
	}
	p := Purchase{
		Store:                 StoreApple,
		Environment:           env,
		TransactionID:         in.TransactionID,
		OriginalTransactionID: string(in.OriginalTransactionID),
		ProductID:             in.ProductID,
		Quantity:              1,
		PurchasedAt:           *purchased,
		OwnershipType:         in.InAppOwnershipType,
		AppAccountToken:       in.AppAccountToken,
	}
	if p.OriginalTransactionID == "" {
		p.OriginalTransactionID = p.TransactionID
	}
	if in.Quantity != "" {
		q, err := strconv.ParseInt(in.Quantity, 10, 64)
		if err != nil || q < 1 {
			return Purchase{}, invalid(ReasonFormat, "quantity %q", in.Quantity)
		}
		p.Quantity = q
	}
	if p.ExpiresAt, err = legacyMillis(in.ExpiresDateMS); err != nil {
		return Purchase{}, invalid(ReasonFormat, "expires_date_ms %q", in.ExpiresDateMS)
	}
	if p.RevokedAt, err = legacyMillis(in.CancellationDateMS); err != nil {
		return Purchase{}, invalid(ReasonFormat, "cancellation_date_ms %q", in.CancellationDateMS)
	}
	if p.RevokedAt != nil {
		p.RevocationReason = "other"
		if in.CancellationReason == "1" {
			p.RevocationReason = "app_issue"
		}
	}
	if p.ExpiresAt != nil {
		// Only auto-renewable subscriptions carry an expiry in a receipt.
		p.Type = ProductAutoRenewable
	}
	return p, nil
}

func legacyMillis(s string) (*time.Time, error) {
	if s == "" {
		return nil, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 {
		return nil, fmt.Errorf("bad milliseconds %q", s)
	}
	return msTimePtr(ms), nil
}
