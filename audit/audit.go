// Package audit owns the audit log: the append-only record of every admin
// write (catalog edits, publishes, rollbacks, key changes, player grants),
// with who did it, what changed before and after, and the request id.
//
// It owns the table audit_log and the SQL function coinop_audit
// (migrations/005). Writers record an entry inside the transaction of the
// change itself, by calling coinop_audit (Record here; catalog and the
// ledger's grant path call the SQL function directly), so a change and its
// entry commit together or not at all. Triggers refuse UPDATE, DELETE and
// TRUNCATE, so the application cannot rewrite history.
//
// audit is a domain package: it must not import fiber or the server package.
package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Attribution names who makes a change and in which request.
type Attribution struct {
	// Actor is who: "key:alice", "admin-token", "cli:root".
	Actor string
	// RequestID is the X-Request-Id of the HTTP request, if any.
	RequestID string
}

// Entry is one audit log row.
type Entry struct {
	ID     int64     `json:"id"`
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	// Before and After are the target's state around the change, null when
	// it did not exist (before a create, after a delete).
	Before    json.RawMessage `json:"before"`
	After     json.RawMessage `json:"after"`
	RequestID string          `json:"request_id"`
}

// Execer is what both *pgxpool.Pool and pgx.Tx offer; pass the transaction
// of the change.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Record writes one entry in q, which should be the transaction of the
// change. before and after are encoded as JSON; nil is stored as NULL.
func Record(ctx context.Context, q Execer, by Attribution, action, target string, before, after any) error {
	b, err := jsonOrNull(before)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	a, err := jsonOrNull(after)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	actor := by.Actor
	if actor == "" {
		actor = "unknown"
	}
	if _, err := q.Exec(ctx, `SELECT coinop_audit($1, $2, $3, $4, $5, $6)`, actor, action, target, b, a, by.RequestID); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

func jsonOrNull(v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}

// Filter selects entries. Zero fields do not filter.
type Filter struct {
	// Actor matches exactly.
	Actor string
	// Action and Target match exactly, or by prefix when they end in "*"
	// ("catalog.*", "catalog/draft/items/*").
	Action, Target string
	// Since is inclusive, Until exclusive.
	Since, Until time.Time
	// Cursor continues a listing: entries older than the one with this id.
	Cursor int64
	// Limit is 1..MaxLimit; 0 means DefaultLimit.
	Limit int
}

// Limits of one page.
const (
	DefaultLimit = 100
	MaxLimit     = 500
)

// Log reads the audit log.
type Log struct {
	db *pgxpool.Pool
}

// New returns a Log on db.
func New(db *pgxpool.Pool) *Log { return &Log{db: db} }

// List returns one page of entries matching f, newest first, and the cursor
// of the next page (0 on the last page). Errors come from Postgres.
func (l *Log) List(ctx context.Context, f Filter) (entries []Entry, next int64, err error) {
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var (
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Actor != "" {
		where = append(where, "actor = "+arg(f.Actor))
	}
	for _, m := range []struct{ col, val string }{{"action", f.Action}, {"target", f.Target}} {
		switch {
		case m.val == "":
		case strings.HasSuffix(m.val, "*"):
			where = append(where, m.col+" LIKE "+arg(likePrefix(strings.TrimSuffix(m.val, "*"))))
		default:
			where = append(where, m.col+" = "+arg(m.val))
		}
	}
	if !f.Since.IsZero() {
		where = append(where, "at >= "+arg(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "at < "+arg(f.Until))
	}
	if f.Cursor > 0 {
		where = append(where, "id < "+arg(f.Cursor))
	}
	query := `SELECT id, at, actor, action, target, before, after, request_id FROM audit_log`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	// One extra row tells whether there is a next page.
	query += " ORDER BY id DESC LIMIT " + arg(limit+1)
	rows, err := l.db.Query(ctx, query, args...)
	if err != nil {
		return nil, 0, fmt.Errorf("audit: list: %w", err)
	}
	entries, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Entry, error) {
		var e Entry
		err := row.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Before, &e.After, &e.RequestID)
		e.At = e.At.UTC()
		return e, err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("audit: list: %w", err)
	}
	if len(entries) > limit {
		entries = entries[:limit]
		next = entries[limit-1].ID
	}
	return entries, next, nil
}

// likePrefix escapes LIKE's wildcards in p and appends %.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}
