package stores

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
)

// Verifiers are the store verifiers and clients in use. A nil field
// disables what it serves: such requests fail with *DisabledError.
type Verifiers struct {
	// Apple verifies StoreKit 2 signed transactions and App Store Server
	// Notifications v2 (against Apple's roots, or the fake store's).
	Apple *receipts.AppleVerifier
	// AppleAPI, when set, confirms each StoreKit 2 signed transaction of its
	// environment with the App Store Server API after local verification, so
	// a transaction refunded or revoked since the device signed it is
	// refused. (A tester's sandbox purchase in a production deployment is
	// not confirmed: the production API does not know it.)
	AppleAPI *receipts.AppleServerAPI
	// AppleLegacy verifies original-StoreKit app receipts with verifyReceipt.
	AppleLegacy *receipts.AppleLegacy
	// Google verifies, acknowledges and consumes Google Play purchases.
	Google *receipts.GooglePlay
	// GooglePush authenticates Pub/Sub pushes of real-time developer
	// notifications; Google notifications also need Google.
	GooglePush *receipts.PushAuthenticator
}

// Enabled reports whether any store is configured.
func (v Verifiers) Enabled() bool {
	return v.Apple != nil || v.AppleLegacy != nil || v.Google != nil
}

// DisabledError refuses a request for a store this deployment does not
// accept; Detail says which setting enables it.
type DisabledError struct{ Detail string }

func (e *DisabledError) Error() string { return "stores: disabled: " + e.Detail }

func disabled(detail string) error { return &DisabledError{Detail: detail} }

// Service redeems purchases and receives notifications; Worker acts on them.
type Service struct {
	v       Verifiers
	ledger  *entitlements.Ledger
	live    *catalog.Live
	testers map[string]struct{}
	log     *slog.Logger
}

// Config is what a Service needs beside the verifiers.
type Config struct {
	Ledger *entitlements.Ledger
	Live   *catalog.Live
	// Testers are the player ids whose sandbox purchases a production
	// deployment accepts.
	Testers []string
	Logger  *slog.Logger
}

// New returns a Service.
func New(v Verifiers, cfg Config) *Service {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{v: v, ledger: cfg.Ledger, live: cfg.Live, testers: map[string]struct{}{}, log: cfg.Logger}
	for _, id := range cfg.Testers {
		s.testers[id] = struct{}{}
	}
	return s
}

// Verifiers returns the verifiers the service uses.
func (s *Service) Verifiers() Verifiers { return s.v }

// playerAccountNamespace is the UUID namespace of AppAccountToken: the
// RFC 4122 URL namespace, with names "urn:coinop:player:<player id>".
var playerAccountNamespace = uuid.NameSpaceURL

// AppAccountToken is the UUID a game attaches to a store purchase for
// playerID (StoreKit's appAccountToken, or Google Play's
// obfuscatedExternalAccountId): UUIDv5 in the URL namespace of
// "urn:coinop:player:<playerID>". A purchase carrying a token is accepted
// only from the player whose id is the token or whose AppAccountToken it is.
func AppAccountToken(playerID string) string {
	return uuid.NewSHA1(playerAccountNamespace, []byte("urn:coinop:player:"+playerID)).String()
}

// Receipt is what a player hands in: exactly one of the three forms.
type Receipt struct {
	SignedTransaction string // apple, StoreKit 2
	AppReceipt        string // apple, original StoreKit app receipt
	ProductID         string // google
	PurchaseToken     string // google
}

// Redemption is the result of redeeming one store transaction.
type Redemption struct {
	Purchase receipts.Purchase
	Outcome  entitlements.Outcome
	// Err is set when this transaction was not granted.
	Err error
}

// Redeem verifies a store purchase, then records and grants it once.
// No database connection is held while a store is called. It returns one
// Redemption per store transaction (an app receipt may hold several, each
// with its own Err); the error is for the request as a whole: a failed
// verification, a disabled store, or a single purchase that failed.
func (s *Service) Redeem(ctx context.Context, player string, in Receipt) (rs []Redemption, legacy bool, err error) {
	opt := receipts.VerifyOptions{AllowSandbox: s.isTester(player)}
	var purchases []receipts.Purchase
	switch {
	case in.SignedTransaction != "":
		if s.v.Apple == nil {
			return nil, false, disabled("This server does not accept App Store purchases (COINOP_STORES).")
		}
		p, err := s.v.Apple.VerifyTransaction(in.SignedTransaction, opt)
		if err != nil {
			return nil, false, err
		}
		if s.v.AppleAPI != nil && p.Environment == s.v.AppleAPI.Environment() {
			if p, err = s.v.AppleAPI.Confirm(ctx, p.TransactionID, opt); err != nil {
				return nil, false, err
			}
		}
		purchases = []receipts.Purchase{*p}
	case in.AppReceipt != "":
		if s.v.AppleLegacy == nil {
			return nil, false, disabled("This server does not accept App Store app receipts (COINOP_STORES must include apple).")
		}
		ps, err := s.v.AppleLegacy.VerifyReceipt(ctx, in.AppReceipt, opt)
		if err != nil {
			return nil, false, err
		}
		if len(ps) == 0 {
			return nil, false, &receipts.InvalidError{Reason: receipts.ReasonState, Detail: "the receipt holds no in-app purchase"}
		}
		purchases, legacy = ps, true
	default:
		if s.v.Google == nil {
			return nil, false, disabled("This server does not accept Google Play purchases (COINOP_STORES).")
		}
		p, err := s.verifyGoogle(ctx, in.ProductID, in.PurchaseToken, opt)
		if receipts.IsPending(err) {
			// Remember who presented it: Play's ONE_TIME_PRODUCT_PURCHASED
			// notification grants it to them when the payment completes.
			if rerr := s.ledger.RememberPendingPurchase(ctx, string(receipts.StoreGoogle), in.PurchaseToken, in.ProductID, player); rerr != nil {
				return nil, false, rerr
			}
		}
		if err != nil {
			return nil, false, err
		}
		purchases = []receipts.Purchase{*p}
	}
	rs = make([]Redemption, 0, len(purchases))
	for i := range purchases {
		p := &purchases[i]
		out, err := s.redeem(ctx, player, p)
		if err != nil && !legacy {
			return nil, false, err
		}
		rs = append(rs, Redemption{Purchase: *p, Outcome: out, Err: err})
	}
	return rs, legacy, nil
}

