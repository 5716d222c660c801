package entitlements

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/catalog"
)

// Kinds of ledger transactions for store purchases.
const (
	KindStorePurchase = "store_purchase"
	KindStoreRefund   = "store_refund"
)

// StorePurchase is a purchase a store has verified (package receipts turns
// store input into this), to be recorded and granted exactly once.
type StorePurchase struct {
	Store                 string // "apple" | "google"
	Environment           string
	TransactionID         string
	OriginalTransactionID string
	ProductID             string
	Quantity              int64
	PurchasedAt           time.Time
	// ExpiresAt is set for subscriptions: the granted items hold until then.
	ExpiresAt *time.Time
	// PurchaseToken and Consumable drive Google's acknowledge or consume.
	PurchaseToken string
	Consumable    bool
	// PriceMilli and Currency: what the player paid the store, where it
	// says (0 and "": unknown). Read by ConsumptionOf.
	PriceMilli int64
	Currency   string
}

var (
	// ErrReceiptOwnedByAnotherPlayer means the store transaction was already
	// redeemed by a different player; nothing is granted.
	ErrReceiptOwnedByAnotherPlayer = errors.New("entitlements: store transaction redeemed by another player")
	// ErrUnknownStoreProduct means the catalog maps no grant to the product.
	ErrUnknownStoreProduct = errors.New("entitlements: store product not in the catalog")
	// ErrStorePurchaseNotFound means no redeemed purchase has that transaction id.
	ErrStorePurchaseNotFound = errors.New("entitlements: store purchase not found")
	// ErrStorePurchaseRevoked means the store refunded or revoked the
	// transaction before it was redeemed here; it can no longer be redeemed.
	ErrStorePurchaseRevoked = errors.New("entitlements: store transaction was refunded or revoked")
)

func storeAccount(store string) string { return "system:store_" + store }

