package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// loadtestRunner drives the server with `coinop loadtest` (the binary under
// test, built once) at a fixed rate and reads one endpoint from its JSON
// report. Secrets travel in the environment, never on the command line.
type loadtestRunner struct {
	Bin      string
	URL      string
	Endpoint string   // the report endpoint measured, e.g. loadtest.EndpointPurchase
	Args     []string // the scenario: --scenario, --players, --tokens, --fund …
	Env      []string // COINOP_JWT_SECRET, COINOP_ADMIN_TOKEN, COINOP_SERVER_TOKEN
	Dir      string
}

func (r loadtestRunner) Run(ctx context.Context, rate float64, d time.Duration) (Measurement, error) {
	out := filepath.Join(r.Dir, "loadtest-report.json")
	// The schedule bounds the run; --max-requests is a second bound with
	// room for the schedule's own rounding.
	budget := int64(math.Ceil(rate*d.Seconds()*1.1)) + 100
	args := append([]string{"loadtest",
		"--url", r.URL,
		"--rate", strconv.FormatFloat(rate, 'f', 0, 64),
		"--duration", d.String(),
		"--max-requests", strconv.FormatInt(budget, 10),
		"--no-verify", "--out", out,
	}, r.Args...)
	cmd := exec.CommandContext(ctx, r.Bin, args...)
	cmd.Env = append(withoutCoinopEnv(os.Environ()), r.Env...)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return Measurement{}, fmt.Errorf("coinop loadtest: %v\n%s", err, tail(string(output), 3000))
	}
	f, err := os.Open(out)
	if err != nil {
		return Measurement{}, err
	}
	defer f.Close()
	rep, err := loadtest.ReadReport(f)
	if err != nil {
		return Measurement{}, err
	}
	m, err := measurementFromReport(rep, r.Endpoint, rate)
	if err != nil {
		return Measurement{}, fmt.Errorf("%w\n%s", err, tail(string(output), 3000))
	}
	m.GeneratorCPU = childCPU(cmd.ProcessState)
	return m, nil
}

// measurementFromReport reads one endpoint of a load test report. Requests
// the tool dropped (due, but every worker busy) count against the run.
func measurementFromReport(rep *loadtest.Report, endpoint string, target float64) (Measurement, error) {
	e := rep.Endpoint(endpoint)
	if e == nil || e.Count == 0 {
		return Measurement{}, fmt.Errorf("the load test report has no %s requests (notes: %s)", endpoint, strings.Join(rep.Notes, "; "))
	}
	return Measurement{
		Target:   target,
		Achieved: e.Rate,
		Requests: e.Count,
		Errors:   e.Errors,
		Dropped:  rep.Dropped,
		P50:      time.Duration(e.P50US) * time.Microsecond,
		P99:      time.Duration(e.P99US) * time.Microsecond,
		Window:   time.Duration(rep.WindowMS) * time.Millisecond,
	}, nil
}
