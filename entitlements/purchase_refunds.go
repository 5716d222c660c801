package entitlements

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/coinop/coinop/creators"
)

// Support refunds of purchases made with virtual currency (POST /v1/purchases),
// table purchase_refunds (migrations/016).
//
// A purchase buys Quantity units of an item or bundle at one unit price, so
// support refunds it in whole units: k of its n units gives back k/n of what
// the purchase moved, per asset the net the purchase posted for the player
// (a bundle that cost gems and granted gems moves gems once). The currency
// spent is exact (n × price, k/n of it is k × price); what each refund takes
// is floor(moved × refunded so far / n) less what earlier refunds took, so
// refunds in parts never move more than the purchase did and the last one
// moves exactly the rest. Granted items the player no longer holds follow
// the store refunds' ClawbackPolicy: clamp (take what is held, record the
// rest as a debt), negative (the rest through the player's debt account,
// recorded as debt) or flag (take nothing, record it all for support). The
// debts are player_debts rows with store "coinop" and the purchase's ledger
// transaction id, listed by GET /admin/v1/players/{id}/debts.
//
// The creator credits of the purchase are reversed to the same share in the
// same transaction (creators.ReverseToIn): from available earnings, or as a
// debt that the creator's next earnings pay first when already paid out.

// KindPurchaseRefund is the ledger kind of a refund of a purchase.
const KindPurchaseRefund = "purchase_refund"

// ScopePurchaseRefund scopes the refund route's idempotency keys.
const ScopePurchaseRefund = "POST /admin/v1/players/{player_id}/purchases/{transaction_id}/refund"

// DebtStoreCoinop is the store of the debts purchase refunds record: the
// purchase was made here, with the game's own currency.
const DebtStoreCoinop = "coinop"

// Codes of refused purchase refunds (*RefundError). They are never stored
// with the idempotency key: the same key may be used again once corrected.
const (
	// CodePurchaseNotFound: no ledger transaction has the id.
	CodePurchaseNotFound Code = "purchase_not_found"
	// CodePurchaseOfAnotherPlayer: the transaction is another player's.
	CodePurchaseOfAnotherPlayer Code = "purchase_of_another_player"
	// CodeNotAPurchase: the transaction is not a purchase (a grant, a
	// store redemption, a refund, ...).
	CodeNotAPurchase Code = "not_a_purchase"
	// CodeRefundExceedsPurchase: more units than are left to refund.
	CodeRefundExceedsPurchase Code = "refund_exceeds_purchase"
	// CodePurchaseAlreadyRefunded: every unit was refunded already.
	CodePurchaseAlreadyRefunded Code = "purchase_already_refunded"
)

// RefundError is a refund support may not make. The counts are set for
// refund_exceeds_purchase and purchase_already_refunded.
type RefundError struct {
	Code          Code
	TransactionID int64
	// Purchased is the purchase's quantity, Refunded what earlier refunds
	// refunded of it, Requested what this one asked for.
	Purchased, Refunded, Requested int64
}

func (e *RefundError) Error() string {
	return fmt.Sprintf("entitlements: refund of transaction %d: %s", e.TransactionID, e.Code)
}

// PurchaseRefundRequest refunds Quantity units (0: all not yet refunded) of
// the purchase recorded as ledger transaction TransactionID.
type PurchaseRefundRequest struct {
	PlayerID       string
	IdempotencyKey string
	TransactionID  int64
	Quantity       int64
	Reason         string
	// Policy decides what is done with granted items or currency the
	// player no longer holds (default clamp).
	Policy ClawbackPolicy
	// Actor and RequestID go to the audit log, in the refund's transaction.
	Actor, RequestID string
}

