package server

// Routes the web console needs beyond the rest of the admin API: who the
// caller is (so a screen shows only what the key may do), and a player's
// holdings and refund debts for support. Each calls one domain method.

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/entitlements"
)

type meResponse struct {
	Actor string        `json:"actor"`
	Roles []access.Role `json:"roles"`
	// Can lists every admin role the caller holds, directly or implied
	// (an editor can view), so a client need not know the implications.
	Can []access.Role `json:"can"`
}

// getMe answers any authenticated admin caller with its name and roles. It
// reveals nothing a key's holder does not already know.
func (s *Server) getMe(c *fiber.Ctx) error {
	p := principal(c)
	resp := meResponse{Actor: p.Actor, Roles: p.Roles, Can: []access.Role{}}
	if resp.Roles == nil {
		resp.Roles = []access.Role{}
	}
	for _, r := range access.Roles {
		if p.Can(r) {
			resp.Can = append(resp.Can, r)
		}
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(resp)
}

type holdingsResponse struct {
	PlayerID string `json:"player_id"`
	// Balances lists every live catalog currency, 0 when none is held, as
	// GET /v1/wallet does.
	Balances map[string]int64 `json:"balances"`
	// Entitlements are owned items and active subscriptions (with
	// expires_at), as GET /v1/entitlements lists them.
	Entitlements []entitlements.Entitlement `json:"entitlements"`
}

// getHoldings is a player's wallet and entitlements, for support: what the
// player's own GET /v1/wallet and /v1/entitlements would show.
func (s *Server) getHoldings(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	h, err := s.ledger.Holdings(c.UserContext(), player)
	if err != nil {
		return err
	}
	balances := make(map[string]int64, len(h.Currencies))
	if snap := s.live.Current(); snap != nil {
		for _, id := range snap.CurrencyIDs() {
			balances[id] = 0
		}
	}
	for id, n := range h.Currencies {
		balances[id] = n
	}
	return c.JSON(holdingsResponse{PlayerID: player, Balances: balances, Entitlements: h.Entitlements(time.Now())})
}

type debtsResponse struct {
	PlayerID string              `json:"player_id"`
	Debts    []entitlements.Debt `json:"debts"`
}

// getPlayerDebts lists what refunds of this player's store purchases could
// not take back, newest first.
func (s *Server) getPlayerDebts(c *fiber.Ctx) error {
	player, err := pathPlayer(c)
	if err != nil {
		return err
	}
	limit, err := pageLimit(c)
	if err != nil {
		return err
	}
	debts, err := s.ledger.Debts(c.UserContext(), player, limit)
	if err != nil {
		return err
	}
	if debts == nil {
		debts = []entitlements.Debt{}
	}
	return c.JSON(debtsResponse{PlayerID: player, Debts: debts})
}
