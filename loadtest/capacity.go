package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// Capacity mode (--find-max) answers "how much can it take": it runs short
// fixed-rate steps and searches for the highest arrival rate at which every
// --slo holds and the tool itself kept up. The search is the one `make
// bench` uses (bench/search.go; reimplemented here, since this package
// imports nothing from the module): double from the start rate until a step
// fails (or halve until one passes), then bisect geometrically between the
// highest pass and the lowest failure above it until they are within the
// precision of each other.

// CapacityOptions shape the search.
type CapacityOptions struct {
	Step      time.Duration // length of each fixed-rate step
	Start     float64       // first rate tried (--rate)
	Cap       float64       // never ask for more than this
	Floor     float64       // give up below this
	Precision float64       // stop when lowest failure / highest pass <= 1 + Precision
	MaxSteps  int
	RPM       float64 // requests per player per minute, for the CCU figure
	CCU       int64   // expected peak concurrent players, for the headroom (0: none stated)
}

// DefaultCapacity are the search settings unless flags say otherwise.
func DefaultCapacity() CapacityOptions {
	return CapacityOptions{Step: 10 * time.Second, Cap: 50_000, Floor: 1, Precision: 0.05, MaxSteps: 14, RPM: 6}
}

// maxDroppedShare is how many scheduled requests a step may drop (never
// sent, every worker busy) and still count: a step the tool could not send
// measured the tool, not the server.
const maxDroppedShare = 0.001

// CapacityStep is one fixed-rate step of the search.
type CapacityStep struct {
	Rate     float64  `json:"rate"`
	OK       bool     `json:"ok"`
	Achieved float64  `json:"achieved"` // completed requests per second
	P50US    int64    `json:"p50_us"`
	P99US    int64    `json:"p99_us"`
	Errors   int64    `json:"errors"`
	Requests int64    `json:"requests"`
	Dropped  int64    `json:"dropped"`
	Failed   []string `json:"failed,omitempty"` // what broke: thresholds and shortfalls
}

// Capacity is the search's answer.
type Capacity struct {
	Steps []CapacityStep `json:"steps"`
	// MaxRate is the highest rate sustained (0: none); FirstFailure the
	// lowest rate above it that failed (0: none, the search hit its cap).
	MaxRate      float64  `json:"max_rate"`
	FirstFailure float64  `json:"first_failure,omitempty"`
	BrokeFirst   []string `json:"broke_first,omitempty"` // what failed at FirstFailure
	RPM          float64  `json:"requests_per_player_per_minute"`
	CCU          int64    `json:"ccu"` // players MaxRate serves at RPM
	ExpectedCCU  int64    `json:"expected_ccu,omitempty"`
	// Headroom is MaxRate over the rate ExpectedCCU players send, minus
	// one: 0.5 means 50% more than the expected peak.
	Headroom *float64 `json:"headroom,omitempty"`
	AtCap    bool     `json:"at_cap,omitempty"`
}

// nextRate returns the next rate to try after steps, or done. It is pure,
// so the search is tested without running anything.
func (o CapacityOptions) nextRate(steps []CapacityStep) (float64, bool) {
	if len(steps) == 0 {
		return math.Round(o.Start), false
	}
	if len(steps) >= o.MaxSteps {
		return 0, true
	}
	lo, hi := capacityBracket(steps)
	var next float64
	switch {
	case math.IsInf(hi, 1):
		if lo >= o.Cap {
			return 0, true
		}
		next = math.Min(lo*2, o.Cap)
	case lo == 0:
		next = hi / 2
		if next < o.Floor {
			return 0, true
		}
	default:
		if hi/lo <= 1+o.Precision {
			return 0, true
		}
		next = math.Sqrt(lo * hi)
	}
	next = math.Round(next)
	if next <= lo || next >= hi {
		return 0, true // rounding left nothing between them
	}
	return next, false
}

// capacityBracket returns the highest sustained rate (0 if none) and the
// lowest failed rate above it (+Inf if none). A failure below a pass is
// noise the pass outranks: the target did sustain the higher rate once.
func capacityBracket(steps []CapacityStep) (lo, hi float64) {
	hi = math.Inf(1)
	for _, st := range steps {
		if st.OK && st.Rate > lo {
			lo = st.Rate
		}
	}
	for _, st := range steps {
		if !st.OK && st.Rate > lo && st.Rate < hi {
			hi = st.Rate
		}
	}
	return lo, hi
}

// judgeStep says whether a step's report sustained its rate, and if not
// what broke.
func judgeStep(rate float64, r *Report) CapacityStep {
	st := CapacityStep{Rate: rate, Requests: r.All.Count, Errors: r.All.Errors, Dropped: r.Dropped, P50US: r.All.P50US, P99US: r.All.P99US}
	if r.WindowMS > 0 {
		st.Achieved = float64(r.All.Count) / (float64(r.WindowMS) / 1000)
	}
	for _, s := range r.SLOs {
		if !s.OK {
			st.Failed = append(st.Failed, fmt.Sprintf("%s (measured %s)", s.SLO.Threshold(), s.Actual))
		}
	}
	if r.Scheduled > 0 && float64(r.Dropped) > maxDroppedShare*float64(r.Scheduled) {
		st.Failed = append(st.Failed, fmt.Sprintf("the tool dropped %d of %d requests (every worker busy): raise --workers, or the server is queueing", r.Dropped, r.Scheduled))
	}
	if r.All.Count == 0 {
		st.Failed = append(st.Failed, "no requests completed")
	}
	st.OK = len(st.Failed) == 0
	return st
}

