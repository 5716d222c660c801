package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"sync"
	"time"
)

// Store chaos: with the fake stores (COINOP_STORES=fake on the server,
// --fake-store-dir here), virtual players redeem App Store transactions
// minted on the fly, and mid-run the "store" refunds a share of the redeemed
// ones in waves, delivering its REFUND notifications the way a store under
// strain does: several times (duplicates), shuffled (out of order), and
// some abandoned after a millisecond (the store timed out waiting and
// delivers again later). Afterwards every redemption must have granted
// exactly once, every refund revoked exactly once, and the ledger must
// balance (the verification phase).
//
// With --store-api-addr the server's confirmations with Apple's App Store
// Server API go to a fake the tool runs (storeapi.go), which injects
// latency, 5xx answers and timeouts; redemptions answered 503
// store_unavailable are sent again with the same transaction. Not covered:
// Google Play's Developer API.

// ChaosOptions shape the store chaos.
type ChaosOptions struct {
	RefundShare    float64       `json:"refund_share"`       // share of redeemed transactions refunded
	Waves          int           `json:"refund_waves"`       // refund waves, evenly spread over the run
	DuplicateShare float64       `json:"duplicate_share"`    // share of notifications delivered two or three times
	AbandonShare   float64       `json:"abandon_share"`      // share of deliveries the store gives up on after 1 ms, then redelivers
	EarlyShare     float64       `json:"early_refund_share"` // share of purchases whose refund notification arrives before the redemption
	Wait           time.Duration `json:"refund_wait_ns"`     // how long to wait for refunds to take effect
	// The fake App Store Server API (storeapi.go): where it listens, and
	// the faults it injects into the server's confirmations.
	StoreAPIAddr  string        `json:"store_api_addr,omitempty"`
	StoreLatency  time.Duration `json:"store_latency_ns,omitempty"`  // added to every answer
	StoreErrors   float64       `json:"store_error_pct,omitempty"`   // percent of requests answered 5xx
	StoreTimeouts float64       `json:"store_timeout_pct,omitempty"` // percent held until the caller gives up
}

// Enabled reports whether any chaos was asked for.
func (o ChaosOptions) Enabled() bool {
	return o.RefundShare > 0 || o.DuplicateShare > 0 || o.AbandonShare > 0 || o.EarlyShare > 0 || o.StoreAPIAddr != ""
}

// Validate returns an error naming the bad setting.
func (o ChaosOptions) Validate() error {
	for name, v := range map[string]float64{"--refund-share": o.RefundShare, "--duplicate-share": o.DuplicateShare, "--abandon-share": o.AbandonShare, "--early-refund-share": o.EarlyShare} {
		if !(v >= 0 && v <= 1) {
			return fmt.Errorf("%s must be in [0, 1]", name)
		}
	}
	if o.Waves < 1 || o.Waves > 100 {
		return fmt.Errorf("--refund-waves must be in 1..100")
	}
	if o.Wait <= 0 {
		return fmt.Errorf("--refund-wait must be positive")
	}
	for name, v := range map[string]float64{"--store-errors": o.StoreErrors, "--store-timeouts": o.StoreTimeouts} {
		if !(v >= 0 && v <= 100) {
			return fmt.Errorf("%s must be a percentage in [0, 100]", name)
		}
	}
	if o.StoreErrors+o.StoreTimeouts > 100 {
		return fmt.Errorf("--store-errors and --store-timeouts add up to more than 100%%")
	}
	if o.StoreLatency < 0 {
		return fmt.Errorf("--store-latency must not be negative")
	}
	if o.StoreAPIAddr == "" && (o.StoreLatency > 0 || o.StoreErrors > 0 || o.StoreTimeouts > 0) {
		return fmt.Errorf("store API faults (--store-latency, --store-errors, --store-timeouts) need the fake store API: give --store-api-addr")
	}
	if o.StoreAPIAddr != "" {
		return validateStoreAPIAddr(o.StoreAPIAddr)
	}
	return nil
}

// storeState is what the run did with store transactions.
type storeState struct {
	signer   *AppleSigner
	products []string // apple product ids of the live catalog
	opt      ChaosOptions

	mu       sync.Mutex
	minted   int
	redeemed map[string]StoreTx // answered 201/200
	unknown  map[string]StoreTx // no answer: may or may not have been recorded
	refunded map[string]StoreTx // a refund notification was accepted (200)
	tried    map[string]bool    // chosen for a refund
	// Out of order: the refund arrived before the redemption. A server may
	// refuse the redemption (nothing happens) or, when its worker had not
	// applied the refund yet, grant and then revoke it.
	earlyRefused map[string]StoreTx
	earlyGranted map[string]StoreTx
	stats        ChaosSummary
	// api is the fake App Store Server API (--store-api-addr), or nil.
	api *storeAPI
}

