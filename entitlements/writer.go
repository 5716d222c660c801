package entitlements

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/coinop/coinop/outbox"
)

// The ledger writer: every change to a balance or an inventory is a posting,
// and every posting goes through apply. apply takes a whole batch of
// postings (one for admin grants, store redemptions and refunds; up to
// maxBatch for purchases under group commit) through two round trips in one
// transaction:
//
//  1. lock the batch's players in player_id order (creating them), read their
//     currency balances and the items the batch touches, read the batch's
//     idempotency keys, and reserve ledger transaction ids;
//  2. write the idempotency records, ledger transactions, ledger entries,
//     balance changes, creator credits and player versions, set-based
//     (unnest), in one statement of data-modifying CTEs; then take the
//     outbox's ordering lock, insert the batch's events and commit. Every
//     batch waits for the lock, so only the events and the commit run
//     under it.
//
// Between the two, Go decides each posting in arrival order against the
// state read in step 1, so two postings for one player in one batch see each
// other, one player's rejection never touches another's posting, and every
// response body is built here rather than in SQL. CHECK (quantity >= 0) and
// the deferred double-entry trigger back the decisions in the database.

// posting is one change to one player's holdings.
type posting struct {
	playerID, scope, key string
	fingerprint          []byte
	kind, reference      string
	account              string
	// rejection is decided before touching holdings (price_mismatch, ...);
	// it is stored with the key and returned.
	rejection  *Rejection
	changes    []change
	currencies []string
	// result is the response body's own members, in the order clients
	// read them; balances and entitlements follow.
	result   []bodyMember
	metadata map[string]any
	// reportTaken lists items the posting took in entitlements too, with
	// what is left (a consumption's answer says how many potions remain).
	reportTaken bool
	// budget is what the posting spends of its key's hourly budgets,
	// checked against rows locked in the posting's transaction.
	budget []budgetUse
	// credit is what the posting may credit creators (creators.go).
	credit *creditPlan

	// built is the answer apply built for this posting in a batch whose
	// commit failed or is unknown. When the retry on its own finds that
	// answer stored with the key, the batch did commit and the caller gets
	// its first answer, not a replay.
	built []byte
}

// postResult is a posting's outcome.
type postResult struct {
	Outcome
	// ledgerTx is the ledger transaction the posting wrote, nil if none.
	ledgerTx *int64
	// shortfall is, per asset id, what a Floor change could not take.
	shortfall map[string]int64
}

// postOutcome is a posting's result or its own error (a *Rejection,
// ErrIdempotencyKeyReused).
type postOutcome struct {
	res postResult
	err error
}

// holdingsPatch is what a committed batch changed for one player: the new
// quantities of the assets it touched, moving the player from version Prev
// to Version. The cache applies it to an entry at Prev and otherwise only
// remembers Version, so no older snapshot can be written after it.
type holdingsPatch struct {
	PlayerID      string
	Prev, Version int64
	Currencies    map[string]int64
	Items         map[string]int64
}

// batchSender is satisfied by *pgx.Conn and pgx.Tx.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

type idemKey struct{ player, scope, key string }

// budgetKey names one key's budget for one currency.
type budgetKey struct {
	keyID    int64
	currency string
}

// budgetUse is what one posting spends of one budget.
type budgetUse struct {
	budgetKey
	amount, limit int64
}

// budgetSlot is one budget row of the current window as the batch sees it.
type budgetSlot struct{ used, net int64 }

type storedKey struct {
	fingerprint []byte
	outcome     string
	body        []byte
}

// slot is one balance row as the batch sees it.
type slot struct {
	typ, id string
	qty     int64
	had     bool  // the row existed when the batch read it
	row     bool  // the row exists after the postings applied so far
	net     int64 // the batch's net change
}

type wallet struct {
	prev, version int64
	slots         map[assetKey]*slot
	changed       bool
	// code is the player's creator code with an active creator, if any.
	code *activeCode
	// replayed: a posting of this batch replayed a stored success. Its
	// first answer may never have reached the cache (the replica that
	// committed it died first), so the cache gets a version floor.
	replayed bool
}