// verifyGoogle verifies a Google Play token as a one-time product first and,
// when Play does not know it as one, as a subscription.
func (s *Service) verifyGoogle(ctx context.Context, productID, token string, opt receipts.VerifyOptions) (*receipts.Purchase, error) {
	p, err := s.v.Google.VerifyProduct(ctx, productID, token, opt)
	if receipts.ReasonOf(err) != receipts.ReasonSignature {
		return p, err
	}
	sub, subErr := s.v.Google.VerifySubscription(ctx, productID, token, opt)
	if receipts.ReasonOf(subErr) == receipts.ReasonSignature {
		return nil, err // unknown either way: report the product lookup
	}
	return sub, subErr
}

// redeem checks a verified purchase against the player and records and
// grants it; Google purchases are then acknowledged or consumed, best effort
// (the store worker retries what is left).
func (s *Service) redeem(ctx context.Context, player string, p *receipts.Purchase) (entitlements.Outcome, error) {
	if err := checkAccount(p, player); err != nil {
		return entitlements.Outcome{}, err
	}
	if p.RevokedAt != nil {
		return entitlements.Outcome{}, &receipts.InvalidError{Reason: receipts.ReasonState, Detail: "the store refunded or revoked this purchase"}
	}
	sp := s.storePurchase(p)
	out, err := s.ledger.Redeem(ctx, player, sp)
	if err != nil {
		return out, err
	}
	if p.Store == receipts.StoreGoogle && !out.Replayed {
		s.settleGoogle(ctx, p, sp.Consumable)
		// An upgrade or resubscription replaces the subscription it names.
		if err := s.endReplacedGoogle(ctx, player, p); err != nil {
			s.log.Warn("ending the replaced google subscription failed; the next notification retries", slog.Any("error", err))
		}
	}
	return out, nil
}

// checkAccount accepts a purchase without an account token, or one whose
// token is the player id or AppAccountToken(player).
func checkAccount(p *receipts.Purchase, player string) error {
	want := player
	if p.AppAccountToken != "" && strings.EqualFold(p.AppAccountToken, AppAccountToken(player)) {
		want = p.AppAccountToken
	}
	return p.CheckAccount(want, false)
}

func (s *Service) isTester(player string) bool {
	_, ok := s.testers[player]
	return ok
}

// storePurchase is the ledger's view of a verified purchase.
func (s *Service) storePurchase(p *receipts.Purchase) entitlements.StorePurchase {
	sp := entitlements.StorePurchase{
		Store:                 string(p.Store),
		Environment:           string(p.Environment),
		TransactionID:         p.TransactionID,
		OriginalTransactionID: p.OriginalTransactionID,
		ProductID:             p.ProductID,
		Quantity:              p.Quantity,
		PurchasedAt:           p.PurchasedAt,
		ExpiresAt:             p.ExpiresAt,
		PurchaseToken:         p.PurchaseToken,
		PriceMilli:            p.PriceMilli,
		Currency:              p.Currency,
	}
	if p.Store == receipts.StoreGoogle {
		sp.Consumable = consumable(s.live.Current(), p)
	}
	return sp
}

// consumable reports whether a Google purchase is consumed rather than
// acknowledged: a one-time catalog store product that grants only
// currencies and consumable items, so the player can buy it again.
func consumable(snap *catalog.Snapshot, p *receipts.Purchase) bool {
	if snap == nil || p.ExpiresAt != nil || p.Type == receipts.ProductAutoRenewable || p.Type == receipts.ProductNonRenewing {
		return false
	}
	sp, ok := snap.StoreProduct(string(p.Store), p.ProductID)
	if !ok {
		return false
	}
	for id := range sp.Grants.Items {
		if it, ok := snap.Item(id); !ok || it.Kind != catalog.KindConsumable {
			return false
		}
	}
	return true
}

// ackTimeout bounds the acknowledgement made right after a grant.
const ackTimeout = 5 * time.Second

// settleGoogle acknowledges or consumes a granted Google purchase and
// records that it did. Failures are logged: the purchase stays in
// PendingAcknowledgements for the store worker.
func (s *Service) settleGoogle(ctx context.Context, p *receipts.Purchase, consumable bool) {
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if err := s.settle(ctx, p, consumable); err != nil {
		s.log.WarnContext(ctx, "google purchase not acknowledged yet; the store worker will retry",
			slog.String("transaction_id", p.TransactionID), slog.Any("error", err))
	}
}

func (s *Service) settle(ctx context.Context, p *receipts.Purchase, consumable bool) error {
	var err error
	switch {
	case consumable:
		err = s.v.Google.Consume(ctx, p)
	case !p.Acknowledged:
		err = s.v.Google.Acknowledge(ctx, p)
	}
	if err != nil {
		return err
	}
	return s.ledger.MarkAcknowledged(ctx, string(p.Store), p.TransactionID)
}
