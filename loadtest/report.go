package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Report is everything a run produced, as written by --out. It holds no
// secrets.
type Report struct {
	Tool       string    `json:"tool"`
	RunID      string    `json:"run_id"`
	Target     string    `json:"target"`
	Model      string    `json:"model"` // open | closed
	Shape      string    `json:"shape"` // the run's settings in one line
	StartedAt  time.Time `json:"started_at"`
	ElapsedMS  int64     `json:"elapsed_ms"`
	WindowMS   int64     `json:"window_ms"` // what rates are computed over
	Players    int       `json:"players"`
	Workers    int       `json:"workers"`
	Scheduled  int64     `json:"scheduled"` // open model: requests that came due
	Sent       int64     `json:"sent"`
	Late       int64     `json:"late"`
	Dropped    int64     `json:"dropped"`
	StopReason string    `json:"stop_reason"` // completed | max_requests | interrupted
	// Config is what --replay needs to run this again.
	Config *RunConfig `json:"config,omitempty"`

	Endpoints []EndpointReport `json:"endpoints"`
	All       EndpointReport   `json:"all"`
	Timeline  []TimelinePoint  `json:"timeline"`

	SLOs     []SLOResult `json:"slos,omitempty"`
	Capacity *Capacity   `json:"capacity,omitempty"` // --find-max
	// Bought counts purchases answered 201 by item or bundle, units.
	Bought map[string]int64 `json:"bought,omitempty"`
	// Server is the server's side, from /metrics during the load phase.
	Server *ServerFigures `json:"server,omitempty"`
	// Chaos summarises the fake store's transactions and refunds.
	Chaos *ChaosSummary `json:"store_chaos,omitempty"`
	// Baseline compares this run with --baseline.
	Baseline     *Comparison   `json:"baseline,omitempty"`
	Verification *Verification `json:"verification,omitempty"`
	Notes        []string      `json:"notes,omitempty"`
}

// EndpointReport summarises one endpoint (or all of them).
type EndpointReport struct {
	Name         string            `json:"name"`
	Count        int64             `json:"count"`
	Rate         float64           `json:"rate"` // per second over the run window
	P50US        int64             `json:"p50_us"`
	P90US        int64             `json:"p90_us"`
	P99US        int64             `json:"p99_us"`
	P999US       int64             `json:"p999_us"`
	MaxUS        int64             `json:"max_us"`
	Errors       int64             `json:"errors"`
	ErrorsByCode map[string]int64  `json:"errors_by_code,omitempty"`
	Distribution []PercentilePoint `json:"distribution"`
	// Histogram is the full HdrHistogram (V2 compressed, base64, in
	// microseconds), so reports from several load machines can be merged
	// exactly rather than by averaging percentiles.
	Histogram string `json:"histogram"`
}

// PercentilePoint is one point of the percentile distribution chart.
type PercentilePoint struct {
	Percentile float64 `json:"percentile"`
	US         int64   `json:"us"`
}

// Endpoint returns the named endpoint's report, All for "all", or nil.
func (r *Report) Endpoint(name string) *EndpointReport {
	if name == EndpointAll {
		return &r.All
	}
	for i := range r.Endpoints {
		if r.Endpoints[i].Name == name {
			return &r.Endpoints[i]
		}
	}
	return nil
}

// Failed reports whether any threshold or verification failed.
func (r *Report) Failed() bool {
	if r.Capacity != nil {
		// A search's steps fail by design; the search fails when no rate
		// held.
		return r.Capacity.MaxRate == 0 || (r.Verification != nil && !r.Verification.OK)
	}
	for _, s := range r.SLOs {
		if !s.OK {
			return true
		}
	}
	return r.Verification != nil && !r.Verification.OK
}

