package receipts

import (
	"errors"
	"fmt"
	"time"
)

// Store names the store a purchase was made in.
type Store string

// Stores.
const (
	StoreApple  Store = "apple"
	StoreGoogle Store = "google"
)

// Environment is where a purchase was made: real money in production,
// tester accounts in sandbox (Apple Sandbox, Google Play license testers),
// or StoreKit testing in Xcode, which no store signs.
type Environment string

// Environments.
const (
	EnvProduction Environment = "production"
	EnvSandbox    Environment = "sandbox"
	EnvXcode      Environment = "xcode"
)

// ProductType is the kind of product as the store reports it. Google Play
// does not tell consumables from non-consumables, and legacy Apple receipts
// tell only subscriptions apart, so ProductUnknown means "the catalog
// decides".
type ProductType string

// Product types.
const (
	ProductUnknown       ProductType = ""
	ProductConsumable    ProductType = "consumable"
	ProductNonConsumable ProductType = "non_consumable"
	ProductAutoRenewable ProductType = "auto_renewable"
	ProductNonRenewing   ProductType = "non_renewing"
)

// Subscription states reported in Purchase.SubscriptionState.
const (
	SubActive       = "active"
	SubGracePeriod  = "grace_period"
	SubBillingRetry = "billing_retry" // Apple billing retry, Google account hold: no access
	SubPaused       = "paused"
	SubCanceled     = "canceled" // will not renew; access until ExpiresAt
	SubExpired      = "expired"
	SubRevoked      = "revoked"
)

// Purchase is one verified purchase, the same shape for every store.
type Purchase struct {
	Store       Store
	Environment Environment

	// TransactionID is unique per store: the record of this purchase is keyed
	// by (Store, TransactionID). Apple transactionId; Google orderId.
	TransactionID string
	// OriginalTransactionID is shared by all renewals of one subscription
	// (Apple originalTransactionId; Google orderId without its "..N" suffix).
	OriginalTransactionID string
	ProductID             string
	Quantity              int64
	PurchasedAt           time.Time
	// PriceMilli and Currency are what the player paid, in milliunits of
	// the ISO 4217 Currency, where the store says it (Apple's price and
	// currency); 0 and "" when unknown.
	PriceMilli int64
	Currency   string
	ExpiresAt  *time.Time // subscriptions

	// RevokedAt is set when the store refunded or revoked the purchase.
	RevokedAt        *time.Time
	RevocationReason string
	// RevokedShare is the part of the purchase the store took back, in
	// millionths (1_000_000 is all of it; the default when RevokedAt is
	// set). Apple REFUND_PRORATED sends revocationPercentage in
	// milli-percent (50000 = 50%): 500_000 here. Google's refundable
	// quantity makes it refunded quantity / quantity.
	RevokedShare int64
	// SignedAt is when the store signed this statement of the purchase
	// (Apple: the transaction's signedDate); zero when unknown. Revocation
	// fields of a later statement supersede an earlier one's.
	SignedAt time.Time
	// RefundedQuantity is, for a Google quantity-based partial refund, how
	// many of Quantity have been refunded so far (RevokedShare is this over
	// Quantity).
	RefundedQuantity int64
	// LinkedPurchaseToken is, for a Google subscription bought as an
	// upgrade, downgrade or resubscription, the token of the purchase it
	// replaces.
	LinkedPurchaseToken string

	OwnershipType string // PURCHASED | FAMILY_SHARED (Apple)
	// AppAccountToken is the account id the game attached to the purchase:
	// Apple appAccountToken, Google obfuscatedExternalAccountId. The caller
	// compares it with the player making the request.
	AppAccountToken string
	Type            ProductType

	PurchaseToken string // Google
	Acknowledged  bool   // Google: already acknowledged, no Acknowledge call needed
	// SubscriptionState is one of the Sub* constants for subscriptions, empty
	// otherwise.
	SubscriptionState string
}

// FullShare is a RevokedShare of everything.
const FullShare int64 = 1_000_000

