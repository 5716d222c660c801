package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/sync/singleflight"

	"github.com/coinop/coinop/audit"
)

// Errors.
var (
	// ErrUnknownKey means the token is not an active key: never issued,
	// revoked, or not a key at all.
	ErrUnknownKey = errors.New("access: unknown or revoked key")
	// ErrKeyNotFound means no key has that name or id.
	ErrKeyNotFound = errors.New("access: key not found")
	// ErrNameTaken means a key (possibly revoked) already has that name.
	// Names are never reused, so the audit log's actors stay unambiguous.
	ErrNameTaken = errors.New("access: key name already used")
)

// KeyPrefix starts every key, so a leaked one is easy to recognise (secret
// scanners, log filters) and a token that is not a key costs no database
// lookup.
const KeyPrefix = "coinop_ak_"

// keyLen is the length of a key: the prefix and 32 random bytes in
// unpadded base64url.
var keyLen = len(KeyPrefix) + base64.RawURLEncoding.EncodedLen(32)

// DefaultCacheTTL is how long a verified key is trusted without asking
// Postgres again, when KeysConfig.CacheTTL is zero.
const DefaultCacheTTL = 10 * time.Second

// maxCached bounds the verified keys kept, and maxMisses the made-up ones
// remembered as unknown: a flood of made-up keys fills only the second,
// never pushes a valid key out of the first, and costs one lookup each per
// TTL at most.
const (
	maxCached = 10_000
	maxMisses = 10_000
)

