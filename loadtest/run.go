package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"time"
)

// LateThreshold is how far behind its due time a worker may start a request
// before it counts as late. Timer wake-ups on a busy machine are often a
// millisecond off; more than this means the worker pool (or this machine)
// is not keeping up with the schedule.
const LateThreshold = 10 * time.Millisecond

// Result is what the load phase measured.
type Result struct {
	Model    string // "open" or "closed"
	Start    time.Time
	Elapsed  time.Duration // load phase, first request due to last response
	Window   time.Duration // the time rates are computed over
	Stats    Stats
	Timeline []TimelinePoint
	// Open model only: requests that came due, and of those the ones sent
	// more than LateThreshold after their due time and the ones dropped
	// because every worker was busy and the queue full. Latency of late
	// requests counts from their due time; dropped ones were never sent.
	Scheduled int64
	Late      int64
	Dropped   int64
	Sent      int64 // HTTP requests sent, retries included
	Workers   int
	// Substituted counts purchases replaced by wallet reads because the
	// player had reached max_per_player on every offer.
	Substituted int64
	// Server is the server's side from /metrics (nil when not scraped);
	// MetricsError says why scraping failed.
	Server       *ServerFigures
	MetricsError error
	// Bought counts purchases answered 201, by item or bundle.
	Bought map[string]int64
	// Why the run stopped before the schedule ended, if it did.
	BudgetExhausted bool
	Interrupted     bool
}

// Run drives the load phase and returns what it measured. It prints a
// progress line every second to progress (nil for none). It stops by itself
// at the end of the schedule or duration, or when MaxRequests requests have
// been sent, whichever comes first; cancelling ctx stops it early with
// Interrupted set. It returns an error only for a configuration it cannot
// run.
func Run(ctx context.Context, cfg Config, fx *Fixture, c *Client, obs *Observed, progress io.Writer) (*Result, error) {
	if len(fx.Players) == 0 {
		return nil, fmt.Errorf("no players")
	}
	r := &runner{cfg: cfg, fx: fx, c: c, obs: obs, ctx: ctx, budget: budget{max: cfg.MaxRequests}}
	noReceipts := merge(fx.Unavailable, map[string]string{ActionReceipt: "pool used up"})
	for _, k := range fx.Kinds {
		mix := k.Archetype.mix(cfg.Scenario)
		canBuy := len(k.offerIdx) > 0
		r.pickers = append(r.pickers, [2]*picker{newPicker(mix, fx.Unavailable, canBuy), newPicker(mix, noReceipts, canBuy)})
	}
	usable := false
	for _, p := range r.pickers {
		usable = usable || p[0].total > 0
	}
	if !usable {
		return nil, fmt.Errorf("no scenario can run: every action with weight is unavailable")
	}
	for _, o := range fx.Offers {
		if !o.Bundle {
			r.checkItems = append(r.checkItems, o.ItemID)
		}
	}

	r.awardItems = awardItems(fx)

	res := &Result{Model: "closed", Workers: cfg.PoolSize()}
	if cfg.Open() {
		res.Model = "open"
		sched, err := cfg.Scheduler()
		if err != nil {
			return nil, err
		}
		r.sched = sched
	}
	r.rec = NewRecorder(min(res.Workers, 32))

	start := time.Now()
	res.Start = start
	stopScrape := func() []Sample { return nil }
	scrapeErr := func() error { return nil }
	if cfg.MetricsInterval > 0 {
		stopScrape, scrapeErr = startScraper(ctx, c, start, cfg.MetricsInterval)
	}
	stopProgress := r.progress(start, progress, r.sched)
	wavesDone := make(chan struct{})
	var waves sync.WaitGroup
	if fx.Store != nil && fx.Store.opt.RefundShare > 0 {
		waves.Go(func() { r.refundWaves(start, cfg.RunLength(), wavesDone) })
	}
	var window time.Duration
	if cfg.Open() {
		window = r.open(start, res.Workers, res)
	} else {
		window = r.closed(start, res)
	}
	close(wavesDone)
	waves.Wait()
	res.Elapsed = time.Since(start)
	stopProgress()
	res.Server = Summarize(stopScrape())
	res.MetricsError = scrapeErr()
	res.Bought = r.bought.snapshot()

	res.Window = window
	res.Stats = r.rec.Totals()
	res.Timeline = r.rec.Timeline()
	res.Sent = min(r.budget.used.Load(), r.budget.max)
	res.BudgetExhausted = r.budget.stopped.Load()
	res.Interrupted = ctx.Err() != nil
	res.Late, res.Dropped = r.late.Load(), r.dropped.Load()
	res.Substituted = r.substituted.Load()
	return res, nil
}

