package loadtest

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// MergeReports combines the JSON reports of processes that shared one run
// (--split k/n, on one host or many) into one report. Each endpoint's HDR
// histograms are merged exactly, so the merged percentiles are those of all
// requests together, not an average of percentiles. Counts of scheduled,
// sent, late and dropped requests, players and workers add up; the window
// is the longest one (the processes ran side by side). Timeline points are
// added second by second: requests, errors and rates exactly, and a
// second's p50, p99 and max from the seconds' histograms merged, so they
// too are exact (for reports written before timelines kept histograms, the
// highest of the processes'). Thresholds are evaluated again on the merged figures and
// verification outcomes are combined. It returns an error for no reports,
// reports without histograms, or capacity-search reports.
func MergeReports(reports []*Report) (*Report, error) {
	if len(reports) == 0 {
		return nil, errors.New("no reports to merge")
	}
	first := reports[0]
	out := &Report{
		Tool: first.Tool, Model: first.Model, StartedAt: first.StartedAt, StopReason: "completed",
	}
	var (
		targets, runs, shapes []string
		stats                 = Stats{}
		window                time.Duration
		parts                 = map[string]bool{}
		seeds                 = map[uint64]bool{}
	)
	for i, r := range reports {
		if r.Capacity != nil {
			return nil, fmt.Errorf("report %d (run %s) is a capacity search: its steps ran one after another and cannot be merged", i+1, r.RunID)
		}
		if r.Model != first.Model {
			return nil, fmt.Errorf("report %d (run %s) used the %s model, report 1 the %s model", i+1, r.RunID, r.Model, first.Model)
		}
		if !slices.Contains(targets, r.Target) {
			targets = append(targets, r.Target)
		}
		runs = append(runs, r.RunID)
		shapes = append(shapes, r.Shape)
		if r.StartedAt.Before(out.StartedAt) {
			out.StartedAt = r.StartedAt
		}
		out.ElapsedMS = max(out.ElapsedMS, r.ElapsedMS)
		window = max(window, time.Duration(r.WindowMS)*time.Millisecond)
		out.Players += r.Players
		out.Workers += r.Workers
		out.Scheduled += r.Scheduled
		out.Sent += r.Sent
		out.Late += r.Late
		out.Dropped += r.Dropped
		if r.StopReason != "completed" {
			out.StopReason = r.StopReason
		}
		for _, e := range r.Endpoints {
			h, err := e.DecodeHistogram()
			if err != nil {
				return nil, fmt.Errorf("report %d (run %s): %w", i+1, r.RunID, err)
			}
			s := stats.Get(e.Name)
			s.Hist.Merge(h)
			for c, n := range e.ErrorsByCode {
				s.Errors[c] += n
			}
		}
		out.Timeline = mergeTimelines(out.Timeline, r.Timeline)
		out.Verification = mergeVerification(out.Verification, r.Verification)
		for _, n := range r.Notes {
			out.Notes = append(out.Notes, fmt.Sprintf("run %s: %s", r.RunID, n))
		}
		if r.Config != nil {
			seeds[r.Config.Seed] = true
			if r.Config.Split != "" {
				if parts[r.Config.Split] {
					return nil, fmt.Errorf("report %d (run %s) is part %s, as an earlier report is: merge each part once", i+1, r.RunID, r.Config.Split)
				}
				parts[r.Config.Split] = true
			}
		}
	}
	out.RunID = strings.Join(runs, "+")
	out.Target = strings.Join(targets, ", ")
	out.WindowMS = window.Milliseconds()
	out.Shape = fmt.Sprintf("%d reports merged: %s", len(reports), strings.Join(shapes, " | "))
	for _, name := range stats.Names() {
		out.Endpoints = append(out.Endpoints, SummarizeEndpoint(name, stats[name], window))
	}
	out.All = SummarizeEndpoint(EndpointAll, stats.All(), window)
	if first.Config != nil {
		rc := *first.Config
		rc.Split = ""
		rc.Players = out.Players
		out.Config = &rc
		var slos []SLO
		for _, text := range rc.SLOs {
			s, err := ParseSLOs(text)
			if err != nil {
				return nil, fmt.Errorf("report 1: threshold %q: %w", text, err)
			}
			slos = append(slos, s...)
		}
		out.SLOs = EvaluateSLOs(slos, out)
	}
	if len(seeds) > 1 {
		out.Notes = append(out.Notes, "the reports ran with different seeds: they were not parts of one run")
	}
	return out, nil
}

