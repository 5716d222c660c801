package loadtest

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func mustStages(t *testing.T, s string) []Stage {
	t.Helper()
	st, err := ParseStages(s)
	if err != nil {
		t.Fatalf("ParseStages(%q): %v", s, err)
	}
	return st
}

func mustScheduler(t *testing.T, start float64, stages []Stage) *Scheduler {
	t.Helper()
	s, err := NewScheduler(start, stages)
	if err != nil {
		t.Fatalf("NewScheduler: %v", err)
	}
	return s
}

func TestConstantRateSendsEveryRequestExactlyOnTime(t *testing.T) {
	s, err := ConstantRate(200, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Total(); got != 6000 {
		t.Fatalf("Total = %d, want 6000", got)
	}
	for i := range int64(6000) {
		at, ok := s.At(i)
		if want := time.Duration(i) * 5 * time.Millisecond; !ok || at != want {
			t.Fatalf("At(%d) = %v, %v; want %v, true", i, at, ok, want)
		}
	}
	if at, ok := s.At(6000); ok {
		t.Fatalf("At(6000) = %v, true; want past the end", at)
	}
	if _, ok := s.At(-1); ok {
		t.Fatal("At(-1) is inside the schedule")
	}
}

func TestConstantRateRoundsToTheNearestNanosecond(t *testing.T) {
	s, err := ConstantRate(3, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, 333333333, 666666667}
	for i, w := range want {
		if at, ok := s.At(int64(i)); !ok || at != w {
			t.Errorf("At(%d) = %v, %v; want %v", i, at, ok, w)
		}
	}
	if s.Total() != 3 {
		t.Errorf("Total = %d, want 3", s.Total())
	}
}

func TestRampStagesFollowTheIntegralOfTheRate(t *testing.T) {
	// 0 → 100/s over 10 s: N(t) = 5t², so request i is due at √(i/5) s;
	// then 100/s for 10 s more.
	s := mustScheduler(t, 0, mustStages(t, "10s:100,10s:100"))
	cases := []struct {
		i    int64
		want time.Duration
	}{
		{0, 0},
		{5, time.Second},
		{20, 2 * time.Second},
		{45, 3 * time.Second},
		{125, 5 * time.Second},
		{499, time.Duration(math.Round(math.Sqrt(499.0/5) * 1e9))},
		{500, 10 * time.Second},
		{600, 11 * time.Second},
		{1499, 19*time.Second + 990*time.Millisecond},
	}
	for _, c := range cases {
		if at, ok := s.At(c.i); !ok || at != c.want {
			t.Errorf("At(%d) = %v, %v; want %v", c.i, at, ok, c.want)
		}
	}
	if s.Total() != 1500 {
		t.Errorf("Total = %d, want 1500", s.Total())
	}
	if s.Duration() != 20*time.Second || s.Peak() != 100 {
		t.Errorf("Duration, Peak = %v, %v", s.Duration(), s.Peak())
	}
	for at, want := range map[time.Duration]float64{-time.Second: 0, 2 * time.Second: 20, 10 * time.Second: 500, 15 * time.Second: 1000, time.Hour: 1500} {
		if got := s.Expected(at); math.Abs(got-want) > 1e-9 {
			t.Errorf("Expected(%v) = %v, want %v", at, got, want)
		}
	}
	if r := s.RateAt(5 * time.Second); r != 50 {
		t.Errorf("RateAt(5s) = %v, want 50", r)
	}
}

func TestFallingRampSolvesTheQuadraticFromTheTop(t *testing.T) {
	// 100 → 0/s over 10 s: N(t) = 100t − 5t², 500 requests in all.
	s := mustScheduler(t, 100, []Stage{{10 * time.Second, 0}})
	if at, _ := s.At(95); at != time.Second {
		t.Errorf("At(95) = %v, want 1s", at)
	}
	want := time.Duration(math.Round((100 - math.Sqrt(20)) / 10 * 1e9))
	if at, _ := s.At(499); at != want {
		t.Errorf("At(499) = %v, want %v", at, want)
	}
	if s.Total() != 500 {
		t.Errorf("Total = %d, want 500", s.Total())
	}
}

func TestZeroLengthStageStepsTheRate(t *testing.T) {
	s := mustScheduler(t, 0, mustStages(t, "0s:100,1s:100"))
	if at, _ := s.At(1); at != 10*time.Millisecond {
		t.Errorf("At(1) = %v, want 10ms", at)
	}
	if s.Total() != 100 {
		t.Errorf("Total = %d, want 100", s.Total())
	}
}

func TestSilentStageAddsTimeButNoRequests(t *testing.T) {
	s := mustScheduler(t, 0, mustStages(t, "0s:10,1s:10,0s:0,1s:0,0s:10,1s:10"))
	for i, want := range map[int64]time.Duration{0: 0, 9: 900 * time.Millisecond, 10: 2 * time.Second, 19: 2900 * time.Millisecond} {
		if at, ok := s.At(i); !ok || at != want {
			t.Errorf("At(%d) = %v, %v; want %v", i, at, ok, want)
		}
	}
	if s.Total() != 20 {
		t.Errorf("Total = %d, want 20", s.Total())
	}
	if r := s.RateAt(1500 * time.Millisecond); r != 0 {
		t.Errorf("RateAt in the silent stage = %v", r)
	}
}

func TestScheduleIsMonotonicAndInsideItsDuration(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		var stages []Stage
		for range 1 + rng.IntN(4) {
			d := time.Duration(rng.IntN(5000)) * time.Millisecond
			stages = append(stages, Stage{Duration: d, Target: float64(rng.IntN(400))})
		}
		s, err := NewScheduler(float64(rng.IntN(50)), stages)
		if err != nil {
			continue // all-zero or zero-length draws
		}
		prev := time.Duration(-1)
		n := int64(0)
		for i := int64(0); ; i++ {
			at, ok := s.At(i)
			if !ok {
				break
			}
			if at < prev || at >= s.Duration() {
				t.Fatalf("trial %d %v: At(%d) = %v after %v (duration %v)", trial, stages, i, at, prev, s.Duration())
			}
			prev = at
			n++
		}
		if diff := s.Total() - n; diff < 0 || diff > 1 {
			// The last arrival can land exactly on the end and be cut.
			t.Fatalf("trial %d %v: Total %d, but %d requests are inside", trial, stages, s.Total(), n)
		}
	}
}

