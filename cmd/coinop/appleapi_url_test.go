package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coinop/coinop/receipts"
)

// TestAppleAPIURLSetting points the App Store Server API at a local fake:
// allowed with the fake store only on loopback, a warning with a real
// environment, and the confirmation calls go to it.
func TestAppleAPIURLSetting(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p8 := filepath.Join(dir, "AuthKey.p8")
	if err := os.WriteFile(p8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	var asked atomic.Value
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path)
		http.Error(w, `{"errorCode":4040010,"errorMessage":"Transaction id not found."}`, http.StatusNotFound)
	}))
	defer fake.Close()
	base := func(kv ...string) map[string]string {
		m := map[string]string{"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": filepath.Join(dir, "store"), "COINOP_APPLE_ENVIRONMENT": "sandbox",
			"COINOP_APPLE_BUNDLE_ID": "com.example.game", "COINOP_APPLE_API_URL": fake.URL,
			"COINOP_APPLE_API_KEY_ID": "2X9R4HXF34", "COINOP_APPLE_API_ISSUER_ID": "57246542-96fe-1a63-e053-0824d011072a", "COINOP_APPLE_API_PRIVATE_KEY": p8}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	st, err := storesFrom(t, base())
	if err != nil || st.stores.AppleAPI == nil {
		t.Fatalf("fake store with a loopback App Store Server API: %+v, %v", st.stores, err)
	}
	_, err = st.stores.AppleAPI.Confirm(context.Background(), "2000000012345678", receipts.VerifyOptions{})
	if got, _ := asked.Load().(string); got != "/inApps/v1/transactions/2000000012345678" {
		t.Fatalf("the confirmation asked %q (error %v), not the configured fake", got, err)
	}
	if st, err := storesFrom(t, base("COINOP_STORES", "apple", "COINOP_FAKE_STORE_DIR", "", "COINOP_APPLE_API_URL", "https://asapi.example.test")); err != nil || st.stores.AppleAPI == nil {
		t.Fatalf("a real environment with another host (warned): %v", err)
	}
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"the fake store without a URL is refused", base("COINOP_APPLE_API_URL", ""), "fake"},
		{"the fake store with an outside URL is refused", base("COINOP_APPLE_API_URL", "https://api.storekit.itunes.apple.com"), "loopback"},
		{"a URL with a path is refused", base("COINOP_APPLE_API_URL", fake.URL+"/inApps"), "COINOP_APPLE_API_URL"},
		{"a URL without a scheme is refused", base("COINOP_APPLE_API_URL", "127.0.0.1:9"), "COINOP_APPLE_API_URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storesFrom(t, tc.settings)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
}
