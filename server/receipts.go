package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
)

// Stores are the store verifiers the server uses. A nil field disables what
// it serves: such requests get 404 store_disabled.
type Stores struct {
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
func (s Stores) Enabled() bool {
	return s.Apple != nil || s.AppleLegacy != nil || s.Google != nil
}

// receiptBodyLimit bounds a POST /v1/receipts body: an app receipt holding a
// long purchase history is far larger than any other player request.
const receiptBodyLimit = 1 << 20

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

// receiptInput is a decoded POST /v1/receipts body: exactly one form.
type receiptInput struct {
	Store             string
	SignedTransaction string // apple, StoreKit 2
	Receipt           string // apple, original StoreKit app receipt
	ProductID         string // google
	PurchaseToken     string // google
}

type receiptBody struct {
	Store             *string `json:"store"`
	SignedTransaction *string `json:"signed_transaction"`
	Receipt           *string `json:"receipt"`
	ProductID         *string `json:"product_id"`
	PurchaseToken     *string `json:"purchase_token"`
}

// parseReceipt decodes a receipt body strictly: "store" and the fields of
// exactly one form, each a non-empty string.
func parseReceipt(body []byte) (receiptInput, error) {
	var b receiptBody
	if err := decodeStrict(body, &b); err != nil {
		return receiptInput{}, err
	}
	if b.Store == nil {
		return receiptInput{}, missing("store")
	}
	fields := []struct {
		name string
		v    *string
	}{{"signed_transaction", b.SignedTransaction}, {"receipt", b.Receipt}, {"product_id", b.ProductID}, {"purchase_token", b.PurchaseToken}}
	for _, f := range fields {
		if f.v != nil && *f.v == "" {
			return receiptInput{}, invalid("Field \"" + f.name + "\" must not be empty.")
		}
	}
	in := receiptInput{Store: *b.Store}
	switch in.Store {
	case "apple":
		if b.ProductID != nil || b.PurchaseToken != nil {
			return receiptInput{}, invalid(`An Apple receipt takes "signed_transaction" or "receipt", not "product_id" or "purchase_token".`)
		}
		switch {
		case b.SignedTransaction != nil && b.Receipt != nil:
			return receiptInput{}, invalid(`Send either "signed_transaction" or "receipt", not both.`)
		case b.SignedTransaction != nil:
			in.SignedTransaction = *b.SignedTransaction
		case b.Receipt != nil:
			in.Receipt = *b.Receipt
		default:
			return receiptInput{}, invalid(`An Apple receipt needs "signed_transaction" (StoreKit 2) or "receipt" (app receipt).`)
		}
	case "google":
		if b.SignedTransaction != nil || b.Receipt != nil {
			return receiptInput{}, invalid(`A Google Play purchase takes "product_id" and "purchase_token", not "signed_transaction" or "receipt".`)
		}
		switch {
		case b.ProductID == nil:
			return receiptInput{}, missing("product_id")
		case b.PurchaseToken == nil:
			return receiptInput{}, missing("purchase_token")
		}
		in.ProductID, in.PurchaseToken = *b.ProductID, *b.PurchaseToken
	default:
		return receiptInput{}, invalid(`Field "store" must be "apple" or "google".`)
	}
	return in, nil
}

func storeDisabled(detail string) problem {
	return newProblem(fiber.StatusNotFound, codeStoreDisabled, detail)
}

// Results of one redeemed transaction in a POST /v1/receipts answer.
const (
	resultGranted         = "granted"
	resultAlreadyRedeemed = "receipt_already_redeemed"
)

// receiptResponse answers POST /v1/receipts: one redemption per store
// transaction (a legacy app receipt may hold several).
type receiptResponse struct {
	Result      string            `json:"result"`
	Redemptions []json.RawMessage `json:"redemptions"`
}

// postReceipt verifies a store purchase, then records and grants it once.
// No database connection is held while a store is called.
func (s *Server) postReceipt(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	in, err := parseReceipt(c.Body())
	if err != nil {
		return err
	}
	ctx, player := c.UserContext(), playerID(c)
	opt := receipts.VerifyOptions{AllowSandbox: s.isTester(player)}

	var purchases []receipts.Purchase
	legacy := false
	switch {
	case in.SignedTransaction != "":
		if s.stores.Apple == nil {
			return storeDisabled("This server does not accept App Store purchases (COINOP_STORES).")
		}
		p, err := s.stores.Apple.VerifyTransaction(in.SignedTransaction, opt)
		if err != nil {
			return err
		}
		if s.stores.AppleAPI != nil && p.Environment == s.stores.AppleAPI.Environment() {
			if p, err = s.stores.AppleAPI.Confirm(ctx, p.TransactionID, opt); err != nil {
				return err
			}
		}
		purchases = []receipts.Purchase{*p}
	case in.Receipt != "":
		if s.stores.AppleLegacy == nil {
			return storeDisabled("This server does not accept App Store app receipts (COINOP_STORES must include apple).")
		}
		ps, err := s.stores.AppleLegacy.VerifyReceipt(ctx, in.Receipt, opt)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return &receipts.InvalidError{Reason: receipts.ReasonState, Detail: "the receipt holds no in-app purchase"}
		}
		purchases, legacy = ps, true
	default:
		if s.stores.Google == nil {
			return storeDisabled("This server does not accept Google Play purchases (COINOP_STORES).")
		}
		p, err := s.verifyGoogle(ctx, in.ProductID, in.PurchaseToken, opt)
		if err != nil {
			return err
		}
		purchases = []receipts.Purchase{*p}
	}

	resp := receiptResponse{Redemptions: make([]json.RawMessage, 0, len(purchases))}
	granted, replayed := 0, 0
	var firstFailure error
	for i := range purchases {
		p := &purchases[i]
		out, err := s.redeem(ctx, player, p)
		if err != nil {
			pr := problemFor(err)
			// A single purchase fails as a whole; so does any entry of an
			// app receipt for a reason other than the entry itself.
			if !legacy || pr.Status >= 500 {
				return err
			}
			if firstFailure == nil {
				firstFailure = err
			}
			entry := map[string]any{"result": pr.Code, "store": string(p.Store), "transaction_id": p.TransactionID, "product_id": p.ProductID}
			if r, ok := pr.extension("reason"); ok {
				entry["reason"] = r
			}
			b, _ := json.Marshal(entry)
			resp.Redemptions = append(resp.Redemptions, b)
			continue
		}
		result := resultGranted
		if out.Replayed {
			result = resultAlreadyRedeemed
			replayed++
		} else {
			granted++
		}
		resp.Redemptions = append(resp.Redemptions, withResult(out.Body, result))
	}
	switch {
	case granted > 0:
		resp.Result = resultGranted
		c.Status(fiber.StatusCreated)
	case replayed > 0:
		resp.Result = resultAlreadyRedeemed
		c.Set(headerReplayed, "true")
		c.Status(fiber.StatusOK)
	default:
		// Every entry of the app receipt failed: answer as for its first.
		return problemFor(firstFailure).with("redemptions", resp.Redemptions)
	}
	return c.JSON(resp)
}