func (w *wallet) slot(typ, id string) *slot {
	k := assetKey{typ, id}
	s := w.slots[k]
	if s == nil {
		s = &slot{typ: typ, id: id}
		w.slots[k] = s
	}
	return s
}

const (
	// The lock also sets lock_timeout for the rest of the transaction: a
	// request whose key is held by a transaction still running waits for
	// it at most keyWait (lock_not_available then means "in use").
	sqlLockPlayers = `WITH cfg AS (SELECT set_config('lock_timeout', $2, true))
		INSERT INTO players AS p (player_id) SELECT u.id FROM unnest($1::text[]) AS u(id), cfg ORDER BY 1
		ON CONFLICT (player_id) DO UPDATE SET version = p.version
		RETURNING p.player_id, p.version`
	sqlReadBalances = `SELECT player_id, asset_type, asset_id, quantity FROM balances
		WHERE player_id = ANY($1) AND (asset_type = 'currency' OR asset_id = ANY($2))`
	// LIMIT 1 keeps the lookup a nested loop of primary-key probes: a
	// generic plan guesses 100 keys and, on statistics taken while the
	// table was small, would hash-join them against a scan of every key.
	sqlReadKeys = `SELECT k.player_id, k.scope, k.key, i.fingerprint, i.outcome,
			coalesce(i.body, convert_to(i.response::text, 'UTF8'))
		FROM unnest($1::text[], $2::text[], $3::text[]) AS k(player_id, scope, key)
		CROSS JOIN LATERAL (SELECT * FROM idempotency_keys i
			WHERE i.player_id = k.player_id AND i.scope = k.scope AND i.key = k.key LIMIT 1) i`
	// The budget rows of the batch's keys for the current hour, created
	// when missing and locked either way (after the players, in key order,
	// so batches never wait on each other in a cycle).
	sqlLockBudgets = `INSERT INTO server_key_budgets AS b (key_id, currency, window_start, used)
		SELECT u.k, u.c, $3, 0 FROM unnest($1::bigint[], $2::text[]) AS u(k, c) ORDER BY 1, 2
		ON CONFLICT (key_id, currency, window_start) DO UPDATE SET used = b.used
		RETURNING b.key_id, b.currency, b.used`
	sqlReserveIDs = `SELECT nextval(pg_get_serial_sequence('ledger_transactions', 'id')) FROM generate_series(1, $1)`

	// Round trip 2 is one statement of data-modifying CTEs, one per table
	// (writeSQL), so a batch pays for one statement however many rows.
	cteKeys = `k AS (INSERT INTO idempotency_keys (player_id, scope, key, fingerprint, outcome, body)
		SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bytea[], %s::text[], %s::bytea[]))`
	cteTransactions = `t AS (INSERT INTO ledger_transactions (id, player_id, kind, reference, metadata) OVERRIDING SYSTEM VALUE
		SELECT id, player_id, kind, reference, metadata::jsonb
		FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) AS t(id, player_id, kind, reference, metadata))`
	cteEntries = `e AS (INSERT INTO ledger_entries (transaction_id, account, asset_type, asset_id, amount)
		SELECT * FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::bigint[]))`
	// The player_id = ANY conditions let the planner reach the rows by
	// primary key whatever join it picks: a generic plan guesses 10 rows
	// for unnest and would otherwise hash-join them against a scan of the
	// whole table while it is small.
	cteUpdateBalances = `u AS (UPDATE balances b SET quantity = b.quantity + c.delta
		FROM unnest(%[1]s::text[], %[2]s::text[], %[3]s::text[], %[4]s::bigint[]) AS c(player_id, asset_type, asset_id, delta)
		WHERE b.player_id = ANY(%[1]s::text[]) AND b.player_id = c.player_id AND b.asset_type = c.asset_type AND b.asset_id = c.asset_id)`
	cteInsertBalances = `n AS (INSERT INTO balances (player_id, asset_type, asset_id, quantity)
		SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::bigint[]))`
	cteBudgets = `s AS (UPDATE server_key_budgets b SET used = b.used + d.delta
		FROM unnest(%[1]s::bigint[], %[2]s::text[], %[3]s::bigint[]) AS d(key_id, currency, delta)
		WHERE b.key_id = d.key_id AND b.currency = d.currency AND b.window_start = %[4]s)`
	// Events in the batch's order, after round trip 2's statement (the lock
	// taken just before makes ids commit in order, see package outbox).
	// An empty player is none (a creator.credit event of many players').
	sqlInsertEvents = `INSERT INTO events (type, player_id, data)
		SELECT u.t, nullif(u.p, ''), u.d::jsonb FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS u(t, p, d, n) ORDER BY u.n`
	cteVersions = `v AS (UPDATE players p SET version = v.version
		FROM unnest(%[1]s::text[], %[2]s::bigint[]) AS v(player_id, version)
		WHERE p.player_id = ANY(%[1]s::text[]) AND p.player_id = v.player_id)`
)

