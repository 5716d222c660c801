package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/outbox"
)

// Sentinel errors.
var (
	// ErrNoCatalog means no catalog version is live yet.
	ErrNoCatalog = errors.New("catalog: no catalog published")
	// ErrVersionNotFound means the requested version does not exist.
	ErrVersionNotFound = errors.New("catalog: version not found")
	// ErrEntityNotFound means the draft has no entity with that id.
	ErrEntityNotFound = errors.New("catalog: no such entity in the draft")
)

// PreconditionError means an If-Match precondition failed: the draft or the
// entity changed since the caller read it (or, for an entity, it does not
// exist). ETag is the current entity tag, "" when there is no entity.
type PreconditionError struct {
	ETag string
}

func (e *PreconditionError) Error() string {
	if e.ETag == "" {
		return "catalog: precondition failed: no current entity"
	}
	return "catalog: precondition failed: current ETag is " + e.ETag
}

// RequestError is a malformed option of a catalog operation (as opposed to a
// problem in the catalog document, which is a *ValidationError).
type RequestError struct {
	Field, Message string
}

func (e *RequestError) Error() string { return "catalog: " + e.Field + ": " + e.Message }

// ScheduleConflictError means a publish would shadow versions that are
// scheduled but not yet live: the live catalog is the highest version whose
// time has come, so they would never go live. The caller must confirm with
// PublishOptions.SupersedeScheduled.
type ScheduleConflictError struct {
	Pending []VersionInfo
}

func (e *ScheduleConflictError) Error() string {
	vs := make([]string, len(e.Pending))
	for i, v := range e.Pending {
		vs[i] = strconv.FormatInt(v.Version, 10)
	}
	return "catalog: publish would supersede scheduled version(s) " + strings.Join(vs, ", ")
}

// Store reads and writes the catalog in Postgres: published versions (table
// catalog_versions) and the draft (table catalog_drafts). Every write also
// records an audit_log row, through the SQL function coinop_audit, in the
// same transaction.
type Store struct {
	db       *pgxpool.Pool
	notifier *Notifier
	now      func() time.Time
}

// StoreOption configures a Store.
type StoreOption func(*Store)

// WithNotifier makes the Store announce every publish and rollback on n after
// it commits, so other replicas load it at once instead of at their next poll.
func WithNotifier(n *Notifier) StoreOption { return func(s *Store) { s.notifier = n } }

