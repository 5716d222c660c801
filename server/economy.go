package server

import (
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/outbox"
)

// Server postings (award, spend, consume, exchange): a game server moves a
// player's holdings. The routes take the game-server key; see
// entitlements.Move for the rules.

// serverTokenActor names COINOP_SERVER_TOKEN in ledger metadata.
const serverTokenActor = "server-token"

type assetsBody struct {
	Currencies map[string]int64 `json:"currencies"`
	Items      map[string]int64 `json:"items"`
}

type moveBody struct {
	Source *string `json:"source"`
	Reason *string `json:"reason"`
	assetsBody
}

type exchangeBody struct {
	Source *string     `json:"source"`
	Reason *string     `json:"reason"`
	Give   *assetsBody `json:"give"`
	Take   *assetsBody `json:"take"`
}

// parseMove decodes the body of one server posting into a request.
func parseMove(kind entitlements.MoveKind, body []byte) (entitlements.MoveRequest, error) {
	req := entitlements.MoveRequest{Kind: kind}
	var source, reason *string
	if kind == entitlements.MoveExchange {
		var b exchangeBody
		if err := decodeStrict(body, &b); err != nil {
			return req, err
		}
		if b.Give == nil {
			return req, missing("give")
		}
		if b.Take == nil {
			return req, missing("take")
		}
		source, reason = b.Source, b.Reason
		req.Give = entitlements.Assets{Currencies: b.Give.Currencies, Items: b.Give.Items}
		req.Take = entitlements.Assets{Currencies: b.Take.Currencies, Items: b.Take.Items}
	} else {
		var b moveBody
		if err := decodeStrict(body, &b); err != nil {
			return req, err
		}
		source, reason = b.Source, b.Reason
		a := entitlements.Assets{Currencies: b.Currencies, Items: b.Items}
		if kind == entitlements.MoveAward {
			req.Give = a
		} else {
			req.Take = a
		}
	}
	if source == nil {
		return req, missing("source")
	}
	if reason == nil {
		return req, missing("reason")
	}
	req.Source, req.Reason = *source, *reason
	return req, nil
}

// postMove handles one kind of server posting.
func (s *Server) postMove(kind entitlements.MoveKind) fiber.Handler {
	return func(c *fiber.Ctx) error {
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
		req, err := parseMove(kind, c.Body())
		if err != nil {
			return err
		}
		req.PlayerID, req.IdempotencyKey = player, key
		sp := serverPrincipal(c)
		req.Actor = sp.Actor
		if l := sp.Limits; l != nil {
			req.Limits = &entitlements.KeyLimits{KeyID: sp.KeyID, Currencies: l.Currencies, Items: l.Items,
				MaxPerPosting: l.MaxPerPosting, HourlyBudget: l.HourlyBudget}
		}
		out, err := s.ledger.Move(c.UserContext(), req)
		return s.respondIdempotent(c, out, err)
	}
}

// serverPrincipal is the game server that authenticated the request.
func serverPrincipal(c *fiber.Ctx) access.Principal {
	if p, ok := c.Locals(localPrincipal).(access.Principal); ok {
		return p
	}
	return access.Principal{Actor: serverTokenActor}
}

// limitProblem is the answer to a posting the key's limits refuse; never
// stored with the idempotency key.
func limitProblem(e *entitlements.LimitError) problem {
	var p problem
	switch e.Code {
	case entitlements.CodeAssetNotAllowed:
		p = newProblem(fiber.StatusForbidden, string(e.Code), "This key may not move this "+e.AssetType+".")
	case entitlements.CodePostingTooLarge:
		p = newProblem(fiber.StatusForbidden, string(e.Code), "The amount is above this key's most per posting.").
			with("max_per_posting", e.Limit).with("requested", e.Requested)
	default:
		p = newProblem(fiber.StatusTooManyRequests, string(e.Code),
			"This key's hourly budget for the currency has too little left; the same request succeeds once the budget frees at resets_at.").
			with("budget", e.Limit).with("used", e.Used).with("requested", e.Requested).
			with("resets_at", e.ResetsAt.UTC().Format(time.RFC3339))
		p.retryAt = e.ResetsAt
	}
	return p.with("asset_type", e.AssetType).with("asset_id", e.AssetID)
}

type playerConsumeBody struct {
	ItemID   *string `json:"item_id"`
	Quantity *int64  `json:"quantity"`
}

// postPlayerConsumption lets a player use up an item the catalog marks
// player_consumable.
func (s *Server) postPlayerConsumption(c *fiber.Ctx) error {
	key, err := idempotencyKey(c)
	if err != nil {
		return err
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var b playerConsumeBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.ItemID == nil {
		return missing("item_id")
	}
	if b.Quantity == nil {
		return missing("quantity")
	}
	out, err := s.ledger.PlayerConsume(c.UserContext(), entitlements.PlayerConsumeRequest{
		PlayerID: playerID(c), IdempotencyKey: key, ItemID: *b.ItemID, Quantity: *b.Quantity,
	})
	return s.respondIdempotent(c, out, err)
}

// MaxEventsWait is the longest a feed request waits for an event.
const MaxEventsWait = 30 * time.Second

type eventsResponse struct {
	Events    []outbox.Event `json:"events"`
	NextAfter int64          `json:"next_after"`
}

// getEvents is the pull feed: events after a cursor, in commit order,
// waiting up to wait seconds for one when there is none yet.
func (s *Server) getEvents(c *fiber.Ctx) error {
	after, ok := parseNonNegativeInt(c.Query("after"), 0)
	if !ok {
		return invalid("after must be an event id (a non-negative integer).")
	}
	limit, ok := parseNonNegativeInt(c.Query("limit"), 100)
	if !ok || limit < 1 || limit > outbox.MaxPage {
		return invalid("limit must be an integer from 1 to 500.")
	}
	wait, ok := parseNonNegativeInt(c.Query("wait"), 0)
	if !ok || time.Duration(wait)*time.Second > MaxEventsWait {
		return invalid("wait must be a number of seconds from 0 to 30.")
	}
	events, err := s.feed.Read(c.UserContext(), after, int(limit), time.Duration(wait)*time.Second)
	if err != nil {
		return err
	}
	resp := eventsResponse{Events: events, NextAfter: after}
	if resp.Events == nil {
		resp.Events = []outbox.Event{}
	}
	if n := len(events); n > 0 {
		resp.NextAfter = events[n-1].ID
	}
	return c.JSON(resp)
}
