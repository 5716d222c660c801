package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

// fakeAppleAPI fakes the App Store Server API's Get Transaction Info: it
// answers with the claims stored for the asked id, signed by the test CA,
// and 404 for unknown ids.
type fakeAppleAPI struct {
	mu     sync.Mutex
	se     *storeEnv
	claims map[string]fakestore.TransactionClaims
}

func (f *fakeAppleAPI) set(c fakestore.TransactionClaims) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims[c.TransactionID] = c
}

func (f *fakeAppleAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/inApps/v1/transactions/")
	if !ok || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	c, ok := f.claims[id]
	f.mu.Unlock()
	if !ok {
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errorCode":4040010,"errorMessage":"Transaction id not found."}`))
		return
	}
	c.BundleID, c.Environment = testBundle, "Production"
	jws, err := f.se.ca.MintTransaction(c)
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]string{"signedTransactionInfo": jws})
}

func TestAppleServerAPIConfirmation(t *testing.T) {
	t.Parallel()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeAppleAPI{claims: map[string]fakestore.TransactionClaims{}}
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
	fake.se = se

	t.Run("a transaction Apple confirms is granted", func(t *testing.T) {
		c := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3001"}
		fake.set(c)
		if r := se.redeem(t, "api-p1", appleJWS(se.mint(t, c))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if w := se.wallet(t, "api-p1"); w["gems"] != 100 {
			t.Fatalf("wallet = %v", w)
		}
	})

	t.Run("a transaction Apple has since refunded is refused", func(t *testing.T) {
		c := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3002", PurchaseDate: time.Now().Add(-time.Hour)}
		jws := se.mint(t, c) // signed on the device before the refund
		c.RevocationDate = time.Now().Add(-time.Minute)
		fake.set(c)
		if p := assertProblem(t, se.redeem(t, "api-p2", appleJWS(jws)), http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "state" {
			t.Fatalf("reason = %v, want state", p["reason"])
		}
		se.assertNothingRecorded(t, "api-p2")
	})

	t.Run("a transaction Apple does not know is refused", func(t *testing.T) {
		jws := se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3003"})
		if p := assertProblem(t, se.redeem(t, "api-p3", appleJWS(jws)), http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "state" {
			t.Fatalf("reason = %v, want state", p["reason"])
		}
		se.assertNothingRecorded(t, "api-p3")
	})
}
