package loadtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestStoreFaultSchedule: the fault rates are met within tolerance for a
// seed, and the same seed gives the same faults in the same order (what
// --replay relies on), another seed other ones.
func TestStoreFaultSchedule(t *testing.T) {
	o := ChaosOptions{StoreErrors: 20, StoreTimeouts: 5}
	const n = 20000
	seq := func(seed uint64) ([]StoreFault, map[StoreFault]int, map[int]int) {
		var out []StoreFault
		counts, statuses := map[StoreFault]int{}, map[int]int{}
		for i := range uint64(n) {
			f, st := storeFaultAt(seed, i, o)
			out = append(out, f)
			counts[f]++
			if f == FaultError {
				statuses[st]++
			}
		}
		return out, counts, statuses
	}
	a, counts, statuses := seq(7)
	for _, c := range []struct {
		f    StoreFault
		want float64
	}{{FaultError, 0.20}, {FaultTimeout, 0.05}, {FaultNone, 0.75}} {
		got := float64(counts[c.f]) / n
		// 4 standard deviations of a binomial share.
		if tol := 4 * math.Sqrt(c.want*(1-c.want)/n); math.Abs(got-c.want) > tol {
			t.Errorf("fault %d: share %.4f, want %.2f ± %.4f", c.f, got, c.want, tol)
		}
	}
	if statuses[500] == 0 || statuses[503] == 0 || statuses[500]+statuses[503] != counts[FaultError] {
		t.Errorf("5xx answers: %v", statuses)
	}
	b, _, _ := seq(7)
	c, _, _ := seq(8)
	same, differ := true, false
	for i := range a {
		same = same && a[i] == b[i]
		differ = differ || a[i] != c[i]
	}
	if !same {
		t.Error("the same seed gave different faults")
	}
	if !differ {
		t.Error("another seed gave the same faults")
	}
	for i := range uint64(1000) {
		if f, _ := storeFaultAt(7, i, ChaosOptions{}); f != FaultNone {
			t.Fatalf("no rates, yet request %d got fault %d", i, f)
		}
	}
}

func TestStoreAPIOptionsValidation(t *testing.T) {
	ok := ChaosOptions{Waves: 1, Wait: time.Second}
	for _, c := range []struct {
		name string
		mod  func(*ChaosOptions)
		want string
	}{
		{"errors above 100", func(o *ChaosOptions) { o.StoreAPIAddr = "127.0.0.1:0"; o.StoreErrors = 101 }, "--store-errors"},
		{"negative timeouts", func(o *ChaosOptions) { o.StoreAPIAddr = "127.0.0.1:0"; o.StoreTimeouts = -1 }, "--store-timeouts"},
		{"sum above 100", func(o *ChaosOptions) { o.StoreAPIAddr = "127.0.0.1:0"; o.StoreErrors, o.StoreTimeouts = 60, 50 }, "more than 100"},
		{"negative latency", func(o *ChaosOptions) { o.StoreAPIAddr = "127.0.0.1:0"; o.StoreLatency = -time.Second }, "--store-latency"},
		{"faults without the fake", func(o *ChaosOptions) { o.StoreErrors = 5 }, "--store-api-addr"},
		{"not loopback", func(o *ChaosOptions) { o.StoreAPIAddr = "10.0.0.1:8090" }, "loopback"},
		{"no port", func(o *ChaosOptions) { o.StoreAPIAddr = "127.0.0.1" }, "host:port"},
		{"fine", func(o *ChaosOptions) { o.StoreAPIAddr = "127.0.0.1:8090"; o.StoreErrors, o.StoreTimeouts = 20, 5 }, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.mod(&o)
			err := o.Validate()
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("error %v, want one naming %q", err, c.want)
			}
		})
	}
}