// FailureReasons names everything that failed: each broken threshold with
// its measurement, verification problems, a search that sustained nothing.
func (r *Report) FailureReasons() []string {
	var out []string
	if r.Capacity != nil {
		if r.Capacity.MaxRate == 0 {
			out = append(out, "no rate was sustained")
		}
	} else {
		for _, s := range r.SLOs {
			if !s.OK {
				out = append(out, fmt.Sprintf("%s (measured %s)", s.SLO.Threshold(), s.Actual))
			}
		}
	}
	if v := r.Verification; v != nil && !v.OK {
		out = append(out, fmt.Sprintf("verification found %d problems", len(v.Problems)))
	}
	return out
}

// NewReport summarises a load phase.
func NewReport(cfg Config, fx *Fixture, res *Result) *Report {
	r := &Report{
		Tool:      "coinop loadtest",
		RunID:     cfg.RunID,
		Target:    cfg.URL,
		Model:     res.Model,
		Shape:     cfg.Describe(),
		StartedAt: res.Start.UTC().Round(time.Millisecond),
		ElapsedMS: res.Elapsed.Milliseconds(),
		WindowMS:  res.Window.Milliseconds(),
		Players:   len(fx.Players),
		Workers:   res.Workers,
		Scheduled: res.Scheduled,
		Sent:      res.Sent,
		Late:      res.Late,
		Dropped:   res.Dropped,
		Timeline:  res.Timeline,
	}
	rc := NewRunConfig(cfg, fx)
	r.Config = &rc
	r.Bought = res.Bought
	r.Server = res.Server
	if res.Server == nil && res.MetricsError != nil {
		r.Notes = append(r.Notes, "server figures unavailable: "+res.MetricsError.Error())
	}
	switch {
	case res.Interrupted:
		r.StopReason = "interrupted"
	case res.BudgetExhausted:
		r.StopReason = "max_requests"
	default:
		r.StopReason = "completed"
	}
	for _, name := range res.Stats.Names() {
		r.Endpoints = append(r.Endpoints, SummarizeEndpoint(name, res.Stats[name], res.Window))
	}
	r.All = SummarizeEndpoint(EndpointAll, res.Stats.All(), res.Window)
	r.Notes = append(r.Notes, fx.Notes...)
	if res.Dropped > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d requests were dropped, never sent, because every worker was busy and the queue was full: the server (or this machine) could not keep up with the schedule; raise --workers or lower the rate", res.Dropped))
	}
	if res.Late > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d requests started more than %s after their due time (workers busy or this machine slow); their latency includes the wait", res.Late, LateThreshold))
	}
	if res.Substituted > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("%d purchases became wallet reads because their player had reached max_per_player on every offer; use more --players for a purchase-heavy run", res.Substituted))
	}
	var limited int64
	for _, e := range r.Endpoints {
		limited += e.ErrorsByCode["rate_limited"]
	}
	if limited > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the server rate-limited %d requests (429 rate_limited): all load comes from this one IP and from few players; "+
			"to measure capacity rather than the limiter, run the server with COINOP_RATE_LIMIT=off or higher limits, or use more --players", limited))
	}
	r.SLOs = EvaluateSLOs(cfg.SLOs, r)
	return r
}

// distributionPercentiles are spaced evenly in "nines" (0.9, 0.99, 0.999 …)
// so the chart shows the tail as clearly as the median.
var distributionPercentiles = func() []float64 {
	ps := []float64{0, 10, 20, 30, 40, 50, 60, 70, 80}
	for n := 1.0; n <= 5.0001; n += 0.125 {
		ps = append(ps, 100*(1-math.Pow(10, -n)))
	}
	return append(ps, 100)
}()

