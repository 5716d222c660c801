package entitlements

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/coinop/coinop/catalog"
)

// Server postings: a game server awards, spends, consumes and exchanges on a
// player's behalf. Each is one posting through the writer (group commit
// included), against its own system account and recorded under its own
// ledger kind, exactly once per idempotency key.

// MoveKind names a server posting; it is also its ledger kind.
type MoveKind string

// The server postings.
const (
	// MoveAward gives currencies and items (a match reward).
	MoveAward MoveKind = "award"
	// MoveSpend takes currencies (an in-game shop run by the server).
	MoveSpend MoveKind = "spend"
	// MoveConsume takes items (the potion the player drank).
	MoveConsume MoveKind = "consume"
	// MoveExchange takes some assets and gives others, all or nothing
	// (crafting, upgrades).
	MoveExchange MoveKind = "exchange"
)

// moveRules says, per kind, its account, idempotency scope and which sides
// it may carry.
var moveRules = map[MoveKind]struct {
	account, scope string
	give, take     bool
	currencies     bool // take may carry currencies
	items          bool // take may carry items
}{
	MoveAward:    {"system:awards", "POST /v1/players/{player_id}/awards", true, false, false, false},
	MoveSpend:    {"system:spends", "POST /v1/players/{player_id}/spends", false, true, true, false},
	MoveConsume:  {"system:consumption", "POST /v1/players/{player_id}/consumptions", false, true, false, true},
	MoveExchange: {"system:exchanges", "POST /v1/players/{player_id}/exchanges", true, true, true, true},
}

// Assets is an amount per currency and per item, each at least 1.
type Assets struct {
	Currencies map[string]int64 `json:"currencies,omitempty"`
	Items      map[string]int64 `json:"items,omitempty"`
}

func (a Assets) empty() bool { return len(a.Currencies)+len(a.Items) == 0 }

// MoveRequest is one server posting. Award fills Give; spend fills
// Take.Currencies; consume fills Take.Items; exchange fills both sides,
// never with the same asset on both.
type MoveRequest struct {
	Kind           MoveKind
	PlayerID       string
	IdempotencyKey string
	// Source names what caused the posting (a match id, a quest id) and
	// Reason why; both are recorded in the ledger, 1-200 characters.
	Source, Reason string
	Give, Take     Assets
	// Actor is the caller (a key's name), recorded in the ledger metadata.
	Actor string
	// Limits bound what the caller's key may move; nil means none.
	Limits *KeyLimits
}

// KeyLimits are a game-server key's limits (access.Limits, as the server
// hands them over). The allowed assets and the most per posting are checked
// before the posting; the hourly budget in the posting's own transaction,
// against rows locked there, so concurrent postings cannot overspend it.
type KeyLimits struct {
	KeyID int64
	// Currencies and Items the key may move: nil means any.
	Currencies, Items []string
	// MaxPerPosting caps each asset's amount in one posting; 0: no cap.
	MaxPerPosting int64
	// HourlyBudget is, per currency, the most the key may give per clock
	// hour (UTC).
	HourlyBudget map[string]int64
}

// check refuses what the key may not move at all, and returns what the
// posting spends of its budgets.
func (k *KeyLimits) check(give, take Assets) ([]budgetUse, error) {
	if k == nil {
		return nil, nil
	}
	for _, side := range []Assets{give, take} {
		for _, a := range []struct {
			typ     string
			m       map[string]int64
			allowed []string
		}{{assetCurrency, side.Currencies, k.Currencies}, {assetItem, side.Items, k.Items}} {
			for _, id := range sortedIDs(a.m) {
				if a.allowed != nil && !slices.Contains(a.allowed, id) {
					return nil, &LimitError{Code: CodeAssetNotAllowed, AssetType: a.typ, AssetID: id}
				}
				if k.MaxPerPosting > 0 && a.m[id] > k.MaxPerPosting {
					return nil, &LimitError{Code: CodePostingTooLarge, AssetType: a.typ, AssetID: id, Limit: k.MaxPerPosting, Requested: a.m[id]}
				}
			}
		}
	}
	var uses []budgetUse
	for _, id := range sortedIDs(give.Currencies) {
		if limit, ok := k.HourlyBudget[id]; ok {
			uses = append(uses, budgetUse{budgetKey: budgetKey{k.KeyID, id}, amount: give.Currencies[id], limit: limit})
		}
	}
	return uses, nil
}

