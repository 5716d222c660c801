package main

import (
	"os"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// The name may hold spaces and parentheses; fields count from the last ')'.
	line := "4242 (postgres: x) (y)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 1000 500 20 0 1 0 100 0 0\n"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.Comm != "postgres: x) (y)" || st.CPU != 3*time.Second {
		t.Fatalf("got %+v", st)
	}
	if _, err := parseProcStat([]byte("12 (short) S 1 2")); err == nil {
		t.Fatal("want an error for a truncated line")
	}
}

func TestClassifyCountsOnlyTheBenchDatabasesBackends(t *testing.T) {
	const db = "coinop_bench_ab12"
	tests := []struct {
		pid                 int
		comm, cmdline, want string
	}{
		{7, "coinop", "/tmp/coinop serve", cpuServer},
		{8, "postgres", "postgres: 15/main: postgres coinop_bench_ab12 127.0.0.1(5432) COMMIT ", cpuPostgres},
		{9, "postgres", "postgres: 15/main: postgres coinop_t_123 127.0.0.1(5433) idle ", ""},
		{10, "postgres", "postgres: 15/main: checkpointer ", ""},
		{11, "redis-server", "", cpuRedis},
		{12, "coinop", "/tmp/coinop loadtest", ""},
	}
	for _, tt := range tests {
		if got := classify(tt.pid, 7, tt.comm, tt.cmdline, db); got != tt.want {
			t.Errorf("classify(%d %s %q) = %q, want %q", tt.pid, tt.comm, tt.cmdline, got, tt.want)
		}
	}
}

func TestParseCPULine(t *testing.T) {
	// user nice system idle iowait irq softirq steal guest guest_nice
	busy, total, err := parseCPULine([]byte("cpu  100 10 50 800 40 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil {
		t.Fatal(err)
	}
	if busy != 160*clockTick || total != 1000*clockTick {
		t.Fatalf("busy %v total %v", busy, total)
	}
}

func TestCPUUseIsPerRequest(t *testing.T) {
	used := map[string]time.Duration{cpuServer: 2 * time.Second, cpuPostgres: 4 * time.Second}
	u := cpuUse(used, 0.75, time.Second, 10_000)
	want := map[string]time.Duration{cpuServer: 200 * time.Microsecond, cpuPostgres: 400 * time.Microsecond, cpuLoad: 100 * time.Microsecond}
	for g, d := range want {
		if u.PerRequest[g] != d {
			t.Errorf("%s: %v per request, want %v", g, u.PerRequest[g], d)
		}
	}
	if _, ok := u.PerRequest[cpuRedis]; ok {
		t.Error("redis used no CPU and should be left out")
	}
	if u.MachineBusy != 0.75 {
		t.Errorf("machine busy %v", u.MachineBusy)
	}
}

func TestCPUWatcherSeesThisProcess(t *testing.T) {
	w := watchCPU(os.Getpid(), "")
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
		// spin, so this process uses some CPU
	}
	used, busy := w.Stop()
	if used[cpuServer] <= 0 || busy <= 0 {
		t.Fatalf("used %v busy %v, want this process's CPU", used, busy)
	}
}
