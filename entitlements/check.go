package entitlements

import (
	"context"
	"errors"
	"time"
)

// ErrUnknownItem means a check named an item the live catalog does not have
// and the player does not hold: most likely a typo in the game server, which
// an answer of "not owned" would hide.
var ErrUnknownItem = errors.New("entitlements: no such item in the catalog")

// CheckQuery is one (player, item) question from a game server.
type CheckQuery struct {
	PlayerID, ItemID string
}

// CheckResult answers one CheckQuery. Err is ErrUnknownItem for an item the
// catalog does not know; the other fields are then zero.
type CheckResult struct {
	PlayerID, ItemID string
	Owned            bool
	Quantity         int64
	// ExpiresAt is when a subscription item stops being held.
	ExpiresAt *time.Time
	Err       error
}

// Check answers whether player holds item now. It fails with ErrUnknownItem
// for an item that is neither in the live catalog nor held by the player (a
// retired item that players still hold stays checkable).
func (l *Ledger) Check(ctx context.Context, player, item string) (CheckResult, error) {
	h, err := l.Holdings(ctx, player)
	if err != nil {
		return CheckResult{}, err
	}
	r := l.check(h, player, item, l.now())
	return r, r.Err
}

// CheckMany answers every query with one read of each distinct player's
// holdings; an unknown item fails only its own entry.
func (l *Ledger) CheckMany(ctx context.Context, queries []CheckQuery) ([]CheckResult, error) {
	players := make([]string, 0, len(queries))
	seen := make(map[string]bool, len(queries))
	for _, q := range queries {
		if !seen[q.PlayerID] {
			seen[q.PlayerID] = true
			players = append(players, q.PlayerID)
		}
	}
	results := make([]CheckResult, len(queries))
	if len(players) == 0 {
		return results, nil
	}
	all, err := l.HoldingsMany(ctx, players)
	if err != nil {
		return nil, err
	}
	now := l.now()
	for i, q := range queries {
		results[i] = l.check(all[q.PlayerID], q.PlayerID, q.ItemID, now)
	}
	return results, nil
}

func (l *Ledger) check(h Holdings, player, item string, now time.Time) CheckResult {
	r := CheckResult{PlayerID: player, ItemID: item}
	_, subscribed := h.Subscriptions[item]
	if snap := l.catalog.Current(); snap != nil && h.Items[item] == 0 && !subscribed {
		if _, ok := snap.Item(item); !ok {
			r.Err = ErrUnknownItem
			return r
		}
	}
	r.Quantity = h.Quantity(item, now)
	r.Owned = r.Quantity > 0
	if exp, ok := h.Subscriptions[item]; ok && h.Items[item] == 0 && r.Quantity > 0 {
		r.ExpiresAt = &exp
	}
	return r
}
