package entitlements

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// StoreNotification is one store notification in the durable inbox.
type StoreNotification struct {
	Store          string          `json:"store"`
	NotificationID string          `json:"notification_id"`
	Kind           string          `json:"kind"`
	Body           json.RawMessage `json:"body"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	NextAttemptAt  time.Time       `json:"next_attempt_at"`
	LastError      string          `json:"last_error"`
	ReceivedAt     time.Time       `json:"received_at"`
	ProcessedAt    *time.Time      `json:"processed_at"`
}

// ReceiveNotification stores a notification before the store is told it
// arrived; a redelivery with the same id is recognised (duplicate true) and
// stored once.
func (l *Ledger) ReceiveNotification(ctx context.Context, store, id, kind string, body json.RawMessage) (duplicate bool, err error) {
	if store == "" || id == "" || len(id) > 200 {
		return false, &InvalidError{Field: "notification", Message: "store and an id of at most 200 characters are required"}
	}
	tag, err := l.db.Exec(ctx, `INSERT INTO store_notifications (store, notification_id, kind, body)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, store, id, kind, []byte(body))
	if err != nil {
		return false, fmt.Errorf("entitlements: store notification %s %s: %w", store, id, err)
	}
	return tag.RowsAffected() == 0, nil
}

// ClaimNotifications leases up to limit due notifications for lease: they
// are not handed out again until it ends, so several replicas can process
// the inbox, and one that dies mid-way leaves them to the next.
func (l *Ledger) ClaimNotifications(ctx context.Context, limit int, lease time.Duration) ([]StoreNotification, error) {
	rows, err := l.db.Query(ctx, `UPDATE store_notifications n SET next_attempt_at = now() + $2::interval, attempts = n.attempts + 1
		WHERE (n.store, n.notification_id) IN (
			SELECT store, notification_id FROM store_notifications
			WHERE status = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING n.store, n.notification_id, n.kind, n.body, n.status, n.attempts, n.next_attempt_at, n.last_error, n.received_at, n.processed_at`,
		limit, lease)
	if err != nil {
		return nil, fmt.Errorf("entitlements: claim notifications: %w", err)
	}
	return pgx.CollectRows(rows, scanNotification)
}

func scanNotification(r pgx.CollectableRow) (StoreNotification, error) {
	var n StoreNotification
	err := r.Scan(&n.Store, &n.NotificationID, &n.Kind, &n.Body, &n.Status, &n.Attempts, &n.NextAttemptAt, &n.LastError, &n.ReceivedAt, &n.ProcessedAt)
	return n, err
}

// MaxNotificationAttempts is how often a notification is tried before it is
// parked as failed for an operator to look at.
const MaxNotificationAttempts = 12

// FinishNotification records the result of processing: done, or retried
// with exponential backoff (capped at an hour) until MaxNotificationAttempts.
func (l *Ledger) FinishNotification(ctx context.Context, n StoreNotification, procErr error) error {
	var err error
	if procErr == nil {
		_, err = l.db.Exec(ctx, `UPDATE store_notifications SET status = 'processed', processed_at = now(), last_error = ''
			WHERE store = $1 AND notification_id = $2`, n.Store, n.NotificationID)
	} else {
		backoff := min(time.Duration(1<<min(n.Attempts, 12))*time.Second, time.Hour)
		status := "pending"
		if n.Attempts >= MaxNotificationAttempts {
			status = "failed"
		}
		_, err = l.db.Exec(ctx, `UPDATE store_notifications SET status = $3, last_error = $4, next_attempt_at = now() + $5::interval
			WHERE store = $1 AND notification_id = $2`, n.Store, n.NotificationID, status, truncate(procErr.Error(), 2000), backoff)
	}
	if err != nil {
		return fmt.Errorf("entitlements: finish notification %s %s: %w", n.Store, n.NotificationID, err)
	}
	return nil
}

