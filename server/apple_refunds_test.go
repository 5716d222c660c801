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
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

// refundClaims is tx as Apple signs it after a refund of milli-percent
// percent (100000: REFUND_FULL), signed at signed.
func refundClaims(tx fakestore.TransactionClaims, percent int32, signed time.Time) fakestore.TransactionClaims {
	tx.RevocationDate, tx.SignedDate = signed, signed
	tx.RevocationType = "REFUND_FULL"
	if percent < 100000 {
		tx.RevocationType, tx.RevocationPercentage = "REFUND_PRORATED", percent
	}
	return tx
}

// notify posts a signed notification and fails unless it is acknowledged.
func (se *storeEnv) notify(t *testing.T, typ string, c fakestore.TransactionClaims) {
	t.Helper()
	if r := se.postApple(t, se.appleNotification(t, typ, "", c)); r.status != http.StatusOK {
		t.Fatalf("%s: %s", typ, r)
	}
}

func TestApplePartialRefundsAndTheirReversal(t *testing.T) {
	t.Parallel()

	t.Run("REFUND_PRORATED 50% of 100 gems takes 50 back, once; REFUND_REVERSED restores them", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "4001"}
		if r := se.redeem(t, "p1", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		t0 := time.Now().Add(-time.Minute)
		refund := se.appleNotification(t, "REFUND", "", refundClaims(tx, 50000, t0))
		for range 3 {
			if r := se.postApple(t, refund); r.status != http.StatusOK {
				t.Fatalf("refund: %s", r)
			}
		}
		// The same refund told again under another notification UUID.
		se.notify(t, "REFUND", refundClaims(tx, 50000, t0))
		se.runWorker(t)
		if w := se.wallet(t, "p1"); w["gems"] != 50 {
			t.Fatalf("after the 50%% refund: %v, want 50 gems", w)
		}
		if k := strings.Join(se.ledgerKinds(t, "p1"), " "); k != "store_refund store_purchase" {
			t.Fatalf("ledger kinds = %s", k)
		}
		// Apple reverses the refund: the transaction comes without its
		// revocation fields.
		reversed := tx
		reversed.SignedDate = t0.Add(30 * time.Second)
		se.notify(t, "REFUND_REVERSED", reversed)
		se.runWorker(t)
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("after REFUND_REVERSED: %v, want 100 gems", w)
		}
		// A late copy of the refund (another UUID) changes nothing.
		se.notify(t, "REFUND", refundClaims(tx, 50000, t0))
		se.runWorker(t)
		if k := strings.Join(se.ledgerKinds(t, "p1"), " "); k != "store_refund_reversal store_refund store_purchase" {
			t.Fatalf("ledger kinds = %s", k)
		}
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("after a late refund: %v, want 100 gems", w)
		}
		if ps := se.storePurchases(t, "p1"); len(ps) != 1 || ps[0].RevokedAt != nil {
			t.Fatalf("store purchases = %+v", ps)
		}
		if rf := se.refunds(t); len(rf.Refunds) != 0 || len(rf.Debts) != 0 {
			t.Fatalf("refunds = %+v", rf)
		}
		if inbox := se.storeNotifications(t, "processed"); len(inbox) != 4 {
			t.Fatalf("processed = %+v", inbox)
		}
		se.assertAuditOK(t)
	})

	t.Run("a refund of currency already spent, reversed: the debt goes and what was taken comes back", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "4101"}
		if r := se.redeem(t, "spender", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if r := se.purchase(t, "spender", "buy-potions", buy("potion", 2, "gems", 30)); r.status != http.StatusCreated {
			t.Fatalf("purchase: %s", r)
		}
		t0 := time.Now().Add(-time.Minute)
		se.notify(t, "REFUND", refundClaims(tx, 100000, t0))
		se.runWorker(t)
		if rf := se.refunds(t); se.wallet(t, "spender")["gems"] != 0 || len(rf.Debts) != 1 || rf.Debts[0].Amount != 60 {
			t.Fatalf("after the refund: %v, debts %+v", se.wallet(t, "spender"), rf.Debts)
		}
		reversed := tx
		reversed.SignedDate = t0.Add(time.Second)
		se.notify(t, "REFUND_REVERSED", reversed)
		se.runWorker(t)
		if w := se.wallet(t, "spender"); w["gems"] != 40 {
			t.Fatalf("after the reversal: %v, want the 40 gems taken back", w)
		}
		if rf := se.refunds(t); len(rf.Debts) != 0 {
			t.Fatalf("debts after the reversal = %+v", rf.Debts)
		}
		se.assertAuditOK(t)
	})

	t.Run("REFUND_REVERSED before its REFUND: one effect, the reversed state", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "4201"}
		if r := se.redeem(t, "p1", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		t0 := time.Now().Add(-time.Minute)
		reversed := tx
		reversed.SignedDate = t0.Add(time.Second)
		se.notify(t, "REFUND_REVERSED", reversed)
		se.runWorker(t)
		se.notify(t, "REFUND", refundClaims(tx, 100000, t0))
		se.notify(t, "REFUND", refundClaims(tx, 100000, t0))
		se.runWorker(t)
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("wallet = %v, want 100 gems", w)
		}
		if k := strings.Join(se.ledgerKinds(t, "p1"), " "); k != "store_purchase" {
			t.Fatalf("ledger kinds = %s", k)
		}
		se.assertAuditOK(t)
	})

	t.Run("quantity 3 with one refunded (33.333%) takes one third", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "4301", Quantity: 3}
		if r := se.redeem(t, "p1", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		se.notify(t, "REFUND", refundClaims(tx, 33333, time.Now()))
		se.runWorker(t)
		if w := se.wallet(t, "p1"); w["gems"] != 200 {
			t.Fatalf("wallet = %v, want 200 of 300 gems left", w)
		}
		se.assertAuditOK(t)
	})
}

