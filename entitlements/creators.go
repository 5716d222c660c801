package entitlements

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
)

// Creator credits (package creators): a purchase or server spend under the
// player's active creator code, and a sale of a creator-made item, credit
// creators in the posting's own transaction. The writer reads the batch's
// active codes and item creators in round trip 1 (only when the program is
// on and a posting may credit) and inserts the credits with one more CTE in
// round trip 2: append-only rows, no creator balance row to contend on.

// WithCreatorProgram turns creator credits on under program p.
func WithCreatorProgram(p creators.Program) Option {
	return func(l *Ledger) { l.program = &p }
}

// creditPlan is what a posting may credit creators once it applies.
type creditPlan struct {
	// spent is what the posting takes, per currency, in whole units, with
	// the shares of the creators of what it sells.
	spent []spentAmount
	// fixed rows are decided before the posting (a tip's).
	fixed []creators.CreditRow
}

type spentAmount struct {
	currency string
	amount   int64
	shares   []catalog.CreatorShare
}

// activeCode is a player's code as round trip 1 read it (its creator
// active).
type activeCode struct {
	creator   string
	expiresAt time.Time
}

const (
	sqlReadCodes = `SELECT p.player_id, p.creator_id, p.expires_at FROM player_creator_codes p
		JOIN creators c ON c.creator_id = p.creator_id AND c.status = 'active' WHERE p.player_id = ANY($1)`
	sqlReadActiveCreators = `SELECT creator_id FROM creators WHERE creator_id = ANY($1) AND status = 'active'`
	cteCredits            = `c AS (INSERT INTO creator_credits (creator_id, kind, source_account, currency, micro, spent, player_id, ledger_transaction_id, available_at, created_at)
		SELECT u.*, %s::timestamptz, %s::timestamptz FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[], %s::bigint[]) AS u)`
)

// creditPlanFor is the plan of a purchase or spend: nil when the program is
// off.
func (l *Ledger) creditPlanFor(snap *catalog.Snapshot, itemID string, spent map[string]int64) *creditPlan {
	if l.program == nil {
		return nil
	}
	cp := &creditPlan{}
	for _, cur := range sortedIDs(spent) {
		if spent[cur] > 0 {
			var shares []catalog.CreatorShare
			if itemID != "" {
				shares = snap.CreatorShares(itemID, cur)
			}
			cp.spent = append(cp.spent, spentAmount{cur, spent[cur], shares})
		}
	}
	return cp
}

// creditRows decides a posting's credits at now against what round trip 1
// read: the player's code if still active, the creators of what was sold
// if active.
func (l *Ledger) creditRows(p *posting, code *activeCode, active map[string]bool, now time.Time) []creators.CreditRow {
	cp := p.credit
	if cp == nil || l.program == nil {
		return nil
	}
	rows := append([]creators.CreditRow(nil), cp.fixed...)
	codeCreator := ""
	if code != nil && now.Before(code.expiresAt) {
		codeCreator = code.creator
	}
	for _, s := range cp.spent {
		var shares []creators.ItemShare
		for _, sh := range s.shares {
			if active[sh.CreatorID] {
				shares = append(shares, creators.ItemShare{CreatorID: sh.CreatorID, SharePPM: sh.SharePPM})
			}
		}
		rows = append(rows, l.program.PurchaseCredits(s.currency, s.amount, shares, codeCreator)...)
	}
	return rows
}

// queueCredits adds a posting's credit rows to w, and its entry to the
// batch's creator.credit event (creditEvent).
func (w *writeSet) queueCredits(p *posting, tx int64, rows []creators.CreditRow) error {
	if len(rows) == 0 {
		return nil
	}
	entry, err := json.Marshal(creditEntry{Credits: rows, Kind: p.kind, LedgerTransactionID: tx, PlayerID: p.playerID})
	if err != nil {
		return fmt.Errorf("entitlements: encode credit event: %w", err)
	}
	for _, r := range rows {
		w.credits[0], w.credits[1], w.credits[2] = append(w.credits[0], r.CreatorID), append(w.credits[1], r.Kind), append(w.credits[2], r.Source)
		w.credits[3], w.credits[4] = append(w.credits[3], r.Currency), append(w.credits[4], p.playerID)
		w.creditMicro, w.creditSpent, w.creditTx = append(w.creditMicro, r.Micro), append(w.creditSpent, r.Spent), append(w.creditTx, tx)
	}
	w.creditEntries = append(w.creditEntries, entry)
	if len(w.creditEntries) == 1 {
		w.creditPlayer = p.playerID
	} else if w.creditPlayer != p.playerID {
		w.creditPlayer = ""
	}
	return nil
}