// apply runs the postings in one transaction on q. With own it begins and
// commits that transaction itself (one round trip each way, BEGIN and COMMIT
// riding along); otherwise it runs inside the caller's transaction and
// nothing is committed when it returns. err is a failure of the whole batch:
// then nothing was applied, or (with own, when the commit's answer was lost)
// everything was, and the caller must find out through the keys.
func (l *Ledger) apply(ctx context.Context, q batchSender, ps []*posting, own bool) (outs []postOutcome, patches []holdingsPatch, err error) {
	playerSet := map[string]bool{}
	itemSet := map[string]bool{}
	budgetSet := map[budgetKey]bool{}
	reserve := 0
	pk := [3][]string{}
	for _, p := range ps {
		playerSet[p.playerID] = true
		pk[0], pk[1], pk[2] = append(pk[0], p.playerID), append(pk[1], p.scope), append(pk[2], p.key)
		if p.rejection == nil {
			reserve++
			for _, c := range p.changes {
				if c.Type == assetItem {
					itemSet[c.ID] = true
				}
			}
			for _, u := range p.budget {
				budgetSet[u.budgetKey] = true
			}
		}
	}
	players := sortedKeys(playerSet)
	items := sortedKeys(itemSet)
	codePlayers, itemCreators := l.creditLookups(ps)
	window := l.now().UTC().Truncate(time.Hour)
	var budgetKeys []int64
	var budgetCurrencies []string
	for k := range budgetSet {
		budgetKeys, budgetCurrencies = append(budgetKeys, k.keyID), append(budgetCurrencies, k.currency)
	}

	// Round trip 1: lock, read, reserve ids.
	b := &pgx.Batch{}
	if own {
		b.Queue(`BEGIN`)
	}
	b.Queue(sqlLockPlayers, players, strconv.FormatInt(l.keyWait.Milliseconds(), 10))
	b.Queue(sqlReadBalances, players, items)
	b.Queue(sqlReadKeys, pk[0], pk[1], pk[2])
	if len(budgetKeys) > 0 {
		b.Queue(sqlLockBudgets, budgetKeys, budgetCurrencies, window)
	}
	if reserve > 0 {
		b.Queue(sqlReserveIDs, reserve)
	}
	if len(codePlayers) > 0 {
		b.Queue(sqlReadCodes, codePlayers)
	}
	if len(itemCreators) > 0 {
		b.Queue(sqlReadActiveCreators, itemCreators)
	}
	activeCreators := map[string]bool{}
	wallets := make(map[string]*wallet, len(players))
	stored := map[idemKey]*storedKey{}
	budgets := map[budgetKey]*budgetSlot{}
	var ids []int64
	err = func() error {
		br := q.SendBatch(ctx, b)
		defer br.Close()
		if own {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, _ := br.Query()
		var id string
		var version int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &version}, func() error {
			wallets[id] = &wallet{prev: version, version: version, slots: map[assetKey]*slot{}}
			return nil
		}); err != nil {
			return err
		}
		rows, _ = br.Query()
		var typ, asset string
		var qty int64
		if _, err := pgx.ForEachRow(rows, []any{&id, &typ, &asset, &qty}, func() error {
			if w := wallets[id]; w != nil {
				s := w.slot(typ, asset)
				s.qty, s.had, s.row = qty, true, true
			}
			return nil
		}); err != nil {
			return err
		}
		rows, _ = br.Query()
		var k idemKey
		var sk storedKey
		if _, err := pgx.ForEachRow(rows, []any{&k.player, &k.scope, &k.key, &sk.fingerprint, &sk.outcome, &sk.body}, func() error {
			s := sk
			stored[k] = &s
			return nil
		}); err != nil {
			return err
		}
		if len(budgetKeys) > 0 {
			rows, _ = br.Query()
			var bk budgetKey
			var used int64
			if _, err := pgx.ForEachRow(rows, []any{&bk.keyID, &bk.currency, &used}, func() error {
				budgets[bk] = &budgetSlot{used: used}
				return nil
			}); err != nil {
				return err
			}
		}
		if reserve > 0 {
			rows, _ = br.Query()
			var n int64
			if _, err := pgx.ForEachRow(rows, []any{&n}, func() error { ids = append(ids, n); return nil }); err != nil {
				return err
			}
		}
		if len(codePlayers) > 0 {
			rows, _ = br.Query()
			var c activeCode
			if _, err := pgx.ForEachRow(rows, []any{&id, &c.creator, &c.expiresAt}, func() error {
				if w := wallets[id]; w != nil {
					code := c
					w.code = &code
				}
				return nil
			}); err != nil {
				return err
			}
		}
		if len(itemCreators) > 0 {
			rows, _ = br.Query()
			if _, err := pgx.ForEachRow(rows, []any{&id}, func() error { activeCreators[id] = true; return nil }); err != nil {
				return err
			}
		}
		return br.Close()
	}()
	if err != nil {
		return nil, nil, err
	}
	if len(wallets) != len(players) {
		return nil, nil, fmt.Errorf("locked %d of %d players", len(wallets), len(players))
	}

	// Decide each posting in arrival order.
	w := writeSet{activeCreators: activeCreators}
	outs = make([]postOutcome, len(ps))
	for i, p := range ps {
		outs[i] = l.decide(p, wallets[p.playerID], stored, budgets, window, &ids, &w)
	}
	w.creditEvent()

	if c, ok := q.(*pgx.Conn); ok && l.hookBeforeWrite != nil {
		if err := l.hookBeforeWrite(c.PgConn().PID()); err != nil {
			return nil, nil, err
		}
	}

	// Round trip 2: write everything, set-based.
	var ws writeSQL
	if len(w.keys[0]) > 0 {
		ws.add(cteKeys, w.keys[0], w.keys[1], w.keys[2], w.fingerprints, w.keys[3], w.bodies)
	}
	if len(w.txIDs) > 0 {
		ws.add(cteTransactions, w.txIDs, w.txs[0], w.txs[1], w.txs[2], w.txs[3])
		ws.add(cteEntries, w.entryTx, w.entries[0], w.entries[1], w.entries[2], w.amounts)
	}
	if len(w.creditTx) > 0 {
		now := l.now()
		ws.add(cteCredits, now.Add(l.program.Hold), now, w.credits[0], w.credits[1], w.credits[2], w.credits[3],
			w.creditMicro, w.creditSpent, w.credits[4], w.creditTx)
	}
	var upd, ins [3][]string
	var updDelta, insQty []int64
	var vPlayers []string
	var vVersions []int64
	for _, id := range players {
		wl := wallets[id]
		if !wl.changed {
			if wl.replayed {
				// No data (Prev matches no entry): an entry older than the
				// player's version becomes a miss and is reloaded, instead
				// of being served stale after a lost answer.
				patches = append(patches, holdingsPatch{PlayerID: id, Prev: -1, Version: wl.version})
			}
			continue
		}
		patch := holdingsPatch{PlayerID: id, Prev: wl.prev, Version: wl.version,
			Currencies: map[string]int64{}, Items: map[string]int64{}}
		for _, s := range sortedSlots(wl.slots) {
			switch {
			case s.had && s.net != 0:
				upd[0], upd[1], upd[2] = append(upd[0], id), append(upd[1], s.typ), append(upd[2], s.id)
				updDelta = append(updDelta, s.net)
			case !s.had && s.row:
				ins[0], ins[1], ins[2] = append(ins[0], id), append(ins[1], s.typ), append(ins[2], s.id)
				insQty = append(insQty, s.qty)
			default:
				continue
			}
			if s.typ == assetCurrency {
				patch.Currencies[s.id] = s.qty
			} else {
				patch.Items[s.id] = s.qty
			}
		}
		if wl.version != wl.prev {
			vPlayers, vVersions = append(vPlayers, id), append(vVersions, wl.version)
		}
		patches = append(patches, patch)
	}
	if len(updDelta) > 0 {
		ws.add(cteUpdateBalances, upd[0], upd[1], upd[2], updDelta)
	}
	if len(insQty) > 0 {
		ws.add(cteInsertBalances, ins[0], ins[1], ins[2], insQty)
	}
	if len(vPlayers) > 0 {
		ws.add(cteVersions, vPlayers, vVersions)
	}
	var bKeys, bDeltas []int64
	var bCurrencies []string
	for k, s := range budgets {
		if s.net > 0 {
			bKeys, bCurrencies, bDeltas = append(bKeys, k.keyID), append(bCurrencies, k.currency), append(bDeltas, s.net)
		}
	}
	if len(bKeys) > 0 {
		ws.add(cteBudgets, bKeys, bCurrencies, bDeltas, window)
	}
	b = &pgx.Batch{}
	if len(ws.ctes) > 0 {
		b.Queue("WITH "+strings.Join(ws.ctes, ",\n")+"\nSELECT 1", ws.args...)
	}
	// The outbox's ordering lock is held from here to the commit, so every
	// batch waits for the one before it: only the events' own insert runs
	// under it, after everything else this batch writes.
	if len(w.events[0]) > 0 {
		b.Queue(outbox.LockSQL)
		b.Queue(sqlInsertEvents, w.events[0], w.events[1], w.events[2])
	}
	if own {
		b.Queue(`COMMIT`)
	} else {
		b.Queue(`SELECT set_config('lock_timeout', '0', true)`)
	}
	if err := q.SendBatch(ctx, b).Close(); err != nil {
		return nil, nil, err
	}
	if l.hookAfterCommit != nil && own {
		if err := l.hookAfterCommit(); err != nil {
			return nil, nil, err
		}
	}
	return outs, patches, nil
}

