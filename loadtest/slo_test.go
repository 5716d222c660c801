package loadtest

import (
	"strings"
	"testing"
	"time"
)

func TestParseSLOs(t *testing.T) {
	cases := []struct {
		in      string
		want    []SLO
		wantErr string
	}{
		{
			in: "purchase:p99<25ms,errors<0.1%",
			want: []SLO{
				{Scope: "purchase", Metric: "p99", Latency: 25 * time.Millisecond},
				{Scope: "all", Metric: "errors", Percent: 0.1},
			},
		},
		{in: "p50<=2ms", want: []SLO{{Scope: "all", Metric: "p50", Latency: 2 * time.Millisecond, Inclusive: true}}},
		{in: "wallet:p99.9<1.5s", want: []SLO{{Scope: "wallet", Metric: "p999", Latency: 1500 * time.Millisecond}}},
		{in: "catalog:P90 < 800us", want: []SLO{{Scope: "catalog", Metric: "p90", Latency: 800 * time.Microsecond}}},
		{in: "all:max<1s , dropped<1%", want: []SLO{
			{Scope: "all", Metric: "max", Latency: time.Second},
			{Scope: "all", Metric: "dropped", Percent: 1},
		}},
		{in: "purchase:errors<=0%", want: []SLO{{Scope: "purchase", Metric: "errors", Inclusive: true}}},
		{in: "", wantErr: "no thresholds"},
		{in: "p99", wantErr: "want metric<value"},
		{in: "p99>25ms", wantErr: "want metric<value"},
		{in: "p98<25ms", wantErr: "unknown metric"},
		{in: "<25ms", wantErr: "missing metric"},
		{in: "p99<25", wantErr: "wants a duration"},
		{in: "p99<-1ms", wantErr: "wants a duration"},
		{in: "errors<0.1", wantErr: "wants a percentage"},
		{in: "errors<101%", wantErr: "between 0% and 100%"},
		{in: "errors<lots%", wantErr: "between 0% and 100%"},
		{in: "purchse:p99<25ms", wantErr: `unknown endpoint "purchse"`},
		{in: "purchase:dropped<1%", wantErr: "whole run"},
	}
	for _, c := range cases {
		got, err := ParseSLOs(c.in)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("ParseSLOs(%q) error = %v, want one containing %q", c.in, err, c.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseSLOs(%q): %v", c.in, err)
			continue
		}
		if len(got) != len(c.want) {
			t.Errorf("ParseSLOs(%q) = %+v, want %+v", c.in, got, c.want)
			continue
		}
		for i := range got {
			got[i].Text = ""
			if got[i] != c.want[i] {
				t.Errorf("ParseSLOs(%q)[%d] = %+v, want %+v", c.in, i, got[i], c.want[i])
			}
		}
	}
}

func sloReport() *Report {
	return &Report{
		Model: "open", Scheduled: 1000, Dropped: 5, Late: 0,
		Endpoints: []EndpointReport{
			{Name: "purchase", Count: 400, P50US: 3000, P90US: 9000, P99US: 24_000, P999US: 40_000, MaxUS: 80_000, Errors: 2},
			{Name: "wallet", Count: 600, P50US: 1000, P90US: 2000, P99US: 5000, P999US: 6000, MaxUS: 7000},
		},
		All: EndpointReport{Name: "all", Count: 1000, P50US: 2000, P90US: 8000, P99US: 20_000, P999US: 40_000, MaxUS: 80_000, Errors: 2},
	}
}

func TestEvaluateSLOs(t *testing.T) {
	r := sloReport()
	cases := []struct {
		slo    string
		ok     bool
		actual string
	}{
		{"purchase:p99<25ms", true, "24.0ms"},
		{"purchase:p99<24ms", false, "24.0ms"},
		{"purchase:p99<=24ms", true, "24.0ms"},
		{"purchase:p50<3ms", false, "3.00ms"},
		{"wallet:p90<2001us", true, "2.00ms"},
		{"p999<40ms", false, "40.0ms"},
		{"max<1s", true, "80.0ms"},
		{"errors<0.1%", false, "0.20%"},
		{"errors<0.5%", true, "0.20%"},
		{"purchase:errors<0.5%", false, "0.50%"},
		{"purchase:errors<=0.5%", true, "0.50%"},
		{"wallet:errors<=0%", true, "0%"},
		{"dropped<1%", true, "0.50%"},
		{"dropped<0.5%", false, "0.50%"},
		{"late<=0%", true, "0%"},
		{"receipt:p99<1s", false, "n/a"}, // never measured: not met
	}
	for _, c := range cases {
		slos, err := ParseSLOs(c.slo)
		if err != nil {
			t.Fatal(err)
		}
		res := EvaluateSLOs(slos, r)[0]
		if res.OK != c.ok || res.Actual != c.actual {
			t.Errorf("%s: ok=%v actual=%q, want ok=%v actual=%q (%s)", c.slo, res.OK, res.Actual, c.ok, c.actual, res)
		}
	}
}

func TestFailedSLOReadsAsASentence(t *testing.T) {
	slos, _ := ParseSLOs("purchase:p99<20ms,errors<0.1%")
	res := EvaluateSLOs(slos, sloReport())
	if got := res[0].String(); got != "FAIL purchase p99 < 20.0ms: measured 24.0ms" {
		t.Errorf("got %q", got)
	}
	if got := res[1].String(); !strings.HasPrefix(got, "FAIL all errors < 0.10%: measured 0.20% (2 of 1000 requests)") {
		t.Errorf("got %q", got)
	}
	r := sloReport()
	r.SLOs = res
	if !r.Failed() {
		t.Error("a report with failed thresholds does not say Failed")
	}
}
