package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/audit"
)

// Limits bound what a game-server key may move, so that a stolen or buggy
// key cannot mint without end. A key without limits (nil) is unrestricted,
// as is COINOP_SERVER_TOKEN.
type Limits struct {
	// Currencies and Items list what the key may move; nil means any, an
	// empty list none.
	Currencies []string `json:"currencies"`
	Items      []string `json:"items"`
	// MaxPerPosting is the most of any one asset a single posting may
	// move; 0 means no cap.
	MaxPerPosting int64 `json:"max_per_posting"`
	// HourlyBudget is, per currency, the most the key may give players in
	// one clock hour (UTC); a currency not listed has no budget.
	HourlyBudget map[string]int64 `json:"hourly_budget"`
}

// maxLimit is catalog.MaxAmount (access does not import catalog).
const maxLimit = 1_000_000_000_000

var limitIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// Validate checks a key's limits: catalog-shaped ids, amounts from 1 to
// 10^12, and budgets only for currencies the key may move. It returns an
// *InvalidError.
func (l *Limits) Validate() error {
	if l == nil {
		return nil
	}
	for field, ids := range map[string][]string{"limits.currencies": l.Currencies, "limits.items": l.Items} {
		for _, id := range ids {
			if !limitIDRE.MatchString(id) {
				return &InvalidError{Field: field, Message: fmt.Sprintf("%q is not a catalog id", id)}
			}
		}
	}
	if l.MaxPerPosting < 0 || l.MaxPerPosting > maxLimit {
		return &InvalidError{Field: "limits.max_per_posting", Message: "must be 0 (no cap) to 10^12"}
	}
	for id, n := range l.HourlyBudget {
		if !limitIDRE.MatchString(id) {
			return &InvalidError{Field: "limits.hourly_budget", Message: fmt.Sprintf("%q is not a catalog id", id)}
		}
		if n < 1 || n > maxLimit {
			return &InvalidError{Field: "limits.hourly_budget." + id, Message: "must be 1 to 10^12"}
		}
		if l.Currencies != nil && !slices.Contains(l.Currencies, id) {
			return &InvalidError{Field: "limits.hourly_budget." + id, Message: "is a budget for a currency the key may not move"}
		}
	}
	return nil
}

func (l *Limits) normalize() {
	if l == nil {
		return
	}
	if l.Currencies != nil {
		l.Currencies = slices.Compact(slices.Sorted(slices.Values(l.Currencies)))
	}
	if l.Items != nil {
		l.Items = slices.Compact(slices.Sorted(slices.Values(l.Items)))
	}
}

func encodeLimits(l *Limits) ([]byte, error) {
	if l == nil {
		return nil, nil
	}
	return json.Marshal(l)
}

func decodeLimits(b []byte) (*Limits, error) {
	if b == nil {
		return nil, nil
	}
	var l Limits
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("access: stored limits: %w", err)
	}
	return &l, nil
}

// SetLimits replaces the limits of the key with this name (or id, when ref
// is a number); nil removes them. The change is audited as key.limits.
// This replica applies it at once, others within the cache TTL.
// Errors: *InvalidError, ErrKeyNotFound, or a Postgres error.
func (k *Keys) SetLimits(ctx context.Context, ref string, limits *Limits, by audit.Attribution) (Key, error) {
	if err := limits.Validate(); err != nil {
		return Key{}, err
	}
	limits.normalize()
	raw, err := encodeLimits(limits)
	if err != nil {
		return Key{}, err
	}
	where, arg := `name = $1`, any(ref)
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		where, arg = `id = $1`, id
	}
	var key Key
	err = pgx.BeginTxFunc(ctx, k.db, pgx.TxOptions{}, func(tx pgx.Tx) error {
		before, err := scanKey(tx.QueryRow(ctx, `SELECT `+keyColumns+` FROM admin_keys WHERE `+where+` AND revoked_at IS NULL FOR UPDATE`, arg))
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrKeyNotFound
		}
		if err != nil {
			return err
		}
		key, err = scanKey(tx.QueryRow(ctx, `UPDATE admin_keys SET limits = $2 WHERE id = $1 RETURNING `+keyColumns, before.ID, raw))
		if err != nil {
			return err
		}
		return audit.Record(ctx, tx, by, "key.limits", keyTarget(key.ID), before, key)
	})
	if err != nil {
		return Key{}, fmt.Errorf("access: set limits of key %q: %w", ref, err)
	}
	k.forget(key.ID)
	return key, nil
}