// Redeem records a verified store purchase and grants its catalog product in
// the same transaction. (store, transaction id) is unique across players: a
// retry by the same player replays the first grant (Outcome.Replayed), by
// another player it is ErrReceiptOwnedByAnotherPlayer. Limits of the virtual
// economy never refuse a paid purchase: a durable already owned is simply
// not granted twice.
// Errors: *InvalidError, ErrUnknownStoreProduct, ErrReceiptOwnedByAnotherPlayer, ErrNoCatalog.
func (l *Ledger) Redeem(ctx context.Context, playerID string, p StorePurchase) (Outcome, error) {
	if err := ValidatePlayerID(playerID); err != nil {
		return Outcome{}, err
	}
	if p.Store == "" || p.TransactionID == "" || p.ProductID == "" {
		return Outcome{}, &InvalidError{Field: "purchase", Message: "store, transaction id and product id are required"}
	}
	if p.Quantity < 1 || p.Quantity > MaxQuantity {
		return Outcome{}, &InvalidError{Field: "quantity", Message: fmt.Sprintf("must be between 1 and %d", MaxQuantity)}
	}
	snap := l.catalog.Current()
	if snap == nil {
		return Outcome{}, ErrNoCatalog
	}
	product, ok := snap.StoreProduct(p.Store, p.ProductID)
	if !ok {
		return Outcome{}, ErrUnknownStoreProduct
	}
	// A subscription's items hold until it expires (table subscriptions);
	// everything else is granted for good through the ledger.
	subscription := p.ExpiresAt != nil
	plan := newPlan()
	for id, n := range product.Grants.Currencies {
		plan.add(assetCurrency, id, mulClamp(n, p.Quantity))
	}
	if !subscription {
		for id, n := range product.Grants.Items {
			plan.grantItem(snap, id, mulClamp(n, p.Quantity))
		}
	}
	changes := plan.changes()
	for i := range changes {
		changes[i].Clamp = true
	}
	key := p.Store + ":" + p.TransactionID
	sum := sha256.Sum256([]byte(key))
	purchaseID := uuid.Must(uuid.NewV7()).String()
	result := []bodyMember{
		{"purchase_id", purchaseID}, {"store", p.Store}, {"transaction_id", p.TransactionID},
		{"product_id", p.ProductID}, {"quantity", p.Quantity},
	}
	if subscription {
		items := make([]string, 0, len(product.Grants.Items))
		for id := range product.Grants.Items {
			items = append(items, id)
		}
		sort.Strings(items)
		result = append(result, bodyMember{"expires_at", p.ExpiresAt.UTC()}, bodyMember{"subscription_items", items})
	}
	metadata := map[string]any{
		"store": p.Store, "transaction_id": p.TransactionID, "original_transaction_id": p.OriginalTransactionID,
		"product_id": p.ProductID, "environment": p.Environment, "catalog_version": snap.Version,
	}

	var out Outcome
	var changed *Holdings
	var patches []holdingsPatch
	err := pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		// Serializes this transaction's redemption with its refund (Revoke
		// takes the same lock), so a refund racing the first redemption is
		// either seen here or reverses what this commits.
		if err := lockStoreTransaction(ctx, tx, p.Store, p.TransactionID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO players (player_id) VALUES ($1) ON CONFLICT DO NOTHING`, playerID); err != nil {
			return fmt.Errorf("create player: %w", err)
		}
		// A concurrent redemption of the same transaction waits here for the
		// first to commit, then sees its row: one grant, whoever asks.
		tag, err := tx.Exec(ctx, `INSERT INTO store_purchases (store, transaction_id, player_id, original_transaction_id,
				product_id, environment, quantity, purchased_at, expires_at, purchase_token, consumable, response, price_milli, currency)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, '{}', NULLIF($12, 0), NULLIF($13, ''))
			ON CONFLICT (store, transaction_id) DO NOTHING`,
			p.Store, p.TransactionID, playerID, p.OriginalTransactionID, p.ProductID, p.Environment,
			p.Quantity, p.PurchasedAt, p.ExpiresAt, p.PurchaseToken, p.Consumable, p.PriceMilli, p.Currency)
		if err != nil {
			return fmt.Errorf("claim store purchase: %w", err)
		}
		if tag.RowsAffected() == 1 {
			var revoked bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM store_revocations WHERE store = $1 AND transaction_id = $2 AND revoked_num > 0)`,
				p.Store, p.TransactionID).Scan(&revoked); err != nil {
				return err
			}
			if revoked {
				return ErrStorePurchaseRevoked
			}
		}
		if tag.RowsAffected() == 0 {
			var owner string
			var response []byte
			// body holds the exact bytes answered since migration 008;
			// earlier rows answered their jsonb text, which response gives.
			if err := tx.QueryRow(ctx, `SELECT player_id, coalesce(body, convert_to(response::text, 'UTF8'))
				FROM store_purchases WHERE store = $1 AND transaction_id = $2`,
				p.Store, p.TransactionID).Scan(&owner, &response); err != nil {
				return fmt.Errorf("read store purchase: %w", err)
			}
			if owner != playerID {
				return ErrReceiptOwnedByAnotherPlayer
			}
			out = Outcome{Body: response, Replayed: true}
			return nil
		}
		res, ps, err := l.postIn(ctx, tx, &posting{
			playerID: playerID, scope: "store", key: key, fingerprint: sum[:],
			kind: KindStorePurchase, reference: purchaseID, account: storeAccount(p.Store),
			changes: changes, currencies: snap.CurrencyIDs(), result: result, metadata: metadata,
		})
		if err != nil {
			return err
		}
		out, patches = res.Outcome, ps
		if _, err := tx.Exec(ctx, `UPDATE store_purchases SET ledger_transaction_id = $3, response = $4::jsonb, body = $5
			WHERE store = $1 AND transaction_id = $2`, p.Store, p.TransactionID, res.ledgerTx, string(out.Body), []byte(out.Body)); err != nil {
			return fmt.Errorf("record store purchase: %w", err)
		}
		if subscription && len(product.Grants.Items) > 0 {
			if err := upsertSubscription(ctx, tx, playerID, p, product); err != nil {
				return err
			}
			h, err := bumpVersion(ctx, tx, playerID)
			if err != nil {
				return err
			}
			changed = &h
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrReceiptOwnedByAnotherPlayer) || errors.Is(err, ErrStorePurchaseRevoked) {
			return Outcome{}, err
		}
		return Outcome{}, fmt.Errorf("entitlements: redeem %s %s: %w", p.Store, p.TransactionID, err)
	}
	if changed != nil {
		// Subscriptions changed too: the cache takes the whole holdings.
		l.afterCommit(ctx, *changed)
	} else {
		l.afterPatches(ctx, patches)
	}
	return out, nil
}

func upsertSubscription(ctx context.Context, tx pgx.Tx, playerID string, p StorePurchase, product *catalog.StoreProduct) error {
	original := p.OriginalTransactionID
	if original == "" {
		original = p.TransactionID
	}
	items := make([]string, 0, len(product.Grants.Items))
	for id := range product.Grants.Items {
		items = append(items, id)
	}
	sort.Strings(items)
	before, err := readSubscriptionState(ctx, tx, p.Store, original)
	if err != nil {
		return fmt.Errorf("read subscription: %w", err)
	}
	for _, item := range items {
		_, err := tx.Exec(ctx, `INSERT INTO subscriptions (player_id, store, original_transaction_id, product_id, item_id, expires_at, state)
			VALUES ($1, $2, $3, $4, $5, $6, 'active')
			ON CONFLICT (store, original_transaction_id, item_id) DO UPDATE
			SET expires_at = greatest(subscriptions.expires_at, excluded.expires_at), state = 'active', updated_at = now()`,
			playerID, p.Store, original, p.ProductID, item, *p.ExpiresAt)
		if err != nil {
			return fmt.Errorf("record subscription: %w", err)
		}
	}
	return recordSubscriptionChange(ctx, tx, playerID, p.Store, original, before)
}

