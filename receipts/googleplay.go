package receipts

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/awa/go-iap/playstore"
	"golang.org/x/oauth2"
	"google.golang.org/api/androidpublisher/v3"
	"google.golang.org/api/googleapi"
)

// PlayAPI is the part of the Google Play Developer API that GooglePlay uses.
// go-iap's *playstore.Client implements it; see NewPlayAPI.
type PlayAPI interface {
	VerifyProduct(ctx context.Context, packageName, productID, token string) (*androidpublisher.ProductPurchase, error)
	AcknowledgeProduct(ctx context.Context, packageName, productID, token, developerPayload string) error
	ConsumeProduct(ctx context.Context, packageName, productID, token string) error
	VerifySubscriptionV2(ctx context.Context, packageName, token string) (*androidpublisher.SubscriptionPurchaseV2, error)
	AcknowledgeSubscription(ctx context.Context, packageName, subscriptionID, token string, req *androidpublisher.SubscriptionPurchasesAcknowledgeRequest) error
}

var _ PlayAPI = (*playstore.Client)(nil)

// NewPlayAPI returns go-iap's Play client authenticated with a service
// account's JSON key. httpClient carries both the OAuth token requests and
// the API calls (nil: a default client); its Timeout is not applied to the
// API calls, GooglePlayConfig.Timeout is.
func NewPlayAPI(serviceAccountJSON []byte, httpClient *http.Client) (PlayAPI, error) {
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	c, err := playstore.NewWithClient(serviceAccountJSON, httpClient)
	if err != nil {
		return nil, fmt.Errorf("receipts: google play client: %w", err)
	}
	return c, nil
}

// GooglePlayConfig configures GooglePlay.
type GooglePlayConfig struct {
	PackageName string
	// Environment this deployment accepts: production (real purchases, and
	// license-tester purchases when VerifyOptions.AllowSandbox) or sandbox
	// (license-tester purchases only).
	Environment Environment
	// Timeout for each call to the Play Developer API; default 10 s.
	Timeout time.Duration
}

// GooglePlay verifies Google Play purchase tokens with the Play Developer
// API, and acknowledges and consumes purchases.
type GooglePlay struct {
	cfg GooglePlayConfig
	api PlayAPI
}

// NewGooglePlay checks cfg and returns a verifier using api.
func NewGooglePlay(cfg GooglePlayConfig, api PlayAPI) (*GooglePlay, error) {
	if cfg.PackageName == "" {
		return nil, errors.New("receipts: google play: PackageName is required")
	}
	if cfg.Environment != EnvProduction && cfg.Environment != EnvSandbox {
		return nil, fmt.Errorf("receipts: google play: environment %q, want production or sandbox", cfg.Environment)
	}
	if api == nil {
		return nil, errors.New("receipts: google play: nil PlayAPI")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &GooglePlay{cfg: cfg, api: api}, nil
}

// PackageName is the configured Android package name.
func (g *GooglePlay) PackageName() string { return g.cfg.PackageName }

// EnvironmentAllowed applies this deployment's environment policy to a
// purchase made in env (allowSandbox: the player is a tester).
func (g *GooglePlay) EnvironmentAllowed(env Environment, allowSandbox bool) bool {
	return environmentAllowed(g.cfg.Environment, env, allowSandbox)
}

// checkID refuses ids and tokens that no store issues before they reach a URL.
func checkID(what, s string) error {
	if s == "" || len(s) > 2048 {
		return invalid(ReasonFormat, "%s is empty or too long", what)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '/' || c == '?' || c == '#' || c == '%' {
			return invalid(ReasonFormat, "%s contains %q", what, c)
		}
	}
	return nil
}

// playError maps an error from the Play Developer API.
func playError(op string, err error) error {
	var ge *googleapi.Error
	if errors.As(err, &ge) {
		switch {
		case ge.Code == http.StatusUnauthorized || ge.Code == http.StatusForbidden:
			return fmt.Errorf("%w: google play %s: HTTP %d: %s", ErrMisconfigured, op, ge.Code, ge.Message)
		case ge.Code == http.StatusBadRequest || ge.Code == http.StatusNotFound || ge.Code == http.StatusGone:
			return invalid(ReasonSignature, "google play %s: purchase token not recognized (HTTP %d: %s)", op, ge.Code, ge.Message)
		case ge.Code == http.StatusConflict:
			return invalid(ReasonState, "google play %s: HTTP %d: %s", op, ge.Code, ge.Message)
		}
		return unavailable("google play %s: HTTP %d", op, ge.Code)
	}
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
		return fmt.Errorf("%w: google play %s: token endpoint refused the service account: HTTP %d", ErrMisconfigured, op, re.Response.StatusCode)
	}
	return unavailable("google play %s: %v", op, err)
}

