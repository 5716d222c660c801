package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Comparison holds this run against an earlier one (--baseline), endpoint
// by endpoint.
type Comparison struct {
	RunID     string           `json:"run_id"`
	StartedAt time.Time        `json:"started_at"`
	Shape     string           `json:"shape"`
	Endpoints []EndpointChange `json:"endpoints"`
}

// EndpointChange is one endpoint then and now. An endpoint only one of the
// runs had has zeros on the other side.
type EndpointChange struct {
	Name                     string  `json:"name"`
	OldCount, NewCount       int64   `json:"-"`
	OldRate, NewRate         float64 `json:"-"`
	OldP50US, NewP50US       int64   `json:"-"`
	OldP99US, NewP99US       int64   `json:"-"`
	OldErrorPct, NewErrorPct float64 `json:"-"`
}

// endpointChangeJSON names both sides explicitly in the report.
type endpointChangeJSON struct {
	Name string       `json:"name"`
	Old  endpointSide `json:"baseline"`
	New  endpointSide `json:"this_run"`
}

type endpointSide struct {
	Count    int64   `json:"count"`
	Rate     float64 `json:"rate"`
	P50US    int64   `json:"p50_us"`
	P99US    int64   `json:"p99_us"`
	ErrorPct float64 `json:"error_pct"`
}

// MarshalJSON writes the change as {"name", "baseline": {...}, "this_run": {...}}.
func (c EndpointChange) MarshalJSON() ([]byte, error) {
	return json.Marshal(endpointChangeJSON{Name: c.Name,
		Old: endpointSide{c.OldCount, c.OldRate, c.OldP50US, c.OldP99US, c.OldErrorPct},
		New: endpointSide{c.NewCount, c.NewRate, c.NewP50US, c.NewP99US, c.NewErrorPct}})
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (c *EndpointChange) UnmarshalJSON(b []byte) error {
	var j endpointChangeJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*c = EndpointChange{Name: j.Name,
		OldCount: j.Old.Count, OldRate: j.Old.Rate, OldP50US: j.Old.P50US, OldP99US: j.Old.P99US, OldErrorPct: j.Old.ErrorPct,
		NewCount: j.New.Count, NewRate: j.New.Rate, NewP50US: j.New.P50US, NewP99US: j.New.P99US, NewErrorPct: j.New.ErrorPct}
	return nil
}

// ReadBaseline reads a report to compare with.
func ReadBaseline(path string) (*Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ReadReport(f)
	if err != nil {
		return nil, err
	}
	if r.All.Count == 0 && len(r.Endpoints) == 0 {
		return nil, fmt.Errorf("%s: the report has no endpoints to compare with", path)
	}
	return r, nil
}

// Compare returns now against old, endpoint by endpoint, "all" last.
func Compare(old, now *Report) *Comparison {
	c := &Comparison{RunID: old.RunID, StartedAt: old.StartedAt, Shape: old.Shape}
	var names []string
	for _, e := range now.Endpoints {
		names = append(names, e.Name)
	}
	for _, e := range old.Endpoints {
		if now.Endpoint(e.Name) == nil {
			names = append(names, e.Name)
		}
	}
	errPct := func(e *EndpointReport) float64 {
		if e == nil || e.Count == 0 {
			return 0
		}
		return 100 * float64(e.Errors) / float64(e.Count)
	}
	for _, name := range append(names, EndpointAll) {
		ch := EndpointChange{Name: name}
		if o := old.Endpoint(name); o != nil {
			ch.OldCount, ch.OldRate, ch.OldP50US, ch.OldP99US, ch.OldErrorPct = o.Count, o.Rate, o.P50US, o.P99US, errPct(o)
		}
		if n := now.Endpoint(name); n != nil {
			ch.NewCount, ch.NewRate, ch.NewP50US, ch.NewP99US, ch.NewErrorPct = n.Count, n.Rate, n.P50US, n.P99US, errPct(n)
		}
		c.Endpoints = append(c.Endpoints, ch)
	}
	return c
}

// change formats old → new with the relative change.
func change(old, now float64, format func(float64) string) string {
	s := format(old) + " → " + format(now)
	switch {
	case old == 0 && now == 0:
	case old == 0:
		s += " (new)"
	default:
		s += fmt.Sprintf(" (%+.0f%%)", 100*(now-old)/old)
	}
	return s
}

func usFormat(v float64) string { return formatLatency(time.Duration(v) * time.Microsecond) }

// Cells returns the rate, p50, p99 and error-rate changes, formatted.
func (c EndpointChange) Cells() [4]string {
	return [4]string{
		change(c.OldRate, c.NewRate, func(v float64) string { return fmt.Sprintf("%.1f/s", v) }),
		change(float64(c.OldP50US), float64(c.NewP50US), usFormat),
		change(float64(c.OldP99US), float64(c.NewP99US), usFormat),
		formatPercent(c.OldErrorPct) + " → " + formatPercent(c.NewErrorPct),
	}
}

// WriteText prints the comparison as a table.
func (c *Comparison) WriteText(w io.Writer) {
	fmt.Fprintf(w, "against baseline run %s (%s):\n", c.RunID, c.StartedAt.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  endpoint\trate\tp50\tp99\terrors\t")
	for _, e := range c.Endpoints {
		cells := e.Cells()
		fmt.Fprintf(tw, "  %s\t%s\t\n", e.Name, strings.Join(cells[:], "\t"))
	}
	tw.Flush()
}
