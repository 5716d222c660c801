package loadtest

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// SLO is one threshold from --slo, such as "purchase:p99<25ms".
type SLO struct {
	Scope     string        `json:"scope"`  // an endpoint label or "all"
	Metric    string        `json:"metric"` // p50 p90 p99 p999 max errors dropped late
	Inclusive bool          `json:"inclusive,omitempty"`
	Latency   time.Duration `json:"latency,omitempty"` // for latency metrics
	Percent   float64       `json:"percent,omitempty"` // for errors, dropped, late
	Text      string        `json:"text"`              // as written, for messages
}

var (
	latencyMetrics = map[string]float64{"p50": 50, "p90": 90, "p99": 99, "p999": 99.9, "max": 100}
	rateMetrics    = []string{"errors", "dropped", "late"}
)

// ParseSLOs parses a --slo value: comma-separated terms
// [scope:]metric<value or <=value. scope is an endpoint label
// (catalog, wallet, entitlements, purchase, purchase_retry, purchase_stale,
// entitlement_check, receipt) or "all"; a term without a scope applies to all
// requests, so "purchase:p99<25ms,errors<0.1%" bounds the purchase p99 and the
// overall error rate. Latency metrics (p50 p90 p99 p999 max) take a duration
// (25ms, 1.5s); errors takes a percentage of the scope's requests; dropped and
// late (scope all only) a percentage of scheduled requests. It returns an
// error naming the first bad term.
func ParseSLOs(s string) ([]SLO, error) {
	var out []SLO
	for _, term := range strings.Split(s, ",") {
		term = strings.TrimSpace(term)
		if term == "" {
			continue
		}
		slo, err := parseSLO(term)
		if err != nil {
			return nil, fmt.Errorf("slo %q: %w", term, err)
		}
		out = append(out, slo)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("slo %q: no thresholds", s)
	}
	return out, nil
}

func parseSLO(term string) (SLO, error) {
	slo := SLO{Scope: EndpointAll, Text: term}
	body := term
	if scope, rest, ok := strings.Cut(term, ":"); ok {
		slo.Scope = strings.TrimSpace(scope)
		body = rest
		if slo.Scope != EndpointAll && !slices.Contains(Endpoints, slo.Scope) {
			return slo, fmt.Errorf("unknown endpoint %q (want one of %s or all)", slo.Scope, strings.Join(Endpoints, ", "))
		}
	}
	i := strings.IndexByte(body, '<')
	if i < 0 {
		return slo, fmt.Errorf("want metric<value, e.g. p99<25ms or errors<0.1%%")
	}
	slo.Metric = strings.ToLower(strings.TrimSpace(body[:i]))
	value := body[i+1:]
	if strings.HasPrefix(value, "=") {
		slo.Inclusive = true
		value = value[1:]
	}
	value = strings.TrimSpace(value)
	if slo.Metric == "p99.9" {
		slo.Metric = "p999"
	}
	switch {
	case latencyMetrics[slo.Metric] > 0:
		d, err := time.ParseDuration(value)
		if err != nil || d < 0 {
			return slo, fmt.Errorf("%s wants a duration such as 25ms, got %q", slo.Metric, value)
		}
		slo.Latency = d
	case slices.Contains(rateMetrics, slo.Metric):
		num, ok := strings.CutSuffix(value, "%")
		if !ok {
			return slo, fmt.Errorf("%s wants a percentage such as 0.1%%, got %q", slo.Metric, value)
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
			return slo, fmt.Errorf("%s wants a percentage between 0%% and 100%%, got %q", slo.Metric, value)
		}
		slo.Percent = p
		if slo.Metric != "errors" && slo.Scope != EndpointAll {
			return slo, fmt.Errorf("%s applies to the whole run, not to one endpoint", slo.Metric)
		}
	case slo.Metric == "":
		return slo, fmt.Errorf("missing metric before <")
	default:
		return slo, fmt.Errorf("unknown metric %q (want p50, p90, p99, p999, max, errors, dropped or late)", slo.Metric)
	}
	return slo, nil
}