// VerifyProduct verifies the purchase token of a one-time product. Pending
// (purchaseState 2) and cancelled (1) purchases fail with ReasonState; an
// unknown token with ReasonSignature; a license-tester purchase outside the
// environment policy with ReasonEnvironment. Store trouble is
// ErrStoreUnavailable.
func (g *GooglePlay) VerifyProduct(ctx context.Context, productID, token string, opt VerifyOptions) (*Purchase, error) {
	if err := checkID("product id", productID); err != nil {
		return nil, err
	}
	if err := checkID("purchase token", token); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	res, err := g.api.VerifyProduct(ctx, g.cfg.PackageName, productID, token)
	if err != nil {
		return nil, playError("products.get", err)
	}
	if res == nil {
		return nil, unavailable("google play products.get: empty answer")
	}
	if res.ProductId != "" && res.ProductId != productID {
		return nil, invalid(ReasonProduct, "token is for product %q, not %q", res.ProductId, productID)
	}
	switch res.PurchaseState {
	case 0:
	case 1:
		return nil, invalid(ReasonState, "purchase was cancelled")
	case 2:
		return nil, invalid(ReasonState, detailPending)
	default:
		return nil, invalid(ReasonState, "purchaseState %d", res.PurchaseState)
	}
	env := EnvProduction
	if res.PurchaseType != nil && *res.PurchaseType == 0 {
		env = EnvSandbox // license tester
	}
	if !environmentAllowed(g.cfg.Environment, env, opt.AllowSandbox) {
		return nil, invalid(ReasonEnvironment, "%s purchase not accepted by this %s deployment", env, g.cfg.Environment)
	}
	if res.PurchaseTimeMillis <= 0 {
		return nil, invalid(ReasonFormat, "purchase without purchaseTimeMillis")
	}
	p := &Purchase{
		Store:       StoreGoogle,
		Environment: env,
		// Promo-code purchases have no orderId; the token is unique too.
		TransactionID:   firstNonEmpty(res.OrderId, token),
		ProductID:       productID,
		Quantity:        res.Quantity,
		PurchasedAt:     msTime(res.PurchaseTimeMillis),
		AppAccountToken: res.ObfuscatedExternalAccountId,
		PurchaseToken:   token,
		Acknowledged:    res.AcknowledgementState == 1,
	}
	p.OriginalTransactionID = p.TransactionID
	if p.Quantity <= 0 {
		p.Quantity = 1 // "If not present, the quantity is 1."
	}
	// A quantity-based partial refund leaves the purchase purchased and
	// lowers refundableQuantity (what has not been refunded yet). Play
	// leaves the field out when it is zero, so only a value strictly
	// between 0 and the quantity tells a partial refund here; all of it
	// refunded shows as purchaseState 1, or through a voided purchase.
	if rq := res.RefundableQuantity; rq > 0 && rq < p.Quantity {
		p.RevokedShare = (p.Quantity - rq) * FullShare / p.Quantity
		p.RefundedQuantity = p.Quantity - rq
	}
	return p, nil
}

// detailPending is the Detail of the ReasonState error for a pending
// one-time purchase; see IsPending.
const detailPending = "purchase is pending"

// IsPending reports whether err is VerifyProduct's answer for a purchase
// whose payment is still pending (purchaseState 2): Play sends a
// ONE_TIME_PRODUCT_PURCHASED notification when it completes.
func IsPending(err error) bool {
	var ie *InvalidError
	return errors.As(err, &ie) && ie.Reason == ReasonState && ie.Detail == detailPending
}

