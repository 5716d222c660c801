package creators

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/coinop/coinop/audit"
)

// Earning is one creator's standing in one currency. Amounts in whole units
// are what can be paid; the micro fields are exact.
type Earning struct {
	Currency string `json:"currency"`
	// PendingMicro is credited but still in its hold.
	PendingMicro int64 `json:"pending_micro"`
	// Available is what a payout would pay now: floor of the matured
	// journal (credits past their hold, less reversals and payouts), and
	// RemainderMicro the fraction carried to the next credit.
	Available      int64 `json:"available"`
	RemainderMicro int64 `json:"remainder_micro"`
	// Paid is the sum of payouts.
	Paid int64 `json:"paid"`
	// DebtMicro is what reversals after a payout took beyond the matured
	// earnings: the next earnings pay it first.
	DebtMicro int64 `json:"debt_micro"`
	// EarnedMicro is every credit less every reversal, ever.
	EarnedMicro int64 `json:"earned_micro"`
}

// Earnings returns the creator's standing per currency, in currency order.
// Errors: ErrNotFound.
func (s *Service) Earnings(ctx context.Context, creatorID string) ([]Earning, error) {
	if _, err := s.Get(ctx, creatorID); err != nil {
		return nil, err
	}
	return earnings(ctx, s.db, creatorID, s.now())
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func earnings(ctx context.Context, q querier, creatorID string, now time.Time) ([]Earning, error) {
	rows, _ := q.Query(ctx, `SELECT currency,
			coalesce(sum(micro) FILTER (WHERE available_at <= $2), 0)::bigint,
			coalesce(sum(micro) FILTER (WHERE available_at > $2), 0)::bigint,
			coalesce(-sum(micro) FILTER (WHERE kind = 'payout'), 0)::bigint,
			coalesce(sum(micro) FILTER (WHERE kind <> 'payout'), 0)::bigint
		FROM creator_credits WHERE creator_id = $1 GROUP BY currency ORDER BY currency`, creatorID, now)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Earning, error) {
		var e Earning
		var matured, paid int64
		if err := r.Scan(&e.Currency, &matured, &e.PendingMicro, &paid, &e.EarnedMicro); err != nil {
			return e, err
		}
		e.Paid = paid / MicroPerUnit
		if matured >= 0 {
			e.Available, e.RemainderMicro = Earned(matured)
		} else {
			e.DebtMicro = -matured
		}
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("creators: earnings of %q: %w", creatorID, err)
	}
	return out, nil
}

// Line is one journal row of a statement.
type Line struct {
	ID       int64  `json:"line_id"`
	Kind     string `json:"kind"`
	Currency string `json:"currency"`
	// Micro is the exact amount (negative for reversals and payouts);
	// Amount the same as a decimal string.
	Micro  int64  `json:"micro"`
	Amount string `json:"amount"`
	Spent  int64  `json:"spent"`
	// LedgerTransactionID ties a credit or reversal to the ledger
	// transaction that caused it, LedgerKind names its kind (purchase,
	// spend, tip, store_refund, ...). A payout has PayoutID instead.
	LedgerTransactionID *int64    `json:"ledger_transaction_id"`
	LedgerKind          *string   `json:"ledger_kind"`
	PayoutID            *int64    `json:"payout_id"`
	Reverses            *int64    `json:"reverses"`
	PlayerID            *string   `json:"player_id"`
	AvailableAt         time.Time `json:"available_at"`
	CreatedAt           time.Time `json:"created_at"`
}

// Statement is a creator's journal for [From, To), with totals.
type Statement struct {
	CreatorID string           `json:"creator_id"`
	From      time.Time        `json:"from"`
	To        time.Time        `json:"to"`
	Lines     []Line           `json:"lines"`
	Totals    map[string]int64 `json:"totals_micro"`
}

// MaxStatementLines bounds one statement.
const MaxStatementLines = 100_000