// writeSQL assembles round trip 2's statement from the CTEs it needs.
type writeSQL struct {
	ctes []string
	args []any
}

func (w *writeSQL) add(cte string, args ...any) {
	ph := make([]any, len(args))
	for i := range args {
		ph[i] = "$" + strconv.Itoa(len(w.args)+i+1)
	}
	w.ctes = append(w.ctes, fmt.Sprintf(cte, ph...))
	w.args = append(w.args, args...)
}

// writeSet collects a batch's rows, column by column, for the unnest
// statements of round trip 2.
type writeSet struct {
	keys         [4][]string // player, scope, key, outcome
	fingerprints [][]byte
	bodies       [][]byte
	txIDs        []int64
	txs          [4][]string // player, kind, reference, metadata
	entryTx      []int64
	entries      [3][]string // account, asset type, asset id
	amounts      []int64
	events       [3][]string // type, player, data
	// Creator credits: creator, kind, source account, currency, player;
	// and activeCreators, read in round trip 1 (creators.go).
	credits        [5][]string
	creditMicro    []int64
	creditSpent    []int64
	creditTx       []int64
	activeCreators map[string]bool
	// The credited postings' entries of the batch's creator.credit event,
	// and their player when they are all one player's.
	creditEntries [][]byte
	creditPlayer  string
}

