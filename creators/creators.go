package creators

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/outbox"
)

// Creator statuses.
const (
	StatusActive    = "active"
	StatusSuspended = "suspended"
)

// Creator is a creator's account.
type Creator struct {
	ID          string    `json:"creator_id"`
	DisplayName string    `json:"display_name"`
	Status      string    `json:"status"`
	PlayerID    *string   `json:"player_id"`
	Codes       []string  `json:"codes"`
	CreatedAt   time.Time `json:"created_at"`
}

// Service manages creators, codes, earnings and payouts.
type Service struct {
	db      *pgxpool.Pool
	program Program
	now     func() time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithClock replaces time.Now (code expiry, hold, payouts), for tests.
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// New returns the service over db under program p.
func New(db *pgxpool.Pool, p Program, opts ...Option) *Service {
	s := &Service{db: db, program: p, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Program returns the program the service runs.
func (s *Service) Program() Program { return s.program }

var (
	idPattern   = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)
	codePattern = regexp.MustCompile(`^[A-Za-z0-9_-]{3,24}$`)
)

// ValidID reports whether id is a well-formed creator id: a catalog id
// (1-64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit).
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ValidCode reports whether code is 3-24 of A-Z, a-z, 0-9, '_', '-'.
func ValidCode(code string) bool { return codePattern.MatchString(code) }

func validName(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > 200 || !utf8.ValidString(s) || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", &InvalidError{Field: "display_name", Message: "is required, 1 to 200 characters without control characters"}
	}
	return s, nil
}

func validPlayer(p *string) error {
	if p != nil && (*p == "" || len(*p) > 128 || strings.ContainsFunc(*p, func(r rune) bool { return r <= 0x20 || r == 0x7f })) {
		return &InvalidError{Field: "player_id", Message: "must be 1 to 128 printable characters without spaces"}
	}
	return nil
}

// CreateRequest creates a creator, optionally with first codes.
type CreateRequest struct {
	ID          string   `json:"creator_id"`
	DisplayName string   `json:"display_name"`
	PlayerID    *string  `json:"player_id"`
	Codes       []string `json:"codes"`
}

// Create adds a creator (active) and its codes in one transaction, with its
// audit log entry (creator.create, attributed to by).
// Errors: *InvalidError, ErrExists, ErrCodeTaken, ErrPlayerLinked.
func (s *Service) Create(ctx context.Context, req CreateRequest, by audit.Attribution) (Creator, error) {
	if !ValidID(req.ID) {
		return Creator{}, &InvalidError{Field: "creator_id", Message: "must be 1 to 64 of a-z, 0-9, '_', '.', '-', starting with a letter or digit"}
	}
	name, err := validName(req.DisplayName)
	if err != nil {
		return Creator{}, err
	}
	if err := validPlayer(req.PlayerID); err != nil {
		return Creator{}, err
	}
	for _, c := range req.Codes {
		if !ValidCode(c) {
			return Creator{}, &InvalidError{Field: "codes", Message: fmt.Sprintf("%q: a code is 3 to 24 of A-Z, a-z, 0-9, '_', '-'", c)}
		}
	}
	err = pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO creators (creator_id, display_name, player_id, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $4)`, req.ID, name, req.PlayerID, s.now())
		if err != nil {
			return err
		}
		for _, c := range req.Codes {
			if err := addCode(ctx, tx, req.ID, c, s.now()); err != nil {
				return err
			}
		}
		return audit.Record(ctx, tx, by, "creator.create", target(req.ID), nil,
			map[string]any{"creator_id": req.ID, "display_name": name, "player_id": req.PlayerID, "codes": req.Codes})
	})
	if err != nil {
		return Creator{}, constraintErr(err)
	}
	return s.Get(ctx, req.ID)
}

// target names a creator in the audit log.
func target(id string) string { return "creator:" + id }

func addCode(ctx context.Context, tx pgx.Tx, creator, code string, now time.Time) error {
	_, err := tx.Exec(ctx, `INSERT INTO creator_codes (code_key, code, creator_id, created_at) VALUES (lower($1), $1, $2, $3)`, code, creator, now)
	return err
}

// constraintErr turns the unique violations of creators' tables into errors.
func constraintErr(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.ConstraintName {
		case "creators_pkey":
			return ErrExists
		case "creators_player_id_key":
			return ErrPlayerLinked
		case "creator_codes_pkey":
			return ErrCodeTaken
		case "creator_codes_creator_id_fkey":
			return ErrNotFound
		}
	}
	return fmt.Errorf("creators: %w", err)
}

const creatorSelect = `SELECT c.creator_id, c.display_name, c.status, c.player_id, c.created_at,
	coalesce((SELECT array_agg(k.code ORDER BY k.code_key) FROM creator_codes k WHERE k.creator_id = c.creator_id), '{}')
	FROM creators c`

func scanCreator(r pgx.CollectableRow) (Creator, error) {
	var c Creator
	err := r.Scan(&c.ID, &c.DisplayName, &c.Status, &c.PlayerID, &c.CreatedAt, &c.Codes)
	c.CreatedAt = c.CreatedAt.UTC()
	return c, err
}

// Get returns one creator with its codes. Errors: ErrNotFound.
func (s *Service) Get(ctx context.Context, id string) (Creator, error) {
	rows, _ := s.db.Query(ctx, creatorSelect+` WHERE c.creator_id = $1`, id)
	c, err := pgx.CollectExactlyOneRow(rows, scanCreator)
	if errors.Is(err, pgx.ErrNoRows) {
		return Creator{}, ErrNotFound
	}
	if err != nil {
		return Creator{}, fmt.Errorf("creators: get %q: %w", id, err)
	}
	return c, nil
}

// List returns creators in id order, after the id after, at most limit.
func (s *Service) List(ctx context.Context, after string, limit int) ([]Creator, error) {
	rows, _ := s.db.Query(ctx, creatorSelect+` WHERE c.creator_id > $1 ORDER BY c.creator_id LIMIT $2`, after, limit)
	out, err := pgx.CollectRows(rows, scanCreator)
	if err != nil {
		return nil, fmt.Errorf("creators: list: %w", err)
	}
	return out, nil
}

// SetStatus suspends or reactivates a creator. A suspended creator earns
// nothing new (the writer skips it, tips and codes are refused); what it
// earned stays. A change is in the audit log (creator.status, attributed
// to by); setting the status it has changes nothing and logs nothing.
// Errors: *InvalidError, ErrNotFound.
func (s *Service) SetStatus(ctx context.Context, id, status string, by audit.Attribution) (Creator, error) {
	if status != StatusActive && status != StatusSuspended {
		return Creator{}, &InvalidError{Field: "status", Message: "must be active or suspended"}
	}
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var before string
		err := tx.QueryRow(ctx, `SELECT status FROM creators WHERE creator_id = $1 FOR UPDATE`, id).Scan(&before)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil || before == status {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE creators SET status = $2, updated_at = $3 WHERE creator_id = $1`, id, status, s.now()); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "creator.status", target(id), map[string]string{"status": before}, map[string]string{"status": status})
	})
	if errors.Is(err, ErrNotFound) {
		return Creator{}, err
	}
	if err != nil {
		return Creator{}, fmt.Errorf("creators: set status: %w", err)
	}
	return s.Get(ctx, id)
}