// Key is an admin API key as listed; the secret itself is never stored.
type Key struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
	// Roles as granted; see Principal.Can for what they imply.
	Roles []Role `json:"roles"`
	// Prefix is the first characters of the key, to recognise it.
	Prefix     string     `json:"prefix"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	// Limits bound a game-server key (see Limits); null means none.
	Limits    *Limits    `json:"limits"`
	RevokedAt *time.Time `json:"revoked_at"`
	RevokedBy string     `json:"revoked_by,omitempty"`
}

// KeysConfig configures Keys.
type KeysConfig struct {
	// CacheTTL is how long a verified key (or a miss) is cached; 0 means
	// DefaultCacheTTL.
	CacheTTL time.Duration
	Logger   *slog.Logger
}

// Keys creates, lists, revokes and verifies admin API keys (table admin_keys).
type Keys struct {
	db    *pgxpool.Pool
	ttl   time.Duration
	log   *slog.Logger
	now   func() time.Time
	group singleflight.Group

	mu     sync.RWMutex
	cache  map[[32]byte]cached    // verified keys
	misses map[[32]byte]time.Time // unknown keys, by when they were looked up
}

type cached struct {
	p       Principal
	ok      bool // false: remembered as unknown
	checked time.Time
}

// NewKeys returns Keys on db.
func NewKeys(db *pgxpool.Pool, cfg KeysConfig) *Keys {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Keys{db: db, ttl: cfg.CacheTTL, log: cfg.Logger, now: time.Now, cache: map[[32]byte]cached{}, misses: map[[32]byte]time.Time{}}
}

// CacheTTL returns how long a verified key is trusted before Postgres is
// asked again, which bounds how long a revoked key keeps working on other
// replicas.
func (k *Keys) CacheTTL() time.Duration { return k.ttl }

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

// ValidateName checks a key name: 1-64 characters from A-Z a-z 0-9 _ . @ -,
// starting with a letter or digit, and not all digits (so "revoke 12" can
// only mean the key with id 12).
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return &InvalidError{Field: "name", Message: "use 1-64 characters from A-Z, a-z, 0-9, '_', '.', '@' and '-', starting with a letter or digit"}
	}
	if _, err := strconv.ParseInt(name, 10, 64); err == nil {
		return &InvalidError{Field: "name", Message: "must not be a number, which would read as a key id"}
	}
	return nil
}

// Create makes a new key with these roles and returns it with its secret,
// which is shown this once and cannot be recovered. Errors: *InvalidError,
// ErrNameTaken, or a Postgres error.
func (k *Keys) Create(ctx context.Context, name string, roles []Role, by audit.Attribution) (Key, string, error) {
	return k.CreateLimited(ctx, name, roles, nil, by)
}

// CreateLimited is Create with limits for a game-server key (nil: none).
func (k *Keys) CreateLimited(ctx context.Context, name string, roles []Role, limits *Limits, by audit.Attribution) (Key, string, error) {
	if err := ValidateName(name); err != nil {
		return Key{}, "", err
	}
	if err := limits.Validate(); err != nil {
		return Key{}, "", err
	}
	limits.normalize()
	rawLimits, err := encodeLimits(limits)
	if err != nil {
		return Key{}, "", err
	}
	given := make([]string, len(roles))
	for i, r := range roles {
		given[i] = string(r)
	}
	// Parse again: callers may pass roles that were never checked.
	roles, err = ParseRoles(given...)
	if err != nil {
		return Key{}, "", err
	}
	names := make([]string, len(roles))
	for i, r := range roles {
		names[i] = string(r)
	}
	secret, err := newSecret()
	if err != nil {
		return Key{}, "", err
	}
	hash := sha256.Sum256([]byte(secret))
	key := Key{Name: name, Roles: roles, Prefix: secret[:len(KeyPrefix)+4], CreatedBy: by.Actor, Limits: limits}
	err = pgx.BeginTxFunc(ctx, k.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx,
			`INSERT INTO admin_keys (name, roles, key_hash, key_prefix, created_by, limits)
			 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id, created_at`,
			name, names, hash[:], key.Prefix, by.Actor, rawLimits).Scan(&key.ID, &key.CreatedAt)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "admin_keys_name_key" {
			return ErrNameTaken
		}
		if err != nil {
			return err
		}
		key.CreatedAt = key.CreatedAt.UTC()
		return audit.Record(ctx, tx, by, "key.create", keyTarget(key.ID), nil, key)
	})
	if err != nil {
		return Key{}, "", fmt.Errorf("access: create key %q: %w", name, err)
	}
	return key, secret, nil
}

func newSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("access: random key: %w", err)
	}
	return KeyPrefix + base64.RawURLEncoding.EncodeToString(b), nil
}

func keyTarget(id int64) string { return "keys/" + strconv.FormatInt(id, 10) }

const keyColumns = `id, name, roles, key_prefix, created_by, created_at, last_used_at, revoked_at, coalesce(revoked_by, ''), limits`

func scanKey(row pgx.Row) (Key, error) {
	var (
		key   Key
		roles []string
		lim   []byte
	)
	err := row.Scan(&key.ID, &key.Name, &roles, &key.Prefix, &key.CreatedBy, &key.CreatedAt, &key.LastUsedAt, &key.RevokedAt, &key.RevokedBy, &lim)
	if err != nil {
		return Key{}, err
	}
	if key.Limits, err = decodeLimits(lim); err != nil {
		return Key{}, err
	}
	key.Roles = make([]Role, len(roles))
	for i, r := range roles {
		key.Roles[i] = Role(r)
	}
	key.CreatedAt = key.CreatedAt.UTC()
	key.LastUsedAt, key.RevokedAt = utc(key.LastUsedAt), utc(key.RevokedAt)
	return key, nil
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// List returns every key, oldest first; revoked keys only with
// includeRevoked.
func (k *Keys) List(ctx context.Context, includeRevoked bool) ([]Key, error) {
	q := `SELECT ` + keyColumns + ` FROM admin_keys`
	if !includeRevoked {
		q += ` WHERE revoked_at IS NULL`
	}
	rows, err := k.db.Query(ctx, q+` ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("access: list keys: %w", err)
	}
	keys, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) { return scanKey(row) })
	if err != nil {
		return nil, fmt.Errorf("access: list keys: %w", err)
	}
	return keys, nil
}

