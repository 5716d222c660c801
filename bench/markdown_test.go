package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	at := func(rate float64, p50, p99 time.Duration) Measurement {
		return Measurement{Target: rate, Achieved: rate, Requests: int64(rate) * 5, P50: p50, P99: p99}
	}
	return &Report{
		Generated: time.Date(2026, 11, 21, 6, 0, 0, 0, time.UTC),
		Commit:    "`abc1234`",
		Mode:      "full",
		Machine:   []Fact{{"CPU", "Test CPU, 2 logical CPUs (nproc)"}},
		Settings:  []Fact{{"Mode", "full"}},
		Pairs: []Pair{
			{
				Name: "Purchases", SLO: 25 * time.Millisecond, Target: 0.7,
				Baseline: Result{Label: "pgbench: coinop_post", Tool: "pgbench", Max: 4000, At70: at(2800, time.Millisecond, 3*time.Millisecond),
					Steps: []Step{{Rate: 4000, OK: true, M: at(4000, time.Millisecond, 4*time.Millisecond)}, {Rate: 8000, OK: false, Reason: "p99 40.0 ms > 25.0 ms"}}},
				Coinop: []Result{{Label: "POST /v1/purchases", Tool: "coinop loadtest", Max: 2000, At70: at(1400, 2*time.Millisecond, 9*time.Millisecond),
					CPU: CPUUse{PerRequest: map[string]time.Duration{cpuServer: 150 * time.Microsecond, cpuPostgres: 350 * time.Microsecond}, MachineBusy: 0.6}}},
			},
			{
				Name: "Catalog", SLO: 5 * time.Millisecond, Target: 0.5,
				Baseline: Result{Label: "minimal fiber handler (200)", Tool: "bench drive", Max: 20000, At70: at(14000, 300*time.Microsecond, 2*time.Millisecond)},
				Coinop: []Result{
					{Label: "GET /v1/catalog (200)", Tool: "bench drive", Max: 12000, At70: at(8400, 400*time.Microsecond, 2*time.Millisecond)},
					{Label: "GET /v1/catalog (304)", Tool: "bench drive", Max: 200000, Capped: true, At70: at(140000, 400*time.Microsecond, 2*time.Millisecond)},
				},
			},
		},
	}
}

func TestMarkdownShowsRatiosAndVerdicts(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	if strings.Contains(doc, "%!") {
		t.Errorf("a format verb went wrong:\n%s", doc)
	}
	for _, want := range []string{
		"| Purchases: POST /v1/purchases vs pgbench: coinop_post | 25.0 ms | 2,000/s | 4,000/s | 0.50× | ≥ 0.7× | **missed** |",
		"| Catalog: GET /v1/catalog (200) vs minimal fiber handler (200) | 5.00 ms | 12,000/s | 20,000/s | 0.60× | ≥ 0.5× | met |",
		"| Catalog: GET /v1/catalog (304) vs minimal fiber handler (200) | 5.00 ms | ≥ 200,000/s | 20,000/s | 10.00× | ≥ 0.5× | met |",
		"| POST /v1/purchases | coinop loadtest | 2,000/s | 0/s | 1,400/s | 2.00 ms | 9.00 ms | 0 |", // no steps: no peak
		"| POST /v1/purchases | 150 µs | 350 µs | – | – | 500 µs | 60% |",
		"| pgbench: coinop_post | 8,000/s | 0/s | 0 µs | 0 µs | no: p99 40.0 ms > 25.0 ms |",
		"2026-11-21 06:00 UTC from commit `abc1234`",
		"- **CPU:** Test CPU, 2 logical CPUs (nproc)",
		"_None yet._",
	} {
		if !strings.Contains(doc, want) {
			t.Errorf("document lacks\n%s\n---\n%s", want, doc)
		}
	}
}

func TestMarkdownShowsThePgbenchScript(t *testing.T) {
	r := sampleReport()
	r.PgbenchScript = "\\set k random(1, 10)\nSELECT :k;\n"
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "```sql\n\\set k random(1, 10)\nSELECT :k;\n```\n") {
		t.Fatalf("script not shown as SQL:\n%s", b.String())
	}
}

