//go:build chaos

package chaos

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	itemID      = "arrow"
	currencyID  = "gold"
	unitPrice   = 2
	funding     = 1_000_000
	bucketWidth = 500 * time.Millisecond
	// attemptTimeout is the client's limit on one attempt: above the
	// replicas' 2 s request timeout, so a replica's own 503 is seen.
	attemptTimeout = 4 * time.Second
	// retryBudget is how long the load retries one purchase before calling
	// it uncertain; uncertain purchases are resolved after the load stops.
	retryBudget = 15 * time.Second
)

type player struct {
	id    string
	token string
	acked atomic.Int64 // arrows acknowledged with a 201
}

type purchase struct {
	p     *player
	key   string
	qty   int64
	first int // replica of the first attempt; retries alternate
	// firstAnswer, when set, is told how the first attempt ended.
	firstAnswer func(status int, err error)
}

// tally counts what one scenario's clients saw.
type tally struct {
	start time.Time

	mu         sync.Mutex
	status     map[int]int
	bad5xx     []string // examples of 5xx other than 503
	transport  int      // attempts without an HTTP answer: refused + cut + timeouts
	refused    int      // connection refused: nothing listening
	cut        int      // connection reset or closed before an answer
	timeouts   int      // no answer within attemptTimeout
	offered    int      // logical purchases started
	acked      int
	replayed   int // acks that carried Idempotent-Replayed
	rejected   int // definitive 4xx
	rejects    map[string]int
	retries    int
	uncertain  int // retry budget spent; resolved after the load stops
	unresolved int
	reads      int
	acks       map[int]int // acks per bucketWidth since start
}

func newTally() *tally {
	return &tally{start: time.Now(), status: map[int]int{}, rejects: map[string]int{}, acks: map[int]int{}}
}

func (t *tally) answer(status int, code, replica, reqID string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.status[status]++
	if status >= 500 && status != http.StatusServiceUnavailable && len(t.bad5xx) < 10 {
		t.bad5xx = append(t.bad5xx, fmt.Sprintf("%d %s from %s (request %s)", status, code, replica, reqID))
	}
}

func (t *tally) count5xx() (unavailable, other int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, n := range t.status {
		switch {
		case s == http.StatusServiceUnavailable:
			unavailable += n
		case s >= 500:
			other += n
		}
	}
	return unavailable, other
}

// failed counts an attempt that got no HTTP answer.
func (t *tally) failed(err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.transport++
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		t.refused++
	case errors.Is(err, context.DeadlineExceeded) || os.IsTimeout(err):
		t.timeouts++
	default:
		t.cut++
	}
}

func (t *tally) add(f func(t *tally)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f(t)
}

// recovery returns how long after healed the acknowledged rate first held
// 90% of rate over a 2 s window, and false if no window starting within
// limit of healed (and complete by now) did.
func (t *tally) recovery(healed time.Time, rate float64, limit time.Duration) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	const window = 4 // buckets
	need := 0.9 * rate * float64(window) * bucketWidth.Seconds()
	first := int(healed.Sub(t.start) / bucketWidth)
	last := int(time.Since(t.start)/bucketWidth) - window // the newest complete window
	for b := first; b <= last; b++ {
		at := t.start.Add(time.Duration(b) * bucketWidth)
		if at.Sub(healed) > limit {
			break
		}
		sum := 0
		for i := range window {
			sum += t.acks[b+i]
		}
		if float64(sum) >= need {
			return max(0, at.Sub(healed)), true
		}
	}
	return 0, false
}

// timeline returns the acknowledged purchases in each second from "from"
// to the newest complete second.
func (t *tally) timeline(from time.Time) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	per := int(time.Second / bucketWidth)
	first := int(from.Sub(t.start) / bucketWidth)
	var out []int
	for b := first; b+per <= int(time.Since(t.start)/bucketWidth); b += per {
		n := 0
		for i := range per {
			n += t.acks[b+i]
		}
		out = append(out, n)
	}
	return out
}

// rateBetween is the acknowledged purchases per second from a to b.
func (t *tally) rateBetween(a, b time.Time) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for i := int(a.Sub(t.start) / bucketWidth); i < int(b.Sub(t.start)/bucketWidth); i++ {
		n += t.acks[i]
	}
	return float64(n) / b.Sub(a).Seconds()
}

