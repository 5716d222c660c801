package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/audit"
)

// Errors.
var (
	// ErrNotFound means no endpoint has that id.
	ErrNotFound = errors.New("webhooks: endpoint not found")
	// ErrEventNotFound means a redelivery named an event that does not exist.
	ErrEventNotFound = errors.New("webhooks: event not found")
)

// InvalidError is a refused endpoint setting or redelivery request; Field
// names the offending field.
type InvalidError struct {
	Field, Reason string
}

func (e *InvalidError) Error() string { return "webhooks: " + e.Field + ": " + e.Reason }

// SecretPrefix starts every signing secret, as the Standard Webhooks
// libraries expect: whsec_ and the base64 of 32 random bytes.
const SecretPrefix = "whsec_"

// RotationOverlap is how long the previous secret still signs (a second
// signature in webhook-signature) after a rotation.
const RotationOverlap = 24 * time.Hour

// Endpoint is a registered receiver as listed; its secret is never part of
// it.
type Endpoint struct {
	ID          int64  `json:"id"`
	URL         string `json:"url"`
	Description string `json:"description"`
	// EventTypes filters what is delivered: exact types or prefixes ending
	// in ".*"; null means every event.
	EventTypes     []string   `json:"event_types"`
	Enabled        bool       `json:"enabled"`
	DisabledReason string     `json:"disabled_reason,omitempty"`
	FailingSince   *time.Time `json:"failing_since"`
	CreatedAt      time.Time  `json:"created_at"`
	CreatedBy      string     `json:"created_by"`
	UpdatedAt      time.Time  `json:"updated_at"`
}

// Settings is what a caller sets on an endpoint; nil fields are left as
// they are by Update (and take their defaults in Create).
type Settings struct {
	URL         *string
	Description *string
	// EventTypes: a pointer to nil means every event.
	EventTypes *[]string
	Enabled    *bool
}

// Endpoints manages webhook endpoints in Postgres.
type Endpoints struct {
	db *pgxpool.Pool
	// allowInsecure accepts http:// URLs (development only).
	allowInsecure bool
}

// NewEndpoints returns the endpoint registry on db. allowInsecure accepts
// http:// URLs, for development; otherwise https is required.
func NewEndpoints(db *pgxpool.Pool, allowInsecure bool) *Endpoints {
	return &Endpoints{db: db, allowInsecure: allowInsecure}
}

// typePattern is an event type (see migrations/010) or a prefix ending in
// ".*".
var typePattern = regexp.MustCompile(`^[a-z]+(\.[a-z_]+|\.\*)$`)

// MaxEventTypes bounds an endpoint's filter.
const MaxEventTypes = 50

// ValidateURL refuses what the worker must not post to: anything but an
// absolute https URL (http too when insecure is allowed) with a host, and
// URLs with credentials (they would show in listings and logs) or a
// fragment.
func ValidateURL(raw string, allowInsecure bool) error {
	bad := func(reason string) error { return &InvalidError{Field: "url", Reason: reason} }
	if raw == "" || len(raw) > 2048 {
		return bad("must be 1 to 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("is not a URL")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowInsecure:
	case u.Scheme == "http":
		return bad("must use https (http is accepted only with COINOP_WEBHOOK_ALLOW_INSECURE)")
	default:
		return bad("must be an https URL")
	}
	if u.Hostname() == "" || u.Opaque != "" {
		return bad("must name a host")
	}
	if u.User != nil {
		return bad("must not carry credentials")
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return bad("must not have a fragment")
	}
	if strings.ContainsAny(raw, " \t\r\n") {
		return bad("must not contain spaces")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return bad("has an invalid port")
		}
	}
	return nil
}

// ValidateEventTypes checks a filter: 1..MaxEventTypes exact types or
// prefixes ending in ".*".
func ValidateEventTypes(types []string) error {
	if types == nil {
		return nil
	}
	if len(types) == 0 || len(types) > MaxEventTypes {
		return &InvalidError{Field: "event_types", Reason: fmt.Sprintf("must list 1 to %d types, or be null for every event", MaxEventTypes)}
	}
	for _, t := range types {
		if !typePattern.MatchString(t) {
			return &InvalidError{Field: "event_types", Reason: fmt.Sprintf("%q is not an event type like ledger.purchase or a prefix like ledger.*", t)}
		}
	}
	return nil
}