// Statement returns the creator's lines created in [from, to), oldest
// first. Errors: *InvalidError, ErrNotFound.
func (s *Service) Statement(ctx context.Context, creatorID string, from, to time.Time) (Statement, error) {
	if !from.Before(to) {
		return Statement{}, &InvalidError{Field: "from", Message: "must be before to"}
	}
	if _, err := s.Get(ctx, creatorID); err != nil {
		return Statement{}, err
	}
	rows, _ := s.db.Query(ctx, `SELECT c.id, c.kind, c.currency, c.micro, c.spent, c.ledger_transaction_id, t.kind,
			c.payout_id, c.reverses, c.player_id, c.available_at, c.created_at
		FROM creator_credits c LEFT JOIN ledger_transactions t ON t.id = c.ledger_transaction_id
		WHERE c.creator_id = $1 AND c.created_at >= $2 AND c.created_at < $3 ORDER BY c.id LIMIT $4`,
		creatorID, from, to, MaxStatementLines)
	lines, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Line, error) {
		var l Line
		err := r.Scan(&l.ID, &l.Kind, &l.Currency, &l.Micro, &l.Spent, &l.LedgerTransactionID, &l.LedgerKind,
			&l.PayoutID, &l.Reverses, &l.PlayerID, &l.AvailableAt, &l.CreatedAt)
		l.Amount = FormatMicro(l.Micro)
		l.AvailableAt, l.CreatedAt = l.AvailableAt.UTC(), l.CreatedAt.UTC()
		return l, err
	})
	if err != nil {
		return Statement{}, fmt.Errorf("creators: statement of %q: %w", creatorID, err)
	}
	st := Statement{CreatorID: creatorID, From: from.UTC(), To: to.UTC(), Lines: lines, Totals: map[string]int64{}}
	for _, l := range lines {
		st.Totals[l.Currency] += l.Micro
	}
	return st, nil
}

// CSVHeader is the first row WriteCSV writes.
var CSVHeader = []string{"line_id", "created_at", "creator_id", "kind", "currency", "amount", "micro",
	"ledger_transaction_id", "ledger_kind", "payout_id", "reverses", "player_id", "available_at"}

// WriteCSV writes the statement as CSV (RFC 4180) for a payment provider.
func (st Statement) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	optInt := func(p *int64) string {
		if p == nil {
			return ""
		}
		return strconv.FormatInt(*p, 10)
	}
	optStr := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	for _, l := range st.Lines {
		if err := cw.Write([]string{strconv.FormatInt(l.ID, 10), l.CreatedAt.Format(time.RFC3339Nano), st.CreatorID, l.Kind,
			l.Currency, l.Amount, strconv.FormatInt(l.Micro, 10), optInt(l.LedgerTransactionID), optStr(l.LedgerKind),
			optInt(l.PayoutID), optInt(l.Reverses), optStr(l.PlayerID), l.AvailableAt.Format(time.RFC3339Nano)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// Payout is a recorded payout: whole units per currency moved from
// available to paid.
type Payout struct {
	PayoutID  int64            `json:"payout_id"`
	CreatorID string           `json:"creator_id"`
	Amounts   map[string]int64 `json:"amounts"`
	Actor     string           `json:"actor"`
	CreatedAt time.Time        `json:"created_at"`
	Replayed  bool             `json:"-"`
}

// PayoutRequest pays a creator what is available. Actor and RequestID
// attribute it in the audit log (creator.payout).
type PayoutRequest struct {
	CreatorID, IdempotencyKey, Actor, RequestID string
}

// Payout records a payout of every currency whose available earnings reach
// Program.PayoutMin, in whole units, exactly once per idempotency key (a
// second call with the key returns the first payout, Replayed). The
// creator row is locked, so two payouts never pay the same earnings.
// Errors: *InvalidError, ErrNotFound, ErrBelowMinimum.
func (s *Service) Payout(ctx context.Context, req PayoutRequest) (Payout, error) {
	if req.IdempotencyKey == "" || len(req.IdempotencyKey) > 255 {
		return Payout{}, &InvalidError{Field: "Idempotency-Key", Message: "must be 1 to 255 characters"}
	}
	var out Payout
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM creators WHERE creator_id = $1 FOR UPDATE`, req.CreatorID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		var body []byte
		err = tx.QueryRow(ctx, `SELECT body FROM creator_payouts WHERE creator_id = $1 AND idem_key = $2`, req.CreatorID, req.IdempotencyKey).Scan(&body)
		if err == nil {
			out.Replayed = true
			return json.Unmarshal(body, &out)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		now := s.now().UTC().Truncate(time.Microsecond)
		es, err := earnings(ctx, tx, req.CreatorID, now)
		if err != nil {
			return err
		}
		out = Payout{CreatorID: req.CreatorID, Amounts: map[string]int64{}, Actor: req.Actor, CreatedAt: now}
		for _, e := range es {
			if e.Available >= s.program.PayoutMin {
				out.Amounts[e.Currency] = e.Available
			}
		}
		if len(out.Amounts) == 0 {
			return ErrBelowMinimum
		}
		if err := tx.QueryRow(ctx, `INSERT INTO creator_payouts (creator_id, idem_key, actor, body, created_at)
			VALUES ($1, $2, $3, '{}', $4) RETURNING payout_id`, req.CreatorID, req.IdempotencyKey, req.Actor, now).Scan(&out.PayoutID); err != nil {
			return err
		}
		body, err = json.Marshal(out)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE creator_payouts SET body = $2 WHERE payout_id = $1`, out.PayoutID, body); err != nil {
			return err
		}
		for cur, n := range out.Amounts {
			if _, err := tx.Exec(ctx, `INSERT INTO creator_credits (creator_id, kind, source_account, currency, micro, payout_id, available_at, created_at)
				VALUES ($1, 'payout', $2, $3, $4, $5, $6, $6)`, req.CreatorID, AccountPayouts, cur, -n*MicroPerUnit, out.PayoutID, now); err != nil {
				return err
			}
		}
		if err := audit.Record(ctx, tx, audit.Attribution{Actor: req.Actor, RequestID: req.RequestID}, "creator.payout",
			target(req.CreatorID), nil, out); err != nil {
			return err
		}
		return insertEvent(ctx, tx, EventPayout, nil, out)
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBelowMinimum) {
			return Payout{}, err
		}
		return Payout{}, fmt.Errorf("creators: payout of %q: %w", req.CreatorID, err)
	}
	return out, nil
}