// summarize turns the steps into the answer.
func (o CapacityOptions) summarize(steps []CapacityStep) *Capacity {
	c := &Capacity{Steps: steps, RPM: o.RPM, ExpectedCCU: o.CCU}
	lo, hi := capacityBracket(steps)
	c.MaxRate = lo
	if !math.IsInf(hi, 1) {
		c.FirstFailure = hi
		for _, st := range steps {
			if st.Rate == hi && !st.OK {
				c.BrokeFirst = st.Failed
				break
			}
		}
	} else {
		c.AtCap = lo >= o.Cap
	}
	if o.RPM > 0 {
		c.CCU = int64(math.Floor(lo * 60 / o.RPM))
	}
	if o.CCU > 0 && o.RPM > 0 {
		h := lo/(float64(o.CCU)*o.RPM/60) - 1
		c.Headroom = &h
	}
	return c
}

// WriteText prints the answer.
func (c *Capacity) WriteText(w io.Writer) {
	fmt.Fprintln(w, "capacity:")
	if c.MaxRate == 0 {
		fmt.Fprintln(w, "  no rate was sustained")
	} else {
		fmt.Fprintf(w, "  highest sustained rate: %.0f req/s", c.MaxRate)
		switch {
		case c.FirstFailure > 0:
			fmt.Fprintf(w, " (%.0f req/s failed)\n", c.FirstFailure)
		case c.AtCap:
			fmt.Fprintln(w, " (the search cap: the limit is higher)")
		default:
			fmt.Fprintln(w, " (the search ran out of steps before a rate failed)")
		}
		fmt.Fprintf(w, "  CCU: %d players at %g requests per player per minute\n", c.CCU, c.RPM)
	}
	if c.Headroom != nil {
		fmt.Fprintf(w, "  headroom: %+.0f%% over the expected %d CCU (%.0f req/s)\n", 100**c.Headroom, c.ExpectedCCU, float64(c.ExpectedCCU)*c.RPM/60)
	}
	if len(c.BrokeFirst) > 0 {
		fmt.Fprintf(w, "  broke first at %.0f req/s: %s\n", c.FirstFailure, strings.Join(c.BrokeFirst, "; "))
	}
}

// stepLine is the progress line of one finished step.
func (st CapacityStep) line() string {
	verdict := "ok"
	if !st.OK {
		verdict = "FAIL: " + strings.Join(st.Failed, "; ")
	}
	us := func(v int64) string { return formatLatency(time.Duration(v) * time.Microsecond) }
	return fmt.Sprintf("step %8.0f req/s: got %8.1f/s  p50 %8s  p99 %8s  errors %d/%d  %s",
		st.Rate, st.Achieved, us(st.P50US), us(st.P99US), st.Errors, st.Requests, verdict)
}

// FindMax runs the capacity search with the players and catalog setup
// prepared, one fixed-rate step after another. It returns the report of
// the highest sustained step (or of the last step when none held) with the
// search's answer in Capacity. It returns an error when a step cannot run.
func FindMax(ctx context.Context, cfg Config, fx *Fixture, c *Client, obs *Observed, progress io.Writer) (*Report, error) {
	o := cfg.Capacity
	if len(cfg.SLOs) == 0 {
		return nil, errors.New("--find-max needs --slo: the thresholds decide which rates are sustained")
	}
	var (
		steps []CapacityStep
		best  *Report
		last  *Report
	)
	for {
		rate, done := o.nextRate(steps)
		if done || ctx.Err() != nil {
			break
		}
		// A rate that fails is run once more before it counts as failed,
		// as make bench does: a burst of unrelated work on the load machine
		// can spoil one short step, while nothing makes a step look better
		// than the server is, so the better of two is the fairer reading.
		var st CapacityStep
		for attempt := 1; attempt <= 2; attempt++ {
			sc := cfg
			sc.Rate, sc.Stages, sc.Duration = rate, nil, o.Step
			sc.step = fmt.Sprintf("s%d.%d.", len(steps)+1, attempt)
			sc.Workers = sc.PoolSize()
			res, err := Run(ctx, sc, fx, c, obs, nil)
			if err != nil {
				return nil, fmt.Errorf("step at %.0f req/s: %w", rate, err)
			}
			r := NewReport(sc, fx, res)
			last = r
			if res.Interrupted {
				r.Notes = append(r.Notes, fmt.Sprintf("interrupted during the step at %.0f req/s", rate))
				break
			}
			st = judgeStep(rate, r)
			if progress != nil {
				fmt.Fprintln(progress, st.line())
			}
			if st.OK {
				if best == nil || rate > best.Config.Rate {
					best = r
				}
				break
			}
		}
		if ctx.Err() != nil {
			break
		}
		steps = append(steps, st)
	}
	r := best
	if r == nil {
		r = last
	}
	if r == nil {
		return nil, errors.New("the search ran no step")
	}
	r.Capacity = o.summarize(steps)
	r.Shape = fmt.Sprintf("capacity search, %s steps from %.0f req/s; this report is the step at %.0f req/s; %s",
		o.Step, o.Start, r.Config.Rate, r.Shape)
	return r, nil
}
