package server

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/entitlements"
)

// pathPlayer is the {player_id} of the path, percent-decoded: a client
// that escapes "ålice" as %C3%A5lice means ålice, never a player literally
// named "%C3%A5lice".
func pathPlayer(c *fiber.Ctx) (string, error) {
	id, err := pathParam(c, "player_id")
	if err != nil {
		return "", err
	}
	if err := entitlements.ValidatePlayerID(id); err != nil {
		return "", err
	}
	return id, nil
}

// pathParam returns one path parameter percent-decoded and copied out of
// fiber's buffer, or a 400 for a malformed escape.
func pathParam(c *fiber.Ctx, name string) (string, error) {
	v, err := url.PathUnescape(c.Params(name))
	if err != nil {
		return "", invalid(name + " in the path is not validly percent-encoded.")
	}
	return strings.Clone(v), nil
}

func (s *Server) postGrant(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
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
	b, err := parseGrant(c.Body())
	if err != nil {
		return err
	}
	out, err := s.ledger.Grant(c.UserContext(), entitlements.GrantRequest{
		PlayerID:       player,
		IdempotencyKey: key,
		Reason:         strings.Clone(*b.Reason),
		Actor:          actor(c),
		RequestID:      requestID(c),
		Currencies:     b.Currencies,
		Items:          b.Items,
	})
	return s.respondIdempotent(c, out, err)
}

type ledgerResponse struct {
	PlayerID     string                           `json:"player_id"`
	Transactions []entitlements.LedgerTransaction `json:"transactions"`
	NextBefore   *int64                           `json:"next_before"`
}

func (s *Server) getLedger(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	limit, ok := parseNonNegativeInt(c.Query("limit"), 100)
	if !ok || limit < 1 || limit > entitlements.MaxHistoryPage {
		return invalid("limit must be an integer from 1 to 500.")
	}
	before, ok := parseNonNegativeInt(c.Query("before"), 0)
	if !ok {
		return invalid("before must be a ledger transaction id.")
	}
	txs, next, err := s.ledger.History(c.UserContext(), player, before, int(limit))
	if err != nil {
		return err
	}
	resp := ledgerResponse{PlayerID: player, Transactions: txs}
	if resp.Transactions == nil {
		resp.Transactions = []entitlements.LedgerTransaction{}
	}
	if next > 0 {
		resp.NextBefore = &next
	}
	return c.JSON(resp)
}

func (s *Server) getAudit(c *fiber.Ctx) error {
	checks, err := s.ledger.Audit(c.UserContext())
	if err != nil {
		return err
	}
	ok := true
	for _, ch := range checks {
		ok = ok && ch.OK
	}
	return c.JSON(fiber.Map{"ok": ok, "checks": checks})
}
