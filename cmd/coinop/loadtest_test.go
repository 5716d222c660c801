package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/loadtest"
)

// TestStoreChaosAgainstTheRealServer runs `coinop loadtest` with the store
// chaos against serve's own wiring with the fake stores: players redeem
// App Store transactions the tool mints from the server's fake CA, half of
// them are refunded in two waves whose notifications arrive duplicated,
// shuffled and partly abandoned, some refunds overtake their redemption,
// and verification must find every
// redemption and refund applied exactly once and the ledger balanced. (The
// loadtest package's own tests prove, against a deliberately broken fake,
// that the same check fails when one refund is applied twice.)
func TestStoreChaosAgainstTheRealServer(t *testing.T) {
	secret := strings.Repeat("k", 32)
	dir := t.TempDir()
	settings := map[string]string{
		"COINOP_JWT_SECRET": secret, "COINOP_ADMIN_TOKEN": adminSecret, "COINOP_LOG_LEVEL": "error", "COINOP_RATE_LIMIT": "off",
		"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": dir, "COINOP_APPLE_BUNDLE_ID": devBundleID, "COINOP_APPLE_ENVIRONMENT": "sandbox",
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
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := loadtest.Command(ctx, []string{"--url", base, "--jwt-secret", secret, "--admin-token", adminSecret,
		"--rate", "60", "--duration", "2s", "--players", "6", "--seed", "5", "--fund", "gems=1000",
		"--mix", "receipt=4,purchase=1,wallet=1", "--fake-store-dir", dir, "--apple-bundle-id", devBundleID,
		"--refund-share", "0.5", "--refund-waves", "2", "--duplicate-share", "0.7", "--abandon-share", "0.3", "--early-refund-share", "0.15", "--refund-wait", "30s"},
		&out, &errb)
	if code != loadtest.ExitOK {
		t.Fatalf("exit %d\n%s\n%s", code, out.String(), errb.String())
	}
	o := out.String()
	for _, want := range []string{"store chaos:", "ledger transactions: OK", "result: ok"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q:\n%s", want, o)
		}
	}
	if strings.Contains(o, " 0 redeemed") || strings.Contains(o, " 0 refunded") || !strings.Contains(o, "refunds before redemption:") {
		t.Fatalf("the chaos did too little to prove anything:\n%s", o)
	}
}