func TestMarkdownKeepsTheNotesOfThePreviousRun(t *testing.T) {
	r := sampleReport()
	r.Notes = "Purchases: most of the time is in Postgres."
	var first strings.Builder
	if err := r.WriteMarkdown(&first); err != nil {
		t.Fatal(err)
	}
	// The next run reads the notes back and writes them again unchanged.
	next := sampleReport()
	next.Notes = extractNotes(first.String())
	if next.Notes != r.Notes {
		t.Fatalf("notes read back as %q", next.Notes)
	}
	var second strings.Builder
	if err := next.WriteMarkdown(&second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Fatal("a rewrite with the same numbers changed the document")
	}
	if extractNotes("# Benchmarks\nno markers here\n") != "" {
		t.Fatal("a document without markers has no notes")
	}
}

func TestFormatting(t *testing.T) {
	rates := map[float64]string{0: "0/s", 7: "7/s", 999.6: "1,000/s", 12345: "12,345/s", 1234567: "1,234,567/s"}
	for in, want := range rates {
		if got := fmtRate(in); got != want {
			t.Errorf("fmtRate(%v) = %s, want %s", in, got, want)
		}
	}
	durations := map[time.Duration]string{
		0: "0 µs", 300 * time.Nanosecond: "< 1 µs",
		87 * time.Microsecond: "87 µs", 1240 * time.Microsecond: "1.24 ms",
		12500 * time.Microsecond: "12.5 ms", 1200 * time.Millisecond: "1.20 s",
	}
	for in, want := range durations {
		if got := fmtDuration(in); got != want {
			t.Errorf("fmtDuration(%v) = %s, want %s", in, got, want)
		}
	}
}

func TestFormatMicro(t *testing.T) {
	for micro, want := range map[int64]string{0: "0", 5_000_000: "5", 2_500_000: "2.5", 1: "0.000001", 123_456_789: "123.456789"} {
		if got := formatMicro(micro); got != want {
			t.Errorf("formatMicro(%d) = %q, want %q", micro, got, want)
		}
	}
}

// The saturated ratio pairs rounds: one round spoiled for one side moves
// the median, not the verdict, and it renders with its medians.
func TestSaturatedRatioIsTheMedianOfPairedRounds(t *testing.T) {
	served := func(rates ...float64) []Saturation {
		var out []Saturation
		for _, r := range rates {
			out = append(out, Saturation{M: Measurement{Achieved: r}})
		}
		return out
	}
	plain := Result{Label: "plain", Max: 1000, Saturated: served(3000, 2000, 3200, 3100, 2900)}
	coded := Result{Label: "coded", Max: 500, Saturated: served(2850, 1900, 1600, 3000, 2800)}
	l := RatioLine{Label: "coded vs plain, served at saturation", Of: coded, Over: plain, Target: 0.9, Saturated: true}
	// Per round: 0.95, 0.95, 0.5, 0.968, 0.966 → median 0.95.
	if got := l.Ratio(); got < 0.949 || got > 0.951 {
		t.Errorf("ratio %v, want the median 0.95", got)
	}
	if l.Verdict() != "met" {
		t.Errorf("verdict %q", l.Verdict())
	}
	if m := (RatioLine{Of: coded, Over: plain, Target: 0.9}); m.Verdict() != "missed" || m.Ratio() != 0.5 {
		t.Errorf("max ratio %v %s", m.Ratio(), m.Verdict())
	}
	if i := (RatioLine{Of: coded, Over: plain, Target: 0.9, Info: true}); i.Verdict() != "informational" {
		t.Errorf("info verdict %s", i.Verdict())
	}
	if got := pairedSaturationRatio(coded, Result{}); !math.IsNaN(got) {
		t.Errorf("no rounds: %v", got)
	}
	r := sampleReport()
	r.Pairs[0].Ratios = []RatioLine{l}
	var b strings.Builder
	if err := r.WriteMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "| Purchases: coded vs plain, served at saturation | none (saturated) | 2,800/s | 3,000/s | 0.95× | ≥ 0.9× | met |"
	if !strings.Contains(b.String(), want) {
		t.Errorf("document lacks\n%s\n---\n%s", want, b.String())
	}
}