type runner struct {
	cfg Config
	fx  *Fixture
	c   *Client
	obs *Observed
	rec *Recorder
	ctx context.Context

	// pickers holds each player kind's action picker, and the same without
	// receipts, used once the receipt pool is used up (receiptsGone).
	pickers       [][2]*picker
	receiptsGone  atomic.Bool
	checkItems    []string
	awardItems    []string   // items awards may give
	sched         *Scheduler // open model only
	budget        budget
	late, dropped atomic.Int64
	substituted   atomic.Int64 // purchases replaced by reads at max_per_player
	bought        counter
}

// counter counts by name from many goroutines.
type counter struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counter) add(name string, n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[name] += n
}

func (c *counter) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int64{}
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// budget enforces --max-requests across every goroutine: a request is sent
// only after taking a slot.
type budget struct {
	max     int64
	used    atomic.Int64
	stopped atomic.Bool // something was not sent for lack of budget
}

func (b *budget) take() bool {
	if b.used.Add(1) <= b.max {
		return true
	}
	b.stopped.Store(true)
	return false
}

// exhausted reports whether the budget is spent, marking the run as
// stopped by it: callers ask only when they have more to send.
func (b *budget) exhausted() bool {
	if b.used.Load() >= b.max {
		b.stopped.Store(true)
		return true
	}
	return false
}

type job struct {
	seq     int64
	due     time.Time
	player  *Player
	session bool // the player's first action of a session
	rng     *rand.Rand
}

// open runs the arrival-rate model: a dispatcher queues each request at
// its due time for a pool of workers. A request a worker picks up more than
// LateThreshold after its due time is late; one that finds the queue full
// (every worker busy and as many requests already waiting) is dropped and
// never sent. Latency counts from the due time either way, so a slow server
// cannot make the tool send less and look faster. It returns the window
// rates are computed over.
func (r *runner) open(start time.Time, workers int, res *Result) time.Duration {
	sched := r.sched
	limit := min(sched.Total(), r.cfg.MaxRequests)
	if r.cfg.Split.N > 1 {
		limit = sched.Total() // the budget bounds this part's requests
	}
	queue := make(chan job, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := range queue {
				if time.Since(j.due) > LateThreshold {
					r.late.Add(1)
				}
				r.openJob(w, j)
			}
		})
	}

	end := start.Add(sched.Duration())
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var reached int64 // requests of the schedule passed, this part's or not
dispatch:
	for i := int64(0); i < limit; i++ {
		if r.budget.exhausted() {
			break
		}
		if !r.cfg.Split.mine(i) {
			reached = i + 1
			continue // another process's request
		}
		off, ok := sched.At(i)
		if !ok {
			break
		}
		due := start.Add(off)
		if d := time.Until(due); d > 0 {
			timer.Reset(d)
			select {
			case <-timer.C:
			case <-r.ctx.Done():
				timer.Stop()
				break dispatch
			}
		} else if r.ctx.Err() != nil {
			break
		}
		reached = i + 1
		res.Scheduled++
		// The player and whether this opens a session are decided here, in
		// arrival order, so a seed fixes them however workers interleave.
		rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(i)))
		p := r.fx.Players[rng.IntN(len(r.fx.Players))]
		j := job{seq: i, due: due, player: p, rng: rng, session: r.sessionStart(p, p.arrivals)}
		p.arrivals++
		select {
		case queue <- j:
		default:
			r.dropped.Add(1)
		}
	}
	if reached == limit && limit < sched.Total() {
		r.budget.stopped.Store(true) // --max-requests is below what the schedule sends
	}
	window := time.Since(start)
	if reached == limit && limit == sched.Total() {
		window = max(window, end.Sub(start)) // the schedule ran to its end
	}
	close(queue)
	wg.Wait()
	return window
}