// SLOResult is the outcome of one threshold.
type SLOResult struct {
	SLO    SLO    `json:"slo"`
	OK     bool   `json:"ok"`
	Actual string `json:"actual"` // the measured value, formatted
	Detail string `json:"detail,omitempty"`
}

// EvaluateSLOs checks each threshold against the report. A threshold on an
// endpoint that saw no requests fails: a target that was never measured has
// not been met.
func EvaluateSLOs(slos []SLO, r *Report) []SLOResult {
	var out []SLOResult
	for _, slo := range slos {
		out = append(out, evaluateSLO(slo, r))
	}
	return out
}

func evaluateSLO(slo SLO, r *Report) SLOResult {
	res := SLOResult{SLO: slo}
	switch slo.Metric {
	case "dropped", "late":
		n := r.Dropped
		if slo.Metric == "late" {
			n = r.Late
		}
		if r.Scheduled == 0 {
			res.Actual, res.Detail = "n/a", "no scheduled requests (closed model or empty run)"
			res.OK = n == 0
			return res
		}
		pct := 100 * float64(n) / float64(r.Scheduled)
		res.Actual = formatPercent(pct)
		res.OK = below(pct, slo.Percent, slo.Inclusive)
		return res
	}
	ep := r.Endpoint(slo.Scope)
	if ep == nil || ep.Count == 0 {
		res.Actual, res.Detail = "n/a", "no requests to "+slo.Scope
		return res
	}
	if slo.Metric == "errors" {
		pct := 100 * float64(ep.Errors) / float64(ep.Count)
		res.Actual = formatPercent(pct)
		res.OK = below(pct, slo.Percent, slo.Inclusive)
		if !res.OK {
			res.Detail = fmt.Sprintf("%d of %d requests", ep.Errors, ep.Count)
		}
		return res
	}
	var us int64
	switch slo.Metric {
	case "p50":
		us = ep.P50US
	case "p90":
		us = ep.P90US
	case "p99":
		us = ep.P99US
	case "p999":
		us = ep.P999US
	case "max":
		us = ep.MaxUS
	}
	d := time.Duration(us) * time.Microsecond
	res.Actual = formatLatency(d)
	res.OK = below(float64(d), float64(slo.Latency), slo.Inclusive)
	return res
}

func below(actual, limit float64, inclusive bool) bool {
	if inclusive {
		return actual <= limit
	}
	return actual < limit
}

// Threshold reads as the threshold alone: "purchase p99 < 25.0ms".
func (s SLO) Threshold() string {
	op := "<"
	if s.Inclusive {
		op = "<="
	}
	limit := formatPercent(s.Percent)
	if latencyMetrics[s.Metric] > 0 {
		limit = formatLatency(s.Latency)
	}
	return fmt.Sprintf("%s %s %s %s", s.Scope, s.Metric, op, limit)
}

// String reads as the threshold and its outcome, for the report.
func (r SLOResult) String() string {
	status := "ok  "
	if !r.OK {
		status = "FAIL"
	}
	s := fmt.Sprintf("%s %s: measured %s", status, r.SLO.Threshold(), r.Actual)
	if r.Detail != "" {
		s += " (" + r.Detail + ")"
	}
	return s
}

func formatPercent(p float64) string {
	switch {
	case p == 0:
		return "0%"
	case p < 0.01:
		return strconv.FormatFloat(p, 'g', 2, 64) + "%"
	default:
		return strconv.FormatFloat(p, 'f', 2, 64) + "%"
	}
}

// formatLatency prints a latency with three significant digits in a unit a
// person reads at a glance.
func formatLatency(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Microseconds())
	case d < time.Second:
		return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', precisionFor(float64(d)/float64(time.Millisecond)), 64) + "ms"
	default:
		return strconv.FormatFloat(d.Seconds(), 'f', precisionFor(d.Seconds()), 64) + "s"
	}
}

func precisionFor(v float64) int {
	switch {
	case v < 10:
		return 2
	case v < 100:
		return 1
	default:
		return 0
	}
}