func newStoreState(signer *AppleSigner, products []string, opt ChaosOptions) *storeState {
	return &storeState{signer: signer, products: products, opt: opt,
		redeemed: map[string]StoreTx{}, unknown: map[string]StoreTx{}, refunded: map[string]StoreTx{}, tried: map[string]bool{},
		earlyRefused: map[string]StoreTx{}, earlyGranted: map[string]StoreTx{}}
}

// ChaosSummary is the store chaos in the report.
type ChaosSummary struct {
	Minted     int `json:"minted"`
	Redeemed   int `json:"redeemed"`
	Unanswered int `json:"unanswered"`
	Refunds    int `json:"refunds"`    // transactions refunded (notification accepted)
	Deliveries int `json:"deliveries"` // notification POSTs, duplicates and redeliveries included
	Duplicates int `json:"duplicates"` // extra deliveries of a notification
	Abandoned  int `json:"abandoned"`  // deliveries given up after 1 ms
	Waves      int `json:"waves"`
	// Refunds that arrived before their redemption, and how the server
	// answered the redemption that followed.
	EarlyRefused int `json:"early_refused"`
	EarlyGranted int `json:"early_granted"`
	// SettledMS is how long refunds took to show in the ledger after the
	// load phase.
	SettledMS int64 `json:"settled_ms"`
	// StoreAPI counts the faults the fake App Store Server API injected
	// (nil without --store-api-addr); Retried the redemptions sent again,
	// with the same transaction, after 503 store_unavailable or a timeout.
	StoreAPI *StoreAPIFaults `json:"store_api,omitempty"`
	Retried  int             `json:"retried,omitempty"`
}

// chaosReceipt mints a transaction for p and redeems it.
func (r *runner) chaosReceipt(shard int, due time.Time, rng *rand.Rand, p *Player) {
	st := r.fx.Store
	tx := StoreTx{TransactionID: NewStoreTransactionID(), ProductID: st.products[rng.IntN(len(st.products))], PlayerID: p.ID, PurchasedAt: time.Now()}
	jws, err := st.signer.MintTransaction(tx)
	if err != nil {
		r.record(shard, EndpointReceipt, due, "mint_failed")
		return
	}
	st.mu.Lock()
	st.minted++
	st.mu.Unlock()
	if st.api != nil {
		st.api.add(tx)
	}
	if st.opt.EarlyShare > 0 && rng.Float64() < st.opt.EarlyShare {
		r.refundFirst(shard, due, p, tx, jws)
		return
	}
	body := map[string]string{"store": "apple", "signed_transaction": jws}
	resp, code, ok := r.redeem(p, body)
	if !ok {
		return
	}
	switch {
	case resp == nil || resp.Status >= 500:
		if code != "canceled" {
			r.obs.Receipt(p.ID, false)
			st.mu.Lock()
			st.unknown[tx.TransactionID] = tx
			st.mu.Unlock()
		}
		if resp != nil {
			code = codeOf(resp)
		}
	case resp.Status == http.StatusOK || resp.Status == http.StatusCreated:
		r.obs.Receipt(p.ID, true)
		st.mu.Lock()
		st.redeemed[tx.TransactionID] = tx
		st.mu.Unlock()
	default:
		code = codeOf(resp)
	}
	r.record(shard, EndpointReceipt, due, code)
}

// redeemAttempts bounds the tries of one redemption.
const redeemAttempts = 8

// redeem POSTs a redemption, and again with the same transaction (as a
// game client does) while the server answers 503 store_unavailable or the
// request times out: the server grants a store transaction at most once,
// however often it is sent. The last answer is returned.
func (r *runner) redeem(p *Player, body map[string]string) (*Response, string, bool) {
	var (
		resp *Response
		code string
		ok   bool
	)
	for i := range redeemAttempts {
		if i > 0 {
			r.fx.Store.mu.Lock()
			r.fx.Store.stats.Retried++
			r.fx.Store.mu.Unlock()
		}
		resp, code, ok = r.send(http.MethodPost, "/v1/receipts", p.Token, body, nil)
		if !ok || code == "canceled" {
			return resp, code, ok
		}
		retry := (resp == nil && code == "timeout") || (resp != nil && resp.Status == http.StatusServiceUnavailable && resp.Code == "store_unavailable")
		if !retry {
			break
		}
	}
	return resp, code, ok
}

