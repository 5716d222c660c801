package entitlements

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
	"time"

	"github.com/jackc/pgx/v5"
)

// Refunds, partial refunds and their reversal (migrations/015).
//
// A store states how much of a purchase it has refunded or revoked: Apple's
// revocationPercentage (absent once a refund is reversed) and Google's
// refunded quantity describe the transaction as it stands, so they are
// cumulative. SetRevocation therefore sets the purchase's revoked share and
// moves the ledger by the difference from the share already applied:
//
//   - per asset the grant gave the player, what the share takes back is
//     floor(granted × share), rounded down in the player's favour (50% of
//     100 gems is 50; 1/3 of 100 gems is 33, of 3 swords 1). A second
//     partial refund takes floor(granted × new) − floor(granted × old), so
//     all refunds together never take more than was granted;
//   - what is taken goes through the one writer under the clawback policy
//     (clamp, negative, flag), the shortfall recorded as debt, and the
//     creator credits of the purchase are reversed by the same difference
//     of shares, in the same transaction;
//   - a lower share (a reversed refund, REFUND_REVERSED) gives back the
//     difference: it first cancels the debts the refunds recorded (and
//     their debt-account posting under ClawbackNegative), then re-grants
//     the rest, and restores the creator credits the refunds reversed. A
//     reversal to 0 re-grants exactly what the refunds took.
//
// Order: a statement dated AsOf applies only when it is newer than the one
// that set the current share, so redeliveries and a REFUND arriving after
// its REFUND_REVERSED change nothing. An undated statement (AsOf zero) can
// only raise the share.

// KindStoreReinstatement is the ledger kind of a reversed refund's re-grant.
const KindStoreReinstatement = "store_refund_reversal"

// MaxShareDen bounds StoreRevocation.Den, so products of two shares fit in
// an int64.
const MaxShareDen = 1_000_000_000

// StoreRevocation is a store's statement of how much of one recorded
// purchase it has refunded or revoked.
type StoreRevocation struct {
	Store, TransactionID string
	// Num/Den is the share of the whole purchase refunded or revoked so far:
	// 0 <= Num <= Den, 0 < Den <= MaxShareDen. 1/1 is all of it, 0/1 none
	// (the refund was reversed). Apple: revocationPercentage in millionths
	// over 1_000_000 (or k/quantity, see stores); Google: refunded quantity
	// over quantity.
	Num, Den int64
	// AsOf is when the store made the statement (Apple: the signed
	// transaction's signedDate). Zero: undated, applied only if it raises
	// the share.
	AsOf time.Time
	// Reason is recorded with the ledger posting and the debts.
	Reason string
	// Policy decides what is done with assets already spent (default
	// clamp).
	Policy ClawbackPolicy
}

// Revocation is what Revoke or SetRevocation did.
type Revocation struct {
	PlayerID string
	// Reversed is true when the call changed the purchase's revoked share
	// (took back or gave back); false for a repeated or stale statement.
	Reversed bool
	// Reinstated is true when the share went down (a reversed refund).
	Reinstated bool
	// Num/Den is the purchase's revoked share after the call.
	Num, Den int64
	// Taken and Shortfall: per asset id, what this call took back and what
	// it could not take (recorded as debt).
	Taken     map[string]int64
	Shortfall map[string]int64
	// Restored and DebtCancelled: per asset id, what a reversal re-granted
	// and what debt it cancelled.
	Restored      map[string]int64
	DebtCancelled map[string]int64
}

// Revoke takes back all of a store purchase after a full refund or a
// revocation, exactly once: SetRevocation with the share 1/1, undated.
// Errors: ErrStorePurchaseNotFound (and the refund is remembered).
func (l *Ledger) Revoke(ctx context.Context, store, transactionID, reason string, policy ClawbackPolicy) (Revocation, error) {
	return l.SetRevocation(ctx, StoreRevocation{Store: store, TransactionID: transactionID, Num: 1, Den: 1, Reason: reason, Policy: policy})
}