func (r *runner) openJob(worker int, j job) {
	r.act(worker, fmt.Sprintf("%so%d", r.cfg.step, j.seq), j.due, j.rng, j.player, j.session)
}

// sessionStart reports whether a player's n-th action (from 0) opens a
// session of its archetype.
func (r *runner) sessionStart(p *Player, n int64) bool {
	s := r.fx.Kinds[p.kind].Archetype.Session
	return s > 0 && n%int64(s) == 0
}

// closed runs the closed model: each virtual player sends its next request
// as soon as the previous one is answered, until the duration is up.
func (r *runner) closed(start time.Time, res *Result) time.Duration {
	deadline := start.Add(r.cfg.RunLength())
	var wg sync.WaitGroup
	for vu := range r.cfg.VUs {
		if !r.cfg.Split.mine(int64(vu)) {
			continue
		}
		wg.Go(func() {
			p := r.fx.Players[vu%len(r.fx.Players)]
			stream := r.cfg.Seed ^ (uint64(vu)+1)*0x9E3779B97F4A7C15
			for iter := uint64(0); ; iter++ {
				now := time.Now()
				if !now.Before(deadline) || r.budget.exhausted() || r.ctx.Err() != nil {
					return
				}
				rng := rand.New(rand.NewPCG(stream, iter))
				r.act(vu, fmt.Sprintf("%sc%d.%d", r.cfg.step, vu, iter), now, rng, p, r.sessionStart(p, int64(iter)))
			}
		})
	}
	wg.Wait()
	return min(time.Since(start), r.cfg.RunLength())
}

// progress prints one line per second until the returned stop is called,
// which flushes the last partial interval: as a line of its own when it is
// long enough to mean something, otherwise folded into the last second.
func (r *runner) progress(start time.Time, w io.Writer, sched *Scheduler) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	prev, last := start, start // the last point covers [prev, last)
	target := func(from, to time.Time) float64 {
		if sched == nil || !to.After(from) {
			return 0
		}
		return (sched.Expected(to.Sub(start)) - sched.Expected(from.Sub(start))) / to.Sub(from).Seconds()
	}
	flush := func(now time.Time) {
		p := r.rec.Flush(now.Sub(start), now.Sub(last), target(last, now))
		prev, last = last, now
		if w != nil {
			fmt.Fprintln(w, r.progressLine(p))
		}
	}
	wg.Go(func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case now := <-t.C:
				flush(now)
			case <-done:
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		now := time.Now()
		switch {
		case now.Sub(last) >= 500*time.Millisecond || last == start:
			flush(now)
		default:
			r.rec.FlushIntoLast(now.Sub(start), now.Sub(prev), target(prev, now))
		}
	}
}

func (r *runner) progressLine(p TimelinePoint) string {
	errPct := 0.0
	if p.Requests > 0 {
		errPct = 100 * float64(p.Errors) / float64(p.Requests)
	}
	line := fmt.Sprintf("[%5.1fs] %8.1f req/s  p50 %8s  p99 %8s  errors %d (%s)",
		float64(p.ElapsedMS)/1000, p.Rate,
		formatLatency(time.Duration(p.P50US)*time.Microsecond),
		formatLatency(time.Duration(p.P99US)*time.Microsecond),
		p.Errors, formatPercent(errPct))
	if r.cfg.Open() {
		line += fmt.Sprintf("  late %d  dropped %d", r.late.Load(), r.dropped.Load())
	}
	return line
}

// picker chooses actions by weight, leaving out those that cannot run.
type picker struct {
	actions []string
	cum     []float64
	total   float64
}

func newPicker(mix map[string]float64, unavailable map[string]string, canBuy bool) *picker {
	p := &picker{}
	for _, a := range Actions {
		w := mix[a]
		if w <= 0 || unavailable[a] != "" || (a == ActionPurchase && !canBuy) {
			continue
		}
		p.total += w
		p.actions = append(p.actions, a)
		p.cum = append(p.cum, p.total)
	}
	return p
}

