package loadtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReportNamesWhatFailedAndHowItRan runs against the fake with a
// threshold that must fail and one that holds, a baseline and the fake's
// /metrics, and checks the text and HTML reports carry every new part.
func TestReportNamesWhatFailedAndHowItRan(t *testing.T) {
	f := newFakeCoinop()
	f.walletDelay = 3 * time.Millisecond
	url := f.start(t)
	dir := t.TempDir()
	base := filepath.Join(dir, "base.json")
	args := []string{"--rate", "100", "--duration", "1500ms", "--players", "4", "--seed", "3",
		"--mix", "wallet=2,purchase=2,catalog=1", "--metrics-interval", "200ms"}
	if code, out, errOut := runCommand(t, f, url, append(args, "--out", base)...); code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	html := filepath.Join(dir, "r.html")
	code, out, errOut := runCommand(t, f, url, append(args, "--slo", "wallet:p99<1ms,purchase:p99<2s", "--baseline", base,
		"--out", filepath.Join(dir, "r.json"), "--html", html)...)
	if code != ExitFailed {
		t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	for _, want := range []string{
		"result: FAILED: wallet p99 < 1.00ms (measured",
		"server (/metrics,", "cache: hit ratio 90.0%", "db pool:", "GET /v1/wallet",
		"against baseline run", "wallet", "→",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text report lacks %q:\n%s", want, out)
		}
	}
	r := readReportFile(t, filepath.Join(dir, "r.json"))
	if r.Server == nil || r.Server.CPUCores <= 0 || r.Server.CacheHitRatio < 0.89 || r.Server.PoolWaits == 0 {
		t.Fatalf("server figures %+v", r.Server)
	}
	if r.Baseline == nil || len(r.Baseline.Endpoints) < 3 || r.Bought == nil || r.Config.CatalogVersion != 3 {
		t.Fatalf("baseline %+v bought %v config %+v", r.Baseline, r.Bought, r.Config)
	}
	b, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	assertSelfContainedReport(t, page, url)
	for _, want := range []string{
		`<div class="banner fail">FAILED: wallet p99 &lt; 1.00ms (measured`, // the failed threshold, named
		`class="slo"`, "SLO wallet p99 &lt; 1.00ms", "SLO purchase p99 &lt; 2.00s", // lines on the charts
		"Run configuration", "<td>seed</td><td>3</td>", "catalog</td><td>v3:", "retry 0.1, stale price 0.05",
		"catalog=1, purchase=2, wallet=2", "<td>bought</td>",
		"Server side (/metrics)", "hit ratio 90.0%", "Against the baseline",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
}

func TestMissingMetricsRouteIsANoteNotAFailure(t *testing.T) {
	f := newFakeCoinop()
	f.noMetrics = true
	code, out, errOut := runCommand(t, f, f.start(t), "--rate", "50", "--duration", "300ms", "--players", "2", "--mix", "wallet=1")
	if code != ExitOK || !strings.Contains(out, "server figures unavailable: GET /metrics answered HTTP 404") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
}

func TestParseMetricsAndSummarize(t *testing.T) {
	scrape := func(cpu, hits, misses, waits float64) map[string]float64 {
		t.Helper()
		text := "# HELP x y\n# TYPE process_cpu_seconds_total counter\n" +
			"process_cpu_seconds_total " + ftoa(cpu) + "\n" +
			`coinop_cache_hits_total ` + ftoa(hits) + "\n" +
			`coinop_cache_misses_total ` + ftoa(misses) + "\n" +
			`coinop_db_pool_empty_acquires_total ` + ftoa(waits) + "\n" +
			`coinop_db_pool_acquire_wait_seconds_total ` + ftoa(waits*0.001) + "\n" +
			`coinop_http_request_duration_seconds_count{method="POST",route="/v1/purchases",status="201"} ` + ftoa(hits) + "\n" +
			`coinop_http_request_duration_seconds_sum{method="POST",route="/v1/purchases",status="201"} ` + ftoa(hits*0.004) + "\n" +
			`coinop_http_request_duration_seconds_bucket{method="POST",route="/v1/purchases",status="201",le="0.005"} ` + ftoa(hits*0.995) + "\n" +
			`coinop_http_request_duration_seconds_bucket{method="POST",route="/v1/purchases",status="201",le="+Inf"} ` + ftoa(hits) + "\n" +
			`label_with_space{a="b c"} 7 1700000000000` + "\n"
		m, err := ParseMetrics(strings.NewReader(text))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	samples := []Sample{
		{At: 0, Values: scrape(10, 100, 100, 0)},
		{At: time.Second, Values: scrape(10.5, 400, 200, 5)},
		{At: 2 * time.Second, Values: scrape(12, 900, 300, 5)},
	}
	if samples[0].Values[`label_with_space{a="b c"}`] != 7 {
		t.Fatalf("labels with spaces: %v", samples[0].Values)
	}
	f := Summarize(samples)
	if f.CPUCores != 1 || f.PeakCores != 1.5 || f.CacheHitRatio != 0.8 || f.PoolWaits != 5 || f.PoolWaitMeanUS != 1000 {
		t.Fatalf("figures %+v", f)
	}
	if len(f.Routes) != 1 || f.Routes[0].Route != "POST /v1/purchases" || f.Routes[0].MeanUS != 4000 || f.Routes[0].P99US != 5000 {
		t.Fatalf("routes %+v", f.Routes)
	}
	if f.ResponsesByStatus["201"] != 800 || len(f.Timeline) != 2 {
		t.Fatalf("statuses %v timeline %v", f.ResponsesByStatus, f.Timeline)
	}
	if Summarize(samples[:1]) != nil {
		t.Fatal("one scrape has no rates")
	}
	for _, bad := range []string{"novalue\n", "x{a=\"b\"}\n", "x notanumber\n"} {
		if _, err := ParseMetrics(strings.NewReader(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func TestCompareWithABaseline(t *testing.T) {
	old := sampleReport(t)
	now := sampleReport(t)
	now.Endpoints[0].P99US *= 2
	now.Endpoints = now.Endpoints[:1]
	c := Compare(old, now)
	if len(c.Endpoints) != 3 || c.Endpoints[2].Name != EndpointAll {
		t.Fatalf("endpoints %+v", c.Endpoints)
	}
	cells := c.Endpoints[0].Cells()
	if !strings.Contains(cells[2], "(+100%)") {
		t.Fatalf("p99 change %q", cells[2])
	}
	if gone := c.Endpoints[1]; gone.NewCount != 0 || gone.OldCount == 0 {
		t.Fatalf("an endpoint only the baseline had: %+v", gone)
	}
	var buf bytes.Buffer
	if err := (&Report{Baseline: c}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(&buf)
	if err != nil || back.Baseline.Endpoints[0] != c.Endpoints[0] {
		t.Fatalf("round trip %v: %+v", err, back.Baseline)
	}
	if _, err := ReadBaseline(writeFile(t, "empty.json", `{"tool":"coinop loadtest"}`)); err == nil {
		t.Fatal("a report without endpoints is no baseline")
	}
}