// lockedCredit is one credit of a ledger transaction, locked, with what
// reversals have taken of it net of reinstatements.
type lockedCredit struct {
	id              int64
	creator, source string
	currency        string
	micro, reversed int64
	player          *string
	availableAt     time.Time
}

// sqlLockCredits reads a ledger transaction's credits, each with what its
// reversals (net of reinstatements) took back: by the index by ledger
// transaction and, for the reversals, the one by credit reversed
// (migrations/018), so a refund reads its own rows, not the journal.
const sqlLockCredits = `SELECT c.id, c.creator_id, c.source_account, c.currency, c.micro, c.player_id, c.available_at,
			coalesce((SELECT -sum(r.micro) FROM creator_credits r WHERE r.reverses = c.id), 0)::bigint
		FROM creator_credits c WHERE c.ledger_transaction_id = $1 AND c.kind IN ('code', 'item', 'tip')
		ORDER BY c.id FOR UPDATE OF c`

// lockCredits locks the credits of ledger transaction ledgerTx in id order
// (the order every reversal and reinstatement takes them in).
func lockCredits(ctx context.Context, tx pgx.Tx, ledgerTx int64) ([]lockedCredit, error) {
	rows, _ := tx.Query(ctx, sqlLockCredits, ledgerTx)
	credits, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (lockedCredit, error) {
		var c lockedCredit
		return c, r.Scan(&c.id, &c.creator, &c.source, &c.currency, &c.micro, &c.player, &c.availableAt, &c.reversed)
	})
	if err != nil {
		return nil, fmt.Errorf("creators: credits of ledger transaction %d: %w", ledgerTx, err)
	}
	return credits, nil
}

// ReverseIn reverses, inside the caller's transaction tx, the fraction
// num/den (0 < num <= den) of every creator credit of ledger transaction
// ledgerTx (a purchase, spend or tip being refunded or revoked), recording
// the reversal under reversalTx (the refund's own ledger transaction, or
// ledgerTx when the refund moved nothing). Each reversal is
// floor(credit × num/den), capped at what is left of the credit after
// earlier reversals, so partial refunds never reverse more than was
// credited; a reversal takes its credit's available_at, so a pending credit
// shrinks while pending and a paid-out one becomes debt that the next
// earnings pay first. It writes one creator.reversal event per credit and
// returns the rows written. Errors come from Postgres or a bad fraction.
func ReverseIn(ctx context.Context, tx pgx.Tx, ledgerTx, reversalTx, num, den int64) ([]CreditRow, error) {
	return reverseIn(ctx, tx, ledgerTx, reversalTx, num, den, false)
}