func (w *writeSet) key(p *posting, outcome string, body []byte) {
	w.keys[0], w.keys[1], w.keys[2], w.keys[3] = append(w.keys[0], p.playerID), append(w.keys[1], p.scope), append(w.keys[2], p.key), append(w.keys[3], outcome)
	w.fingerprints, w.bodies = append(w.fingerprints, p.fingerprint), append(w.bodies, body)
}

func (w *writeSet) entry(tx int64, account, typ, id string, amount int64) {
	w.entryTx, w.amounts = append(w.entryTx, tx), append(w.amounts, amount)
	w.entries[0], w.entries[1], w.entries[2] = append(w.entries[0], account), append(w.entries[1], typ), append(w.entries[2], id)
}

// decide settles one posting against its player's wallet as left by the
// postings before it in the batch, and queues its rows.
func (l *Ledger) decide(p *posting, wl *wallet, stored map[idemKey]*storedKey, budgets map[budgetKey]*budgetSlot, window time.Time, ids *[]int64, w *writeSet) postOutcome {
	k := idemKey{p.playerID, p.scope, p.key}
	if prior := stored[k]; prior != nil {
		if !bytes.Equal(prior.fingerprint, p.fingerprint) {
			return postOutcome{err: ErrIdempotencyKeyReused}
		}
		// The answer this very posting built in a batch that did commit is
		// its first answer, not a replay.
		replayed := p.built == nil || !bytes.Equal(p.built, prior.body)
		if prior.outcome != "ok" {
			return postOutcome{err: &Rejection{Code: Code(prior.outcome), Detail: prior.body, Replayed: replayed}}
		}
		wl.replayed = true
		return postOutcome{res: postResult{Outcome: Outcome{Body: prior.body, Replayed: replayed, Version: wl.version}}}
	}
	remember := func(outcome string, body []byte) {
		stored[k] = &storedKey{fingerprint: p.fingerprint, outcome: outcome, body: body}
		w.key(p, outcome, body)
		p.built = body
	}
	rejected := func(r *Rejection) postOutcome {
		remember(string(r.Code), r.Detail)
		return postOutcome{err: &Rejection{Code: r.Code, Detail: r.Detail}}
	}
	if p.rejection != nil {
		return rejected(p.rejection)
	}

	type move struct {
		s     *slot
		delta int64
	}
	var moves []move
	var shortfall map[string]int64
	for _, c := range p.changes {
		s := wl.slot(c.Type, c.ID)
		have, d := s.qty, c.Delta
		// Compare without adding, so a huge delta cannot overflow.
		if c.Clamp && c.Max != nil && d > 0 && d > *c.Max-have {
			d = max(*c.Max-have, 0)
		}
		if c.Floor && d < 0 && have+d < 0 {
			if shortfall == nil {
				shortfall = map[string]int64{}
			}
			shortfall[c.ID] = -(have + d)
			d = -have
		}
		if d < 0 && have+d < 0 {
			return rejected(reject(CodeInsufficientFunds, map[string]any{
				"asset_type": c.Type, "asset_id": c.ID, "required": -d, "balance": have}))
		}
		if d > 0 && have > math.MaxInt64-d {
			return rejected(reject(CodeLimitExceeded, map[string]any{
				"asset_type": c.Type, "asset_id": c.ID, "held": have, "reason": "balance would overflow"}))
		}
		// A clamped change was cut to fit above; if the player already holds
		// more than max (a limit lowered since), it grants nothing rather
		// than refusing a paid purchase.
		if !c.Clamp && c.Max != nil && have+d > *c.Max {
			code := c.Exceed
			if code == "" {
				code = CodeLimitExceeded
			}
			return rejected(reject(code, map[string]any{
				"asset_type": c.Type, "asset_id": c.ID, "held": have, "max": *c.Max}))
		}
		if d != 0 {
			moves = append(moves, move{s, d})
		}
	}

	// The key's budgets, last: a posting refused for its own sake is
	// stored as such and spends nothing; one refused for its budget is not
	// stored, so its retry succeeds once the window has room.
	for _, u := range p.budget {
		b := budgets[u.budgetKey]
		if b == nil {
			return postOutcome{err: fmt.Errorf("entitlements: budget row of key %d for %s not locked", u.keyID, u.currency)}
		}
		if u.amount > u.limit-b.used {
			return postOutcome{err: &LimitError{Code: CodeBudgetExceeded, AssetType: assetCurrency, AssetID: u.currency,
				Limit: u.limit, Requested: u.amount, Used: b.used, ResetsAt: window.Add(time.Hour)}}
		}
	}
	for _, u := range p.budget {
		b := budgets[u.budgetKey]
		b.used += u.amount
		b.net += u.amount
	}

	var entitlements []Entitlement
	for _, m := range moves {
		m.s.qty += m.delta
		m.s.net += m.delta
		m.s.row = true
		if m.s.typ == assetItem && (m.delta > 0 || p.reportTaken) {
			entitlements = append(entitlements, Entitlement{ItemID: m.s.id, Quantity: m.s.qty})
		}
	}
	sort.Slice(entitlements, func(i, j int) bool { return entitlements[i].ItemID < entitlements[j].ItemID })
	var debts []change
	for _, c := range p.changes {
		if c.Floor && c.DebtAccount != "" && shortfall[c.ID] > 0 {
			debts = append(debts, change{Type: c.Type, ID: c.ID, Delta: shortfall[c.ID], DebtAccount: c.DebtAccount})
		}
		if c.DebtRelief > 0 && c.DebtAccount != "" {
			debts = append(debts, change{Type: c.Type, ID: c.ID, Delta: -c.DebtRelief, DebtAccount: c.DebtAccount})
		}
	}

	var res postResult
	res.shortfall = shortfall
	if len(moves)+len(debts) > 0 {
		if len(*ids) == 0 {
			// Unreachable: apply reserves an id for every posting that may write.
			return postOutcome{err: errors.New("entitlements: no ledger transaction id reserved")}
		}
		tx := (*ids)[0]
		*ids = (*ids)[1:]
		metadata := p.metadata
		if shortfall != nil || len(debts) > 0 || hasFloor(p.changes) {
			metadata = cloneMap(p.metadata)
			if shortfall == nil {
				shortfall = map[string]int64{}
			}
			metadata["shortfall"] = shortfall
		}
		meta, err := json.Marshal(metadata)
		if err != nil {
			return postOutcome{err: fmt.Errorf("entitlements: encode metadata: %w", err)}
		}
		w.txIDs = append(w.txIDs, tx)
		w.txs[0], w.txs[1], w.txs[2], w.txs[3] = append(w.txs[0], p.playerID), append(w.txs[1], p.kind), append(w.txs[2], p.reference), append(w.txs[3], string(meta))
		for _, m := range moves {
			w.entry(tx, "player:"+p.playerID, m.s.typ, m.s.id, m.delta)
			w.entry(tx, p.account, m.s.typ, m.s.id, -m.delta)
		}
		for _, d := range debts {
			w.entry(tx, d.DebtAccount, d.Type, d.ID, -d.Delta)
			w.entry(tx, p.account, d.Type, d.ID, d.Delta)
		}
		wl.version, wl.changed = tx, true
		res.ledgerTx = &tx
	}

	balances := make(map[string]int64, len(p.currencies))
	for _, id := range p.currencies {
		balances[id] = 0
	}
	for _, s := range wl.slots {
		if s.typ == assetCurrency && s.row {
			balances[s.id] = s.qty
		}
	}
	if entitlements == nil {
		entitlements = []Entitlement{}
	}
	b, err := encodeBody(append(p.result, bodyMember{"balances", balances}, bodyMember{"entitlements", entitlements}))
	if err != nil {
		return postOutcome{err: fmt.Errorf("entitlements: encode response: %w", err)}
	}
	if res.ledgerTx != nil {
		changes := []map[string]any{}
		for _, m := range moves {
			changes = append(changes, map[string]any{"asset_type": m.s.typ, "asset_id": m.s.id, "delta": m.delta})
		}
		data, err := encodeBody([]bodyMember{
			{"ledger_transaction_id", *res.ledgerTx}, {"player_id", p.playerID}, {"kind", p.kind},
			{"reference", p.reference}, {"changes", changes}, {"result", json.RawMessage(b)},
		})
		if err != nil {
			return postOutcome{err: fmt.Errorf("entitlements: encode event: %w", err)}
		}
		w.events[0], w.events[1], w.events[2] = append(w.events[0], outbox.LedgerPrefix+p.kind), append(w.events[1], p.playerID), append(w.events[2], string(data))
		if err := w.queueCredits(p, *res.ledgerTx, l.creditRows(p, wl.code, w.activeCreators, l.now())); err != nil {
			return postOutcome{err: err}
		}
	}
	remember("ok", b)
	res.Outcome = Outcome{Body: b, Version: wl.version}
	return postOutcome{res: res}
}

