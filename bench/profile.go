package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// With -profile (BENCH_PROFILE=1) the bench samples coinop serve's CPU with
// Linux perf during each run at 70% of max: the real server under the real
// load, with no profiling flag in the server. Go binaries carry their symbol
// table, so perf names Go functions; the report groups them by package.

// profiler is a running `perf record` of one process.
type profiler struct {
	cmd  *exec.Cmd
	file string
}

// startProfile starts sampling pid at 999 Hz into a file under dir.
func startProfile(ctx context.Context, pid int, dir string) (*profiler, error) {
	file := filepath.Join(dir, fmt.Sprintf("perf-%d-%d.data", pid, time.Now().UnixNano()))
	cmd := exec.CommandContext(ctx, "perf", "record", "--freq=999", "--pid="+strconv.Itoa(pid), "--output="+file, "--quiet")
	var stderr limitedBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	return &profiler{cmd: cmd, file: file}, nil
}

// Stop ends the recording and summarises it.
func (p *profiler) Stop(ctx context.Context) (*Profile, error) {
	_ = p.cmd.Process.Signal(syscall.SIGINT) // perf writes its file on SIGINT
	if err := p.cmd.Wait(); err != nil && !isSignalExit(err) {
		return nil, fmt.Errorf("perf record: %v\n%s", err, p.cmd.Stderr)
	}
	defer os.Remove(p.file)
	out, err := exec.CommandContext(ctx, "perf", "report", "--input="+p.file, "--stdio", "--no-children",
		"--sort=dso,sym", "--percent-limit=0", "--quiet").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report: %w", err)
	}
	return parsePerfReport(strings.NewReader(string(out)))
}

func isSignalExit(err error) bool {
	ee, ok := err.(*exec.ExitError)
	if !ok {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && (ws.Signaled() || ws.ExitStatus() == 130 || ws.ExitStatus() == 0)
}

// Profile is where a process spent its CPU: shares by kind of work and the
// hottest functions.
type Profile struct {
	Groups []Share `json:"groups"`
	Top    []Share `json:"top"`
}

// Share is a part of the samples, in percent.
type Share struct {
	Name string  `json:"name"`
	Pct  float64 `json:"pct"`
}

// parsePerfReport reads `perf report --stdio --no-children --sort=dso,sym
// --quiet` lines such as "  12.34%  coinop  [.] runtime.mallocgc" and
// "   3.10%  [kernel.kallsyms]  [k] tcp_sendmsg".
func parsePerfReport(r io.Reader) (*Profile, error) {
	groups := map[string]float64{}
	var top []Share
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		pctText, rest, ok := strings.Cut(line, "%")
		if !ok {
			continue
		}
		pct, err := strconv.ParseFloat(strings.TrimSpace(pctText), 64)
		if err != nil {
			continue
		}
		// "[.] " marks user space and "[k] " the kernel; the dso before
		// it may hold brackets too ("[kernel.kallsyms]", "[vdso]").
		i := strings.Index(rest, "[.] ")
		kernel := false
		if k := strings.Index(rest, "[k] "); k >= 0 && (i < 0 || k < i) {
			i, kernel = k, true
		}
		if i < 0 {
			continue
		}
		sym := rest[i+len("[.] "):]
		sym = strings.TrimSpace(sym)
		groups[perfGroup(sym, kernel)] += pct
		if kernel {
			sym += " (kernel)"
		}
		top = append(top, Share{Name: sym, Pct: pct})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(top) == 0 {
		return nil, fmt.Errorf("perf report: no samples")
	}
	p := &Profile{}
	for name, pct := range groups {
		p.Groups = append(p.Groups, Share{name, pct})
	}
	byPct := func(s []Share) {
		sort.Slice(s, func(i, j int) bool {
			if s[i].Pct != s[j].Pct {
				return s[i].Pct > s[j].Pct
			}
			return s[i].Name < s[j].Name
		})
	}
	byPct(p.Groups)
	byPct(top)
	p.Top = top[:min(len(top), 12)]
	return p, nil
}

// goPackage is the package of a Go symbol: up to the first '.' after the
// last '/' ("github.com/valyala/fasthttp.(*Server).serveConn" →
// "github.com/valyala/fasthttp").
func goPackage(sym string) string {
	slash := strings.LastIndexByte(sym, '/')
	dot := strings.IndexByte(sym[slash+1:], '.')
	if dot < 0 {
		return sym
	}
	return sym[:slash+1+dot]
}

// perfGroup names the kind of work a sampled function does.
func perfGroup(sym string, kernel bool) string {
	if kernel {
		return "kernel: syscalls, loopback TCP, scheduling"
	}
	pkg := goPackage(sym)
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if pkg == p || strings.HasPrefix(pkg, p+"/") || strings.HasPrefix(pkg, p+".") {
				return true
			}
		}
		return false
	}
	switch {
	case has("runtime", "internal/runtime", "sync", "internal/sync", "internal/abi", "internal/bytealg", "internal/chacha8rand") || strings.HasPrefix(sym, "type:") || strings.HasPrefix(sym, "gcWriteBarrier"):
		return "Go runtime: scheduler, GC, allocation, locks"
	case has("syscall", "internal/poll", "net", "internal/syscall", "golang.org/x/sys"):
		return "Go net and syscall wrappers"
	case has("github.com/valyala", "github.com/gofiber", "github.com/klauspost", "github.com/andybalholm"):
		return "fiber and fasthttp"
	case has("github.com/redis"):
		return "go-redis"
	case has("github.com/jackc"):
		return "pgx"
	case has("encoding/json", "github.com/go-json-experiment", "unicode", "strconv", "reflect"):
		return "JSON encoding, reflection, strconv"
	case has("crypto", "github.com/golang-jwt", "golang.org/x/crypto", "vendor/golang.org/x/crypto", "hash"):
		return "crypto and JWT"
	case has("github.com/prometheus", "github.com/beorn7", "github.com/cespare", "log/slog", "go.opentelemetry.io"):
		return "metrics and logging"
	case has("github.com/coinop"):
		return "coinop code"
	case has("github.com/google/uuid", "github.com/sony", "golang.org/x/sync", "context", "time", "fmt", "strings", "bytes", "sort", "slices", "maps", "errors", "io", "bufio", "math"):
		return "standard library and small helpers"
	}
	return "other"
}
