package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/receipts"
	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

// storesFrom builds the stores from settings, as serve does.
func storesFrom(t *testing.T, settings map[string]string) (storeSetup, error) {
	t.Helper()
	cfg := bindSettings(newFlagSetForTest(), env(settings))
	logger, err := newLogger(cfg, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return buildStores(cfg, logger)
}

func TestReceiptsMintPrintsATransactionTheFakeStoreVerifies(t *testing.T) {
	dir := t.TempDir()
	settings := map[string]string{"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": dir,
		"COINOP_APPLE_BUNDLE_ID": "com.example.coinop", "COINOP_APPLE_ENVIRONMENT": "sandbox"}
	stdout, stderr, code := runCmd(t, settings, "receipts", "mint", "--product", "com.example.coinop.gems100", "--player", "p1", "--transaction-id", "777")
	if code != 0 {
		t.Fatalf("mint: code %d: %s", code, stderr)
	}
	st, err := storesFrom(t, settings)
	if err != nil {
		t.Fatal(err)
	}
	if st.stores.AppleLegacy != nil || st.stores.Google != nil {
		t.Fatalf("fake enabled more than Apple's signed data: %+v", st.stores)
	}
	p, err := st.stores.Apple.VerifyTransaction(strings.TrimSpace(stdout), receipts.VerifyOptions{})
	if err != nil {
		t.Fatalf("the fake store's own transaction does not verify: %v", err)
	}
	if p.TransactionID != "777" || p.ProductID != "com.example.coinop.gems100" || p.Environment != receipts.EnvSandbox ||
		p.AppAccountToken != server.AppAccountToken("p1") || p.Quantity != 1 {
		t.Fatalf("purchase = %+v", p)
	}

	// A server with another fake CA (another directory) refuses it.
	other := map[string]string{"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": t.TempDir(),
		"COINOP_APPLE_BUNDLE_ID": "com.example.coinop", "COINOP_APPLE_ENVIRONMENT": "sandbox"}
	st2, err := storesFrom(t, other)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st2.stores.Apple.VerifyTransaction(strings.TrimSpace(stdout), receipts.VerifyOptions{}); receipts.ReasonOf(err) != receipts.ReasonChain {
		t.Fatalf("another CA's transaction: %v, want a chain error", err)
	}
}

func TestReceiptsNotificationPrintsABodyTheFakeStoreVerifies(t *testing.T) {
	settings := map[string]string{"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": t.TempDir(),
		"COINOP_APPLE_BUNDLE_ID": "com.example.coinop", "COINOP_APPLE_ENVIRONMENT": "sandbox"}
	stdout, stderr, code := runCmd(t, settings, "receipts", "notification", "--type", "refund", "--transaction-id", "777", "--id", "n-1")
	if code != 0 {
		t.Fatalf("notification: code %d: %s", code, stderr)
	}
	st, err := storesFrom(t, settings)
	if err != nil {
		t.Fatal(err)
	}
	n, err := st.stores.Apple.VerifyNotification([]byte(strings.TrimSpace(stdout)), receipts.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n.Type != "REFUND" || n.NotificationUUID != "n-1" || n.Purchase == nil || n.Purchase.TransactionID != "777" || n.Purchase.RevokedAt == nil {
		t.Fatalf("notification = %+v, purchase %+v", n, n.Purchase)
	}
}

func TestReceiptsCommandErrors(t *testing.T) {
	dir := t.TempDir()
	base := map[string]string{"COINOP_FAKE_STORE_DIR": dir, "COINOP_APPLE_BUNDLE_ID": "b"}
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"mint needs a product", []string{"mint"}, base, "--product"},
		{"mint needs a bundle id", []string{"mint", "--product", "p"}, map[string]string{"COINOP_FAKE_STORE_DIR": dir}, "--bundle-id"},
		{"mint refuses an unknown environment", []string{"mint", "--product", "p", "--environment", "prod"}, base, "--environment"},
		{"mint refuses an unknown type", []string{"mint", "--product", "p", "--type", "gift"}, base, "--type"},
		{"mint refuses quantity 0", []string{"mint", "--product", "p", "--quantity", "0"}, base, "--quantity"},
		{"notification needs a type", []string{"notification", "--transaction-id", "1"}, base, "--type"},
		{"notification needs a transaction", []string{"notification", "--type", "REFUND"}, base, "--transaction-id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runCmd(t, tc.env, append([]string{"receipts"}, tc.args...)...)
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Fatalf("code %d, stderr %q; want 1 and a mention of %s", code, stderr, tc.want)
			}
		})
	}
	if _, stderr, code := runCmd(t, nil, "receipts", "print"); code != 2 || !strings.Contains(stderr, "Usage:") {
		t.Fatalf("unknown subcommand: code %d, %s", code, stderr)
	}
}