// creditEntry is one credited posting in a creator.credit event.
type creditEntry struct {
	Credits             []creators.CreditRow `json:"credits"`
	Kind                string               `json:"kind"`
	LedgerTransactionID int64                `json:"ledger_transaction_id"`
	PlayerID            string               `json:"player_id"`
}

// creditEvent queues the batch's one creator.credit event, after its
// ledger events: every credited posting of the batch, in order. One event
// per commit rather than per posting: under load a batch commits dozens of
// players' purchases, and a second outbox row for each would cost a
// purchase under a code about as much again as its credit row (some 15 µs
// of Postgres CPU each, docs/BENCHMARKS.md). The event carries the
// player when the batch credited one player's postings only (a tip, a lone
// purchase), and none otherwise.
func (w *writeSet) creditEvent() {
	if len(w.creditEntries) == 0 {
		return
	}
	var b bytes.Buffer
	b.WriteString(`{"postings":[`)
	b.Write(bytes.Join(w.creditEntries, []byte{','}))
	b.WriteString(`]}`)
	w.events[0], w.events[1], w.events[2] = append(w.events[0], creators.EventCredit), append(w.events[1], w.creditPlayer), append(w.events[2], b.String())
}

// Tips.
const (
	KindTip  = "tip"
	ScopeTip = "POST /v1/creators/{creator_id}/tips"
	// CodeNotTippable: the catalog does not mark the currency tippable.
	CodeNotTippable Code = "not_tippable"
	// CodeTipLimitExceeded (a LimitError): the player's tips today would
	// pass the daily limit.
	CodeTipLimitExceeded Code = "tip_limit_exceeded"
)

// TipRequest tips a creator Amount of a tippable currency.
type TipRequest struct {
	PlayerID       string
	IdempotencyKey string
	CreatorID      string
	Currency       string
	Amount         int64
}

