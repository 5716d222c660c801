package server

// Creator routes (package creators): the admin API manages creators, their
// codes, earnings, statements and payouts; players set the creator code
// they support and tip creators. Each handler decodes, calls one domain
// method and encodes. Without a creator program (Deps.Creators nil,
// COINOP_CREATOR_PROGRAM off) every one of them answers 404
// creators_disabled.

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
)

// Problem codes of creators.
const (
	codeCreatorsDisabled   = "creators_disabled"
	codeUnknownCreator     = "unknown_creator"
	codeCreatorExists      = "creator_exists"
	codeUnknownCreatorCode = "unknown_creator_code"
	codeCreatorCodeTaken   = "creator_code_taken"
	codeCreatorSuspended   = "creator_suspended"
	codeOwnCreatorCode     = "own_creator_code"
	codePlayerLinked       = "creator_player_linked"
	codePayoutBelowMinimum = "payout_below_minimum"
	codeCreatorCodeNotSet  = "creator_code_not_set"
	codeNotTippable        = string(entitlements.CodeNotTippable)
	codeTipLimitExceeded   = string(entitlements.CodeTipLimitExceeded)
)

var creatorTitles = map[string]string{
	codeCreatorsDisabled:   "Creator program not enabled",
	codeUnknownCreator:     "Creator not found",
	codeCreatorExists:      "Creator exists",
	codeUnknownCreatorCode: "Unknown creator code",
	codeCreatorCodeTaken:   "Creator code taken",
	codeCreatorSuspended:   "Creator suspended",
	codeOwnCreatorCode:     "Own creator code",
	codePlayerLinked:       "Player linked to another creator",
	codePayoutBelowMinimum: "Nothing to pay out",
	codeCreatorCodeNotSet:  "No creator code set",
	codeNotTippable:        "Currency not tippable",
	codeTipLimitExceeded:   "Daily tip limit reached",
}

func init() {
	for code, title := range creatorTitles {
		titles[code] = title
	}
	rejectionStatus[entitlements.CodeNotTippable] = fiber.StatusConflict
	rejectionDetail[entitlements.CodeNotTippable] = "The catalog does not mark this currency tippable."
}

// creatorProblem maps the errors of package creators (and the tip limit)
// to problems; ok is false for any other error.
func creatorProblem(err error) (problem, bool) {
	var limit *entitlements.LimitError
	var bad *creators.InvalidError
	switch {
	case errors.As(err, &limit) && limit.Code == entitlements.CodeTipLimitExceeded:
		p := newProblem(fiber.StatusTooManyRequests, codeTipLimitExceeded,
			"The player's tips in this currency today would pass the daily limit; the limit frees at resets_at (midnight UTC).").
			with("currency", limit.AssetID).with("limit", limit.Limit).with("used", limit.Used).
			with("requested", limit.Requested).with("resets_at", limit.ResetsAt.UTC().Format(time.RFC3339))
		p.retryAt = limit.ResetsAt
		return p, true
	case errors.As(err, &bad):
		return invalid(bad.Field + ": " + bad.Message + "."), true
	case errors.Is(err, creators.ErrNotFound):
		return newProblem(fiber.StatusNotFound, codeUnknownCreator, "No creator has this id."), true
	case errors.Is(err, creators.ErrExists):
		return newProblem(fiber.StatusConflict, codeCreatorExists, "A creator with this id exists."), true
	case errors.Is(err, creators.ErrUnknownCode):
		return newProblem(fiber.StatusUnprocessableEntity, codeUnknownCreatorCode, "No creator has this code."), true
	case errors.Is(err, creators.ErrCodeTaken):
		return newProblem(fiber.StatusConflict, codeCreatorCodeTaken, "The code, in some letter case, belongs to a creator already."), true
	case errors.Is(err, creators.ErrSuspended):
		return newProblem(fiber.StatusConflict, codeCreatorSuspended, "The creator is suspended: it takes no new codes or tips."), true
	case errors.Is(err, creators.ErrOwnCode):
		return newProblem(fiber.StatusForbidden, codeOwnCreatorCode, "A creator's own player may not support their own code here."), true
	case errors.Is(err, creators.ErrPlayerLinked):
		return newProblem(fiber.StatusConflict, codePlayerLinked, "The player is linked to another creator already."), true
	case errors.Is(err, creators.ErrBelowMinimum):
		return newProblem(fiber.StatusConflict, codePayoutBelowMinimum,
			"No currency's available earnings reach the payout minimum (COINOP_CREATOR_PAYOUT_MIN); nothing was recorded."), true
	}
	return problem{}, false
}