// VerifySubscription verifies a subscription purchase token
// (purchases.subscriptionsv2). productID may be empty: the token alone names
// the subscription (notifications need not carry subscriptionId), and the
// purchase's first line item is taken. The Purchase's SubscriptionState tells active,
// grace period, on hold (billing_retry), paused, canceled (access until
// ExpiresAt) and expired apart; pending subscriptions fail with ReasonState,
// a token for another subscription with ReasonProduct. Other errors as
// VerifyProduct.
func (g *GooglePlay) VerifySubscription(ctx context.Context, productID, token string, opt VerifyOptions) (*Purchase, error) {
	if productID != "" {
		if err := checkID("product id", productID); err != nil {
			return nil, err
		}
	}
	if err := checkID("purchase token", token); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	res, err := g.api.VerifySubscriptionV2(ctx, g.cfg.PackageName, token)
	if err != nil {
		return nil, playError("subscriptionsv2.get", err)
	}
	if res == nil {
		return nil, unavailable("google play subscriptionsv2.get: empty answer")
	}
	var item *androidpublisher.SubscriptionPurchaseLineItem
	for _, li := range res.LineItems {
		if li != nil && (li.ProductId == productID || (productID == "" && li.ProductId != "")) {
			item = li
			break
		}
	}
	if item == nil {
		return nil, invalid(ReasonProduct, "token has no line item for %q", productID)
	}
	productID = item.ProductId
	var state string
	switch res.SubscriptionState {
	case "SUBSCRIPTION_STATE_ACTIVE":
		state = SubActive
	case "SUBSCRIPTION_STATE_IN_GRACE_PERIOD":
		state = SubGracePeriod
	case "SUBSCRIPTION_STATE_ON_HOLD":
		state = SubBillingRetry
	case "SUBSCRIPTION_STATE_PAUSED":
		state = SubPaused
	case "SUBSCRIPTION_STATE_CANCELED":
		state = SubCanceled
	case "SUBSCRIPTION_STATE_EXPIRED":
		state = SubExpired
	case "SUBSCRIPTION_STATE_PENDING":
		return nil, invalid(ReasonState, "subscription is pending")
	default:
		return nil, invalid(ReasonState, "subscription state %q", res.SubscriptionState)
	}
	env := EnvProduction
	if res.TestPurchase != nil {
		env = EnvSandbox
	}
	if !environmentAllowed(g.cfg.Environment, env, opt.AllowSandbox) {
		return nil, invalid(ReasonEnvironment, "%s purchase not accepted by this %s deployment", env, g.cfg.Environment)
	}
	started, err := time.Parse(time.RFC3339Nano, res.StartTime)
	if err != nil {
		return nil, invalid(ReasonFormat, "startTime %q", res.StartTime)
	}
	p := &Purchase{
		Store:             StoreGoogle,
		Environment:       env,
		TransactionID:     firstNonEmpty(res.LatestOrderId, item.LatestSuccessfulOrderId, token),
		ProductID:         productID,
		Quantity:          1,
		PurchasedAt:       started.UTC(),
		PurchaseToken:     token,
		Acknowledged:      res.AcknowledgementState == "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
		SubscriptionState: state,
		Type:              ProductAutoRenewable,
	}
	if item.PrepaidPlan != nil {
		p.Type = ProductNonRenewing
	}
	// Renewal orders are the first order id plus "..N".
	p.OriginalTransactionID, _, _ = strings.Cut(p.TransactionID, "..")
	if item.ExpiryTime != "" {
		t, err := time.Parse(time.RFC3339Nano, item.ExpiryTime)
		if err != nil {
			return nil, invalid(ReasonFormat, "expiryTime %q", item.ExpiryTime)
		}
		t = t.UTC()
		p.ExpiresAt = &t
	}
	// An upgrade, downgrade or resubscription is a new token naming the
	// one it replaces.
	p.LinkedPurchaseToken = res.LinkedPurchaseToken
	if ids := res.ExternalAccountIdentifiers; ids != nil {
		p.AppAccountToken = ids.ObfuscatedExternalAccountId
	}
	return p, nil
}

func (g *GooglePlay) checkOwn(p *Purchase) error {
	if p == nil || p.Store != StoreGoogle {
		return errors.New("receipts: not a Google Play purchase")
	}
	if err := checkID("product id", p.ProductID); err != nil {
		return err
	}
	return checkID("purchase token", p.PurchaseToken)
}

// Acknowledge acknowledges a verified purchase (Play refunds purchases not
// acknowledged within three days). Subscriptions go to
// purchases.subscriptions.acknowledge, everything else to
// purchases.products.acknowledge. Errors as VerifyProduct.
func (g *GooglePlay) Acknowledge(ctx context.Context, p *Purchase) error {
	if err := g.checkOwn(p); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if p.Type == ProductAutoRenewable || p.Type == ProductNonRenewing {
		err := g.api.AcknowledgeSubscription(ctx, g.cfg.PackageName, p.ProductID, p.PurchaseToken, &androidpublisher.SubscriptionPurchasesAcknowledgeRequest{})
		if err != nil {
			return playError("subscriptions.acknowledge", err)
		}
		return nil
	}
	if err := g.api.AcknowledgeProduct(ctx, g.cfg.PackageName, p.ProductID, p.PurchaseToken, ""); err != nil {
		return playError("products.acknowledge", err)
	}
	return nil
}

// Consume consumes a verified one-time product so the player can buy it
// again; consuming also acknowledges. Call it only after the grant has been
// committed. Errors as VerifyProduct.
func (g *GooglePlay) Consume(ctx context.Context, p *Purchase) error {
	if err := g.checkOwn(p); err != nil {
		return err
	}
	if p.Type == ProductAutoRenewable || p.Type == ProductNonRenewing {
		return invalid(ReasonProduct, "subscriptions cannot be consumed")
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Timeout)
	defer cancel()
	if err := g.api.ConsumeProduct(ctx, g.cfg.PackageName, p.ProductID, p.PurchaseToken); err != nil {
		return playError("products.consume", err)
	}
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
