package entitlements

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
)

// MaxQuantity is the most units one purchase may buy. With catalog.MaxAmount
// it keeps price × quantity far from int64 overflow.
const MaxQuantity = 1000

// System accounts are the other side of every player entry.
const (
	AccountPurchases   = "system:purchases"
	AccountAdminGrants = "system:admin_grants"
)

// Ledger kinds recorded in ledger_transactions.kind.
const (
	KindPurchase   = "purchase"
	KindAdminGrant = "admin_grant"
)

// Idempotency scopes: a key is scoped to the player and the route.
const (
	ScopePurchase   = "POST /v1/purchases"
	ScopeAdminGrant = "POST /admin/v1/players/{player_id}/grants"
)

// CatalogSource gives the catalog in force now; catalog.Live satisfies it.
type CatalogSource interface {
	Current() *catalog.Snapshot
}

// Ledger applies purchases and grants and reads holdings.
type Ledger struct {
	db      *pgxpool.Pool
	catalog CatalogSource
	now     func() time.Time
	keyWait time.Duration
	cache   *Cache
	loads   atomic.Int64

	// program is the creator program (creators.go); nil: off.
	program *creators.Program

	lanes, maxBatch int
	group           *groupCommit
	metrics         writerMetrics
	// Test hooks (export_test.go): between a batch's two round trips, and
	// after its commit returned.
	hookBeforeWrite func(backendPID uint32) error
	hookAfterCommit func() error
}

// Option configures a Ledger.
type Option func(*Ledger)

// WithClock replaces time.Now, for tests of availability windows.
func WithClock(now func() time.Time) Option { return func(l *Ledger) { l.now = now } }

// WithCache serves holdings reads from c and updates it after each commit.
func WithCache(c *Cache) Option { return func(l *Ledger) { l.cache = c } }

// WithKeyWait bounds how long a request waits for a concurrent request with
// the same idempotency key before answering ErrIdempotencyKeyInUse.
func WithKeyWait(d time.Duration) Option { return func(l *Ledger) { l.keyWait = d } }

// New returns a Ledger over db selling from cat.
func New(db *pgxpool.Pool, cat CatalogSource, opts ...Option) *Ledger {
	l := &Ledger{db: db, catalog: cat, now: time.Now, keyWait: 5 * time.Second,
		lanes: DefaultCommitLanes, maxBatch: DefaultMaxBatch}
	for _, o := range opts {
		o(l)
	}
	if l.lanes > 0 && l.maxBatch > 1 {
		l.group = &groupCommit{l: l, lanes: l.lanes, maxBatch: l.maxBatch, timeout: 30 * time.Second}
	}
	if l.cache != nil {
		l.cache.load = l.loadHoldings
		l.cache.loadMany = l.loadHoldingsMany
	}
	return l
}

// PostgresLoads counts holdings reads that reached Postgres, for tests and
// metrics of the cache's effect.
func (l *Ledger) PostgresLoads() int64 { return l.loads.Load() }

// afterCommit hands a committed change to the cache.
func (l *Ledger) afterCommit(ctx context.Context, h Holdings) {
	if l.cache != nil {
		l.cache.committed(ctx, h)
	}
}

// Outcome is the stored answer to an idempotent request: the first request and
// every replay return the same Body.
type Outcome struct {
	Body     json.RawMessage
	Replayed bool
	// Version is the player's ledger version after the change (the id of the
	// last ledger transaction that touched them).
	Version int64
}

// PurchaseRequest asks to buy Quantity units of an item or bundle at the unit
// Price the client showed the player.
type PurchaseRequest struct {
	PlayerID       string
	IdempotencyKey string
	ItemID         string
	Quantity       int64
	Price          catalog.Price
}

// Purchase charges the player and grants the item or bundle in one
// transaction. A retry with the same idempotency key returns the first
// outcome unchanged, whether it was a success or a rejection.
// Errors: *InvalidError, *Rejection (item_not_found, item_unavailable,
// price_mismatch, insufficient_funds, already_owned, limit_exceeded),
// ErrIdempotencyKeyReused, ErrIdempotencyKeyInUse, ErrNoCatalog.
func (l *Ledger) Purchase(ctx context.Context, req PurchaseRequest) (Outcome, error) {
	p, err := l.purchasePosting(req)
	if err != nil {
		return Outcome{}, err
	}
	return l.post(ctx, p)
}

