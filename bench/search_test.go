package main

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// simulate runs s against a target that sustains every rate up to capacity,
// returning the steps.
func simulate(t *testing.T, s Search, sustains func(rate float64) bool) []Step {
	t.Helper()
	var steps []Step
	for {
		rate, done := s.Next(steps)
		if done {
			return steps
		}
		if len(steps) > 100 {
			t.Fatalf("search did not stop: %+v", steps)
		}
		for _, st := range steps {
			if st.Rate == rate {
				t.Fatalf("rate %v tried twice: %+v", rate, steps)
			}
		}
		steps = append(steps, Step{Rate: rate, OK: sustains(rate)})
	}
}

func TestSearchFindsTheCapacityWithinItsPrecision(t *testing.T) {
	s := Search{Start: 250, Floor: 10, Cap: 200_000, Precision: 0.1, MaxSteps: 20}
	for _, capacity := range []float64{260, 999, 1000, 1700, 3333, 12_345, 150_000} {
		steps := simulate(t, s, func(r float64) bool { return r <= capacity })
		got, capped := MaxSustained(steps, s.Cap)
		if capped {
			t.Errorf("capacity %v: reported as capped", capacity)
		}
		if got > capacity || got < capacity/(1+s.Precision)-1 {
			t.Errorf("capacity %v: found %v in %d steps (%+v)", capacity, got, len(steps), steps)
		}
	}
}

func TestSearchHalvesWhenTheFirstRateFails(t *testing.T) {
	s := Search{Start: 1000, Floor: 10, Cap: 200_000, Precision: 0.1, MaxSteps: 20}
	steps := simulate(t, s, func(r float64) bool { return r <= 140 })
	if steps[1].Rate != 500 || steps[2].Rate != 250 {
		t.Fatalf("want halving after a failure, got %+v", steps)
	}
	if got, _ := MaxSustained(steps, s.Cap); got > 140 || got < 127 {
		t.Fatalf("found %v, want about 140", got)
	}
}

func TestSearchGivesUpBelowTheFloor(t *testing.T) {
	s := Search{Start: 100, Floor: 10, Cap: 200_000, Precision: 0.1, MaxSteps: 20}
	steps := simulate(t, s, func(float64) bool { return false })
	if got, _ := MaxSustained(steps, s.Cap); got != 0 {
		t.Fatalf("max %v, want 0", got)
	}
	if last := steps[len(steps)-1].Rate; last < s.Floor {
		t.Fatalf("tried %v, below the floor", last)
	}
}

func TestSearchStopsAtTheCapAndSaysSo(t *testing.T) {
	s := Search{Start: 1000, Floor: 10, Cap: 5000, Precision: 0.1, MaxSteps: 20}
	steps := simulate(t, s, func(float64) bool { return true })
	got, capped := MaxSustained(steps, s.Cap)
	if got != 5000 || !capped {
		t.Fatalf("max %v capped %v, want 5000 capped (%+v)", got, capped, steps)
	}
}

func TestSearchIsBoundedByMaxSteps(t *testing.T) {
	s := Search{Start: 1, Floor: 0.1, Cap: 1e12, Precision: 0.001, MaxSteps: 6}
	steps := simulate(t, s, func(r float64) bool { return r < 1e9 })
	if len(steps) != 6 {
		t.Fatalf("%d steps, want 6", len(steps))
	}
}

func TestSearchTrustsAPassAboveAFailure(t *testing.T) {
	// A noisy failure at 1000 below a pass at 2000: the bracket is
	// [2000, 4000), not [0, 1000).
	steps := []Step{{Rate: 1000, OK: false}, {Rate: 2000, OK: true}, {Rate: 4000, OK: false}}
	lo, hi := bracket(steps)
	if lo != 2000 || hi != 4000 {
		t.Fatalf("bracket [%v, %v), want [2000, 4000)", lo, hi)
	}
	s := Search{Start: 1000, Floor: 10, Cap: 1e6, Precision: 0.1, MaxSteps: 20}
	if next, done := s.Next(steps); done || math.Abs(next-2828) > 1 {
		t.Fatalf("next %v done %v, want the geometric middle 2828", next, done)
	}
}