// refundFirst delivers tx's REFUND notification before the player redeems
// it, as when the store's notification overtakes the game client. The
// redemption must be refused (invalid_receipt) or, if the server's worker
// had not applied the refund yet, be granted and later revoked.
func (r *runner) refundFirst(shard int, due time.Time, p *Player, tx StoreTx, jws string) {
	st := r.fx.Store
	now := time.Now()
	body, _, err := st.signer.MintRefund(tx, now)
	if err != nil {
		r.record(shard, EndpointReceiptAfterRefund, due, "mint_failed")
		return
	}
	if st.api != nil {
		st.api.revoke(tx.TransactionID, now)
	}
	r.deliver(shard, delivery{tx: tx, body: body})
	st.mu.Lock()
	_, accepted := st.refunded[tx.TransactionID]
	st.mu.Unlock()
	if !accepted {
		return // the delivery failed and is recorded as such; nothing to redeem against
	}
	resp, code, ok := r.redeem(p, map[string]string{"store": "apple", "signed_transaction": jws})
	if !ok {
		return
	}
	st.mu.Lock()
	switch {
	case resp == nil || resp.Status >= 500:
		if code != "canceled" {
			st.unknown[tx.TransactionID] = tx
		}
		if resp != nil {
			code = codeOf(resp)
		}
	case resp.Status == http.StatusOK || resp.Status == http.StatusCreated:
		st.earlyGranted[tx.TransactionID] = tx
		r.obs.Receipt(p.ID, true)
	case resp.Code == "invalid_receipt":
		st.earlyRefused[tx.TransactionID] = tx
	default:
		code = codeOf(resp)
	}
	st.mu.Unlock()
	r.record(shard, EndpointReceiptAfterRefund, due, code)
}

// refundWaves sends the refund waves at evenly spaced points of the run,
// until the run ends (done closed).
func (r *runner) refundWaves(start time.Time, length time.Duration, done <-chan struct{}) {
	o := r.fx.Store.opt
	for w := 1; w <= o.Waves; w++ {
		at := start.Add(length * time.Duration(w) / time.Duration(o.Waves+1))
		t := time.NewTimer(time.Until(at))
		select {
		case <-t.C:
		case <-done:
			t.Stop()
			return
		case <-r.ctx.Done():
			t.Stop()
			return
		}
		r.refundWave(w)
	}
}

type delivery struct {
	tx      StoreTx
	body    []byte
	abandon bool // give up after 1 ms
}

// refundWave refunds RefundShare of the transactions redeemed so far and
// not yet chosen, delivering each REFUND notification once or more, in a
// shuffled order, some deliveries abandoned and redelivered.
func (r *runner) refundWave(wave int) {
	st := r.fx.Store
	o := st.opt
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 1<<40+uint64(wave)))
	st.mu.Lock()
	var ids []string
	for id := range st.redeemed {
		if !st.tried[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	var chosen []StoreTx
	for _, id := range ids {
		if rng.Float64() < o.RefundShare {
			chosen = append(chosen, st.redeemed[id])
			st.tried[id] = true
		}
	}
	st.stats.Waves++
	st.mu.Unlock()

	var ds []delivery
	for _, tx := range chosen {
		now := time.Now()
		body, _, err := st.signer.MintRefund(tx, now)
		if err != nil {
			continue
		}
		if st.api != nil {
			st.api.revoke(tx.TransactionID, now)
		}
		n := 1
		if rng.Float64() < o.DuplicateShare {
			n += 1 + rng.IntN(2)
		}
		for range n {
			if rng.Float64() < o.AbandonShare {
				ds = append(ds, delivery{tx: tx, body: body, abandon: true})
			}
			ds = append(ds, delivery{tx: tx, body: body})
		}
		st.mu.Lock()
		st.stats.Duplicates += n - 1
		st.mu.Unlock()
	}
	rng.Shuffle(len(ds), func(i, j int) { ds[i], ds[j] = ds[j], ds[i] })

	var wg sync.WaitGroup
	next := make(chan delivery)
	for w := range 4 {
		wg.Go(func() {
			for d := range next {
				r.deliver(1000+w, d)
			}
		})
	}
	for _, d := range ds {
		next <- d
	}
	close(next)
	wg.Wait()
}

// deliver POSTs one notification as the App Store does (no credentials:
// the signature is the authentication).
func (r *runner) deliver(shard int, d delivery) {
	st := r.fx.Store
	if !r.budget.take() {
		return
	}
	ctx := r.ctx
	if d.abandon {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Millisecond)
		defer cancel()
	}
	start := time.Now()
	resp, err := r.c.Do(ctx, http.MethodPost, "/v1/stores/apple/notifications", "", json.RawMessage(d.body), nil)
	st.mu.Lock()
	st.stats.Deliveries++
	if d.abandon {
		st.stats.Abandoned++
	}
	st.mu.Unlock()
	if d.abandon {
		r.record(shard, EndpointNotificationAbandoned, start, "")
		return
	}
	code := ""
	switch {
	case err != nil && r.ctx.Err() != nil:
		return
	case err != nil:
		code = TransportCode(err)
	case resp.Status != http.StatusOK:
		code = codeOf(resp)
	default:
		st.mu.Lock()
		_, seen := st.refunded[d.tx.TransactionID]
		st.refunded[d.tx.TransactionID] = d.tx
		st.mu.Unlock()
		if !seen {
			r.obs.Refund(d.tx.PlayerID)
		}
	}
	r.record(shard, EndpointNotification, start, code)
}

