package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// Problem kinds verification reports. Any of them fails the run.
const (
	// ProblemLost: the server answered 201 for a purchase or grant that is
	// not in the player's ledger.
	ProblemLost = "lost"
	// ProblemDuplicated: one observed purchase_id, grant_id or idempotency
	// key has more than one ledger transaction (or the server answered one
	// key with two different ids).
	ProblemDuplicated = "duplicated"
	// ProblemUnexpected: the ledger holds a purchase, grant or other
	// transaction the tool never saw succeed and no unanswered request
	// explains.
	ProblemUnexpected = "unexpected"
	// ProblemMismatch: a ledger transaction for an observed purchase or
	// grant moves other assets or amounts than the tool asked for.
	ProblemMismatch = "mismatch"
	// ProblemNegativeBalance: a player's holding goes below zero in the
	// ledger at any point, or a read reports a negative balance.
	ProblemNegativeBalance = "negative_balance"
	// ProblemUnbalanced: a ledger transaction's entries do not sum to zero
	// per asset, breaking double entry.
	ProblemUnbalanced = "unbalanced"
	// ProblemWalletMismatch: GET /v1/wallet disagrees with the sum of the
	// player's currency entries in the ledger (a stale or wrong cache, or
	// balances out of step with the ledger).
	ProblemWalletMismatch = "wallet_mismatch"
	// ProblemEntitlementsMismatch: GET /v1/entitlements disagrees with the
	// sum of the player's item entries in the ledger.
	ProblemEntitlementsMismatch = "entitlements_mismatch"
	// ProblemAudit: a check of GET /admin/v1/audit failed.
	ProblemAudit = "audit"
	// ProblemUnverifiable: the tool could not read what it needed to check
	// a player; correctness cannot be asserted.
	ProblemUnverifiable = "unverifiable"
	// ProblemCreatorEarnings: a creator's earnings differ, by as little as
	// one micro-unit, from the exact sum of the shares of the purchases,
	// spends and tips the tool saw succeed; or a tip's answer credited
	// other than the tip less the fee.
	ProblemCreatorEarnings = "creator_earnings"
)

// Problem is one inconsistency found by verification.
type Problem struct {
	Kind     string `json:"kind"`
	PlayerID string `json:"player_id,omitempty"`
	Detail   string `json:"detail"`
}

func (p Problem) String() string {
	if p.PlayerID == "" {
		return fmt.Sprintf("%s: %s", p.Kind, p.Detail)
	}
	return fmt.Sprintf("%s: player %s: %s", p.Kind, p.PlayerID, p.Detail)
}

// Verification is the outcome of the verification phase.
type Verification struct {
	OK                bool `json:"ok"`
	Players           int  `json:"players"`
	PurchasesObserved int  `json:"purchases_observed"`
	GrantsObserved    int  `json:"grants_observed"`
	// PostingsObserved counts server postings (awards, spends,
	// consumptions) answered 201.
	PostingsObserved   int `json:"postings_observed"`
	TipsObserved       int `json:"tips_observed,omitempty"`
	LedgerTransactions int `json:"ledger_transactions"`
	// Unconfirmed counts ledger transactions explained only by a request
	// whose answer never arrived (timeouts): not a failure, but listed.
	Unconfirmed int    `json:"unconfirmed"`
	Audit       *Audit `json:"audit,omitempty"`
	// Creators holds each of the run's creators' earnings against the sum
	// of their shares, checked with CreatorProgram.
	Creators       []CreatorCheck  `json:"creators,omitempty"`
	CreatorProgram *CreatorProgram `json:"creator_program,omitempty"`
	Problems       []Problem       `json:"problems,omitempty"`
	Notes          []string        `json:"notes,omitempty"`
	Counts         ProblemCount    `json:"problem_counts,omitempty"`
}

// ProblemCount counts problems by kind.
type ProblemCount map[string]int

// maxLedgerPages bounds how far verification follows one player's ledger;
// at 100 transactions a page that is a million transactions.
const maxLedgerPages = 10_000