// purchasePosting validates a purchase and prices it from the live catalog.
func (l *Ledger) purchasePosting(req PurchaseRequest) (*posting, error) {
	if err := ValidatePlayerID(req.PlayerID); err != nil {
		return nil, err
	}
	if err := ValidateIdempotencyKey(req.IdempotencyKey); err != nil {
		return nil, err
	}
	if req.ItemID == "" {
		return nil, &InvalidError{Field: "item_id", Message: "is required"}
	}
	if req.Quantity < 1 || req.Quantity > MaxQuantity {
		return nil, &InvalidError{Field: "quantity", Message: fmt.Sprintf("must be between 1 and %d", MaxQuantity)}
	}
	if req.Price.Currency == "" {
		return nil, &InvalidError{Field: "price.currency", Message: "is required"}
	}
	if req.Price.Amount < 1 {
		return nil, &InvalidError{Field: "price.amount", Message: "must be positive"}
	}
	snap := l.catalog.Current()
	if snap == nil {
		return nil, ErrNoCatalog
	}
	fingerprint, err := fingerprintOf(struct {
		ItemID   string        `json:"item_id"`
		Quantity int64         `json:"quantity"`
		Price    catalog.Price `json:"price"`
	}{req.ItemID, req.Quantity, req.Price})
	if err != nil {
		return nil, err
	}

	purchaseID := uuid.Must(uuid.NewV7()).String()
	changes, rejection := planPurchase(snap, req, l.now())
	var credit *creditPlan
	if rejection == nil {
		credit = l.creditPlanFor(snap, req.ItemID, map[string]int64{req.Price.Currency: req.Price.Amount * req.Quantity})
	}
	result := []bodyMember{
		{"purchase_id", purchaseID},
		{"item_id", req.ItemID},
		{"quantity", req.Quantity},
		{"price", req.Price},
	}
	metadata := map[string]any{
		"item_id":         req.ItemID,
		"quantity":        req.Quantity,
		"price":           req.Price,
		"catalog_version": snap.Version,
		"idempotency_key": req.IdempotencyKey,
	}
	return &posting{
		playerID:    req.PlayerID,
		scope:       ScopePurchase,
		key:         req.IdempotencyKey,
		fingerprint: fingerprint,
		kind:        KindPurchase,
		reference:   purchaseID,
		account:     AccountPurchases,
		rejection:   rejection,
		changes:     changes,
		currencies:  snap.CurrencyIDs(),
		credit:      credit,
		result:      result,
		metadata:    metadata,
	}, nil
}

// planPurchase turns a purchase into net changes per asset, or the rejection
// the catalog alone already decides.
func planPurchase(snap *catalog.Snapshot, req PurchaseRequest, now time.Time) ([]change, *Rejection) {
	var (
		prices    []catalog.Price
		available bool
		from      *time.Time
		until     *time.Time
		plan      = newPlan()
	)
	if item, ok := snap.Item(req.ItemID); ok {
		prices, available, from, until = item.Prices, item.AvailableAt(now), item.AvailableFrom, item.AvailableUntil
		if item.Kind == catalog.KindDurable && req.Quantity != 1 {
			return nil, reject(CodeLimitExceeded, map[string]any{"item_id": req.ItemID, "max": 1, "reason": "a durable item is owned at most once"})
		}
		plan.grantItem(snap, item.ID, req.Quantity)
	} else if bundle, ok := snap.Bundle(req.ItemID); ok {
		prices, available, from, until = bundle.Prices, bundle.AvailableAt(now), bundle.AvailableFrom, bundle.AvailableUntil
		for id, n := range bundle.Contents.Items {
			plan.grantItem(snap, id, mulClamp(n, req.Quantity))
		}
		for id, n := range bundle.Contents.Currencies {
			plan.add(assetCurrency, id, mulClamp(n, req.Quantity))
		}
	} else {
		return nil, reject(CodeItemNotFound, map[string]any{"item_id": req.ItemID})
	}
	if !available {
		return nil, reject(CodeItemUnavailable, map[string]any{
			"item_id": req.ItemID, "available_from": from, "available_until": until,
		})
	}
	var unit int64
	for _, p := range prices {
		if p.Currency == req.Price.Currency {
			unit = p.Amount
		}
	}
	if unit == 0 {
		// Not a changed price: no price in this currency exists, so the
		// client should offer one of the others, not refresh and retry.
		return nil, reject(CodeCurrencyNotOffered, map[string]any{"item_id": req.ItemID, "currency": req.Price.Currency, "prices": prices})
	}
	if unit != req.Price.Amount {
		return nil, reject(CodePriceMismatch, map[string]any{"item_id": req.ItemID, "prices": prices})
	}
	hi, total := bits.Mul64(uint64(unit), uint64(req.Quantity))
	if hi != 0 || total > math.MaxInt64 {
		return nil, reject(CodeLimitExceeded, map[string]any{"item_id": req.ItemID, "reason": "total price overflows"})
	}
	plan.add(assetCurrency, req.Price.Currency, -int64(total))
	return plan.changes(), nil
}

