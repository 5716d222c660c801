package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/stores"
	"github.com/coinop/coinop/webhooks"
)

// Problem codes. They are part of the API: clients switch on them, so they
// never change once published.
const (
	codeInvalidRequest        = "invalid_request"
	codeIdempotencyKeyMissing = "idempotency_key_missing"
	codeIdempotencyKeyReused  = "idempotency_key_reused"
	codeIdempotencyKeyInUse   = "idempotency_key_in_use"
	codeUnauthenticated       = "unauthenticated"
	codeForbidden             = "forbidden"
	codeNotFound              = "not_found"
	codeMethodNotAllowed      = "method_not_allowed"
	codeRequestTooLarge       = "request_too_large"
	codeUnsupportedMediaType  = "unsupported_media_type"
	codeCatalogInvalid        = "catalog_invalid"
	codeCatalogNotPublished   = "catalog_not_published"
	codeUnavailable           = "unavailable"
	codeRateLimited           = "rate_limited"
	codeInternal              = "internal"
	// The catalog workflow and admin keys.
	codePreconditionFailed = "precondition_failed"
	codeEntityNotFound     = "catalog_entity_not_found"
	codeVersionNotFound    = "catalog_version_not_found"
	codeScheduleConflict   = "schedule_conflict"
	codeKeyNotFound        = "key_not_found"
	codeKeyNameTaken       = "key_name_taken"
)

// Problem codes of store purchases and notifications.
const (
	codeReceiptInvalid       = "receipt_invalid"
	codeReceiptOwned         = "receipt_owned_by_another_player"
	codeStoreUnavailable     = "store_unavailable"
	codeStoreDisabled        = "store_disabled"
	codeStoreMisconfigured   = "store_misconfigured"
	storeUnavailableRetrySec = "5"
)

// Problem codes of the webhook endpoint routes.
const (
	codeWebhookNotFound = "webhook_not_found"
	codeEventNotFound   = "event_not_found"
	codeInvalidWebhook  = "invalid_webhook"
)

// problem is an RFC 9457 problem detail. Extensions are merged into the top
// level object, as the RFC prescribes, after the standard members and in the
// order they were added, so a problem reads the same on every replay.
type problem struct {
	Type   string
	Title  string
	Status int
	Code   string
	Detail string
	ext    []member
	// oauthError is the RFC 6750 error code a 401 repeats in
	// WWW-Authenticate; it is not part of the body.
	oauthError string
	// retryAt, when set, becomes Retry-After (a key's budget frees then).
	retryAt time.Time
}

// member is one extension member; a json.RawMessage value is written as
// its (compacted) bytes.
type member struct {
	key   string
	value any
}

// standardMembers are the RFC 9457 members (and coinop's code) that an
// extension may never replace.
var standardMembers = map[string]bool{"type": true, "title": true, "status": true, "code": true, "detail": true, "instance": true}

// MarshalJSON writes the problem with the same encoder as every other body
// (encodeJSON): compact, HTML-safe, members in a fixed order.
func (p problem) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	field := func(key string, value any) error {
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		k, _ := encodeJSON(key)
		b.Write(k)
		b.WriteByte(':')
		if raw, ok := value.(json.RawMessage); ok {
			return json.Compact(&b, raw)
		}
		v, err := encodeJSON(value)
		b.Write(v)
		return err
	}
	b.WriteByte('{')
	must := []error{
		field("type", "urn:coinop:problem:"+p.Code),
		field("title", p.Title),
		field("status", p.Status),
		field("code", p.Code),
	}
	if p.Detail != "" {
		must = append(must, field("detail", p.Detail))
	}
	for _, m := range p.ext {
		must = append(must, field(m.key, m.value))
	}
	b.WriteByte('}')
	return b.Bytes(), errors.Join(must...)
}

func (p problem) Error() string { return p.Code + ": " + p.Detail }

func newProblem(status int, code, detail string) problem {
	return problem{Status: status, Code: code, Title: titleFor(code, status), Detail: detail}
}

// with returns p with the extension key set to value (replaced in place if
// p already has it).
func (p problem) with(key string, value any) problem {
	if standardMembers[key] {
		return p
	}
	ext := make([]member, 0, len(p.ext)+1)
	replaced := false
	for _, m := range p.ext {
		if m.key == key {
			m.value, replaced = value, true
		}
		ext = append(ext, m)
	}
	if !replaced {
		ext = append(ext, member{key, value})
	}
	p.ext = ext
	return p
}