// SetRevocation applies a store's statement of the share of a purchase it
// has refunded (see the package comment on refunds above): the ledger moves
// by the difference from the share applied so far, in one transaction with
// the purchase's new state, debts, creator credits and outbox events. A
// statement for a transaction never redeemed here is remembered: while its
// share is above zero, the transaction cannot be redeemed.
// Errors: *InvalidError for a bad share, ErrStorePurchaseNotFound (the
// statement is remembered).
func (l *Ledger) SetRevocation(ctx context.Context, r StoreRevocation) (Revocation, error) {
	if r.Store == "" || r.TransactionID == "" {
		return Revocation{}, &InvalidError{Field: "transaction_id", Message: "store and transaction id are required"}
	}
	if r.Den <= 0 || r.Den > MaxShareDen || r.Num < 0 || r.Num > r.Den {
		return Revocation{}, &InvalidError{Field: "share", Message: fmt.Sprintf("want 0 <= num <= den, 0 < den <= %d", MaxShareDen)}
	}
	if r.Policy == "" {
		r.Policy = ClawbackClamp
	}
	var asOf *time.Time
	if !r.AsOf.IsZero() {
		t := r.AsOf.UTC()
		asOf = &t
	}
	rev := Revocation{Num: r.Num, Den: r.Den}
	var changed *Holdings
	var unknown bool
	err := pgx.BeginFunc(ctx, l.db, func(tx pgx.Tx) error {
		if err := lockStoreTransaction(ctx, tx, r.Store, r.TransactionID); err != nil {
			return err
		}
		var cur struct {
			grantTx  *int64
			num, den int64
			asOf     *time.Time
			steps    int
			original string
			expires  *time.Time
		}
		err := tx.QueryRow(ctx, `SELECT player_id, ledger_transaction_id, revoked_num, revoked_den, revocation_as_of,
				revocation_steps, coalesce(nullif(original_transaction_id, ''), transaction_id), expires_at
			FROM store_purchases WHERE store = $1 AND transaction_id = $2 FOR UPDATE`, r.Store, r.TransactionID).
			Scan(&rev.PlayerID, &cur.grantTx, &cur.num, &cur.den, &cur.asOf, &cur.steps, &cur.original, &cur.expires)
		if errors.Is(err, pgx.ErrNoRows) {
			unknown = true
			return rememberRevocation(ctx, tx, r, asOf)
		}
		if err != nil {
			return err
		}
		rev.Num, rev.Den = cur.num, cur.den
		if !newerStatement(r, asOf, cur.num, cur.den, cur.asOf) {
			return nil
		}
		cmp := compareShares(r.Num, r.Den, cur.num, cur.den)
		if cmp == 0 {
			// The same share, stated later: later statements must be newer
			// still to apply.
			_, err := tx.Exec(ctx, `UPDATE store_purchases SET revocation_as_of = coalesce($3::timestamptz, revocation_as_of)
				WHERE store = $1 AND transaction_id = $2`, r.Store, r.TransactionID, asOf)
			return err
		}
		rev.Reversed, rev.Reinstated = true, cmp < 0
		rev.Num, rev.Den = r.Num, r.Den
		if _, err := tx.Exec(ctx, `SELECT 1 FROM players WHERE player_id = $1 FOR UPDATE`, rev.PlayerID); err != nil {
			return err
		}
		var moved *int64
		if cur.grantTx != nil {
			id, err := l.moveShare(ctx, tx, &rev, r, *cur.grantTx, cur.num, cur.den, cur.steps)
			if err != nil {
				return err
			}
			moved = id
		}
		if _, err := tx.Exec(ctx, `UPDATE store_purchases SET revoked_num = $3::bigint, revoked_den = $4::bigint,
				revocation_as_of = coalesce($5::timestamptz, revocation_as_of), revocation_steps = revocation_steps + 1,
				revoked_at = CASE WHEN $3::bigint > 0 THEN coalesce(revoked_at, now()) END,
				revocation_ledger_transaction_id = coalesce($6::bigint, revocation_ledger_transaction_id)
			WHERE store = $1 AND transaction_id = $2`, r.Store, r.TransactionID, r.Num, r.Den, asOf, moved); err != nil {
			return err
		}
		if err := l.revokeSubscription(ctx, tx, rev.PlayerID, r, cur.num, cur.original, cur.expires); err != nil {
			return err
		}
		// Even with nothing moved in the ledger (a subscription), the
		// player's state changed: move the version so caches drop it.
		h, err := bumpVersion(ctx, tx, rev.PlayerID)
		if err != nil {
			return err
		}
		changed = &h
		return nil
	})
	if err == nil && unknown {
		return rev, ErrStorePurchaseNotFound
	}
	if err != nil {
		return rev, fmt.Errorf("entitlements: revoke %s %s: %w", r.Store, r.TransactionID, err)
	}
	if changed != nil {
		l.afterCommit(ctx, *changed)
	}
	return rev, nil
}

