package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/api/androidpublisher/v3"

	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
	"github.com/coinop/coinop/stores"
)

type storeSweep struct {
	Store       string     `json:"store"`
	Cursor      *time.Time `json:"cursor"`
	NextRunAt   time.Time  `json:"next_run_at"`
	LastFound   int64      `json:"last_found"`
	LastApplied int64      `json:"last_applied"`
	Found       int64      `json:"found"`
	Applied     int64      `json:"applied"`
	Runs        int64      `json:"runs"`
	Failures    int64      `json:"failures"`
	LastError   string     `json:"last_error"`
}

func (e *env) storeSweeps(t testing.TB) map[string]storeSweep {
	t.Helper()
	r := e.get(t, "/admin/v1/store-sweeps", adminToken)
	if r.status != http.StatusOK {
		t.Fatalf("GET store-sweeps: %s", r)
	}
	var body struct {
		Sweeps []storeSweep `json:"sweeps"`
	}
	r.decode(t, &body)
	out := map[string]storeSweep{}
	for _, s := range body.Sweeps {
		out[s.Store] = s
	}
	return out
}

// sweepOnce runs one round of sw and returns the result of store.
func sweepOnce(t testing.TB, sw *stores.Sweeper, store string) (stores.SweepResult, bool) {
	t.Helper()
	rs, err := sw.RunOnce(context.Background())
	if err != nil {
		t.Fatalf("sweep: %v", err)
	}
	for _, r := range rs {
		if r.Store == store {
			return r, true
		}
	}
	return stores.SweepResult{}, false
}

func TestGoogleSweepAppliesARefundNoNotificationReported(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	playSrv := httptest.NewServer(se.play)
	t.Cleanup(playSrv.Close)
	key, client, err := fakestore.PlayClient(playSrv.URL)
	if err != nil {
		t.Fatal(err)
	}
	voided, err := receipts.NewVoidedPurchasesAPI(receipts.VoidedPurchasesConfig{ServiceAccountJSON: key, HTTPClient: client, BaseURL: playSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	googleRedeemed(t, se, "g-sweep", "tok-sweep", "GPA.1000")
	// Refunded in Play Console; the notification never arrived.
	se.play.AddProduct("tok-sweep", playProduct("com.example.gems100", "GPA.1000", 1))
	at := time.Now().Add(-time.Hour).UnixMilli()
	se.play.AddVoided(&androidpublisher.VoidedPurchase{PurchaseToken: "tok-sweep", OrderId: "GPA.1000", VoidedTimeMillis: at, PurchaseTimeMillis: at - 1000, VoidedReason: 1})
	// Two more, never redeemed here: three records, two pages.
	se.play.AddVoided(&androidpublisher.VoidedPurchase{PurchaseToken: "tok-else-1", OrderId: "GPA.1001", VoidedTimeMillis: at})
	se.play.AddVoided(&androidpublisher.VoidedPurchase{PurchaseToken: "tok-else-2", OrderId: "GPA.1002", VoidedTimeMillis: at})
	// Older than the lookback: not read.
	se.play.AddVoided(&androidpublisher.VoidedPurchase{PurchaseToken: "tok-old", OrderId: "GPA.1003", VoidedTimeMillis: time.Now().Add(-100 * time.Hour).UnixMilli()})

	// An interval of a microsecond: every round is due.
	sw := se.srv.StoreSweeper(server.StoreSweepOptions{GoogleVoided: voided, Interval: time.Microsecond})
	if got := strings.Join(sw.Stores(), ","); got != "google" {
		t.Fatalf("stores swept = %s", got)
	}
	r, ok := sweepOnce(t, sw, "google")
	if !ok || r.Found != 3 || r.Applied != 3 {
		t.Fatalf("first sweep = %+v", r)
	}
	se.runWorker(t)
	if w, items := se.wallet(t, "g-sweep"), se.items(t, "g-sweep"); w["gems"] != 0 || items["potion"] != 0 {
		t.Fatalf("after the sweep: wallet %v, items %v", w, items)
	}
	if n := se.notificationByID(t, "voided:GPA.1000:"+strconv.FormatInt(at, 10)); n.Status != "processed" || n.Kind != "VOIDED_PURCHASE" {
		t.Fatalf("inbox entry = %+v", n)
	}

	// The same span again: found again, applied once.
	r, ok = sweepOnce(t, sw, "google")
	if !ok || r.Found != 3 || r.Applied != 0 {
		t.Fatalf("second sweep = %+v", r)
	}
	se.runWorker(t)
	if k := strings.Join(se.ledgerKinds(t, "g-sweep"), " "); k != "store_refund store_purchase" {
		t.Fatalf("ledger kinds = %s", k)
	}
	st := se.storeSweeps(t)["google"]
	if st.Runs != 2 || st.Found != 6 || st.Applied != 3 || st.LastFound != 3 || st.LastApplied != 0 || st.LastError != "" || st.Cursor == nil {
		t.Fatalf("sweep state = %+v", st)
	}
	m := string(se.get(t, "/metrics", "").body)
	for _, want := range []string{`coinop_store_sweep_applied_total{store="google"} 3`, `coinop_store_sweep_runs_total{store="google"} 2`,
		`coinop_store_sweep_last_failed{store="google"} 0`} {
		if !strings.Contains(m, want) {
			t.Fatalf("/metrics lacks %s", want)
		}
	}

	t.Run("a sweep not yet due does not run", func(t *testing.T) {
		hourly := se.srv.StoreSweeper(server.StoreSweepOptions{GoogleVoided: voided, Interval: time.Hour})
		if _, ok := sweepOnce(t, hourly, "google"); !ok {
			t.Fatal("a due sweep did not run")
		}
		if r, ok := sweepOnce(t, hourly, "google"); ok {
			t.Fatalf("a sweep ran before its interval: %+v", r)
		}
	})

	t.Run("a failing store keeps the cursor and records the error", func(t *testing.T) {
		before := se.storeSweeps(t)["google"]
		if _, err := se.pool.Exec(context.Background(), `UPDATE store_sweeps SET next_run_at = now()`); err != nil {
			t.Fatal(err)
		}
		se.play.FailWith(http.StatusServiceUnavailable)
		_, err := sw.RunOnce(context.Background())
		se.play.FailWith(0)
		if err == nil || !strings.Contains(err.Error(), "store unavailable") {
			t.Fatalf("sweep error = %v", err)
		}
		after := se.storeSweeps(t)["google"]
		if after.Failures != before.Failures+1 || after.LastError == "" || !after.Cursor.Equal(*before.Cursor) {
			t.Fatalf("after a failed sweep: %+v (before %+v)", after, before)
		}
		if !strings.Contains(string(se.get(t, "/metrics", "").body), `coinop_store_sweep_last_failed{store="google"} 1`) {
			t.Fatal("/metrics does not show the failure")
		}
	})
}

// fakeAppleHistory serves Get Notification History from a list of signed
// payloads, two per page, and Get Transaction Info through api.
type fakeAppleHistory struct {
	api      *fakeAppleAPI
	mu       sync.Mutex
	payloads []string
	requests []map[string]any
}

func (f *fakeAppleHistory) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/inApps/v1/notifications/history" {
		f.api.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var req map[string]any
	b, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(b, &req); err != nil || req["startDate"] == nil || req["endDate"] == nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, req)
	from, _ := strconv.Atoi(r.URL.Query().Get("paginationToken"))
	to := min(from+2, len(f.payloads))
	var items []map[string]any
	for _, p := range f.payloads[from:to] {
		items = append(items, map[string]any{"signedPayload": p, "firstSendAttemptResult": "TIMED_OUT"})
	}
	res := map[string]any{"notificationHistory": items, "hasMore": to < len(f.payloads)}
	if to < len(f.payloads) {
		res["paginationToken"] = strconv.Itoa(to)
	}
	_ = json.NewEncoder(w).Encode(res)
}

