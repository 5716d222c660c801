// Package outbox owns the events table (migrations/009): one row per
// posting that moved holdings and per catalog publish, written in the same
// transaction as the change (a transactional outbox), and the pull feed that
// reads them in commit order.
//
// Writers (entitlements' ledger writer, catalog's publish) call Lock, or
// queue LockSQL, just before inserting, in the transaction that inserts:
// the lock is held until commit, so ids are committed in order and a reader
// moving a cursor forward never skips an event committed later with a
// smaller id. It costs one lock per posting transaction (a group-commit
// batch takes it once), held for the final statement and the commit.
//
// outbox is a domain package: it must not import fiber or the server package.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LockSQL takes the advisory lock that orders event commits (key
// 0x636f696e6f70, "coinop") for the rest of the transaction.
const LockSQL = `SELECT pg_advisory_xact_lock(109330161364848)`

// Event types.
const (
	// TypeCatalogPublished: a catalog version was published (now or
	// scheduled).
	TypeCatalogPublished = "catalog.published"
	// LedgerPrefix starts the type of every posting's event: ledger.<kind>,
	// like ledger.purchase or ledger.award.
	LedgerPrefix = "ledger."
)

// Event is one row of the feed. ID is stable: a consumer de-duplicates on it.
type Event struct {
	ID        int64           `json:"id"`
	Type      string          `json:"type"`
	PlayerID  *string         `json:"player_id"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
}

// Insert writes one event inside tx, taking the ordering lock first.
func Insert(ctx context.Context, tx pgx.Tx, typ string, playerID *string, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("outbox: encode %s: %w", typ, err)
	}
	if _, err := tx.Exec(ctx, LockSQL); err != nil {
		return fmt.Errorf("outbox: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO events (type, player_id, data) VALUES ($1, $2, $3)`, typ, playerID, b); err != nil {
		return fmt.Errorf("outbox: insert %s: %w", typ, err)
	}
	return nil
}

// MaxPage is the most events one Read returns.
const MaxPage = 500

// Feed reads events.
type Feed struct {
	db   *pgxpool.Pool
	poll time.Duration
}

// NewFeed returns the feed over db.
func NewFeed(db *pgxpool.Pool) *Feed { return &Feed{db: db, poll: 100 * time.Millisecond} }

// readMargin is kept free of waiting before the caller's deadline, for the
// last read and the answer.
const readMargin = 250 * time.Millisecond

// Read returns up to limit events with ids above after, oldest first. With
// wait > 0 and nothing to return yet, it polls until an event commits or
// wait has passed, or ctx's deadline is near (then it returns none). Errors
// come from Postgres or a canceled ctx.
func (f *Feed) Read(ctx context.Context, after int64, limit int, wait time.Duration) ([]Event, error) {
	deadline := time.Now().Add(wait)
	// A wait longer than the caller's deadline ends, empty, just before it:
	// a long-poll that finds nothing is an empty answer, not a timeout.
	if d, ok := ctx.Deadline(); ok && d.Add(-readMargin).Before(deadline) {
		deadline = d.Add(-readMargin)
	}
	for {
		events, err := f.read(ctx, after, limit)
		if err != nil || len(events) > 0 || !time.Now().Before(deadline) {
			return events, err
		}
		t := time.NewTimer(min(f.poll, time.Until(deadline)))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

func (f *Feed) read(ctx context.Context, after int64, limit int) ([]Event, error) {
	rows, err := f.db.Query(ctx, `SELECT id, type, player_id, created_at, data FROM events
		WHERE id > $1 ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox: read: %w", err)
	}
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.ID, &e.Type, &e.PlayerID, &e.CreatedAt, &e.Data)
		e.CreatedAt = e.CreatedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: read: %w", err)
	}
	return events, nil
}
