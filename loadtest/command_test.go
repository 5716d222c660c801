package loadtest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// runCommand runs the command against a fake with its credentials supplied
// through the environment, as an operator would.
func runCommand(t *testing.T, f *fakeCoinop, url string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	env := map[string]string{
		"COINOP_JWT_SECRET":   string(f.secret),
		"COINOP_ADMIN_TOKEN":  f.adminToken,
		"COINOP_SERVER_TOKEN": f.serverToken,
	}
	var out, errb bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code = command(ctx, append([]string{"--url", url}, args...), func(k string) string { return env[k] }, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCommandEndToEndAgainstAnHonestServer(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	dir := t.TempDir()
	jsonPath, htmlPath := filepath.Join(dir, "report.json"), filepath.Join(dir, "report.html")
	code, stdout, stderr := runCommand(t, f, url,
		"--duration", "2s", "--rate", "30", "--players", "5", "--seed", "42",
		// Latency bounds are loose: CI machines stall. Errors must be zero.
		"--slo", "p99<60s,errors<=0%", "--slo", "purchase:p99<60s",
		"--out", jsonPath, "--html", htmlPath)
	t.Log(stdout)
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if strings.Contains(stderr, "WARNING") {
		t.Errorf("loopback run printed a warning: %s", stderr)
	}
	for _, want := range []string{
		"against " + url,
		"setup: 5 players, funded gems=1000000 gold=1000000 each; catalog v3: 4 offers",
		"[  1.0s]", // the progress line, once a second
		"endpoint", "p99.9", "purchase", "wallet", "entitlement_check", "all",
		"ok   purchase p99 < 60.0s",
		"verification: 5 players",
		"result: ok",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q", want)
		}
	}

	fh, err := os.Open(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	r, err := ReadReport(fh)
	if err != nil {
		t.Fatal(err)
	}
	// 30/s for 2 s is 60 requests due; retries add a few, and a stalled
	// machine may drop some.
	if r.Scheduled != 60 || r.Sent < 60-r.Dropped || r.Sent > 120 || r.StopReason != "completed" {
		t.Errorf("scheduled %d sent %d dropped %d stop %s", r.Scheduled, r.Sent, r.Dropped, r.StopReason)
	}
	if r.All.Count != r.Sent || r.All.Errors != 0 {
		t.Errorf("all: %d requests, %d errors; sent %d", r.All.Count, r.All.Errors, r.Sent)
	}
	if r.Verification == nil || !r.Verification.OK || r.Verification.GrantsObserved != 5 {
		t.Errorf("verification %+v", r.Verification)
	}
	if len(r.Timeline) < 2 || r.Failed() {
		t.Errorf("timeline %d points, failed %v", len(r.Timeline), r.Failed())
	}
	html, err := os.ReadFile(htmlPath)
	if err != nil {
		t.Fatal(err)
	}
	assertSelfContainedReport(t, string(html), url)

	// Every request the server saw is accounted for: the load phase's,
	// plus the setup catalog read and route probe, plus a wallet and an
	// entitlements read per player in verification.
	if got, want := f.loadReqs.Load(), r.Sent+2+2*5; got != want {
		t.Errorf("server saw %d player requests, want %d (%d sent in the load phase)", got, want, r.Sent)
	}
}

func TestCommandExitsOneWhenVerificationFindsProblems(t *testing.T) {
	f := newFakeCoinop()
	f.loseGrant = 1
	f.duplicatePurchase = 2
	url := f.start(t)
	code, stdout, _ := runCommand(t, f, url, "--duration", "1s", "--rate", "30", "--players", "3", "--mix", "purchase=1")
	if code != ExitFailed {
		t.Fatalf("exit %d, want %d\n%s", code, ExitFailed, stdout)
	}
	for _, want := range []string{"PROBLEM lost: player", "PROBLEM duplicated: player", "result: FAILED"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
}

func TestPerPlayerLimitsAreRespected(t *testing.T) {
	f := newFakeCoinop()
	three := int64(3)
	f.doc.Catalog.Items = []Item{{ID: "founder", Name: "Founder pass", Kind: "consumable", Prices: []Price{{"gold", 5}}, MaxPerPlayer: &three}}
	f.doc.Catalog.Bundles = nil
	url := f.start(t)
	code, stdout, stderr := runCommand(t, f, url, "--duration", "1s", "--rate", "40", "--players", "2", "--mix", "purchase=1")
	if code != ExitOK {
		t.Fatalf("exit %d: the tool pushed a player past max_per_player\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "purchases became wallet reads because their player had reached max_per_player") {
		t.Errorf("no note about substituted purchases:\n%s", stdout)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for pid, h := range f.holdings {
		if h["item:founder"] != 3 {
			t.Errorf("%s holds %d founder passes; the tool should fill the limit of 3 exactly", pid, h["item:founder"])
		}
	}
}

func TestCommandExitsOneWhenAThresholdFails(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	code, stdout, _ := runCommand(t, f, url, "--duration", "1s", "--rate", "10", "--players", "2",
		"--slo", "purchase:p50<1us", "--no-verify")
	if code != ExitFailed || !strings.Contains(stdout, "FAIL purchase p50 < 1µs") {
		t.Fatalf("exit %d\n%s", code, stdout)
	}
	if !strings.Contains(stdout, "verification skipped") {
		t.Errorf("--no-verify not reported:\n%s", stdout)
	}
}

func TestMaxRequestsStopsTheRunEarly(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	dir := t.TempDir()
	start := time.Now()
	code, stdout, stderr := runCommand(t, f, url, "--duration", "20s", "--rate", "200", "--max-requests", "25",
		"--players", "2", "--out", filepath.Join(dir, "r.json"))
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("a 25-request run took %v", took)
	}
	fh, _ := os.Open(filepath.Join(dir, "r.json"))
	defer fh.Close()
	r, err := ReadReport(fh)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 25 || r.All.Count != 25 || r.StopReason != "max_requests" {
		t.Fatalf("sent %d recorded %d stop %s", r.Sent, r.All.Count, r.StopReason)
	}
	if got, want := f.loadReqs.Load(), int64(25+2+2*2); got != want { // + setup and verification reads
		t.Fatalf("server saw %d player requests for a budget of 25, want %d", got, want)
	}
}

func TestClosedModelRuns(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	code, stdout, stderr := runCommand(t, f, url, "--vus", "3", "--duration", "1s", "--players", "3", "--max-requests", "2000")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "closed model, 3 virtual players") || strings.Contains(stdout, "late 0  dropped") {
		t.Errorf("closed model output:\n%s", stdout)
	}
}

func TestMissingServerToServerRouteSkipsTheScenario(t *testing.T) {
	f := newFakeCoinop()
	f.noOwnershipRoute = true
	url := f.start(t)
	code, stdout, stderr := runCommand(t, f, url, "--duration", "1s", "--rate", "20", "--players", "2",
		"--mix", "entitlement_check=50,wallet=50")
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "scenario entitlement_check skipped: the server has no GET /v1/players/{player_id}/entitlements/{item_id} route") {
		t.Errorf("no note about the missing route:\n%s", stdout)
	}
	if strings.Contains(stdout, "\n entitlement_check") {
		t.Errorf("the skipped scenario still ran:\n%s", stdout)
	}
}

func TestReceiptScenarioRedeemsEachTransactionOnce(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	file := filepath.Join(t.TempDir(), "receipts.txt")
	var lines []string
	for i := range 5 {
		lines = append(lines, "eyJhbGciOiJFUzI1NiJ9.eyJ0eCI6"+string(rune('a'+i))+"fQ.c2ln")
	}
	if err := os.WriteFile(file, []byte("# minted by coinop receipts mint\n"+strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCommand(t, f, url, "--duration", "1s", "--rate", "30", "--players", "2",
		"--mix", "receipt=50,wallet=50", "--receipts", file)
	if code != ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "receipt") || strings.Contains(stdout, "receipt_already_redeemed") {
		t.Errorf("receipt output:\n%s", stdout)
	}
}

func TestMissingReceiptRouteSkipsTheScenario(t *testing.T) {
	f := newFakeCoinop()
	f.noReceiptRoute = true
	url := f.start(t)
	file := filepath.Join(t.TempDir(), "receipts.txt")
	os.WriteFile(file, []byte("a.b.c\n"), 0o600)
	code, stdout, stderr := runCommand(t, f, url, "--duration", "1s", "--rate", "10", "--players", "1",
		"--mix", "receipt=50,wallet=50", "--receipts", file)
	if code != ExitOK || !strings.Contains(stdout, "scenario receipt skipped: the server has no POST /v1/receipts route") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
}

func TestCommandUsageErrorsExitTwo(t *testing.T) {
	f := newFakeCoinop()
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"open and closed together", []string{"--vus", "5", "--rate", "10"}, "cannot be combined"},
		{"rate and stages together", []string{"--rate", "10", "--stages", "1s:10"}, "not both"},
		{"unbounded duration", []string{"--duration", "0"}, "bounded in time"},
		{"unbounded requests", []string{"--max-requests", "0"}, "bounded in requests"},
		{"bad threshold", []string{"--slo", "purchase:p99<fast"}, "--slo"},
		{"bad stages", []string{"--stages", "10s"}, "--stages"},
		{"bad mix", []string{"--mix", "purchase=10,teleport=5"}, "unknown action"},
		{"bad url", []string{"--url", "ftp://127.0.0.1/"}, "--url"},
		{"stray argument", []string{"run"}, "unexpected argument"},
		{"unknown flag", []string{"--rps", "10"}, "flag provided but not defined"},
		{"missing scenario file", []string{"--scenario", "/nonexistent/s.yaml"}, "--scenario"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// Nothing listens here: a usage error must fail before any request.
			code, _, stderr := runCommand(t, f, "http://127.0.0.1:1", c.args...)
			if code != ExitSetup || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr, c.want)
			}
		})
	}
}