// ReverseToIn is ReverseIn for a share stated as the whole of what is
// refunded so far: it brings what reversals have taken of each credit (net
// of reinstatements) up to floor(credit × num/den), and writes nothing for
// a credit already reversed that far. Refunding a purchase in parts k1, k2,
// … of n units then reverses floor(credit × (k1+k2+…)/n) in all, to the
// micro-unit, and all of the credit once all n are refunded (ReverseIn with
// each part's own share would round every part down, and leave the creator
// up to a micro-unit per part of a fully refunded purchase).
func ReverseToIn(ctx context.Context, tx pgx.Tx, ledgerTx, reversalTx, num, den int64) ([]CreditRow, error) {
	return reverseIn(ctx, tx, ledgerTx, reversalTx, num, den, true)
}

func reverseIn(ctx context.Context, tx pgx.Tx, ledgerTx, reversalTx, num, den int64, cumulative bool) ([]CreditRow, error) {
	if num <= 0 || den <= 0 || num > den {
		return nil, fmt.Errorf("creators: reverse %d/%d: want 0 < num <= den", num, den)
	}
	credits, err := lockCredits(ctx, tx, ledgerTx)
	if err != nil {
		return nil, err
	}
	var out []CreditRow
	for _, c := range credits {
		m, err := Proportion(c.micro, num, den)
		if err != nil {
			return nil, err
		}
		if cumulative {
			m -= c.reversed
		}
		m = min(m, c.micro-c.reversed)
		if m <= 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO creator_credits (creator_id, kind, source_account, currency, micro, player_id,
				ledger_transaction_id, reverses, available_at) VALUES ($1, 'reversal', $2, $3, $4, $5, $6, $7, $8)`,
			c.creator, c.source, c.currency, -m, c.player, reversalTx, c.id, c.availableAt); err != nil {
			return nil, fmt.Errorf("creators: reverse credit %d: %w", c.id, err)
		}
		row := CreditRow{CreatorID: c.creator, Kind: KindReversal, Source: c.source, Currency: c.currency, Micro: -m}
		out = append(out, row)
		if err := insertEvent(ctx, tx, EventReversal, c.player, map[string]any{
			"creator_id": c.creator, "currency": c.currency, "micro": -m, "reverses": c.id,
			"ledger_transaction_id": reversalTx, "reversed_ledger_transaction_id": ledgerTx,
			"fraction": []int64{num, den},
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ReinstateIn undoes, inside the caller's transaction tx, reversals of the
// credits of ledger transaction ledgerTx when the store reverses its refund:
// for each credit, floor(credit × num/den) (0 < num <= den), capped at what
// reversals have taken of it net of earlier reinstatements, is written as a
// 'reinstatement' row (positive, reverses the credit) under reinstateTx, the
// reinstating ledger transaction (or ledgerTx when nothing moved). A later
// refund of the same purchase reverses the reinstated part again. It writes
// one creator.reinstatement event per row and returns the rows written.
func ReinstateIn(ctx context.Context, tx pgx.Tx, ledgerTx, reinstateTx, num, den int64) ([]CreditRow, error) {
	if num <= 0 || den <= 0 || num > den {
		return nil, fmt.Errorf("creators: reinstate %d/%d: want 0 < num <= den", num, den)
	}
	credits, err := lockCredits(ctx, tx, ledgerTx)
	if err != nil {
		return nil, err
	}
	var out []CreditRow
	for _, c := range credits {
		m, err := Proportion(c.micro, num, den)
		if err != nil {
			return nil, err
		}
		m = min(m, c.reversed)
		if m <= 0 {
			continue
		}
		if _, err := tx.Exec(ctx, `INSERT INTO creator_credits (creator_id, kind, source_account, currency, micro, player_id,
				ledger_transaction_id, reverses, available_at) VALUES ($1, 'reinstatement', $2, $3, $4, $5, $6, $7, $8)`,
			c.creator, c.source, c.currency, m, c.player, reinstateTx, c.id, c.availableAt); err != nil {
			return nil, fmt.Errorf("creators: reinstate credit %d: %w", c.id, err)
		}
		out = append(out, CreditRow{CreatorID: c.creator, Kind: KindReinstatement, Source: c.source, Currency: c.currency, Micro: m})
		if err := insertEvent(ctx, tx, EventReinstatement, c.player, map[string]any{
			"creator_id": c.creator, "currency": c.currency, "micro": m, "reinstates": c.id,
			"ledger_transaction_id": reinstateTx, "reinstated_ledger_transaction_id": ledgerTx,
			"fraction": []int64{num, den},
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}
