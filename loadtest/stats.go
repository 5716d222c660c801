package loadtest

import (
	"sort"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Endpoint labels. Each is one kind of request the tool sends, reported and
// thresholded separately: a replayed purchase or a rejected stale price costs
// the server far less than a real purchase, and mixing them would flatter the
// purchase percentiles.
const (
	EndpointCatalog          = "catalog"           // GET /v1/catalog (200 or 304)
	EndpointWallet           = "wallet"            // GET /v1/wallet
	EndpointEntitlements     = "entitlements"      // GET /v1/entitlements
	EndpointPurchase         = "purchase"          // POST /v1/purchases, fresh key
	EndpointPurchaseRetry    = "purchase_retry"    // the same key and body sent again
	EndpointPurchaseStale    = "purchase_stale"    // a wrong price, expecting 409 price_mismatch
	EndpointEntitlementCheck = "entitlement_check" // server-to-server ownership check
	EndpointReceipt          = "receipt"           // POST /v1/receipts
	EndpointAward            = "award"             // POST /v1/players/{id}/awards
	EndpointSpend            = "spend"             // POST /v1/players/{id}/spends
	EndpointConsume          = "consume"           // POST /v1/players/{id}/consumptions
	EndpointTip              = "tip"               // POST /v1/creators/{id}/tips
	EndpointTipRetry         = "tip_retry"         // the same key and body sent again after an answer
	// Store chaos: REFUND notifications delivered to
	// POST /v1/stores/apple/notifications, and deliveries the "store" gave
	// up on after 1 ms (their latency is the give-up time; never errors).
	EndpointNotification          = "store_notification"
	EndpointNotificationAbandoned = "store_notification_abandoned"
	// A redemption sent after its refund: invalid_receipt is the expected
	// answer (a grant, revoked later, is accepted too).
	EndpointReceiptAfterRefund = "receipt_after_refund"
	// EndpointAll is the scope of every request together, in reports and SLOs.
	EndpointAll = "all"
)

// Endpoints lists every endpoint label in report order.
var Endpoints = []string{
	EndpointCatalog, EndpointWallet, EndpointEntitlements, EndpointPurchase,
	EndpointPurchaseRetry, EndpointPurchaseStale, EndpointEntitlementCheck, EndpointReceipt,
	EndpointNotification, EndpointNotificationAbandoned, EndpointReceiptAfterRefund,
	EndpointAward, EndpointSpend, EndpointConsume, EndpointTip, EndpointTipRetry,
}

// Histogram range: latencies are recorded in microseconds from 1 µs to one
// hour with 3 significant digits. The ceiling is far above any request
// timeout because latency counts from the time a request was due, which
// includes time queued behind a saturated worker pool.
const (
	histLowest  = 1
	histHighest = int64(time.Hour / time.Microsecond)
	histSigFigs = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowest, histHighest, histSigFigs)
}

// EndpointStats is the latency histogram and error counts of one endpoint.
// It is not safe for concurrent use; Recorder shards them.
type EndpointStats struct {
	Hist   *hdrhistogram.Histogram
	Errors map[string]int64 // error code → count; successes are not listed
}

// NewEndpointStats returns empty stats.
func NewEndpointStats() *EndpointStats {
	return &EndpointStats{Hist: newHistogram(), Errors: map[string]int64{}}
}

// Record adds one request. code is "" for the expected outcome, otherwise
// the problem code or a tool-side code such as "timeout". Failed requests'
// latencies are recorded too: a timeout took that long for the player.
func (s *EndpointStats) Record(latency time.Duration, code string) {
	us := latency.Microseconds()
	if us < histLowest {
		us = histLowest
	}
	if us > histHighest {
		us = histHighest // recorded at the ceiling rather than lost
	}
	_ = s.Hist.RecordValue(us) // cannot fail: us is clamped into range
	if code != "" {
		s.Errors[code]++
	}
}

// Merge adds o into s; o is unchanged. Histograms share one geometry, so
// nothing is dropped.
func (s *EndpointStats) Merge(o *EndpointStats) {
	s.Hist.Merge(o.Hist)
	for c, n := range o.Errors {
		s.Errors[c] += n
	}
}