// TestStoreAPIFake: the fake answers Get Transaction Info for minted
// transactions with a signed transaction (revoked once refunded), 404 for
// others, and injects its faults: a timed-out request is held until the
// caller gives up.
func TestStoreAPIFake(t *testing.T) {
	signer := testSigner(t)
	a, err := startStoreAPI("127.0.0.1:0", signer, 1, ChaosOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	tx := StoreTx{TransactionID: "3000000000000001", ProductID: "com.example.gems", PlayerID: "p1", PurchasedAt: time.Now()}
	a.add(tx)
	get := func(ctx context.Context, id string) (int, map[string]any, error) {
		return getTx(ctx, a, id)
	}
	ctx := context.Background()
	st, m, err := get(ctx, tx.TransactionID)
	if err != nil || st != 200 || m["transactionId"] != tx.TransactionID || m["revocationDate"] != nil {
		t.Fatalf("minted: %d %v %v", st, m, err)
	}
	a.revoke(tx.TransactionID, time.Now())
	if st, m, _ = get(ctx, tx.TransactionID); st != 200 || m["revocationDate"] == nil {
		t.Fatalf("refunded: %d %v", st, m)
	}
	if st, _, _ = get(ctx, "3999999999999999"); st != 404 {
		t.Fatalf("unknown: %d", st)
	}
	if f := a.faults(); f.Calls != 3 || f.Unknown != 1 || f.Injected() != 0 {
		t.Fatalf("counts: %+v", f)
	}

	// Every request times out, held until the caller gives up.
	b, err := startStoreAPI("127.0.0.1:0", signer, 1, ChaosOptions{StoreTimeouts: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.close()
	b.add(tx)
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, _, err = getTx(tctx, b, tx.TransactionID); err == nil {
		t.Fatal("a timed-out request was answered")
	}
	if f := b.faults(); f.Calls != 1 || f.Timeouts != 1 {
		t.Fatalf("timeout counts: %+v", f)
	}
	// Every request is delayed and answered 5xx.
	c, err := startStoreAPI("127.0.0.1:0", signer, 1, ChaosOptions{StoreErrors: 100, StoreLatency: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	c.add(tx)
	if st, _, _ = getTx(ctx, c, tx.TransactionID); st != 500 && st != 503 {
		t.Fatalf("error fault answered %d", st)
	}
	if f := c.faults(); f.Calls != 1 || f.Errors != 1 || f.Delayed != 1 || f.Injected() != 2 {
		t.Fatalf("error counts: %+v", f)
	}
}

func getTx(ctx context.Context, a *storeAPI, id string) (int, map[string]any, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, a.URL()+"/inApps/v1/transactions/"+id, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		SignedTransactionInfo string `json:"signedTransactionInfo"`
	}
	_ = json.Unmarshal(b, &body)
	if body.SignedTransactionInfo == "" {
		return resp.StatusCode, nil, nil
	}
	parts := strings.Split(body.SignedTransactionInfo, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var m map[string]any
	_ = json.Unmarshal(p, &m)
	return resp.StatusCode, m, nil
}

func testSigner(t *testing.T) *AppleSigner {
	t.Helper()
	s, err := LoadAppleSigner(fakeStoreDir(t), "com.example.game", "Sandbox")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestServerP99AboveTheLargestBucket: a route whose p99 falls in the +Inf
// bucket (held store confirmations) is reported as above the largest
// bound, and the report still encodes as JSON (no infinity).
func TestServerP99AboveTheLargestBucket(t *testing.T) {
	series := func(le string) string {
		return `coinop_http_request_duration_seconds_bucket{method="POST",route="/v1/receipts",status="201",le="` + le + `"}`
	}
	mk := func(n float64) map[string]float64 {
		return map[string]float64{series("0.25"): n * 0.9, series("5"): n * 0.9, series("+Inf"): n,
			`coinop_http_request_duration_seconds_sum{method="POST",route="/v1/receipts",status="201"}`:   n,
			`coinop_http_request_duration_seconds_count{method="POST",route="/v1/receipts",status="201"}`: n}
	}
	f := Summarize([]Sample{{At: 0, Values: mk(0)}, {At: time.Second, Values: mk(100)}})
	if f == nil || len(f.Routes) != 1 {
		t.Fatalf("figures: %+v", f)
	}
	if r := f.Routes[0]; r.P99US != 0 || r.P99AboveUS != 5e6 {
		t.Fatalf("route: %+v", r)
	}
	if _, err := json.Marshal(f); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	f.WriteText(&b)
	if !strings.Contains(b.String(), "p99 > 5.00s") {
		t.Fatalf("text: %s", b.String())
	}
}

// TestReplayKeepsTheStoreFaults: a report's run configuration gives
// --replay the same fake store API and fault rates (with the seed, the same
// fault sequence).
func TestReplayKeepsTheStoreFaults(t *testing.T) {
	c := ChaosOptions{Waves: 1, Wait: time.Minute, StoreAPIAddr: "127.0.0.1:18407", StoreLatency: 50 * time.Millisecond, StoreErrors: 20, StoreTimeouts: 5}
	rc := &RunConfig{Seed: 1, Model: "open", Players: 5, Workers: 4, Rate: 10, DurationMS: 1000, MaxRequests: 100, TimeoutMS: 15000, Chaos: &c}
	f := rc.replayFlags()
	for k, want := range map[string]string{"store-api-addr": "127.0.0.1:18407", "store-latency": "50ms", "store-errors": "20", "store-timeouts": "5"} {
		if f[k] != want {
			t.Errorf("--%s: %q, want %q", k, f[k], want)
		}
	}
	var args []string
	for k, v := range f {
		args = append(args, "--"+k+"="+v)
	}
	cfg, err := ParseArgs(append(args, "--fake-store-dir", "x", "--jwt-secret", strings.Repeat("k", 32), "--admin-token", "t"), func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Chaos; got.StoreAPIAddr != c.StoreAPIAddr || got.StoreLatency != c.StoreLatency || got.StoreErrors != 20 || got.StoreTimeouts != 5 {
		t.Fatalf("parsed back: %+v", got)
	}
}
