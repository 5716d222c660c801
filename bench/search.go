package main

import (
	"context"
	"fmt"
	"math"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Measurement is one fixed-rate run of one tool against one target.
type Measurement struct {
	Target   float64 `json:"target"`   // requests per second asked for
	Achieved float64 `json:"achieved"` // requests completed per second
	Requests int64   `json:"requests"` // completed, errors included
	// Executed counts every request the run sent, including a warm-up
	// left out of the statistics; CPU per request divides by it.
	Executed int64         `json:"executed,omitempty"`
	Errors   int64         `json:"errors"`  // wrong answer, failure or timeout
	Dropped  int64         `json:"dropped"` // due but never sent: the generator's pool was full
	P50      time.Duration `json:"p50"`
	P99      time.Duration `json:"p99"`
	// Window is the time rates are computed over.
	Window time.Duration `json:"window"`
	// Poisson marks a generator that spaces requests at random (pgbench
	// --rate): how many it sends in a window varies around the target.
	Poisson bool `json:"poisson,omitempty"`
	// GeneratorCPU is the CPU time the load generator's process used.
	GeneratorCPU time.Duration `json:"generator_cpu"`
}

// executed is Executed, or Requests when the run had no warm-up.
func (m Measurement) executed() int64 { return max(m.Executed, m.Requests) }

func (m *Measurement) fromHistogram(h *hdrhistogram.Histogram, window time.Duration) {
	m.Window = window
	if window > 0 {
		m.Achieved = float64(m.Requests) / window.Seconds()
	}
	if h.TotalCount() > 0 {
		m.P50 = time.Duration(h.ValueAtQuantile(50)) * time.Microsecond
		m.P99 = time.Duration(h.ValueAtQuantile(99)) * time.Microsecond
	}
}

// Limits under which a rate counts as sustained.
const (
	maxErrorShare  = 0.001 // errors and dropped requests, of all due
	minRateAchieve = 0.95  // completed per second, of the target rate
)

// Sustained reports whether m kept up with its rate within slo: p99 at or
// under slo, at most 0.1% errors or dropped requests, and at least 95% of
// the target rate completed. The reason says what failed.
func (m Measurement) Sustained(slo time.Duration) (bool, string) {
	due := m.Requests + m.Dropped
	need := minRateAchieve * m.Target
	if n := m.Target * m.Window.Seconds(); m.Poisson && n > 0 {
		// A Poisson count has standard deviation √n: allow three of them
		// below the mean before calling it a shortfall.
		need = math.Min(need, (n-3*math.Sqrt(n))/m.Window.Seconds())
	}
	switch {
	case due == 0:
		return false, "no requests completed"
	case float64(m.Errors+m.Dropped) > maxErrorShare*float64(due):
		return false, fmt.Sprintf("%d errors, %d dropped of %d", m.Errors, m.Dropped, due)
	case m.P99 > slo:
		return false, fmt.Sprintf("p99 %s > %s", fmtDuration(m.P99), fmtDuration(slo))
	case m.Achieved < need:
		return false, fmt.Sprintf("achieved %.0f/s of %.0f/s", m.Achieved, m.Target)
	}
	return true, ""
}

// Step is one run of a search.
type Step struct {
	Rate   float64     `json:"rate"`
	OK     bool        `json:"ok"`
	Reason string      `json:"reason,omitempty"` // why it was not sustained
	M      Measurement `json:"measurement"`
}

// Search finds the highest rate a target sustains: it doubles from Start
// until a rate fails (or halves until one passes), then bisects
// geometrically between the highest pass and the lowest failure above it
// until they are within Precision of each other. Every step is a real run,
// so the search is bounded by MaxSteps as well.
type Search struct {
	Start     float64
	Floor     float64 // give up below this rate
	Cap       float64 // never ask for more than this
	Precision float64 // stop when lowest failure / highest pass <= 1 + Precision
	MaxSteps  int
}

// Next returns the next rate to try after steps, or done. It is pure, so
// the search can be tested without running anything.
func (s Search) Next(steps []Step) (rate float64, done bool) {
	if len(steps) == 0 {
		return math.Round(s.Start), false
	}
	if len(steps) >= s.MaxSteps {
		return 0, true
	}
	lo, hi := bracket(steps)
	var next float64
	switch {
	case math.IsInf(hi, 1):
		if lo >= s.Cap {
			return 0, true
		}
		next = math.Min(lo*2, s.Cap)
	case lo == 0:
		next = hi / 2
		if next < s.Floor {
			return 0, true
		}
	default:
		if hi/lo <= 1+s.Precision {
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

// bracket returns the highest sustained rate (0 if none) and the lowest
// failed rate above it (+Inf if none). A failure below a pass is noise the
// pass outranks: the target did sustain the higher rate once.
func bracket(steps []Step) (lo, hi float64) {
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

// MaxSustained is the highest rate sustained in steps (0 if none), and
// whether it is only a lower bound because the search reached cap.
func MaxSustained(steps []Step, cap float64) (float64, bool) {
	lo, hi := bracket(steps)
	return lo, math.IsInf(hi, 1) && lo >= cap
}

// runner runs a target at a fixed rate for a duration.
type runner interface {
	Run(ctx context.Context, rate float64, d time.Duration) (Measurement, error)
}

// searcher is one search in progress against one runner.
type searcher struct {
	s     Search
	r     runner
	label string
	slo   time.Duration
	steps []Step
	done  bool
}

// step runs the search's next rate. A rate that fails is run once more
// before it counts as failed: on a shared 2-core machine a burst of
// unrelated work can spoil one short run's p99, while nothing can make a run
// look faster than the target is, so the better of two runs is the fairer
// reading.
func (x *searcher) step(ctx context.Context, d, settle time.Duration, log func(string, ...any)) error {
	rate, done := x.s.Next(x.steps)
	if done {
		x.done = true
		return nil
	}
	for attempt := 1; attempt <= 2; attempt++ {
		m, err := x.r.Run(ctx, rate, d)
		if err != nil {
			return fmt.Errorf("%s at %.0f/s: %w", x.label, rate, err)
		}
		ok, why := m.Sustained(x.slo)
		x.steps = append(x.steps, Step{Rate: rate, OK: ok, Reason: why, M: m})
		verdict := "ok"
		if !ok {
			verdict = "no: " + why
		}
		log("  %-28s %8.0f/s  got %8.0f/s  p50 %8s  p99 %8s  %s", x.label, rate, m.Achieved, fmtDuration(m.P50), fmtDuration(m.P99), verdict)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(settle):
		}
		if ok {
			break
		}
	}
	return nil
}

// runSearches advances the searches in turns, one rate each, until all are
// done: a baseline and coinop are measured side by side, so a stretch of
// unrelated load on the machine falls on both rather than on whichever ran
// then.
func runSearches(ctx context.Context, xs []*searcher, d, settle time.Duration, log func(string, ...any)) error {
	for {
		busy := false
		for _, x := range xs {
			if x.done {
				continue
			}
			if err := x.step(ctx, d, settle, log); err != nil {
				return err
			}
			busy = busy || !x.done
		}
		if !busy {
			return nil
		}
	}
}