// Reason says why an input is not a valid purchase.
type Reason string

// Reasons.
const (
	// ReasonSignature: the signature does not verify, the algorithm is not
	// the one the store uses, or the store itself refused to authenticate the
	// receipt or token.
	ReasonSignature Reason = "signature"
	// ReasonChain: the certificate chain is missing, too short, does not lead
	// to a trusted root, lacks Apple's marker OIDs or is not valid at the
	// signing time.
	ReasonChain Reason = "chain"
	// ReasonBundle: made for another app (bundle id, app apple id, package).
	ReasonBundle Reason = "bundle"
	// ReasonEnvironment: made in an environment this server does not accept.
	ReasonEnvironment Reason = "environment"
	// ReasonProduct: not the product the caller asked about.
	ReasonProduct Reason = "product"
	// ReasonState: genuine but not (or no longer) a completed purchase:
	// pending, cancelled.
	ReasonState Reason = "state"
	// ReasonFormat: not decodable, or required fields are missing.
	ReasonFormat Reason = "format"
	// ReasonAccount: the store account is gone or the purchase is not
	// authorized for it.
	ReasonAccount Reason = "account"
)

// InvalidError reports input that is not a valid purchase. Retrying it will
// not help; nothing should be recorded.
type InvalidError struct {
	Reason Reason
	Detail string
}

func (e *InvalidError) Error() string {
	if e.Detail == "" {
		return "receipts: invalid (" + string(e.Reason) + ")"
	}
	return "receipts: invalid (" + string(e.Reason) + "): " + e.Detail
}

func invalid(r Reason, format string, args ...any) error {
	return &InvalidError{Reason: r, Detail: fmt.Sprintf(format, args...)}
}

// ReasonOf returns the Reason of the *InvalidError in err's chain, or "".
func ReasonOf(err error) Reason {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return ""
}

var (
	// ErrStoreUnavailable wraps timeouts, network errors, 5xx answers and the
	// stores' own "try again" statuses. Retry later; record nothing.
	ErrStoreUnavailable = errors.New("receipts: store unavailable")
	// ErrMisconfigured wraps answers that mean our own credentials or
	// settings are wrong (Apple status 21004, Play 401/403). Not the player's
	// fault, and retrying will not help until the configuration is fixed.
	ErrMisconfigured = errors.New("receipts: store refused our configuration")
)

func unavailable(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrStoreUnavailable, fmt.Sprintf(format, args...))
}

// VerifyOptions are decided per request by the caller.
type VerifyOptions struct {
	// AllowSandbox lets a production verifier accept a sandbox (test)
	// purchase, typically because the player is a registered tester. Sandbox
	// verifiers accept only sandbox purchases whatever it says.
	AllowSandbox bool
}

// environmentAllowed is the one environment policy for every store:
// a production deployment accepts production, and sandbox only when allowed
// for this request; a sandbox deployment accepts sandbox; an xcode
// deployment accepts xcode.
func environmentAllowed(configured, got Environment, allowSandbox bool) bool {
	switch configured {
	case EnvProduction:
		return got == EnvProduction || (got == EnvSandbox && allowSandbox)
	case EnvSandbox:
		return got == EnvSandbox
	case EnvXcode:
		return got == EnvXcode
	}
	return false
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func msTimePtr(ms int64) *time.Time {
	if ms <= 0 {
		return nil
	}
	t := msTime(ms)
	return &t
}

// CheckAccount compares the account token the game attached to the purchase
// (Apple appAccountToken, Google obfuscatedExternalAccountId) with want, the token of the
// player presenting it. It returns an *InvalidError with ReasonAccount on a
// mismatch, and when required and the purchase carries none; nil otherwise.
func (p *Purchase) CheckAccount(want string, required bool) error {
	switch {
	case p.AppAccountToken == "" && required:
		return invalid(ReasonAccount, "purchase carries no account token")
	case p.AppAccountToken != "" && p.AppAccountToken != want:
		return invalid(ReasonAccount, "purchase was made for another account")
	}
	return nil
}