// NewStore returns a Store using db.
func NewStore(db *pgxpool.Pool, opts ...StoreOption) *Store {
	s := &Store{db: db, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Attribution names who makes a change and in which request; it is written
// to the audit log with the change.
type Attribution struct {
	// Actor is who: "key:alice", "admin-token", "cli:root".
	Actor string
	// RequestID is the X-Request-Id of the HTTP request, if any.
	RequestID string
}

// Version statuses, as VersionInfo.Status reports them.
const (
	// StatusLive is the version served now.
	StatusLive = "live"
	// StatusScheduled is a version that will go live at its live_at.
	StatusScheduled = "scheduled"
	// StatusSuperseded is a version whose live_at has not come but that
	// will never go live: a higher version goes live no later than it.
	StatusSuperseded = "superseded"
	// StatusPast is an older version, no longer live.
	StatusPast = "past"
)

// VersionInfo describes one published version without its document.
type VersionInfo struct {
	Version   int64     `json:"version"`
	Note      string    `json:"note"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// LiveAt is when the version goes (or went) live: CreatedAt for an
	// immediate publish, the requested time for a scheduled one.
	LiveAt time.Time `json:"live_at"`
	// SourceVersion is the version a rollback restored.
	SourceVersion *int64 `json:"source_version,omitempty"`
	Status        string `json:"status"`
}

// Published is the result of a publish or a rollback.
type Published struct {
	VersionInfo
	// Snapshot is the new version, ready for Live.Set when it is live now;
	// for a scheduled version Live picks it up at its time.
	Snapshot *Snapshot
}

// PublishOptions are the optional parts of a publish.
type PublishOptions struct {
	Note string
	// At schedules the version to go live at this time, which must be in
	// the future; nil publishes now.
	At *time.Time
	// SupersedeScheduled confirms that scheduled versions this publish
	// would shadow may never go live; without it such a publish fails with
	// a *ScheduleConflictError.
	SupersedeScheduled bool
	// IfMatch, for a publish of the draft, is an If-Match header value the
	// draft's ETag must match, so what is published is what was reviewed.
	IfMatch string
	By      Attribution
}

// MaxNoteLength is the longest publish note, in characters.
const MaxNoteLength = 1000

// liveVersionSQL selects the live version: the highest whose time has come.
const liveVersionSQL = `SELECT coalesce(max(version), 0) AS v FROM catalog_versions WHERE live_at <= now()`

// Publish validates c and publishes it now as a new version, recording note
// and the actor who published it; the draft becomes c too, so the next edit
// starts from what is live. It returns the new version's snapshot; pass it
// to Live.Set so this replica serves it at once.
//
// A catalog that fails validation is not stored and the *ValidationError is
// returned unchanged, so callers can show every problem. A pending scheduled
// version that this publish would shadow gives a *ScheduleConflictError.
// Other errors come from encoding or Postgres.
func (s *Store) Publish(ctx context.Context, c *Catalog, note, actor string) (*Snapshot, error) {
	p, err := s.PublishDocument(ctx, c, PublishOptions{Note: note, By: Attribution{Actor: actor}})
	if err != nil {
		return nil, err
	}
	return p.Snapshot, nil
}

// PublishDocument is Publish with every option: it replaces the draft with c
// and publishes it, in one transaction. opts.IfMatch is ignored.
func (s *Store) PublishDocument(ctx context.Context, c *Catalog, opts PublishOptions) (*Published, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	// Store the canonical form, so the document in Postgres is exactly what
	// clients are served.
	own, doc, err := canonicalize(c)
	if err != nil {
		return nil, fmt.Errorf("catalog: publish: %w", err)
	}
	var out *Published
	err = s.transact(ctx, func(tx pgx.Tx) error {
		d, err := lockDraft(ctx, tx)
		if err != nil {
			return err
		}
		// A draft never edited follows the live catalog, and so this
		// version once it is live; otherwise it becomes the document.
		if d.Edited || opts.At != nil {
			if _, err := replaceDraft(ctx, tx, d, doc, opts.By); err != nil {
				return err
			}
		}
		out, err = s.insertVersion(ctx, tx, own, doc, opts, nil, d.Revision)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: publish: %w", err)
	}
	s.announce(ctx, out)
	return out, nil
}

// PublishDraft validates the draft and publishes it as a new version, now or
// at opts.At. Errors: *PreconditionError when opts.IfMatch does not match the
// draft, *ValidationError when the draft is invalid, *RequestError for a bad
// note or time, *ScheduleConflictError, or a Postgres error.
func (s *Store) PublishDraft(ctx context.Context, opts PublishOptions) (*Published, error) {
	if err := s.checkOptions(opts); err != nil {
		return nil, err
	}
	var out *Published
	err := s.transact(ctx, func(tx pgx.Tx) error {
		d, err := lockDraft(ctx, tx)
		if err != nil {
			return err
		}
		if !etagMatch(opts.IfMatch, d.ETag(), true) {
			return &PreconditionError{ETag: d.ETag()}
		}
		if err := Validate(d.Catalog); err != nil {
			return err
		}
		own, doc, err := canonicalize(d.Catalog)
		if err != nil {
			return err
		}
		out, err = s.insertVersion(ctx, tx, own, doc, opts, nil, d.Revision)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: publish draft: %w", err)
	}
	s.announce(ctx, out)
	return out, nil
}

// Rollback publishes the document of an earlier version as a new version,
// live now, and resets the draft to it (the draft it replaces is kept in the
// audit log). opts.At and opts.IfMatch are ignored. Errors:
// ErrVersionNotFound, *ValidationError when the old document breaks a rule
// added since, *ScheduleConflictError, *RequestError, or a Postgres error.
func (s *Store) Rollback(ctx context.Context, version int64, opts PublishOptions) (*Published, error) {
	opts.At, opts.IfMatch = nil, ""
	if opts.Note == "" {
		opts.Note = fmt.Sprintf("rollback to version %d", version)
	}
	if err := s.checkOptions(opts); err != nil {
		return nil, err
	}
	var out *Published
	err := s.transact(ctx, func(tx pgx.Tx) error {
		d, err := lockDraft(ctx, tx)
		if err != nil {
			return err
		}
		var stored []byte
		err = tx.QueryRow(ctx, `SELECT document FROM catalog_versions WHERE version = $1`, version).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("version %d: %w", version, ErrVersionNotFound)
		}
		if err != nil {
			return err
		}
		old, err := parseJSON(stored, stored, FormatJSON)
		if err != nil {
			return fmt.Errorf("version %d: stored document: %w", version, err)
		}
		if err := Validate(old); err != nil {
			return err
		}
		own, doc, err := canonicalize(old)
		if err != nil {
			return err
		}
		if d.Edited {
			if _, err := replaceDraft(ctx, tx, d, doc, opts.By); err != nil {
				return err
			}
		}
		out, err = s.insertVersion(ctx, tx, own, doc, opts, &version, d.Revision)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: rollback to version %d: %w", version, err)
	}
	s.announce(ctx, out)
	return out, nil
}

func (s *Store) checkOptions(opts PublishOptions) error {
	if n := len([]rune(opts.Note)); n > MaxNoteLength {
		return &RequestError{Field: "note", Message: fmt.Sprintf("is %d characters; the most is %d", n, MaxNoteLength)}
	}
	if opts.At != nil {
		if !opts.At.After(s.now()) {
			return &RequestError{Field: "publish_at", Message: "must be in the future; leave it out to publish now"}
		}
		if y := opts.At.UTC().Year(); y > maxYear {
			return &RequestError{Field: "publish_at", Message: fmt.Sprintf("must be before the year %d", maxYear+1)}
		}
	}
	return nil
}

// insertVersion stores a new version in tx after checking that it shadows no
// scheduled version (unless the caller confirmed), and audits it.
func (s *Store) insertVersion(ctx context.Context, tx pgx.Tx, own *Catalog, doc []byte, opts PublishOptions, source *int64, draftRevision int64) (*Published, error) {
	if err := s.checkOptions(opts); err != nil {
		return nil, err
	}
	if problems, err := creatorProblems(ctx, tx, own); err != nil {
		return nil, err
	} else if len(problems) > 0 {
		return nil, &ValidationError{Problems: problems}
	}
	var prev int64
	if err := tx.QueryRow(ctx, liveVersionSQL).Scan(&prev); err != nil {
		return nil, fmt.Errorf("live version: %w", err)
	}
	if !opts.SupersedeScheduled {
		pending, err := shadowed(ctx, tx, opts.At)
		if err != nil {
			return nil, err
		}
		if len(pending) > 0 {
			return nil, &ScheduleConflictError{Pending: pending}
		}
	}
	out := &Published{}
	vi := &out.VersionInfo
	err := tx.QueryRow(ctx,
		`INSERT INTO catalog_versions (document, note, created_by, live_at, source_version)
		 VALUES ($1, $2, $3, coalesce($4, now()), $5)
		 RETURNING version, note, created_by, created_at, live_at, source_version`,
		json.RawMessage(doc), opts.Note, opts.By.Actor, opts.At, source).
		Scan(&vi.Version, &vi.Note, &vi.CreatedBy, &vi.CreatedAt, &vi.LiveAt, &vi.SourceVersion)
	if err != nil {
		return nil, fmt.Errorf("insert version: %w", err)
	}
	vi.CreatedAt, vi.LiveAt = vi.CreatedAt.UTC(), vi.LiveAt.UTC()
	vi.Status = StatusLive
	if opts.At != nil {
		vi.Status = StatusScheduled
	}
	action := "catalog.publish"
	after := map[string]any{"version": vi.Version, "note": vi.Note, "live_at": vi.LiveAt, "draft_revision": draftRevision}
	if source != nil {
		action = "catalog.rollback"
		after["source_version"] = *source
	}
	if opts.SupersedeScheduled {
		after["supersede_scheduled"] = true
	}
	if err := audit(ctx, tx, opts.By, action, "catalog/versions/"+strconv.FormatInt(vi.Version, 10),
		map[string]any{"live_version": prev}, after); err != nil {
		return nil, err
	}
	if err := outbox.Insert(ctx, tx, outbox.TypeCatalogPublished, nil, map[string]any{
		"version": vi.Version, "note": vi.Note, "live_at": vi.LiveAt, "status": vi.Status,
		"source_version": vi.SourceVersion, "created_by": vi.CreatedBy,
	}); err != nil {
		return nil, err
	}
	out.Snapshot = build(vi.Version, vi.CreatedAt, own, doc)
	return out, nil
}

// shadowed lists the scheduled versions that a new version going live at at
// (nil: now) would shadow for good.
func shadowed(ctx context.Context, tx pgx.Tx, at *time.Time) ([]VersionInfo, error) {
	rows, err := tx.Query(ctx, `
		SELECT c.version, c.note, c.created_by, c.created_at, c.live_at, c.source_version
		FROM catalog_versions c
		WHERE c.live_at > now() AND c.live_at >= coalesce($1, now())
		  AND NOT EXISTS (SELECT 1 FROM catalog_versions w WHERE w.version > c.version AND w.live_at <= c.live_at)
		ORDER BY c.version`, at)
	if err != nil {
		return nil, fmt.Errorf("scheduled versions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (VersionInfo, error) {
		var vi VersionInfo
		err := row.Scan(&vi.Version, &vi.Note, &vi.CreatedBy, &vi.CreatedAt, &vi.LiveAt, &vi.SourceVersion)
		vi.CreatedAt, vi.LiveAt, vi.Status = vi.CreatedAt.UTC(), vi.LiveAt.UTC(), StatusScheduled
		return vi, err
	})
	if err != nil {
		return nil, fmt.Errorf("scheduled versions: %w", err)
	}
	return list, nil
}

// announce tells other replicas about a committed version. It runs after
// the commit, and a failure only delays them to their next poll.
func (s *Store) announce(ctx context.Context, p *Published) {
	if s.notifier == nil || p == nil {
		return
	}
	if err := s.notifier.Notify(context.WithoutCancel(ctx), p.Version); err != nil {
		slog.WarnContext(ctx, "catalog change not announced; other replicas load it at their next poll",
			"version", p.Version, "err", err)
	}
}

// transact runs fn in a transaction, rolled back when fn fails or panics.
// Every write first locks the draft row (lockDraft), which serializes
// writers, so READ COMMITTED needs no retries.
func (s *Store) transact(ctx context.Context, fn func(pgx.Tx) error) error {
	return pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{}, fn)
}

// audit records one change in the audit log, in tx.
func audit(ctx context.Context, tx pgx.Tx, by Attribution, action, target string, before, after any) error {
	actor := by.Actor
	if actor == "" {
		actor = "unknown"
	}
	b, err := auditJSON(before)
	if err != nil {
		return err
	}
	a, err := auditJSON(after)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT coinop_audit($1, $2, $3, $4, $5, $6)`,
		actor, action, target, b, a, by.RequestID); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// auditJSON encodes v for a jsonb parameter; nil stays SQL NULL.
func auditJSON(v any) (any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if v == nil {
			return nil, nil
		}
		return v, nil
	}
	b, err := encodeValue(v)
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return json.RawMessage(b), nil
}

// Latest returns the live version (the highest whose live_at has passed),
// or ErrNoCatalog.
func (s *Store) Latest(ctx context.Context) (*Snapshot, error) {
	snap, err := s.load(ctx, `SELECT version, document, created_at FROM catalog_versions
		WHERE live_at <= now() ORDER BY version DESC LIMIT 1`)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoCatalog
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: latest: %w", err)
	}
	return snap, nil
}

