package entitlements

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/outbox"
)

// SubscriptionPrefix starts the type of every subscription change's event:
// subscription.<state>, like subscription.active or subscription.expired.
const SubscriptionPrefix = "subscription."

// subscriptionState is a subscription's state as its rows hold it: one row
// per item, all moved together.
type subscriptionState struct {
	found     bool
	productID string
	state     string
	expiresAt time.Time
	items     []string
}

// SubscriptionEvent is the data of a subscription.<state> event.
type SubscriptionEvent struct {
	Store                 string     `json:"store"`
	OriginalTransactionID string     `json:"original_transaction_id"`
	ProductID             string     `json:"product_id"`
	Items                 []string   `json:"items"`
	State                 string     `json:"state"`
	PreviousState         *string    `json:"previous_state"`
	ExpiresAt             time.Time  `json:"expires_at"`
	PreviousExpiresAt     *time.Time `json:"previous_expires_at"`
}

// readSubscriptionState reads one subscription inside tx.
func readSubscriptionState(ctx context.Context, tx pgx.Tx, store, original string) (subscriptionState, error) {
	var s subscriptionState
	err := tx.QueryRow(ctx, `SELECT min(product_id), min(state), max(expires_at), array_agg(item_id ORDER BY item_id)
		FROM subscriptions WHERE store = $1 AND original_transaction_id = $2 HAVING count(*) > 0`,
		store, original).Scan(&s.productID, &s.state, &s.expiresAt, &s.items)
	if errors.Is(err, pgx.ErrNoRows) {
		return subscriptionState{}, nil
	}
	if err != nil {
		return subscriptionState{}, err
	}
	s.found = true
	return s, nil
}

// recordSubscriptionChange writes a subscription.<state> event in tx when
// the subscription's state or expiry differs from before (a renewal, a
// lapse into grace or billing retry, an expiry, a revocation); a repeated
// notification that changes nothing writes none.
func recordSubscriptionChange(ctx context.Context, tx pgx.Tx, player, store, original string, before subscriptionState) error {
	after, err := readSubscriptionState(ctx, tx, store, original)
	if err != nil || !after.found {
		return err
	}
	if before.found && before.state == after.state && before.expiresAt.Equal(after.expiresAt) {
		return nil
	}
	ev := SubscriptionEvent{
		Store: store, OriginalTransactionID: original, ProductID: after.productID, Items: after.items,
		State: after.state, ExpiresAt: after.expiresAt.UTC(),
	}
	if before.found {
		prevState, prevExpires := before.state, before.expiresAt.UTC()
		ev.PreviousState, ev.PreviousExpiresAt = &prevState, &prevExpires
	}
	return outbox.Insert(ctx, tx, SubscriptionPrefix+after.state, &player, ev)
}
