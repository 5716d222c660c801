package main

import (
	"math"
	"strings"
	"testing"
)

func TestGoPackage(t *testing.T) {
	tests := map[string]string{
		"github.com/valyala/fasthttp.(*Server).serveConn": "github.com/valyala/fasthttp",
		"runtime.mallocgc":                  "runtime",
		"internal/runtime/syscall.Syscall6": "internal/runtime/syscall",
		"github.com/coinop/coinop/server.(*Server).getEntitlementCheck": "github.com/coinop/coinop/server",
		"encoding/json.(*encodeState).marshal":                          "encoding/json",
		"0x00000000004a5b3c":                                            "0x00000000004a5b3c",
	}
	for sym, want := range tests {
		if got := goPackage(sym); got != want {
			t.Errorf("goPackage(%q) = %q, want %q", sym, got, want)
		}
	}
}

func TestParsePerfReportGroupsByKindOfWork(t *testing.T) {
	report := `
# comment lines are skipped
    20.00%  coinop             [.] runtime.mallocgc
    10.00%  coinop             [.] runtime.scanobject
    15.00%  [kernel.kallsyms]  [k] tcp_sendmsg
    12.50%  coinop             [.] github.com/valyala/fasthttp.(*Server).serveConn
     7.50%  coinop             [.] github.com/redis/go-redis/v9.(*baseClient).process
     5.00%  coinop             [.] encoding/json.(*encodeState).marshal
     5.00%  coinop             [.] github.com/coinop/coinop/server.(*Server).getEntitlementCheck
     5.00%  coinop             [.] syscall.Syscall6
     5.00%  coinop             [.] crypto/sha256.block
    10.00%  coinop             [.] 0x00000000004a5b3c
     5.00%  [vdso]             [.] __vdso_clock_gettime
`
	p, err := parsePerfReport(strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		"Go runtime: scheduler, GC, allocation, locks": 30,
		"kernel: syscalls, loopback TCP, scheduling":   15,
		"fiber and fasthttp":                           12.5,
		"go-redis":                                     7.5,
		"JSON encoding, reflection, strconv":           5,
		"coinop code":                                  5,
		"Go net and syscall wrappers":                  5,
		"crypto and JWT":                               5,
		"other":                                        15, // the unknown address and the vDSO
	}
	got := map[string]float64{}
	for _, g := range p.Groups {
		got[g.Name] = g.Pct
	}
	for name, pct := range want {
		if math.Abs(got[name]-pct) > 1e-9 {
			t.Errorf("%s: %v%%, want %v%% (all: %v)", name, got[name], pct, p.Groups)
		}
	}
	if p.Groups[0].Name != "Go runtime: scheduler, GC, allocation, locks" {
		t.Errorf("groups not sorted by share: %v", p.Groups)
	}
	if p.Top[0].Name != "runtime.mallocgc" || p.Top[0].Pct != 20 {
		t.Errorf("top function %v", p.Top[0])
	}
	for _, f := range p.Top {
		if strings.Contains(f.Name, "[") {
			t.Errorf("function name %q keeps perf's markers", f.Name)
		}
	}
	if _, err := parsePerfReport(strings.NewReader("# nothing\n")); err == nil {
		t.Error("a report without samples is an error")
	}
}