func hasFloor(cs []change) bool {
	for _, c := range cs {
		if c.Floor {
			return true
		}
	}
	return false
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m)+1)
	for k, v := range m {
		out[k] = v
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func sortedSlots(m map[assetKey]*slot) []*slot {
	out := make([]*slot, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].typ != out[j].typ {
			return out[i].typ < out[j].typ
		}
		return out[i].id < out[j].id
	})
	return out
}

// batchRetryable reports a failure of a whole batch that says nothing about
// its postings: they are posted again, each on its own.
func batchRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return true
		}
	}
	return false
}

// postOwn applies postings in a transaction of their own on a pooled
// connection, retrying serialization failures and deadlocks a few times.
func (l *Ledger) postOwn(ctx context.Context, ps []*posting) ([]postOutcome, []holdingsPatch, error) {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		var outs []postOutcome
		var patches []holdingsPatch
		outs, patches, err = l.postOwnOnce(ctx, ps)
		if err == nil {
			return outs, patches, nil
		}
		if !batchRetryable(err) || ctx.Err() != nil {
			break
		}
	}
	return nil, nil, err
}

func (l *Ledger) postOwnOnce(ctx context.Context, ps []*posting) ([]postOutcome, []holdingsPatch, error) {
	conn, err := l.db.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	defer conn.Release()
	outs, patches, err := l.apply(ctx, conn.Conn(), ps, true)
	if err != nil && conn.Conn().PgConn().TxStatus() != 'I' && !conn.Conn().IsClosed() {
		// End the failed transaction so the connection goes back clean; if
		// even that fails, Release sees the open transaction and drops it.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		_, _ = conn.Exec(rctx, `ROLLBACK`)
		cancel()
	}
	return outs, patches, err
}