func TestSustained(t *testing.T) {
	ok := Measurement{Target: 1000, Achieved: 990, Requests: 3000, P99: 4 * time.Millisecond}
	tests := []struct {
		name string
		m    func(Measurement) Measurement
		why  string // "" for sustained
	}{
		{"a run within every limit is sustained", func(m Measurement) Measurement { return m }, ""},
		{"p99 exactly at the SLO is sustained", func(m Measurement) Measurement { m.P99 = 5 * time.Millisecond; return m }, ""},
		{"p99 over the SLO is not", func(m Measurement) Measurement { m.P99 = 5*time.Millisecond + 1; return m }, "p99"},
		{"errors over 0.1% are not", func(m Measurement) Measurement { m.Errors = 4; return m }, "errors"},
		{"errors at 0.1% are", func(m Measurement) Measurement { m.Errors = 3; return m }, ""},
		{"dropped requests count as errors", func(m Measurement) Measurement { m.Dropped = 10; return m }, "dropped"},
		{"serving under 95% of the rate is not", func(m Measurement) Measurement { m.Achieved = 940; return m }, "achieved"},
		{"no requests is not", func(m Measurement) Measurement { return Measurement{Target: 10} }, "no requests"},
		{"a Poisson count 3σ short is", func(m Measurement) Measurement {
			// 1000/s for 3 s: mean 3000, σ ≈ 55, so 2836 is within 3σ.
			m.Poisson, m.Window, m.Achieved = true, 3*time.Second, 2836.0/3
			return m
		}, ""},
		{"a Poisson count far short is not", func(m Measurement) Measurement {
			m.Poisson, m.Window, m.Achieved = true, 3*time.Second, 2700.0/3
			return m
		}, "achieved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, why := tt.m(ok).Sustained(5 * time.Millisecond)
			if got != (tt.why == "") || !strings.Contains(why, tt.why) {
				t.Fatalf("Sustained = %v, %q; want reason containing %q", got, why, tt.why)
			}
		})
	}
}

// flakyRunner sustains rates up to capacity, except that the first run at
// each rate in flaky fails its p99.
type flakyRunner struct {
	capacity float64
	flaky    map[float64]bool
	runs     []float64
}

func (f *flakyRunner) Run(_ context.Context, rate float64, _ time.Duration) (Measurement, error) {
	f.runs = append(f.runs, rate)
	m := Measurement{Target: rate, Achieved: rate, Requests: 1000, P99: time.Millisecond}
	if rate > f.capacity || f.flaky[rate] {
		f.flaky[rate] = false
		m.P99 = time.Second
	}
	return m, nil
}

func TestSearchRunsAFailedRateAgainBeforeBelievingIt(t *testing.T) {
	r := &flakyRunner{capacity: 1500, flaky: map[float64]bool{1000: true}}
	s := Search{Start: 250, Floor: 10, Cap: 1e6, Precision: 0.1, MaxSteps: 30}
	x := &searcher{s: s, r: r, label: "test", slo: 5 * time.Millisecond}
	if err := runSearches(context.Background(), []*searcher{x}, time.Second, 0, func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	steps := x.steps
	if got, _ := MaxSustained(steps, s.Cap); got < 1500/1.1 || got > 1500 {
		t.Fatalf("max %v, want about 1500 despite the flaky run at 1000 (runs %v)", got, r.runs)
	}
	// 1000 ran twice (fail, then pass); 2000 failed twice.
	count := map[float64]int{}
	for _, x := range r.runs {
		count[x]++
	}
	if count[1000] != 2 || count[2000] != 2 || count[500] != 1 {
		t.Fatalf("runs per rate %v", count)
	}
}

func TestSearchesTakeTurns(t *testing.T) {
	a := &flakyRunner{capacity: 1000, flaky: map[float64]bool{}}
	b := &flakyRunner{capacity: 4000, flaky: map[float64]bool{}}
	var order []string
	s := Search{Start: 250, Floor: 10, Cap: 1e6, Precision: 0.1, MaxSteps: 30}
	xa := &searcher{s: s, r: a, label: "a", slo: 5 * time.Millisecond}
	xb := &searcher{s: s, r: b, label: "b", slo: 5 * time.Millisecond}
	log := func(_ string, args ...any) { order = append(order, args[0].(string)) }
	if err := runSearches(context.Background(), []*searcher{xa, xb}, time.Second, 0, log); err != nil {
		t.Fatal(err)
	}
	// a at 250, b at 250, a at 500, b at 500, …
	if strings.Join(order[:4], "") != "abab" {
		t.Fatalf("order %v, want turns", order)
	}
	if got, _ := MaxSustained(xb.steps, s.Cap); got < 4000/1.1 || got > 4000 {
		t.Fatalf("b's max %v, want about 4000", got)
	}
	if !xa.done || !xb.done {
		t.Fatal("both searches should be done")
	}
}