// Notifications lists the inbox, newest first, optionally by status.
func (l *Ledger) Notifications(ctx context.Context, status string, limit int) ([]StoreNotification, error) {
	rows, err := l.db.Query(ctx, `SELECT store, notification_id, kind, body, status, attempts, next_attempt_at, last_error, received_at, processed_at
		FROM store_notifications WHERE $1 = '' OR status = $1 ORDER BY received_at DESC LIMIT $2`, status, limit)
	if err != nil {
		return nil, fmt.Errorf("entitlements: list notifications: %w", err)
	}
	return pgx.CollectRows(rows, scanNotification)
}

// StorePurchaseRecord is a redeemed store purchase as admins see it.
type StorePurchaseRecord struct {
	Store                 string     `json:"store"`
	TransactionID         string     `json:"transaction_id"`
	OriginalTransactionID string     `json:"original_transaction_id"`
	PlayerID              string     `json:"player_id"`
	ProductID             string     `json:"product_id"`
	Environment           string     `json:"environment"`
	Quantity              int64      `json:"quantity"`
	PurchasedAt           time.Time  `json:"purchased_at"`
	ExpiresAt             *time.Time `json:"expires_at"`
	LedgerTransactionID   *int64     `json:"ledger_transaction_id"`
	PurchaseToken         string     `json:"-"`
	Consumable            bool       `json:"consumable"`
	AcknowledgedAt        *time.Time `json:"acknowledged_at"`
	RevokedAt             *time.Time `json:"revoked_at"`
	CreatedAt             time.Time  `json:"created_at"`
}

const storePurchaseColumns = `store, transaction_id, original_transaction_id, player_id, product_id, environment, quantity,
	purchased_at, expires_at, ledger_transaction_id, purchase_token, consumable, acknowledged_at, revoked_at, created_at`

func scanStorePurchase(r pgx.CollectableRow) (StorePurchaseRecord, error) {
	var p StorePurchaseRecord
	err := r.Scan(&p.Store, &p.TransactionID, &p.OriginalTransactionID, &p.PlayerID, &p.ProductID, &p.Environment, &p.Quantity,
		&p.PurchasedAt, &p.ExpiresAt, &p.LedgerTransactionID, &p.PurchaseToken, &p.Consumable, &p.AcknowledgedAt, &p.RevokedAt, &p.CreatedAt)
	return p, err
}

// StorePurchases lists a player's store purchases, newest first.
func (l *Ledger) StorePurchases(ctx context.Context, playerID string, limit int) ([]StorePurchaseRecord, error) {
	if err := ValidatePlayerID(playerID); err != nil {
		return nil, err
	}
	rows, err := l.db.Query(ctx, `SELECT `+storePurchaseColumns+` FROM store_purchases
		WHERE player_id = $1 ORDER BY created_at DESC LIMIT $2`, playerID, limit)
	if err != nil {
		return nil, fmt.Errorf("entitlements: store purchases of %q: %w", playerID, err)
	}
	return pgx.CollectRows(rows, scanStorePurchase)
}

// FindStorePurchase returns the purchase with exactly this store
// transaction id (or Google purchase token), or ErrStorePurchaseNotFound.
// Refunds use it: a refund names one transaction, never its renewals.
func (l *Ledger) FindStorePurchase(ctx context.Context, store, transactionID string) (StorePurchaseRecord, error) {
	return l.findStorePurchase(ctx, `store = $1 AND (transaction_id = $2 OR (purchase_token <> '' AND purchase_token = $2))`, store, transactionID)
}

// FindSubscriptionPurchase returns the latest purchase of a subscription by
// its original transaction id (how Apple names a subscription across
// renewals) or its Google purchase token, or ErrStorePurchaseNotFound.
func (l *Ledger) FindSubscriptionPurchase(ctx context.Context, store, id string) (StorePurchaseRecord, error) {
	return l.findStorePurchase(ctx, `store = $1 AND (original_transaction_id = $2 OR transaction_id = $2
		OR (purchase_token <> '' AND purchase_token = $2))`, store, id)
}

