package server

// Support refunds a purchase made with virtual currency: one domain call,
// entitlements.Ledger.RefundPurchase.

import (
	"errors"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/entitlements"
)

type purchaseRefundBody struct {
	Reason *string `json:"reason"`
	// Quantity is how many of the purchase's units to refund; absent: all
	// not refunded yet.
	Quantity *int64 `json:"quantity"`
	// Policy is what to do with granted items or currency the player no
	// longer holds: clamp (default), negative or flag.
	Policy *string `json:"policy"`
}

func parsePurchaseRefund(body []byte) (purchaseRefundBody, error) {
	var b purchaseRefundBody
	if err := decodeStrict(body, &b); err != nil {
		return b, err
	}
	if b.Reason == nil {
		return b, missing("reason")
	}
	if b.Quantity != nil && (*b.Quantity < 1 || *b.Quantity > entitlements.MaxQuantity) {
		return b, invalid("quantity must be from 1 to " + strconv.Itoa(entitlements.MaxQuantity) + "; leave it out to refund all that is left.")
	}
	return b, nil
}

// postPurchaseRefund refunds units of one of the player's purchases.
func (s *Server) postPurchaseRefund(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	txID, err := strconv.ParseInt(c.Params("transaction_id"), 10, 64)
	if err != nil || txID < 1 {
		return invalid("transaction_id in the path must be the purchase's ledger transaction id (a positive integer).")
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	b, err := parsePurchaseRefund(c.Body())
	if err != nil {
		return err
	}
	req := entitlements.PurchaseRefundRequest{
		PlayerID:       player,
		IdempotencyKey: key,
		TransactionID:  txID,
		Reason:         strings.Clone(*b.Reason),
		Actor:          actor(c),
		RequestID:      requestID(c),
	}
	if b.Quantity != nil {
		req.Quantity = *b.Quantity
	}
	if b.Policy != nil {
		req.Policy = entitlements.ClawbackPolicy(strings.Clone(*b.Policy))
	}
	out, err := s.ledger.RefundPurchase(c.UserContext(), req)
	return s.respondIdempotent(c, out, err)
}

// Problem codes of purchase refunds.
const (
	codePurchaseNotFound        = string(entitlements.CodePurchaseNotFound)
	codePurchaseOfAnotherPlayer = string(entitlements.CodePurchaseOfAnotherPlayer)
	codeNotAPurchase            = string(entitlements.CodeNotAPurchase)
	codeRefundExceedsPurchase   = string(entitlements.CodeRefundExceedsPurchase)
	codePurchaseRefunded        = string(entitlements.CodePurchaseAlreadyRefunded)
)

var refundTitles = map[string]string{
	codePurchaseNotFound:        "Purchase not found",
	codePurchaseOfAnotherPlayer: "Purchase of another player",
	codeNotAPurchase:            "Not a purchase",
	codeRefundExceedsPurchase:   "Refund exceeds the purchase",
	codePurchaseRefunded:        "Purchase already refunded",
}

func init() {
	for code, title := range refundTitles {
		titles[code] = title
	}
}

// refundProblem maps an *entitlements.RefundError to its problem; ok is
// false for any other error.
func refundProblem(err error) (problem, bool) {
	var re *entitlements.RefundError
	if !errors.As(err, &re) {
		return problem{}, false
	}
	var p problem
	switch re.Code {
	case entitlements.CodePurchaseNotFound:
		p = newProblem(fiber.StatusNotFound, codePurchaseNotFound, "No ledger transaction has this id.")
	case entitlements.CodePurchaseOfAnotherPlayer:
		p = newProblem(fiber.StatusUnprocessableEntity, codePurchaseOfAnotherPlayer,
			"The ledger transaction is another player's; nothing was refunded.")
	case entitlements.CodeNotAPurchase:
		p = newProblem(fiber.StatusUnprocessableEntity, codeNotAPurchase,
			"The ledger transaction is not a purchase made with virtual currency (POST /v1/purchases); nothing was refunded.")
	case entitlements.CodeRefundExceedsPurchase:
		p = newProblem(fiber.StatusConflict, codeRefundExceedsPurchase,
			"The refund asks for more units than are left to refund; nothing was refunded.")
	case entitlements.CodePurchaseAlreadyRefunded:
		p = newProblem(fiber.StatusConflict, codePurchaseRefunded, "Every unit of the purchase was refunded already.")
	default:
		return problem{}, false
	}
	p = p.with("transaction_id", re.TransactionID)
	if re.Purchased > 0 {
		p = p.with("purchased_quantity", re.Purchased).with("refunded_quantity", re.Refunded).
			with("requested_quantity", re.Requested)
	}
	return p, true
}
