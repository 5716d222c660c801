package entitlements

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Code names a business rejection. Rejections are stored with the
// idempotency key and replayed unchanged, so codes are part of the API.
type Code string

const (
	CodeItemNotFound    Code = "item_not_found"
	CodeItemUnavailable Code = "item_unavailable"
	CodePriceMismatch   Code = "price_mismatch"
	// CodeCurrencyNotOffered: the item has no price in the requested
	// currency (price_mismatch is for a price that changed).
	CodeCurrencyNotOffered Code = "currency_not_offered"
	CodeInsufficientFunds  Code = "insufficient_funds"
	CodeAlreadyOwned       Code = "already_owned"
	CodeLimitExceeded      Code = "limit_exceeded"
)

// Rejection is a business refusal: the request was well formed but cannot be
// honoured (not enough gold, already owned, ...). Detail carries the facts the
// client needs, such as the current prices after a price_mismatch.
type Rejection struct {
	Code     Code
	Detail   json.RawMessage
	Replayed bool
}

func (r *Rejection) Error() string { return "entitlements: rejected: " + string(r.Code) }

// InvalidError reports a malformed request: it is never stored, so a
// corrected retry with the same idempotency key is accepted.
type InvalidError struct {
	Field   string
	Message string
}

func (e *InvalidError) Error() string {
	return fmt.Sprintf("entitlements: invalid %s: %s", e.Field, e.Message)
}

var (
	// ErrIdempotencyKeyReused means the key was used before with a different request.
	ErrIdempotencyKeyReused = errors.New("entitlements: idempotency key reused with a different request")
	// ErrIdempotencyKeyInUse means a request with the same key is still running.
	ErrIdempotencyKeyInUse = errors.New("entitlements: idempotency key in use by a concurrent request")
	// ErrNoCatalog means nothing can be sold because no catalog is published.
	ErrNoCatalog = errors.New("entitlements: no catalog published")
)

// Codes of a key's limits (LimitError).
const (
	// CodeAssetNotAllowed: the key may not move this currency or item.
	CodeAssetNotAllowed Code = "asset_not_allowed"
	// CodePostingTooLarge: one asset's amount is above the key's most per
	// posting.
	CodePostingTooLarge Code = "posting_too_large"
	// CodeBudgetExceeded: the posting would give more of a currency than
	// the key's hourly budget has left.
	CodeBudgetExceeded Code = "budget_exceeded"
)

// LimitError is a posting refused by the limits of the key that sent it.
// It is never stored with the idempotency key: the same request succeeds
// once the limit allows it (budget_exceeded: after ResetsAt).
type LimitError struct {
	Code      Code
	AssetType string
	AssetID   string
	// Limit is the most allowed (per posting or per hour); Requested what
	// the posting asked for; Used what the hour's budget has spent.
	Limit, Requested, Used int64
	// ResetsAt is when the budget's window ends (budget_exceeded only).
	ResetsAt time.Time
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("entitlements: key limit: %s (%s %s)", e.Code, e.AssetType, e.AssetID)
}