// postErr turns a whole-batch failure of one posting into its error.
func postErr(p *posting, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available
		return ErrIdempotencyKeyInUse
	}
	return fmt.Errorf("entitlements: post %s for %q: %w", p.kind, p.playerID, err)
}

// post posts p through group commit when it is on, else on its own, and
// returns its outcome.
func (l *Ledger) post(ctx context.Context, p *posting) (Outcome, error) {
	var res postResult
	var err error
	if l.group != nil {
		res, err = l.group.submit(ctx, p)
	} else {
		res, err = l.postAlone(ctx, p)
	}
	if err != nil {
		return Outcome{}, err
	}
	return res.Outcome, nil
}

// postAlone posts p in its own transaction and updates the cache after commit.
func (l *Ledger) postAlone(ctx context.Context, p *posting) (postResult, error) {
	outs, patches, err := l.postOwn(ctx, []*posting{p})
	if err != nil {
		return postResult{}, postErr(p, err)
	}
	l.afterPatches(ctx, patches)
	return outs[0].res, outs[0].err
}

// postIn posts p inside the caller's transaction tx. Nothing is committed:
// the caller hands the patch to afterPatches once it commits.
func (l *Ledger) postIn(ctx context.Context, tx pgx.Tx, p *posting) (postResult, []holdingsPatch, error) {
	outs, patches, err := l.apply(ctx, tx, []*posting{p}, false)
	if err != nil {
		return postResult{}, nil, postErr(p, err)
	}
	return outs[0].res, patches, outs[0].err
}

// afterPatches hands committed changes to the cache, in one pipeline.
func (l *Ledger) afterPatches(ctx context.Context, patches []holdingsPatch) {
	if l.cache != nil && len(patches) > 0 {
		l.cache.patched(ctx, patches)
	}
}

// bodyMember is one member of a response body.
type bodyMember struct {
	key   string
	value any
}

// encodeBody writes members as one compact JSON object in their order
// (encoding/json would sort a map's keys): the body is built once, stored
// with the idempotency key and replayed byte for byte.
func encodeBody(members []bodyMember) ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range members {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(m.key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