// signedPayload signs payload (a notification's decoded payload) with the
// test CA as Apple would POST it.
func (se *storeEnv) signedPayload(t *testing.T, payload map[string]any) []byte {
	t.Helper()
	b, err := json.Marshal(payload)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := se.ca.Sign(b, fakestore.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]string{"signedPayload": jws})
	return body
}

func TestAppleNotificationsWithoutATransactionAreRecordedAndAcknowledged(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	base := func(typ, uuid string) map[string]any {
		return map[string]any{"notificationType": typ, "notificationUUID": uuid, "version": "2.0", "signedDate": time.Now().UnixMilli()}
	}
	summary := base("RENEWAL_EXTENSION", "5a1b0000-0000-4000-8000-000000000001")
	summary["subtype"] = "SUMMARY"
	summary["summary"] = map[string]any{"environment": "Production", "appAppleId": testAppID, "bundleId": testBundle,
		"productId": "com.example.vip", "requestIdentifier": "efb27071-45a4-4aca-9854-2a1e9146f265",
		"storefrontCountryCodes": []string{"CAN", "USA", "MEX"}, "succeededCount": 5, "failedCount": 2}
	rescind := base("RESCIND_CONSENT", "5a1b0000-0000-4000-8000-000000000002")
	rescind["appData"] = map[string]any{"appAppleId": testAppID, "bundleId": testBundle, "environment": "Production"}
	external := base("EXTERNAL_PURCHASE_TOKEN", "5a1b0000-0000-4000-8000-000000000003")
	external["subtype"] = "UNREPORTED"
	external["externalPurchaseToken"] = map[string]any{"externalPurchaseId": "b2158121-7af9-49d4-9561-1f588205523e",
		"tokenCreationDate": time.Now().UnixMilli(), "appAppleId": testAppID, "bundleId": testBundle}
	unknown := base("SOMETHING_NEW", "5a1b0000-0000-4000-8000-000000000004")
	unknown["someNewShape"] = map[string]any{"bundleId": testBundle}
	for _, p := range []map[string]any{summary, rescind, external, unknown} {
		r := se.postApple(t, se.signedPayload(t, p))
		var ack struct {
			NotificationID string `json:"notification_id"`
		}
		r.decode(t, &ack)
		if r.status != http.StatusOK || ack.NotificationID != p["notificationUUID"] {
			t.Fatalf("%s: %s", p["notificationType"], r)
		}
	}
	se.runWorker(t)
	inbox := se.storeNotifications(t, "processed")
	kinds := map[string]bool{}
	for _, n := range inbox {
		kinds[n.Kind] = true
	}
	for _, k := range []string{"RENEWAL_EXTENSION/SUMMARY", "RESCIND_CONSENT", "EXTERNAL_PURCHASE_TOKEN/UNREPORTED", "SOMETHING_NEW"} {
		if !kinds[k] {
			t.Errorf("%s not recorded and processed: %+v", k, inbox)
		}
	}
	if len(inbox) != 4 {
		t.Errorf("processed = %+v", inbox)
	}
}

// fakeAppStoreAPI is the App Store Server API: Get Transaction Info mints
// the asked transaction, Send Consumption Information records what it got
// and answers status().
type fakeAppStoreAPI struct {
	mu     sync.Mutex
	bodies []map[string]any
	paths  []string
	status func() int
}

func (f *fakeAppStoreAPI) consumptions() ([]map[string]any, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]map[string]any(nil), f.bodies...), append([]string(nil), f.paths...)
}