// AddCode gives a creator one more code, in the audit log as
// creator.add_code attributed to by.
// Errors: *InvalidError, ErrNotFound, ErrCodeTaken.
func (s *Service) AddCode(ctx context.Context, id, code string, by audit.Attribution) (Creator, error) {
	if !ValidCode(code) {
		return Creator{}, &InvalidError{Field: "code", Message: "a code is 3 to 24 of A-Z, a-z, 0-9, '_', '-'"}
	}
	if err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		if err := addCode(ctx, tx, id, code, s.now()); err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "creator.add_code", target(id), nil, map[string]string{"code": code})
	}); err != nil {
		return Creator{}, constraintErr(err)
	}
	return s.Get(ctx, id)
}

// PlayerCode is the code a player has set.
type PlayerCode struct {
	PlayerID    string    `json:"player_id"`
	Code        string    `json:"code"`
	CreatorID   string    `json:"creator_id"`
	DisplayName string    `json:"display_name"`
	SetAt       time.Time `json:"set_at"`
	ExpiresAt   time.Time `json:"expires_at"`
	Active      bool      `json:"active"`
}

// SetPlayerCode makes code the player's active code for Program.CodeDays,
// replacing any other. Errors: *InvalidError, ErrUnknownCode, ErrSuspended,
// ErrOwnCode.
func (s *Service) SetPlayerCode(ctx context.Context, playerID, code string) (PlayerCode, error) {
	if err := validPlayer(&playerID); err != nil {
		return PlayerCode{}, err
	}
	if !ValidCode(code) {
		return PlayerCode{}, ErrUnknownCode
	}
	var pc PlayerCode
	var status string
	var linked *string
	err := s.db.QueryRow(ctx, `SELECT k.code, c.creator_id, c.display_name, c.status, c.player_id
		FROM creator_codes k JOIN creators c USING (creator_id) WHERE k.code_key = lower($1)`, code).
		Scan(&pc.Code, &pc.CreatorID, &pc.DisplayName, &status, &linked)
	if errors.Is(err, pgx.ErrNoRows) {
		return PlayerCode{}, ErrUnknownCode
	}
	if err != nil {
		return PlayerCode{}, fmt.Errorf("creators: look up code: %w", err)
	}
	if status != StatusActive {
		return PlayerCode{}, ErrSuspended
	}
	if !s.program.OwnCodeAllowed && linked != nil && *linked == playerID {
		return PlayerCode{}, ErrOwnCode
	}
	now := s.now().UTC().Truncate(time.Microsecond)
	pc.PlayerID, pc.SetAt, pc.ExpiresAt, pc.Active = playerID, now, now.Add(time.Duration(s.program.CodeDays)*24*time.Hour), true
	_, err = s.db.Exec(ctx, `INSERT INTO player_creator_codes (player_id, code_key, creator_id, set_at, expires_at)
		VALUES ($1, lower($2), $3, $4, $5)
		ON CONFLICT (player_id) DO UPDATE SET code_key = excluded.code_key, creator_id = excluded.creator_id,
			set_at = excluded.set_at, expires_at = excluded.expires_at`, playerID, pc.Code, pc.CreatorID, pc.SetAt, pc.ExpiresAt)
	if err != nil {
		return PlayerCode{}, fmt.Errorf("creators: set code: %w", err)
	}
	return pc, nil
}