func sortedIDs(m map[string]int64) []string {
	out := make([]string, 0, len(m))
	for id := range m {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Move applies a server posting in one transaction, exactly once per
// idempotency key (scoped to the player and the kind's route, fingerprinted
// over kind, source, reason and both sides). A retry with the same key
// returns the first outcome unchanged, success or rejection.
// Errors: *InvalidError, *Rejection (item_not_found with the unknown ids,
// insufficient_funds, already_owned, limit_exceeded), ErrIdempotencyKeyReused,
// ErrIdempotencyKeyInUse, ErrNoCatalog.
func (l *Ledger) Move(ctx context.Context, req MoveRequest) (Outcome, error) {
	p, err := l.movePosting(req)
	if err != nil {
		return Outcome{}, err
	}
	return l.post(ctx, p)
}

func validText(field, s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || utf8.RuneCountInString(s) > 200 || !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
		return "", &InvalidError{Field: field, Message: "is required, 1 to 200 characters"}
	}
	return s, nil
}

func validAmounts(field string, m map[string]int64) error {
	for id, n := range m {
		if !catalog.ValidID(id) {
			return &InvalidError{Field: field, Message: fmt.Sprintf("%q is not a catalog id", id)}
		}
		if n < 1 || n > catalog.MaxAmount {
			return &InvalidError{Field: field + "." + id, Message: fmt.Sprintf("must be between 1 and %d", int64(catalog.MaxAmount))}
		}
	}
	return nil
}

// movePosting validates a server posting and plans it from the live catalog.
func (l *Ledger) movePosting(req MoveRequest) (*posting, error) {
	rules, ok := moveRules[req.Kind]
	if !ok {
		return nil, &InvalidError{Field: "kind", Message: fmt.Sprintf("unknown posting kind %q", req.Kind)}
	}
	if err := ValidatePlayerID(req.PlayerID); err != nil {
		return nil, err
	}
	if err := ValidateIdempotencyKey(req.IdempotencyKey); err != nil {
		return nil, err
	}
	var err error
	if req.Source, err = validText("source", req.Source); err != nil {
		return nil, err
	}
	if req.Reason, err = validText("reason", req.Reason); err != nil {
		return nil, err
	}
	give, take := "currencies", "items"
	if req.Kind == MoveExchange {
		give, take = "give", "take"
	}
	switch {
	case rules.give && req.Give.empty():
		return nil, &InvalidError{Field: give, Message: "needs at least one currency or item"}
	case !rules.give && !req.Give.empty():
		return nil, &InvalidError{Field: "give", Message: "is not taken by a " + string(req.Kind)}
	case rules.take && !rules.currencies && len(req.Take.Currencies) > 0:
		return nil, &InvalidError{Field: "currencies", Message: "a consumption takes items only; spend currencies"}
	case rules.take && !rules.items && len(req.Take.Items) > 0:
		return nil, &InvalidError{Field: "items", Message: "a spend takes currencies only; consume items"}
	case rules.take && req.Take.empty():
		if req.Kind == MoveSpend {
			take = "currencies"
		}
		return nil, &InvalidError{Field: take, Message: "needs at least one " + map[MoveKind]string{MoveSpend: "currency", MoveConsume: "item", MoveExchange: "currency or item"}[req.Kind]}
	case !rules.take && !req.Take.empty():
		return nil, &InvalidError{Field: "take", Message: "is not taken by a " + string(req.Kind)}
	}
	prefix := func(side string) string {
		if req.Kind == MoveExchange {
			return side + "."
		}
		return ""
	}
	for _, f := range []struct {
		name string
		m    map[string]int64
	}{
		{prefix("give") + "currencies", req.Give.Currencies}, {prefix("give") + "items", req.Give.Items},
		{prefix("take") + "currencies", req.Take.Currencies}, {prefix("take") + "items", req.Take.Items},
	} {
		if err := validAmounts(f.name, f.m); err != nil {
			return nil, err
		}
	}
	for id := range req.Take.Currencies {
		if _, both := req.Give.Currencies[id]; both {
			return nil, &InvalidError{Field: "give.currencies." + id, Message: "an exchange cannot take and give the same currency"}
		}
	}
	for id := range req.Take.Items {
		if _, both := req.Give.Items[id]; both {
			return nil, &InvalidError{Field: "give.items." + id, Message: "an exchange cannot take and give the same item"}
		}
	}
	budget, err := req.Limits.check(req.Give, req.Take)
	if err != nil {
		return nil, err
	}
	snap := l.catalog.Current()
	if snap == nil {
		return nil, ErrNoCatalog
	}
	fingerprint, err := fingerprintOf(struct {
		Kind   MoveKind `json:"kind"`
		Source string   `json:"source"`
		Reason string   `json:"reason"`
		Give   Assets   `json:"give"`
		Take   Assets   `json:"take"`
	}{req.Kind, req.Source, req.Reason, req.Give, req.Take})
	if err != nil {
		return nil, err
	}

	plan := newPlan()
	var unknown []string
	for _, side := range []struct {
		name string
		a    Assets
		sign int64
	}{{prefix("give"), req.Give, 1}, {prefix("take"), req.Take, -1}} {
		for id, n := range side.a.Currencies {
			if _, ok := snap.Currency(id); !ok {
				unknown = append(unknown, side.name+"currencies."+id)
				continue
			}
			plan.add(assetCurrency, id, side.sign*n)
		}
		for id, n := range side.a.Items {
			if _, ok := snap.Item(id); !ok {
				unknown = append(unknown, side.name+"items."+id)
				continue
			}
			if side.sign > 0 {
				plan.grantItem(snap, id, n)
			} else {
				plan.add(assetItem, id, -n)
			}
		}
	}
	var rejection *Rejection
	if len(unknown) > 0 {
		sort.Strings(unknown)
		rejection = reject(CodeItemNotFound, map[string]any{"unknown": unknown})
	}
	var credit *creditPlan
	if req.Kind == MoveSpend && rejection == nil {
		credit = l.creditPlanFor(snap, "", req.Take.Currencies)
	}
	id := uuid.Must(uuid.NewV7()).String()
	return &posting{
		credit:      credit,
		playerID:    req.PlayerID,
		scope:       rules.scope,
		key:         req.IdempotencyKey,
		fingerprint: fingerprint,
		kind:        string(req.Kind),
		reference:   id,
		account:     rules.account,
		rejection:   rejection,
		changes:     plan.changes(),
		currencies:  snap.CurrencyIDs(),
		reportTaken: true,
		budget:      budget,
		result: []bodyMember{
			{"posting_id", id}, {"kind", req.Kind}, {"player_id", req.PlayerID},
			{"source", req.Source}, {"reason", req.Reason},
		},
		metadata: map[string]any{
			"source": req.Source, "reason": req.Reason, "actor": req.Actor,
			"give": req.Give, "take": req.Take,
			"catalog_version": snap.Version, "idempotency_key": req.IdempotencyKey,
		},
	}, nil
}

// Player consumption: a client-authoritative game uses up an item the
// catalog marks player_consumable.
const (
	KindPlayerConsume  = "player_consume"
	ScopePlayerConsume = "POST /v1/consumptions"
	// CodeNotConsumable: the item is not marked player_consumable.
	CodeNotConsumable Code = "not_consumable"
)

// PlayerConsumeRequest asks to use up Quantity of an item the player holds.
type PlayerConsumeRequest struct {
	PlayerID       string
	IdempotencyKey string
	ItemID         string
	Quantity       int64
}

// PlayerConsume takes the item from the player (to system:consumption,
// ledger kind player_consume) exactly once per idempotency key, if the live
// catalog marks it player_consumable.
// Errors: *InvalidError, *Rejection (item_not_found, not_consumable,
// insufficient_funds), ErrIdempotencyKeyReused, ErrIdempotencyKeyInUse,
// ErrNoCatalog.
func (l *Ledger) PlayerConsume(ctx context.Context, req PlayerConsumeRequest) (Outcome, error) {
	if err := ValidatePlayerID(req.PlayerID); err != nil {
		return Outcome{}, err
	}
	if err := ValidateIdempotencyKey(req.IdempotencyKey); err != nil {
		return Outcome{}, err
	}
	if !catalog.ValidID(req.ItemID) {
		return Outcome{}, &InvalidError{Field: "item_id", Message: "must be a catalog id"}
	}
	if req.Quantity < 1 || req.Quantity > catalog.MaxAmount {
		return Outcome{}, &InvalidError{Field: "quantity", Message: fmt.Sprintf("must be between 1 and %d", int64(catalog.MaxAmount))}
	}
	snap := l.catalog.Current()
	if snap == nil {
		return Outcome{}, ErrNoCatalog
	}
	fingerprint, err := fingerprintOf(struct {
		ItemID   string `json:"item_id"`
		Quantity int64  `json:"quantity"`
	}{req.ItemID, req.Quantity})
	if err != nil {
		return Outcome{}, err
	}
	plan := newPlan()
	var rejection *Rejection
	switch item, ok := snap.Item(req.ItemID); {
	case !ok:
		rejection = reject(CodeItemNotFound, map[string]any{"item_id": req.ItemID})
	case !item.PlayerConsumable:
		rejection = reject(CodeNotConsumable, map[string]any{"item_id": req.ItemID})
	default:
		plan.add(assetItem, req.ItemID, -req.Quantity)
	}
	id := uuid.Must(uuid.NewV7()).String()
	p := &posting{
		playerID:    req.PlayerID,
		scope:       ScopePlayerConsume,
		key:         req.IdempotencyKey,
		fingerprint: fingerprint,
		kind:        KindPlayerConsume,
		reference:   id,
		account:     moveRules[MoveConsume].account,
		rejection:   rejection,
		changes:     plan.changes(),
		currencies:  snap.CurrencyIDs(),
		reportTaken: true,
		result:      []bodyMember{{"consumption_id", id}, {"item_id", req.ItemID}, {"quantity", req.Quantity}},
		metadata: map[string]any{"item_id": req.ItemID, "quantity": req.Quantity,
			"catalog_version": snap.Version, "idempotency_key": req.IdempotencyKey},
	}
	return l.post(ctx, p)
}