// GrantRequest gives a player currencies and items from the admin account,
// for compensation, promotions and support.
type GrantRequest struct {
	PlayerID       string
	IdempotencyKey string
	Reason         string
	// Actor and RequestID go to the audit log, written in the grant's own
	// transaction.
	Actor      string
	RequestID  string
	Currencies map[string]int64
	Items      map[string]int64
}

// Grant credits the player in one transaction, exactly once per idempotency
// key. Durable items and max_per_player limits apply as for purchases.
// Errors: *InvalidError, *Rejection (item_not_found, already_owned,
// limit_exceeded), ErrIdempotencyKeyReused, ErrIdempotencyKeyInUse, ErrNoCatalog.
func (l *Ledger) Grant(ctx context.Context, req GrantRequest) (Outcome, error) {
	if err := ValidatePlayerID(req.PlayerID); err != nil {
		return Outcome{}, err
	}
	if err := ValidateIdempotencyKey(req.IdempotencyKey); err != nil {
		return Outcome{}, err
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || utf8.RuneCountInString(req.Reason) > 200 {
		return Outcome{}, &InvalidError{Field: "reason", Message: "is required, at most 200 characters"}
	}
	if len(req.Currencies)+len(req.Items) == 0 {
		return Outcome{}, &InvalidError{Field: "currencies", Message: "a grant needs at least one currency or item"}
	}
	for field, m := range map[string]map[string]int64{"currencies": req.Currencies, "items": req.Items} {
		for id, n := range m {
			if n < 1 || n > catalog.MaxAmount {
				return Outcome{}, &InvalidError{Field: field + "." + id, Message: fmt.Sprintf("must be between 1 and %d", int64(catalog.MaxAmount))}
			}
		}
	}
	snap := l.catalog.Current()
	if snap == nil {
		return Outcome{}, ErrNoCatalog
	}
	fingerprint, err := fingerprintOf(struct {
		Reason     string           `json:"reason"`
		Currencies map[string]int64 `json:"currencies"`
		Items      map[string]int64 `json:"items"`
	}{req.Reason, req.Currencies, req.Items})
	if err != nil {
		return Outcome{}, err
	}

	plan := newPlan()
	var unknown []string
	for id, n := range req.Currencies {
		if _, ok := snap.Currency(id); !ok {
			unknown = append(unknown, "currencies."+id)
			continue
		}
		plan.add(assetCurrency, id, n)
	}
	for id, n := range req.Items {
		if _, ok := snap.Item(id); !ok {
			unknown = append(unknown, "items."+id)
			continue
		}
		plan.grantItem(snap, id, n)
	}
	var rejection *Rejection
	if len(unknown) > 0 {
		sort.Strings(unknown)
		rejection = reject(CodeItemNotFound, map[string]any{"unknown": unknown})
	}
	grantID := uuid.Must(uuid.NewV7()).String()
	p := &posting{
		playerID:    req.PlayerID,
		scope:       ScopeAdminGrant,
		key:         req.IdempotencyKey,
		fingerprint: fingerprint,
		kind:        KindAdminGrant,
		reference:   grantID,
		account:     AccountAdminGrants,
		rejection:   rejection,
		changes:     plan.changes(),
		currencies:  snap.CurrencyIDs(),
		result:      []bodyMember{{"grant_id", grantID}, {"player_id", req.PlayerID}, {"reason", req.Reason}},
		metadata: map[string]any{
			"reason": req.Reason, "actor": req.Actor, "currencies": req.Currencies, "items": req.Items,
			"catalog_version": snap.Version, "idempotency_key": req.IdempotencyKey,
		},
	}
	// The audit row commits with the grant or not at all; a replay changed
	// nothing and records nothing.
	var res postResult
	var patches []holdingsPatch
	var rejected *Rejection
	err = pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		var err error
		res, patches, err = l.postIn(ctx, tx, p)
		if errors.As(err, &rejected) {
			return nil // the rejection is stored with the key: commit it
		}
		if err != nil || res.Replayed {
			return err
		}
		actor := req.Actor
		if actor == "" {
			actor = "unknown"
		}
		_, err = tx.Exec(ctx, `SELECT coinop_audit($1, 'player.grant', $2, NULL, $3, $4)`,
			actor, "players/"+req.PlayerID, string(res.Body), req.RequestID)
		return err
	})
	if err != nil {
		if errors.Is(err, ErrIdempotencyKeyReused) || errors.Is(err, ErrIdempotencyKeyInUse) {
			return Outcome{}, err
		}
		return Outcome{}, fmt.Errorf("entitlements: grant to %q: %w", req.PlayerID, err)
	}
	l.afterPatches(ctx, patches)
	if rejected != nil {
		return Outcome{}, rejected
	}
	return res.Outcome, nil
}