// Version returns published version v, live or not, or ErrVersionNotFound.
func (s *Store) Version(ctx context.Context, v int64) (*Snapshot, error) {
	snap, err := s.load(ctx, `SELECT version, document, created_at FROM catalog_versions WHERE version = $1`, v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("catalog: version %d: %w", v, ErrVersionNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: version %d: %w", v, err)
	}
	return snap, nil
}

func (s *Store) load(ctx context.Context, query string, args ...any) (*Snapshot, error) {
	var (
		version int64
		doc     []byte
		at      time.Time
	)
	if err := s.db.QueryRow(ctx, query, args...).Scan(&version, &doc, &at); err != nil {
		return nil, err
	}
	return snapshotFromDocument(version, at, doc)
}

// LatestVersion returns the live version number without loading its
// document, or ErrNoCatalog. It is an index scan, cheap enough to poll.
func (s *Store) LatestVersion(ctx context.Context) (int64, error) {
	v, _, err := s.liveState(ctx)
	if err != nil {
		return 0, err
	}
	if v == 0 {
		return 0, ErrNoCatalog
	}
	return v, nil
}

// liveState returns the live version (0 when none) and how long until the
// next scheduled version that could replace it goes live (0 when none).
// Postgres' clock decides both, so replicas whose clocks disagree still
// switch together.
func (s *Store) liveState(ctx context.Context) (live int64, next time.Duration, err error) {
	var ms *int64
	err = s.db.QueryRow(ctx, `
		WITH live AS (`+liveVersionSQL+`)
		SELECT live.v, (SELECT ceil(extract(epoch FROM min(c.live_at) - now()) * 1000)::bigint
		                FROM catalog_versions c WHERE c.live_at > now() AND c.version > live.v)
		FROM live`).Scan(&live, &ms)
	if err != nil {
		return 0, 0, fmt.Errorf("catalog: latest version: %w", err)
	}
	if ms != nil {
		next = time.Duration(max(*ms, 1)) * time.Millisecond
	}
	return live, next, nil
}

// DefaultVersionsLimit and MaxVersionsLimit bound Versions.
const (
	DefaultVersionsLimit = 50
	MaxVersionsLimit     = 1000
)

// Versions lists published versions, newest first, at most limit of them
// (DefaultVersionsLimit when limit <= 0, capped at MaxVersionsLimit). It
// returns an empty list when nothing is published.
func (s *Store) Versions(ctx context.Context, limit int) ([]VersionInfo, error) {
	return s.VersionsBefore(ctx, 0, limit)
}

// VersionsBefore is Versions starting below version before (0: from the
// newest), for paging.
func (s *Store) VersionsBefore(ctx context.Context, before int64, limit int) ([]VersionInfo, error) {
	if limit <= 0 {
		limit = DefaultVersionsLimit
	}
	limit = min(limit, MaxVersionsLimit)
	rows, err := s.db.Query(ctx, `
		WITH live AS (`+liveVersionSQL+`)
		SELECT c.version, c.note, c.created_by, c.created_at, c.live_at, c.source_version,
		  CASE WHEN c.version = live.v THEN 'live'
		       WHEN c.live_at <= now() THEN 'past'
		       WHEN EXISTS (SELECT 1 FROM catalog_versions w WHERE w.version > c.version AND w.live_at <= c.live_at) THEN 'superseded'
		       ELSE 'scheduled' END
		FROM catalog_versions c, live
		WHERE $1 <= 0 OR c.version < $1
		ORDER BY c.version DESC LIMIT $2`, before, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: versions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (VersionInfo, error) {
		var vi VersionInfo
		err := row.Scan(&vi.Version, &vi.Note, &vi.CreatedBy, &vi.CreatedAt, &vi.LiveAt, &vi.SourceVersion, &vi.Status)
		vi.CreatedAt, vi.LiveAt = vi.CreatedAt.UTC(), vi.LiveAt.UTC()
		return vi, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: versions: %w", err)
	}
	return list, nil
}

// creatorProblems lists the items naming a creator that does not exist
// (table creators, package creators). Creators are never deleted, so a
// version that passed once stays valid.
func creatorProblems(ctx context.Context, q interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}, c *Catalog) ([]Problem, error) {
	ids := c.CreatorIDs()
	if len(ids) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `SELECT creator_id FROM creators WHERE creator_id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("catalog: creators: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("catalog: creators: %w", err)
	}
	known := map[string]bool{}
	for _, id := range found {
		known[id] = true
	}
	var out []Problem
	for i, it := range c.Items {
		if it.CreatorID != "" && !known[it.CreatorID] {
			out = append(out, Problem{Path: fmt.Sprintf("items[%d].creator_id", i), Message: fmt.Sprintf("no creator %q exists", it.CreatorID)})
		}
	}
	return out, nil
}