// load is the open-loop workload: purchases and reads arrive at fixed rates
// whatever the answers, alternating between replicas.
type load struct {
	replicas []*replica
	players  []*player
	rate     float64 // purchases per second
	readRate float64 // wallet and entitlement reads per second
	client   *http.Client

	mu        sync.Mutex
	stop      chan struct{}
	arrivals  sync.WaitGroup
	inflight  sync.WaitGroup
	uncertain []*purchase
}

func newLoad(replicas []*replica, players []*player, rate, readRate float64) *load {
	return &load{
		replicas: replicas, players: players, rate: rate, readRate: readRate,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 30 * time.Second}},
	}
}

// run starts the arrivals, counting into t.
func (l *load) run(t *tally) {
	l.mu.Lock()
	l.stop = make(chan struct{})
	stop := l.stop
	l.mu.Unlock()
	var n atomic.Int64
	l.arrivals.Go(func() {
		l.arrive(stop, l.rate, func() {
			i := n.Add(1)
			p := &purchase{p: l.players[rand.IntN(len(l.players))], key: newKey(), qty: 1 + rand.Int64N(3), first: int(i % 2)}
			t.add(func(t *tally) { t.offered++ })
			l.inflight.Go(func() {
				if !l.buy(context.Background(), t, p, retryBudget) {
					t.add(func(t *tally) { t.uncertain++ })
					l.mu.Lock()
					l.uncertain = append(l.uncertain, p)
					l.mu.Unlock()
				}
			})
		})
	})
	l.arrivals.Go(func() {
		l.arrive(stop, l.readRate, func() {
			l.inflight.Go(func() {
				p := l.players[rand.IntN(len(l.players))]
				path := "/v1/wallet"
				if rand.IntN(2) == 0 {
					path = "/v1/entitlements"
				}
				r := l.replicas[rand.IntN(len(l.replicas))]
				ctx, cancel := context.WithTimeout(context.Background(), attemptTimeout)
				defer cancel()
				status, code, _, reqID, _, err := l.do(ctx, r, http.MethodGet, path, p, "", nil)
				t.add(func(t *tally) { t.reads++ })
				if err != nil {
					t.failed(err)
					return
				}
				t.answer(status, code, r.name, reqID)
			})
		})
	})
}

// arrive calls fire every 1/rate until stop is closed, on a fixed schedule
// that does not wait for answers.
func (l *load) arrive(stop chan struct{}, rate float64, fire func()) {
	if rate <= 0 {
		return
	}
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			return
		case <-timer.C:
		}
		for now := time.Now(); !next.After(now); next = next.Add(interval) {
			fire()
		}
		timer.Reset(time.Until(next))
	}
}

// burstResult says how the first attempts of a burst ended.
type burstResult struct {
	mu                  sync.Mutex
	created, other, cut int
	answered            chan struct{} // closed at the first 201
	once                sync.Once
}

// burst sends one purchase for each of n players at once to replica to,
// besides the open-loop arrivals, and retries them like the others. Its
// answered channel is closed when the first of them is acknowledged: the
// replica is committing the burst.
func (l *load) burst(t *tally, n, to int) *burstResult {
	b := &burstResult{answered: make(chan struct{})}
	for _, pl := range l.players[:min(n, len(l.players))] {
		p := &purchase{p: pl, key: newKey(), qty: 1 + rand.Int64N(3), first: to}
		p.firstAnswer = func(status int, err error) {
			b.mu.Lock()
			defer b.mu.Unlock()
			switch {
			case err != nil:
				b.cut++
			case status == http.StatusCreated:
				b.created++
				b.once.Do(func() { close(b.answered) })
			default:
				b.other++
			}
		}
		t.add(func(t *tally) { t.offered++ })
		l.inflight.Go(func() {
			if !l.buy(context.Background(), t, p, retryBudget) {
				t.add(func(t *tally) { t.uncertain++ })
				l.mu.Lock()
				l.uncertain = append(l.uncertain, p)
				l.mu.Unlock()
			}
		})
	}
	return b
}

func (b *burstResult) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("burst of %d: %d answered 201, %d other answers, %d without an answer", b.created+b.other+b.cut, b.created, b.other, b.cut)
}

// halt stops the arrivals and waits for every purchase in flight to get a
// definitive answer or spend its retry budget.
func (l *load) halt() {
	l.mu.Lock()
	if l.stop != nil {
		close(l.stop)
		l.stop = nil
	}
	l.mu.Unlock()
	l.arrivals.Wait()
	l.inflight.Wait()
}

