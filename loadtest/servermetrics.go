package loadtest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The server's side of a run comes from its Prometheus /metrics, scraped
// every second while the load runs: what the tool measures says how slow,
// this says why (CPU, database pool waits, cache hit ratio, what it
// answered). Only figures coinop exports are read; Postgres and Redis
// latency appear only as far as the server's own route latency and pool
// waits show them.

// Sample is one scrape: series ("name{labels}") to value.
type Sample struct {
	At     time.Duration
	Values map[string]float64
}

// ParseMetrics reads the Prometheus text exposition format: comments are
// skipped, each remaining line is a series and its value (timestamps are
// ignored). It returns an error for a line that is neither.
func ParseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The value follows the series; labels may contain spaces, so cut
		// after the closing brace when there is one.
		cut := strings.LastIndexByte(line, '}')
		if cut < 0 {
			cut = strings.IndexByte(line, ' ')
		} else {
			cut++
		}
		if cut <= 0 || cut >= len(line) {
			return nil, fmt.Errorf("metrics line %d: want a series and a value", n)
		}
		fields := strings.Fields(line[cut:])
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %d: no value", n)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %d: bad value %q", n, fields[0])
		}
		out[strings.TrimSpace(line[:cut])] = v
	}
	return out, sc.Err()
}

// scraper polls /metrics until stopped.
type scraper struct {
	c     *Client
	start time.Time

	mu      sync.Mutex
	samples []Sample
	err     error // the first failure, reported as a note
}

// startScraper scrapes now and then every interval until stop is called,
// which scrapes once more and returns what was collected.
func startScraper(ctx context.Context, c *Client, start time.Time, interval time.Duration) (stop func() []Sample, failure func() error) {
	s := &scraper{c: c, start: start}
	s.scrape(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				s.scrape(ctx)
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	})
	return func() []Sample {
			close(done)
			wg.Wait()
			s.scrape(ctx)
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.samples
		}, func() error {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.err
		}
}

func (s *scraper) scrape(ctx context.Context) {
	if ctx.Err() != nil {
		return
	}
	at := time.Since(s.start)
	resp, err := s.c.Do(ctx, http.MethodGet, "/metrics", "", nil, nil)
	var vals map[string]float64
	switch {
	case err != nil:
	case resp.Status != http.StatusOK:
		err = fmt.Errorf("GET /metrics answered HTTP %d", resp.Status)
	default:
		vals, err = ParseMetrics(strings.NewReader(string(resp.Body)))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if s.err == nil {
			s.err = err
		}
		return
	}
	s.samples = append(s.samples, Sample{At: at, Values: vals})
}

// ServerFigures summarise the server's metrics over the load phase.
type ServerFigures struct {
	Scrapes    int     `json:"scrapes"`
	WindowMS   int64   `json:"window_ms"`  // first to last scrape
	CPUCores   float64 `json:"cpu_cores"`  // mean CPU use, in cores
	PeakCores  float64 `json:"peak_cores"` // busiest scrape interval
	MaxRSSMB   float64 `json:"max_rss_mb,omitempty"`
	Goroutines float64 `json:"max_goroutines,omitempty"`
	// Postgres pool: acquires, those that waited for a free connection,
	// the mean wait of those, and the most connections in use at once.
	PoolAcquires      float64            `json:"pool_acquires"`
	PoolWaits         float64            `json:"pool_waits"`
	PoolWaitMeanUS    float64            `json:"pool_wait_mean_us"`
	PoolMaxInUse      float64            `json:"pool_max_in_use"`
	PoolMaxConns      float64            `json:"pool_max_conns,omitempty"`
	CacheHits         float64            `json:"cache_hits"`
	CacheMisses       float64            `json:"cache_misses"`
	CacheHitRatio     float64            `json:"cache_hit_ratio"`
	CacheBypass       float64            `json:"cache_bypass,omitempty"`
	RedisErrors       float64            `json:"redis_errors,omitempty"`
	ResponsesByStatus map[string]float64 `json:"responses_by_status,omitempty"`
	// Routes is the server's own latency per route: mean and an upper
	// bound of p99 from the Prometheus buckets.
	Routes   []RouteFigure `json:"routes,omitempty"`
	Timeline []ServerPoint `json:"timeline,omitempty"`
}

