package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// TestStoreAPIFaultsAgainstTheRealServer runs the store chaos with the
// server confirming every redemption with the tool's fake App Store Server
// API (COINOP_APPLE_API_URL on loopback), which answers 20% of requests
// 5xx, holds 5% until the server's store timeout gives up, and adds 50 ms
// to the rest. Redemptions answered 503 store_unavailable are retried with
// the same transaction; verification must find every redemption granted
// exactly once, every refund applied once and the ledger balanced.
func TestStoreAPIFaultsAgainstTheRealServer(t *testing.T) {
	if testing.Short() {
		t.Skip("holds requests for the server's store timeout")
	}
	secret := strings.Repeat("k", 32)
	dir := t.TempDir()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	p8 := filepath.Join(t.TempDir(), "AuthKey.p8")
	if err := os.WriteFile(p8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	// A free loopback port for the tool's fake, known before the server starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	apiAddr := ln.Addr().String()
	ln.Close()
	settings := map[string]string{
		"COINOP_JWT_SECRET": secret, "COINOP_ADMIN_TOKEN": adminSecret, "COINOP_LOG_LEVEL": "error", "COINOP_RATE_LIMIT": "off",
		"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": dir, "COINOP_APPLE_BUNDLE_ID": devBundleID, "COINOP_APPLE_ENVIRONMENT": "sandbox",
		"COINOP_APPLE_API_URL": "http://" + apiAddr, "COINOP_APPLE_API_KEY_ID": "2X9R4HXF34",
		"COINOP_APPLE_API_ISSUER_ID": "57246542-96fe-1a63-e053-0824d011072a", "COINOP_APPLE_API_PRIVATE_KEY": p8,
	}
	_, base, _, _ := startServe(t, settings)
	doc := `{"currencies":[{"id":"gems","name":"Gems"}],"items":[{"id":"potion","name":"Potion","kind":"consumable","prices":[{"currency":"gems","amount":5}]}],` +
		`"store_products":[{"store":"apple","product_id":"com.example.coinop.gems100","grants":{"currencies":{"gems":100}}},` +
		`{"store":"apple","product_id":"com.example.coinop.potions","grants":{"items":{"potion":3}}}]}`
	req, _ := http.NewRequest(http.MethodPut, base+"/admin/v1/catalog", strings.NewReader(doc))
	req.Header.Set("Authorization", "Bearer "+adminSecret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("publish: %d %s", resp.StatusCode, b)
	}

	var out, errb bytes.Buffer
	jsonOut := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// Seed 1 puts two timeouts among the fake's first 40 requests (the
	// schedule depends only on the seed and the request's position).
	// --timeout above the server's 10 s store timeout: the server, not the
	// tool, gives up on a held confirmation and answers 503.
	code := loadtest.Command(ctx, []string{"--url", base, "--jwt-secret", secret, "--admin-token", adminSecret,
		"--rate", "40", "--duration", "2s", "--players", "6", "--seed", "1", "--fund", "gems=1000", "--timeout", "20s",
		"--mix", "receipt=4,purchase=1,wallet=1", "--fake-store-dir", dir, "--apple-bundle-id", devBundleID,
		"--refund-share", "0.5", "--refund-waves", "2", "--duplicate-share", "0.5", "--refund-wait", "30s",
		"--store-api-addr", apiAddr, "--store-errors", "20", "--store-timeouts", "5", "--store-latency", "50ms",
		"--out", jsonOut},
		&out, &errb)
	if code != loadtest.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	o := out.String()
	for _, want := range []string{"store chaos:", "store API faults:", "ledger transactions: OK", "result: ok"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	raw, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Chaos *loadtest.ChaosSummary `json:"store_chaos"`
	}
	if err := json.Unmarshal(raw, &rep); err != nil || rep.Chaos == nil || rep.Chaos.StoreAPI == nil {
		t.Fatalf("report: %v\n%s", err, raw)
	}
	c, f := rep.Chaos, rep.Chaos.StoreAPI
	if f.Errors == 0 || f.Timeouts == 0 || f.Delayed == 0 || f.Calls < c.Minted {
		t.Fatalf("too few faults to prove anything: %+v\n%s", f, o)
	}
	if c.Retried == 0 {
		t.Fatalf("no redemption was retried despite %d faults:\n%s", f.Injected(), o)
	}
	// Every redemption ended answered, with its one grant (verification
	// found each granted exactly once).
	if c.Redeemed == 0 || c.Unanswered != 0 || c.Redeemed != c.Minted {
		t.Fatalf("redemptions did not all end in a grant: %+v\n%s", c, o)
	}
}
