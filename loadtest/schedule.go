package loadtest

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Stage is one segment of an open-model run: over Duration the arrival rate
// moves linearly from the previous stage's Target (or the scheduler's start
// rate) to this Target, in requests per second. A zero Duration changes the
// rate in a step without adding time.
type Stage struct {
	Duration time.Duration `json:"duration"`
	Target   float64       `json:"target"`
}

// ParseStages parses the --stages syntax "30s:100,60s:400": comma-separated
// duration:rate pairs, durations in Go syntax. It returns an error naming the
// first bad pair.
func ParseStages(s string) ([]Stage, error) {
	if strings.TrimSpace(s) == "" {
		return nil, errors.New("no stages")
	}
	var stages []Stage
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		d, r, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("stage %q: want duration:rate, e.g. 30s:100", part)
		}
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || dur < 0 {
			return nil, fmt.Errorf("stage %q: bad duration %q", part, d)
		}
		rate, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(r), "/s"), 64)
		if err != nil || rate < 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
			return nil, fmt.Errorf("stage %q: bad rate %q", part, r)
		}
		stages = append(stages, Stage{Duration: dur, Target: rate})
	}
	return stages, nil
}

// Scheduler says when each request of an open-model run is due. It is a pure
// function of the request's index, so the schedule can be tested exactly and
// no request's due time depends on how late an earlier one was sent.
//
// With rate r(t) piecewise linear, the expected number of arrivals by time t
// is N(t) = ∫r; request i is due at the t where N(t) = i. A constant rate r
// therefore gives i/r exactly, starting at 0.
type Scheduler struct {
	start   float64   // rate at time 0
	stages  []Stage   // as given, zero-duration stages included
	offsets []float64 // seconds at which each stage begins
	counts  []float64 // N at the beginning of each stage
	from    []float64 // rate at the beginning of each stage
	total   float64   // N at the end of the last stage
	end     time.Duration
}

// NewScheduler returns a scheduler that starts at startRate and follows
// stages. It returns an error for no stages, negative or non-finite rates, a
// negative duration, or a schedule that would never send a request.
func NewScheduler(startRate float64, stages []Stage) (*Scheduler, error) {
	if len(stages) == 0 {
		return nil, errors.New("scheduler: no stages")
	}
	if startRate < 0 || math.IsInf(startRate, 0) || math.IsNaN(startRate) {
		return nil, fmt.Errorf("scheduler: bad start rate %v", startRate)
	}
	s := &Scheduler{start: startRate, stages: stages}
	rate, n, off := startRate, 0.0, time.Duration(0)
	for _, st := range stages {
		if st.Duration < 0 || st.Target < 0 || math.IsInf(st.Target, 0) || math.IsNaN(st.Target) {
			return nil, fmt.Errorf("scheduler: bad stage %v:%v", st.Duration, st.Target)
		}
		s.offsets = append(s.offsets, off.Seconds())
		s.counts = append(s.counts, n)
		s.from = append(s.from, rate)
		n += (rate + st.Target) / 2 * st.Duration.Seconds()
		off += st.Duration
		rate = st.Target
	}
	// Rounding to a nanorequest keeps 200/s × 30s at exactly 6000 instead of
	// 6000.000000001, which would schedule a request at the very end.
	s.total = math.Round(n*1e9) / 1e9
	s.end = off
	if s.end <= 0 {
		return nil, errors.New("scheduler: total duration is zero")
	}
	if s.total <= 0 {
		return nil, errors.New("scheduler: the stages never send a request (all rates are zero)")
	}
	return s, nil
}

// ConstantRate returns a scheduler sending rate requests per second for d.
func ConstantRate(rate float64, d time.Duration) (*Scheduler, error) {
	return NewScheduler(rate, []Stage{{Duration: d, Target: rate}})
}

// Duration is the length of the whole schedule.
func (s *Scheduler) Duration() time.Duration { return s.end }

// Total is the number of requests the schedule sends: every i with
// At(i) inside [0, Duration).
func (s *Scheduler) Total() int64 { return int64(math.Ceil(s.total)) }

// Peak is the highest rate the schedule reaches, for sizing the worker pool.
func (s *Scheduler) Peak() float64 {
	p := s.start
	for _, st := range s.stages {
		p = math.Max(p, st.Target)
	}
	return p
}

// RateAt is the target arrival rate at offset t, for the report.
func (s *Scheduler) RateAt(t time.Duration) float64 {
	if t < 0 || t >= s.end {
		return 0
	}
	sec := t.Seconds()
	// The last stage starting at or before t; zero-length stages share
	// their offset with the next one, so they are skipped the same way.
	k := sort.Search(len(s.offsets), func(k int) bool { return s.offsets[k] > sec }) - 1
	st := s.stages[k]
	f := (sec - s.offsets[k]) / st.Duration.Seconds()
	return s.from[k] + (st.Target-s.from[k])*f
}

// Expected is N(t), the number of requests due in [0, t): the schedule's
// integral, which the report draws as the target rate.
func (s *Scheduler) Expected(t time.Duration) float64 {
	switch {
	case t <= 0:
		return 0
	case t >= s.end:
		return s.total
	}
	sec := t.Seconds()
	k := sort.Search(len(s.offsets), func(k int) bool { return s.offsets[k] > sec }) - 1
	st := s.stages[k]
	d := st.Duration.Seconds()
	tau := math.Min(sec-s.offsets[k], d)
	r0 := s.from[k]
	return s.counts[k] + r0*tau + (st.Target-r0)/(2*d)*tau*tau
}

// At returns when request i is due, as an offset from the start of the run,
// and false when i is past the end of the schedule.
func (s *Scheduler) At(i int64) (time.Duration, bool) {
	if i < 0 || float64(i) >= s.total {
		return 0, false
	}
	x := float64(i)
	// The last stage starting at or before arrival i. Stages that add no
	// arrivals (steps, or zero rate throughout) share their starting count
	// with the next stage, so taking the last match skips them.
	k := sort.Search(len(s.counts), func(k int) bool { return s.counts[k] > x }) - 1
	st := s.stages[k]
	r0, r1 := s.from[k], st.Target
	d := st.Duration.Seconds()
	m := x - s.counts[k] // arrivals into this stage
	var tau float64
	switch {
	case r0 == r1 && r0 == 0:
		tau = d // defensive: a silent stage holds no arrivals; place at its end
	case r0 == r1:
		tau = m / r0
	default:
		// Solve r0·τ + a·τ² = m with a = (r1-r0)/(2d). The form
		// 2m / (r0 + √(r0² + 4am)) avoids cancellation when a is tiny and
		// stays valid for a falling rate (a < 0).
		a := (r1 - r0) / (2 * d)
		disc := math.Max(0, r0*r0+4*a*m)
		den := r0 + math.Sqrt(disc)
		if den == 0 {
			tau = 0
		} else {
			tau = 2 * m / den
		}
	}
	at := time.Duration(math.Round((s.offsets[k] + tau) * 1e9))
	if at >= s.end {
		return 0, false
	}
	return at, true
}
