package server

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/entitlements"
)

const headerIdempotencyKey = "Idempotency-Key"
const headerReplayed = "Idempotent-Replayed"

type walletResponse struct {
	PlayerID string           `json:"player_id"`
	Balances map[string]int64 `json:"balances"`
}

type entitlementsResponse struct {
	PlayerID     string                     `json:"player_id"`
	Entitlements []entitlements.Entitlement `json:"entitlements"`
}

func (s *Server) getWallet(c *fiber.Ctx) error {
	h, err := s.ledger.Holdings(c.UserContext(), playerID(c))
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
	return c.JSON(walletResponse{PlayerID: h.PlayerID, Balances: balances})
}

func (s *Server) getEntitlements(c *fiber.Ctx) error {
	h, err := s.ledger.Holdings(c.UserContext(), playerID(c))
	if err != nil {
		return err
	}
	return c.JSON(entitlementsResponse{PlayerID: h.PlayerID, Entitlements: h.Entitlements(time.Now())})
}

// idempotencyKey returns the request's key, copied out of fiber's buffer.
func idempotencyKey(c *fiber.Ctx) (string, error) {
	key := c.Get(headerIdempotencyKey)
	if key == "" {
		return "", newProblem(fiber.StatusBadRequest, codeIdempotencyKeyMissing,
			"Send a unique Idempotency-Key header with every purchase or grant, and reuse it when retrying.")
	}
	return string([]byte(key)), nil
}

func (s *Server) postPurchase(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	in, err := parsePurchase(c.Body())
	if err != nil {
		return err
	}
	out, err := s.ledger.Purchase(c.UserContext(), entitlements.PurchaseRequest{
		PlayerID:       playerID(c),
		IdempotencyKey: key,
		ItemID:         in.ItemID,
		Quantity:       in.Quantity,
		Price:          in.Price,
	})
	return s.respondIdempotent(c, out, err)
}

// respondIdempotent writes a stored outcome: 201 with the stored body, or the
// stored rejection as a problem, marking replays either way.
func (s *Server) respondIdempotent(c *fiber.Ctx, out entitlements.Outcome, err error) error {
	if rej, ok := err.(*entitlements.Rejection); ok && rej.Replayed {
		c.Set(headerReplayed, "true")
	}
	if err != nil {
		return err
	}
	if out.Replayed {
		c.Set(headerReplayed, "true")
	}
	// out.Body is a json.RawMessage: the encoder writes it compacted, the
	// same bytes on the first answer and on every replay.
	return c.Status(fiber.StatusCreated).JSON(out.Body)
}
