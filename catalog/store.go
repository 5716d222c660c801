package catalog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Sentinel errors.
var (
	// ErrNoCatalog means no catalog version has been published yet.
	ErrNoCatalog = errors.New("catalog: no catalog published")
	// ErrVersionNotFound means the requested version does not exist.
	ErrVersionNotFound = errors.New("catalog: version not found")
)

// Store reads and writes published catalog versions in Postgres
// (table catalog_versions).
type Store struct {
	db *pgxpool.Pool
}

// NewStore returns a Store using db.
func NewStore(db *pgxpool.Pool) *Store { return &Store{db: db} }

// VersionInfo describes one published version without its document.
type VersionInfo struct {
	Version   int64     `json:"version"`
	Note      string    `json:"note"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
}

// Publish validates c and stores it as a new version, recording note and the
// actor who published it. It returns the new version's snapshot; pass it to
// Live.Set so this replica serves it at once.
//
// A catalog that fails validation is not stored and the *ValidationError is
// returned unchanged, so callers can show every problem. Other errors come
// from encoding or Postgres.
func (s *Store) Publish(ctx context.Context, c *Catalog, note, actor string) (*Snapshot, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	// Store the canonical form, so the document in Postgres is exactly what
	// clients are served.
	own, doc, err := canonicalize(c)
	if err != nil {
		return nil, fmt.Errorf("catalog: publish: %w", err)
	}
	var (
		version int64
		at      time.Time
	)
	err = s.db.QueryRow(ctx,
		`INSERT INTO catalog_versions (document, note, created_by) VALUES ($1, $2, $3)
		 RETURNING version, created_at`,
		json.RawMessage(doc), note, actor).Scan(&version, &at)
	if err != nil {
		return nil, fmt.Errorf("catalog: publish: insert version: %w", err)
	}
	return build(version, at, own, doc), nil
}

// Latest returns the highest published version, or ErrNoCatalog.
func (s *Store) Latest(ctx context.Context) (*Snapshot, error) {
	snap, err := s.load(ctx, `SELECT version, document, created_at FROM catalog_versions ORDER BY version DESC LIMIT 1`)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNoCatalog
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: latest: %w", err)
	}
	return snap, nil
}

// Version returns published version v, or ErrVersionNotFound.
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

// LatestVersion returns the highest published version number without loading
// its document, or ErrNoCatalog. It is an index-only lookup, cheap enough to
// poll.
func (s *Store) LatestVersion(ctx context.Context) (int64, error) {
	var v *int64
	if err := s.db.QueryRow(ctx, `SELECT max(version) FROM catalog_versions`).Scan(&v); err != nil {
		return 0, fmt.Errorf("catalog: latest version: %w", err)
	}
	if v == nil {
		return 0, ErrNoCatalog
	}
	return *v, nil
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
	if limit <= 0 {
		limit = DefaultVersionsLimit
	}
	limit = min(limit, MaxVersionsLimit)
	rows, err := s.db.Query(ctx,
		`SELECT version, note, created_by, created_at FROM catalog_versions ORDER BY version DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: versions: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (VersionInfo, error) {
		var vi VersionInfo
		err := row.Scan(&vi.Version, &vi.Note, &vi.CreatedBy, &vi.CreatedAt)
		vi.CreatedAt = vi.CreatedAt.UTC()
		return vi, err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: versions: %w", err)
	}
	return list, nil
}