// Count is the number of requests recorded.
func (s *EndpointStats) Count() int64 { return s.Hist.TotalCount() }

// ErrorCount is the number of requests that did not get the expected answer.
func (s *EndpointStats) ErrorCount() int64 {
	var n int64
	for _, c := range s.Errors {
		n += c
	}
	return n
}

// Quantile returns the latency at quantile q in [0, 100].
func (s *EndpointStats) Quantile(q float64) time.Duration {
	return time.Duration(s.Hist.ValueAtQuantile(q)) * time.Microsecond
}

// Max returns the largest latency recorded.
func (s *EndpointStats) Max() time.Duration {
	if s.Count() == 0 {
		return 0
	}
	return time.Duration(s.Hist.Max()) * time.Microsecond
}

// Stats maps endpoint label to its stats.
type Stats map[string]*EndpointStats

// Get returns the stats for endpoint, creating them when missing.
func (m Stats) Get(endpoint string) *EndpointStats {
	s := m[endpoint]
	if s == nil {
		s = NewEndpointStats()
		m[endpoint] = s
	}
	return s
}

// Merge adds every endpoint of o into m.
func (m Stats) Merge(o Stats) {
	for ep, s := range o {
		if s.Count() > 0 || len(s.Errors) > 0 {
			m.Get(ep).Merge(s)
		}
	}
}

// All merges every endpoint into one.
func (m Stats) All() *EndpointStats {
	all := NewEndpointStats()
	for _, s := range m {
		all.Merge(s)
	}
	return all
}

// Names returns the endpoints present, known ones in report order first.
func (m Stats) Names() []string {
	var names []string
	seen := map[string]bool{}
	for _, ep := range Endpoints {
		if m[ep] != nil {
			names = append(names, ep)
			seen[ep] = true
		}
	}
	var rest []string
	for ep := range m {
		if !seen[ep] {
			rest = append(rest, ep)
		}
	}
	sort.Strings(rest)
	return append(names, rest...)
}

// Recorder collects request outcomes from many goroutines. Each worker
// records into one of a few shards, each with its own lock, so workers
// rarely contend; Flush merges the shards every second into the run totals
// and into one point of the timeline. A histogram per worker would be simpler
// but costs ~140 KB each, too much for a pool of hundreds.
type Recorder struct {
	shards []recorderShard

	mu         sync.Mutex // guards total, timeline and lastWindow
	total      Stats
	timeline   []TimelinePoint
	lastWindow Stats // what the last timeline point summarises
}

type recorderShard struct {
	mu    sync.Mutex
	stats Stats
	_     [40]byte // keeps neighbouring shard locks off one cache line
}

// NewRecorder returns a recorder with n shards (at least 1).
func NewRecorder(n int) *Recorder {
	if n < 1 {
		n = 1
	}
	r := &Recorder{shards: make([]recorderShard, n), total: Stats{}}
	for i := range r.shards {
		r.shards[i].stats = Stats{}
	}
	return r
}

// Record adds one request outcome; shard is any integer, typically the
// worker's id.
func (r *Recorder) Record(shard int, endpoint string, latency time.Duration, code string) {
	if shard < 0 {
		shard = -shard
	}
	s := &r.shards[shard%len(r.shards)]
	s.mu.Lock()
	s.stats.Get(endpoint).Record(latency, code)
	s.mu.Unlock()
}

// Flush moves everything recorded since the last flush into the totals and
// appends a timeline point for the interval ending at elapsed, which it
// also returns. target is the rate the schedule asked for over the
// interval (0 in the closed model).
func (r *Recorder) Flush(elapsed, interval time.Duration, target float64) TimelinePoint {
	return r.flush(elapsed, interval, target, false)
}

// FlushIntoLast is Flush for a short tail at the end of a run: the tail
// joins the last timeline point (interval then covers both) instead of
// becoming a point of its own, whose rate and percentiles from a few
// milliseconds of traffic would only be noise.
func (r *Recorder) FlushIntoLast(elapsed, interval time.Duration, target float64) TimelinePoint {
	return r.flush(elapsed, interval, target, true)
}

