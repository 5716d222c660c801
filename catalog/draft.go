package catalog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Draft is the one catalog designers edit before publishing (table
// catalog_drafts). It may be invalid: it is work in progress, validated when
// it is published. Until its first edit it is the live catalog.
type Draft struct {
	Catalog *Catalog
	// Revision counts edits; the ETag is "draft-<Revision>".
	Revision  int64
	UpdatedBy string
	UpdatedAt time.Time
	// Edited is false while the draft has never been edited and so is
	// whatever catalog is live: LiveVersion (0 when none).
	Edited      bool
	LiveVersion int64

	doc []byte // canonical JSON of Catalog
}

// ETag returns the draft's strong entity tag, like "draft-7" with the
// quotes. A draft never edited shows the live catalog, which changes with
// each publish, so its tag names the live version too: "draft-0.3".
func (d *Draft) ETag() string {
	if !d.Edited {
		return `"draft-0.` + strconv.FormatInt(d.LiveVersion, 10) + `"`
	}
	return `"draft-` + strconv.FormatInt(d.Revision, 10) + `"`
}

// JSON returns the draft's canonical JSON document. The caller must not
// modify it.
func (d *Draft) JSON() []byte { return d.doc }

// Entity is one currency, item, bundle or store product of the draft.
type Entity struct {
	Section Section
	ID      string
	// Value is a *Currency, *Item, *Bundle or *StoreProduct.
	Value any
	// ETag changes exactly when this entity does (see EntityETag).
	ETag string
	// DraftRevision is the draft's revision this entity was read from or
	// written to.
	DraftRevision int64
}

// querier is what both *pgxpool.Pool and pgx.Tx offer.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// loadDraft reads the draft; with lock, it locks the draft row for the rest
// of tx, which is how every catalog write serializes with the others.
func loadDraft(ctx context.Context, q querier, lock bool) (*Draft, error) {
	query := `SELECT document, revision, updated_by, updated_at FROM catalog_drafts`
	if lock {
		query += ` FOR UPDATE`
	}
	d := &Draft{}
	var stored []byte
	if err := q.QueryRow(ctx, query).Scan(&stored, &d.Revision, &d.UpdatedBy, &d.UpdatedAt); err != nil {
		return nil, fmt.Errorf("draft: %w", err)
	}
	d.UpdatedAt = d.UpdatedAt.UTC()
	d.Edited = stored != nil
	if stored == nil {
		err := q.QueryRow(ctx, `SELECT version, document FROM catalog_versions WHERE live_at <= now()
			ORDER BY version DESC LIMIT 1`).Scan(&d.LiveVersion, &stored)
		if errors.Is(err, pgx.ErrNoRows) {
			stored = []byte(`{}`)
		} else if err != nil {
			return nil, fmt.Errorf("draft: live document: %w", err)
		}
	}
	c, err := parseJSON(stored, stored, FormatJSON)
	if err != nil {
		return nil, fmt.Errorf("draft: stored document: %w", err)
	}
	d.Catalog = c
	if d.doc, err = encode(c); err != nil {
		return nil, fmt.Errorf("draft: %w", err)
	}
	return d, nil
}

func lockDraft(ctx context.Context, tx pgx.Tx) (*Draft, error) { return loadDraft(ctx, tx, true) }

// replaceDraft makes doc (canonical JSON) the draft, in tx, after d was
// locked. Writing the same document again changes nothing: no new revision
// and no audit row, so a CI job that pushes on every commit stays quiet.
func replaceDraft(ctx context.Context, tx pgx.Tx, d *Draft, doc []byte, by Attribution) (*Draft, error) {
	if bytes.Equal(doc, d.doc) {
		return d, nil
	}
	c, err := parseJSON(doc, doc, FormatJSON)
	if err != nil {
		return nil, fmt.Errorf("draft: %w", err)
	}
	nd := &Draft{Catalog: c, UpdatedBy: by.Actor, Edited: true, doc: doc}
	err = tx.QueryRow(ctx,
		`UPDATE catalog_drafts SET document = $1, revision = revision + 1, updated_by = $2, updated_at = now()
		 RETURNING revision, updated_at`, doc, by.Actor).Scan(&nd.Revision, &nd.UpdatedAt)
	if err != nil {
		return nil, fmt.Errorf("update draft: %w", err)
	}
	nd.UpdatedAt = nd.UpdatedAt.UTC()
	if err := audit(ctx, tx, by, "catalog.draft.replace", "catalog/draft", rawJSON(d.doc), rawJSON(doc)); err != nil {
		return nil, err
	}
	return nd, nil
}

func rawJSON(b []byte) any {
	if b == nil {
		return nil
	}
	return json.RawMessage(b)
}

// Draft returns the draft.
func (s *Store) Draft(ctx context.Context) (*Draft, error) {
	d, err := loadDraft(ctx, s.db, false)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return d, nil
}

// ReplaceDraft makes c the whole draft. ifMatch is an If-Match header value
// ("" for none) that the draft's ETag must match. It returns the draft now
// stored; a *PreconditionError when ifMatch does not match, or a Postgres
// error. c need not be valid.
func (s *Store) ReplaceDraft(ctx context.Context, c *Catalog, ifMatch string, by Attribution) (*Draft, error) {
	_, doc, err := canonicalize(c)
	if err != nil {
		return nil, fmt.Errorf("catalog: replace draft: %w", err)
	}
	var out *Draft
	err = s.transact(ctx, func(tx pgx.Tx) error {
		d, err := lockDraft(ctx, tx)
		if err != nil {
			return err
		}
		if !etagMatch(ifMatch, d.ETag(), true) {
			return &PreconditionError{ETag: d.ETag()}
		}
		out, err = replaceDraft(ctx, tx, d, doc, by)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: replace draft: %w", err)
	}
	return out, nil
}

// DraftEntity returns one entity of the draft, or an error wrapping
// ErrEntityNotFound.
func (s *Store) DraftEntity(ctx context.Context, sec Section, id string) (*Entity, error) {
	d, err := loadDraft(ctx, s.db, false)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	e, err := entityOf(d, sec, id)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	if e == nil {
		return nil, fmt.Errorf("catalog: %s %q: %w", sec.singular(), id, ErrEntityNotFound)
	}
	return e, nil
}

// entityOf returns the entity of d with this id, or nil.
func entityOf(d *Draft, sec Section, id string) (*Entity, error) {
	i := d.Catalog.find(sec, id)
	if i < 0 {
		return nil, nil
	}
	v := d.Catalog.entityAt(sec, i)
	etag, err := EntityETag(v)
	if err != nil {
		return nil, err
	}
	return &Entity{Section: sec, ID: id, Value: v, ETag: etag, DraftRevision: d.Revision}, nil
}

// PutDraftEntity creates or replaces one entity of the draft; v comes from
// ParseEntity for the same section and id. A new entity goes at the end of
// its section, a replaced one stays in place. ifMatch ("" for none) must
// match the entity's current ETag; an If-Match on an entity that does not
// exist fails. It returns the stored entity and whether it was created, a
// *PreconditionError, a *ParseError when the draft would grow too large, or
// a Postgres error.
func (s *Store) PutDraftEntity(ctx context.Context, sec Section, id string, v any, ifMatch string, by Attribution) (*Entity, bool, error) {
	var (
		out     *Entity
		created bool
	)
	err := s.transact(ctx, func(tx pgx.Tx) error {
		d, err := lockDraft(ctx, tx)
		if err != nil {
			return err
		}
		cur, err := entityOf(d, sec, id)
		if err != nil {
			return err
		}
		if cur == nil && ifMatch != "" || cur != nil && !etagMatch(ifMatch, cur.ETag, true) {
			return &PreconditionError{ETag: etagOf(cur)}
		}
		etag, err := EntityETag(v)
		if err != nil {
			return err
		}
		if cur != nil && cur.ETag == etag {
			out = cur // unchanged: no new revision, nothing to audit
			return nil
		}
		// Encode the old entity before put overwrites it in place.
		var before any
		if cur != nil {
			if before, err = auditJSON(cur.Value); err != nil {
				return err
			}
		}
		created = d.Catalog.put(sec, id, v)
		doc, err := encode(d.Catalog)
		if err != nil {
			return err
		}
		if len(doc) > maxConvertedSize {
			return &ParseError{Format: FormatJSON, Message: fmt.Sprintf("the draft would be larger than %d bytes", maxConvertedSize)}
		}
		rev, err := writeDraft(ctx, tx, doc, by)
		if err != nil {
			return err
		}
		if err := audit(ctx, tx, by, "catalog.draft.put", entityTarget(sec, id), before, v); err != nil {
			return err
		}
		out = &Entity{Section: sec, ID: id, Value: v, ETag: etag, DraftRevision: rev}
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("catalog: put %s %q: %w", sec.singular(), id, err)
	}
	return out, created, nil
}

// DeleteDraftEntity removes one entity from the draft. It returns an error
// wrapping ErrEntityNotFound, a *PreconditionError when ifMatch ("" for
// none) does not match the entity's ETag, or a Postgres error. It returns
// the draft's new revision.
func (s *Store) DeleteDraftEntity(ctx context.Context, sec Section, id string, ifMatch string, by Attribution) (int64, error) {
	var rev int64
	err := s.transact(ctx, func(tx pgx.Tx) error {
		d, err := lockDraft(ctx, tx)
		if err != nil {
			return err
		}
		cur, err := entityOf(d, sec, id)
		if err != nil {
			return err
		}
		if cur == nil {
			return ErrEntityNotFound
		}
		if !etagMatch(ifMatch, cur.ETag, true) {
			return &PreconditionError{ETag: cur.ETag}
		}
		before, err := auditJSON(cur.Value)
		if err != nil {
			return err
		}
		d.Catalog.remove(sec, d.Catalog.find(sec, id))
		doc, err := encode(d.Catalog)
		if err != nil {
			return err
		}
		if rev, err = writeDraft(ctx, tx, doc, by); err != nil {
			return err
		}
		return audit(ctx, tx, by, "catalog.draft.delete", entityTarget(sec, id), before, nil)
	})
	if err != nil {
		return 0, fmt.Errorf("catalog: delete %s %q: %w", sec.singular(), id, err)
	}
	return rev, nil
}

func etagOf(e *Entity) string {
	if e == nil {
		return ""
	}
	return e.ETag
}

func entityTarget(sec Section, id string) string { return "catalog/draft/" + string(sec) + "/" + id }

// writeDraft stores doc as the draft's next revision, in tx.
func writeDraft(ctx context.Context, tx pgx.Tx, doc []byte, by Attribution) (int64, error) {
	var rev int64
	err := tx.QueryRow(ctx,
		`UPDATE catalog_drafts SET document = $1, revision = revision + 1, updated_by = $2, updated_at = now()
		 RETURNING revision`, doc, by.Actor).Scan(&rev)
	if err != nil {
		return 0, fmt.Errorf("update draft: %w", err)
	}
	return rev, nil
}

// ValidateDraft checks the draft as Publish would. It returns the draft and
// every problem (none when it is valid), or a Postgres error.
func (s *Store) ValidateDraft(ctx context.Context) (*Draft, []Problem, error) {
	d, err := s.Draft(ctx)
	if err != nil {
		return nil, nil, err
	}
	var ve *ValidationError
	if err := Validate(d.Catalog); errors.As(err, &ve) {
		return d, ve.Problems, nil
	}
	problems, err := creatorProblems(ctx, s.db, d.Catalog)
	if err != nil {
		return nil, nil, err
	}
	if problems == nil {
		problems = []Problem{}
	}
	return d, problems, nil
}

// DiffDraft compares the draft with the live version, read in one snapshot
// of the database.
func (s *Store) DiffDraft(ctx context.Context) (*Diff, error) {
	var (
		d    *Draft
		live *Catalog
		from int64
	)
	err := pgx.BeginTxFunc(ctx, s.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		var err error
		if d, err = loadDraft(ctx, tx, false); err != nil {
			return err
		}
		var stored []byte
		err = tx.QueryRow(ctx, `SELECT version, document FROM catalog_versions WHERE live_at <= now()
			ORDER BY version DESC LIMIT 1`).Scan(&from, &stored)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("live document: %w", err)
		}
		live, err = parseJSON(stored, stored, FormatJSON)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("catalog: diff draft: %w", err)
	}
	if live == nil {
		live = &Catalog{}
	}
	diff := Compare(live, d.Catalog)
	diff.FromVersion = from
	diff.DraftETag = d.ETag()
	return diff, nil
}

// etagMatch evaluates an If-Match header against the current strong ETag:
// an empty header always matches, "*" matches whatever exists, and weak tags
// never match (If-Match uses strong comparison).
func etagMatch(header, current string, exists bool) bool {
	if strings.TrimSpace(header) == "" {
		return true
	}
	if !exists {
		return false
	}
	for _, c := range strings.Split(header, ",") {
		if c = strings.TrimSpace(c); c == "*" || c == current {
			return true
		}
	}
	return false
}