func mergeTimelines(a, b []TimelinePoint) []TimelinePoint {
	out := make([]TimelinePoint, max(len(a), len(b)))
	copy(out, a)
	for i, p := range b {
		if i >= len(a) {
			out[i] = p
			continue
		}
		q := &out[i]
		q.ElapsedMS = max(q.ElapsedMS, p.ElapsedMS)
		q.Requests += p.Requests
		q.Rate += p.Rate
		q.TargetRate += p.TargetRate
		q.Errors += p.Errors
		if h, ok := mergeEncoded(q.Histogram, q.Requests-p.Requests, p.Histogram, p.Requests); ok {
			q.Histogram = encodeHistogram(h)
			q.P50US, q.P99US, q.MaxUS = h.ValueAtQuantile(50), h.ValueAtQuantile(99), 0
			if h.TotalCount() > 0 {
				q.MaxUS = h.Max()
			}
		} else {
			q.Histogram = ""
			q.P50US = max(q.P50US, p.P50US)
			q.P99US = max(q.P99US, p.P99US)
			q.MaxUS = max(q.MaxUS, p.MaxUS)
		}
		if len(p.Endpoints) > 0 {
			eps := map[string]EndpointMoment{}
			for k, v := range q.Endpoints {
				eps[k] = v
			}
			for k, v := range p.Endpoints {
				m := eps[k]
				if h, ok := mergeEncoded(m.Histogram, m.Requests, v.Histogram, v.Requests); ok {
					m.Histogram = encodeHistogram(h)
					m.P50US, m.P99US = h.ValueAtQuantile(50), h.ValueAtQuantile(99)
				} else {
					m.Histogram = ""
					m.P50US = max(m.P50US, v.P50US)
					m.P99US = max(m.P99US, v.P99US)
				}
				m.Requests += v.Requests
				m.Errors += v.Errors
				eps[k] = m
			}
			q.Endpoints = eps
		}
	}
	return out
}

// mergeEncoded merges two encoded interval histograms holding na and nb
// requests. An interval without requests needs no histogram; one with
// requests but none (an older report) or an undecodable one makes the merge
// impossible (ok false).
func mergeEncoded(a string, na int64, b string, nb int64) (*hdrhistogram.Histogram, bool) {
	out := newHistogram()
	for _, part := range []struct {
		enc string
		n   int64
	}{{a, na}, {b, nb}} {
		if part.n == 0 {
			continue
		}
		if part.enc == "" {
			return nil, false
		}
		h, err := hdrhistogram.Decode([]byte(part.enc))
		if err != nil || h.TotalCount() != part.n {
			return nil, false
		}
		out.Merge(h)
	}
	return out, true
}

func mergeVerification(a, b *Verification) *Verification {
	switch {
	case b == nil:
		return a
	case a == nil:
		c := *b
		c.Counts = ProblemCount{}
		for k, v := range b.Counts {
			c.Counts[k] = v
		}
		c.Problems = slices.Clone(b.Problems)
		c.Notes = slices.Clone(b.Notes)
		c.Creators = slices.Clone(b.Creators)
		return &c
	}
	a.OK = a.OK && b.OK
	a.Players += b.Players
	a.PurchasesObserved += b.PurchasesObserved
	a.GrantsObserved += b.GrantsObserved
	a.PostingsObserved += b.PostingsObserved
	a.TipsObserved += b.TipsObserved
	// Each process of a split run creates creators of its own (their ids
	// hold its run id), so their checks add up side by side.
	a.Creators = append(a.Creators, b.Creators...)
	if a.CreatorProgram == nil {
		a.CreatorProgram = b.CreatorProgram
	}
	a.LedgerTransactions += b.LedgerTransactions
	a.Unconfirmed += b.Unconfirmed
	a.Problems = append(a.Problems, b.Problems...)
	a.Notes = append(a.Notes, b.Notes...)
	for k, v := range b.Counts {
		a.Counts[k] += v
	}
	if b.Audit != nil && (a.Audit == nil || !b.Audit.OK) {
		a.Audit = b.Audit // the audit is global: any failing one stands for all
	}
	return a
}

// mergeCommand runs `coinop loadtest merge a.json b.json -o merged.json`.
func mergeCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("coinop loadtest merge", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `usage: coinop loadtest merge [-o merged.json] [--html merged.html] a.json b.json ...

Merges the --out reports of processes that split one run (--split k/n) into
one report, HDR histograms merged exactly, and prints its table. Exit status:
0 ok, 1 a threshold or verification failed, 2 usage error.

`)
		fs.PrintDefaults()
	}
	var outPath, htmlPath string
	fs.StringVar(&outPath, "o", "", "write the merged report as JSON to this file")
	fs.StringVar(&htmlPath, "html", "", "write the merged report as HTML to this file")
	// Files and flags in any order: the flag package stops at the first
	// file name, so parse what follows each file again.
	var files []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return ExitOK
			}
			return ExitSetup
		}
		if fs.NArg() == 0 {
			break
		}
		files = append(files, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(files) < 2 {
		fmt.Fprintln(stderr, "coinop loadtest merge: give at least two report files")
		return ExitSetup
	}
	var reports []*Report
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(stderr, "coinop loadtest merge: %v\n", err)
			return ExitSetup
		}
		r, err := ReadReport(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "coinop loadtest merge: %s: %v\n", path, err)
			return ExitSetup
		}
		reports = append(reports, r)
	}
	merged, err := MergeReports(reports)
	if err != nil {
		fmt.Fprintf(stderr, "coinop loadtest merge: %v\n", err)
		return ExitSetup
	}
	merged.WriteTable(stdout)
	if err := writeFiles(Config{Out: outPath, HTML: htmlPath}, merged, stdout); err != nil {
		fmt.Fprintf(stderr, "coinop loadtest merge: %v\n", err)
		return ExitSetup
	}
	if merged.Failed() {
		fmt.Fprintln(stdout, "result: FAILED")
		return ExitFailed
	}
	fmt.Fprintln(stdout, "result: ok")
	return ExitOK
}