// ChaosVerify waits until every accepted refund shows in its player's
// ledger (or opt.Wait passes), then checks each store transaction had
// exactly one effect: one store_purchase per redeemed transaction (at most
// one for an unanswered one), one store_refund per refunded transaction
// and none for the rest. It returns the problems found and how long the
// refunds took to settle; an error only when ctx ends.
func ChaosVerify(ctx context.Context, c *Client, st *storeState, progress io.Writer) ([]Problem, time.Duration, error) {
	st.mu.Lock()
	players := map[string]bool{}
	for _, m := range []map[string]StoreTx{st.redeemed, st.unknown, st.refunded} {
		for _, tx := range m {
			players[tx.PlayerID] = true
		}
	}
	refunded := maps2(st.refunded)
	redeemed := maps2(st.redeemed)
	unknown := maps2(st.unknown)
	early := maps2(st.earlyRefused)
	for id, tx := range st.earlyGranted {
		redeemed[id] = tx // granted, then (once the worker runs) revoked
	}
	for _, m := range []map[string]StoreTx{st.earlyRefused, st.earlyGranted} {
		for _, tx := range m {
			players[tx.PlayerID] = true
		}
	}
	st.mu.Unlock()

	count := func() (purchases, refunds map[string]int, extra []Problem, err error) {
		purchases, refunds = map[string]int{}, map[string]int{}
		for _, pid := range sortedKeys(players) {
			txs, err := c.Ledger(ctx, pid, maxLedgerPages)
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil, nil, ctx.Err()
				}
				extra = append(extra, Problem{Kind: ProblemUnverifiable, PlayerID: pid, Detail: "reading the ledger: " + err.Error()})
				continue
			}
			for _, tx := range txs {
				var m struct {
					TransactionID string `json:"transaction_id"`
				}
				if tx.Kind != KindStorePurchase && tx.Kind != KindStoreRefund {
					continue
				}
				if json.Unmarshal(tx.Metadata, &m) != nil || m.TransactionID == "" {
					extra = append(extra, Problem{Kind: ProblemUnexpected, PlayerID: pid, Detail: fmt.Sprintf("ledger transaction %d (%s) names no store transaction", tx.ID, tx.Kind)})
					continue
				}
				if tx.Kind == KindStorePurchase {
					purchases[m.TransactionID]++
				} else {
					refunds[m.TransactionID]++
				}
			}
		}
		return purchases, refunds, extra, nil
	}

	// Refunds are applied by the server's store worker after the 200: wait
	// for all of them to show, polling with a growing pause.
	start := time.Now()
	deadline := start.Add(st.opt.Wait)
	pause := 50 * time.Millisecond
	lastMissing := -1
	var (
		purchases, refunds map[string]int
		extra              []Problem
		err                error
	)
	for {
		if purchases, refunds, extra, err = count(); err != nil {
			return nil, 0, err
		}
		missing := 0
		for id := range refunded {
			if _, refused := early[id]; refunds[id] == 0 && !refused {
				missing++
			}
		}
		if missing == 0 || time.Now().After(deadline) {
			break
		}
		if progress != nil && missing != lastMissing {
			fmt.Fprintf(progress, "chaos: waiting for %d of %d refunds to reach the ledger\n", missing, len(refunded))
		}
		lastMissing = missing
		select {
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, time.Second)
	}
	settled := time.Since(start)

	probs := extra
	add := func(kind, pid, format string, args ...any) {
		probs = append(probs, Problem{Kind: kind, PlayerID: pid, Detail: fmt.Sprintf(format, args...)})
	}
	for _, id := range sortedKeys(redeemed) {
		tx := redeemed[id]
		switch n := purchases[id]; {
		case n == 0:
			add(ProblemLost, tx.PlayerID, "store transaction %s was redeemed (2xx) but granted nothing", id)
		case n > 1:
			add(ProblemDuplicated, tx.PlayerID, "store transaction %s was granted %d times", id, n)
		}
	}
	for _, id := range sortedKeys(unknown) {
		if n := purchases[id]; n > 1 {
			add(ProblemDuplicated, unknown[id].PlayerID, "store transaction %s (redemption unanswered) was granted %d times", id, n)
		}
	}
	for _, id := range sortedKeys(early) {
		tx := early[id]
		if purchases[id] > 0 || refunds[id] > 0 {
			add(ProblemUnexpected, tx.PlayerID, "store transaction %s was refunded before its redemption, which was refused, yet the ledger has %d grants and %d refunds of it", id, purchases[id], refunds[id])
		}
	}
	for _, id := range sortedKeys(refunded) {
		tx := refunded[id]
		if _, refused := early[id]; refused {
			continue
		}
		switch n := refunds[id]; {
		case n == 0:
			add(ProblemLost, tx.PlayerID, "refund of store transaction %s was accepted but never applied (waited %s)", id, st.opt.Wait)
		case n > 1:
			add(ProblemDuplicated, tx.PlayerID, "refund of store transaction %s was applied %d times", id, n)
		}
	}
	for _, id := range sortedKeys(refunds) {
		if _, ok := refunded[id]; !ok {
			add(ProblemUnexpected, "", "store transaction %s was refunded %d times, but no refund of it was accepted", id, refunds[id])
		}
	}
	for _, id := range sortedKeys(purchases) {
		_, r1 := redeemed[id]
		_, r2 := unknown[id]
		_, r3 := early[id]
		if !r1 && !r2 && !r3 {
			add(ProblemUnexpected, "", "store transaction %s was granted, but the tool never redeemed it", id)
		}
	}
	slices.SortStableFunc(probs, func(a, b Problem) int { return cmpString(a.Kind, b.Kind) })
	return probs, settled, nil
}