// RouteFigure is one route's latency as the server measured it.
type RouteFigure struct {
	Route    string  `json:"route"` // "POST /v1/purchases"
	Requests float64 `json:"requests"`
	MeanUS   float64 `json:"mean_us"`
	P99US    float64 `json:"p99_upper_us"` // the bucket bound p99 falls under
	// P99AboveUS is set instead when p99 falls in the +Inf bucket (JSON
	// has no infinity): p99 is above this, the largest finite bound.
	P99AboveUS float64 `json:"p99_above_us,omitempty"`
}

// ServerPoint is one scrape interval.
type ServerPoint struct {
	ElapsedMS int64   `json:"elapsed_ms"`
	CPUCores  float64 `json:"cpu_cores"`
	PoolWaits float64 `json:"pool_waits_per_s"`
	HitRatio  float64 `json:"cache_hit_ratio"`
}

// labelValue returns the value of label in a series "name{a="x",b="y"}".
func labelValue(series, label string) string {
	i := strings.Index(series, label+`="`)
	if i < 0 {
		return ""
	}
	rest := series[i+len(label)+2:]
	j := strings.IndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

func metricName(series string) string {
	name, _, _ := strings.Cut(series, "{")
	return name
}

// sum adds every series of name (all label sets).
func sum(vals map[string]float64, name string) float64 {
	t := 0.0
	for k, v := range vals {
		if metricName(k) == name {
			t += v
		}
	}
	return t
}

// Summarize computes the figures from the samples: counters as the change
// from the first scrape to the last, gauges as their highest value. It
// returns nil for fewer than two samples.
func Summarize(samples []Sample) *ServerFigures {
	if len(samples) < 2 {
		return nil
	}
	first, last := samples[0], samples[len(samples)-1]
	dt := (last.At - first.At).Seconds()
	if dt <= 0 {
		return nil
	}
	delta := func(name string) float64 { return math.Max(0, sum(last.Values, name)-sum(first.Values, name)) }
	f := &ServerFigures{Scrapes: len(samples), WindowMS: (last.At - first.At).Milliseconds()}
	f.CPUCores = delta("process_cpu_seconds_total") / dt
	f.PoolAcquires = delta("coinop_db_pool_acquires_total")
	f.PoolWaits = delta("coinop_db_pool_empty_acquires_total")
	if f.PoolWaits > 0 {
		f.PoolWaitMeanUS = delta("coinop_db_pool_acquire_wait_seconds_total") / f.PoolWaits * 1e6
	}
	f.CacheHits, f.CacheMisses = delta("coinop_cache_hits_total"), delta("coinop_cache_misses_total")
	if f.CacheHits+f.CacheMisses > 0 {
		f.CacheHitRatio = f.CacheHits / (f.CacheHits + f.CacheMisses)
	}
	f.CacheBypass = delta("coinop_cache_bypass_total")
	f.RedisErrors = delta("coinop_cache_redis_errors_total")
	for i, s := range samples {
		f.MaxRSSMB = math.Max(f.MaxRSSMB, s.Values["process_resident_memory_bytes"]/(1<<20))
		f.Goroutines = math.Max(f.Goroutines, s.Values["go_goroutines"])
		f.PoolMaxInUse = math.Max(f.PoolMaxInUse, s.Values[`coinop_db_pool_connections{state="acquired"}`])
		f.PoolMaxConns = math.Max(f.PoolMaxConns, s.Values["coinop_db_pool_max_connections"])
		if i == 0 {
			continue
		}
		prev := samples[i-1]
		d := (s.At - prev.At).Seconds()
		if d <= 0 {
			continue
		}
		p := ServerPoint{ElapsedMS: s.At.Milliseconds()}
		p.CPUCores = math.Max(0, sum(s.Values, "process_cpu_seconds_total")-sum(prev.Values, "process_cpu_seconds_total")) / d
		p.PoolWaits = math.Max(0, sum(s.Values, "coinop_db_pool_empty_acquires_total")-sum(prev.Values, "coinop_db_pool_empty_acquires_total")) / d
		h := sum(s.Values, "coinop_cache_hits_total") - sum(prev.Values, "coinop_cache_hits_total")
		m := sum(s.Values, "coinop_cache_misses_total") - sum(prev.Values, "coinop_cache_misses_total")
		if h+m > 0 {
			p.HitRatio = h / (h + m)
		}
		f.PeakCores = math.Max(f.PeakCores, p.CPUCores)
		f.Timeline = append(f.Timeline, p)
	}

	// Route latency from the request histogram's buckets.
	const hist = "coinop_http_request_duration_seconds"
	type route struct {
		count, sum float64
		buckets    map[float64]float64 // le → cumulative count
	}
	routes := map[string]*route{}
	get := func(k string) *route {
		r := routes[k]
		if r == nil {
			r = &route{buckets: map[float64]float64{}}
			routes[k] = r
		}
		return r
	}
	f.ResponsesByStatus = map[string]float64{}
	for k, v := range last.Values {
		name := metricName(k)
		if !strings.HasPrefix(name, hist) {
			continue
		}
		d := math.Max(0, v-first.Values[k])
		key := labelValue(k, "method") + " " + labelValue(k, "route")
		switch name {
		case hist + "_count":
			get(key).count += d
			if d > 0 {
				f.ResponsesByStatus[labelValue(k, "status")] += d
			}
		case hist + "_sum":
			get(key).sum += d
		case hist + "_bucket":
			le, err := strconv.ParseFloat(labelValue(k, "le"), 64)
			if err == nil {
				get(key).buckets[le] += d
			}
		}
	}
	for _, k := range sortedKeys(routes) {
		r := routes[k]
		if r.count == 0 || strings.HasSuffix(k, " /metrics") {
			continue
		}
		rf := RouteFigure{Route: k, Requests: r.count, MeanUS: r.sum / r.count * 1e6}
		les := make([]float64, 0, len(r.buckets))
		for le := range r.buckets {
			les = append(les, le)
		}
		sort.Float64s(les)
		for i, le := range les {
			if r.buckets[le] >= 0.99*r.count {
				if math.IsInf(le, 1) {
					if i > 0 {
						rf.P99AboveUS = les[i-1] * 1e6
					}
				} else {
					rf.P99US = le * 1e6
				}
				break
			}
		}
		f.Routes = append(f.Routes, rf)
	}
	return f
}

// WriteText prints the figures under the table.
func (f *ServerFigures) WriteText(w io.Writer) {
	fmt.Fprintf(w, "server (/metrics, %d scrapes): CPU %.2f cores mean, %.2f peak", f.Scrapes, f.CPUCores, f.PeakCores)
	if f.MaxRSSMB > 0 {
		fmt.Fprintf(w, "; RSS %.0f MB", f.MaxRSSMB)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  db pool: %.0f acquires, %.0f waited for a connection", f.PoolAcquires, f.PoolWaits)
	if f.PoolWaits > 0 {
		fmt.Fprintf(w, " (mean wait %s)", formatLatency(time.Duration(f.PoolWaitMeanUS)*time.Microsecond))
	}
	fmt.Fprintf(w, ", at most %.0f of %.0f connections in use\n", f.PoolMaxInUse, f.PoolMaxConns)
	fmt.Fprintf(w, "  cache: hit ratio %.1f%% (%.0f hits, %.0f misses)", 100*f.CacheHitRatio, f.CacheHits, f.CacheMisses)
	if f.CacheBypass > 0 || f.RedisErrors > 0 {
		fmt.Fprintf(w, ", %.0f bypassed, %.0f Redis errors", f.CacheBypass, f.RedisErrors)
	}
	fmt.Fprintln(w)
	if len(f.ResponsesByStatus) > 0 {
		var parts []string
		for _, st := range sortedKeys(f.ResponsesByStatus) {
			parts = append(parts, fmt.Sprintf("%s=%.0f", st, f.ResponsesByStatus[st]))
		}
		fmt.Fprintf(w, "  responses by status: %s\n", strings.Join(parts, ", "))
	}
	for _, r := range f.Routes {
		p99 := "≤ " + formatLatency(time.Duration(r.P99US)*time.Microsecond)
		if r.P99AboveUS > 0 {
			p99 = "> " + formatLatency(time.Duration(r.P99AboveUS)*time.Microsecond)
		}
		fmt.Fprintf(w, "  %-44s %8.0f requests  mean %8s  p99 %s\n", r.Route, r.Requests,
			formatLatency(time.Duration(r.MeanUS)*time.Microsecond), p99)
	}
}