// requireCreators answers 404 creators_disabled when the program is off.
func (s *Server) requireCreators(c *fiber.Ctx) error {
	if s.creators == nil {
		return newProblem(fiber.StatusNotFound, codeCreatorsDisabled,
			"The creator program is not enabled on this server (COINOP_CREATOR_PROGRAM).")
	}
	return c.Next()
}

// pathCreator is the {creator_id} of the path; a malformed one names no
// creator.
func pathCreator(c *fiber.Ctx) (string, error) {
	id, err := pathParam(c, "creator_id")
	if err != nil {
		return "", err
	}
	if !creators.ValidID(id) {
		return "", creators.ErrNotFound
	}
	return id, nil
}

type creatorCreateBody struct {
	CreatorID   *string  `json:"creator_id"`
	DisplayName *string  `json:"display_name"`
	PlayerID    *string  `json:"player_id"`
	Codes       []string `json:"codes"`
}

func (s *Server) postCreator(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b creatorCreateBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	switch {
	case b.CreatorID == nil:
		return missing("creator_id")
	case b.DisplayName == nil:
		return missing("display_name")
	}
	cr, err := s.creators.Create(c.UserContext(), creators.CreateRequest{
		ID: *b.CreatorID, DisplayName: *b.DisplayName, PlayerID: b.PlayerID, Codes: b.Codes,
	}, auditBy(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(cr)
}

type creatorsResponse struct {
	Creators []creators.Creator `json:"creators"`
	// NextAfter is the after of the next page; null on the last.
	NextAfter *string `json:"next_after"`
}

func (s *Server) getCreators(c *fiber.Ctx) error {
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	list, err := s.creators.List(c.UserContext(), strings.Clone(c.Query("after")), limit+1)
	if err != nil {
		return err
	}
	resp := creatorsResponse{Creators: list}
	if len(list) > limit {
		resp.Creators = list[:limit]
		next := list[limit-1].ID
		resp.NextAfter = &next
	}
	if resp.Creators == nil {
		resp.Creators = []creators.Creator{}
	}
	return c.JSON(resp)
}

func (s *Server) getCreator(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	cr, err := s.creators.Get(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(cr)
}

type creatorPatchBody struct {
	Status *string `json:"status"`
}

// patchCreator suspends or reactivates a creator.
func (s *Server) patchCreator(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var b creatorPatchBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Status == nil {
		return missing("status")
	}
	cr, err := s.creators.SetStatus(c.UserContext(), id, *b.Status, auditBy(c))
	if err != nil {
		return err
	}
	return c.JSON(cr)
}

type creatorCodeBody struct {
	Code *string `json:"code"`
}

func (s *Server) postCreatorCode(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var b creatorCodeBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Code == nil {
		return missing("code")
	}
	cr, err := s.creators.AddCode(c.UserContext(), id, *b.Code, auditBy(c))
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(cr)
}

type earningsResponse struct {
	CreatorID string             `json:"creator_id"`
	Earnings  []creators.Earning `json:"earnings"`
}

func (s *Server) getCreatorEarnings(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	es, err := s.creators.Earnings(c.UserContext(), id)
	if err != nil {
		return err
	}
	if es == nil {
		es = []creators.Earning{}
	}
	return c.JSON(earningsResponse{CreatorID: id, Earnings: es})
}

// defaultStatementDays is the period of a statement without from.
const defaultStatementDays = 31

// getCreatorStatement is the creator's journal for [from, to) (RFC 3339;
// to defaults to now, from to 31 days before to), as JSON or, with
// format=csv or Accept: text/csv, as CSV.
func (s *Server) getCreatorStatement(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	to := time.Now()
	if v := c.Query("to"); v != "" {
		if to, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return invalid("to must be an RFC 3339 time, like 2026-03-01T00:00:00Z.")
		}
	}
	from := to.AddDate(0, 0, -defaultStatementDays)
	if v := c.Query("from"); v != "" {
		if from, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return invalid("from must be an RFC 3339 time, like 2026-03-01T00:00:00Z.")
		}
	}
	csv := false
	switch c.Query("format") {
	case "csv":
		csv = true
	case "json":
	case "":
		csv = c.Accepts(fiber.MIMEApplicationJSON, "text/csv") == "text/csv"
	default:
		return invalid("format must be json or csv.")
	}
	st, err := s.creators.Statement(c.UserContext(), id, from, to)
	if err != nil {
		return err
	}
	if st.Lines == nil {
		st.Lines = []creators.Line{}
	}
	if !csv {
		return c.JSON(st)
	}
	var b bytes.Buffer
	if err := st.WriteCSV(&b); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
	c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-%s-%s.csv"`, id,
		st.From.Format("20060102T150405Z"), st.To.Format("20060102T150405Z")))
	return c.Send(b.Bytes())
}

