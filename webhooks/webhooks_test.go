package webhooks

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/outbox"
)

func TestMain(m *testing.M) { testenv.Main(m) }

var by = audit.Attribution{Actor: "test"}

type receiver struct {
	mu     sync.Mutex
	got    []Envelope
	fail   int // answer 500 to this many requests first
	calls  int
	secret string
	t      *testing.T
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	wh, err := standardwebhooks.NewWebhook(r.secret)
	if err != nil || wh.Verify(body, req.Header) != nil {
		r.t.Errorf("signature does not verify with the reference library: %v", err)
	}
	if r.calls <= r.fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	var e Envelope
	if err := json.Unmarshal(body, &e); err != nil {
		r.t.Errorf("body: %v", err)
	}
	r.got = append(r.got, e)
}

func (r *receiver) snapshot() (calls int, got []Envelope) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls, append([]Envelope(nil), r.got...)
}

func insertEvent(t *testing.T, db *pgxpool.Pool, typ string, commit bool) {
	t.Helper()
	ctx := context.Background()
	tx, err := db.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := "p1"
	if err := outbox.Insert(ctx, tx, typ, &p, map[string]any{"n": 1}); err != nil {
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit(ctx)
	} else {
		err = tx.Rollback(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func setup(t *testing.T, fail int, types *[]string) (*pgxpool.Pool, *Endpoints, Endpoint, *receiver) {
	db, _ := testenv.NewPool(t)
	rcv := &receiver{fail: fail, t: t}
	srv := httptest.NewServer(rcv)
	t.Cleanup(srv.Close)
	eps := NewEndpoints(db, true)
	u := srv.URL
	ep, secret, err := eps.Create(context.Background(), Settings{URL: &u, EventTypes: types}, by)
	if err != nil {
		t.Fatal(err)
	}
	rcv.mu.Lock()
	rcv.secret = secret
	rcv.mu.Unlock()
	return db, eps, ep, rcv
}

func fast() Options {
	return Options{Poll: 5 * time.Millisecond, Timeout: 2 * time.Second, Schedule: []time.Duration{10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}}
}

func run(t *testing.T, w *Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestFailingThreeTimesThenSucceedingGetsOneAttemptPerRetryThenStops(t *testing.T) {
	t.Parallel()
	db, _, _, rcv := setup(t, 3, nil)
	insertEvent(t, db, "ledger.award", true)
	insertEvent(t, db, "ledger.spend", false) // rolled back: no event, no delivery
	w := NewWorker(db, fast())
	run(t, w)
	waitFor(t, "delivery", func() bool { _, got := rcv.snapshot(); return len(got) == 1 })
	// Further rounds attempt nothing more.
	for range 5 {
		if n, err := w.Round(context.Background()); err != nil || n != 0 {
			t.Fatalf("round after delivery: %d %v", n, err)
		}
	}
	calls, got := rcv.snapshot()
	if calls != 4 || got[0].Type != "ledger.award" || string(got[0].Data) != `{"n": 1}` && string(got[0].Data) != `{"n":1}` {
		t.Errorf("calls %d, got %+v", calls, got)
	}
}

func TestAReplicaThatDiesAfterClaimingIsTakenOverWhenTheLeaseExpires(t *testing.T) {
	t.Parallel()
	db, _, _, rcv := setup(t, 0, nil)
	insertEvent(t, db, "ledger.purchase", true)
	opt := fast()
	opt.Lease = 200 * time.Millisecond
	a := NewWorker(db, opt)
	if err := a.fanOut(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := a.claim(context.Background(), 10)
	if err != nil || len(c) != 1 {
		t.Fatalf("claim: %v %d", err, len(c))
	}
	// A dies here. B takes over after the lease.
	run(t, NewWorker(db, opt))
	waitFor(t, "B's delivery", func() bool { _, got := rcv.snapshot(); return len(got) == 1 })
	// The receiver answers before B records the delivery: wait for the
	// record, or A's result below would race B's instead of following it.
	waitFor(t, "B's delivery recorded", func() bool {
		var status string
		err := db.QueryRow(context.Background(), `SELECT status FROM webhook_deliveries`).Scan(&status)
		return err == nil && status == "delivered"
	})
	// A's late result is fenced out: the delivery stays delivered.
	a.deliver(context.Background(), claimed{id: c[0].id, token: c[0].token, attempts: 1, url: "http://127.0.0.1:1/", secrets: c[0].secrets, event: c[0].event})
	var status string
	if err := db.QueryRow(context.Background(), `SELECT status FROM webhook_deliveries`).Scan(&status); err != nil || status != "delivered" {
		t.Errorf("status %q %v", status, err)
	}
}

func TestAPersistentlyFailingEndpointIsDisabled(t *testing.T) {
	t.Parallel()
	db, eps, ep, _ := setup(t, 1_000_000, nil)
	insertEvent(t, db, "ledger.award", true)
	opt := fast()
	opt.DisableAfter = 30 * time.Millisecond
	opt.Schedule = []time.Duration{20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond, 20 * time.Millisecond}
	run(t, NewWorker(db, opt))
	waitFor(t, "disabled", func() bool { e, err := eps.Get(context.Background(), ep.ID); return err == nil && !e.Enabled })
	e, _ := eps.Get(context.Background(), ep.ID)
	if e.DisabledReason == "" {
		t.Errorf("no reason: %+v", e)
	}
}

func TestFiltersAndRedelivery(t *testing.T) {
	t.Parallel()
	types := []string{"catalog.published", "ledger.aw*"}
	if err := ValidateEventTypes(types); err == nil {
		t.Fatal("ledger.aw* accepted")
	}
	types = []string{"catalog.published"}
	db, eps, ep, rcv := setup(t, 0, &types)
	insertEvent(t, db, "ledger.award", true)
	insertEvent(t, db, "catalog.published", true)
	w := NewWorker(db, fast())
	run(t, w)
	waitFor(t, "catalog event", func() bool { _, got := rcv.snapshot(); return len(got) == 1 })
	if _, got := rcv.snapshot(); got[0].Type != "catalog.published" {
		t.Fatalf("filter let through %s", got[0].Type)
	}
	var first int64
	if err := db.QueryRow(context.Background(), `SELECT min(id) FROM events`).Scan(&first); err != nil {
		t.Fatal(err)
	}
	if n, err := eps.Redeliver(context.Background(), ep.ID, Redelivery{EventID: first}, by); err != nil || n != 1 {
		t.Fatalf("redeliver one: %d %v", n, err)
	}
	waitFor(t, "redelivered event", func() bool { _, got := rcv.snapshot(); return len(got) == 2 })
	n, err := eps.Redeliver(context.Background(), ep.ID, Redelivery{Since: time.Now().Add(-time.Hour), Until: time.Now().Add(time.Hour)}, by)
	if err != nil || n != 1 {
		t.Fatalf("redeliver range (filtered): %d %v", n, err)
	}
	waitFor(t, "range", func() bool { _, got := rcv.snapshot(); return len(got) == 3 })
	if _, err := eps.Redeliver(context.Background(), ep.ID, Redelivery{EventID: 1 << 40}, by); err != ErrEventNotFound {
		t.Errorf("unknown event: %v", err)
	}
	_ = pgx.ErrNoRows
}

func TestURLValidation(t *testing.T) {
	for _, c := range []struct {
		url      string
		insecure bool
		ok       bool
	}{
		{"https://example.com/hook", false, true},
		{"http://example.com/hook", false, false},
		{"http://127.0.0.1:9/hook", true, true},
		{"ftp://example.com/", true, false},
		{"https://user:pw@example.com/", false, false},
		{"https:///nohost", false, false},
		{"https://example.com/#frag", false, false},
		{"", false, false},
		{"https://example.com:99999/", false, false},
	} {
		if err := ValidateURL(c.url, c.insecure); (err == nil) != c.ok {
			t.Errorf("ValidateURL(%q, %v) = %v", c.url, c.insecure, err)
		}
	}
}

func FuzzValidateURL(f *testing.F) {
	f.Add("https://example.com/x")
	f.Add("http://[::1]:80/")
	f.Fuzz(func(t *testing.T, s string) { _ = ValidateURL(s, false) })
}
