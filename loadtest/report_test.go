package loadtest

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// sampleReport builds a report the way a run does, from recorded stats.
func sampleReport(t *testing.T) *Report {
	t.Helper()
	rec := NewRecorder(2)
	for sec := 1; sec <= 3; sec++ {
		for i := range 200 {
			rec.Record(i, EndpointPurchase, time.Duration(1+i%50)*time.Millisecond, map[bool]string{true: "insufficient_funds"}[i == 7])
			rec.Record(i, EndpointWallet, time.Duration(200+i)*time.Microsecond, "")
		}
		rec.Flush(time.Duration(sec)*time.Second, time.Second, 400)
	}
	slos, err := ParseSLOs("purchase:p99<60ms,errors<1%")
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{URL: "http://127.0.0.1:8080", Rate: 400, Duration: 3 * time.Second, MaxRequests: 1000, Players: 3,
		Seed: 9, RunID: "abcd1234", SLOs: slos}
	fx := &Fixture{Players: make([]*Player, 3), Notes: []string{"scenario receipt skipped: no pre-minted transactions"}}
	res := &Result{Model: "open", Start: time.Date(2026, 11, 3, 10, 0, 0, 123456789, time.UTC), Elapsed: 3010 * time.Millisecond,
		Window: 3 * time.Second, Stats: rec.Totals(), Timeline: rec.Timeline(), Scheduled: 1200, Sent: 1200, Late: 3, Workers: 80}
	r := NewReport(cfg, fx, res)
	r.Verification = &Verification{OK: false, Players: 3, PurchasesObserved: 597, GrantsObserved: 3, LedgerTransactions: 601,
		Problems: []Problem{{Kind: ProblemDuplicated, PlayerID: "lt-abcd1234-0", Detail: "purchase pur-3 has 2 ledger transactions: 4, 5"}},
		Counts:   ProblemCount{ProblemDuplicated: 1},
		Audit:    &Audit{OK: true, Checks: []AuditCheck{{Name: "balanced", OK: true, Detail: json.RawMessage(`{"n":1}`)}}}}
	return r
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// RawMessage keeps its bytes; indentation re-flows them, so compact first.
	for _, rep := range []*Report{r, back} {
		for i := range rep.Verification.Audit.Checks {
			var c bytes.Buffer
			json.Compact(&c, rep.Verification.Audit.Checks[i].Detail)
			rep.Verification.Audit.Checks[i].Detail = c.Bytes()
		}
	}
	if !reflect.DeepEqual(r, back) {
		a, _ := json.Marshal(r)
		b, _ := json.Marshal(back)
		t.Fatalf("round trip changed the report:\n%s\n%s", a, b)
	}
	if _, err := ReadReport(strings.NewReader("{not json")); err == nil {
		t.Fatal("ReadReport accepted garbage")
	}
}

func TestReportCarriesMergeableHistograms(t *testing.T) {
	r := sampleReport(t)
	p := r.Endpoint(EndpointPurchase)
	h, err := p.DecodeHistogram()
	if err != nil {
		t.Fatal(err)
	}
	if h.TotalCount() != p.Count || h.ValueAtQuantile(99) != p.P99US {
		t.Fatalf("decoded histogram: count %d p99 %d; report %d %d", h.TotalCount(), h.ValueAtQuantile(99), p.Count, p.P99US)
	}
	// Two machines' reports merge into the histogram of both.
	w, _ := r.Endpoint(EndpointWallet).DecodeHistogram()
	h.Merge(w)
	if h.TotalCount() != r.All.Count {
		t.Fatalf("merged %d, all %d", h.TotalCount(), r.All.Count)
	}
	if _, err := (&EndpointReport{Name: "x"}).DecodeHistogram(); err == nil {
		t.Fatal("decoded a missing histogram")
	}
}