func TestAppleSweepAppliesARefundFromTheNotificationHistory(t *testing.T) {
	t.Parallel()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeAppleHistory{api: &fakeAppleAPI{claims: map[string]fakestore.TransactionClaims{}}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	se := newStoreEnv(t, withStores(func(st *server.Stores) {
		st.AppleAPI, err = receipts.NewAppleServerAPI(receipts.AppleServerAPIConfig{
			KeyID: "2X9R4HXF34", IssuerID: "57246542-96fe-1a63-e053-0824d011072a",
			KeyContent: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
			BundleID:   testBundle, BaseURL: srv.URL, HTTPClient: &http.Client{Timeout: 5 * time.Second},
		}, st.Apple)
	}))
	if err != nil {
		t.Fatal(err)
	}
	fake.api.se = se
	c := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "5001"}
	fake.api.set(c)
	if r := se.redeem(t, "a-sweep", appleJWS(se.mint(t, c))); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}
	refunded := c
	refunded.RevocationDate = time.Now().Add(-time.Hour)
	payload := func(body []byte) string {
		var env struct {
			SignedPayload string `json:"signedPayload"`
		}
		if err := json.Unmarshal(body, &env); err != nil {
			t.Fatal(err)
		}
		return env.SignedPayload
	}
	// Apple's REFUND, and two notifications about purchases never redeemed
	// here; delivery failed, so coinop never saw them.
	fake.payloads = []string{
		payload(se.appleNotification(t, "REFUND", "b3f1f6a0-0000-4000-8000-000000005001", refunded)),
		payload(se.appleNotification(t, "TEST", "b3f1f6a0-0000-4000-8000-000000005002", fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "5002"})),
		payload(se.appleNotification(t, "CONSUMPTION_REQUEST", "b3f1f6a0-0000-4000-8000-000000005003", fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "5003"})),
	}
	sw := se.srv.StoreSweeper(server.StoreSweepOptions{Interval: time.Microsecond})
	r, ok := sweepOnce(t, sw, "apple")
	if !ok || r.Found != 3 || r.Applied != 3 {
		t.Fatalf("first sweep = %+v", r)
	}
	se.runWorker(t)
	if w := se.wallet(t, "a-sweep"); w["gems"] != 0 {
		t.Fatalf("wallet after the sweep = %v", w)
	}
	// The push arriving late, and the sweep again: nothing more.
	if resp := se.postApple(t, se.appleNotification(t, "REFUND", "b3f1f6a0-0000-4000-8000-000000005001", refunded)); resp.status != http.StatusOK {
		t.Fatalf("late push: %s", resp)
	}
	r, ok = sweepOnce(t, sw, "apple")
	if !ok || r.Found != 3 || r.Applied != 0 {
		t.Fatalf("second sweep = %+v", r)
	}
	se.runWorker(t)
	if k := strings.Join(se.ledgerKinds(t, "a-sweep"), " "); k != "store_refund store_purchase" {
		t.Fatalf("ledger kinds = %s", k)
	}
	fake.mu.Lock()
	n := len(fake.requests)
	fake.mu.Unlock()
	if n != 4 { // two pages, twice
		t.Fatalf("history requests = %d", n)
	}
	if st := se.storeSweeps(t)["apple"]; st.Runs != 2 || st.Applied != 3 || st.LastError != "" {
		t.Fatalf("sweep state = %+v", st)
	}
}
