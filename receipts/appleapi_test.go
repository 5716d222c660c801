package receipts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/receipts/fakestore"
)

const apiBundle = "com.example.coinop"

// testP8 is a throwaway App Store Server API key (PKCS#8 EC PEM).
func testP8(t testing.TB) []byte {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// fakeServerAPI answers Get Transaction Info with answer(id), after checking
// the request carries a bearer JWT.
func fakeServerAPI(t *testing.T, answer func(w http.ResponseWriter, id string)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		const prefix = "/inApps/v1/transactions/"
		if r.Method != http.MethodGet || !strings.HasPrefix(r.URL.Path, prefix) {
			http.NotFound(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || strings.Count(tok, ".") != 2 {
			t.Errorf("request without a bearer JWT: %q", r.Header.Get("Authorization"))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		answer(w, strings.TrimPrefix(r.URL.Path, prefix))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newTestServerAPI(t *testing.T, ca *fakestore.CA, base string, hc *http.Client) *AppleServerAPI {
	t.Helper()
	v, err := NewAppleVerifier(AppleConfig{BundleID: apiBundle, Environment: EnvSandbox, Roots: ca.Roots()})
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewAppleServerAPI(AppleServerAPIConfig{
		KeyID: "2X9R4HXF34", IssuerID: "57246542-96fe-1a63-e053-0824d011072a", KeyContent: testP8(t),
		BundleID: apiBundle, Sandbox: true, BaseURL: base, HTTPClient: hc,
	}, v)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// signedAnswer answers with a transaction minted from c for the asked id.
func signedAnswer(t *testing.T, ca *fakestore.CA, c fakestore.TransactionClaims) func(http.ResponseWriter, string) {
	return func(w http.ResponseWriter, id string) {
		c.TransactionID, c.BundleID = id, apiBundle
		jws, err := ca.MintTransaction(c)
		if err != nil {
			t.Error(err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"signedTransactionInfo": jws})
	}
}

func TestAppleServerAPIConfirms(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	srv := fakeServerAPI(t, signedAnswer(t, ca, fakestore.TransactionClaims{ProductID: "gems_100"}))
	a := newTestServerAPI(t, ca, srv.URL, nil)
	id := fakestore.NewTransactionID()
	p, err := a.Confirm(context.Background(), id, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.TransactionID != id || p.ProductID != "gems_100" || p.RevokedAt != nil || p.Environment != EnvSandbox {
		t.Fatalf("got %+v", p)
	}
}

func TestAppleServerAPIRevoked(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	revoked := time.Now().Add(-time.Minute).Truncate(time.Millisecond)
	srv := fakeServerAPI(t, signedAnswer(t, ca, fakestore.TransactionClaims{
		ProductID: "gems_100", PurchaseDate: revoked.Add(-time.Hour), RevocationDate: revoked,
	}))
	a := newTestServerAPI(t, ca, srv.URL, nil)
	p, err := a.Confirm(context.Background(), fakestore.NewTransactionID(), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.RevokedAt == nil || !p.RevokedAt.Equal(revoked) {
		t.Fatalf("RevokedAt = %v, want %v", p.RevokedAt, revoked)
	}
}

func TestAppleServerAPIErrors(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	other := newCA(t, fakestore.CAOptions{})
	status := func(code int, body string) func(http.ResponseWriter, string) {
		return func(w http.ResponseWriter, _ string) {
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		}
	}
	body := func(b string) func(http.ResponseWriter, string) { return status(http.StatusOK, b) }
	for _, tc := range []struct {
		name    string
		answer  func(http.ResponseWriter, string)
		reason  Reason
		wantErr error
	}{
		{"404 not found", status(404, `{"errorCode":4040010,"errorMessage":"Transaction id not found."}`), ReasonState, nil},
		{"404 empty", status(404, ``), ReasonState, nil},
		{"404 retryable", status(404, `{"errorCode":4040002,"errorMessage":"Account not found. Please try again."}`), "", ErrStoreUnavailable},
		{"400 invalid id", status(400, `{"errorCode":4000006,"errorMessage":"Invalid transaction id."}`), ReasonFormat, nil},
		{"500", status(500, `{"errorCode":5000000,"errorMessage":"An unknown error occurred."}`), "", ErrStoreUnavailable},
		{"503 html", status(503, `<html>down</html>`), "", ErrStoreUnavailable},
		{"429", status(429, `{"errorCode":4290000,"errorMessage":"Rate limit exceeded."}`), "", ErrStoreUnavailable},
		{"401", status(401, ``), "", ErrMisconfigured},
		{"403", status(403, `garbage`), "", ErrMisconfigured},
		{"garbage body", body(`not json {{{`), ReasonFormat, nil},
		{"empty body", body(``), ReasonFormat, nil},
		{"no signedTransactionInfo", body(`{}`), ReasonFormat, nil},
		{"wrong type", body(`{"signedTransactionInfo": 7}`), ReasonFormat, nil},
		{"garbage jws", body(`{"signedTransactionInfo": "garbage"}`), ReasonFormat, nil},
		{"jws dots", body(`{"signedTransactionInfo": ".."}`), ReasonFormat, nil},
		{"untrusted chain", signedAnswer(t, other, fakestore.TransactionClaims{ProductID: "gems_100"}), ReasonChain, nil},
		{"another transaction", func(w http.ResponseWriter, _ string) {
			signedAnswer(t, ca, fakestore.TransactionClaims{ProductID: "gems_100"})(w, fakestore.NewTransactionID())
		}, ReasonFormat, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := fakeServerAPI(t, tc.answer)
			a := newTestServerAPI(t, ca, srv.URL, nil)
			p, err := a.Confirm(context.Background(), fakestore.NewTransactionID(), VerifyOptions{})
			if p != nil {
				t.Fatalf("got purchase %+v", p)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			wantReason(t, err, tc.reason)
		})
	}
}

func TestAppleServerAPIUnavailable(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	release := make(chan struct{})
	slow := fakeServerAPI(t, func(w http.ResponseWriter, _ string) { <-release })
	defer close(release)
	a := newTestServerAPI(t, ca, slow.URL, &http.Client{Timeout: 100 * time.Millisecond})
	if _, err := a.Confirm(context.Background(), "1000", VerifyOptions{}); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("timeout: got %v", err)
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	a = newTestServerAPI(t, ca, closed.URL, nil)
	if _, err := a.Confirm(context.Background(), "1000", VerifyOptions{}); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("connection refused: got %v", err)
	}
}

func TestAppleServerAPIRefusesBadInput(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	srv := fakeServerAPI(t, func(w http.ResponseWriter, id string) {
		t.Errorf("Apple called for %q", id)
	})
	a := newTestServerAPI(t, ca, srv.URL, nil)
	for _, id := range []string{"", "12/../34", "abc", "1?x=1"} {
		_, err := a.Confirm(context.Background(), id, VerifyOptions{})
		wantReason(t, err, ReasonFormat)
	}
	v, _ := NewAppleVerifier(AppleConfig{BundleID: apiBundle, Environment: EnvSandbox, Roots: ca.Roots()})
	for _, key := range [][]byte{nil, []byte("not pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})} {
		if _, err := NewAppleServerAPI(AppleServerAPIConfig{KeyID: "k", IssuerID: "i", BundleID: apiBundle, KeyContent: key}, v); err == nil {
			t.Errorf("key %q accepted", key)
		}
	}
}