func TestReportSummarisesTheRun(t *testing.T) {
	r := sampleReport(t)
	if r.All.Count != 1200 || r.All.Errors != 3 || r.All.Rate != 400 {
		t.Fatalf("all: %+v", r.All)
	}
	if got := r.Endpoint(EndpointPurchase).ErrorsByCode["insufficient_funds"]; got != 3 {
		t.Fatalf("errors by code %v", r.Endpoint(EndpointPurchase).ErrorsByCode)
	}
	if len(r.SLOs) != 2 || !r.SLOs[0].OK || !r.SLOs[1].OK {
		t.Fatalf("slos %+v", r.SLOs)
	}
	if !r.Failed() {
		t.Fatal("a report with verification problems is not Failed")
	}
	var out bytes.Buffer
	r.WriteTable(&out)
	s := out.String()
	for _, want := range []string{
		"endpoint  count  rate/s", "p99.9", "purchase", "wallet", "all",
		"3 (0.50%)", "errors by code: purchase insufficient_funds=3",
		"scheduled 1200, late 3, dropped 0",
		"note: scenario receipt skipped", "note: 3 requests started more than 10ms after their due time",
		"ok   purchase p99 < 60.0ms",
		"verification: 3 players, 597 purchases and 3 grants observed, 601 ledger transactions: 1 PROBLEMS",
		"PROBLEM duplicated: player lt-abcd1234-0: purchase pur-3",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
}

// assertSelfContainedReport checks that an HTML report has its charts and
// loads nothing from the network: the only URL in it may be the target's,
// printed as text.
func assertSelfContainedReport(t *testing.T, html, target string) {
	t.Helper()
	for _, id := range []string{"latency-over-time", "percentile-distribution", "throughput-over-time", "p99-by-endpoint"} {
		if !strings.Contains(html, `<svg id="`+id+`"`) {
			t.Errorf("report lacks chart %s", id)
		}
	}
	if !strings.Contains(html, "<polyline") {
		t.Error("charts have no lines")
	}
	stripped := strings.ReplaceAll(html, target, "")
	if m := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://`).FindString(stripped); m != "" {
		t.Errorf("report references %q", m)
	}
	for _, bad := range []string{"<script", "<link", "<img", "<iframe", "@import", "url(", "src=", "href="} {
		if strings.Contains(strings.ToLower(stripped), bad) {
			t.Errorf("report contains %q", bad)
		}
	}
}

func TestHTMLReportIsSelfContainedAndHasItsCharts(t *testing.T) {
	r := sampleReport(t)
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	html := buf.String()
	assertSelfContainedReport(t, html, r.Target)
	for _, want := range []string{"FAILED", "purchase pur-3 has 2 ledger transactions", "99.9%", "p50", "p99"} {
		if !strings.Contains(html, want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

func TestHTMLReportEscapesWhatTheServerSent(t *testing.T) {
	r := sampleReport(t)
	r.Verification.Problems[0].Detail = `<script>alert(1)</script>`
	r.Endpoints[0].ErrorsByCode = map[string]int64{`<img src=x onerror=alert(1)>`: 1}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "<script>") || strings.Contains(buf.String(), "<img") {
		t.Fatal("server-controlled text reached the page unescaped")
	}
}

func TestHTMLReportOfAnEmptyRunStillRenders(t *testing.T) {
	r := &Report{Target: "http://127.0.0.1:8080", Model: "closed"}
	var buf bytes.Buffer
	if err := WriteHTML(&buf, r); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "no data") {
		t.Fatal("empty charts should say so")
	}
}

func TestRateLimitedRunsSayWhy(t *testing.T) {
	st := Stats{}
	st.Get(EndpointWallet).Record(time.Millisecond, "rate_limited")
	r := NewReport(Config{RunID: "x"}, &Fixture{}, &Result{Stats: st, Window: time.Second})
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "COINOP_RATE_LIMIT=off") {
		t.Fatalf("notes %q", r.Notes)
	}
}

func TestNiceStep(t *testing.T) {
	for raw, want := range map[float64]float64{0.7: 1, 1: 1, 1.2: 2, 3: 5, 7: 10, 12: 20, 450: 500, 0: 1} {
		if got := niceStep(raw); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", raw, got, want)
		}
	}
}
