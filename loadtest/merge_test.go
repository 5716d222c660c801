package loadtest

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// reportOf summarises stats as a run would, through JSON as written by
// --out and read back by merge.
func reportOf(t *testing.T, stats Stats, runID, split string) *Report {
	t.Helper()
	r := &Report{Tool: "coinop loadtest", RunID: runID, Model: "open", WindowMS: 2000,
		Config: &RunConfig{Seed: 5, Split: split, SLOs: []string{"purchase:p99<20ms,errors<5%"}}}
	for _, name := range stats.Names() {
		r.Endpoints = append(r.Endpoints, SummarizeEndpoint(name, stats[name], 2*time.Second))
	}
	r.All = SummarizeEndpoint(EndpointAll, stats.All(), 2*time.Second)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func sameHistogram(t *testing.T, name string, got, want *hdrhistogram.Histogram) {
	t.Helper()
	if got.TotalCount() != want.TotalCount() || got.Max() != want.Max() || got.Min() != want.Min() {
		t.Fatalf("%s: count %d max %d min %d, want %d %d %d", name, got.TotalCount(), got.Max(), got.Min(), want.TotalCount(), want.Max(), want.Min())
	}
	gb, wb := got.Distribution(), want.Distribution()
	if len(gb) != len(wb) {
		t.Fatalf("%s: %d bars, want %d", name, len(gb), len(wb))
	}
	for i := range gb {
		if gb[i] != wb[i] {
			t.Fatalf("%s: bar %d is %+v, want %+v", name, i, gb[i], wb[i])
		}
	}
}

// TestMergedHistogramsEqualASingleRuns records one run's requests, deals
// them out to three "processes", writes and reads their reports and merges
// them: every endpoint's histogram, count, error count and percentile must
// be the single run's exactly.
func TestMergedHistogramsEqualASingleRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	single := Stats{}
	parts := []Stats{{}, {}, {}}
	for i := range 30_000 {
		ep := []string{EndpointPurchase, EndpointWallet, EndpointCatalog}[rng.IntN(3)]
		lat := time.Duration(rng.ExpFloat64()*float64(3*time.Millisecond)) + 100*time.Microsecond
		code := ""
		if rng.IntN(100) == 0 {
			code = "timeout"
		}
		single.Get(ep).Record(lat, code)
		parts[i%3].Get(ep).Record(lat, code)
	}
	var reports []*Report
	for k, p := range parts {
		reports = append(reports, reportOf(t, p, "r"+string(rune('a'+k)), string(rune('1'+k))+"/3"))
	}
	merged, err := MergeReports(reports)
	if err != nil {
		t.Fatal(err)
	}
	want := reportOf(t, single, "single", "")
	for _, name := range append(single.Names(), EndpointAll) {
		m, w := merged.Endpoint(name), want.Endpoint(name)
		if m == nil {
			t.Fatalf("merged report lacks %s", name)
		}
		mh, err := m.DecodeHistogram()
		if err != nil {
			t.Fatal(err)
		}
		wh, _ := w.DecodeHistogram()
		sameHistogram(t, name, mh, wh)
		if m.Count != w.Count || m.Errors != w.Errors || m.P50US != w.P50US || m.P99US != w.P99US || m.P999US != w.P999US || m.MaxUS != w.MaxUS {
			t.Fatalf("%s: merged %+v\nsingle %+v", name, m, w)
		}
		if m.Rate != w.Rate {
			t.Fatalf("%s: rate %v, want %v over the shared window", name, m.Rate, w.Rate)
		}
	}
	if len(merged.SLOs) != 2 {
		t.Fatalf("thresholds not evaluated again on the merged figures: %+v", merged.SLOs)
	}
}

