package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CPU accounting from /proc (Linux). With the server, the databases and the
// load generator on one 2-core machine, a ratio alone cannot say whether
// coinop is slow or merely starved, so every run at 70% of max also records
// how much CPU each process group used per request.

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every
// Linux the bench runs on.
const clockTick = 10 * time.Millisecond

// procStat holds the CPU times of one /proc/<pid>/stat line.
type procStat struct {
	Comm string
	CPU  time.Duration // utime + stime
}

// parseProcStat reads /proc/<pid>/stat. The command name is in parentheses
// and may itself contain spaces and parentheses, so fields are counted from
// the last ')'.
func parseProcStat(b []byte) (procStat, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("proc stat: no command name")
	}
	f := strings.Fields(string(b[end+1:]))
	// After the name: state(3) ppid pgrp session tty_nr tpgid flags minflt
	// cminflt majflt cmajflt utime(14) stime(15).
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("proc stat: %d fields after the name", len(f))
	}
	var t [2]int64
	for i := range t {
		n, err := strconv.ParseInt(f[11+i], 10, 64)
		if err != nil {
			return procStat{}, fmt.Errorf("proc stat: field %d: %w", 14+i, err)
		}
		t[i] = n
	}
	return procStat{Comm: string(b[open+1 : end]), CPU: time.Duration(t[0]+t[1]) * clockTick}, nil
}

// CPU groups.
const (
	cpuServer   = "server"    // coinop serve, or this process for the minimal fiber handler
	cpuPostgres = "postgres"  // backends connected to the bench database
	cpuRedis    = "redis"     // redis-server
	cpuLoad     = "generator" // the load generator's process
)

// classify says which group a process belongs to, or "". Postgres
// backends show their database in their process title ("postgres: user
// db host(port) COMMIT"), so only those serving the bench database count:
// other databases on a shared server are other people's work.
func classify(pid, serverPID int, comm, cmdline, database string) string {
	switch {
	case pid == serverPID:
		return cpuServer
	case comm == "postgres" && database != "" && strings.Contains(cmdline, " "+database+" "):
		return cpuPostgres
	case comm == "redis-server":
		return cpuRedis
	}
	return ""
}

// cpuWatcher samples the watched processes every few hundred milliseconds
// while a run lasts. Per process it keeps the CPU time first and last seen;
// a process that appears during the run (pgbench opens its connections
// then) counts from zero. Sampling, rather than reading once at each end,
// catches backends that exit with their client at the end of the run,
// losing only their last interval.
type cpuWatcher struct {
	serverPID int
	database  string
	stop      chan struct{}
	done      chan struct{}

	mu          sync.Mutex
	procs       map[int]*watched
	busy0, all0 time.Duration // /proc/stat at the start
	busy, all   time.Duration // and at the last sample
}

type watched struct {
	group       string
	first, last time.Duration
}

const watchInterval = 200 * time.Millisecond

func watchCPU(serverPID int, database string) *cpuWatcher {
	w := &cpuWatcher{serverPID: serverPID, database: database, stop: make(chan struct{}), done: make(chan struct{}), procs: map[int]*watched{}}
	w.sample(true)
	go func() {
		defer close(w.done)
		t := time.NewTicker(watchInterval)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				w.sample(false)
				return
			case <-t.C:
				w.sample(false)
			}
		}
	}()
	return w
}

func (w *cpuWatcher) sample(initial bool) {
	entries, _ := os.ReadDir("/proc")
	seen := map[int]procStat{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // exited meanwhile
		}
		st, err := parseProcStat(b)
		if err != nil {
			continue
		}
		seen[pid] = st
	}
	busy, all, _ := parseCPULine([]byte(readFile("/proc/stat")))
	w.mu.Lock()
	defer w.mu.Unlock()
	if initial {
		w.busy0, w.all0 = busy, all
	}
	w.busy, w.all = busy, all
	for pid, st := range seen {
		if p, ok := w.procs[pid]; ok {
			p.last = st.CPU
			continue
		}
		cmdline := ""
		if st.Comm == "postgres" {
			cmdline = strings.ReplaceAll(readFile("/proc/"+strconv.Itoa(pid)+"/cmdline"), "\x00", " ")
		}
		g := classify(pid, w.serverPID, st.Comm, cmdline, w.database)
		if g == "" {
			w.procs[pid] = &watched{} // remembered, so it is classified once
			continue
		}
		p := &watched{group: g, last: st.CPU}
		if initial {
			p.first = st.CPU
		}
		w.procs[pid] = p
	}
}

// Stop ends the watch and returns the CPU each group used, with the share
// of all CPUs busy during it.
func (w *cpuWatcher) Stop() (map[string]time.Duration, float64) {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	used := map[string]time.Duration{}
	for _, p := range w.procs {
		if p.group != "" && p.last > p.first {
			used[p.group] += p.last - p.first
		}
	}
	busy := 0.0
	if all := w.all - w.all0; all > 0 {
		busy = float64(w.busy-w.busy0) / float64(all)
	}
	return used, busy
}

// parseCPULine reads the aggregate "cpu" line of /proc/stat: user nice
// system idle iowait irq softirq steal …; busy is everything but idle and
// iowait.
func parseCPULine(b []byte) (busy, total time.Duration, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("proc stat: no cpu line")
	}
	for i := 1; i <= 8; i++ {
		n, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("proc stat: cpu field %d: %w", i, err)
		}
		d := time.Duration(n) * clockTick
		total += d
		if i != 4 && i != 5 {
			busy += d
		}
	}
	return busy, total, nil
}

// CPUUse is how much CPU each group spent per request during one run, and
// how busy the machine was.
type CPUUse struct {
	PerRequest  map[string]time.Duration `json:"per_request"`
	MachineBusy float64                  `json:"machine_busy"` // share of all CPUs in use, 0..1
}

// cpuUse divides what each group used, plus the load generator's own CPU,
// by the requests the run executed.
func cpuUse(used map[string]time.Duration, busy float64, generator time.Duration, requests int64) CPUUse {
	u := CPUUse{PerRequest: map[string]time.Duration{}, MachineBusy: busy}
	if requests <= 0 {
		return u
	}
	for _, g := range []string{cpuServer, cpuPostgres, cpuRedis} {
		if d := used[g]; d > 0 {
			u.PerRequest[g] = d / time.Duration(requests)
		}
	}
	if generator > 0 {
		u.PerRequest[cpuLoad] = generator / time.Duration(requests)
	}
	return u
}

// childCPU is the CPU time a finished child used.
func childCPU(ps *os.ProcessState) time.Duration {
	if ps == nil {
		return 0
	}
	return ps.UserTime() + ps.SystemTime()
}
