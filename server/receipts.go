package server

import (
	"encoding/json"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/stores"
)

// Stores are the store verifiers the server uses (see stores.Verifiers).
type Stores = stores.Verifiers

// receiptBodyLimit bounds a POST /v1/receipts body: an app receipt holding a
// long purchase history is far larger than any other player request.
const receiptBodyLimit = 1 << 20

// AppAccountToken is stores.AppAccountToken, kept here for callers of the
// server package.
func AppAccountToken(playerID string) string { return stores.AppAccountToken(playerID) }

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
func (s *Server) postReceipt(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	in, err := parseReceipt(c.Body())
	if err != nil {
		return err
	}
	rs, legacy, err := s.stores.Redeem(c.UserContext(), playerID(c),
		stores.Receipt{SignedTransaction: in.SignedTransaction, AppReceipt: in.Receipt, ProductID: in.ProductID, PurchaseToken: in.PurchaseToken})
	if err != nil {
		return err
	}
	resp := receiptResponse{Redemptions: make([]json.RawMessage, 0, len(rs))}
	granted, replayed := 0, 0
	var firstFailure error
	for _, r := range rs {
		if r.Err != nil {
			pr := problemFor(r.Err)
			// Any entry of an app receipt failing for a reason other than
			// the entry itself fails the request.
			if !legacy || pr.Status >= 500 {
				return r.Err
			}
			if firstFailure == nil {
				firstFailure = r.Err
			}
			p := r.Purchase
			entry := map[string]any{"result": pr.Code, "store": string(p.Store), "transaction_id": p.TransactionID, "product_id": p.ProductID}
			if r, ok := pr.extension("reason"); ok {
				entry["reason"] = r
			}
			b, _ := json.Marshal(entry)
			resp.Redemptions = append(resp.Redemptions, b)
			continue
		}
		result := resultGranted
		if r.Outcome.Replayed {
			result = resultAlreadyRedeemed
			replayed++
		} else {
			granted++
		}
		resp.Redemptions = append(resp.Redemptions, withResult(r.Outcome.Body, result))
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
