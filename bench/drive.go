package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// The catalog pair needs a generator that can hold the 200 path: `coinop
// loadtest` revalidates the catalog with If-None-Match after each player's
// first read, so nearly all its catalog reads are 304s. `bench drive` is a
// small open-model generator made of the load tool's own parts (its
// schedule, HTTP client and HDR recorder), so latency is measured the same
// way, from each request's due time. It runs as a child process, like
// `coinop loadtest`, so generator and server never share a Go runtime.

// drive is the "bench drive" subcommand: it sends GET path at a fixed rate
// and prints one Measurement as JSON.
func drive(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench drive", flag.ContinueOnError)
	url := fs.String("url", "", "base URL")
	path := fs.String("path", "/v1/catalog", "path to GET")
	rate := fs.Float64("rate", 100, "requests per second")
	d := fs.Duration("duration", 3*time.Second, "length of the run")
	inm := fs.String("if-none-match", "", "If-None-Match header to send")
	expect := fs.Int("expect", http.StatusOK, "status every answer must have")
	timeout := fs.Duration("timeout", 5*time.Second, "per-request timeout")
	spread := fs.Int("spread", 0, "replace {n} in -path with 1 to this, in turn (one path per player)")
	auth := fs.String("authorization", "", "Authorization header to send (taken from BENCH_DRIVE_AUTHORIZATION when empty, so a token stays off the command line)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !loadtest.IsLoopback(*url) {
		return fmt.Errorf("bench drive sends load to loopback addresses only, not %q", *url)
	}
	sched, err := loadtest.ConstantRate(*rate, *d)
	if err != nil {
		return err
	}
	// Worker pool sized as the load tool sizes it (rate / 5, 16 to 2048).
	workers := min(max(16, int(math.Ceil(*rate/5))), 2048)
	client := loadtest.NewClient(*url, workers, *timeout, "", "")
	defer client.Close()
	rec := loadtest.NewRecorder(min(workers, 32))
	header := http.Header{}
	if *inm != "" {
		header.Set("If-None-Match", *inm)
	}
	if *auth == "" {
		*auth = os.Getenv("BENCH_DRIVE_AUTHORIZATION")
	}
	if *auth != "" {
		header.Set("Authorization", *auth)
	}
	paths := []string{*path}
	if *spread > 0 {
		paths = make([]string, *spread)
		for i := range paths {
			paths[i] = strings.ReplaceAll(*path, "{n}", strconv.Itoa(i+1))
		}
	}

	type job struct {
		due  time.Time
		path string
	}
	queue := make(chan job, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for j := range queue {
				due := j.due
				resp, err := client.Do(ctx, http.MethodGet, j.path, "", nil, header)
				code := ""
				switch {
				case err != nil:
					code = loadtest.TransportCode(err)
				case resp.Status != *expect:
					code = "http_" + strconv.Itoa(resp.Status)
				case resp.Status == http.StatusOK && len(resp.Body) == 0:
					code = "empty_body"
				}
				rec.Record(w, loadtest.EndpointCatalog, time.Since(due), code)
			}
		})
	}
	var dropped atomic.Int64
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	start := time.Now()
	for i := int64(0); ; i++ {
		off, ok := sched.At(i)
		if !ok {
			break
		}
		due := start.Add(off)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		select {
		case queue <- job{due, paths[i%int64(len(paths))]}:
		default:
			dropped.Add(1) // every worker busy and the queue full: never sent
		}
	}
	close(queue)
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	rec.Flush(*d, *d, *rate)
	s := rec.Totals().Get(loadtest.EndpointCatalog)
	m := Measurement{Target: *rate, Requests: s.Count(), Errors: s.ErrorCount(), Dropped: dropped.Load()}
	m.fromHistogram(s.Hist, *d)
	return json.NewEncoder(stdout).Encode(m)
}

// driveRunner runs `bench drive` (this program, re-executed) as a child.
type driveRunner struct {
	URL         string
	Path        string // default /v1/catalog; {n} is replaced when Spread > 0
	Spread      int
	IfNoneMatch string
	// Authorization goes to the child in its environment.
	Authorization string
	Expect        int
}

func (r driveRunner) Run(ctx context.Context, rate float64, d time.Duration) (Measurement, error) {
	self, err := os.Executable()
	if err != nil {
		return Measurement{}, err
	}
	path := r.Path
	if path == "" {
		path = "/v1/catalog"
	}
	cmd := exec.CommandContext(ctx, self, "drive", "-url", r.URL, "-path", path, "-spread", strconv.Itoa(r.Spread),
		"-rate", strconv.FormatFloat(rate, 'f', 0, 64), "-duration", d.String(),
		"-if-none-match", r.IfNoneMatch, "-expect", strconv.Itoa(r.Expect))
	if r.Authorization != "" {
		cmd.Env = append(os.Environ(), "BENCH_DRIVE_AUTHORIZATION="+r.Authorization)
	}
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Measurement{}, fmt.Errorf("bench drive: %v\n%s", err, stderr.String())
	}
	var m Measurement
	if err := json.Unmarshal(out, &m); err != nil {
		return Measurement{}, fmt.Errorf("bench drive: %w", err)
	}
	m.GeneratorCPU = childCPU(cmd.ProcessState)
	return m, nil
}

// limitedBuffer keeps the last few KB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 4096 {
		l.b = l.b[len(l.b)-4096:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