// newerStatement reports whether statement r (dated asOf, or undated) may
// replace the share num/den set by a statement dated cur (nil: undated).
func newerStatement(r StoreRevocation, asOf *time.Time, num, den int64, cur *time.Time) bool {
	if asOf == nil {
		return compareShares(r.Num, r.Den, num, den) > 0
	}
	return cur == nil || asOf.After(*cur)
}

// compareShares compares a/b with c/d (denominators positive, at most
// MaxShareDen, so the products fit).
func compareShares(a, b, c, d int64) int {
	x, y := a*d, c*b
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// portion is floor(n × num/den) for 0 <= num <= den, without overflow.
func portion(n, num, den int64) int64 {
	if n <= 0 || num <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(n), uint64(num))
	q, _ := bits.Div64(hi, lo, uint64(den)) // hi < den since num <= den
	return int64(q)
}

// rememberRevocation records a statement about a transaction never redeemed
// here, with the same ordering rule as a redeemed one.
func rememberRevocation(ctx context.Context, tx pgx.Tx, r StoreRevocation, asOf *time.Time) error {
	var num, den int64
	var cur *time.Time
	err := tx.QueryRow(ctx, `SELECT revoked_num, revoked_den, as_of FROM store_revocations
		WHERE store = $1 AND transaction_id = $2 FOR UPDATE`, r.Store, r.TransactionID).Scan(&num, &den, &cur)
	if errors.Is(err, pgx.ErrNoRows) {
		_, err = tx.Exec(ctx, `INSERT INTO store_revocations (store, transaction_id, reason, revoked_num, revoked_den, as_of)
			VALUES ($1, $2, $3, $4, $5, $6)`, r.Store, r.TransactionID, r.Reason, r.Num, r.Den, asOf)
		return err
	}
	if err != nil || !newerStatement(r, asOf, num, den, cur) {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE store_revocations SET revoked_num = $3, revoked_den = $4, as_of = coalesce($5::timestamptz, as_of),
		reason = $6, revoked_at = now() WHERE store = $1 AND transaction_id = $2`, r.Store, r.TransactionID, r.Num, r.Den, asOf, r.Reason)
	return err
}

// revokeSubscription ends the subscription a purchase belongs to when its
// first refund applies, and restores it when the last refund is reversed:
// it then holds until the latest expiry among its unrevoked purchases (the
// store's next status notification corrects the state if needed).
func (l *Ledger) revokeSubscription(ctx context.Context, tx pgx.Tx, player string, r StoreRevocation, fromNum int64, original string, expires *time.Time) error {
	before, err := readSubscriptionState(ctx, tx, r.Store, original)
	if err != nil {
		return err
	}
	switch {
	case fromNum == 0 && r.Num > 0:
		_, err = tx.Exec(ctx, `UPDATE subscriptions SET state = 'revoked', expires_at = least(expires_at, now()), updated_at = now()
			WHERE store = $1 AND original_transaction_id = $2`, r.Store, original)
	case fromNum > 0 && r.Num == 0 && expires != nil:
		_, err = tx.Exec(ctx, `UPDATE subscriptions s SET expires_at = greatest(s.expires_at, p.expires_at), updated_at = now(),
				state = CASE WHEN greatest(s.expires_at, p.expires_at) > now() THEN 'active' ELSE 'expired' END
			FROM (SELECT max(expires_at) AS expires_at FROM store_purchases
			      WHERE store = $1 AND coalesce(nullif(original_transaction_id, ''), transaction_id) = $2 AND revoked_num = 0) p
			WHERE s.store = $1 AND s.original_transaction_id = $2 AND s.state = 'revoked' AND p.expires_at IS NOT NULL`, r.Store, original)
	default:
		return nil
	}
	if err != nil {
		return err
	}
	return recordSubscriptionChange(ctx, tx, player, r.Store, original, before)
}

// openDebt is a debt row a reversal may cancel.
type openDebt struct {
	id     int64
	amount int64
	policy string
}

// moveShare moves the ledger from share fromNum/fromDen of grant grantTx to
// r's share, inside the caller's transaction, and records debts and creator
// credits. step numbers the purchase's share changes, for the posting's
// idempotency key. It returns the ledger transaction written (nil when
// nothing moved).
func (l *Ledger) moveShare(ctx context.Context, tx pgx.Tx, rev *Revocation, r StoreRevocation, grantTx, fromNum, fromDen int64, step int) (*int64, error) {
	player := rev.PlayerID
	rows, err := tx.Query(ctx, `SELECT e.asset_type, e.asset_id, e.amount
		FROM ledger_entries e
		WHERE e.transaction_id = $1 AND e.account = 'player:' || $2 AND e.amount > 0
		ORDER BY e.asset_type, e.asset_id`, grantTx, player)
	if err != nil {
		return nil, err
	}
	type leg struct {
		typ, id string
		delta   int64 // > 0: to take back; < 0: to give back
	}
	legs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (leg, error) {
		var g leg
		var granted int64
		if err := row.Scan(&g.typ, &g.id, &granted); err != nil {
			return g, err
		}
		g.delta = portion(granted, r.Num, r.Den) - portion(granted, fromNum, fromDen)
		return g, nil
	})
	if err != nil {
		return nil, err
	}
	debtAccount := "system:debt:" + player
	key := r.Store + ":" + r.TransactionID
	if step > 0 {
		// The first step keeps the key full refunds always had.
		key = fmt.Sprintf("%s#%d", key, step)
	}
	sum := sha256.Sum256(fmt.Appendf(nil, "%s %d/%d", key, r.Num, r.Den))
	metadata := map[string]any{"store": r.Store, "transaction_id": r.TransactionID, "reason": r.Reason,
		"policy": r.Policy, "reverses": grantTx, "share": []int64{r.Num, r.Den}, "previous_share": []int64{fromNum, fromDen}}
	reinstate := compareShares(r.Num, r.Den, fromNum, fromDen) < 0

	var changes []change
	// Debts a reversal cancels, per leg: rows to close, and a remainder
	// row to write when a row is only partly cancelled.
	type cancel struct {
		leg       leg
		rows      []openDebt
		remainder int64
	}
	var cancels []cancel
	if !reinstate {
		rev.Taken, rev.Shortfall = map[string]int64{}, map[string]int64{}
		for _, g := range legs {
			if g.delta <= 0 {
				continue
			}
			if r.Policy == ClawbackFlag {
				rev.Shortfall[g.id] += g.delta // nothing taken: all of it for support
				continue
			}
			c := change{Type: g.typ, ID: g.id, Delta: -g.delta, Floor: true}
			if r.Policy == ClawbackNegative {
				c.DebtAccount = debtAccount
			}
			changes = append(changes, c)
		}
	} else {
		rev.Restored, rev.DebtCancelled = map[string]int64{}, map[string]int64{}
		for _, g := range legs {
			if g.delta >= 0 {
				continue
			}
			back := -g.delta
			// Newest first: a partial reversal cancels what the latest
			// refund recorded.
			drows, _ := tx.Query(ctx, `SELECT id, amount, policy FROM player_debts
				WHERE player_id = $1 AND store = $2 AND transaction_id = $3 AND asset_type = $4 AND asset_id = $5
				AND cancelled_at IS NULL ORDER BY id DESC FOR UPDATE`, player, r.Store, r.TransactionID, g.typ, g.id)
			debts, err := pgx.CollectRows(drows,
				func(row pgx.CollectableRow) (openDebt, error) {
					var d openDebt
					return d, row.Scan(&d.id, &d.amount, &d.policy)
				})
			if err != nil {
				return nil, err
			}
			cn := cancel{leg: g}
			var relief int64
			for _, d := range debts {
				if back == 0 {
					break
				}
				n := min(d.amount, back)
				back -= n
				rev.DebtCancelled[g.id] += n
				if d.policy == string(ClawbackNegative) {
					relief += n
				}
				cn.rows = append(cn.rows, d)
				if n < d.amount {
					cn.remainder = d.amount - n
				}
			}
			if len(cn.rows) > 0 {
				cancels = append(cancels, cn)
			}
			if back > 0 || relief > 0 {
				rev.Restored[g.id] += back
				changes = append(changes, change{Type: g.typ, ID: g.id, Delta: back, DebtAccount: debtAccount, DebtRelief: relief})
			}
		}
	}

	var moved *int64
	if len(changes) > 0 {
		kind := KindStoreRefund
		if reinstate {
			kind = KindStoreReinstatement
		}
		res, _, err := l.postIn(ctx, tx, &posting{
			playerID: player, scope: ScopeStoreRefund, key: key, fingerprint: sum[:],
			kind: kind, reference: r.Store + ":" + r.TransactionID, account: storeAccount(r.Store),
			changes: changes, metadata: metadata,
		})
		if err != nil {
			return nil, err
		}
		moved = res.ledgerTx
		if !reinstate {
			for _, c := range changes {
				short := res.shortfall[c.ID]
				rev.Taken[c.ID] += -c.Delta - short
				if short > 0 {
					rev.Shortfall[c.ID] += short
				}
			}
		}
	}
	if !reinstate {
		for _, g := range legs {
			if short := rev.Shortfall[g.id]; short > 0 && g.delta > 0 {
				if _, err := tx.Exec(ctx, `INSERT INTO player_debts (player_id, store, transaction_id, asset_type, asset_id, amount, policy)
					VALUES ($1, $2, $3, $4, $5, $6, $7)`, player, r.Store, r.TransactionID, g.typ, g.id, short, string(r.Policy)); err != nil {
					return nil, err
				}
			}
		}
	}
	for _, cn := range cancels {
		for _, d := range cn.rows {
			if _, err := tx.Exec(ctx, `UPDATE player_debts SET cancelled_at = now(), cancelled_by = $2 WHERE id = $1`, d.id, moved); err != nil {
				return nil, err
			}
		}
		if cn.remainder > 0 {
			last := cn.rows[len(cn.rows)-1]
			if _, err := tx.Exec(ctx, `INSERT INTO player_debts (player_id, store, transaction_id, asset_type, asset_id, amount, policy)
				VALUES ($1, $2, $3, $4, $5, $6, $7)`, player, r.Store, r.TransactionID, cn.leg.typ, cn.leg.id, cn.remainder, last.policy); err != nil {
				return nil, err
			}
		}
	}

	// Creator credits of the purchase move by the same difference of
	// shares: (new − old) reversed, or (old − new) given back.
	num, den := r.Num*fromDen-fromNum*r.Den, r.Den*fromDen
	ref := grantTx
	if moved != nil {
		ref = *moved
	}
	if reinstate {
		if _, err := reinstateCredits(ctx, tx, grantTx, ref, -num, den); err != nil {
			return nil, err
		}
	} else if err := ReverseCredits(ctx, tx, grantTx, ref, num, den); err != nil {
		return nil, err
	}
	return moved, nil
}
