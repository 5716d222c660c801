package receipts

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/awa/go-iap/appstore/api"
)

func TestEmbeddedAppleRootIsAppleRootCAG3(t *testing.T) {
	blk, _ := pem.Decode(appleRootCAG3)
	if blk == nil {
		t.Fatal("embedded root is not PEM")
	}
	sum := sha256.Sum256(blk.Bytes)
	const want = "63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"
	if got := hex.EncodeToString(sum[:]); got != want {
		t.Fatalf("embedded root fingerprint %s, want Apple Root CA - G3 %s", got, want)
	}
	if AppleRoots() == nil {
		t.Fatal("no pool")
	}
}

func notificationBody(t testing.TB, jws string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]string{"signedPayload": strings.TrimSpace(jws)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPublishedVectors(t *testing.T) {
	roots := vectorRoots(t)
	sandbox := newVerifier(t, roots, EnvSandbox, "com.example")
	production := newVerifier(t, roots, EnvProduction, "com.example")
	production.cfg.AppAppleID = 1234

	t.Run("transactionInfo.jws verifies against testCA with ES256", func(t *testing.T) {
		jws := strings.TrimSpace(string(vector(t, "transactionInfo.jws")))
		payload, err := verifyJWS(jws, roots, time.Now())
		if err != nil {
			t.Fatalf("verifyJWS: %v", err)
		}
		var c api.JWSTransaction
		if err := json.Unmarshal(payload, &c); err != nil {
			t.Fatal(err)
		}
		if c.BundleID != "com.example" || c.Environment != "Sandbox" || c.SignedDate != 1672956154000 {
			t.Fatalf("claims %+v", c)
		}
		// The vector carries only environment, bundleId and signedDate: it
		// passes signature, chain, bundle and environment, and is then refused
		// as a purchase for having no transactionId.
		_, err = sandbox.VerifyTransaction(jws, VerifyOptions{})
		wantReason(t, err, ReasonFormat)
		if !strings.Contains(err.Error(), "transactionId") {
			t.Fatalf("refused for %v, want the missing transactionId", err)
		}
	})
	t.Run("transactionInfo.jws is not trusted under Apple's real root", func(t *testing.T) {
		v := newVerifier(t, nil, EnvSandbox, "com.example")
		_, err := v.VerifyTransaction(strings.TrimSpace(string(vector(t, "transactionInfo.jws"))), VerifyOptions{})
		wantReason(t, err, ReasonChain)
	})
	t.Run("transactionInfo.jws is a Sandbox transaction refused in production unless sandbox is allowed", func(t *testing.T) {
		jws := strings.TrimSpace(string(vector(t, "transactionInfo.jws")))
		_, err := production.VerifyTransaction(jws, VerifyOptions{})
		wantReason(t, err, ReasonEnvironment)
		_, err = production.VerifyTransaction(jws, VerifyOptions{AllowSandbox: true})
		wantReason(t, err, ReasonFormat) // past the environment check
	})
	t.Run("renewalInfo.jws verifies", func(t *testing.T) {
		r, err := sandbox.VerifyRenewalInfo(string(vector(t, "renewalInfo.jws")), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Environment != EnvSandbox || !r.SignedAt.Equal(time.UnixMilli(1672956154000)) {
			t.Fatalf("renewal %+v", r)
		}
	})
	t.Run("testNotification.jws verifies in sandbox", func(t *testing.T) {
		n, err := sandbox.VerifyNotification(notificationBody(t, string(vector(t, "testNotification.jws"))), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Type != "TEST" || n.BundleID != "com.example" || n.AppAppleID != 1234 || n.Environment != EnvSandbox ||
			n.NotificationUUID != "9ad56bd2-0bc6-42e0-af24-fd996d87a1e6" || n.Purchase != nil || n.Renewal != nil ||
			!n.SignedAt.Equal(time.UnixMilli(1681314324000)) {
			t.Fatalf("notification %+v", n)
		}
	})
	t.Run("testNotification.jws is refused when Production is expected", func(t *testing.T) {
		_, err := production.VerifyNotification(notificationBody(t, string(vector(t, "testNotification.jws"))), VerifyOptions{})
		wantReason(t, err, ReasonEnvironment)
	})
	t.Run("wrongBundleId.jws is refused for bundle com.example", func(t *testing.T) {
		_, err := sandbox.VerifyNotification(notificationBody(t, string(vector(t, "wrongBundleId.jws"))), VerifyOptions{})
		wantReason(t, err, ReasonBundle)
	})
	t.Run("missingX5CHeaderClaim.jws is refused", func(t *testing.T) {
		_, err := sandbox.VerifyNotification(notificationBody(t, string(vector(t, "missingX5CHeaderClaim.jws"))), VerifyOptions{})
		wantReason(t, err, ReasonChain)
	})
	t.Run("legacyTransactionReceipt.b64 is not a JWS", func(t *testing.T) {
		_, err := sandbox.VerifyTransaction(string(vector(t, "legacyTransactionReceipt.b64")), VerifyOptions{})
		wantReason(t, err, ReasonFormat)
	})
	for _, name := range []string{"xcode-app-receipt-with-transaction.b64", "xcode-app-receipt-empty.b64"} {
		t.Run(name+" is not a JWS", func(t *testing.T) {
			_, err := sandbox.VerifyTransaction(string(vector(t, name)), VerifyOptions{})
			wantReason(t, err, ReasonFormat)
		})
	}

	const xcodeBundle = "com.example.naturelab.backyardbirds.example"
	for _, name := range []string{"xcode-signed-transaction.jws", "xcode-signed-app-transaction.jws"} {
		t.Run(name+" is never trusted in sandbox or production", func(t *testing.T) {
			jws := string(vector(t, name))
			for _, env := range []Environment{EnvSandbox, EnvProduction} {
				v := newVerifier(t, roots, env, xcodeBundle)
				_, err := v.VerifyTransaction(jws, VerifyOptions{AllowSandbox: true})
				wantReason(t, err, ReasonChain)
				v = newVerifier(t, nil, env, xcodeBundle)
				_, err = v.VerifyTransaction(jws, VerifyOptions{AllowSandbox: true})
				wantReason(t, err, ReasonChain)
			}
		})
	}
	t.Run("xcode-signed-transaction.jws decodes when Xcode is configured", func(t *testing.T) {
		v := newVerifier(t, nil, EnvXcode, xcodeBundle)
		v.cfg.Now = func() time.Time { return time.UnixMilli(1700000000000) }
		p, err := v.VerifyTransaction(string(vector(t, "xcode-signed-transaction.jws")), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Environment != EnvXcode || p.ProductID != "pass.premium" || p.TransactionID != "0" ||
			p.Type != ProductAutoRenewable || p.ExpiresAt == nil || p.ExpiresAt.UnixMilli() != 1700358336049 ||
			p.Quantity != 1 || p.OwnershipType != "PURCHASED" || p.SubscriptionState != SubActive {
			t.Fatalf("purchase %+v", p)
		}
		other := newVerifier(t, nil, EnvXcode, "com.example")
		_, err = other.VerifyTransaction(string(vector(t, "xcode-signed-transaction.jws")), VerifyOptions{})
		wantReason(t, err, ReasonBundle)
	})
	t.Run("xcode-signed-app-transaction.jws decodes when Xcode is configured but is no transaction", func(t *testing.T) {
		v := newVerifier(t, nil, EnvXcode, xcodeBundle)
		_, err := v.VerifyTransaction(string(vector(t, "xcode-signed-app-transaction.jws")), VerifyOptions{})
		// An app transaction has bundleId but no environment field (it says
		// receiptType), so it cannot pass as an Xcode purchase.
		if ReasonOf(err) != ReasonEnvironment && ReasonOf(err) != ReasonFormat {
			t.Fatalf("got %v, want an environment or format refusal", err)
		}
	})
}

func TestPublishedReceiptVectors(t *testing.T) {
	t.Run("legacyTransactionReceipt.b64 holds transaction 33993399", func(t *testing.T) {
		id, err := TransactionIDFromLegacyTransactionReceipt(strings.TrimSpace(string(vector(t, "legacyTransactionReceipt.b64"))))
		if err != nil || id != "33993399" {
			t.Fatalf("got %q %v", id, err)
		}
	})
	t.Run("xcode-app-receipt-with-transaction.b64 holds transaction 0", func(t *testing.T) {
		id, err := TransactionIDFromAppReceipt(strings.TrimSpace(string(vector(t, "xcode-app-receipt-with-transaction.b64"))))
		if err != nil || id != "0" {
			t.Fatalf("got %q %v", id, err)
		}
	})
	t.Run("xcode-app-receipt-empty.b64 holds no transaction", func(t *testing.T) {
		id, err := TransactionIDFromAppReceipt(strings.TrimSpace(string(vector(t, "xcode-app-receipt-empty.b64"))))
		if err != nil || id != "" {
			t.Fatalf("got %q %v", id, err)
		}
	})
	t.Run("the two receipt kinds are not confused", func(t *testing.T) {
		_, err := TransactionIDFromAppReceipt(strings.TrimSpace(string(vector(t, "legacyTransactionReceipt.b64"))))
		wantReason(t, err, ReasonFormat)
		_, err = TransactionIDFromLegacyTransactionReceipt(strings.TrimSpace(string(vector(t, "xcode-app-receipt-empty.b64"))))
		wantReason(t, err, ReasonFormat)
	})
}