// ClawbackPolicy decides what a refund does with currency already spent.
type ClawbackPolicy string

const (
	// ClawbackClamp takes back what the player still holds and records the
	// rest as debt.
	ClawbackClamp ClawbackPolicy = "clamp"
	// ClawbackNegative takes back everything, the part already spent through
	// the player's debt account (system:debt:<player>), and records the debt.
	ClawbackNegative ClawbackPolicy = "negative"
	// ClawbackFlag takes nothing back and records the whole grant for support.
	ClawbackFlag ClawbackPolicy = "flag"
)

// ParseClawbackPolicy reads clamp, negative or flag.
func ParseClawbackPolicy(s string) (ClawbackPolicy, error) {
	switch p := ClawbackPolicy(s); p {
	case ClawbackClamp, ClawbackNegative, ClawbackFlag:
		return p, nil
	}
	return "", fmt.Errorf("clawback policy %q: want clamp, negative or flag", s)
}

// lockStoreTransaction takes a transaction-scoped advisory lock on one store
// transaction id.
func lockStoreTransaction(ctx context.Context, tx pgx.Tx, store, transactionID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 7))`, store+":"+transactionID)
	if err != nil {
		return fmt.Errorf("lock store transaction: %w", err)
	}
	return nil
}

// ScopeStoreRefund scopes the idempotency key of a refund's posting.
const ScopeStoreRefund = "store refund"

// bumpVersion moves the player's version past every ledger transaction so
// far (their row is already locked) and returns their holdings at it.
func bumpVersion(ctx context.Context, tx pgx.Tx, player string) (Holdings, error) {
	if _, err := tx.Exec(ctx, `SELECT coinop_bump_version($1)`, player); err != nil {
		return Holdings{}, fmt.Errorf("bump version: %w", err)
	}
	return holdingsTx(ctx, tx, player)
}

// UpdateSubscription applies the store's view of a subscription found by
// its original transaction id: a renewal's new expiry (never moving it
// back unless the state is revoked or expired) and its state (active,
// grace_period, billing_retry, expired, revoked). Only active and
// grace_period subscriptions grant their items, until expires_at.
// Errors: ErrStorePurchaseNotFound when no subscription has that id.
func (l *Ledger) UpdateSubscription(ctx context.Context, store, originalTransactionID string, expiresAt *time.Time, state string) error {
	var changed Holdings
	err := pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		var player string
		err := tx.QueryRow(ctx, `SELECT player_id FROM subscriptions WHERE store = $1 AND original_transaction_id = $2 LIMIT 1`,
			store, originalTransactionID).Scan(&player)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrStorePurchaseNotFound
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `SELECT 1 FROM players WHERE player_id = $1 FOR UPDATE`, player); err != nil {
			return err
		}
		before, err := readSubscriptionState(ctx, tx, store, originalTransactionID)
		if err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE subscriptions SET state = $3, updated_at = now(),
			expires_at = CASE WHEN $3 IN ('expired', 'revoked') THEN least(expires_at, coalesce($4, now()))
			                  ELSE greatest(expires_at, coalesce($4, expires_at)) END
			WHERE store = $1 AND original_transaction_id = $2`, store, originalTransactionID, state, expiresAt)
		if err != nil {
			return err
		}
		if err := recordSubscriptionChange(ctx, tx, player, store, originalTransactionID, before); err != nil {
			return err
		}
		changed, err = bumpVersion(ctx, tx, player)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrStorePurchaseNotFound) {
			return err
		}
		return fmt.Errorf("entitlements: update subscription %s %s: %w", store, originalTransactionID, err)
	}
	l.afterCommit(ctx, changed)
	return nil
}

// holdingsTx reads a player's holdings inside tx.
func holdingsTx(ctx context.Context, tx pgx.Tx, player string) (Holdings, error) {
	h := Holdings{PlayerID: player}
	var doc []byte
	if err := tx.QueryRow(ctx, `SELECT version, coinop_holdings(player_id) FROM players WHERE player_id = $1`, player).Scan(&h.Version, &doc); err != nil {
		return Holdings{}, err
	}
	return h, decodeHoldings(doc, &h)
}
