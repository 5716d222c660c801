package entitlements

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Pending Google Play purchases and the state of the store reconciliation
// sweep (migrations/013). Neither changes holdings: a pending purchase is
// granted through Redeem when it completes, and what the sweep finds goes
// into the notification inbox like a notification.

// RememberPendingPurchase records that player presented a purchase token
// whose payment is still pending. The first player to present it keeps it.
func (l *Ledger) RememberPendingPurchase(ctx context.Context, store, token, productID, playerID string) error {
	if err := ValidatePlayerID(playerID); err != nil {
		return err
	}
	if store == "" || token == "" || productID == "" {
		return &InvalidError{Field: "purchase", Message: "store, purchase token and product id are required"}
	}
	_, err := l.db.Exec(ctx, `INSERT INTO store_pending_purchases (store, purchase_token, product_id, player_id)
		VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`, store, token, productID, playerID)
	if err != nil {
		return fmt.Errorf("entitlements: remember pending purchase: %w", err)
	}
	return nil
}

// PendingPurchase is a purchase presented while its payment was pending.
type PendingPurchase struct {
	Store, PurchaseToken, ProductID, PlayerID string
	CreatedAt                                 time.Time
}

// FindPendingPurchase returns the pending purchase with this token, or
// ErrStorePurchaseNotFound.
func (l *Ledger) FindPendingPurchase(ctx context.Context, store, token string) (PendingPurchase, error) {
	p := PendingPurchase{Store: store, PurchaseToken: token}
	err := l.db.QueryRow(ctx, `SELECT product_id, player_id, created_at FROM store_pending_purchases
		WHERE store = $1 AND purchase_token = $2`, store, token).Scan(&p.ProductID, &p.PlayerID, &p.CreatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrStorePurchaseNotFound
	}
	if err != nil {
		return p, fmt.Errorf("entitlements: find pending purchase: %w", err)
	}
	return p, nil
}

// ForgetPendingPurchase drops a pending purchase once it was granted or
// cancelled.
func (l *Ledger) ForgetPendingPurchase(ctx context.Context, store, token string) error {
	if _, err := l.db.Exec(ctx, `DELETE FROM store_pending_purchases WHERE store = $1 AND purchase_token = $2`, store, token); err != nil {
		return fmt.Errorf("entitlements: forget pending purchase: %w", err)
	}
	return nil
}

// StoreSweep is the state of the reconciliation sweep of one store.
type StoreSweep struct {
	Store string `json:"store"`
	// Cursor is where the next sweep starts reading (the end of the last
	// successful one); nil before the first.
	Cursor         *time.Time `json:"cursor"`
	NextRunAt      time.Time  `json:"next_run_at"`
	LastStartedAt  *time.Time `json:"last_started_at"`
	LastFinishedAt *time.Time `json:"last_finished_at"`
	// LastFound and LastApplied count the last run: store records read,
	// and of those the ones new to the inbox.
	LastFound   int64 `json:"last_found"`
	LastApplied int64 `json:"last_applied"`
	// Found, Applied, Runs and Failures count since the row was created.
	Found     int64  `json:"found"`
	Applied   int64  `json:"applied"`
	Runs      int64  `json:"runs"`
	Failures  int64  `json:"failures"`
	LastError string `json:"last_error"`
	// Running is true while a replica holds the lease.
	Running bool `json:"running"`
}

// SweepLease is a claimed sweep: only its holder may finish it.
type SweepLease struct {
	Store  string
	Cursor *time.Time
	token  string
}

// ClaimSweep leases the sweep of store for lease when it is due (its next
// run has come and no other replica holds it); ok is false otherwise.
func (l *Ledger) ClaimSweep(ctx context.Context, store string, lease time.Duration) (SweepLease, bool, error) {
	if _, err := l.db.Exec(ctx, `INSERT INTO store_sweeps (store) VALUES ($1) ON CONFLICT DO NOTHING`, store); err != nil {
		return SweepLease{}, false, fmt.Errorf("entitlements: sweep %s: %w", store, err)
	}
	s := SweepLease{Store: store}
	err := l.db.QueryRow(ctx, `UPDATE store_sweeps SET lease_until = now() + $2 * interval '1 microsecond', lease_token = gen_random_uuid(),
			last_started_at = now()
		WHERE store = $1 AND next_run_at <= now() AND (lease_until IS NULL OR lease_until < now())
		RETURNING cursor_time, lease_token::text`, store, lease.Microseconds()).Scan(&s.Cursor, &s.token)
	if errors.Is(err, pgx.ErrNoRows) {
		return s, false, nil
	}
	if err != nil {
		return s, false, fmt.Errorf("entitlements: claim sweep %s: %w", store, err)
	}
	return s, true, nil
}

// FinishSweep records a sweep's result and schedules the next one after
// interval: on success the cursor moves to until; on failure (runErr) it
// stays, so the next sweep reads the same span again.
func (l *Ledger) FinishSweep(ctx context.Context, s SweepLease, until time.Time, found, applied int64, interval time.Duration, runErr error) error {
	var err error
	if runErr == nil {
		_, err = l.db.Exec(ctx, `UPDATE store_sweeps SET cursor_time = $3, last_found = $4, last_applied = $5,
				found = found + $4, applied = applied + $5, runs = runs + 1, last_error = '',
				last_finished_at = now(), next_run_at = now() + $6 * interval '1 microsecond', lease_until = NULL, lease_token = NULL
			WHERE store = $1 AND lease_token = $2::uuid`, s.Store, s.token, until, found, applied, interval.Microseconds())
	} else {
		_, err = l.db.Exec(ctx, `UPDATE store_sweeps SET last_found = $3, last_applied = $4,
				found = found + $3, applied = applied + $4, runs = runs + 1, failures = failures + 1, last_error = $5,
				last_finished_at = now(), next_run_at = now() + $6 * interval '1 microsecond', lease_until = NULL, lease_token = NULL
			WHERE store = $1 AND lease_token = $2::uuid`, s.Store, s.token, found, applied, truncate(runErr.Error(), 2000), interval.Microseconds())
	}
	if err != nil {
		return fmt.Errorf("entitlements: finish sweep %s: %w", s.Store, err)
	}
	return nil
}

// StoreSweeps lists the sweep state of every store swept so far.
func (l *Ledger) StoreSweeps(ctx context.Context) ([]StoreSweep, error) {
	rows, err := l.db.Query(ctx, `SELECT store, cursor_time, next_run_at, last_started_at, last_finished_at, last_found, last_applied,
			found, applied, runs, failures, last_error, coalesce(lease_until > now(), false)
		FROM store_sweeps ORDER BY store`)
	if err != nil {
		return nil, fmt.Errorf("entitlements: store sweeps: %w", err)
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (StoreSweep, error) {
		var s StoreSweep
		err := r.Scan(&s.Store, &s.Cursor, &s.NextRunAt, &s.LastStartedAt, &s.LastFinishedAt, &s.LastFound, &s.LastApplied,
			&s.Found, &s.Applied, &s.Runs, &s.Failures, &s.LastError, &s.Running)
		return s, err
	})
}