const (
	assetCurrency = "currency"
	assetItem     = "item"
)

// change is one asset's net movement for the player, with the most they may
// hold afterwards (durables: 1) and the rejection code when that is exceeded.
type change struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	Delta  int64  `json:"delta"`
	Max    *int64 `json:"max,omitempty"`
	Exceed Code   `json:"exceed,omitempty"`
	Clamp  bool   `json:"clamp,omitempty"`
	// Floor takes at most what is held on a debit (a refund's clawback);
	// the rest is reported as shortfall and, with DebtAccount set, posted
	// against that account instead of the player.
	Floor       bool   `json:"-"`
	DebtAccount string `json:"-"`
	// DebtRelief cancels that much of the player's debt under
	// ClawbackNegative: DebtAccount is credited, the posting's account
	// debited (a reversed refund undoing its shortfall's posting).
	DebtRelief int64 `json:"-"`
}

type assetKey struct{ typ, id string }

// plan nets deltas per asset, so a bundle that costs gems and grants gems
// moves the balance once, and keeps the order stable for lock-free reads.
type plan struct {
	byAsset map[assetKey]*change
}

func newPlan() *plan { return &plan{byAsset: map[assetKey]*change{}} }

func (p *plan) add(typ, id string, delta int64) *change {
	k := assetKey{typ, id}
	c := p.byAsset[k]
	if c == nil {
		c = &change{Type: typ, ID: id}
		p.byAsset[k] = c
	}
	c.Delta = addClamp(c.Delta, delta)
	return c
}

func (p *plan) grantItem(snap *catalog.Snapshot, id string, n int64) {
	c := p.add(assetItem, id, n)
	item, ok := snap.Item(id)
	if !ok {
		return
	}
	switch {
	case item.Kind == catalog.KindDurable:
		one := int64(1)
		c.Max, c.Exceed = &one, CodeAlreadyOwned
	case item.MaxPerPlayer > 0:
		m := item.MaxPerPlayer
		c.Max, c.Exceed = &m, CodeLimitExceeded
	}
}

func (p *plan) changes() []change {
	out := make([]change, 0, len(p.byAsset))
	for _, c := range p.byAsset {
		if c.Delta != 0 {
			out = append(out, *c)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// mulClamp and addClamp saturate instead of wrapping: a saturated amount
// can never be afforded or held, so the database refuses it as
// insufficient_funds or limit_exceeded rather than granting a wrapped value.
func mulClamp(a, b int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(lo)
}

func addClamp(a, b int64) int64 {
	s := a + b
	if a > 0 && b > 0 && s < 0 {
		return math.MaxInt64
	}
	if a < 0 && b < 0 && s >= 0 {
		return math.MinInt64 + 1
	}
	return s
}

func reject(code Code, detail map[string]any) *Rejection {
	b, err := json.Marshal(detail)
	if err != nil {
		b = []byte("{}")
	}
	return &Rejection{Code: code, Detail: b}
}

func fingerprintOf(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("entitlements: fingerprint: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

// ValidatePlayerID accepts 1 to 128 printable characters without spaces.
func ValidatePlayerID(id string) error {
	if id == "" || len(id) > 128 || !printable(id) {
		return &InvalidError{Field: "player_id", Message: "must be 1 to 128 printable characters without spaces"}
	}
	return nil
}

// ValidateIdempotencyKey accepts 1 to 255 printable characters without spaces.
func ValidateIdempotencyKey(key string) error {
	if key == "" || len(key) > 255 || !printable(key) {
		return &InvalidError{Field: "Idempotency-Key", Message: "must be 1 to 255 printable characters without spaces"}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}