func TestSetupFailuresExitTwo(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	var out, errb bytes.Buffer
	code := command(context.Background(), []string{"--url", url, "--jwt-secret", "wrong", "--admin-token", f.adminToken, "--duration", "1s"},
		func(string) string { return "" }, &out, &errb)
	if code != ExitSetup || !strings.Contains(errb.String(), "setup: GET /v1/catalog: HTTP 401 unauthorized") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	code = command(context.Background(), []string{"--url", url, "--jwt-secret", string(f.secret), "--duration", "1s"},
		func(string) string { return "" }, &out, &errb)
	if code != ExitSetup || !strings.Contains(errb.String(), "--admin-token") {
		t.Fatalf("exit %d without an admin token, stderr %q", code, errb.String())
	}
}

func TestHelpExitsZero(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Command(context.Background(), []string{"-h"}, &out, &errb); code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	for _, flag := range []string{"-url", "-duration", "-max-requests", "-rate", "-stages", "-vus", "-players", "-fund",
		"-jwt-secret", "-admin-token", "-server-token", "-scenario", "-slo", "-out", "-html", "-seed", "-timeout", "-no-verify"} {
		if !strings.Contains(errb.String(), flag) {
			t.Errorf("usage lacks %s", flag)
		}
	}
	if !strings.Contains(errb.String(), DefaultURL) {
		t.Error("usage does not show the loopback default")
	}
}

func TestInterruptedRunExitsTwoAndSkipsVerification(t *testing.T) {
	f := newFakeCoinop()
	url := f.start(t)
	env := map[string]string{"COINOP_JWT_SECRET": string(f.secret), "COINOP_ADMIN_TOKEN": f.adminToken}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &lockedBuffer{}
	var errb bytes.Buffer
	go func() {
		// Cancel once the load phase is under way.
		for !strings.Contains(out.String(), "[  1.0s]") {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	code := command(ctx, []string{"--url", url, "--duration", "20s", "--rate", "20", "--players", "2"},
		func(k string) string { return env[k] }, out, &errb)
	if code != ExitSetup {
		t.Fatalf("exit %d", code)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("interrupted run took %v", took)
	}
	if s := out.String(); !strings.Contains(s, "(interrupted)") || !strings.Contains(s, "verification skipped") {
		t.Fatalf("stdout:\n%s", s)
	}
}

// lockedBuffer lets a test read output while the command writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
