package entitlements

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Holdings is everything one player holds, as of version Version.
type Holdings struct {
	PlayerID   string
	Version    int64
	Currencies map[string]int64
	Items      map[string]int64
	// Subscriptions maps subscription items to the time they hold until;
	// only subscriptions active when loaded are present.
	Subscriptions map[string]time.Time
}

// Quantity is how many of item the player holds at now: the items they own,
// or 1 while a subscription to it has not expired.
func (h Holdings) Quantity(item string, now time.Time) int64 {
	if n := h.Items[item]; n > 0 {
		return n
	}
	if exp, ok := h.Subscriptions[item]; ok && exp.After(now) {
		return 1
	}
	return 0
}

// Entitlement is one thing a player holds.
type Entitlement struct {
	ItemID    string     `json:"item_id"`
	Quantity  int64      `json:"quantity"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// Entitlements lists what the player holds at now, sorted by item id.
func (h Holdings) Entitlements(now time.Time) []Entitlement {
	out := make([]Entitlement, 0, len(h.Items)+len(h.Subscriptions))
	for id, n := range h.Items {
		out = append(out, Entitlement{ItemID: id, Quantity: n})
	}
	for id, exp := range h.Subscriptions {
		if _, owned := h.Items[id]; owned || !exp.After(now) {
			continue
		}
		exp := exp
		out = append(out, Entitlement{ItemID: id, Quantity: 1, ExpiresAt: &exp})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ItemID < out[j].ItemID })
	return out
}

// holdingsJSON is how holdings travel from Postgres (coinop_holdings) and
// to the cache.
type holdingsJSON struct {
	Currencies    map[string]int64     `json:"currencies"`
	Items         map[string]int64     `json:"items"`
	Subscriptions map[string]time.Time `json:"subscriptions,omitempty"`
}

func decodeHoldings(b []byte, h *Holdings) error {
	var j holdingsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return fmt.Errorf("entitlements: decode holdings: %w", err)
	}
	h.Currencies, h.Items, h.Subscriptions = j.Currencies, j.Items, j.Subscriptions
	if h.Currencies == nil {
		h.Currencies = map[string]int64{}
	}
	if h.Items == nil {
		h.Items = map[string]int64{}
	}
	return nil
}

// Holdings returns a player's balances and inventory: from the cache when
// one is configured and current, else from Postgres. A player never seen
// before has version 0 and holds nothing.
func (l *Ledger) Holdings(ctx context.Context, playerID string) (Holdings, error) {
	if err := ValidatePlayerID(playerID); err != nil {
		return Holdings{}, err
	}
	if l.cache != nil {
		return l.cache.holdings(ctx, playerID)
	}
	return l.loadHoldings(ctx, playerID)
}

// HoldingsMany returns several players' holdings, from the cache when one is
// configured. Unknown players hold nothing at version 0.
func (l *Ledger) HoldingsMany(ctx context.Context, playerIDs []string) (map[string]Holdings, error) {
	for _, id := range playerIDs {
		if err := ValidatePlayerID(id); err != nil {
			return nil, err
		}
	}
	if l.cache != nil {
		return l.cache.holdingsMany(ctx, playerIDs)
	}
	return l.loadHoldingsMany(ctx, playerIDs)
}

// loadHoldings reads a player's holdings from Postgres in one query.
func (l *Ledger) loadHoldings(ctx context.Context, playerID string) (Holdings, error) {
	all, err := l.loadHoldingsMany(ctx, []string{playerID})
	if err != nil {
		return Holdings{}, err
	}
	return all[playerID], nil
}

// loadHoldingsMany reads several players' holdings in one query; players
// never seen hold nothing at version 0.
func (l *Ledger) loadHoldingsMany(ctx context.Context, playerIDs []string) (map[string]Holdings, error) {
	l.loads.Add(1)
	out := make(map[string]Holdings, len(playerIDs))
	for _, id := range playerIDs {
		out[id] = Holdings{PlayerID: id, Currencies: map[string]int64{}, Items: map[string]int64{}}
	}
	rows, err := l.db.Query(ctx, `SELECT player_id, version, coinop_holdings(player_id)
		FROM players WHERE player_id = ANY($1)`, playerIDs)
	if err != nil {
		return nil, fmt.Errorf("entitlements: holdings of %d players: %w", len(playerIDs), err)
	}
	defer rows.Close()
	for rows.Next() {
		var h Holdings
		var doc []byte
		if err := rows.Scan(&h.PlayerID, &h.Version, &doc); err != nil {
			return nil, fmt.Errorf("entitlements: holdings of %d players: %w", len(playerIDs), err)
		}
		if err := decodeHoldings(doc, &h); err != nil {
			return nil, err
		}
		out[h.PlayerID] = h
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("entitlements: holdings of %d players: %w", len(playerIDs), err)
	}
	return out, nil
}

// LedgerEntry is one leg of a ledger transaction.
type LedgerEntry struct {
	Account   string `json:"account"`
	AssetType string `json:"asset_type"`
	AssetID   string `json:"asset_id"`
	Amount    int64  `json:"amount"`
}

// LedgerTransaction is one change to a player's holdings with its entries.
type LedgerTransaction struct {
	ID        int64           `json:"id"`
	Kind      string          `json:"kind"`
	Reference string          `json:"reference"`
	Metadata  json.RawMessage `json:"metadata"`
	CreatedAt time.Time       `json:"created_at"`
	Entries   []LedgerEntry   `json:"entries"`
}

// MaxHistoryPage is the largest page History returns.
const MaxHistoryPage = 500

// History returns a player's ledger transactions newest first, those with id
// below before when before > 0, at most limit of them. next is the cursor for
// the following page, 0 when there is none.
func (l *Ledger) History(ctx context.Context, playerID string, before int64, limit int) (txs []LedgerTransaction, next int64, err error) {
	if err := ValidatePlayerID(playerID); err != nil {
		return nil, 0, err
	}
	if limit < 1 || limit > MaxHistoryPage {
		return nil, 0, &InvalidError{Field: "limit", Message: fmt.Sprintf("must be between 1 and %d", MaxHistoryPage)}
	}
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := l.db.Query(ctx, `SELECT t.id, t.kind, t.reference, t.metadata, t.created_at,
			(SELECT json_agg(json_build_object('account', e.account, 'asset_type', e.asset_type,
			        'asset_id', e.asset_id, 'amount', e.amount) ORDER BY e.account, e.asset_type, e.asset_id)
			 FROM ledger_entries e WHERE e.transaction_id = t.id)
		FROM ledger_transactions t
		WHERE t.player_id = $1 AND t.id < $2
		ORDER BY t.id DESC LIMIT $3`, playerID, before, limit+1)
	if err != nil {
		return nil, 0, fmt.Errorf("entitlements: history of %q: %w", playerID, err)
	}
	txs, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (LedgerTransaction, error) {
		var t LedgerTransaction
		var entries []byte
		if err := row.Scan(&t.ID, &t.Kind, &t.Reference, &t.Metadata, &t.CreatedAt, &entries); err != nil {
			return t, err
		}
		return t, json.Unmarshal(entries, &t.Entries)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("entitlements: history of %q: %w", playerID, err)
	}
	if len(txs) > limit {
		txs = txs[:limit]
		next = txs[limit-1].ID
	}
	return txs, next, nil
}

// AuditCheck is one invariant checked over the whole ledger.
type AuditCheck struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail any    `json:"detail"`
}

// auditQueries each return the offending rows (at most 20) as JSON; an empty
// result means the invariant holds.
var auditQueries = []struct{ name, sql string }{
	{"entries_sum_to_zero_per_asset", `SELECT asset_type, asset_id, sum(amount) AS sum
		FROM ledger_entries GROUP BY asset_type, asset_id HAVING sum(amount) <> 0`},
	{"transactions_balance_per_asset", `SELECT transaction_id, asset_type, asset_id, sum(amount) AS sum
		FROM ledger_entries GROUP BY transaction_id, asset_type, asset_id HAVING sum(amount) <> 0`},
	{"no_negative_balance", `SELECT player_id, asset_type, asset_id, quantity FROM balances WHERE quantity < 0`},
	{"balances_match_ledger", `SELECT coalesce(b.player_id, e.player_id) AS player_id,
			coalesce(b.asset_type, e.asset_type) AS asset_type, coalesce(b.asset_id, e.asset_id) AS asset_id,
			coalesce(b.quantity, 0) AS balance, coalesce(e.sum, 0) AS ledger_sum
		FROM balances b
		FULL JOIN (SELECT substr(account, 8) AS player_id, asset_type, asset_id, sum(amount) AS sum
		           FROM ledger_entries WHERE account LIKE 'player:%'
		           GROUP BY account, asset_type, asset_id) e
		  ON e.player_id = b.player_id AND e.asset_type = b.asset_type AND e.asset_id = b.asset_id
		WHERE coalesce(b.quantity, 0) <> coalesce(e.sum, 0)`},
	{"store_purchases_granted_once", `SELECT s.store, s.transaction_id, s.ledger_transaction_id
		FROM store_purchases s LEFT JOIN ledger_transactions t ON t.id = s.ledger_transaction_id
		WHERE s.ledger_transaction_id IS NOT NULL AND (t.kind IS DISTINCT FROM 'store_purchase' OR t.player_id <> s.player_id
		   OR EXISTS (SELECT 1 FROM store_purchases o WHERE o.ledger_transaction_id = s.ledger_transaction_id
		              AND (o.store, o.transaction_id) <> (s.store, s.transaction_id)))`},
	// Refunds may come in parts and be reversed (refunds.go): per asset of
	// each store purchase's grant, what its refunds took net of reversals,
	// plus the debt still recorded, is between 0 and what the grant gave.
	{"refunds_reversed_once", `SELECT g.reference, g.asset_type, g.asset_id, g.granted,
			coalesce(r.taken, 0) AS taken, coalesce(d.owed, 0) AS owed
		FROM (SELECT s.store || ':' || s.transaction_id AS reference, e.asset_type, e.asset_id, e.amount AS granted
		      FROM store_purchases s JOIN ledger_entries e ON e.transaction_id = s.ledger_transaction_id
		        AND e.account = 'player:' || s.player_id AND e.amount > 0) g
		LEFT JOIN (SELECT t.reference, e.asset_type, e.asset_id, -sum(e.amount) AS taken
		           FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = 'player:' || t.player_id
		           WHERE t.kind IN ('store_refund', 'store_refund_reversal') GROUP BY 1, 2, 3) r USING (reference, asset_type, asset_id)
		LEFT JOIN (SELECT store || ':' || transaction_id AS reference, asset_type, asset_id, sum(amount) AS owed
		           FROM player_debts WHERE cancelled_at IS NULL GROUP BY 1, 2, 3) d USING (reference, asset_type, asset_id)
		WHERE coalesce(r.taken, 0) < 0 OR coalesce(r.taken, 0) + coalesce(d.owed, 0) > g.granted`},
	// Support refunds of purchases (purchase_refunds.go): per asset a
	// refunded purchase moved, its refunds moved it back the other way,
	// and what they gave back, or took back plus the debt still recorded,
	// is at most what the purchase moved.
	{"purchase_refunds_within_purchase", `SELECT m.purchase, m.asset_type, m.asset_id, m.moved,
			coalesce(r.back, 0) AS back, coalesce(d.owed, 0) AS owed
		FROM (SELECT DISTINCT p.purchase_ledger_transaction_id AS purchase, e.asset_type, e.asset_id, e.amount AS moved
		      FROM purchase_refunds p JOIN ledger_entries e ON e.transaction_id = p.purchase_ledger_transaction_id
		        AND e.account = 'player:' || p.player_id) m
		LEFT JOIN (SELECT (t.metadata->>'reverses')::bigint AS purchase, e.asset_type, e.asset_id, sum(e.amount) AS back
		           FROM ledger_transactions t JOIN ledger_entries e ON e.transaction_id = t.id AND e.account = 'player:' || t.player_id
		           WHERE t.kind = 'purchase_refund' GROUP BY 1, 2, 3) r USING (purchase, asset_type, asset_id)
		LEFT JOIN (SELECT transaction_id::bigint AS purchase, asset_type, asset_id, sum(amount) AS owed
		           FROM player_debts WHERE store = 'coinop' AND cancelled_at IS NULL GROUP BY 1, 2, 3) d USING (purchase, asset_type, asset_id)
		WHERE (m.moved < 0 AND (coalesce(r.back, 0) < 0 OR coalesce(r.back, 0) > -m.moved))
		   OR (m.moved > 0 AND (coalesce(r.back, 0) > 0 OR coalesce(d.owed, 0) - coalesce(r.back, 0) > m.moved))`},
	{"player_versions_not_behind_ledger", `SELECT p.player_id, p.version, t.last AS last_transaction
		FROM players p LEFT JOIN (SELECT player_id, max(id) AS last FROM ledger_transactions GROUP BY player_id) t
		  ON t.player_id = p.player_id
		WHERE p.version < coalesce(t.last, 0)`},
}

// Audit checks the ledger's invariants: entries sum to zero per asset and per
// transaction, no balance is negative, every balance equals the sum of its
// entries, and every player's version is their last transaction. It scans
// whole tables: an operator's tool, not a request path.
func (l *Ledger) Audit(ctx context.Context) ([]AuditCheck, error) {
	checks := make([]AuditCheck, 0, len(auditQueries))
	for _, q := range auditQueries {
		var bad []byte
		err := l.db.QueryRow(ctx, `SELECT coalesce(json_agg(r), '[]') FROM (`+q.sql+` LIMIT 20) r`).Scan(&bad)
		if err != nil {
			return nil, fmt.Errorf("entitlements: audit %s: %w", q.name, err)
		}
		ok := strings.TrimSpace(string(bad)) == "[]"
		c := AuditCheck{Name: q.name, OK: ok}
		if !ok {
			c.Detail = json.RawMessage(bad)
		}
		checks = append(checks, c)
	}
	return checks, nil
}

// PurgeIdempotencyKeys deletes keys older than retention in batches, so a
// large backlog never holds long locks. It returns how many it deleted.
func (l *Ledger) PurgeIdempotencyKeys(ctx context.Context, retention time.Duration) (int64, error) {
	var total int64
	for {
		tag, err := l.db.Exec(ctx, `DELETE FROM idempotency_keys WHERE ctid IN (
			SELECT ctid FROM idempotency_keys WHERE created_at < now() - $1::interval LIMIT 5000)`, retention)
		if err != nil {
			return total, fmt.Errorf("entitlements: purge idempotency keys: %w", err)
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < 5000 || ctx.Err() != nil {
			return total, nil
		}
	}
}
