package receipts

import (
	"bytes"
	"crypto/x509"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/awa/go-iap/appstore"
	"github.com/awa/go-iap/appstore/api"
)

// appleRootCAG3 is Apple Root CA - G3, the root of every App Store signing
// chain (SHA-256 fingerprint 63:34:3A:BF:B8:9A:6A:03:EB:B5:7E:9B:3F:5F:A7:BE:
// 7C:4F:5C:75:6F:30:17:B3:A8:C4:88:C3:65:3E:91:79), as embedded in
// github.com/awa/go-iap v1.49.0 (appstore/api/cert.go).
//
//go:embed AppleRootCA-G3.pem
var appleRootCAG3 []byte

// AppleRoots returns a pool holding Apple Root CA - G3 only.
func AppleRoots() *x509.CertPool {
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(appleRootCAG3) {
		panic("receipts: embedded Apple Root CA G3 does not parse")
	}
	return p
}

// AppleConfig configures an AppleVerifier.
type AppleConfig struct {
	// BundleID of the app; signed data for any other bundle is refused.
	BundleID string
	// AppAppleID is the app's numeric Apple id, checked on production
	// notifications. Required when Environment is production.
	AppAppleID int64
	// Environment this deployment accepts; see VerifyOptions for sandbox
	// purchases by testers in production.
	Environment Environment
	// Roots the x5c chains must lead to. Nil means Apple Root CA G3; tests and
	// the fake store use their own.
	Roots *x509.CertPool
	// Now is the clock used when signed data carries no signedDate and to
	// tell whether a subscription has expired. Nil means time.Now.
	Now func() time.Time
}

// AppleVerifier verifies StoreKit 2 signed data (JWS) locally: no network.
// It is safe for concurrent use.
type AppleVerifier struct {
	cfg AppleConfig
}

