package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// redisBenchmark runs `redis-benchmark` GET with conns connections for a
// fixed number of requests. redis-benchmark has no rate option: it is a
// closed-model tool, so its throughput is its maximum at that concurrency
// and its percentiles are measured at that maximum.
//
// It runs GET as a custom command on keys under the bench's own prefix
// (<prefix>key:__rand_int__, keyspace keys, pre-filled with value) rather
// than `-t get`, which would read and leave keys outside the prefix; the
// command sent is the same GET.
type redisBenchmark struct {
	URL      string
	Conns    int
	Requests int
	Keyspace int
	Prefix   string
}

// keyPattern is the key redis-benchmark reads; it replaces __rand_int__
// with a 12-digit number below the keyspace.
func (r redisBenchmark) keyPattern() string { return r.Prefix + "key:__rand_int__" }

func (r redisBenchmark) key(i int) string { return fmt.Sprintf("%skey:%012d", r.Prefix, i) }

// Fill writes the keys GET reads.
func (r redisBenchmark) Fill(ctx context.Context, rdb *redis.Client, value string) error {
	pipe := rdb.Pipeline()
	for i := range r.Keyspace {
		pipe.Set(ctx, r.key(i), value, time.Hour)
	}
	_, err := pipe.Exec(ctx)
	return err
}

// Args returns redis-benchmark's arguments for the URL.
func (r redisBenchmark) Args() ([]string, error) {
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		return nil, err
	}
	host, port, ok := strings.Cut(opt.Addr, ":")
	if !ok {
		return nil, fmt.Errorf("redis URL without a port: %s", opt.Addr)
	}
	args := []string{"-h", host, "-p", port}
	if opt.Username != "" {
		args = append(args, "--user", opt.Username)
	}
	if opt.Password != "" {
		args = append(args, "-a", opt.Password)
	}
	if opt.DB != 0 {
		args = append(args, "--dbnum", strconv.Itoa(opt.DB))
	}
	return append(args,
		"-c", strconv.Itoa(r.Conns), "-n", strconv.Itoa(r.Requests), "-r", strconv.Itoa(r.Keyspace),
		"--csv", "GET", r.keyPattern()), nil
}

// Run runs redis-benchmark once.
func (r redisBenchmark) Run(ctx context.Context) (Measurement, error) {
	args, err := r.Args()
	if err != nil {
		return Measurement{}, err
	}
	cmd := exec.CommandContext(ctx, "redis-benchmark", args...)
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return Measurement{}, fmt.Errorf("redis-benchmark: %v\n%s", err, stderr.String())
	}
	m, err := parseRedisBenchmarkCSV(strings.NewReader(string(out)))
	if err != nil {
		return Measurement{}, fmt.Errorf("%w\n%s", err, tail(string(out), 2000))
	}
	m.Requests = int64(r.Requests)
	m.Target = m.Achieved
	m.GeneratorCPU = childCPU(cmd.ProcessState)
	return m, nil
}

// parseRedisBenchmarkCSV reads `redis-benchmark --csv` (Redis 7): a header
// row naming the columns, then one row per test with requests per second
// and latencies in milliseconds.
func parseRedisBenchmarkCSV(r io.Reader) (Measurement, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return Measurement{}, fmt.Errorf("redis-benchmark csv: %w", err)
	}
	if len(rows) < 2 {
		return Measurement{}, fmt.Errorf("redis-benchmark csv: no result row")
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	num := func(name string) (float64, error) {
		i, ok := col[name]
		if !ok || i >= len(rows[1]) {
			return 0, fmt.Errorf("redis-benchmark csv: no %s column (redis-benchmark 7 or later prints it)", name)
		}
		return strconv.ParseFloat(rows[1][i], 64)
	}
	var m Measurement
	if m.Achieved, err = num("rps"); err != nil {
		return Measurement{}, err
	}
	p50, err := num("p50_latency_ms")
	if err != nil {
		return Measurement{}, err
	}
	p99, err := num("p99_latency_ms")
	if err != nil {
		return Measurement{}, err
	}
	m.P50 = time.Duration(p50 * float64(time.Millisecond))
	m.P99 = time.Duration(p99 * float64(time.Millisecond))
	return m, nil
}