// extension returns the value of one extension member.
func (p problem) extension(key string) (any, bool) {
	for _, m := range p.ext {
		if m.key == key {
			return m.value, true
		}
	}
	return nil, false
}

// objectMembers splits a JSON object into its members, in order, values
// kept as raw bytes (so amounts above 2^53 stay exact).
func objectMembers(raw []byte) ([]member, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, false
	}
	var out []member
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		out = append(out, member{key, v})
	}
	return out, true
}

// encodeJSON is the one JSON encoder of every response body, success or
// problem (fiber's JSONEncoder is set to it).
func encodeJSON(v any) ([]byte, error) { return json.Marshal(v) }

var titles = map[string]string{
	codeInvalidRequest:                          "Invalid request",
	codeIdempotencyKeyMissing:                   "Idempotency-Key header required",
	codeIdempotencyKeyReused:                    "Idempotency key reused with a different request",
	codeIdempotencyKeyInUse:                     "A request with this idempotency key is in progress",
	codeUnauthenticated:                         "Authentication required",
	codeForbidden:                               "Forbidden",
	codeNotFound:                                "Not found",
	codeMethodNotAllowed:                        "Method not allowed",
	codeRequestTooLarge:                         "Request too large",
	codeUnsupportedMediaType:                    "Unsupported media type",
	codeCatalogInvalid:                          "Catalog invalid",
	codeCatalogNotPublished:                     "No catalog published",
	codeUnavailable:                             "Service unavailable",
	codeInternal:                                "Internal error",
	codeReceiptInvalid:                          "Receipt invalid",
	codeReceiptOwned:                            "Receipt redeemed by another player",
	codeStoreUnavailable:                        "Store unavailable",
	codeStoreDisabled:                           "Store not enabled",
	codeStoreMisconfigured:                      "Store configuration refused",
	codePreconditionFailed:                      "Precondition failed",
	codeEntityNotFound:                          "Catalog entity not found",
	codeVersionNotFound:                         "Catalog version not found",
	codeScheduleConflict:                        "Scheduled version would be superseded",
	codeKeyNotFound:                             "Key not found",
	codeKeyNameTaken:                            "Key name already used",
	codeWebhookNotFound:                         "Webhook endpoint not found",
	codeEventNotFound:                           "Event not found",
	codeInvalidWebhook:                          "Webhook setting refused",
	string(entitlements.CodeItemNotFound):       "Item not found",
	string(entitlements.CodeItemUnavailable):    "Item not available now",
	string(entitlements.CodePriceMismatch):      "Price changed",
	string(entitlements.CodeCurrencyNotOffered): "Not sold in this currency",
	string(entitlements.CodeInsufficientFunds):  "Insufficient funds",
	string(entitlements.CodeAlreadyOwned):       "Already owned",
	string(entitlements.CodeLimitExceeded):      "Limit exceeded",
	string(entitlements.CodeAssetNotAllowed):    "Not allowed for this key",
	string(entitlements.CodePostingTooLarge):    "Above this key's most per posting",
	string(entitlements.CodeBudgetExceeded):     "Key budget exhausted",
	string(entitlements.CodeNotConsumable):      "Not consumable by players",
}

func titleFor(code string, status int) string {
	if t, ok := titles[code]; ok {
		return t
	}
	return fiberStatusText(status)
}

func fiberStatusText(status int) string { return fiber.NewError(status).Message }

// rejectionStatus maps stored business rejections to HTTP statuses. Replays
// rebuild the problem from the stored code and detail, so this map must stay
// stable for stored keys to replay identically.
var rejectionStatus = map[entitlements.Code]int{
	entitlements.CodeItemNotFound:       fiber.StatusNotFound,
	entitlements.CodeItemUnavailable:    fiber.StatusConflict,
	entitlements.CodePriceMismatch:      fiber.StatusConflict,
	entitlements.CodeCurrencyNotOffered: fiber.StatusConflict,
	entitlements.CodeInsufficientFunds:  fiber.StatusPaymentRequired,
	entitlements.CodeAlreadyOwned:       fiber.StatusConflict,
	entitlements.CodeLimitExceeded:      fiber.StatusConflict,
	entitlements.CodeNotConsumable:      fiber.StatusConflict,
}