// NewAppleVerifier checks cfg and returns a verifier.
func NewAppleVerifier(cfg AppleConfig) (*AppleVerifier, error) {
	if cfg.BundleID == "" {
		return nil, errors.New("receipts: apple: BundleID is required")
	}
	switch cfg.Environment {
	case EnvProduction:
		if cfg.AppAppleID == 0 {
			return nil, errors.New("receipts: apple: AppAppleID is required in production")
		}
	case EnvSandbox, EnvXcode:
	default:
		return nil, fmt.Errorf("receipts: apple: environment %q, want production, sandbox or xcode", cfg.Environment)
	}
	if cfg.Roots == nil {
		cfg.Roots = AppleRoots()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &AppleVerifier{cfg: cfg}, nil
}

// EnvironmentAllowed reports whether data from env is accepted by this
// verifier when the request allows sandbox data (allowSandbox) or not:
// production accepts Production, and Sandbox only when allowSandbox; sandbox
// accepts Sandbox; xcode accepts Xcode. Every Verify method applies it.
func (v *AppleVerifier) EnvironmentAllowed(env Environment, allowSandbox bool) bool {
	return environmentAllowed(v.cfg.Environment, env, allowSandbox)
}

// verified returns the payload of jws: verified against the roots, or, only
// when this verifier is configured for Xcode, decoded unverified.
func (v *AppleVerifier) verified(jws string) ([]byte, error) {
	if v.cfg.Environment == EnvXcode {
		p, err := decodeUnverifiedJWS(jws)
		if err != nil {
			return nil, err
		}
		return normalizeMillis(p)
	}
	return verifyJWS(jws, v.cfg.Roots, v.cfg.Now())
}

func appleEnvironment(s string) (Environment, bool) {
	switch s {
	case "Production":
		return EnvProduction, true
	case "Sandbox":
		return EnvSandbox, true
	case "Xcode":
		return EnvXcode, true
	}
	return "", false
}

func (v *AppleVerifier) checkEnvironment(raw string, opt VerifyOptions) (Environment, error) {
	env, ok := appleEnvironment(raw)
	if !ok {
		return "", invalid(ReasonEnvironment, "unknown environment %q", raw)
	}
	if !v.EnvironmentAllowed(env, opt.AllowSandbox) {
		return "", invalid(ReasonEnvironment, "environment %s not accepted by this %s verifier", raw, v.cfg.Environment)
	}
	return env, nil
}

func decodeClaims(payload []byte, dst any) error {
	if err := json.Unmarshal(payload, dst); err != nil {
		return invalid(ReasonFormat, "claims: %v", err)
	}
	return nil
}

// VerifyTransaction verifies a signed transaction (JWSTransaction) and
// returns it as a Purchase. It fails with *InvalidError: ReasonFormat for
// undecodable input or a transaction without transactionId, productId or
// purchaseDate; ReasonSignature, ReasonChain, ReasonBundle,
// ReasonEnvironment as named.
func (v *AppleVerifier) VerifyTransaction(jws string, opt VerifyOptions) (*Purchase, error) {
	payload, err := v.verified(jws)
	if err != nil {
		return nil, err
	}
	var c api.JWSTransaction
	if err := decodeClaims(payload, &c); err != nil {
		return nil, err
	}
	return v.purchase(&c, opt)
}

func (v *AppleVerifier) purchase(c *api.JWSTransaction, opt VerifyOptions) (*Purchase, error) {
	if c.BundleID != v.cfg.BundleID {
		return nil, invalid(ReasonBundle, "bundle id %q, want %q", c.BundleID, v.cfg.BundleID)
	}
	env, err := v.checkEnvironment(string(c.Environment), opt)
	if err != nil {
		return nil, err
	}
	switch {
	case c.TransactionID == "":
		return nil, invalid(ReasonFormat, "transaction has no transactionId")
	case c.ProductID == "":
		return nil, invalid(ReasonFormat, "transaction has no productId")
	case c.PurchaseDate <= 0:
		return nil, invalid(ReasonFormat, "transaction has no purchaseDate")
	case c.Quantity < 0:
		return nil, invalid(ReasonFormat, "transaction has quantity %d", c.Quantity)
	}
	p := &Purchase{
		Store:                 StoreApple,
		Environment:           env,
		TransactionID:         c.TransactionID,
		OriginalTransactionID: c.OriginalTransactionId,
		ProductID:             c.ProductID,
		Quantity:              int64(c.Quantity),
		PurchasedAt:           msTime(c.PurchaseDate),
		ExpiresAt:             msTimePtr(c.ExpiresDate),
		RevokedAt:             msTimePtr(c.RevocationDate),
		OwnershipType:         c.InAppOwnershipType,
		AppAccountToken:       c.AppAccountToken,
		Type:                  appleProductType(c.Type),
	}
	if p.Quantity == 0 {
		p.Quantity = 1
	}
	if c.Price > 0 && len(c.Currency) == 3 {
		p.PriceMilli, p.Currency = c.Price, strings.ToUpper(c.Currency)
	}
	if c.SignedDate > 0 {
		p.SignedAt = msTime(c.SignedDate)
	}
	if p.OriginalTransactionID == "" {
		p.OriginalTransactionID = p.TransactionID
	}
	if p.RevokedAt != nil {
		p.RevokedShare = FullShare
		if c.RevocationType == api.REFUND_PRORATED && c.RevocationPercentage > 0 && c.RevocationPercentage < 100000 {
			p.RevokedShare = int64(c.RevocationPercentage) * 10 // milli-percent to millionths
		}
	}
	if c.RevocationReason != nil {
		p.RevocationReason = appleRevocationReason(*c.RevocationReason)
	} else if p.RevokedAt != nil {
		p.RevocationReason = "other"
	}
	if p.Type == ProductAutoRenewable {
		switch {
		case p.RevokedAt != nil:
			p.SubscriptionState = SubRevoked
		case p.ExpiresAt != nil && !p.ExpiresAt.After(v.cfg.Now()):
			p.SubscriptionState = SubExpired
		default:
			p.SubscriptionState = SubActive
		}
	}
	return p, nil
}

func appleProductType(t api.IAPType) ProductType {
	switch t {
	case api.Consumable:
		return ProductConsumable
	case api.NonConsumable:
		return ProductNonConsumable
	case api.AutoRenewable:
		return ProductAutoRenewable
	case api.NonRenewable:
		return ProductNonRenewing
	}
	return ProductUnknown
}

func appleRevocationReason(r int32) string {
	switch r {
	case 0:
		return "other"
	case 1:
		return "app_issue"
	}
	return strconv.Itoa(int(r))
}

// RenewalInfo is the verified renewal state of an auto-renewable
// subscription (JWSRenewalInfoDecodedPayload).
type RenewalInfo struct {
	Environment           Environment
	OriginalTransactionID string
	ProductID             string
	AutoRenewProductID    string
	AutoRenew             bool
	// ExpirationIntent is Apple's reason code for an expired subscription
	// (1 cancelled, 2 billing error, 3 price increase refused, 4 product
	// unavailable, 5 other); 0 when not expired.
	ExpirationIntent       int32
	InBillingRetry         bool
	GracePeriodExpiresAt   *time.Time
	RenewsAt               *time.Time
	RecentSubscriptionFrom *time.Time
	AppAccountToken        string
	SignedAt               time.Time
}

// VerifyRenewalInfo verifies signed renewal info. Renewal info carries no
// bundle id: only the signature, chain and environment are checked. Errors
// as VerifyTransaction.
func (v *AppleVerifier) VerifyRenewalInfo(jws string, opt VerifyOptions) (*RenewalInfo, error) {
	payload, err := v.verified(jws)
	if err != nil {
		return nil, err
	}
	var c api.JWSRenewalInfoDecodedPayload
	if err := decodeClaims(payload, &c); err != nil {
		return nil, err
	}
	env, err := v.checkEnvironment(string(c.Environment), opt)
	if err != nil {
		return nil, err
	}
	r := &RenewalInfo{
		Environment:            env,
		OriginalTransactionID:  c.OriginalTransactionId,
		ProductID:              c.ProductId,
		AutoRenewProductID:     c.AutoRenewProductId,
		AutoRenew:              c.AutoRenewStatus == api.AutoRenewStatusOn,
		ExpirationIntent:       c.ExpirationIntent,
		InBillingRetry:         c.IsInBillingRetryPeriod != nil && *c.IsInBillingRetryPeriod,
		GracePeriodExpiresAt:   msTimePtr(c.GracePeriodExpiresDate),
		RenewsAt:               msTimePtr(c.RenewalDate),
		RecentSubscriptionFrom: msTimePtr(c.RecentSubscriptionStartDate),
		AppAccountToken:        c.AppAccountToken,
	}
	if c.SignedDate > 0 {
		r.SignedAt = msTime(c.SignedDate)
	}
	return r, nil
}

// Notification is a verified App Store Server Notification v2.
type Notification struct {
	Type             string // notificationType, e.g. DID_RENEW, REFUND, TEST
	Subtype          string
	NotificationUUID string // unique per notification: deduplicate on it
	Version          string
	SignedAt         time.Time
	Environment      Environment
	BundleID         string
	AppAppleID       int64
	// Purchase is the verified signedTransactionInfo, nil when absent. For
	// subscriptions its SubscriptionState comes from the notification's
	// status.
	Purchase *Purchase
	// Renewal is the verified signedRenewalInfo, nil when absent.
	Renewal *RenewalInfo
	// ConsumptionRequestReason is set in CONSUMPTION_REQUEST notifications.
	ConsumptionRequestReason string
	// Summary is the summary of RENEWAL_EXTENSION/SUMMARY notifications.
	Summary *AppleNotificationSummary
	// ExternalPurchaseID is set in EXTERNAL_PURCHASE_TOKEN notifications.
	ExternalPurchaseID string
	// Unknown is true for a validly signed notification that carries none
	// of data, summary, appData or externalPurchaseToken (a shape newer
	// than this code): nothing else is set beside type, subtype and UUID.
	Unknown bool
}

// appleNotificationClaims is the decoded signedPayload of an App Store
// Server Notification v2 (Apple's responseBodyV2DecodedPayload). It is ours,
// not go-iap's: go-iap v1.49 declares summary.storefrontCountryCodes a
// string where Apple sends an array (so a genuine summary notification
// failed to decode), and has neither appData (RESCIND_CONSENT) nor
// externalPurchaseToken (EXTERNAL_PURCHASE_TOKEN). Only the fields used are
// declared, so a new or re-typed field elsewhere cannot reject a
// notification.
type appleNotificationClaims struct {
	NotificationType string `json:"notificationType"`
	Subtype          string `json:"subtype"`
	NotificationUUID string `json:"notificationUUID"`
	Version          string `json:"version"`
	SignedDate       int64  `json:"signedDate"`
	Data             *struct {
		AppAppleID               int64                                    `json:"appAppleId"`
		BundleID                 string                                   `json:"bundleId"`
		Environment              string                                   `json:"environment"`
		SignedTransactionInfo    string                                   `json:"signedTransactionInfo"`
		SignedRenewalInfo        string                                   `json:"signedRenewalInfo"`
		Status                   appstore.AutoRenewableSubscriptionStatus `json:"status"`
		ConsumptionRequestReason string                                   `json:"consumptionRequestReason"`
	} `json:"data"`
	Summary *AppleNotificationSummary `json:"summary"`
	AppData *struct {
		AppAppleID  int64  `json:"appAppleId"`
		BundleID    string `json:"bundleId"`
		Environment string `json:"environment"`
	} `json:"appData"`
	ExternalPurchaseToken *struct {
		ExternalPurchaseID string `json:"externalPurchaseId"`
		TokenCreationDate  int64  `json:"tokenCreationDate"`
		AppAppleID         int64  `json:"appAppleId"`
		BundleID           string `json:"bundleId"`
	} `json:"externalPurchaseToken"`
}

// AppleNotificationSummary is the summary of a subscription-renewal-date
// extension request for all subscribers (RENEWAL_EXTENSION/SUMMARY).
type AppleNotificationSummary struct {
	Environment            string   `json:"environment"`
	AppAppleID             int64    `json:"appAppleId"`
	BundleID               string   `json:"bundleId"`
	ProductID              string   `json:"productId"`
	RequestIdentifier      string   `json:"requestIdentifier"`
	StorefrontCountryCodes []string `json:"storefrontCountryCodes"`
	SucceededCount         int64    `json:"succeededCount"`
	FailedCount            int64    `json:"failedCount"`
}

// maxNotificationBody bounds a notification request body.
const maxNotificationBody = 256 << 10

// VerifyNotification verifies the body of an App Store Server Notification
// v2 request ({"signedPayload": "..."}): the payload, then the
// signedTransactionInfo and signedRenewalInfo inside it, each with the same
// checks and options. Production notifications must carry the configured
// AppAppleID. Errors as VerifyTransaction.
func (v *AppleVerifier) VerifyNotification(body []byte, opt VerifyOptions) (*Notification, error) {
	if len(body) > maxNotificationBody {
		return nil, invalid(ReasonFormat, "notification body longer than %d bytes", maxNotificationBody)
	}
	var req appstore.SubscriptionNotificationV2SignedPayload
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&req); err != nil || d.More() {
		return nil, invalid(ReasonFormat, "notification body is not {\"signedPayload\": ...}")
	}
	if req.SignedPayload == "" {
		return nil, invalid(ReasonFormat, "notification body has no signedPayload")
	}
	payload, err := v.verified(req.SignedPayload)
	if err != nil {
		return nil, err
	}
	var c appleNotificationClaims
	if err := decodeClaims(payload, &c); err != nil {
		return nil, err
	}
	n := &Notification{
		Type:             c.NotificationType,
		Subtype:          c.Subtype,
		NotificationUUID: c.NotificationUUID,
		Version:          c.Version,
	}
	if c.SignedDate > 0 {
		n.SignedAt = msTime(c.SignedDate)
	}
	if n.NotificationUUID == "" || n.Type == "" {
		return nil, invalid(ReasonFormat, "notification without notificationUUID or notificationType")
	}
	var rawEnv string
	known := true
	switch {
	case c.Data != nil:
		n.BundleID, n.AppAppleID, rawEnv = c.Data.BundleID, c.Data.AppAppleID, c.Data.Environment
		n.ConsumptionRequestReason = c.Data.ConsumptionRequestReason
	case c.Summary != nil:
		n.BundleID, n.AppAppleID, rawEnv = c.Summary.BundleID, c.Summary.AppAppleID, c.Summary.Environment
		n.Summary = c.Summary
	case c.AppData != nil:
		n.BundleID, n.AppAppleID, rawEnv = c.AppData.BundleID, c.AppData.AppAppleID, c.AppData.Environment
	case c.ExternalPurchaseToken != nil:
		t := c.ExternalPurchaseToken
		n.BundleID, n.AppAppleID, n.ExternalPurchaseID = t.BundleID, t.AppAppleID, t.ExternalPurchaseID
		// The token carries no environment: Apple's libraries read it from
		// the id, which starts with SANDBOX in the sandbox.
		rawEnv = "Production"
		if strings.HasPrefix(t.ExternalPurchaseID, "SANDBOX") {
			rawEnv = "Sandbox"
		}
	default:
		// A validly signed notification of a shape this code does not know
		// yet: recorded and acknowledged, never acted on (no purchase).
		known = false
	}
	if !known {
		n.Unknown = true
		return n, nil
	}
	if n.BundleID != v.cfg.BundleID {
		return nil, invalid(ReasonBundle, "notification bundle id %q, want %q", n.BundleID, v.cfg.BundleID)
	}
	if n.Environment, err = v.checkEnvironment(rawEnv, opt); err != nil {
		return nil, err
	}
	if n.Environment == EnvProduction && n.AppAppleID != v.cfg.AppAppleID {
		return nil, invalid(ReasonBundle, "notification app apple id %d, want %d", n.AppAppleID, v.cfg.AppAppleID)
	}
	if c.Data == nil {
		return n, nil
	}
	if s := c.Data.SignedTransactionInfo; s != "" {
		if n.Purchase, err = v.VerifyTransaction(s, opt); err != nil {
			return nil, fmt.Errorf("signedTransactionInfo: %w", err)
		}
		if n.Purchase.Environment != n.Environment {
			return nil, invalid(ReasonEnvironment, "transaction environment %s inside a %s notification", n.Purchase.Environment, n.Environment)
		}
		if st := appleStatus(c.Data.Status); st != "" && n.Purchase.Type == ProductAutoRenewable {
			n.Purchase.SubscriptionState = st
		}
	}
	if s := c.Data.SignedRenewalInfo; s != "" {
		if n.Renewal, err = v.VerifyRenewalInfo(s, opt); err != nil {
			return nil, fmt.Errorf("signedRenewalInfo: %w", err)
		}
		if n.Renewal.Environment != n.Environment {
			return nil, invalid(ReasonEnvironment, "renewal info environment %s inside a %s notification", n.Renewal.Environment, n.Environment)
		}
	}
	return n, nil
}

func appleStatus(s appstore.AutoRenewableSubscriptionStatus) string {
	switch s {
	case appstore.AutoRenewableSubscriptionStatusActive:
		return SubActive
	case appstore.AutoRenewableSubscriptionStatusExpired:
		return SubExpired
	case appstore.AutoRenewableSubscriptionStatusBillingRetryPeriod:
		return SubBillingRetry
	case appstore.AutoRenewableSubscriptionStatusBillingGracePeriod:
		return SubGracePeriod
	case appstore.AutoRenewableSubscriptionStatusRevoked:
		return SubRevoked
	}
	return ""
}