// RefundPurchase refunds units of a purchase in one transaction through the
// ledger writer, with its purchase_refunds row, debts, creator reversals,
// audit entry and outbox events (ledger.purchase_refund, creator.reversal),
// exactly once per idempotency key: a replay returns the first answer.
// Errors: *InvalidError, *RefundError, ErrIdempotencyKeyReused,
// ErrIdempotencyKeyInUse.
func (l *Ledger) RefundPurchase(ctx context.Context, req PurchaseRefundRequest) (Outcome, error) {
	if err := ValidatePlayerID(req.PlayerID); err != nil {
		return Outcome{}, err
	}
	if err := ValidateIdempotencyKey(req.IdempotencyKey); err != nil {
		return Outcome{}, err
	}
	if req.TransactionID < 1 {
		return Outcome{}, &InvalidError{Field: "transaction_id", Message: "must be a ledger transaction id"}
	}
	if req.Quantity < 0 || req.Quantity > MaxQuantity {
		return Outcome{}, &InvalidError{Field: "quantity", Message: fmt.Sprintf("must be between 1 and %d", MaxQuantity)}
	}
	req.Reason = strings.TrimSpace(req.Reason)
	if req.Reason == "" || utf8.RuneCountInString(req.Reason) > 200 {
		return Outcome{}, &InvalidError{Field: "reason", Message: "is required, at most 200 characters"}
	}
	if req.Policy == "" {
		req.Policy = ClawbackClamp
	}
	if _, err := ParseClawbackPolicy(string(req.Policy)); err != nil {
		return Outcome{}, &InvalidError{Field: "policy", Message: "must be clamp, negative or flag"}
	}
	if req.Actor == "" {
		req.Actor = "unknown"
	}
	fingerprint, err := fingerprintOf(struct {
		TransactionID int64          `json:"transaction_id"`
		Quantity      int64          `json:"quantity"`
		Reason        string         `json:"reason"`
		Policy        ClawbackPolicy `json:"policy"`
	}{req.TransactionID, req.Quantity, req.Reason, req.Policy})
	if err != nil {
		return Outcome{}, err
	}

	var res postResult
	var patches []holdingsPatch
	err = pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		// The player's row first, as the writer takes it (and waiting as
		// long, so a duplicate behind a stuck first request is told the key
		// is in use): refunds of one player's purchases serialize here, so
		// each sees what the ones before it refunded.
		if _, err := tx.Exec(ctx, `WITH cfg AS (SELECT set_config('lock_timeout', $2, true))
			INSERT INTO players AS p (player_id) SELECT $1 FROM cfg
			ON CONFLICT (player_id) DO UPDATE SET version = p.version`, req.PlayerID, strconv.FormatInt(l.keyWait.Milliseconds(), 10)); err != nil {
			return err
		}
		p := &posting{playerID: req.PlayerID, scope: ScopePurchaseRefund, key: req.IdempotencyKey, fingerprint: fingerprint,
			kind: KindPurchaseRefund, account: AccountPurchases}
		var replay bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM idempotency_keys WHERE player_id = $1 AND scope = $2 AND key = $3)`,
			req.PlayerID, ScopePurchaseRefund, req.IdempotencyKey).Scan(&replay); err != nil {
			return err
		}
		if replay {
			// The writer answers from the key (or refuses a different
			// request under it); the purchase is not looked at again, so
			// a replay after the last unit was refunded still answers.
			var err error
			res, patches, err = l.postIn(ctx, tx, p)
			return err
		}
		plan, err := l.planRefund(ctx, tx, req, p)
		if err != nil {
			return err
		}
		res, patches, err = l.postIn(ctx, tx, p)
		if err != nil || res.Replayed {
			return err
		}
		return plan.record(ctx, tx, req, res)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return Outcome{}, ErrIdempotencyKeyInUse
	}
	if err != nil {
		var refused *RefundError
		var rejected *Rejection
		if errors.As(err, &refused) || errors.As(err, &rejected) || errors.Is(err, ErrIdempotencyKeyReused) || errors.Is(err, ErrIdempotencyKeyInUse) {
			return Outcome{}, err
		}
		return Outcome{}, fmt.Errorf("entitlements: refund of transaction %d: %w", req.TransactionID, err)
	}
	l.afterPatches(ctx, patches)
	return res.Outcome, nil
}

// refundPlan is what one refund moves, decided in planRefund.
type refundPlan struct {
	purchaseTx          int64
	purchased, refunded int64 // before this refund
	quantity            int64
	// shortfall per asset id: what cannot be taken back and becomes debt
	// (under flag, all that would have been taken).
	shortfall map[string]int64
	assetType map[string]string
}

// planRefund reads the purchase and what earlier refunds took, under the
// player's lock, and fills p's changes, result and metadata.
func (l *Ledger) planRefund(ctx context.Context, tx pgx.Tx, req PurchaseRefundRequest, p *posting) (*refundPlan, error) {
	var owner, kind, reference, itemID string
	var purchased int64
	err := tx.QueryRow(ctx, `SELECT player_id, kind, reference, coalesce(metadata->>'item_id', ''),
			coalesce((metadata->>'quantity')::bigint, 1)
		FROM ledger_transactions WHERE id = $1`, req.TransactionID).Scan(&owner, &kind, &reference, &itemID, &purchased)
	refused := func(code Code) *RefundError { return &RefundError{Code: code, TransactionID: req.TransactionID} }
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, refused(CodePurchaseNotFound)
	case err != nil:
		return nil, err
	case owner != req.PlayerID:
		return nil, refused(CodePurchaseOfAnotherPlayer)
	case kind != KindPurchase || purchased < 1:
		return nil, refused(CodeNotAPurchase)
	}
	rp := &refundPlan{purchaseTx: req.TransactionID, purchased: purchased, shortfall: map[string]int64{}, assetType: map[string]string{}}
	if err := tx.QueryRow(ctx, `SELECT coalesce(sum(quantity), 0)::bigint FROM purchase_refunds WHERE purchase_ledger_transaction_id = $1`,
		req.TransactionID).Scan(&rp.refunded); err != nil {
		return nil, err
	}
	left := purchased - rp.refunded
	rp.quantity = req.Quantity
	if rp.quantity == 0 {
		rp.quantity = left
	}
	if left == 0 || rp.quantity > left {
		e := refused(CodeRefundExceedsPurchase)
		if left == 0 {
			e = refused(CodePurchaseAlreadyRefunded)
		}
		e.Purchased, e.Refunded, e.Requested = purchased, rp.refunded, rp.quantity
		return nil, e
	}

	// What the purchase moved for the player, net per asset, and what the
	// player holds of it now (their row is locked: it cannot change).
	rows, _ := tx.Query(ctx, `SELECT e.asset_type, e.asset_id, e.amount, coalesce(b.quantity, 0)
		FROM ledger_entries e LEFT JOIN balances b
			ON b.player_id = $2 AND b.asset_type = e.asset_type AND b.asset_id = e.asset_id
		WHERE e.transaction_id = $1 AND e.account = 'player:' || $2 ORDER BY e.asset_type, e.asset_id`, req.TransactionID, req.PlayerID)
	type leg struct {
		typ, id      string
		moved, held  int64
		share, taken int64
	}
	legs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (leg, error) {
		var g leg
		return g, r.Scan(&g.typ, &g.id, &g.moved, &g.held)
	})
	if err != nil {
		return nil, err
	}
	givenBack, takenBack := map[string]int64{}, map[string]int64{}
	debtAccount := "system:debt:" + req.PlayerID
	for _, g := range legs {
		abs := g.moved
		if abs < 0 {
			abs = -abs
		}
		g.share = portion(abs, rp.refunded+rp.quantity, purchased) - portion(abs, rp.refunded, purchased)
		switch {
		case g.share == 0:
			continue
		case g.moved < 0: // spent: given back
			givenBack[g.id] = g.share
			p.changes = append(p.changes, change{Type: g.typ, ID: g.id, Delta: g.share})
			continue
		}
		rp.assetType[g.id] = g.typ
		if req.Policy == ClawbackFlag {
			rp.shortfall[g.id] = g.share // nothing taken: all of it for support
			continue
		}
		if g.taken = min(g.share, max(g.held, 0)); g.taken > 0 {
			takenBack[g.id] = g.taken
		}
		if short := g.share - g.taken; short > 0 {
			rp.shortfall[g.id] = short
		}
		c := change{Type: g.typ, ID: g.id, Delta: -g.share, Floor: true}
		if req.Policy == ClawbackNegative {
			c.DebtAccount = debtAccount
		}
		p.changes = append(p.changes, c)
	}
	if snap := l.catalog.Current(); snap != nil {
		p.currencies = snap.CurrencyIDs()
	}
	refundID := uuid.Must(uuid.NewV7()).String()
	p.reference = refundID
	p.reportTaken = true
	p.result = []bodyMember{
		{"refund_id", refundID},
		{"player_id", req.PlayerID},
		{"transaction_id", req.TransactionID},
		{"purchase_id", reference},
		{"item_id", itemID},
		{"quantity", rp.quantity},
		{"refunded_quantity", rp.refunded + rp.quantity},
		{"purchased_quantity", purchased},
		{"reason", req.Reason},
		{"policy", req.Policy},
		{"given_back", givenBack},
		{"taken_back", takenBack},
		{"shortfall", rp.shortfall},
	}
	p.metadata = map[string]any{
		"reverses": req.TransactionID, "purchase_id": reference, "item_id": itemID,
		"quantity": rp.quantity, "refunded_quantity": rp.refunded + rp.quantity, "purchased_quantity": purchased,
		"reason": req.Reason, "policy": req.Policy, "actor": req.Actor, "idempotency_key": req.IdempotencyKey,
	}
	return rp, nil
}

// record writes what a refund leaves beside its posting: its row, its
// debts, the creator reversals and the audit entry.
func (rp *refundPlan) record(ctx context.Context, tx pgx.Tx, req PurchaseRefundRequest, res postResult) error {
	if _, err := tx.Exec(ctx, `INSERT INTO purchase_refunds (player_id, purchase_ledger_transaction_id, ledger_transaction_id,
			quantity, refunded_before, purchased, reason, policy, actor, idempotency_key)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, req.PlayerID, rp.purchaseTx, res.ledgerTx,
		rp.quantity, rp.refunded, rp.purchased, req.Reason, string(req.Policy), req.Actor, req.IdempotencyKey); err != nil {
		return err
	}
	for _, id := range sortedIDs(rp.shortfall) {
		if _, err := tx.Exec(ctx, `INSERT INTO player_debts (player_id, store, transaction_id, asset_type, asset_id, amount, policy)
			VALUES ($1, $2, $3, $4, $5, $6, $7)`, req.PlayerID, DebtStoreCoinop, strconv.FormatInt(rp.purchaseTx, 10),
			rp.assetType[id], id, rp.shortfall[id], string(req.Policy)); err != nil {
			return err
		}
	}
	reversal := rp.purchaseTx
	if res.ledgerTx != nil {
		reversal = *res.ledgerTx
	}
	if _, err := creators.ReverseToIn(ctx, tx, rp.purchaseTx, reversal, rp.refunded+rp.quantity, rp.purchased); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, `SELECT coinop_audit($1, 'player.purchase_refund', $2, NULL, $3, $4)`,
		req.Actor, "players/"+req.PlayerID, string(res.Body), req.RequestID)
	return err
}
