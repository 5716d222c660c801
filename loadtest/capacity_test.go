package loadtest

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFindMaxFindsAModelledLimit runs the capacity search against a fake
// server that admits 400 requests per second (a token bucket with 50 ms of
// burst) and answers 503 beyond it: the error threshold must place the
// limit within 10%. The limit is modelled, not this machine's: the fake
// answers at once, so the machine only has to keep up with the schedule.
func TestFindMaxFindsAModelledLimit(t *testing.T) {
	const limit = 400
	f := newFakeCoinop()
	f.capacity = newTokenBucket(limit, limit*0.05)
	url := f.start(t)
	out := filepath.Join(t.TempDir(), "capacity.json")
	code, stdout, stderr := runCommand(t, f, url, "--find-max", "--rate", "100", "--step", "1s", "--slo", "errors<1%",
		"--mix", "wallet=3,catalog=1,purchase=1", "--players", "4", "--workers", "64",
		"--rpm", "12", "--ccu", "1000", "--out", out)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	c := r.Capacity
	if c == nil {
		t.Fatalf("report has no capacity section:\n%s", stdout)
	}
	if math.Abs(c.MaxRate-limit)/limit > 0.10 {
		t.Fatalf("found %.0f req/s, want within 10%% of %d:\n%s", c.MaxRate, limit, stdout)
	}
	if c.FirstFailure <= c.MaxRate || len(c.BrokeFirst) == 0 || !strings.Contains(c.BrokeFirst[0], "all errors < 1.00%") {
		t.Fatalf("first failure %.0f, broke first %v", c.FirstFailure, c.BrokeFirst)
	}
	if want := int64(c.MaxRate * 60 / 12); c.CCU != want {
		t.Fatalf("CCU %d, want %d (rate × 60 / rpm)", c.CCU, want)
	}
	if c.Headroom == nil || math.Abs(*c.Headroom-(c.MaxRate/200-1)) > 1e-9 {
		t.Fatalf("headroom %v over 1000 CCU × 12 rpm = 200 req/s", c.Headroom)
	}
	if r.Config == nil || r.Config.Rate != c.MaxRate {
		t.Fatalf("the report should be the step at the sustained rate, got config %+v", r.Config)
	}
	for _, want := range []string{"highest sustained rate:", "CCU:", "headroom:", "broke first at"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
}

func TestCapacitySearchSteps(t *testing.T) {
	o := CapacityOptions{Start: 100, Cap: 10_000, Floor: 1, Precision: 0.05, MaxSteps: 30}
	// A target that sustains up to 730 req/s, answered without running.
	var steps []CapacityStep
	for {
		rate, done := o.nextRate(steps)
		if done {
			break
		}
		steps = append(steps, CapacityStep{Rate: rate, OK: rate <= 730})
	}
	c := o.summarize(steps)
	if c.MaxRate < 730/1.05 || c.MaxRate > 730 || c.FirstFailure <= 730 || c.FirstFailure/c.MaxRate > 1.05 {
		t.Fatalf("max %.0f first failure %.0f after %d steps", c.MaxRate, c.FirstFailure, len(steps))
	}
	// Nothing holds: halve down to the floor, then stop with no answer.
	steps = nil
	for {
		rate, done := o.nextRate(steps)
		if done {
			break
		}
		steps = append(steps, CapacityStep{Rate: rate})
	}
	if c := o.summarize(steps); c.MaxRate != 0 || len(steps) > 8 {
		t.Fatalf("max %.0f after %d steps", c.MaxRate, len(steps))
	}
	// Everything holds: stop at the cap and say so.
	steps = nil
	for {
		rate, done := o.nextRate(steps)
		if done {
			break
		}
		steps = append(steps, CapacityStep{Rate: rate, OK: true})
	}
	if c := o.summarize(steps); c.MaxRate != o.Cap || !c.AtCap {
		t.Fatalf("max %.0f at cap %v", c.MaxRate, c.AtCap)
	}
}

func TestFindMaxFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--find-max"}, "--find-max needs --slo"},
		{[]string{"--find-max", "--slo", "errors<1%", "--vus", "3"}, "give --rate"},
		{[]string{"--find-max", "--slo", "errors<1%", "--stages", "1s:10"}, "give --rate"},
		{[]string{"--find-max", "--slo", "errors<1%", "--step", "0s"}, "--step must be positive"},
		{[]string{"--find-max", "--slo", "errors<1%", "--rate", "100", "--max-rate", "50"}, "--max-rate"},
		{[]string{"--find-max", "--slo", "errors<1%", "--rpm", "0"}, "--rpm"},
		{[]string{"--find-max", "--slo", "errors<1%", "--precision", "1"}, "--precision"},
		{[]string{"--find-max", "--slo", "errors<1%", "--ccu", "-1"}, "--ccu"},
	} {
		if _, err := parse(t, testEnv, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.want)
		}
	}
}