func (r *Recorder) flush(elapsed, interval time.Duration, target float64, intoLast bool) TimelinePoint {
	window := Stats{}
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		window.Merge(s.stats)
		// Reset rather than replace: a fresh histogram is ~190 KB, and
		// allocating one per shard and endpoint every second is garbage
		// the collector would have to chase during the run.
		for _, es := range s.stats {
			es.Hist.Reset()
			clear(es.Errors)
		}
		s.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total.Merge(window)
	if intoLast && len(r.timeline) > 0 {
		window.Merge(r.lastWindow)
		r.timeline = r.timeline[:len(r.timeline)-1]
	}
	p := newTimelinePoint(elapsed, interval, window)
	p.TargetRate = target
	r.timeline = append(r.timeline, p)
	r.lastWindow = window
	return p
}

// Totals returns a copy of everything flushed so far.
func (r *Recorder) Totals() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := Stats{}
	out.Merge(r.total)
	return out
}

// Timeline returns the points flushed so far.
func (r *Recorder) Timeline() []TimelinePoint {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]TimelinePoint(nil), r.timeline...)
}

// TimelinePoint summarises one interval of the run (normally a second) by
// completion time: what the progress line prints and the latency-over-time
// chart draws.
type TimelinePoint struct {
	ElapsedMS  int64                     `json:"elapsed_ms"` // end of the interval, from the start of the load phase
	Requests   int64                     `json:"requests"`
	Rate       float64                   `json:"rate"`                  // completed requests per second
	TargetRate float64                   `json:"target_rate,omitempty"` // open model: what the schedule asked for
	Errors     int64                     `json:"errors"`
	P50US      int64                     `json:"p50_us"`
	P99US      int64                     `json:"p99_us"`
	MaxUS      int64                     `json:"max_us"`
	Endpoints  map[string]EndpointMoment `json:"endpoints,omitempty"`
	// Histogram is the interval's HdrHistogram of every endpoint together
	// (V2 compressed, base64), so that merged reports compute a second's
	// percentiles exactly rather than from the parts' percentiles.
	Histogram string `json:"histogram,omitempty"`
}

// EndpointMoment is one endpoint's share of a timeline point.
type EndpointMoment struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	P50US    int64 `json:"p50_us"`
	P99US    int64 `json:"p99_us"`
	// Histogram is the endpoint's HdrHistogram for the interval, as in
	// TimelinePoint.
	Histogram string `json:"histogram,omitempty"`
}

// encodeHistogram is h in the reports' encoding, "" when empty (nothing to
// merge) or when encoding fails (merge then falls back to the maxima).
func encodeHistogram(h *hdrhistogram.Histogram) string {
	if h.TotalCount() == 0 {
		return ""
	}
	enc, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return ""
	}
	return string(enc)
}

func newTimelinePoint(elapsed, interval time.Duration, window Stats) TimelinePoint {
	all := window.All()
	p := TimelinePoint{
		ElapsedMS: elapsed.Milliseconds(),
		Requests:  all.Count(),
		Errors:    all.ErrorCount(),
		P50US:     all.Hist.ValueAtQuantile(50),
		P99US:     all.Hist.ValueAtQuantile(99),
		MaxUS:     all.Max().Microseconds(),
		Histogram: encodeHistogram(all.Hist),
	}
	if interval > 0 {
		p.Rate = float64(p.Requests) / interval.Seconds()
	}
	if len(window) > 0 {
		p.Endpoints = map[string]EndpointMoment{}
		for ep, s := range window {
			p.Endpoints[ep] = EndpointMoment{
				Requests: s.Count(), Errors: s.ErrorCount(),
				P50US: s.Hist.ValueAtQuantile(50), P99US: s.Hist.ValueAtQuantile(99),
				Histogram: encodeHistogram(s.Hist),
			}
		}
	}
	return p
}
