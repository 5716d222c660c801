package loadtest

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// WriteHTML writes the report as one self-contained page: styles inline,
// charts as inline SVG drawn here, no scripts, fonts or images fetched from
// anywhere, so it can be attached to a ticket or opened offline.
func WriteHTML(w io.Writer, r *Report) error {
	data := struct {
		R      *Report
		Rows   []EndpointReport
		Charts []template.HTML
	}{R: r, Rows: append(append([]EndpointReport(nil), r.Endpoints...), r.All)}
	data.Charts = []template.HTML{
		latencyOverTime(r),
		p99ByEndpoint(r),
		throughputOverTime(r),
		percentileDistribution(r),
	}
	return pageTemplate.Execute(w, data)
}

var pageTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"lat": func(us int64) string { return formatLatency(time.Duration(us) * time.Microsecond) },
	"pct": func(n, of int64) string {
		if of == 0 {
			return "0%"
		}
		return formatPercent(100 * float64(n) / float64(of))
	},
	"ms": func(ms int64) string {
		return (time.Duration(ms) * time.Millisecond).Round(10 * time.Millisecond).String()
	},
	"codes":  func(m map[string]int64) string { return formatAssets(m) },
	"micro":  microText,
	"join":   strings.Join,
	"mul100": func(v float64) float64 { return 100 * v },
	"int64":  func(v float64) int64 { return int64(v) },
	"stages": formatStages,
	"weights": func(m map[string]float64) string {
		var parts []string
		for _, k := range sortedKeys(m) {
			parts = append(parts, fmt.Sprintf("%s=%g", k, m[k]))
		}
		return strings.Join(parts, ", ")
	},
	"time": func(t time.Time) string { return t.Format(time.RFC3339) },
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coinop loadtest {{.R.RunID}}</title>
<style>
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1040px; padding: 0 16px; color: #1d2330; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #5a6375; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e3e6ec; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
tr.all td { font-weight: 600; border-top: 2px solid #9aa3b5; }
table.kv td { text-align: left; white-space: normal; } table.kv td:first-child { width: 160px; color: #5a6375; }
td.codes { text-align: left; white-space: normal; color: #8a2c2c; font-size: 12px; }
.ok { color: #1c7c3c; font-weight: 600; } .fail { color: #b3261e; font-weight: 600; }
.banner { padding: 10px 14px; border-radius: 6px; margin: 16px 0; font-weight: 600; }
.banner.ok { background: #e6f4ea; } .banner.fail { background: #fce8e6; }
svg { display: block; margin: 8px 0 20px; max-width: 100%; height: auto; background: #fbfcfe; border: 1px solid #e3e6ec; border-radius: 6px; }
svg text { font: 11px system-ui, sans-serif; fill: #4a5263; }
svg .title { font-size: 13px; font-weight: 600; fill: #1d2330; }
svg .grid { stroke: #e6e9ef; } svg .axis { stroke: #9aa3b5; }
ul.problems li { color: #8a2c2c; }
</style>
</head>
<body>
<h1>coinop loadtest</h1>
<div class="meta">run {{.R.RunID}} against <code>{{.R.Target}}</code>, started {{time .R.StartedAt}}<br>
{{.R.Shape}}<br>
{{.R.Sent}} requests sent in {{ms .R.WindowMS}} ({{.R.StopReason}}){{if eq .R.Model "open"}}; {{.R.Scheduled}} scheduled, {{.R.Late}} late, {{.R.Dropped}} dropped{{end}}; {{.R.Players}} players, {{.R.Workers}} {{if eq .R.Model "open"}}workers{{else}}virtual players{{end}}</div>
{{if .R.Failed}}<div class="banner fail">FAILED: {{join .R.FailureReasons "; "}}</div>{{else}}<div class="banner ok">PASSED{{with .R.SLOs}}: {{len .}} thresholds held{{end}}</div>{{end}}
{{with .R.Capacity}}<h2>Capacity</h2>
<p>{{if .MaxRate}}Highest sustained rate <b>{{printf "%.0f" .MaxRate}} req/s</b>{{if .FirstFailure}} ({{printf "%.0f" .FirstFailure}} req/s failed){{end}}: <b>{{.CCU}} CCU</b> at {{.RPM}} requests per player per minute{{with .Headroom}}; headroom {{printf "%+.0f" (mul100 .)}}% over the expected {{$.R.Capacity.ExpectedCCU}} CCU{{end}}.{{else}}No rate was sustained.{{end}}
{{with .BrokeFirst}}<br>Broke first: {{join . "; "}}{{end}}</p>
<table><tr><th>step</th><th>achieved</th><th>p50</th><th>p99</th><th>errors</th><th>verdict</th></tr>
{{range .Steps}}<tr><td>{{printf "%.0f" .Rate}} req/s</td><td>{{printf "%.1f" .Achieved}}/s</td><td>{{lat .P50US}}</td><td>{{lat .P99US}}</td><td>{{.Errors}} of {{.Requests}}</td><td class="codes">{{if .OK}}<span class="ok">ok</span>{{else}}{{join .Failed "; "}}{{end}}</td></tr>
{{end}}</table>{{end}}

<h2>Latency by endpoint</h2>
<p class="meta">Open model latency counts from the moment each request was due, not when it was sent, so queueing in a saturated server shows up here.</p>
<table>
<tr><th>endpoint</th><th>count</th><th>rate/s</th><th>p50</th><th>p90</th><th>p99</th><th>p99.9</th><th>max</th><th>errors</th><th>by code</th></tr>
{{range .Rows}}<tr{{if eq .Name "all"}} class="all"{{end}}><td>{{.Name}}</td><td>{{.Count}}</td><td>{{printf "%.1f" .Rate}}</td><td>{{lat .P50US}}</td><td>{{lat .P90US}}</td><td>{{lat .P99US}}</td><td>{{lat .P999US}}</td><td>{{lat .MaxUS}}</td><td>{{.Errors}} ({{pct .Errors .Count}})</td><td class="codes">{{codes .ErrorsByCode}}</td></tr>
{{end}}</table>

{{with .R.Chaos}}<h2>Store chaos</h2>
<p>{{.Minted}} fake App Store transactions minted, {{.Redeemed}} redeemed, {{.Unanswered}} unanswered; {{.Refunds}} refunded in {{.Waves}} waves through {{.Deliveries}} notification deliveries ({{.Duplicates}} duplicates, {{.Abandoned}} abandoned after 1 ms and redelivered, all shuffled); refunds reached the ledger {{ms .SettledMS}} after the load. Verification below checks each redemption and refund had exactly one effect.</p>{{end}}

{{with .R.Baseline}}<h2>Against the baseline</h2>
<p class="meta">run {{.RunID}}, started {{time .StartedAt}}: {{.Shape}}</p>
<table><tr><th>endpoint</th><th>rate</th><th>p50</th><th>p99</th><th>errors</th></tr>
{{range .Endpoints}}{{$c := .Cells}}<tr{{if eq .Name "all"}} class="all"{{end}}><td>{{.Name}}</td><td>{{index $c 0}}</td><td>{{index $c 1}}</td><td>{{index $c 2}}</td><td>{{index $c 3}}</td></tr>
{{end}}</table>{{end}}

{{with .R.Server}}<h2>Server side (/metrics)</h2>
<table class="kv">
<tr><td>CPU</td><td>{{printf "%.2f" .CPUCores}} cores mean, {{printf "%.2f" .PeakCores}} peak{{if .MaxRSSMB}}; RSS {{printf "%.0f" .MaxRSSMB}} MB{{end}}{{if .Goroutines}}; {{printf "%.0f" .Goroutines}} goroutines at most{{end}}</td></tr>
<tr><td>Postgres pool</td><td>{{printf "%.0f" .PoolAcquires}} acquires, {{printf "%.0f" .PoolWaits}} waited for a connection{{if .PoolWaits}} (mean {{lat (int64 .PoolWaitMeanUS)}}){{end}}, at most {{printf "%.0f" .PoolMaxInUse}} of {{printf "%.0f" .PoolMaxConns}} in use</td></tr>
<tr><td>Cache</td><td>hit ratio {{printf "%.1f" (mul100 .CacheHitRatio)}}% ({{printf "%.0f" .CacheHits}} hits, {{printf "%.0f" .CacheMisses}} misses){{if .CacheBypass}}, {{printf "%.0f" .CacheBypass}} bypassed{{end}}{{if .RedisErrors}}, {{printf "%.0f" .RedisErrors}} Redis errors{{end}}</td></tr>
<tr><td>Responses</td><td>{{range $k, $v := .ResponsesByStatus}}{{$k}}: {{printf "%.0f" $v}} &nbsp; {{end}}</td></tr>
</table>
{{with .Routes}}<table><tr><th>route (server's own latency)</th><th>requests</th><th>mean</th><th>p99 at most</th></tr>
{{range .}}<tr><td>{{.Route}}</td><td>{{printf "%.0f" .Requests}}</td><td>{{lat (int64 .MeanUS)}}</td><td>{{if .P99AboveUS}}above {{lat (int64 .P99AboveUS)}}{{else}}{{lat (int64 .P99US)}}{{end}}</td></tr>
{{end}}</table>{{end}}{{end}}

{{with .R.Config}}<h2>Run configuration</h2>
<p class="meta">Everything that decides the request sequence; <code>coinop loadtest --replay report.json</code> runs it again.</p>
<table class="kv">
<tr><td>seed</td><td>{{.Seed}}</td></tr>
<tr><td>load</td><td>{{.Model}} model{{if .Stages}}, stages {{stages .Stages}}{{else if eq .Model "open"}}, {{.Rate}} req/s{{else}}, {{.VUs}} virtual players{{end}}; {{.Players}} players; at most {{.MaxRequests}} requests{{with .Split}}; part {{.}}{{end}}</td></tr>
<tr><td>mix</td><td>{{weights .Scenario.Mix}}</td></tr>
<tr><td>purchase shares</td><td>retry {{.Scenario.Purchase.RetryShare}}, stale price {{.Scenario.Purchase.StalePriceShare}}, quantity 1..{{.Scenario.Purchase.MaxQuantity}}</td></tr>
{{with .Scenario.Items}}<tr><td>item weights</td><td>{{weights .}}</td></tr>{{end}}
{{with .Archetypes}}<tr><td>archetypes</td><td>{{join . "; "}}</td></tr>{{end}}
<tr><td>catalog</td><td>v{{.CatalogVersion}}: {{len .Offers}} offers</td></tr>
{{with $.R.Bought}}<tr><td>bought</td><td>{{codes .}}</td></tr>{{end}}
{{with .SLOs}}<tr><td>thresholds</td><td>{{join . ", "}}</td></tr>{{end}}
</table>{{end}}

{{with .R.SLOs}}<h2>Thresholds</h2>
<ul>{{range .}}<li><span class="{{if .OK}}ok{{else}}fail{{end}}">{{if .OK}}ok{{else}}FAIL{{end}}</span> {{.SLO.Threshold}}: measured {{.Actual}}{{with .Detail}} ({{.}}){{end}}</li>{{end}}</ul>{{end}}

{{with .R.Verification}}<h2>Verification</h2>
<p><span class="{{if .OK}}ok{{else}}fail{{end}}">{{if .OK}}consistent{{else}}{{len .Problems}} problems{{end}}</span>:
{{.Players}} players, {{.PurchasesObserved}} purchases and {{.GrantsObserved}} grants observed{{if .TipsObserved}}, {{.TipsObserved}} tips{{end}}, {{.LedgerTransactions}} ledger transactions read back{{if .Unconfirmed}}, {{.Unconfirmed}} unconfirmed{{end}}.</p>
{{with .Creators}}<h3>Creator earnings</h3>
<p>Each creator's earned_micro (pending included) against the exact sum of the shares of what the run saw succeed: purchases and spends under its code, and tips less the fee{{with $.R.Verification.CreatorProgram}} ({{.}}){{end}}.</p>
<table><tr><th>creator</th><th>code</th><th>players</th><th>credited</th><th>tips</th><th>expected</th><th>earned</th><th></th></tr>
{{range .}}<tr><td>{{.CreatorID}}</td><td>{{.Code}}</td><td>{{.Players}}</td><td>{{.Credited}}</td><td>{{.Tips}}</td><td>{{micro .ExpectedMicro}}</td><td>{{micro .EarnedMicro}}</td><td><span class="{{if .OK}}ok{{else}}fail{{end}}">{{if .OK}}exact{{else}}MISMATCH{{end}}</span></td></tr>
{{end}}</table>{{end}}
{{with .Problems}}<ul class="problems">{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
{{with .Notes}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}{{end}}

<h2>Charts</h2>
{{range .Charts}}{{.}}
{{end}}
{{with .R.Notes}}<h2>Notes</h2><ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}
</body>
</html>
`))

// palette gives each endpoint a stable colour.
var palette = []string{"#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00", "#b82e2e", "#316395"}

func colorFor(name string) string {
	if name == EndpointAll {
		return "#1d2330"
	}
	for i, ep := range Endpoints {
		if ep == name {
			return palette[i%len(palette)]
		}
	}
	h := 0
	for _, c := range name {
		h = h*31 + int(c)
	}
	return palette[(h%len(palette)+len(palette))%len(palette)]
}

type series struct {
	name  string
	color string
	dash  bool
	x, y  []float64
}

type tick struct {
	at    float64
	label string
}

// chart is a minimal line chart rendered to SVG.
type chart struct {
	id, title, xLabel, yLabel string
	series                    []series
	xMin, xMax                float64
	xTicks                    []tick // nil: evenly spaced numbers
	yFormat                   func(float64) string
	limits                    []limit // horizontal threshold lines
}

// limit is a horizontal line across a chart, such as a latency SLO.
type limit struct {
	y     float64
	label string
	color string
}

const (
	chartW, chartH                       = 980, 320
	padLeft, padRight, padTop, padBottom = 70, 20, 48, 44
)

func (c chart) svg() template.HTML {
	var b strings.Builder
	fmt.Fprintf(&b, `<svg id="%s" viewBox="0 0 %d %d" role="img" aria-label="%s">`, c.id, chartW, chartH, template.HTMLEscapeString(c.title))
	fmt.Fprintf(&b, `<text class="title" x="%d" y="18">%s</text>`, padLeft, template.HTMLEscapeString(c.title))

	yMax := 0.0
	for _, s := range c.series {
		for _, v := range s.y {
			yMax = math.Max(yMax, v)
		}
	}
	if len(c.series) == 0 || yMax == 0 {
		c.limits = nil
	}
	for _, l := range c.limits {
		yMax = math.Max(yMax, l.y*1.1) // keep the line and its label inside the plot
	}
	if len(c.series) == 0 || yMax == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d">no data</text></svg>`, chartW/2-20, chartH/2)
		return template.HTML(b.String())
	}
	yStep := niceStep(yMax / 5)
	yTop := math.Ceil(yMax/yStep) * yStep
	if c.xMax <= c.xMin {
		c.xMax = c.xMin + 1
	}
	plotW, plotH := float64(chartW-padLeft-padRight), float64(chartH-padTop-padBottom)
	px := func(x float64) float64 { return padLeft + (x-c.xMin)/(c.xMax-c.xMin)*plotW }
	py := func(y float64) float64 { return padTop + plotH - y/yTop*plotH }

	for y := 0.0; y <= yTop+yStep/2; y += yStep {
		fmt.Fprintf(&b, `<line class="grid" x1="%d" x2="%d" y1="%.1f" y2="%.1f"/>`, padLeft, chartW-padRight, py(y), py(y))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, py(y)+4, template.HTMLEscapeString(c.yFormat(y)))
	}
	ticks := c.xTicks
	if ticks == nil {
		step := niceStep((c.xMax - c.xMin) / 8)
		for x := math.Ceil(c.xMin/step) * step; x <= c.xMax+step/1000; x += step {
			ticks = append(ticks, tick{x, strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".")})
		}
	}
	for _, t := range ticks {
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%d" y2="%d"/>`, px(t.at), px(t.at), padTop, chartH-padBottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, px(t.at), chartH-padBottom+16, template.HTMLEscapeString(t.label))
	}
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/>`, padLeft, chartW-padRight, chartH-padBottom, chartH-padBottom)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" x2="%d" y1="%d" y2="%d"/>`, padLeft, padLeft, padTop, chartH-padBottom)
	fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, padLeft+plotW/2, chartH-8, template.HTMLEscapeString(c.xLabel))
	fmt.Fprintf(&b, `<text x="14" y="%.1f" text-anchor="middle" transform="rotate(-90 14 %.1f)">%s</text>`, padTop+plotH/2, padTop+plotH/2, template.HTMLEscapeString(c.yLabel))

	for _, l := range c.limits {
		fmt.Fprintf(&b, `<line class="slo" x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5" stroke-dasharray="8 4"/>`,
			padLeft, chartW-padRight, py(l.y), py(l.y), l.color)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" style="fill:%s">%s</text>`,
			chartW-padRight-4, py(l.y)-4, l.color, template.HTMLEscapeString(l.label))
	}
	lx := float64(padLeft)
	for _, s := range c.series {
		var pts []string
		for i := range s.x {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(s.x[i]), py(s.y[i])))
		}
		dash := ""
		if s.dash {
			dash = ` stroke-dasharray="5 4"`
		}
		name := template.HTMLEscapeString(s.name)
		if len(pts) == 1 {
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"><title>%s</title></circle>`,
				strings.Split(pts[0], ",")[0], strings.Split(pts[0], ",")[1], s.color, name)
		} else {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2"%s points="%s"><title>%s</title></polyline>`, s.color, dash, strings.Join(pts, " "), name)
		}
		// Legend along the top, one swatch per series.
		fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="34" y2="34" stroke="%s" stroke-width="3"%s/><text x="%.1f" y="38">%s</text>`, lx, lx+18, s.color, dash, lx+22, name)
		lx += 30 + 7*float64(len(s.name))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// niceStep rounds a raw step up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*mag {
			return m * mag
		}
	}
	return 10 * mag
}

func msFormat(v float64) string {
	if v == 0 {
		return "0"
	}
	return formatLatency(time.Duration(v * float64(time.Millisecond)))
}

func timeSeries(r *Report, f func(TimelinePoint) (float64, bool)) (xs, ys []float64) {
	for _, p := range r.Timeline {
		if y, ok := f(p); ok {
			xs = append(xs, float64(p.ElapsedMS)/1000)
			ys = append(ys, y)
		}
	}
	return xs, ys
}

func timeRange(r *Report) float64 {
	if n := len(r.Timeline); n > 0 {
		return float64(r.Timeline[n-1].ElapsedMS) / 1000
	}
	return 1
}

func latencyOverTime(r *Report) template.HTML {
	c := chart{id: "latency-over-time", title: "Latency over time, all requests (per second, by completion time)",
		xLabel: "seconds into the run", yLabel: "latency", xMax: timeRange(r), yFormat: msFormat}
	for _, m := range []struct {
		name string
		dash bool
		f    func(TimelinePoint) int64
	}{
		{"p50", false, func(p TimelinePoint) int64 { return p.P50US }},
		{"p99", false, func(p TimelinePoint) int64 { return p.P99US }},
		{"max", true, func(p TimelinePoint) int64 { return p.MaxUS }},
	} {
		xs, ys := timeSeries(r, func(p TimelinePoint) (float64, bool) { return float64(m.f(p)) / 1000, p.Requests > 0 })
		color := map[string]string{"p50": "#3366cc", "p99": "#dc3912", "max": "#999999"}[m.name]
		c.series = append(c.series, series{name: m.name, color: color, dash: m.dash, x: xs, y: ys})
	}
	c.limits = sloLines(r, func(s SLO) bool { return s.Scope == EndpointAll })
	return c.svg()
}

func p99ByEndpoint(r *Report) template.HTML {
	c := chart{id: "p99-by-endpoint", title: "p99 latency over time by endpoint",
		xLabel: "seconds into the run", yLabel: "p99 latency", xMax: timeRange(r), yFormat: msFormat}
	for _, e := range r.Endpoints {
		xs, ys := timeSeries(r, func(p TimelinePoint) (float64, bool) {
			m, ok := p.Endpoints[e.Name]
			return float64(m.P99US) / 1000, ok && m.Requests > 0
		})
		c.series = append(c.series, series{name: e.Name, color: colorFor(e.Name), x: xs, y: ys})
	}
	c.limits = sloLines(r, func(s SLO) bool { return s.Metric == "p99" })
	return c.svg()
}

// sloLines are the latency thresholds that keep, as horizontal lines.
func sloLines(r *Report, keep func(SLO) bool) []limit {
	var out []limit
	for _, res := range r.SLOs {
		s := res.SLO
		if latencyMetrics[s.Metric] == 0 || !keep(s) {
			continue
		}
		color := "#1c7c3c"
		if !res.OK {
			color = "#b3261e"
		}
		out = append(out, limit{y: float64(s.Latency) / float64(time.Millisecond), label: "SLO " + s.Threshold(), color: color})
	}
	return out
}

func throughputOverTime(r *Report) template.HTML {
	c := chart{id: "throughput-over-time", title: "Throughput and errors over time",
		xLabel: "seconds into the run", yLabel: "per second", xMax: timeRange(r),
		yFormat: func(v float64) string { return fmt.Sprintf("%g", v) }}
	if r.Model == "open" {
		xs, ys := timeSeries(r, func(p TimelinePoint) (float64, bool) { return p.TargetRate, true })
		c.series = append(c.series, series{name: "target req/s", color: "#999999", dash: true, x: xs, y: ys})
	}
	xs, ys := timeSeries(r, func(p TimelinePoint) (float64, bool) { return p.Rate, true })
	c.series = append(c.series, series{name: "completed req/s", color: "#3366cc", x: xs, y: ys})
	xs, ys = timeSeries(r, func(p TimelinePoint) (float64, bool) {
		if p.Requests == 0 {
			return 0, true
		}
		return p.Rate * float64(p.Errors) / float64(p.Requests), true
	})
	c.series = append(c.series, series{name: "errors/s", color: "#b3261e", dash: true, x: xs, y: ys})
	return c.svg()
}

// nines maps a percentile to its distance in nines: 90% → 1, 99% → 2.
func nines(p float64) float64 {
	if p >= 100 {
		return math.Inf(1)
	}
	return -math.Log10(1 - p/100)
}

func percentileDistribution(r *Report) template.HTML {
	c := chart{id: "percentile-distribution", title: "Latency by percentile (HdrHistogram)",
		xLabel: "percentile", yLabel: "latency", yFormat: msFormat}
	maxN := 1.0
	for _, e := range append(append([]EndpointReport(nil), r.Endpoints...), r.All) {
		var xs, ys []float64
		for _, d := range e.Distribution {
			if d.Percentile >= 100 {
				continue // the maximum is in the table; it has no place on a nines axis
			}
			xs = append(xs, nines(d.Percentile))
			ys = append(ys, float64(d.US)/1000)
		}
		if len(xs) > 0 {
			maxN = math.Max(maxN, xs[len(xs)-1])
		}
		c.series = append(c.series, series{name: e.Name, color: colorFor(e.Name), dash: e.Name == EndpointAll, x: xs, y: ys})
	}
	c.xMax = math.Ceil(maxN)
	labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%"}
	for i := 0; i <= int(c.xMax) && i < len(labels); i++ {
		c.xTicks = append(c.xTicks, tick{float64(i), labels[i]})
	}
	return c.svg()
}
