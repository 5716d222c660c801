package loadtest

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Exit codes of Command.
const (
	ExitOK     = 0 // the run completed, thresholds held, verification found nothing
	ExitFailed = 1 // a threshold failed or verification found a problem
	ExitSetup  = 2 // bad flags, setup failed, or the run could not complete
)

// verifyTimeout bounds the verification phase, which reads every player's
// ledger, so even a server that answers slowly cannot keep the tool running.
const verifyTimeout = 5 * time.Minute

// Command runs `coinop loadtest` with args (flags), writing progress and
// the report to stdout and errors to stderr. It returns the process exit
// code: 0 ok, 1 thresholds failed or verification found a problem, 2 usage
// or setup error (an interrupted run also returns 2: it proved nothing).
func Command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return command(ctx, args, os.Getenv, stdout, stderr)
}

func command(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "merge" {
		return mergeCommand(args[1:], stdout, stderr)
	}
	cfg, err := ParseArgs(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "coinop loadtest: %v\n", err)
		return ExitSetup
	}
	if w := loopbackWarning(cfg); w != "" {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "coinop loadtest: run %s against %s: %s\n", cfg.RunID, cfg.URL, cfg.Describe())

	var baseline *Report
	if cfg.Baseline != "" {
		if baseline, err = ReadBaseline(cfg.Baseline); err != nil {
			fmt.Fprintf(stderr, "coinop loadtest: --baseline: %v\n", err)
			return ExitSetup
		}
	}

	client := NewClient(cfg.URL, cfg.PoolSize(), cfg.Timeout, cfg.AdminToken, cfg.ServerToken)
	defer client.Close()
	obs := NewObserved()

	fx, err := Setup(ctx, cfg, client, obs, time.Now())
	if err != nil {
		fmt.Fprintf(stderr, "coinop loadtest: setup: %v\n", err)
		return ExitSetup
	}
	if fx.Store != nil && fx.Store.api != nil {
		defer fx.Store.api.close()
	}
	fmt.Fprintf(stdout, "setup: %d players, funded %s each; catalog v%d: %d offers\n",
		len(fx.Players), fundingText(fx.Funding), fx.CatalogVersion, len(fx.Offers))
	if len(cfg.Scenario.Archetypes) > 0 {
		fmt.Fprintf(stdout, "archetypes: %s\n", fx.KindsText())
	}
	for _, n := range fx.Notes {
		fmt.Fprintf(stdout, "note: %s\n", n)
	}

	var report *Report
	interrupted := false
	if cfg.FindMax {
		report, err = FindMax(ctx, cfg, fx, client, obs, stdout)
		interrupted = ctx.Err() != nil
	} else {
		var res *Result
		res, err = Run(ctx, cfg, fx, client, obs, stdout)
		if err == nil {
			report = NewReport(cfg, fx, res)
			interrupted = res.Interrupted
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "coinop loadtest: %v\n", err)
		return ExitSetup
	}

	if interrupted {
		report.Notes = append(report.Notes, "interrupted: verification skipped")
	} else if cfg.Verify {
		vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		v, err := Verify(vctx, client, fx, obs)
		cancel()
		if err != nil {
			fmt.Fprintf(stderr, "coinop loadtest: verification did not finish: %v\n", err)
			report.Notes = append(report.Notes, "verification did not finish: "+err.Error())
			v = &Verification{Problems: []Problem{{Kind: ProblemUnverifiable, Detail: err.Error()}}}
		}
		if fx.Store != nil && err == nil {
			// The store's side: every redemption and refund had exactly
			// one effect (after refunds have had time to apply).
			cctx, cancel := context.WithTimeout(ctx, verifyTimeout+cfg.Chaos.Wait)
			probs, settled, cerr := ChaosVerify(cctx, client, fx.Store, stdout)
			cancel()
			if cerr != nil {
				probs = append(probs, Problem{Kind: ProblemUnverifiable, Detail: "store chaos verification did not finish: " + cerr.Error()})
			}
			fx.Store.stats.SettledMS = settled.Milliseconds()
			for _, p := range probs {
				v.Problems = append(v.Problems, p)
				v.Counts[p.Kind]++
			}
			v.OK = v.OK && len(probs) == 0
		}
		report.Verification = v
	} else {
		report.Notes = append(report.Notes, "verification skipped (--no-verify)")
	}

	if baseline != nil {
		report.Baseline = Compare(baseline, report)
	}
	if fx.Store != nil {
		cs := fx.Store.summary()
		report.Chaos = &cs
	}
	report.WriteTable(stdout)
	code := ExitOK
	if report.Failed() {
		code = ExitFailed
	}
	if interrupted {
		code = ExitSetup
	}
	if err := writeFiles(cfg, report, stdout); err != nil {
		fmt.Fprintf(stderr, "coinop loadtest: %v\n", err)
		return ExitSetup
	}
	switch code {
	case ExitFailed:
		fmt.Fprintf(stdout, "result: FAILED: %s\n", strings.Join(report.FailureReasons(), "; "))
	case ExitOK:
		fmt.Fprintln(stdout, "result: ok")
	}
	return code
}

// loopbackWarning is the line printed before load goes anywhere but this
// machine: allowed (studios test staging), but never by accident.
func loopbackWarning(cfg Config) string {
	if IsLoopback(cfg.URL) {
		return ""
	}
	return fmt.Sprintf("WARNING: %s is not a loopback address: this run sends real load (up to %d requests over %s) to that host",
		cfg.URL, cfg.MaxRequests, cfg.RunLength())
}

func writeFiles(cfg Config, r *Report, stdout io.Writer) error {
	write := func(path string, f func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		out, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := f(out); err != nil {
			out.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		fmt.Fprintf(stdout, "wrote %s\n", path)
		return nil
	}
	if err := write(cfg.Out, r.WriteJSON); err != nil {
		return err
	}
	return write(cfg.HTML, func(w io.Writer) error { return WriteHTML(w, r) })
}

func fundingText(m map[string]int64) string {
	if len(m) == 0 {
		return "nothing"
	}
	return formatAssets(m)
}
