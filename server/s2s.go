package server

import (
	"strconv"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/entitlements"
)

// MaxChecks is the most (player, item) pairs in one batch check.
const MaxChecks = 1000

// requireServer accepts the game-server key. Player and admin tokens are
// refused: game servers get read access to every player, nothing more.
func (s *Server) requireServer(c *fiber.Ctx) error {
	token, ok := bearer(c)
	if !ok {
		return errUnauthenticated
	}
	if s.cfg.ServerToken != "" && constantTimeEqual(token, s.cfg.ServerToken) {
		return c.Next()
	}
	_, isPlayer := s.playerFromToken(token)
	if isPlayer || (s.cfg.AdminToken != "" && constantTimeEqual(token, s.cfg.AdminToken)) {
		return newProblem(fiber.StatusForbidden, codeForbidden, "This route takes a game-server key.")
	}
	return errUnauthenticated
}

type checkResult struct {
	PlayerID string `json:"player_id"`
	ItemID   string `json:"item_id"`
	Owned    bool   `json:"owned"`
	Quantity int64  `json:"quantity"`
}

func (s *Server) getEntitlementCheck(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	item := string([]byte(c.Params("item_id")))
	if item == "" || len(item) > 128 {
		return invalid("item_id must be 1 to 128 characters.")
	}
	h, err := s.ledger.Holdings(c.UserContext(), player)
	if err != nil {
		return err
	}
	n := h.Items[item]
	return c.JSON(checkResult{PlayerID: player, ItemID: item, Owned: n > 0, Quantity: n})
}

type checkBody struct {
	Checks []struct {
		PlayerID *string `json:"player_id"`
		ItemID   *string `json:"item_id"`
	} `json:"checks"`
}

func (s *Server) postEntitlementChecks(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b checkBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Checks == nil {
		return missing("checks")
	}
	if len(b.Checks) > MaxChecks {
		return invalid("At most 1000 checks per request.")
	}
	players := make([]string, 0, len(b.Checks))
	seen := make(map[string]bool, len(b.Checks))
	for i, ch := range b.Checks {
		if ch.PlayerID == nil || ch.ItemID == nil {
			return invalid("checks[" + itoa(i) + "] needs player_id and item_id.")
		}
		if err := entitlements.ValidatePlayerID(*ch.PlayerID); err != nil {
			return invalid("checks[" + itoa(i) + "].player_id must be 1 to 128 printable characters without spaces.")
		}
		if !seen[*ch.PlayerID] {
			seen[*ch.PlayerID] = true
			players = append(players, *ch.PlayerID)
		}
	}
	results := make([]checkResult, len(b.Checks))
	if len(players) > 0 {
		all, err := s.ledger.HoldingsMany(c.UserContext(), players)
		if err != nil {
			return err
		}
		for i, ch := range b.Checks {
			n := all[*ch.PlayerID].Items[*ch.ItemID]
			results[i] = checkResult{PlayerID: *ch.PlayerID, ItemID: *ch.ItemID, Owned: n > 0, Quantity: n}
		}
	}
	return c.JSON(fiber.Map{"results": results})
}

func itoa(i int) string { return strconv.Itoa(i) }