func validateDescription(d string) error {
	if len(d) > 500 {
		return &InvalidError{Field: "description", Reason: "must be at most 500 bytes"}
	}
	return nil
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("webhooks: secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

const endpointColumns = `id, url, description, event_types, enabled, disabled_reason, failing_since, created_at, created_by, updated_at`

func scanEndpoint(row pgx.Row) (Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.URL, &e.Description, &e.EventTypes, &e.Enabled, &e.DisabledReason, &e.FailingSince, &e.CreatedAt, &e.CreatedBy, &e.UpdatedAt)
	e.CreatedAt, e.UpdatedAt = e.CreatedAt.UTC(), e.UpdatedAt.UTC()
	if e.FailingSince != nil {
		t := e.FailingSince.UTC()
		e.FailingSince = &t
	}
	return e, err
}

func target(id int64) string { return "webhooks/" + strconv.FormatInt(id, 10) }

// Create registers an endpoint and returns it with its signing secret, the
// only time the secret is returned. The endpoint receives the events
// committed after its creation. Errors: *InvalidError, or Postgres's.
func (s *Endpoints) Create(ctx context.Context, set Settings, by audit.Attribution) (Endpoint, string, error) {
	if set.URL == nil {
		return Endpoint{}, "", &InvalidError{Field: "url", Reason: "is required"}
	}
	if err := ValidateURL(*set.URL, s.allowInsecure); err != nil {
		return Endpoint{}, "", err
	}
	var types []string
	if set.EventTypes != nil {
		types = *set.EventTypes
	}
	if err := ValidateEventTypes(types); err != nil {
		return Endpoint{}, "", err
	}
	desc := ""
	if set.Description != nil {
		desc = *set.Description
	}
	if err := validateDescription(desc); err != nil {
		return Endpoint{}, "", err
	}
	enabled := set.Enabled == nil || *set.Enabled
	secret, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	var e Endpoint
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		// The cursor starts at the last committed event: taking the
		// outbox's ordering lock first means no event still in flight
		// commits below it.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(109330161364848)`); err != nil {
			return err
		}
		e, err = scanEndpoint(tx.QueryRow(ctx, `INSERT INTO webhook_endpoints (url, description, event_types, secret, enabled, created_by, cursor)
			VALUES ($1, $2, $3, $4, $5, $6, (SELECT coalesce(max(id), 0) FROM events))
			RETURNING `+endpointColumns, *set.URL, desc, types, secret, enabled, actor(by)))
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "webhook.create", target(e.ID), nil, e)
	})
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhooks: create: %w", err)
	}
	return e, secret, nil
}

func actor(by audit.Attribution) string {
	if by.Actor == "" {
		return "unknown"
	}
	return by.Actor
}

// List returns every endpoint, oldest first.
func (s *Endpoints) List(ctx context.Context) ([]Endpoint, error) {
	rows, err := s.db.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, fmt.Errorf("webhooks: list: %w", err)
	}
	return list, nil
}

// Get returns one endpoint. Errors: ErrNotFound, or Postgres's.
func (s *Endpoints) Get(ctx context.Context, id int64) (Endpoint, error) {
	e, err := scanEndpoint(s.db.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, ErrNotFound
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: get %d: %w", id, err)
	}
	return e, nil
}

// Update changes the fields set. Enabling an endpoint clears its failure
// record and delivers what it missed while disabled. Errors: ErrNotFound,
// *InvalidError, or Postgres's.
func (s *Endpoints) Update(ctx context.Context, id int64, set Settings, by audit.Attribution) (Endpoint, error) {
	if set.URL != nil {
		if err := ValidateURL(*set.URL, s.allowInsecure); err != nil {
			return Endpoint{}, err
		}
	}
	if set.EventTypes != nil {
		if err := ValidateEventTypes(*set.EventTypes); err != nil {
			return Endpoint{}, err
		}
	}
	if set.Description != nil {
		if err := validateDescription(*set.Description); err != nil {
			return Endpoint{}, err
		}
	}
	var after Endpoint
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		before, err := scanEndpoint(tx.QueryRow(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		next := before
		if set.URL != nil {
			next.URL = *set.URL
		}
		if set.Description != nil {
			next.Description = *set.Description
		}
		if set.EventTypes != nil {
			next.EventTypes = *set.EventTypes
		}
		reason := before.DisabledReason
		if set.Enabled != nil {
			next.Enabled = *set.Enabled
			if *set.Enabled {
				reason = ""
			} else if !before.Enabled && reason != "" {
				// Disabling what the worker disabled keeps its reason.
			} else {
				reason = "disabled by " + actor(by)
			}
		}
		after, err = scanEndpoint(tx.QueryRow(ctx, `UPDATE webhook_endpoints SET url = $2, description = $3, event_types = $4,
			enabled = $5, disabled_reason = $6, updated_at = now(),
			failing_since = CASE WHEN $5 AND NOT enabled THEN NULL ELSE failing_since END
			WHERE id = $1 RETURNING `+endpointColumns, id, next.URL, next.Description, next.EventTypes, next.Enabled, reason))
		if err != nil {
			return err
		}
		action := "webhook.update"
		if before.Enabled != after.Enabled {
			action = map[bool]string{true: "webhook.enable", false: "webhook.disable"}[after.Enabled]
		}
		return audit.Record(ctx, tx, by, action, target(id), before, after)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, ErrNotFound
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: update %d: %w", id, err)
	}
	return after, nil
}

// Delete removes an endpoint and its deliveries. Errors: ErrNotFound, or
// Postgres's.
func (s *Endpoints) Delete(ctx context.Context, id int64, by audit.Attribution) (Endpoint, error) {
	var before Endpoint
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var err error
		before, err = scanEndpoint(tx.QueryRow(ctx, `DELETE FROM webhook_endpoints WHERE id = $1 RETURNING `+endpointColumns, id))
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "webhook.delete", target(id), before, nil)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, ErrNotFound
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhooks: delete %d: %w", id, err)
	}
	return before, nil
}