func maps2(m map[string]StoreTx) map[string]StoreTx {
	out := make(map[string]StoreTx, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// summary returns the chaos figures.
func (st *storeState) summary() ChaosSummary {
	st.mu.Lock()
	defer st.mu.Unlock()
	s := st.stats
	s.Minted, s.Redeemed, s.Unanswered, s.Refunds = st.minted, len(st.redeemed), len(st.unknown), len(st.refunded)
	s.EarlyRefused, s.EarlyGranted = len(st.earlyRefused), len(st.earlyGranted)
	if st.api != nil {
		f := st.api.faults()
		s.StoreAPI = &f
	}
	return s
}

// WriteText prints the chaos figures.
func (s ChaosSummary) WriteText(w io.Writer) {
	fmt.Fprintf(w, "store chaos: %d transactions minted, %d redeemed, %d unanswered; %d refunded in %d waves: %d deliveries (%d duplicates, %d abandoned and redelivered); refunds settled in %s\n",
		s.Minted, s.Redeemed, s.Unanswered, s.Refunds, s.Waves, s.Deliveries, s.Duplicates, s.Abandoned,
		(time.Duration(s.SettledMS) * time.Millisecond).Round(time.Millisecond))
	if s.EarlyRefused+s.EarlyGranted > 0 {
		fmt.Fprintf(w, "  refunds before redemption: %d redemptions refused, %d granted before the refund applied (then revoked)\n", s.EarlyRefused, s.EarlyGranted)
	}
	if f := s.StoreAPI; f != nil {
		fmt.Fprintf(w, "  store API faults: %d injected in %d confirmations (%d delayed, %d answered 5xx, %d timed out); %d redemption retries\n",
			f.Injected(), f.Calls, f.Delayed, f.Errors, f.Timeouts, s.Retried)
	}
}