var rejectionDetail = map[entitlements.Code]string{
	entitlements.CodeItemNotFound:       "The catalog has no such item or bundle.",
	entitlements.CodeItemUnavailable:    "The item is outside its availability window.",
	entitlements.CodePriceMismatch:      "The price shown to the player is not the current price; the current prices are included.",
	entitlements.CodeCurrencyNotOffered: "The item is not sold in this currency; the currencies and prices it is sold for are included.",
	entitlements.CodeInsufficientFunds:  "The player's balance does not cover the price.",
	entitlements.CodeAlreadyOwned:       "The player already owns this durable item.",
	entitlements.CodeLimitExceeded:      "The purchase would exceed the most a player may hold.",
	entitlements.CodeNotConsumable:      "The catalog does not let players use this item up themselves (player_consumable).",
}

// problemFor maps any error from a domain call to a problem. It is the only
// place errors become HTTP statuses.
func problemFor(err error) problem {
	var (
		p          problem
		rejection  *entitlements.Rejection
		invalid    *entitlements.InvalidError
		validation *catalog.ValidationError
		parse      *catalog.ParseError
		fe         *fiber.Error
		precond    *catalog.PreconditionError
		schedule   *catalog.ScheduleConflictError
		badOption  *catalog.RequestError
		badAccess  *access.InvalidError
		keyLimit   *entitlements.LimitError
		storeOff   *stores.DisabledError
		badHook    *webhooks.InvalidError
	)
	if cp, ok := creatorProblem(err); ok {
		return cp
	}
	if rp, ok := refundProblem(err); ok {
		return rp
	}
	switch {
	case errors.As(err, &p):
		return p
	case errors.As(err, &storeOff):
		return newProblem(fiber.StatusNotFound, codeStoreDisabled, storeOff.Detail)
	case errors.As(err, &rejection):
		p := newProblem(statusOr(rejectionStatus[rejection.Code], fiber.StatusConflict), string(rejection.Code), rejectionDetail[rejection.Code])
		members, _ := objectMembers(rejection.Detail)
		var assetType, assetID json.RawMessage
		named := false
		for _, m := range members {
			p = p.with(m.key, m.value)
			switch m.key {
			case "item_id":
				named = true
			case "asset_type":
				assetType = m.value.(json.RawMessage)
			case "asset_id":
				assetID = m.value.(json.RawMessage)
			}
		}
		// Every problem names the item it is about as item_id; a rejection
		// about one asset (already_owned, limit_exceeded: for a bundle, the
		// item inside it) once named it only as asset_id, which stays for
		// clients that read it.
		if !named && assetID != nil && string(bytes.TrimSpace(assetType)) == `"item"` {
			p = p.with("item_id", assetID)
		}
		return p
	case errors.As(err, &keyLimit):
		return limitProblem(keyLimit)
	case errors.Is(err, entitlements.ErrUnknownItem):
		return errCheckUnknownItem
	case errors.As(err, &invalid):
		return newProblem(fiber.StatusBadRequest, codeInvalidRequest, invalid.Field+": "+invalid.Message)
	case errors.Is(err, entitlements.ErrIdempotencyKeyReused):
		return newProblem(fiber.StatusUnprocessableEntity, codeIdempotencyKeyReused,
			"This Idempotency-Key was already used with a different request body; use a new key for a new request.")
	case errors.Is(err, entitlements.ErrIdempotencyKeyInUse):
		return newProblem(fiber.StatusConflict, codeIdempotencyKeyInUse,
			"A request with this Idempotency-Key is still being processed; retry shortly.")
	case errors.Is(err, entitlements.ErrNoCatalog), errors.Is(err, catalog.ErrNoCatalog):
		return newProblem(fiber.StatusServiceUnavailable, codeCatalogNotPublished, "No catalog has been published yet.")
	case errors.As(err, &validation):
		return newProblem(fiber.StatusUnprocessableEntity, codeCatalogInvalid,
			fmt.Sprintf("The catalog has %d problem(s).", len(validation.Problems))).with("errors", validation.Problems)
	case errors.As(err, &parse):
		return newProblem(fiber.StatusUnprocessableEntity, codeCatalogInvalid, "The catalog document cannot be read.").
			with("errors", []catalog.Problem{{Path: parse.Path, Message: parse.Error()}})
	case errors.As(err, &precond):
		p := newProblem(fiber.StatusPreconditionFailed, codePreconditionFailed,
			"If-Match does not match: someone changed it since you read it. Read it again, reapply your change and retry.")
		if precond.ETag != "" {
			p = p.with("current_etag", precond.ETag)
		}
		return p
	case errors.Is(err, catalog.ErrEntityNotFound):
		return newProblem(fiber.StatusNotFound, codeEntityNotFound, "The draft has no such entity.")
	case errors.Is(err, catalog.ErrVersionNotFound):
		return newProblem(fiber.StatusNotFound, codeVersionNotFound, "No catalog version has that number.")
	case errors.As(err, &schedule):
		return newProblem(fiber.StatusConflict, codeScheduleConflict,
			"Publishing this would stop scheduled versions from ever going live; send supersede_scheduled to confirm.").
			with("pending_versions", schedule.Pending)
	case errors.As(err, &badOption):
		return newProblem(fiber.StatusBadRequest, codeInvalidRequest, badOption.Field+" "+badOption.Message+".")
	case errors.As(err, &badAccess):
		return newProblem(fiber.StatusBadRequest, codeInvalidRequest, badAccess.Field+": "+badAccess.Message+".")
	case errors.Is(err, access.ErrKeyNotFound):
		return newProblem(fiber.StatusNotFound, codeKeyNotFound, "No key has that name or id.")
	case errors.Is(err, access.ErrNameTaken):
		return newProblem(fiber.StatusConflict, codeKeyNameTaken, "A key with this name exists or existed; names are never reused.")
	case errors.Is(err, access.ErrUnknownKey):
		return errUnknownAPIKey
	case errors.Is(err, webhooks.ErrNotFound):
		return newProblem(fiber.StatusNotFound, codeWebhookNotFound, "No webhook endpoint has that id.")
	case errors.Is(err, webhooks.ErrEventNotFound):
		return newProblem(fiber.StatusNotFound, codeEventNotFound, "No event has that id.")
	case errors.As(err, &badHook):
		return newProblem(fiber.StatusUnprocessableEntity, codeInvalidWebhook, badHook.Field+" "+badHook.Reason+".").
			with("field", badHook.Field)
	case receipts.ReasonOf(err) != "":
		return receiptInvalid(receipts.ReasonOf(err), err)
	case errors.Is(err, entitlements.ErrUnknownStoreProduct):
		return receiptInvalid(receipts.ReasonProduct, err)
	case errors.Is(err, entitlements.ErrStorePurchaseRevoked):
		return receiptInvalid(receipts.ReasonState, err)
	case errors.Is(err, entitlements.ErrReceiptOwnedByAnotherPlayer):
		return newProblem(fiber.StatusConflict, codeReceiptOwned,
			"Another player already redeemed this store transaction; nothing was granted.")
	case errors.Is(err, receipts.ErrStoreUnavailable):
		return newProblem(fiber.StatusServiceUnavailable, codeStoreUnavailable,
			"The store could not confirm the purchase; nothing was recorded. Retry later with the same receipt.")
	case errors.Is(err, receipts.ErrMisconfigured):
		return newProblem(fiber.StatusInternalServerError, codeStoreMisconfigured,
			"The store refused this server's credentials or settings; the operator must fix them.")
	case errors.Is(err, receipts.ErrPushUnauthorized):
		// The reason after the sentinel (no token, expired, wrong issuer,
		// audience or service account) is receipts' own wording, about a
		// token Google signs: telling the pusher does not help a forger.
		why := strings.TrimPrefix(strings.TrimPrefix(err.Error(), receipts.ErrPushUnauthorized.Error()), ": ")
		return unauthenticated(oauthInvalidToken, "The push is not authenticated by the configured service account ("+why+").")
	case badText(err):
		return newProblem(fiber.StatusBadRequest, codeInvalidRequest,
			"Text in the request must be valid UTF-8 without NUL (\\u0000) characters.")
	case errors.As(err, &fe):
		return fiberProblem(fe)
	case unavailable(err):
		return newProblem(fiber.StatusServiceUnavailable, codeUnavailable, "A backing service is unavailable; retry shortly.")
	}
	return newProblem(fiber.StatusInternalServerError, codeInternal, "An unexpected error occurred; the request id identifies it in the logs.")
}