// ClearPlayerCode removes the player's code; clearing none is no error.
func (s *Service) ClearPlayerCode(ctx context.Context, playerID string) error {
	if _, err := s.db.Exec(ctx, `DELETE FROM player_creator_codes WHERE player_id = $1`, playerID); err != nil {
		return fmt.Errorf("creators: clear code: %w", err)
	}
	return nil
}

// GetPlayerCode returns the player's code, active or expired; ok is false
// when none is set.
func (s *Service) GetPlayerCode(ctx context.Context, playerID string) (pc PlayerCode, ok bool, err error) {
	err = s.db.QueryRow(ctx, `SELECT p.player_id, k.code, c.creator_id, c.display_name, p.set_at, p.expires_at, c.status
		FROM player_creator_codes p JOIN creator_codes k USING (code_key) JOIN creators c ON c.creator_id = p.creator_id
		WHERE p.player_id = $1`, playerID).Scan(&pc.PlayerID, &pc.Code, &pc.CreatorID, &pc.DisplayName, &pc.SetAt, &pc.ExpiresAt, new(string))
	if errors.Is(err, pgx.ErrNoRows) {
		return PlayerCode{}, false, nil
	}
	if err != nil {
		return PlayerCode{}, false, fmt.Errorf("creators: get code: %w", err)
	}
	pc.SetAt, pc.ExpiresAt = pc.SetAt.UTC(), pc.ExpiresAt.UTC()
	pc.Active = s.now().Before(pc.ExpiresAt)
	return pc, true, nil
}

// insertEvent writes one journal event in tx (package outbox).
func insertEvent(ctx context.Context, tx pgx.Tx, typ string, player *string, data any) error {
	return outbox.Insert(ctx, tx, typ, player, data)
}