// postCreatorPayout records a payout of what is available, once per
// Idempotency-Key; a replay answers the first payout again.
func (s *Server) postCreatorPayout(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	po, err := s.creators.Payout(c.UserContext(), creators.PayoutRequest{
		CreatorID: id, IdempotencyKey: key, Actor: actor(c), RequestID: requestID(c),
	})
	if err != nil {
		return err
	}
	if po.Replayed {
		c.Set(headerReplayed, "true")
	}
	return c.Status(fiber.StatusCreated).JSON(po)
}

// getCreatorCode is the player's own creator code, active or expired.
func (s *Server) getCreatorCode(c *fiber.Ctx) error {
	pc, ok, err := s.creators.GetPlayerCode(c.UserContext(), playerID(c))
	if err != nil {
		return err
	}
	if !ok {
		return newProblem(fiber.StatusNotFound, codeCreatorCodeNotSet, "The player has no creator code set.")
	}
	return c.JSON(pc)
}

// putCreatorCode sets (or replaces) the creator code the player supports.
func (s *Server) putCreatorCode(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b creatorCodeBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Code == nil {
		return missing("code")
	}
	pc, err := s.creators.SetPlayerCode(c.UserContext(), playerID(c), *b.Code)
	if err != nil {
		return err
	}
	return c.JSON(pc)
}

// deleteCreatorCode clears the player's code; clearing none is no error.
func (s *Server) deleteCreatorCode(c *fiber.Ctx) error {
	if err := s.creators.ClearPlayerCode(c.UserContext(), playerID(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type tipBody struct {
	Currency *string `json:"currency"`
	Amount   *int64  `json:"amount"`
}

// postTip tips the creator of the path from the player's balance.
func (s *Server) postTip(c *fiber.Ctx) error {
	id, err := pathCreator(c)
	if err != nil {
		return err
	}
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var b tipBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	switch {
	case b.Currency == nil:
		return missing("currency")
	case b.Amount == nil:
		return missing("amount")
	}
	out, err := s.ledger.Tip(c.UserContext(), entitlements.TipRequest{
		PlayerID: playerID(c), IdempotencyKey: key, CreatorID: id, Currency: *b.Currency, Amount: *b.Amount,
	})
	return s.respondIdempotent(c, out, err)
}