func TestMergeRefusesWhatItCannotMerge(t *testing.T) {
	s := Stats{}
	s.Get(EndpointWallet).Record(time.Millisecond, "")
	a, b := reportOf(t, s, "a", "1/2"), reportOf(t, s, "b", "1/2")
	if _, err := MergeReports([]*Report{a, b}); err == nil || !strings.Contains(err.Error(), "part 1/2") {
		t.Errorf("the same part twice: %v", err)
	}
	b.Config.Split = "2/2"
	b.Endpoints[0].Histogram = ""
	if _, err := MergeReports([]*Report{a, b}); err == nil || !strings.Contains(err.Error(), "no histogram") {
		t.Errorf("a report without histograms: %v", err)
	}
	c := reportOf(t, s, "c", "")
	c.Capacity = &Capacity{}
	if _, err := MergeReports([]*Report{a, c}); err == nil || !strings.Contains(err.Error(), "capacity search") {
		t.Errorf("a capacity report: %v", err)
	}
	if _, err := MergeReports(nil); err == nil {
		t.Error("merged nothing")
	}
}

// TestSplitRunsMergeIntoTheSingleRun runs one seed whole, then as two
// --split parts against their own servers, and merges the parts' reports
// with the merge command: each endpoint saw the same number of requests.
func TestSplitRunsMergeIntoTheSingleRun(t *testing.T) {
	dir := t.TempDir()
	args := []string{"--rate", "300", "--duration", "500ms", "--players", "4", "--seed", "11",
		"--mix", "wallet=3,catalog=1,purchase=2,entitlements=1", "--workers", "32"}
	run := func(out string, extra ...string) *Report {
		t.Helper()
		f := newFakeCoinop()
		code, stdout, stderr := runCommand(t, f, f.start(t), append(append(args, "--out", out), extra...)...)
		if code != ExitOK {
			t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
		}
		return readReportFile(t, out)
	}
	single := run(filepath.Join(dir, "single.json"))
	run(filepath.Join(dir, "a.json"), "--split", "1/2")
	run(filepath.Join(dir, "b.json"), "--split", "2/2")
	if single.Dropped != 0 {
		t.Skipf("the single run dropped %d requests: this machine could not keep up, counts cannot match", single.Dropped)
	}
	var out, errb bytes.Buffer
	merged := filepath.Join(dir, "merged.json")
	if code := mergeCommand([]string{filepath.Join(dir, "a.json"), filepath.Join(dir, "b.json"), "-o", merged}, &out, &errb); code != ExitOK {
		t.Fatalf("merge exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	m := readReportFile(t, merged)
	if m.Dropped != 0 {
		t.Skipf("a part dropped %d requests", m.Dropped)
	}
	for _, e := range single.Endpoints {
		got := m.Endpoint(e.Name)
		if got == nil || got.Count != e.Count {
			t.Errorf("%s: merged %v requests, single run %d", e.Name, got, e.Count)
		}
	}
	if m.All.Count != single.All.Count || m.Scheduled != single.Scheduled {
		t.Fatalf("merged %d requests (%d scheduled), single %d (%d)", m.All.Count, m.Scheduled, single.All.Count, single.Scheduled)
	}
	if !strings.Contains(out.String(), "wrote "+merged) {
		t.Fatalf("merge output:\n%s", out.String())
	}
}

func readReportFile(t *testing.T, path string) *Report {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := ReadReport(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMergeCommandUsageErrorsExitTwo(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, "bad.json", "{")
	for _, args := range [][]string{
		{filepath.Join(dir, "only.json")},
		{filepath.Join(dir, "missing.json"), filepath.Join(dir, "missing2.json")},
		{bad, bad},
		{"--bogus"},
	} {
		var out, errb bytes.Buffer
		if code := mergeCommand(args, &out, &errb); code != ExitSetup || errb.Len() == 0 {
			t.Errorf("%v: exit %d, stderr %q", args, code, errb.String())
		}
	}
}

// TestMergedTimelinesEqualASingleRuns records four seconds of requests
// into one recorder and, dealt out, into two (the parts of a split run),
// writes and reads the parts' reports and merges them: every second's
// requests, errors, p50, p99 and max, overall and per endpoint, must be the
// single run's exactly.
func TestMergedTimelinesEqualASingleRuns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	single := NewRecorder(2)
	parts := []*Recorder{NewRecorder(2), NewRecorder(2)}
	for sec := range 4 {
		for i := range 3000 {
			ep := []string{EndpointPurchase, EndpointWallet, EndpointCatalog}[rng.IntN(3)]
			// Each part has its own latency profile, so that the maxima of
			// the parts' percentiles would be wrong.
			scale := []float64{1, 6}[i%2]
			lat := time.Duration(rng.ExpFloat64()*scale*float64(time.Millisecond)*float64(sec+1)) + 50*time.Microsecond
			code := ""
			if rng.IntN(50) == 0 {
				code = "timeout"
			}
			single.Record(i, ep, lat, code)
			parts[i%2].Record(i, ep, lat, code)
		}
		at := time.Duration(sec+1) * time.Second
		single.Flush(at, time.Second, 0)
		for _, p := range parts {
			p.Flush(at, time.Second, 0)
		}
	}
	var reports []*Report
	for k, p := range parts {
		r := reportOf(t, p.Totals(), "r"+string(rune('a'+k)), string(rune('1'+k))+"/2")
		r.Timeline = p.Timeline()
		var buf bytes.Buffer
		if err := r.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		back, err := ReadReport(&buf)
		if err != nil {
			t.Fatal(err)
		}
		reports = append(reports, back)
	}
	merged, err := MergeReports(reports)
	if err != nil {
		t.Fatal(err)
	}
	want := single.Timeline()
	if len(merged.Timeline) != len(want) {
		t.Fatalf("%d timeline points, want %d", len(merged.Timeline), len(want))
	}
	maxima := 0 // seconds where the parts' highest p99 differs from the truth
	for i, w := range want {
		g := merged.Timeline[i]
		if g.Requests != w.Requests || g.Errors != w.Errors || g.P50US != w.P50US || g.P99US != w.P99US || g.MaxUS != w.MaxUS {
			t.Fatalf("second %d: requests %d errors %d p50 %d p99 %d max %d, want %d %d %d %d %d",
				i+1, g.Requests, g.Errors, g.P50US, g.P99US, g.MaxUS, w.Requests, w.Errors, w.P50US, w.P99US, w.MaxUS)
		}
		if len(g.Endpoints) != len(w.Endpoints) {
			t.Fatalf("second %d: %d endpoints, want %d", i+1, len(g.Endpoints), len(w.Endpoints))
		}
		for ep, wm := range w.Endpoints {
			gm := g.Endpoints[ep]
			if gm.Requests != wm.Requests || gm.Errors != wm.Errors || gm.P50US != wm.P50US || gm.P99US != wm.P99US {
				t.Fatalf("second %d, %s: %+v, want %+v", i+1, ep, gm, wm)
			}
		}
		if max(reports[0].Timeline[i].P99US, reports[1].Timeline[i].P99US) != w.P99US {
			maxima++
		}
	}
	if maxima == 0 {
		t.Fatal("the parts' highest p99 was exact every second: the test cannot tell exact merging from maxima")
	}
}

func TestMergedTimelinesFallBackToMaximaWithoutHistograms(t *testing.T) {
	a := []TimelinePoint{{ElapsedMS: 1000, Requests: 10, P50US: 100, P99US: 900, MaxUS: 1000}}
	b := []TimelinePoint{{ElapsedMS: 1000, Requests: 5, P50US: 200, P99US: 500, MaxUS: 2000}}
	got := mergeTimelines(mergeTimelines(nil, a), b)
	if got[0].Requests != 15 || got[0].P50US != 200 || got[0].P99US != 900 || got[0].MaxUS != 2000 || got[0].Histogram != "" {
		t.Fatalf("merged %+v", got[0])
	}
}