// SummarizeEndpoint turns stats into an endpoint report, rates computed
// over window.
func SummarizeEndpoint(name string, s *EndpointStats, window time.Duration) EndpointReport {
	e := EndpointReport{
		Name:   name,
		Count:  s.Count(),
		P50US:  s.Hist.ValueAtQuantile(50),
		P90US:  s.Hist.ValueAtQuantile(90),
		P99US:  s.Hist.ValueAtQuantile(99),
		P999US: s.Hist.ValueAtQuantile(99.9),
		MaxUS:  s.Max().Microseconds(),
		Errors: s.ErrorCount(),
	}
	if window > 0 {
		e.Rate = float64(e.Count) / window.Seconds()
	}
	if len(s.Errors) > 0 {
		e.ErrorsByCode = map[string]int64{}
		for c, n := range s.Errors {
			e.ErrorsByCode[c] = n
		}
	}
	if e.Count > 0 {
		vals := s.Hist.ValueAtPercentilesSlice(distributionPercentiles)
		for i, p := range distributionPercentiles {
			// Beyond 1/count the percentile is just the maximum again.
			if p > 0 && p < 100 && (100-p)/100*float64(e.Count) < 1 {
				continue
			}
			e.Distribution = append(e.Distribution, PercentilePoint{Percentile: p, US: vals[i]})
		}
	}
	if enc, err := s.Hist.Encode(hdrhistogram.V2CompressedEncodingCookieBase); err == nil {
		e.Histogram = string(enc)
	}
	return e
}

// DecodeHistogram returns the endpoint's full histogram from the report.
func (e *EndpointReport) DecodeHistogram() (*hdrhistogram.Histogram, error) {
	if e.Histogram == "" {
		return nil, fmt.Errorf("endpoint %s: report has no histogram", e.Name)
	}
	return hdrhistogram.Decode([]byte(e.Histogram))
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport parses a report written by WriteJSON.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	if err := json.NewDecoder(rd).Decode(&r); err != nil {
		return nil, fmt.Errorf("reading report: %w", err)
	}
	return &r, nil
}

// WriteTable prints the per-endpoint table, then the notes, thresholds and
// verification.
func (r *Report) WriteTable(w io.Writer) {
	fmt.Fprintf(w, "\n%s: %d requests in %s (%s)", r.Target, r.All.Count, (time.Duration(r.WindowMS) * time.Millisecond).Round(10*time.Millisecond), r.StopReason)
	if r.Model == "open" {
		fmt.Fprintf(w, "; scheduled %d, late %d, dropped %d", r.Scheduled, r.Late, r.Dropped)
	}
	fmt.Fprintln(w)
	// Numbers read best right-aligned; names are padded to one width so
	// they line up on the left all the same.
	width := len("endpoint")
	for _, e := range r.Endpoints {
		width = max(width, len(e.Name))
	}
	pad := func(s string) string { return s + strings.Repeat(" ", width-len(s)) }
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tcount\trate/s\tp50\tp90\tp99\tp99.9\tmax\terrors\t\n", pad("endpoint"))
	row := func(e EndpointReport) {
		errs := "0"
		if e.Errors > 0 {
			errs = fmt.Sprintf("%d (%s)", e.Errors, formatPercent(100*float64(e.Errors)/float64(e.Count)))
		}
		us := func(v int64) string { return formatLatency(time.Duration(v) * time.Microsecond) }
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			pad(e.Name), e.Count, e.Rate, us(e.P50US), us(e.P90US), us(e.P99US), us(e.P999US), us(e.MaxUS), errs)
	}
	for _, e := range r.Endpoints {
		row(e)
	}
	row(r.All)
	tw.Flush()

	var codes []string
	for _, e := range r.Endpoints {
		for _, c := range sortedKeys(e.ErrorsByCode) {
			codes = append(codes, fmt.Sprintf("%s %s=%d", e.Name, c, e.ErrorsByCode[c]))
		}
	}
	if len(codes) > 0 {
		fmt.Fprintf(w, "errors by code: %s\n", strings.Join(codes, ", "))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	if len(r.SLOs) > 0 {
		fmt.Fprintln(w, "thresholds:")
		for _, s := range r.SLOs {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if r.Server != nil {
		r.Server.WriteText(w)
	}
	if r.Baseline != nil {
		r.Baseline.WriteText(w)
	}
	if r.Capacity != nil {
		r.Capacity.WriteText(w)
	}
	if r.Chaos != nil {
		r.Chaos.WriteText(w)
	}
	if v := r.Verification; v != nil {
		v.WriteText(w)
	}
}
