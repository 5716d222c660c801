package main

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseRedisBenchmarkCSV(t *testing.T) {
	out := `"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"GET coinop_bench_x:key:__rand_int__","87336.24","0.125","0.032","0.119","0.199","0.271","0.583"
`
	m, err := parseRedisBenchmarkCSV(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if m.Achieved != 87336.24 || m.P50 != 119*time.Microsecond || m.P99 != 271*time.Microsecond {
		t.Fatalf("got %+v", m)
	}
}

func TestParseRedisBenchmarkCSVNamesAMissingColumn(t *testing.T) {
	_, err := parseRedisBenchmarkCSV(strings.NewReader("\"test\",\"rps\"\n\"GET\",\"100\"\n"))
	if err == nil || !strings.Contains(err.Error(), "p50_latency_ms") {
		t.Fatalf("err = %v, want one naming p50_latency_ms", err)
	}
}

func TestRedisBenchmarkArgs(t *testing.T) {
	r := redisBenchmark{URL: "redis://u:secret@127.0.0.1:6380/3", Conns: 20, Requests: 1000, Keyspace: 50, Prefix: "coinop_bench_ab:"}
	args, err := r.Args()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-h", "127.0.0.1", "-p", "6380", "--user", "u", "-a", "secret", "--dbnum", "3",
		"-c", "20", "-n", "1000", "-r", "50", "--csv", "GET", "coinop_bench_ab:key:__rand_int__"}
	if !slices.Equal(args, want) {
		t.Fatalf("args\n%q\nwant\n%q", args, want)
	}
	// The keys filled are the ones redis-benchmark reads.
	if got := r.key(7); got != "coinop_bench_ab:key:000000000007" {
		t.Fatalf("key(7) = %s", got)
	}
}