func TestStoreSettings(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "sa.json")
	key, _, err := fakestore.PlayClient("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := fakestore.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	pemFile, derFile := filepath.Join(dir, "root.pem"), filepath.Join(dir, "root.der")
	if err := os.WriteFile(pemFile, ca.RootPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(derFile, ca.Root.Raw, 0o600); err != nil {
		t.Fatal(err)
	}
	apple := map[string]string{"COINOP_STORES": "apple", "COINOP_APPLE_BUNDLE_ID": "com.example.game", "COINOP_APPLE_APP_APPLE_ID": "123"}
	google := map[string]string{"COINOP_STORES": "google", "COINOP_GOOGLE_PACKAGE_NAME": "com.example.game", "COINOP_GOOGLE_SERVICE_ACCOUNT": keyFile}
	with := func(base map[string]string, kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	t.Run("no stores by default: receipts are disabled", func(t *testing.T) {
		st, err := storesFrom(t, nil)
		if err != nil || st.stores.Enabled() || st.policy != "clamp" || len(st.testers) != 0 {
			t.Fatalf("default: %+v, %v", st, err)
		}
	})
	t.Run("apple enables signed transactions, app receipts and notifications", func(t *testing.T) {
		st, err := storesFrom(t, with(apple, "COINOP_STORE_TESTERS", " qa-1, qa-2 ", "COINOP_CLAWBACK_POLICY", "negative"))
		if err != nil || st.stores.Apple == nil || st.stores.AppleLegacy == nil || st.stores.Google != nil {
			t.Fatalf("apple: %+v, %v", st, err)
		}
		if strings.Join(st.testers, ",") != "qa-1,qa-2" || st.policy != "negative" {
			t.Fatalf("testers %q, policy %q", st.testers, st.policy)
		}
	})
	t.Run("root certificates are read from PEM and DER files", func(t *testing.T) {
		st, err := storesFrom(t, with(apple, "COINOP_APPLE_ROOT_CERTS", pemFile+","+derFile, "COINOP_APPLE_ENVIRONMENT", "sandbox"))
		if err != nil {
			t.Fatal(err)
		}
		jws, err := ca.MintTransaction(fakestore.TransactionClaims{BundleID: "com.example.game", ProductID: "p"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.stores.Apple.VerifyTransaction(jws, receipts.VerifyOptions{}); err != nil {
			t.Fatalf("a transaction from the configured root: %v", err)
		}
	})
	t.Run("google enables purchases, and notifications once both push settings are set", func(t *testing.T) {
		st, err := storesFrom(t, google)
		if err != nil || st.stores.Google == nil || st.stores.GooglePush != nil || st.stores.Apple != nil {
			t.Fatalf("google: %+v, %v", st.stores, err)
		}
		st, err = storesFrom(t, with(google, "COINOP_GOOGLE_PUSH_AUDIENCE", "https://x/v1/stores/google/notifications", "COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT", "push@x.iam.gserviceaccount.com"))
		if err != nil || st.stores.GooglePush == nil {
			t.Fatalf("google with push: %+v, %v", st.stores, err)
		}
	})
	for _, tc := range []struct {
		name     string
		settings map[string]string
		want     string
	}{
		{"an unknown store is refused", map[string]string{"COINOP_STORES": "apple,amazon"}, `"amazon"`},
		{"apple and fake together are refused", with(apple, "COINOP_STORES", "apple,fake"), "not both"},
		{"the fake store is refused in production", map[string]string{"COINOP_STORES": "fake", "COINOP_APPLE_BUNDLE_ID": "b", "COINOP_APPLE_APP_APPLE_ID": "1", "COINOP_FAKE_STORE_DIR": dir}, "refused in production"},
		{"the fake store and root certificates together are refused", map[string]string{"COINOP_STORES": "fake", "COINOP_APPLE_BUNDLE_ID": "b", "COINOP_APPLE_ENVIRONMENT": "sandbox", "COINOP_APPLE_ROOT_CERTS": pemFile, "COINOP_FAKE_STORE_DIR": dir}, "COINOP_APPLE_ROOT_CERTS"},
		{"apple needs a bundle id", with(apple, "COINOP_APPLE_BUNDLE_ID", ""), "COINOP_APPLE_BUNDLE_ID"},
		{"apple in production needs the app's Apple id", with(apple, "COINOP_APPLE_APP_APPLE_ID", ""), "COINOP_APPLE_APP_APPLE_ID"},
		{"a non-numeric Apple id is refused", with(apple, "COINOP_APPLE_APP_APPLE_ID", "abc"), "COINOP_APPLE_APP_APPLE_ID"},
		{"an unknown Apple environment is refused", with(apple, "COINOP_APPLE_ENVIRONMENT", "staging"), "COINOP_APPLE_ENVIRONMENT"},
		{"a missing root certificate file is refused", with(apple, "COINOP_APPLE_ROOT_CERTS", filepath.Join(dir, "nope.pem")), "COINOP_APPLE_ROOT_CERTS"},
		{"a root certificate file that is no certificate is refused", with(apple, "COINOP_APPLE_ROOT_CERTS", keyFile), "COINOP_APPLE_ROOT_CERTS"},
		{"google needs a package name", with(google, "COINOP_GOOGLE_PACKAGE_NAME", ""), "COINOP_GOOGLE_PACKAGE_NAME"},
		{"google needs a service account", with(google, "COINOP_GOOGLE_SERVICE_ACCOUNT", ""), "COINOP_GOOGLE_SERVICE_ACCOUNT"},
		{"a missing service account file is refused", with(google, "COINOP_GOOGLE_SERVICE_ACCOUNT", filepath.Join(dir, "nope.json")), "COINOP_GOOGLE_SERVICE_ACCOUNT"},
		{"an unknown Google environment is refused", with(google, "COINOP_GOOGLE_ENVIRONMENT", "xcode"), "COINOP_GOOGLE_ENVIRONMENT"},
		{"half the push settings are refused", with(google, "COINOP_GOOGLE_PUSH_AUDIENCE", "https://x"), "COINOP_GOOGLE_PUSH_SERVICE_ACCOUNT"},
		{"an unknown clawback policy is refused", map[string]string{"COINOP_CLAWBACK_POLICY": "forgive"}, "COINOP_CLAWBACK_POLICY"},
		{"a tester id with a space is refused", map[string]string{"COINOP_STORE_TESTERS": "qa 1"}, "COINOP_STORE_TESTERS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := storesFrom(t, tc.settings)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %s", err, tc.want)
			}
		})
	}
}

// TestServeRedeemsAMintedFakeStorePurchase runs serve's wiring with
// COINOP_STORES=fake and redeems what `coinop receipts mint` prints.
func TestServeRedeemsAMintedFakeStorePurchase(t *testing.T) {
	secret := strings.Repeat("k", 32)
	settings := map[string]string{
		"COINOP_JWT_SECRET": secret, "COINOP_ADMIN_TOKEN": adminSecret, "COINOP_LOG_LEVEL": "error",
		"COINOP_STORES": "fake", "COINOP_FAKE_STORE_DIR": t.TempDir(), "COINOP_APPLE_BUNDLE_ID": devBundleID, "COINOP_APPLE_ENVIRONMENT": "sandbox",
	}
	_, base, cancel, served := startServe(t, settings)
	do := func(path, token, body string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if strings.HasPrefix(path, "/admin/") && strings.HasSuffix(path, "/catalog") {
			req.Method = http.MethodPut
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	doc := `{"currencies":[{"id":"gems","name":"Gems"}],"items":[],"store_products":[{"store":"apple","product_id":"com.example.coinop.gems100","grants":{"currencies":{"gems":100}}}]}`
	if code, body := do("/admin/v1/catalog", adminSecret, doc); code != http.StatusCreated {
		t.Fatalf("publish: %d %s", code, body)
	}
	jws, stderr, code := runCmd(t, settings, "receipts", "mint", "--product", "com.example.coinop.gems100", "--player", "p1")
	if code != 0 {
		t.Fatalf("mint: %s", stderr)
	}
	token, err := playerToken(secret, "p1", "", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	body := `{"store":"apple","signed_transaction":"` + strings.TrimSpace(jws) + `"}`
	if code, resp := do("/v1/receipts", token, body); code != http.StatusCreated || !strings.Contains(resp, `"gems":100`) {
		t.Fatalf("redeem: %d %s", code, resp)
	}
	if code, resp := do("/v1/receipts", token, body); code != http.StatusOK || !strings.Contains(resp, `"receipt_already_redeemed"`) {
		t.Fatalf("redeem again: %d %s", code, resp)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}
}

func TestDevBannerShowsHowToRedeemAFakeStorePurchase(t *testing.T) {
	data, err := os.ReadFile("../../examples/catalog.yaml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := catalog.Parse(data, catalog.FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := catalog.NewSnapshot(1, time.Now(), doc)
	if err != nil {
		t.Fatal(err)
	}
	devEnv := map[string]string{"COINOP_STORES": devStores, "COINOP_APPLE_BUNDLE_ID": devBundleID, "COINOP_APPLE_ENVIRONMENT": devAppleEnvironment}
	var out strings.Builder
	printStoreBanner(&out, "[::]:8080", "TOKEN", bindSettings(newFlagSetForTest(), env(devEnv)), snap)
	want := []string{
		"receipts mint --product com.example.coinop.gems100 --player demo-player --bundle-id com.example.coinop --environment sandbox --dir .dev/fakestore",
		"curl -s -X POST http://127.0.0.1:8080/v1/receipts",
		"Authorization: Bearer TOKEN",
	}
	for _, w := range want {
		if !strings.Contains(out.String(), w) {
			t.Errorf("banner lacks %q:\n%s", w, out.String())
		}
	}
	out.Reset()
	printStoreBanner(&out, "[::]:8080", "TOKEN", bindSettings(newFlagSetForTest(), env(nil)), snap)
	if out.Len() != 0 {
		t.Errorf("a banner without the fake store: %s", out.String())
	}
}