func fiberProblem(fe *fiber.Error) problem {
	switch fe.Code {
	case fiber.StatusNotFound:
		return newProblem(fe.Code, codeNotFound, "No such route.")
	case fiber.StatusMethodNotAllowed:
		return newProblem(fe.Code, codeMethodNotAllowed, "The route does not accept this method.")
	case fiber.StatusRequestEntityTooLarge:
		return newProblem(fe.Code, codeRequestTooLarge, "The request body is larger than the limit.")
	case fiber.StatusUnsupportedMediaType:
		return newProblem(fe.Code, codeUnsupportedMediaType, fe.Message)
	}
	if fe.Code >= 400 && fe.Code < 500 {
		return newProblem(fe.Code, codeInvalidRequest, fe.Message)
	}
	return newProblem(fiber.StatusInternalServerError, codeInternal, "An unexpected error occurred; the request id identifies it in the logs.")
}

func statusOr(status, fallback int) int {
	if status == 0 {
		return fallback
	}
	return status
}

// badText reports Postgres refusing text a client sent: a NUL character
// (22P05, which jsonb and text cannot hold) or bytes that are not valid
// UTF-8 (22021). Whatever input path missed it, it is the client's error.
func badText(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "22P05" || pgErr.Code == "22021")
}

// unavailable reports errors that mean Postgres (or another backing service)
// could not be reached in time, as opposed to a bug: the client should retry.
// That includes a pool closed during shutdown and connections cut by a
// Postgres restart or failover (SQLSTATE classes 08 and 57P).
func unavailable(err error) bool {
	var connErr *pgconn.ConnectError
	var netErr net.Error
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// 08: connection exceptions; 57P: the server shutting down or
		// restarting; 53: out of connections or memory (53300 too many
		// connections): all pass when the database recovers.
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P") || strings.HasPrefix(pgErr.Code, "53")
	}
	// A connection that dropped mid-statement surfaces as pgconn's
	// ErrConnClosed (the next use of the closed connection) or as a bare
	// EOF from the socket; SafeToRetry marks errors where nothing was sent.
	return errors.As(err, &connErr) || errors.As(err, &netErr) ||
		errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err) ||
		errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, pgconn.ErrConnClosed) || pgconn.SafeToRetry(err)
}