func (l *Ledger) findStorePurchase(ctx context.Context, where, store, id string) (StorePurchaseRecord, error) {
	if id == "" {
		return StorePurchaseRecord{}, ErrStorePurchaseNotFound
	}
	rows, err := l.db.Query(ctx, `SELECT `+storePurchaseColumns+` FROM store_purchases WHERE `+where+`
		ORDER BY purchased_at DESC LIMIT 1`, store, id)
	if err != nil {
		return StorePurchaseRecord{}, fmt.Errorf("entitlements: find store purchase: %w", err)
	}
	p, err := pgx.CollectExactlyOneRow(rows, scanStorePurchase)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrStorePurchaseNotFound
	}
	return p, err
}

// PendingAcknowledgements lists Google purchases granted but not yet
// acknowledged or consumed, oldest first: Google refunds purchases left
// unacknowledged for three days.
func (l *Ledger) PendingAcknowledgements(ctx context.Context, limit int) ([]StorePurchaseRecord, error) {
	rows, err := l.db.Query(ctx, `SELECT `+storePurchaseColumns+` FROM store_purchases
		WHERE store = 'google' AND acknowledged_at IS NULL AND revoked_at IS NULL AND next_acknowledge_at <= now()
		ORDER BY next_acknowledge_at LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("entitlements: pending acknowledgements: %w", err)
	}
	return pgx.CollectRows(rows, scanStorePurchase)
}

// MarkAcknowledged records that the store confirmed the acknowledgement.
func (l *Ledger) MarkAcknowledged(ctx context.Context, store, transactionID string) error {
	_, err := l.db.Exec(ctx, `UPDATE store_purchases SET acknowledged_at = now(), acknowledge_attempts = acknowledge_attempts + 1
		WHERE store = $1 AND transaction_id = $2`, store, transactionID)
	if err != nil {
		return fmt.Errorf("entitlements: mark acknowledged: %w", err)
	}
	return nil
}

// AcknowledgeFailed pushes the next acknowledgement attempt back with
// exponential backoff (capped at an hour), so failing rows do not starve
// newer ones.
func (l *Ledger) AcknowledgeFailed(ctx context.Context, store, transactionID string) error {
	_, err := l.db.Exec(ctx, `UPDATE store_purchases SET acknowledge_attempts = acknowledge_attempts + 1,
		next_acknowledge_at = now() + least(interval '1 hour', interval '1 second' * power(2, least(acknowledge_attempts, 12)))
		WHERE store = $1 AND transaction_id = $2`, store, transactionID)
	if err != nil {
		return fmt.Errorf("entitlements: acknowledge failed: %w", err)
	}
	return nil
}

// Debt is a refund's shortfall: what could not be taken back.
type Debt struct {
	PlayerID      string    `json:"player_id"`
	Store         string    `json:"store"`
	TransactionID string    `json:"transaction_id"`
	AssetType     string    `json:"asset_type"`
	AssetID       string    `json:"asset_id"`
	Amount        int64     `json:"amount"`
	Policy        string    `json:"policy"`
	CreatedAt     time.Time `json:"created_at"`
}

// Debts lists refund shortfalls still owed (a reversed refund cancels its
// debts), newest first, for one player or all.
func (l *Ledger) Debts(ctx context.Context, playerID string, limit int) ([]Debt, error) {
	rows, err := l.db.Query(ctx, `SELECT player_id, store, transaction_id, asset_type, asset_id, amount, policy, created_at
		FROM player_debts WHERE ($1 = '' OR player_id = $1) AND cancelled_at IS NULL ORDER BY id DESC LIMIT $2`, playerID, limit)
	if err != nil {
		return nil, fmt.Errorf("entitlements: debts: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Debt, error) {
		var d Debt
		err := r.Scan(&d.PlayerID, &d.Store, &d.TransactionID, &d.AssetType, &d.AssetID, &d.Amount, &d.Policy, &d.CreatedAt)
		return d, err
	})
}

// Refunds lists revoked store purchases, newest first.
func (l *Ledger) Refunds(ctx context.Context, limit int) ([]StorePurchaseRecord, error) {
	rows, err := l.db.Query(ctx, `SELECT `+storePurchaseColumns+` FROM store_purchases
		WHERE revoked_at IS NOT NULL ORDER BY revoked_at DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("entitlements: refunds: %w", err)
	}
	return pgx.CollectRows(rows, scanStorePurchase)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