// resolve retries every uncertain purchase with its key until it gets a
// definitive answer, so acked is exact; it returns how many it could not.
func (l *load) resolve(ctx context.Context, t *tally) int {
	l.mu.Lock()
	todo := l.uncertain
	l.uncertain = nil
	l.mu.Unlock()
	var left atomic.Int64
	var wg sync.WaitGroup
	for _, p := range todo {
		wg.Go(func() {
			if !l.buy(ctx, t, p, 30*time.Second) {
				left.Add(1)
			}
		})
	}
	wg.Wait()
	t.add(func(t *tally) { t.unresolved += int(left.Load()) })
	return int(left.Load())
}

// buy sends one logical purchase, retrying with the same key on 5xx,
// transport errors, 429 and 409 idempotency_key_in_use, alternating
// replicas, until a definitive answer or budget is spent. It reports
// whether the answer was definitive.
func (l *load) buy(ctx context.Context, t *tally, p *purchase, budget time.Duration) bool {
	body := map[string]any{"item_id": itemID, "quantity": p.qty, "price": map[string]any{"currency": currencyID, "amount": unitPrice}}
	deadline := time.Now().Add(budget)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			t.add(func(t *tally) { t.retries++ })
		}
		r := l.replicas[(p.first+attempt)%len(l.replicas)]
		actx, cancel := context.WithTimeout(ctx, attemptTimeout)
		status, code, replayed, reqID, _, err := l.do(actx, r, http.MethodPost, "/v1/purchases", p.p, p.key, body)
		cancel()
		if attempt == 0 && p.firstAnswer != nil {
			p.firstAnswer(status, err)
		}
		if err != nil {
			t.failed(err)
		} else {
			t.answer(status, code, r.name, reqID)
			switch {
			case status == http.StatusCreated:
				p.p.acked.Add(p.qty)
				t.add(func(t *tally) {
					t.acked++
					if replayed {
						t.replayed++
					}
					t.acks[int(time.Since(t.start)/bucketWidth)]++
				})
				return true
			case status >= 400 && status < 500 && status != http.StatusTooManyRequests && code != "idempotency_key_in_use":
				t.add(func(t *tally) { t.rejected++; t.rejects[fmt.Sprintf("%d %s", status, code)]++ })
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		backoff := min(time.Second, 50*time.Millisecond<<min(attempt, 5))
		time.Sleep(backoff/2 + rand.N(backoff/2))
	}
}

// do sends one request as player p and returns the status, the problem code
// (if any), whether the answer was a replay, the request id and the body.
func (l *load) do(ctx context.Context, r *replica, method, path string, p *player, key string, body any) (status int, code string, replayed bool, reqID string, b []byte, err error) {
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		if err != nil {
			return 0, "", false, "", nil, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url(path), rd)
	if err != nil {
		return 0, "", false, "", nil, err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, "", false, "", nil, err
	}
	defer resp.Body.Close()
	b, err = io.ReadAll(resp.Body)
	if err != nil {
		return 0, "", false, "", nil, err
	}
	if resp.StatusCode >= 400 {
		var prob struct{ Code string }
		_ = json.Unmarshal(b, &prob)
		code = prob.Code
	}
	return resp.StatusCode, code, resp.Header.Get("Idempotent-Replayed") == "true", resp.Header.Get("X-Request-Id"), b, nil
}

// served reads what replica r serves for p: gold and arrows.
func (l *load) served(ctx context.Context, r *replica, p *player) (gold, arrows int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, attemptTimeout)
	defer cancel()
	status, _, _, _, b, err := l.do(ctx, r, http.MethodGet, "/v1/wallet", p, "", nil)
	if err != nil || status != http.StatusOK {
		return 0, 0, fmt.Errorf("wallet from %s: %d %v %s", r.name, status, err, b)
	}
	var w struct{ Balances map[string]int64 }
	if err := json.Unmarshal(b, &w); err != nil {
		return 0, 0, err
	}
	status, _, _, _, b, err = l.do(ctx, r, http.MethodGet, "/v1/entitlements", p, "", nil)
	if err != nil || status != http.StatusOK {
		return 0, 0, fmt.Errorf("entitlements from %s: %d %v %s", r.name, status, err, b)
	}
	var e struct {
		Entitlements []struct {
			ItemID   string `json:"item_id"`
			Quantity int64
		}
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return 0, 0, err
	}
	for _, x := range e.Entitlements {
		if x.ItemID == itemID {
			arrows = x.Quantity
		}
	}
	return w.Balances[currencyID], arrows, nil
}

func newKey() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func sortedCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