func (p *picker) pick(rng *rand.Rand) string {
	x := rng.Float64() * p.total
	for i, c := range p.cum {
		if x < c {
			return p.actions[i]
		}
	}
	return p.actions[len(p.actions)-1]
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}

// send takes a budget slot, sends, and classifies a transport failure. It
// returns ok=false when the budget is spent (nothing was sent). A nil
// response comes with the failure's code; "canceled" means the run was
// interrupted and the request is not recorded.
func (r *runner) send(method, path, token string, body any, h http.Header) (resp *Response, code string, ok bool) {
	if !r.budget.take() {
		return nil, "", false
	}
	resp, err := r.c.Do(r.ctx, method, path, token, body, h)
	if err != nil {
		if r.ctx.Err() != nil {
			return nil, "canceled", true
		}
		return nil, TransportCode(err), true
	}
	return resp, "", true
}

func (r *runner) record(shard int, endpoint string, since time.Time, code string) {
	if code == "canceled" {
		return
	}
	r.rec.Record(shard, endpoint, time.Since(since), code)
}

// act performs one action for player p. seq names the action uniquely in
// this run (it becomes part of idempotency keys) and due is when it was
// meant to start, which latency is measured from. A session opens as a game
// client's does: with a catalog read that has no ETag to revalidate.
func (r *runner) act(shard int, seq string, due time.Time, rng *rand.Rand, p *Player, session bool) {
	pk := r.pickers[p.kind]
	pick := pk[0]
	if r.receiptsGone.Load() {
		pick = pk[1]
	}
	if pick.total == 0 {
		return
	}
	a := pick.pick(rng)
	if session {
		p.setCatalogETag("")
		a = ActionCatalog
	}
	switch a {
	case ActionCatalog:
		r.catalog(shard, due, p)
	case ActionWallet:
		r.wallet(shard, due, p)
	case ActionEntitlements:
		r.entitlements(shard, due, p)
	case ActionPurchase:
		r.purchase(shard, seq, due, rng, p)
	case ActionEntitlementCheck:
		r.ownership(shard, due, rng, p)
	case ActionAward, ActionSpend, ActionConsume:
		r.posting(shard, a, seq, due, rng, p)
	case ActionTip:
		r.tip(shard, seq, due, rng, p)
	case ActionReceipt:
		if r.fx.Store != nil {
			r.chaosReceipt(shard, due, rng, p)
			return
		}
		jws, ok := r.fx.Receipts.Take()
		if !ok {
			// The pool is used up: do something else rather than send
			// less than the schedule asks for.
			r.receiptsGone.Store(true)
			r.act(shard, seq, due, rng, p, false)
			return
		}
		r.receipt(shard, due, p, jws)
	}
}

func (r *runner) catalog(shard int, due time.Time, p *Player) {
	etag := p.catalogETag()
	var h http.Header
	if etag != "" {
		h = http.Header{"If-None-Match": {etag}}
	}
	resp, code, ok := r.send(http.MethodGet, "/v1/catalog", p.Token, nil, h)
	if !ok {
		return
	}
	if resp != nil {
		switch {
		case resp.Status == http.StatusOK && json.Valid(resp.Body):
			if e := resp.Header.Get("ETag"); e != "" {
				p.setCatalogETag(e)
			}
		case resp.Status == http.StatusNotModified && etag != "":
		case resp.Status == http.StatusOK:
			code = "bad_body"
		default:
			code = codeOf(resp)
		}
	}
	r.record(shard, EndpointCatalog, due, code)
}

func (r *runner) wallet(shard int, due time.Time, p *Player) {
	resp, code, ok := r.send(http.MethodGet, "/v1/wallet", p.Token, nil, nil)
	if !ok {
		return
	}
	if resp != nil {
		code = codeOf(resp)
		if resp.Status == http.StatusOK {
			var w Wallet
			switch {
			case json.Unmarshal(resp.Body, &w) != nil:
				code = "bad_body"
			case w.PlayerID != p.ID:
				code = "wrong_player" // the server answered for someone else
			default:
				for _, b := range w.Balances {
					if b < 0 {
						code = "negative_balance"
					}
				}
			}
		}
	}
	r.record(shard, EndpointWallet, due, code)
}