// errorHandler renders every error as application/problem+json. Server-side
// failures are logged with the request id; their details never reach the client.
func (s *Server) errorHandler(c *fiber.Ctx, err error) error {
	assignRequestID(c)
	p := problemFor(err)
	if p.Status >= 500 {
		s.log.ErrorContext(c.UserContext(), "request failed",
			slog.String("request_id", requestID(c)), slog.String("method", c.Method()),
			slog.String("path", c.Path()), slog.Int("status", p.Status), slog.Any("error", err))
		p = p.with("request_id", requestID(c))
	}
	if p.Status == fiber.StatusServiceUnavailable {
		retry := "1"
		if p.Code == codeStoreUnavailable {
			retry = storeUnavailableRetrySec
		}
		c.Set(fiber.HeaderRetryAfter, retry)
	}
	if p.Status == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, bearerChallenge(p))
	}
	if !p.retryAt.IsZero() {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(max(1, int(math.Ceil(time.Until(p.retryAt).Seconds())))))
	}
	return writeProblem(c, p)
}

// bearerChallenge is the RFC 6750 WWW-Authenticate value for a 401: the
// error code and the same reason as the problem's detail, quoted as an
// auth-param (quotes and backslashes escaped, RFC 9110 5.6.4).
func bearerChallenge(p problem) string {
	v := `Bearer realm="coinop"`
	if p.oauthError != "" {
		v += `, error="` + p.oauthError + `"`
	}
	if p.Detail != "" {
		v += `, error_description=` + quoteParam(p.Detail)
	}
	return v
}

func quoteParam(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f || r > 0x7e:
			// error_description is limited to printable ASCII (RFC 6750 3).
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func writeProblem(c *fiber.Ctx, p problem) error {
	body, err := json.Marshal(p)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/problem+json")
	return c.Status(p.Status).Send(body)
}

// receiptReasons explain each receipts.Reason to the client.
var receiptReasons = map[receipts.Reason]string{
	receipts.ReasonSignature:   "The store did not sign or does not recognize this purchase.",
	receipts.ReasonChain:       "The signing certificate chain is missing, untrusted or not valid.",
	receipts.ReasonBundle:      "The purchase was made for another app.",
	receipts.ReasonEnvironment: "The purchase was made in a store environment this server does not accept for this player.",
	receipts.ReasonProduct:     "The product is not one this server sells (no catalog store product), or not the one named.",
	receipts.ReasonState:       "The purchase is not completed: pending, cancelled, refunded or revoked.",
	receipts.ReasonFormat:      "The receipt cannot be decoded or lacks required fields.",
	receipts.ReasonAccount:     "The purchase belongs to another account.",
}

// receiptInvalid is 422 receipt_invalid with the reason as an extension.
func receiptInvalid(reason receipts.Reason, err error) problem {
	detail := receiptReasons[reason]
	var ie *receipts.InvalidError
	if errors.As(err, &ie) && ie.Detail != "" {
		detail += " (" + ie.Detail + ")"
	}
	return newProblem(fiber.StatusUnprocessableEntity, codeReceiptInvalid, detail).with("reason", string(reason))
}
