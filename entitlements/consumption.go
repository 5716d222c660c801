package entitlements

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Consumption is what the ledger knows of one store purchase when the store
// asks before deciding a refund (Apple's CONSUMPTION_REQUEST).
type Consumption struct {
	PlayerID string
	// Delivered is true when the purchase's grant is in the ledger.
	Delivered bool
	// Subscription: the purchase is a subscription's (its items are not
	// ledger assets, so ConsumedPPM covers only its currencies).
	Subscription bool
	// ConsumedPPM is the share of the grant, in millionths, the player no
	// longer holds: per asset, what the grant gave less what the player
	// still holds of it (spending is counted against this purchase first),
	// summed over assets and divided by everything granted. 0 when the
	// grant gave nothing countable.
	ConsumedPPM int64
	// PlayerSince is when the player first appeared in the ledger.
	PlayerSince time.Time
	// LifetimeKnown is true when every store purchase the player redeemed
	// here carries a USD price (Apple's price and currency): only then are
	// LifetimePurchasedMilli (what they paid, in thousandths of a dollar)
	// and LifetimeRefundedMilli (the refunded share of each purchase's
	// price, rounded down) the player's lifetime figures. A purchase without
	// a price (Google's, or in another currency) makes them unknown:
	// coinop converts no currencies and does not guess.
	LifetimeKnown                                 bool
	LifetimePurchasedMilli, LifetimeRefundedMilli int64
}

// ConsumptionOf reads what the ledger knows of a store purchase for the
// store's consumption question. Errors: ErrStorePurchaseNotFound.
func (l *Ledger) ConsumptionOf(ctx context.Context, store, transactionID string) (Consumption, error) {
	var c Consumption
	var grantTx *int64
	var expires *time.Time
	err := l.db.QueryRow(ctx, `SELECT s.player_id, s.ledger_transaction_id, s.expires_at, p.created_at
		FROM store_purchases s JOIN players p USING (player_id) WHERE s.store = $1 AND s.transaction_id = $2`,
		store, transactionID).Scan(&c.PlayerID, &grantTx, &expires, &c.PlayerSince)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrStorePurchaseNotFound
	}
	if err != nil {
		return c, fmt.Errorf("entitlements: consumption of %s %s: %w", store, transactionID, err)
	}
	c.Delivered, c.Subscription = grantTx != nil, expires != nil
	if grantTx != nil {
		var granted, left int64
		if err := l.db.QueryRow(ctx, `SELECT coalesce(sum(e.amount), 0)::bigint, coalesce(sum(least(e.amount, coalesce(b.quantity, 0))), 0)::bigint
			FROM ledger_entries e LEFT JOIN balances b ON b.player_id = $2 AND b.asset_type = e.asset_type AND b.asset_id = e.asset_id
			WHERE e.transaction_id = $1 AND e.account = 'player:' || $2 AND e.amount > 0`, *grantTx, c.PlayerID).Scan(&granted, &left); err != nil {
			return c, fmt.Errorf("entitlements: consumption of %s %s: %w", store, transactionID, err)
		}
		if granted > 0 {
			c.ConsumedPPM = portion(1_000_000, granted-max(left, 0), granted)
		}
	}
	if err := l.db.QueryRow(ctx, `SELECT count(*) > 0 AND bool_and(price_milli IS NOT NULL AND currency = 'USD'),
			coalesce(sum(price_milli), 0)::bigint, coalesce(sum(price_milli * revoked_num / revoked_den), 0)::bigint
		FROM store_purchases WHERE player_id = $1`, c.PlayerID).Scan(&c.LifetimeKnown, &c.LifetimePurchasedMilli, &c.LifetimeRefundedMilli); err != nil {
		return c, fmt.Errorf("entitlements: consumption of %s %s: lifetime: %w", store, transactionID, err)
	}
	if !c.LifetimeKnown {
		c.LifetimePurchasedMilli, c.LifetimeRefundedMilli = 0, 0
	}
	return c, nil
}