func (r *runner) entitlements(shard int, due time.Time, p *Player) {
	resp, code, ok := r.send(http.MethodGet, "/v1/entitlements", p.Token, nil, nil)
	if !ok {
		return
	}
	if resp != nil {
		code = codeOf(resp)
		if resp.Status == http.StatusOK {
			var e Entitlements
			if json.Unmarshal(resp.Body, &e) != nil {
				code = "bad_body"
			} else if e.PlayerID != p.ID {
				code = "wrong_player"
			}
		}
	}
	r.record(shard, EndpointEntitlements, due, code)
}

// codeOf is "" for a 2xx answer and the problem code otherwise.
func codeOf(resp *Response) string {
	if resp.Status >= 200 && resp.Status < 300 {
		return ""
	}
	if resp.Code == "" {
		return fmt.Sprintf("http_%d", resp.Status)
	}
	return resp.Code
}

// purchase buys an offer. A share of purchases carries a wrong price and
// must be refused with 409 price_mismatch; another share is sent twice with
// the same Idempotency-Key, as a client does after a lost response, and the
// second answer must replay the first.
func (r *runner) purchase(shard int, seq string, due time.Time, rng *rand.Rand, p *Player) {
	pm := r.cfg.Scenario.Purchase
	x := rng.Float64()
	stale := x < pm.StalePriceShare
	retry := !stale && x < pm.StalePriceShare+pm.RetryShare
	o, qty, ok := r.chooseOffer(rng, p, stale)
	if !ok {
		// This player is at max_per_player on everything: read instead
		// of sending a purchase the server must refuse.
		r.substituted.Add(1)
		r.wallet(shard, due, p)
		return
	}
	req := PurchaseRequest{ItemID: o.ItemID, Quantity: qty, Price: o.Price}
	endpoint := EndpointPurchase
	if stale {
		req.Price.Amount++ // what a client with an old catalog would show
		endpoint = EndpointPurchaseStale
	}
	key := fmt.Sprintf("lt-%s-%s", r.fx.RunID, seq)

	resp, code, ok := r.send(http.MethodPost, "/v1/purchases", p.Token, req, idemHeader(key))
	if !ok {
		if !stale {
			p.release(o, qty)
		}
		return
	}
	code = r.purchaseOutcome(p, key, req, o, resp, code, stale)
	if !stale && resp != nil && resp.Status >= 400 && resp.Status < 500 {
		p.release(o, qty) // refused: nothing was granted
	}
	r.record(shard, endpoint, due, code)
	if !retry || code == "canceled" {
		return
	}

	sent := time.Now()
	again, code2, ok := r.send(http.MethodPost, "/v1/purchases", p.Token, req, idemHeader(key))
	if !ok {
		return
	}
	if again != nil {
		code2 = r.purchaseOutcome(p, key, req, o, again, "", false)
		if resp != nil && replayable(resp) {
			switch {
			case again.Status != resp.Status:
				code2 = fmt.Sprintf("replay_status_%d_after_%d", again.Status, resp.Status)
			case !sameJSON(again.Body, resp.Body):
				code2 = "replay_mismatch"
			case resp.Status == http.StatusCreated && again.Header.Get("Idempotent-Replayed") != "true":
				code2 = "replay_not_marked"
			}
		}
	}
	r.record(shard, EndpointPurchaseRetry, sent, code2)
}

// chooseOffer picks an offer and quantity that keep the player under every
// max_per_player, booking the room (stale-price purchases are refused for
// the price before any limit applies, so they book nothing). It reports
// false when no offer fits even one unit.
func (r *runner) chooseOffer(rng *rand.Rand, p *Player, stale bool) (Offer, int64, bool) {
	k := r.fx.Kinds[p.kind]
	n := len(k.offerIdx)
	if n == 0 {
		return Offer{}, 0, false
	}
	first := pickWeighted(k.offerCum, rng.Float64())
	qty := 1 + rng.Int64N(r.cfg.Scenario.Purchase.MaxQuantity)
	for i := range n {
		o := r.fx.Offers[k.offerIdx[(first+i)%n]]
		if stale {
			return o, qty, true
		}
		if p.reserve(o, qty) {
			return o, qty, true
		}
		if qty > 1 && p.reserve(o, 1) {
			return o, 1, true
		}
	}
	return Offer{}, 0, false
}

