package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coinop/coinop/receipts"
)

func TestAppleAPISettings(t *testing.T) {
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p8, junk := filepath.Join(dir, "AuthKey.p8"), filepath.Join(dir, "junk.p8")
	if err := os.WriteFile(p8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := func(kv ...string) map[string]string {
		m := map[string]string{"COINOP_STORES": "apple", "COINOP_APPLE_BUNDLE_ID": "com.example.game", "COINOP_APPLE_APP_APPLE_ID": "123",
			"COINOP_APPLE_API_KEY_ID": "2X9R4HXF34", "COINOP_APPLE_API_ISSUER_ID": "57246542-96fe-1a63-e053-0824d011072a", "COINOP_APPLE_API_PRIVATE_KEY": p8}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	st, err := storesFrom(t, base("COINOP_APPLE_API_KEY_ID", "", "COINOP_APPLE_API_ISSUER_ID", "", "COINOP_APPLE_API_PRIVATE_KEY", ""))
	if err != nil || st.stores.Apple == nil || st.stores.AppleAPI != nil {
		t.Fatalf("confirmation must be off by default: %+v, %v", st.stores, err)
	}
	st, err = storesFrom(t, base())
	if err != nil || st.stores.AppleAPI == nil || st.stores.AppleAPI.Environment() != receipts.EnvProduction {
		t.Fatalf("production: %+v, %v", st.stores, err)
	}
	if st.consumption {
		t.Fatal("consumption information must be off by default")
	}
	if st, err = storesFrom(t, base("COINOP_APPLE_CONSUMPTION_INFO", "true")); err != nil || !st.consumption {
		t.Fatalf("consumption information on: %+v, %v", st, err)
	}
	if _, err = storesFrom(t, base("COINOP_APPLE_CONSUMPTION_INFO", "yes please")); err == nil || !strings.Contains(err.Error(), "COINOP_APPLE_CONSUMPTION_INFO") {
		t.Fatalf("a bad consumption setting: %v", err)
	}
	if _, err = storesFrom(t, base("COINOP_APPLE_CONSUMPTION_INFO", "true", "COINOP_APPLE_API_KEY_ID", "", "COINOP_APPLE_API_ISSUER_ID", "",
		"COINOP_APPLE_API_PRIVATE_KEY", "")); err == nil || !strings.Contains(err.Error(), "App Store Server API") {
		t.Fatalf("consumption information without the API key: %v", err)
	}
	st, err = storesFrom(t, base("COINOP_APPLE_ENVIRONMENT", "sandbox"))
	if err != nil || st.stores.AppleAPI == nil || st.stores.AppleAPI.Environment() != receipts.EnvSandbox {
		t.Fatalf("sandbox: %+v, %v", st.stores, err)
	}
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"half the settings are refused", base("COINOP_APPLE_API_ISSUER_ID", ""), "COINOP_APPLE_API_ISSUER_ID"},
		{"a missing key file is refused", base("COINOP_APPLE_API_PRIVATE_KEY", filepath.Join(dir, "nope.p8")), "COINOP_APPLE_API_PRIVATE_KEY"},
		{"a key file that is no key is refused", base("COINOP_APPLE_API_PRIVATE_KEY", junk), "COINOP_APPLE_API_PRIVATE_KEY"},
		{"xcode is refused", base("COINOP_APPLE_ENVIRONMENT", "xcode"), "Xcode"},
		{"the fake store is refused", base("COINOP_STORES", "fake", "COINOP_APPLE_ENVIRONMENT", "sandbox", "COINOP_FAKE_STORE_DIR", dir), "fake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storesFrom(t, tc.settings)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
}