func TestParseStages(t *testing.T) {
	cases := []struct {
		in      string
		want    []Stage
		wantErr bool
	}{
		{in: "30s:100,60s:400", want: []Stage{{30 * time.Second, 100}, {60 * time.Second, 400}}},
		{in: " 1m : 50/s ", want: []Stage{{time.Minute, 50}}},
		{in: "0s:10", want: []Stage{{0, 10}}},
		{in: "", wantErr: true},
		{in: "30s", wantErr: true},
		{in: "30:100", wantErr: true},
		{in: "30s:-1", wantErr: true},
		{in: "-5s:10", wantErr: true},
		{in: "30s:fast", wantErr: true},
		{in: "30s:100,", wantErr: true},
		{in: "30s:NaN", wantErr: true},
	}
	for _, c := range cases {
		got, err := ParseStages(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("ParseStages(%q) error = %v, wantErr %v", c.in, err, c.wantErr)
			continue
		}
		if !c.wantErr && !equalStages(got, c.want) {
			t.Errorf("ParseStages(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func equalStages(a, b []Stage) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNewSchedulerRejectsSchedulesThatNeverEndOrNeverSend(t *testing.T) {
	bad := []struct {
		name   string
		start  float64
		stages []Stage
	}{
		{"no stages", 10, nil},
		{"zero duration", 10, []Stage{{0, 10}}},
		{"all rates zero", 0, []Stage{{time.Second, 0}}},
		{"negative rate", 0, []Stage{{time.Second, -1}}},
		{"infinite rate", 0, []Stage{{time.Second, math.Inf(1)}}},
		{"negative start", -1, []Stage{{time.Second, 1}}},
	}
	for _, b := range bad {
		if _, err := NewScheduler(b.start, b.stages); err == nil {
			t.Errorf("%s: NewScheduler accepted %v", b.name, b.stages)
		}
	}
}