// RotateSecret gives the endpoint a new secret and returns it (the only
// time it is shown). The old secret keeps signing too, as a second
// signature, for RotationOverlap. Errors: ErrNotFound, or Postgres's.
func (s *Endpoints) RotateSecret(ctx context.Context, id int64, by audit.Attribution) (Endpoint, string, error) {
	secret, err := newSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	var e Endpoint
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		e, err = scanEndpoint(tx.QueryRow(ctx, `UPDATE webhook_endpoints SET previous_secret = secret, secret = $2,
			previous_secret_until = now() + $3::interval, updated_at = now()
			WHERE id = $1 RETURNING `+endpointColumns, id, secret, RotationOverlap.String()))
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "webhook.rotate_secret", target(id), nil, map[string]any{"previous_secret_until": e.UpdatedAt.Add(RotationOverlap)})
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return Endpoint{}, "", ErrNotFound
	}
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhooks: rotate %d: %w", id, err)
	}
	return e, secret, nil
}

// Redelivery names what to send again: one event, or the events created
// in [Since, Until).
type Redelivery struct {
	EventID      int64
	Since, Until time.Time
}

// MaxRedelivery is the most events one redelivery request queues.
const MaxRedelivery = 10_000

// Redeliver queues the events named for another round of attempts on the
// endpoint (a fresh retry schedule), whether or not they were delivered
// before. One event is sent even if the endpoint's filter would skip it; a
// time range sends the events that match the filter. It returns how many
// deliveries were queued. Errors: ErrNotFound, ErrEventNotFound,
// *InvalidError, or Postgres's.
func (s *Endpoints) Redeliver(ctx context.Context, id int64, r Redelivery, by audit.Attribution) (int64, error) {
	byEvent := r.EventID != 0
	switch {
	case byEvent && (!r.Since.IsZero() || !r.Until.IsZero()):
		return 0, &InvalidError{Field: "event_id", Reason: "give either event_id or since and until, not both"}
	case !byEvent && (r.Since.IsZero() || r.Until.IsZero()):
		return 0, &InvalidError{Field: "since", Reason: "give event_id, or both since and until"}
	case !byEvent && !r.Since.Before(r.Until):
		return 0, &InvalidError{Field: "until", Reason: "must be after since"}
	case r.EventID < 0:
		return 0, &InvalidError{Field: "event_id", Reason: "must be a positive event id"}
	}
	var n int64
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var cursor int64
		var types []string
		if err := tx.QueryRow(ctx, `SELECT cursor, event_types FROM webhook_endpoints WHERE id = $1 FOR UPDATE`, id).Scan(&cursor, &types); err != nil {
			return err
		}
		var sel string
		var args []any
		if byEvent {
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE id = $1)`, r.EventID).Scan(&exists); err != nil {
				return err
			}
			if !exists {
				return ErrEventNotFound
			}
			sel, args = `SELECT id FROM events WHERE id = $2`, []any{id, r.EventID}
		} else {
			// Events after the cursor are fanned out by the worker anyway.
			sel = `SELECT id FROM events WHERE created_at >= $2 AND created_at < $3 AND id <= $4 AND ` + matchSQL("type", "$5") + ` ORDER BY id LIMIT $6`
			args = []any{id, r.Since, r.Until, cursor, types, MaxRedelivery}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (endpoint_id, event_id) `+strings.Replace(sel, "SELECT id", "SELECT $1::bigint, id", 1)+`
			ON CONFLICT (endpoint_id, event_id) DO UPDATE SET status = 'pending', attempts = 0, next_attempt_at = now(),
				lease_until = NULL, lease_token = NULL, last_error = '', delivered_at = NULL`, args...)
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		what := map[string]any{"queued": n}
		if byEvent {
			what["event_id"] = r.EventID
		} else {
			what["since"], what["until"] = r.Since.UTC(), r.Until.UTC()
		}
		return audit.Record(ctx, tx, by, "webhook.redeliver", target(id), nil, what)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, ErrNotFound
	}
	if errors.Is(err, ErrEventNotFound) {
		return 0, err
	}
	if err != nil {
		return 0, fmt.Errorf("webhooks: redeliver %d: %w", id, err)
	}
	return n, nil
}

// matchSQL is the filter test of an event type column against an
// endpoint's event_types parameter: NULL matches everything, an entry
// ending in ".*" matches by prefix.
func matchSQL(col, types string) string {
	return `(` + types + `::text[] IS NULL OR ` + col + ` = ANY(` + types + `::text[]) OR EXISTS (SELECT 1 FROM unnest(` + types + `::text[]) p
		WHERE p LIKE '%.*' AND starts_with(` + col + `, left(p, -1))))`
}