// purchaseOutcome classifies a purchase answer and records what the server
// committed. It returns the error code ("" when the answer was the one
// expected).
func (r *runner) purchaseOutcome(p *Player, key string, req PurchaseRequest, o Offer, resp *Response, code string, stale bool) string {
	if resp == nil || resp.Status >= 500 {
		// No answer, or a server error after which the purchase may still
		// have committed: verification treats it as unconfirmed.
		r.obs.UnknownPurchase(p.ID, key, req)
		if resp != nil {
			return codeOf(resp)
		}
		return code
	}
	switch {
	case resp.Status == http.StatusCreated:
		var res PurchaseResult
		if json.Unmarshal(resp.Body, &res) != nil || res.PurchaseID == "" {
			r.obs.UnknownPurchase(p.ID, key, req)
			return "bad_body"
		}
		if r.obs.Purchase(p.ID, key, req, &res) {
			r.bought.add(req.ItemID, req.Quantity)
			grants := map[string]int64{}
			for id, q := range o.Grants {
				grants[id] = q * req.Quantity
			}
			p.addOwned(grants)
		}
		if stale {
			return "accepted_wrong_price"
		}
		return ""
	case stale && resp.Status == http.StatusConflict && resp.Code == "price_mismatch":
		return ""
	default:
		return codeOf(resp)
	}
}

// replayable says whether a first answer is one the server must replay to
// a retry with the same key: a result it committed to, not a refusal to
// look at the request (rate limit, key busy, overload).
func replayable(resp *Response) bool {
	switch {
	case resp.Status == http.StatusTooManyRequests, resp.Status >= 500:
		return false
	case resp.Code == "idempotency_key_in_use":
		return false
	}
	return true
}

// sameJSON compares two bodies as JSON values, so a server that stores the
// first response re-encoded (key order, spacing) still counts as the same.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return string(a) == string(b)
	}
	return reflect.DeepEqual(va, vb)
}

// ownership asks the server-to-server route about an item. For an item the
// tool saw the player receive, the answer must say owned with at least that
// quantity: the purchase's 201 came before this request was sent.
func (r *runner) ownership(shard int, due time.Time, rng *rand.Rand, p *Player) {
	item, known, ok := p.ownedItem(func(n int) int { return rng.IntN(n) })
	if !ok {
		if len(r.checkItems) == 0 {
			item = "loadtest-probe"
		} else {
			item = r.checkItems[rng.IntN(len(r.checkItems))]
		}
	}
	if !r.budget.take() {
		return
	}
	resp, err := r.c.CheckOwnership(r.ctx, p.ID, item)
	code := ""
	switch {
	case err != nil && r.ctx.Err() != nil:
		return
	case err != nil:
		code = TransportCode(err)
	case resp.Status != http.StatusOK:
		code = codeOf(resp)
	default:
		var oc OwnershipCheck
		switch {
		case json.Unmarshal(resp.Body, &oc) != nil:
			code = "bad_body"
		case oc.PlayerID != p.ID || oc.ItemID != item:
			code = "wrong_player"
		case ok && (!oc.Owned || oc.Quantity < known):
			code = "stale_entitlement"
		}
	}
	r.record(shard, EndpointEntitlementCheck, due, code)
}

func (r *runner) receipt(shard int, due time.Time, p *Player, jws string) {
	body := map[string]string{"store": r.cfg.ReceiptStore, "signed_transaction": jws}
	resp, code, ok := r.send(http.MethodPost, "/v1/receipts", p.Token, body, nil)
	if !ok {
		return
	}
	switch {
	case resp == nil || resp.Status >= 500:
		if code != "canceled" {
			r.obs.Receipt(p.ID, false)
		}
		if resp != nil {
			code = codeOf(resp)
		}
	case resp.Status == http.StatusOK || resp.Status == http.StatusCreated:
		r.obs.Receipt(p.ID, true)
	default:
		code = codeOf(resp)
	}
	r.record(shard, EndpointReceipt, due, code)
}