// Verify reads back every player's ledger, wallet and entitlements and the
// admin audit, and holds them against what the tool observed. It returns
// an error only when ctx is cancelled; everything the server does wrong,
// including failing to answer, is a Problem.
func Verify(ctx context.Context, c *Client, fx *Fixture, obs *Observed) (*Verification, error) {
	v := &Verification{Players: len(fx.Players), Counts: ProblemCount{}}
	v.PurchasesObserved, v.GrantsObserved, _ = obs.Counts()
	v.PostingsObserved = obs.PostingCount()
	v.TipsObserved = obs.TipCount()
	tally := newCreditTally()
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		next   atomic.Int64
		ledger atomic.Int64
	)
	for range min(8, len(fx.Players)) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(fx.Players)) || ctx.Err() != nil {
					return
				}
				p := fx.Players[i]
				seen := obs.Player(p.ID)
				probs, n, unconfirmed, confirmed := verifyPlayer(ctx, c, p, seen, fx.Baseline[p.ID])
				if len(fx.Creators) > 0 {
					tally.addPlayer(fx, p, seen, confirmed)
				}
				ledger.Add(int64(n))
				mu.Lock()
				v.Problems = append(v.Problems, probs...)
				v.Unconfirmed += unconfirmed
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	v.LedgerTransactions = int(ledger.Load())
	if len(fx.Creators) > 0 {
		prog := fx.Program
		v.CreatorProgram = &prog
		var probs []Problem
		v.Creators, probs = verifyCreators(ctx, c, fx, tally)
		v.Problems = append(v.Problems, probs...)
	}

	audit, err := c.FetchAudit(ctx)
	switch {
	case err != nil:
		v.Problems = append(v.Problems, Problem{Kind: ProblemUnverifiable, Detail: "admin audit: " + err.Error()})
	case audit == nil:
		v.Notes = append(v.Notes, "the server has no GET /admin/v1/audit route; audit skipped")
	default:
		v.Audit = audit
		v.Problems = append(v.Problems, AuditProblems(audit)...)
	}
	if v.Unconfirmed > 0 {
		v.Notes = append(v.Notes, fmt.Sprintf("%d ledger transactions match requests that never got an answer (timeouts, 5xx): committed, but unconfirmed to the client", v.Unconfirmed))
	}
	sort.SliceStable(v.Problems, func(i, j int) bool {
		a, b := v.Problems[i], v.Problems[j]
		if a.Kind != b.Kind {
			return a.Kind < b.Kind
		}
		return a.PlayerID < b.PlayerID
	})
	for _, p := range v.Problems {
		v.Counts[p.Kind]++
	}
	v.OK = len(v.Problems) == 0
	return v, nil
}

// verifyPlayer checks one player (CheckPlayer) and also returns the
// unanswered attempts the ledger shows committed, which credit creators as
// acknowledged ones do.
func verifyPlayer(ctx context.Context, c *Client, p *Player, seen PlayerRecord, baseline int64) (probs []Problem, txns, unconfirmed int, confirmed []Attempt) {
	unverifiable := func(err error) []Problem {
		return []Problem{{Kind: ProblemUnverifiable, PlayerID: p.ID, Detail: err.Error()}}
	}
	ledger, err := c.Ledger(ctx, p.ID, maxLedgerPages)
	if err != nil {
		return unverifiable(err), len(ledger), 0, nil
	}
	w, err := c.FetchWallet(ctx, p.Token)
	if err != nil {
		return unverifiable(err), len(ledger), 0, nil
	}
	e, err := c.FetchEntitlements(ctx, p.Token)
	if err != nil {
		return unverifiable(err), len(ledger), 0, nil
	}
	items := map[string]int64{}
	for _, ent := range e.Entitlements {
		items[ent.ItemID] += ent.Quantity
	}
	probs, confirmed = checkPlayer(p.ID, seen, ledger, baseline, w.Balances, items)
	return probs, len(ledger), len(confirmed), confirmed
}