// Tip moves Amount of the player's currency to system:creator_tips and
// credits the creator the tip less the program's fee, in one transaction,
// exactly once per idempotency key (a replay returns the first answer even
// past the daily limit). Errors: *InvalidError, *Rejection (item_not_found
// for an unknown currency, not_tippable, insufficient_funds),
// *LimitError (tip_limit_exceeded), creators.ErrNotFound,
// creators.ErrSuspended, ErrIdempotencyKeyReused, ErrIdempotencyKeyInUse,
// ErrNoCatalog.
func (l *Ledger) Tip(ctx context.Context, req TipRequest) (Outcome, error) {
	if l.program == nil {
		return Outcome{}, creators.ErrNotFound
	}
	if err := ValidatePlayerID(req.PlayerID); err != nil {
		return Outcome{}, err
	}
	if err := ValidateIdempotencyKey(req.IdempotencyKey); err != nil {
		return Outcome{}, err
	}
	if !creators.ValidID(req.CreatorID) {
		return Outcome{}, creators.ErrNotFound
	}
	if !catalog.ValidID(req.Currency) {
		return Outcome{}, &InvalidError{Field: "currency", Message: "must be a catalog id"}
	}
	if req.Amount < 1 || req.Amount > catalog.MaxAmount {
		return Outcome{}, &InvalidError{Field: "amount", Message: fmt.Sprintf("must be between 1 and %d", int64(catalog.MaxAmount))}
	}
	snap := l.catalog.Current()
	if snap == nil {
		return Outcome{}, ErrNoCatalog
	}
	fingerprint, err := fingerprintOf(struct {
		CreatorID string `json:"creator_id"`
		Currency  string `json:"currency"`
		Amount    int64  `json:"amount"`
	}{req.CreatorID, req.Currency, req.Amount})
	if err != nil {
		return Outcome{}, err
	}
	plan := newPlan()
	var rejection *Rejection
	cp := &creditPlan{}
	switch cur, ok := snap.Currency(req.Currency); {
	case !ok:
		rejection = reject(CodeItemNotFound, map[string]any{"currency": req.Currency})
	case !cur.Tippable:
		rejection = reject(CodeNotTippable, map[string]any{"currency": req.Currency})
	default:
		plan.add(assetCurrency, req.Currency, -req.Amount)
		if row, ok := l.program.TipCredit(req.CreatorID, req.Currency, req.Amount); ok {
			cp.fixed = []creators.CreditRow{row}
		}
	}
	id := uuid.Must(uuid.NewV7()).String()
	p := &posting{
		playerID: req.PlayerID, scope: ScopeTip, key: req.IdempotencyKey, fingerprint: fingerprint,
		kind: KindTip, reference: id, account: creators.AccountTips, rejection: rejection,
		changes: plan.changes(), currencies: snap.CurrencyIDs(), credit: cp,
		result: []bodyMember{{"tip_id", id}, {"creator_id", req.CreatorID}, {"currency", req.Currency},
			{"amount", req.Amount}, {"creator_credit", creators.FormatMicro(sumMicro(cp.fixed))}},
		metadata: map[string]any{"creator_id": req.CreatorID, "currency": req.Currency, "amount": req.Amount,
			"fee_ppm": l.program.TipFeePPM, "catalog_version": snap.Version, "idempotency_key": req.IdempotencyKey},
	}
	var res postResult
	var patches []holdingsPatch
	var rejected *Rejection
	err = pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		// The player's row first, as the writer takes it, so concurrent tips
		// by one player count each other against the limit.
		if _, err := tx.Exec(ctx, `INSERT INTO players AS p (player_id) VALUES ($1)
			ON CONFLICT (player_id) DO UPDATE SET version = p.version`, req.PlayerID); err != nil {
			return err
		}
		var replay bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE player_id = $1 AND scope = $2 AND key = $3)`,
			req.PlayerID, ScopeTip, req.IdempotencyKey).Scan(&replay); err != nil {
			return err
		}
		if !replay && rejection == nil {
			var status string
			err := tx.QueryRow(ctx, `SELECT status FROM creators WHERE creator_id = $1`, req.CreatorID).Scan(&status)
			if errors.Is(err, pgx.ErrNoRows) {
				return creators.ErrNotFound
			}
			if err != nil {
				return err
			}
			if status != creators.StatusActive {
				return creators.ErrSuspended
			}
			day := l.now().UTC().Truncate(24 * time.Hour)
			var used int64
			if err := tx.QueryRow(ctx, `SELECT coalesce(sum(spent), 0)::bigint FROM creator_credits
				WHERE player_id = $1 AND kind = 'tip' AND currency = $2 AND created_at >= $3`, req.PlayerID, req.Currency, day).Scan(&used); err != nil {
				return err
			}
			if limit := l.program.TipDailyLimit; req.Amount > limit-used {
				return &LimitError{Code: CodeTipLimitExceeded, AssetType: assetCurrency, AssetID: req.Currency,
					Limit: limit, Requested: req.Amount, Used: used, ResetsAt: day.Add(24 * time.Hour)}
			}
		}
		res, patches, err = l.postIn(ctx, tx, p)
		if errors.As(err, &rejected) {
			return nil // stored with the key: commit it
		}
		return err
	})
	if err != nil {
		return Outcome{}, err
	}
	l.afterPatches(ctx, patches)
	if rejected != nil {
		return Outcome{}, rejected
	}
	return res.Outcome, nil
}

func sumMicro(rows []creators.CreditRow) int64 {
	var n int64
	for _, r := range rows {
		n += r.Micro
	}
	return n
}

// ReverseCredits reverses num/den of the creator credits of ledger
// transaction ledgerTx inside tx (see creators.ReverseIn): the refund and
// revoke paths call it in their own transaction, with the refund's ledger
// transaction as reversalTx.
func ReverseCredits(ctx context.Context, tx pgx.Tx, ledgerTx, reversalTx, num, den int64) error {
	_, err := creators.ReverseIn(ctx, tx, ledgerTx, reversalTx, num, den)
	return err
}

// reinstateCredits gives back num/den of the creator credits of ledger
// transaction ledgerTx that refunds reversed (see creators.ReinstateIn),
// inside tx: a reversed refund's own transaction.
func reinstateCredits(ctx context.Context, tx pgx.Tx, ledgerTx, reinstateTx, num, den int64) ([]creators.CreditRow, error) {
	return creators.ReinstateIn(ctx, tx, ledgerTx, reinstateTx, num, den)
}

// creditLookups returns the players whose codes and the item creators whose
// status a batch must read: none when no posting may credit.
func (l *Ledger) creditLookups(ps []*posting) (players, itemCreators []string) {
	if l.program == nil {
		return nil, nil
	}
	ps1, cs := map[string]bool{}, map[string]bool{}
	for _, p := range ps {
		if p.rejection != nil || p.credit == nil {
			continue
		}
		if len(p.credit.spent) > 0 {
			ps1[p.playerID] = true
		}
		for _, s := range p.credit.spent {
			for _, sh := range s.shares {
				cs[sh.CreatorID] = true
			}
		}
	}
	return sortedKeys(ps1), sortedKeys(cs)
}