// withResult adds "result" to a stored grant body (a JSON object).
func withResult(body json.RawMessage, result string) json.RawMessage {
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(body, &m); err != nil {
		m = map[string]json.RawMessage{}
	}
	m["result"], _ = json.Marshal(result)
	b, _ := json.Marshal(m)
	return b
}

// verifyGoogle verifies a Google Play token as a one-time product first and,
// when Play does not know it as one, as a subscription.
func (s *Server) verifyGoogle(ctx context.Context, productID, token string, opt receipts.VerifyOptions) (*receipts.Purchase, error) {
	p, err := s.stores.Google.VerifyProduct(ctx, productID, token, opt)
	if receipts.ReasonOf(err) != receipts.ReasonSignature {
		return p, err
	}
	sub, subErr := s.stores.Google.VerifySubscription(ctx, productID, token, opt)
	if receipts.ReasonOf(subErr) == receipts.ReasonSignature {
		return nil, err // unknown either way: report the product lookup
	}
	return sub, subErr
}

// redeem checks a verified purchase against the player and records and
// grants it; Google purchases are then acknowledged or consumed, best effort
// (the store worker retries what is left).
func (s *Server) redeem(ctx context.Context, player string, p *receipts.Purchase) (entitlements.Outcome, error) {
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

func (s *Server) isTester(player string) bool {
	_, ok := s.testers[player]
	return ok
}

// storePurchase is the ledger's view of a verified purchase.
func (s *Server) storePurchase(p *receipts.Purchase) entitlements.StorePurchase {
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
func (s *Server) settleGoogle(ctx context.Context, p *receipts.Purchase, consumable bool) {
	ctx, cancel := context.WithTimeout(ctx, ackTimeout)
	defer cancel()
	if err := s.settle(ctx, p, consumable); err != nil {
		s.log.WarnContext(ctx, "google purchase not acknowledged yet; the store worker will retry",
			slog.String("transaction_id", p.TransactionID), slog.Any("error", err))
	}
}

func (s *Server) settle(ctx context.Context, p *receipts.Purchase, consumable bool) error {
	var err error
	switch {
	case consumable:
		err = s.stores.Google.Consume(ctx, p)
	case !p.Acknowledged:
		err = s.stores.Google.Acknowledge(ctx, p)
	}
	if err != nil {
		return err
	}
	return s.ledger.MarkAcknowledged(ctx, string(p.Store), p.TransactionID)
}