// CheckPlayer holds one player's ledger against what the tool observed and
// against the wallet and entitlements the server reports. It returns the
// problems found and how many ledger transactions were explained only by
// unanswered requests. Transactions with ids up to baseline predate the run
// (players from a --tokens file have history): they count towards balances
// but need no explanation. It is a pure function so each rule can be tested
// without a server.
func CheckPlayer(playerID string, seen PlayerRecord, ledger []LedgerTransaction, baseline int64, wallet, items map[string]int64) (probs []Problem, unconfirmed int) {
	probs, confirmed := checkPlayer(playerID, seen, ledger, baseline, wallet, items)
	return probs, len(confirmed)
}

// checkPlayer is CheckPlayer returning the unanswered attempts that explain
// ledger transactions, each once.
func checkPlayer(playerID string, seen PlayerRecord, ledger []LedgerTransaction, baseline int64, wallet, items map[string]int64) (probs []Problem, confirmed []Attempt) {
	add := func(kind, format string, args ...any) {
		probs = append(probs, Problem{Kind: kind, PlayerID: playerID, Detail: fmt.Sprintf(format, args...)})
	}
	account := "player:" + playerID

	// Oldest first, so running balances read in the order they happened.
	txs := slices.Clone(ledger)
	sort.SliceStable(txs, func(i, j int) bool { return txs[i].ID < txs[j].ID })

	byRef := map[string][]LedgerTransaction{}
	byKey := map[string][]int64{}
	for _, tx := range txs {
		byRef[tx.Reference] = append(byRef[tx.Reference], tx)
		if k := metaString(tx.Metadata, "idempotency_key"); k != "" {
			byKey[k] = append(byKey[k], tx.ID)
		}
	}

	// Every observed success must be in the ledger exactly once, moving
	// exactly what was asked for.
	matched := map[int64]bool{}
	for _, id := range slices.Sorted(maps.Keys(seen.Purchases)) {
		sp := seen.Purchases[id]
		found := byRef[id]
		switch {
		case len(found) == 0:
			add(ProblemLost, "purchase %s (%s×%d, key %s) was answered 201 but is not in the ledger", id, sp.ItemID, sp.Quantity, sp.Key)
		case len(found) > 1:
			add(ProblemDuplicated, "purchase %s (%s×%d) has %d ledger transactions: %s", id, sp.ItemID, sp.Quantity, len(found), txIDs(found))
		}
		for _, tx := range found {
			matched[tx.ID] = true
			if msg := purchaseMismatch(tx, account, sp); msg != "" {
				add(ProblemMismatch, "purchase %s: %s", id, msg)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(seen.Grants)) {
		sg := seen.Grants[id]
		found := byRef[id]
		switch {
		case len(found) == 0:
			add(ProblemLost, "grant %s (%s) was answered 201 but is not in the ledger", id, formatAssets(sg.Currencies))
		case len(found) > 1:
			add(ProblemDuplicated, "grant %s has %d ledger transactions: %s", id, len(found), txIDs(found))
		}
		for _, tx := range found {
			matched[tx.ID] = true
			if msg := grantMismatch(tx, account, sg); msg != "" {
				add(ProblemMismatch, "grant %s: %s", id, msg)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(seen.Postings)) {
		sp := seen.Postings[id]
		found := byRef[id]
		switch {
		case len(found) == 0:
			add(ProblemLost, "%s %s (key %s) was answered 201 but is not in the ledger", sp.Kind, id, sp.Key)
		case len(found) > 1:
			add(ProblemDuplicated, "%s %s has %d ledger transactions: %s", sp.Kind, id, len(found), txIDs(found))
		}
		for _, tx := range found {
			matched[tx.ID] = true
			if msg := postingMismatch(tx, account, sp); msg != "" {
				add(ProblemMismatch, "%s %s: %s", sp.Kind, id, msg)
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(seen.Tips)) {
		st := seen.Tips[id]
		found := byRef[id]
		switch {
		case len(found) == 0:
			add(ProblemLost, "tip %s (%d %s to %s, key %s) was answered 201 but is not in the ledger", id, st.Amount, st.Currency, st.CreatorID, st.Key)
		case len(found) > 1:
			add(ProblemDuplicated, "tip %s has %d ledger transactions: %s", id, len(found), txIDs(found))
		}
		for _, tx := range found {
			matched[tx.ID] = true
			if msg := tipMismatch(tx, account, st); msg != "" {
				add(ProblemMismatch, "tip %s: %s", id, msg)
			}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(seen.Keys)) {
		if ids := seen.Keys[key]; len(ids) > 1 {
			add(ProblemDuplicated, "idempotency key %s was answered with %d different ids: %s", key, len(ids), strings.Join(slices.Sorted(maps.Keys(ids)), ", "))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(byKey)) {
		if ids := byKey[key]; len(ids) > 1 {
			add(ProblemDuplicated, "idempotency key %s has %d ledger transactions: %v", key, len(ids), ids)
		}
	}

	// Whatever is left must be explained by a request whose answer was
	// lost; otherwise the server did something no client asked for.
	unknown := maps.Clone(seen.Unknown)
	receipts := seen.Receipts + seen.UnknownReceipts
	refunds := seen.Refunds
	for _, tx := range txs {
		if matched[tx.ID] || tx.ID <= baseline {
			continue
		}
		a, claimed := claimUnknown(unknown, tx)
		switch {
		case claimed:
			confirmed = append(confirmed, a)
		case tx.Kind == KindStoreRefund && refunds > 0:
			refunds-- // a refund the store chaos delivered; checked by transaction in ChaosVerify
		case !isToolKind(tx.Kind) && receipts > 0:
			receipts-- // a receipt redemption; the tool cannot see its id
		default:
			add(ProblemUnexpected, "ledger transaction %d (%s %s%s) matches no request the tool saw succeed",
				tx.ID, tx.Kind, tx.Reference, describeMeta(tx.Metadata))
		}
	}

	// Double entry, and no holding ever below zero.
	running := map[string]int64{}
	negative := map[string]bool{}
	for _, tx := range txs {
		sums := map[string]int64{}
		for _, en := range tx.Entries {
			asset := en.AssetType + ":" + en.AssetID
			sums[asset] += en.Amount
			if en.Account == account {
				running[asset] += en.Amount
				if running[asset] < 0 && !negative[asset] {
					negative[asset] = true
					add(ProblemNegativeBalance, "%s goes to %d at ledger transaction %d", asset, running[asset], tx.ID)
				}
			}
		}
		for _, asset := range slices.Sorted(maps.Keys(sums)) {
			if sums[asset] != 0 {
				add(ProblemUnbalanced, "ledger transaction %d: %s entries sum to %d, not 0", tx.ID, asset, sums[asset])
			}
		}
	}

	// What the read APIs report must be what the ledger adds up to.
	ledgerCur, ledgerItems := map[string]int64{}, map[string]int64{}
	for asset, n := range running {
		typ, id, _ := strings.Cut(asset, ":")
		if typ == "currency" {
			ledgerCur[id] = n
		} else {
			ledgerItems[id] = n
		}
	}
	for _, cur := range unionKeys(wallet, ledgerCur) {
		if wallet[cur] < 0 {
			add(ProblemNegativeBalance, "GET /v1/wallet reports %s %d", cur, wallet[cur])
		}
		if wallet[cur] != ledgerCur[cur] {
			add(ProblemWalletMismatch, "GET /v1/wallet says %s %d, the ledger sums to %d", cur, wallet[cur], ledgerCur[cur])
		}
	}
	for _, it := range unionKeys(items, ledgerItems) {
		if items[it] != ledgerItems[it] {
			add(ProblemEntitlementsMismatch, "GET /v1/entitlements says %s ×%d, the ledger sums to %d", it, items[it], ledgerItems[it])
		}
	}
	return probs, confirmed
}

// tipMismatch checks that a tip's transaction has kind tip and takes
// exactly the tip from the player, nothing else.
func tipMismatch(tx LedgerTransaction, account string, st SeenTip) string {
	if tx.Kind != KindTip {
		return fmt.Sprintf("ledger transaction %d has kind %q, want %q", tx.ID, tx.Kind, KindTip)
	}
	moved := playerMoves(tx, account)
	want := map[string]int64{"currency:" + st.Currency: -st.Amount}
	for _, asset := range unionKeys(moved, want) {
		if moved[asset] != want[asset] {
			return fmt.Sprintf("ledger transaction %d moves %d %s for the player, want %d", tx.ID, moved[asset], asset, want[asset])
		}
	}
	return ""
}

// purchaseMismatch checks that a purchase transaction charged the player
// price × quantity and, for a plain item, delivered quantity of it.
func purchaseMismatch(tx LedgerTransaction, account string, sp SeenPurchase) string {
	if tx.Kind != KindPurchase {
		return fmt.Sprintf("ledger transaction %d has kind %q, want %q", tx.ID, tx.Kind, KindPurchase)
	}
	if item := metaString(tx.Metadata, "item_id"); item != "" && item != sp.ItemID {
		return fmt.Sprintf("ledger transaction %d is for item %s, the tool bought %s", tx.ID, item, sp.ItemID)
	}
	moved := playerMoves(tx, account)
	want := -sp.Price.Amount * sp.Quantity
	if got := moved["currency:"+sp.Price.Currency]; got != want {
		return fmt.Sprintf("ledger transaction %d moves %d %s for the player, want %d (%d × %d)", tx.ID, got, sp.Price.Currency, want, sp.Quantity, sp.Price.Amount)
	}
	if got, ok := moved["item:"+sp.ItemID]; ok && got != sp.Quantity {
		// Only checked when the item itself moved: a bundle's id is not an item.
		return fmt.Sprintf("ledger transaction %d gives %d of %s, want %d", tx.ID, got, sp.ItemID, sp.Quantity)
	}
	return ""
}

// isToolKind says whether a ledger kind is one the tool itself posts and
// observes by id; such a transaction is never a receipt redemption.
func isToolKind(kind string) bool {
	switch kind {
	case KindPurchase, KindAdminGrant, KindStoreRefund, KindAward, KindSpend, KindConsume, KindTip:
		return true
	}
	return false
}

// postingMismatch checks that a posting's transaction has its kind and
// moves exactly what was asked for on the player's account, nothing else.
func postingMismatch(tx LedgerTransaction, account string, sp SeenPosting) string {
	if tx.Kind != sp.Kind {
		return fmt.Sprintf("ledger transaction %d has kind %q, want %q", tx.ID, tx.Kind, sp.Kind)
	}
	moved := playerMoves(tx, account)
	for _, asset := range unionKeys(moved, sp.Moves) {
		if moved[asset] != sp.Moves[asset] {
			return fmt.Sprintf("ledger transaction %d moves %d %s for the player, want %d", tx.ID, moved[asset], asset, sp.Moves[asset])
		}
	}
	return ""
}

func grantMismatch(tx LedgerTransaction, account string, sg SeenGrant) string {
	if tx.Kind != KindAdminGrant {
		return fmt.Sprintf("ledger transaction %d has kind %q, want %q", tx.ID, tx.Kind, KindAdminGrant)
	}
	moved := playerMoves(tx, account)
	for _, cur := range sortedKeys(sg.Currencies) {
		if got := moved["currency:"+cur]; got != sg.Currencies[cur] {
			return fmt.Sprintf("ledger transaction %d credits %d %s, want %d", tx.ID, got, cur, sg.Currencies[cur])
		}
	}
	for _, it := range sortedKeys(sg.Items) {
		if got := moved["item:"+it]; got != sg.Items[it] {
			return fmt.Sprintf("ledger transaction %d gives %d of %s, want %d", tx.ID, got, it, sg.Items[it])
		}
	}
	return ""
}

// playerMoves sums one transaction's entries on the player's account by
// "type:id".
func playerMoves(tx LedgerTransaction, account string) map[string]int64 {
	m := map[string]int64{}
	for _, en := range tx.Entries {
		if en.Account == account {
			m[en.AssetType+":"+en.AssetID] += en.Amount
		}
	}
	return m
}

// claimUnknown attributes an unmatched ledger transaction to an unanswered
// attempt: by idempotency key when the ledger records one, else by kind,
// item and quantity. A claimed attempt is used up.
func claimUnknown(unknown map[string]Attempt, tx LedgerTransaction) (Attempt, bool) {
	if k := metaString(tx.Metadata, "idempotency_key"); k != "" {
		if a, ok := unknown[k]; ok && a.Kind == tx.Kind {
			delete(unknown, k)
			return a, true
		}
		return Attempt{}, false
	}
	item, qty := metaString(tx.Metadata, "item_id"), metaInt(tx.Metadata, "quantity")
	for _, k := range sortedKeys(unknown) {
		a := unknown[k]
		if a.Kind != tx.Kind {
			continue
		}
		if a.Kind == KindPurchase && (item != "" && item != a.ItemID || qty != 0 && qty != a.Quantity) {
			continue
		}
		delete(unknown, k)
		return a, true
	}
	return Attempt{}, false
}

func metaString(raw json.RawMessage, key string) string {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	s, _ := m[key].(string)
	return s
}

func metaInt(raw json.RawMessage, key string) int64 {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return 0
	}
	f, _ := m[key].(float64)
	return int64(f)
}

func describeMeta(raw json.RawMessage) string {
	item, qty := metaString(raw, "item_id"), metaInt(raw, "quantity")
	if item == "" {
		return ""
	}
	return fmt.Sprintf(", %s×%d", item, qty)
}

func txIDs(txs []LedgerTransaction) string {
	var ids []string
	for _, t := range txs {
		ids = append(ids, fmt.Sprint(t.ID))
	}
	return strings.Join(ids, ", ")
}

func formatAssets(m map[string]int64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

func unionKeys(a, b map[string]int64) []string {
	set := map[string]bool{}
	for k := range a {
		set[k] = true
	}
	for k := range b {
		set[k] = true
	}
	return sortedKeys(set)
}

// AuditProblems turns failed audit checks into problems.
func AuditProblems(a *Audit) []Problem {
	var out []Problem
	for _, ch := range a.Checks {
		if !ch.OK {
			out = append(out, Problem{Kind: ProblemAudit, Detail: fmt.Sprintf("check %s failed: %s", ch.Name, strings.TrimSpace(string(ch.Detail)))})
		}
	}
	if !a.OK && len(out) == 0 {
		out = append(out, Problem{Kind: ProblemAudit, Detail: "the audit reports ok=false"})
	}
	return out
}

// WriteText prints the verification outcome.
func (v *Verification) WriteText(w io.Writer) {
	status := "OK"
	if !v.OK {
		status = fmt.Sprintf("%d PROBLEMS", len(v.Problems))
	}
	postings := ""
	if v.PostingsObserved > 0 {
		postings = fmt.Sprintf(", %d server postings", v.PostingsObserved)
	}
	if v.TipsObserved > 0 {
		postings += fmt.Sprintf(", %d tips", v.TipsObserved)
	}
	fmt.Fprintf(w, "verification: %d players, %d purchases and %d grants%s observed, %d ledger transactions: %s\n",
		v.Players, v.PurchasesObserved, v.GrantsObserved, postings, v.LedgerTransactions, status)
	writeCreatorsText(w, v)
	const show = 50
	for i, p := range v.Problems {
		if i == show {
			fmt.Fprintf(w, "  … and %d more (see --out)\n", len(v.Problems)-show)
			break
		}
		fmt.Fprintf(w, "  PROBLEM %s\n", p)
	}
	for _, n := range v.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}