// Revoke revokes the key with this name, or this id when ref is a number.
// Revoking a revoked key changes nothing and returns it. This replica
// forgets the key at once; others within the cache TTL. Errors:
// ErrKeyNotFound or a Postgres error.
func (k *Keys) Revoke(ctx context.Context, ref string, by audit.Attribution) (Key, error) {
	where, arg := `name = $1`, any(ref)
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		where, arg = `id = $1`, id
	}
	var key Key
	err := pgx.BeginTxFunc(ctx, k.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		before, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM admin_keys WHERE `+where+` FOR UPDATE`, arg))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrKeyNotFound
		}
		if err != nil {
			return err
		}
		if before.RevokedAt != nil {
			key = before
			return nil
		}
		key, err = scanKey(tx.QueryRow(ctx, `UPDATE admin_keys SET revoked_at = now(), revoked_by = $2
			WHERE id = $1 RETURNING `+keyColumns, before.ID, by.Actor))
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "key.revoke", keyTarget(key.ID), before, key)
	})
	if err != nil {
		return Key{}, fmt.Errorf("access: revoke key %q: %w", ref, err)
	}
	k.forget(key.ID)
	return key, nil
}

func (k *Keys) forget(id int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for h, c := range k.cache {
		if c.ok && c.p.KeyID == id {
			delete(k.cache, h)
		}
	}
}

// LooksLikeKey reports whether token has the shape of a key, which is
// checked before any lookup.
func LooksLikeKey(token string) bool {
	return len(token) == keyLen && strings.HasPrefix(token, KeyPrefix)
}

// Authenticate returns the principal of an active key. It answers from
// memory when the key was verified within the cache TTL; otherwise it asks
// Postgres (once per key however many requests wait, recording when the key
// was last used). It returns ErrUnknownKey for anything that is not an
// active key. When Postgres cannot be reached, a key verified before keeps
// working until it can be checked again, so game servers keep their
// entitlement checks through a database blip; other failures are returned.
func (k *Keys) Authenticate(ctx context.Context, token string) (Principal, error) {
	if !LooksLikeKey(token) {
		return Principal{}, ErrUnknownKey
	}
	hash := sha256.Sum256([]byte(token))
	k.mu.RLock()
	c, hit := k.cache[hash]
	missed, knownMiss := k.misses[hash]
	k.mu.RUnlock()
	if hit && k.now().Sub(c.checked) < k.ttl {
		return c.result()
	}
	if knownMiss && k.now().Sub(missed) < k.ttl {
		return Principal{}, ErrUnknownKey
	}
	v, err, _ := k.group.Do(string(hash[:]), func() (any, error) { return k.lookup(ctx, hash) })
	if err != nil {
		if hit && c.ok {
			k.log.WarnContext(ctx, "admin key not rechecked: Postgres unavailable; trusting the last check",
				"key", c.p.Actor, "err", err)
			return c.p, nil
		}
		return Principal{}, err
	}
	return v.(cached).result()
}

func (c cached) result() (Principal, error) {
	if !c.ok {
		return Principal{}, ErrUnknownKey
	}
	return c.p, nil
}

func (k *Keys) lookup(ctx context.Context, hash [32]byte) (cached, error) {
	var (
		id    int64
		name  string
		roles []string
		lim   []byte
	)
	err := k.db.QueryRow(ctx,
		`UPDATE admin_keys SET last_used_at = now() WHERE key_hash = $1 AND revoked_at IS NULL
		 RETURNING id, name, roles, limits`, hash[:]).Scan(&id, &name, &roles, &lim)
	c := cached{checked: k.now()}
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return cached{}, fmt.Errorf("access: verify key: %w", err)
	default:
		c.ok = true
		c.p = Principal{Actor: "key:" + name, KeyID: id, Roles: make([]Role, len(roles))}
		if c.p.Limits, err = decodeLimits(lim); err != nil {
			return cached{}, err
		}
		for i, r := range roles {
			c.p.Roles[i] = Role(r)
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if !c.ok {
		delete(k.cache, hash)
		if len(k.misses) >= maxMisses {
			k.evictMissesLocked()
		}
		k.misses[hash] = c.checked
		return c, nil
	}
	delete(k.misses, hash)
	if len(k.cache) >= maxCached {
		k.evictLocked()
	}
	k.cache[hash] = c
	return c, nil
}

// evictMissesLocked drops expired misses, or every miss if none has
// expired; verified keys are never touched.
func (k *Keys) evictMissesLocked() {
	now := k.now()
	for h, at := range k.misses {
		if now.Sub(at) >= k.ttl {
			delete(k.misses, h)
		}
	}
	if len(k.misses) >= maxMisses {
		clear(k.misses)
	}
}

// evictLocked drops expired verified keys, or all of them if none has
// expired (only as many active keys as maxCached can fill it; made-up keys
// never enter it).
func (k *Keys) evictLocked() {
	now := k.now()
	for h, c := range k.cache {
		if now.Sub(c.checked) >= k.ttl {
			delete(k.cache, h)
		}
	}
	if len(k.cache) >= maxCached {
		clear(k.cache)
	}
}