// serve sets st.AppleAPI to a client of f; mint signs the transactions Get
// Transaction Info answers with.
func (f *fakeAppStoreAPI) serve(t *testing.T, st *server.Stores, mint func(fakestore.TransactionClaims) string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/inApps/v1/transactions/"):
			id := strings.TrimPrefix(r.URL.Path, "/inApps/v1/transactions/")
			// Apple's answer is authoritative: the price the ledger records
			// comes from it ($9.99).
			jws := mint(fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: id, Price: 9990, Currency: "USD"})
			_ = json.NewEncoder(w).Encode(map[string]string{"signedTransactionInfo": jws})
		case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/inApps/v1/transactions/consumption/"):
			b, _ := io.ReadAll(r.Body)
			var body map[string]any
			if err := json.Unmarshal(b, &body); err != nil {
				t.Errorf("consumption body %s: %v", b, err)
			}
			f.mu.Lock()
			f.bodies, f.paths = append(f.bodies, body), append(f.paths, r.URL.Path)
			f.mu.Unlock()
			w.WriteHeader(f.status())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if st.AppleAPI, err = receipts.NewAppleServerAPI(receipts.AppleServerAPIConfig{
		KeyID: "2X9R4HXF34", IssuerID: "57246542-96fe-1a63-e053-0824d011072a",
		KeyContent: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		BundleID:   testBundle, BaseURL: srv.URL,
	}, st.Apple); err != nil {
		t.Fatal(err)
	}
}

func TestAppleConsumptionRequest(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		name := "answered from the ledger, retried after a failure"
		if !on {
			name = "off: recorded and acknowledged only"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			answers := []int{http.StatusInternalServerError, http.StatusAccepted}
			f := &fakeAppStoreAPI{status: func() int {
				mu.Lock()
				defer mu.Unlock()
				s := answers[0]
				if len(answers) > 1 {
					answers = answers[1:]
				}
				return s
			}}
			var se *storeEnv
			// The handler mints only once se is set, at the first request.
			se = newStoreEnv(t, withStores(func(st *server.Stores) {
				f.serve(t, st, func(c fakestore.TransactionClaims) string { return se.mint(t, c) })
			}))
			worker := se.srv.StoreWorker(server.StoreWorkerOptions{Policy: entitlements.ClawbackClamp, AckDelay: -1, ConsumptionInfo: on})
			tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "4401",
				AppAccountToken: "7e3fb20b-4cdb-47cc-936d-99d65f608138", Price: 9990, Currency: "USD"}
			if r := se.redeem(t, "p1", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
				t.Fatalf("redeem: %s", r)
			}
			// 30 of the 100 gems are spent: partly consumed.
			if r := se.purchase(t, "p1", "buy-potion", buy("potion", 1, "gems", 30)); r.status != http.StatusCreated {
				t.Fatalf("purchase: %s", r)
			}
			body, err := se.ca.MintNotification(fakestore.NotificationClaims{Type: "CONSUMPTION_REQUEST", BundleID: testBundle,
				AppAppleID: testAppID, Environment: "Production", Transaction: &tx})
			if err != nil {
				t.Fatal(err)
			}
			if r := se.postApple(t, body); r.status != http.StatusOK {
				t.Fatalf("consumption request: %s", r)
			}
			if err := worker.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !on {
				if got, _ := f.consumptions(); len(got) != 0 {
					t.Fatalf("consumption information sent while off: %v", got)
				}
				if inbox := se.storeNotifications(t, "processed"); len(inbox) != 1 || inbox[0].Kind != "CONSUMPTION_REQUEST" {
					t.Fatalf("inbox = %+v", inbox)
				}
				return
			}
			// Apple failed: the request stays in the inbox with its error.
			pending := se.storeNotifications(t, "pending")
			if len(pending) != 1 || !strings.Contains(pending[0].LastError, "consumption") {
				t.Fatalf("pending = %+v", pending)
			}
			// Make the retry due now rather than wait for the backoff.
			if _, err := se.pool.Exec(context.Background(), `UPDATE store_notifications SET next_attempt_at = now()`); err != nil {
				t.Fatal(err)
			}
			if err := worker.RunOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if inbox := se.storeNotifications(t, "processed"); len(inbox) != 1 {
				t.Fatalf("processed = %+v", inbox)
			}
			got, paths := f.consumptions()
			if len(got) != 2 || paths[1] != "/inApps/v1/transactions/consumption/4401" {
				t.Fatalf("consumption calls %v %v", paths, got)
			}
			b := got[1]
			want := map[string]any{"customerConsented": true, "consumptionStatus": float64(2), "deliveryStatus": float64(0),
				"platform": float64(1), "accountTenure": float64(1), "appAccountToken": tx.AppAccountToken,
				// $9.99 bought, nothing refunded: the $0.01–49.99 band and $0.
				"lifetimeDollarsPurchased": float64(2), "lifetimeDollarsRefunded": float64(1), "playTime": float64(0),
				"sampleContentProvided": false, "userStatus": float64(0), "refundPreference": float64(0)}
			for k, v := range want {
				if b[k] != v {
					t.Errorf("%s = %v, want %v (body %v)", k, b[k], v, b)
				}
			}
		})
	}
}
