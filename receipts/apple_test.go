package receipts

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/receipts/fakestore"
)

func mint(t testing.TB, ca *fakestore.CA, c fakestore.TransactionClaims) string {
	t.Helper()
	s, err := ca.MintTransaction(c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func goodClaims() fakestore.TransactionClaims {
	return fakestore.TransactionClaims{
		BundleID:        testBundle,
		ProductID:       "gems.100",
		Environment:     "Sandbox",
		AppAccountToken: "7e3fb20b-4cdb-47cc-936d-99d65f608138",
		SignedDate:      testNow.Add(-time.Minute),
		PurchaseDate:    testNow.Add(-time.Minute),
	}
}

// signRaw builds a compact JWS from a raw header and payload with an
// arbitrary signature.
func signRaw(header, payload string, sig []byte) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(header)) + "." + e([]byte(payload)) + "." + e(sig)
}

func TestVerifyTransactionAcceptsMintedTransaction(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	v := newVerifier(t, ca.Roots(), EnvSandbox, testBundle)
	c := goodClaims()
	c.TransactionID = "2000000123456789"
	c.Quantity = 3
	c.SignedDate = time.UnixMilli(c.PurchaseDate.UnixMilli() + 1500).UTC()
	p, err := v.VerifyTransaction(mint(t, ca, c), VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := Purchase{
		Store: StoreApple, Environment: EnvSandbox, TransactionID: "2000000123456789",
		OriginalTransactionID: "2000000123456789", ProductID: "gems.100", Quantity: 3,
		PurchasedAt: c.PurchaseDate, OwnershipType: "PURCHASED", AppAccountToken: c.AppAccountToken,
		Type: ProductConsumable, SignedAt: c.SignedDate,
	}
	if p.ExpiresAt != nil || p.RevokedAt != nil || !p.PurchasedAt.Equal(want.PurchasedAt) {
		t.Fatalf("purchase %+v", p)
	}
	p.PurchasedAt = want.PurchasedAt
	if *p != want {
		t.Fatalf("got %+v\nwant %+v", *p, want)
	}
}

func TestVerifyTransactionMapsSubscriptionsAndRevocations(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	v := newVerifier(t, ca.Roots(), EnvSandbox, testBundle)
	now := v.cfg.Now()
	reason := int32(1)
	tests := []struct {
		name      string
		edit      func(*fakestore.TransactionClaims)
		wantState string
		wantType  ProductType
	}{
		{"a live subscription is active", func(c *fakestore.TransactionClaims) {
			c.Type, c.ExpiresDate = "Auto-Renewable Subscription", now.Add(time.Hour)
		}, SubActive, ProductAutoRenewable},
		{"a lapsed subscription is expired", func(c *fakestore.TransactionClaims) {
			c.Type, c.ExpiresDate = "Auto-Renewable Subscription", now.Add(-time.Hour)
		}, SubExpired, ProductAutoRenewable},
		{"a refunded subscription is revoked", func(c *fakestore.TransactionClaims) {
			c.Type, c.ExpiresDate, c.RevocationDate, c.RevocationReason = "Auto-Renewable Subscription", now.Add(time.Hour), now, &reason
		}, SubRevoked, ProductAutoRenewable},
		{"a non-consumable has no subscription state", func(c *fakestore.TransactionClaims) {
			c.Type = "Non-Consumable"
		}, "", ProductNonConsumable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := goodClaims()
			tt.edit(&c)
			p, err := v.VerifyTransaction(mint(t, ca, c), VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.SubscriptionState != tt.wantState || p.Type != tt.wantType {
				t.Fatalf("state %q type %q, want %q %q", p.SubscriptionState, p.Type, tt.wantState, tt.wantType)
			}
			if !c.RevocationDate.IsZero() && (p.RevokedAt == nil || p.RevocationReason != "app_issue") {
				t.Fatalf("revocation not mapped: %+v", p)
			}
		})
	}
}

func TestVerifyTransactionRejects(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	other := newCA(t, fakestore.CAOptions{})
	noOIDs := newCA(t, fakestore.CAOptions{OmitMarkerOIDs: true})
	expired := newCA(t, fakestore.CAOptions{
		LeafNotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC),
		LeafNotAfter:  time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC),
	})
	good := mint(t, ca, goodClaims())
	payload := func(edit func(*fakestore.TransactionClaims)) []byte {
		c := goodClaims()
		if edit != nil {
			edit(&c)
		}
		parts := strings.Split(mint(t, ca, c), ".")
		b, _ := base64.RawURLEncoding.DecodeString(parts[1])
		return b
	}
	sign := func(ca *fakestore.CA, o fakestore.SignOptions) string {
		s, err := ca.Sign(payload(nil), o)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	parts := strings.Split(good, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]any
	json.Unmarshal(hdr, &h)
	withHeader := func(edit func(map[string]any)) string {
		m := map[string]any{}
		for k, v := range h {
			m[k] = v
		}
		edit(m)
		b, _ := json.Marshal(m)
		return base64.RawURLEncoding.EncodeToString(b) + "." + parts[1] + "." + parts[2]
	}
	otherPayload := base64.RawURLEncoding.EncodeToString(payload(func(c *fakestore.TransactionClaims) { c.Quantity = 1000 }))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	flipped := append([]byte(nil), sig...)
	flipped[10] ^= 1

	tests := []struct {
		name string
		jws  string
		v    *AppleVerifier
		opt  VerifyOptions
		want Reason
	}{
		{"a JWS without x5c", sign(ca, fakestore.SignOptions{OmitX5C: true}), nil, VerifyOptions{}, ReasonChain},
		{"a chain of two", sign(ca, fakestore.SignOptions{X5C: ca.Chain()[:2]}), nil, VerifyOptions{}, ReasonChain},
		{"a chain of one", sign(ca, fakestore.SignOptions{X5C: ca.Chain()[:1]}), nil, VerifyOptions{}, ReasonChain},
		{"a chain of four", sign(ca, fakestore.SignOptions{X5C: append(ca.Chain(), ca.Root.Raw)}), nil, VerifyOptions{}, ReasonChain},
		{"a chain to another root", mint(t, other, goodClaims()), nil, VerifyOptions{}, ReasonChain},
		{"a leaf from another chain", sign(ca, fakestore.SignOptions{X5C: [][]byte{other.Leaf.Raw, ca.Intermediate.Raw, ca.Root.Raw}}), nil, VerifyOptions{}, ReasonChain},
		{"our chain signed by another leaf key", sign(other, fakestore.SignOptions{X5C: ca.Chain()}), nil, VerifyOptions{}, ReasonSignature},
		{"a chain whose x5c root is ours but whose leaf is from another chain", sign(other, fakestore.SignOptions{X5C: [][]byte{other.Leaf.Raw, other.Intermediate.Raw, ca.Root.Raw}}), nil, VerifyOptions{}, ReasonChain},
		{"a chain without Apple's marker OIDs", mint(t, noOIDs, goodClaims()), newVerifier(t, noOIDs.Roots(), EnvSandbox, testBundle), VerifyOptions{}, ReasonChain},
		{"a chain whose leaf expired before signedDate", mint(t, expired, goodClaims()), newVerifier(t, expired.Roots(), EnvSandbox, testBundle), VerifyOptions{}, ReasonChain},
		{"a certificate that is not DER", withHeader(func(m map[string]any) { m["x5c"] = []string{"AAAA", "AAAA", "AAAA"} }), nil, VerifyOptions{}, ReasonChain},
		{"a certificate that is not base64", withHeader(func(m map[string]any) { m["x5c"] = []string{"!", "!", "!"} }), nil, VerifyOptions{}, ReasonChain},
		{"alg none", signRaw(`{"alg":"none"}`, string(payload(nil)), nil), nil, VerifyOptions{}, ReasonSignature},
		{"alg none with our chain", withHeader(func(m map[string]any) { m["alg"] = "none" }), nil, VerifyOptions{}, ReasonSignature},
		{"alg HS256", withHeader(func(m map[string]any) { m["alg"] = "HS256" }), nil, VerifyOptions{}, ReasonSignature},
		{"alg RS256", withHeader(func(m map[string]any) { m["alg"] = "RS256" }), nil, VerifyOptions{}, ReasonSignature},
		{"alg es256 in lower case", withHeader(func(m map[string]any) { m["alg"] = "es256" }), nil, VerifyOptions{}, ReasonSignature},
		{"a critical header", withHeader(func(m map[string]any) { m["crit"] = []string{"b64"} }), nil, VerifyOptions{}, ReasonSignature},
		{"a tampered payload", parts[0] + "." + otherPayload + "." + parts[2], nil, VerifyOptions{}, ReasonSignature},
		{"a tampered signature", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(flipped), nil, VerifyOptions{}, ReasonSignature},
		{"a DER signature instead of r||s", parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(append([]byte{0x30, 0x44}, sig...)), nil, VerifyOptions{}, ReasonSignature},
		{"an empty signature", parts[0] + "." + parts[1] + ".", nil, VerifyOptions{}, ReasonSignature},
		{"another bundle", mint(t, ca, func() fakestore.TransactionClaims { c := goodClaims(); c.BundleID = "com.other"; return c }()), nil, VerifyOptions{}, ReasonBundle},
		{"Production data in a sandbox deployment", mint(t, ca, func() fakestore.TransactionClaims { c := goodClaims(); c.Environment = "Production"; return c }()), nil, VerifyOptions{AllowSandbox: true}, ReasonEnvironment},
		{"Sandbox data in production without AllowSandbox", good, newVerifier(t, ca.Roots(), EnvProduction, testBundle), VerifyOptions{}, ReasonEnvironment},
		{"signed Xcode data in a sandbox deployment", mint(t, ca, func() fakestore.TransactionClaims { c := goodClaims(); c.Environment = "Xcode"; return c }()), nil, VerifyOptions{AllowSandbox: true}, ReasonEnvironment},
		{"an unknown environment", mint(t, ca, func() fakestore.TransactionClaims { c := goodClaims(); c.Environment = "LocalTesting"; return c }()), nil, VerifyOptions{}, ReasonEnvironment},
		{"no productId", mint(t, ca, func() fakestore.TransactionClaims { c := goodClaims(); c.ProductID = ""; return c }()), nil, VerifyOptions{}, ReasonFormat},
		{"a payload that is a JSON array", signRaw(string(hdr), `[1,2]`, sig), nil, VerifyOptions{}, ReasonFormat},
		{"a payload with a string quantity", func() string {
			s, _ := ca.Sign([]byte(`{"bundleId":"`+testBundle+`","environment":"Sandbox","transactionId":"1","productId":"p","purchaseDate":1,"quantity":"9"}`), fakestore.SignOptions{})
			return s
		}(), nil, VerifyOptions{}, ReasonFormat},
		{"an empty string", "", nil, VerifyOptions{}, ReasonFormat},
		{"garbage", "not a jws", nil, VerifyOptions{}, ReasonFormat},
		{"three empty parts", "..", nil, VerifyOptions{}, ReasonFormat},
		{"four parts", good + ".x", nil, VerifyOptions{}, ReasonFormat},
		{"padded base64", parts[0] + "=." + parts[1] + "." + parts[2], nil, VerifyOptions{}, ReasonFormat},
		{"a header that is not JSON", "bm90IGpzb24." + parts[1] + "." + parts[2], nil, VerifyOptions{}, ReasonFormat},
		{"a huge input", strings.Repeat("A", 1<<20), nil, VerifyOptions{}, ReasonFormat},
	}
	for i := 1; i < len(good); i += len(good) / 7 {
		tests = append(tests, struct {
			name string
			jws  string
			v    *AppleVerifier
			opt  VerifyOptions
			want Reason
		}{"a JWS truncated to " + string(rune('0'+i%10)) + " mod 10", good[:i], nil, VerifyOptions{}, ""})
	}
	def := newVerifier(t, ca.Roots(), EnvSandbox, testBundle)
	for _, tt := range tests {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			v := tt.v
			if v == nil {
				v = def
			}
			p, err := v.VerifyTransaction(tt.jws, tt.opt)
			if p != nil {
				t.Fatalf("got a purchase %+v", p)
			}
			if tt.want == "" {
				if ReasonOf(err) == "" {
					t.Fatalf("got %v, want an InvalidError", err)
				}
				return
			}
			wantReason(t, err, tt.want)
		})
	}
	t.Run("accepts the untampered original", func(t *testing.T) {
		if _, err := def.VerifyTransaction(good, VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("accepts Sandbox data in production for a tester", func(t *testing.T) {
		v := newVerifier(t, ca.Roots(), EnvProduction, testBundle)
		if _, err := v.VerifyTransaction(good, VerifyOptions{AllowSandbox: true}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("accepts data signed while a now-expired leaf was valid", func(t *testing.T) {
		c := goodClaims()
		c.SignedDate = time.Date(2020, 6, 1, 0, 0, 0, 0, time.UTC)
		v := newVerifier(t, expired.Roots(), EnvSandbox, testBundle)
		if _, err := v.VerifyTransaction(mint(t, expired, c), VerifyOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerifyNotification(t *testing.T) {
	ca := newCA(t, fakestore.CAOptions{})
	sandbox := newVerifier(t, ca.Roots(), EnvSandbox, testBundle)
	production := newVerifier(t, ca.Roots(), EnvProduction, testBundle)
	now := sandbox.cfg.Now()
	sub := func(env string) fakestore.NotificationClaims {
		return fakestore.NotificationClaims{
			Type: "DID_RENEW", Subtype: "BILLING_RECOVERY", BundleID: testBundle, AppAppleID: testAppAppleID,
			Environment: env, Status: 4,
			Transaction: &fakestore.TransactionClaims{
				ProductID: "vip.monthly", Type: "Auto-Renewable Subscription",
				TransactionID: "2000000000000002", OriginalTransactionID: "2000000000000001",
				ExpiresDate: now.Add(24 * time.Hour),
			},
			Renewal: &fakestore.RenewalClaims{OriginalTransactionID: "2000000000000001", ProductID: "vip.monthly", AutoRenew: true, RenewalDate: now.Add(24 * time.Hour)},
		}
	}
	body := func(c fakestore.NotificationClaims) []byte {
		b, err := ca.MintNotification(c)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	t.Run("a subscription renewal verifies with its transaction and renewal info", func(t *testing.T) {
		c := sub("Sandbox")
		c.NotificationUUID = "6f4e1c55-6d5c-4d84-8d3c-2b0d2f4f3a11"
		n, err := sandbox.VerifyNotification(body(c), VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if n.Type != "DID_RENEW" || n.Subtype != "BILLING_RECOVERY" || n.NotificationUUID != c.NotificationUUID ||
			n.Environment != EnvSandbox || n.BundleID != testBundle || n.AppAppleID != testAppAppleID || n.Version != "2.0" {
			t.Fatalf("notification %+v", n)
		}
		if p := n.Purchase; p == nil || p.TransactionID != "2000000000000002" || p.OriginalTransactionID != "2000000000000001" ||
			p.SubscriptionState != SubGracePeriod || p.Type != ProductAutoRenewable {
			t.Fatalf("purchase %+v", n.Purchase)
		}
		if r := n.Renewal; r == nil || !r.AutoRenew || r.ProductID != "vip.monthly" || r.RenewsAt == nil {
			t.Fatalf("renewal %+v", n.Renewal)
		}
	})
	t.Run("a production notification verifies in production", func(t *testing.T) {
		n, err := production.VerifyNotification(body(sub("Production")), VerifyOptions{})
		if err != nil || n.Environment != EnvProduction {
			t.Fatalf("%+v %v", n, err)
		}
	})

	rejects := []struct {
		name string
		body []byte
		v    *AppleVerifier
		want Reason
	}{
		{"a production notification for another app apple id", body(func() fakestore.NotificationClaims { c := sub("Production"); c.AppAppleID = 42; return c }()), production, ReasonBundle},
		{"a notification for another bundle", body(func() fakestore.NotificationClaims { c := sub("Sandbox"); c.BundleID = "com.other"; return c }()), sandbox, ReasonBundle},
		{"a transaction for another bundle inside", body(func() fakestore.NotificationClaims {
			c := sub("Sandbox")
			c.Transaction.BundleID = "com.other"
			return c
		}()), sandbox, ReasonBundle},
		{"a Production transaction inside a Sandbox notification", body(func() fakestore.NotificationClaims {
			c := sub("Sandbox")
			c.Transaction.Environment = "Production"
			return c
		}()), newVerifier(t, ca.Roots(), EnvProduction, testBundle), ReasonEnvironment},
		{"a Sandbox notification in production", body(sub("Sandbox")), production, ReasonEnvironment},
		{"a notification signed under another root", func() []byte {
			b, _ := newCA(t, fakestore.CAOptions{}).MintNotification(sub("Sandbox"))
			return b
		}(), sandbox, ReasonChain},
		{"an inner transaction signed under another root", func() []byte {
			other := newCA(t, fakestore.CAOptions{})
			inner, _ := other.MintTransaction(fakestore.TransactionClaims{BundleID: testBundle, ProductID: "p"})
			p, _ := json.Marshal(map[string]any{"notificationType": "ONE_TIME_CHARGE", "notificationUUID": "u",
				"data": map[string]any{"bundleId": testBundle, "environment": "Sandbox", "signedTransactionInfo": inner}})
			s, _ := ca.Sign(p, fakestore.SignOptions{})
			return notificationBody(t, s)
		}(), sandbox, ReasonChain},
		{"a notification without notificationUUID", func() []byte {
			p, _ := json.Marshal(map[string]any{"notificationType": "TEST", "data": map[string]any{"bundleId": testBundle, "environment": "Sandbox"}})
			s, _ := ca.Sign(p, fakestore.SignOptions{})
			return notificationBody(t, s)
		}(), sandbox, ReasonFormat},
		{"a body that is not JSON", []byte("signedPayload=x"), sandbox, ReasonFormat},
		{"an empty object", []byte("{}"), sandbox, ReasonFormat},
		{"JSON null", []byte("null"), sandbox, ReasonFormat},
		{"two objects", append(body(sub("Sandbox")), body(sub("Sandbox"))...), sandbox, ReasonFormat},
		{"a signedPayload that is a number", []byte(`{"signedPayload": 5}`), sandbox, ReasonFormat},
		{"a huge body", []byte(`{"signedPayload":"` + strings.Repeat("A", 300<<10) + `"}`), sandbox, ReasonFormat},
	}
	for _, tt := range rejects {
		t.Run("refuses "+tt.name, func(t *testing.T) {
			n, err := tt.v.VerifyNotification(tt.body, VerifyOptions{})
			if n != nil {
				t.Fatalf("got %+v", n)
			}
			wantReason(t, err, tt.want)
		})
	}
}

func TestNewAppleVerifierValidatesConfig(t *testing.T) {
	for _, c := range []AppleConfig{
		{Environment: EnvSandbox},
		{BundleID: "b", Environment: "staging"},
		{BundleID: "b", Environment: EnvProduction},
	} {
		if _, err := NewAppleVerifier(c); err == nil {
			t.Errorf("NewAppleVerifier(%+v) accepted", c)
		}
	}
}

func TestEnvironmentPolicy(t *testing.T) {
	tests := []struct {
		configured, got Environment
		allowSandbox    bool
		want            bool
	}{
		{EnvProduction, EnvProduction, false, true},
		{EnvProduction, EnvSandbox, false, false},
		{EnvProduction, EnvSandbox, true, true},
		{EnvProduction, EnvXcode, true, false},
		{EnvSandbox, EnvSandbox, false, true},
		{EnvSandbox, EnvProduction, true, false},
		{EnvSandbox, EnvXcode, true, false},
		{EnvXcode, EnvXcode, false, true},
		{EnvXcode, EnvSandbox, true, false},
	}
	for _, tt := range tests {
		if got := environmentAllowed(tt.configured, tt.got, tt.allowSandbox); got != tt.want {
			t.Errorf("%s deployment, %s data, allowSandbox %v: got %v", tt.configured, tt.got, tt.allowSandbox, got)
		}
	}
}

func TestPurchaseCheckAccount(t *testing.T) {
	p := &Purchase{AppAccountToken: "a"}
	if err := p.CheckAccount("a", true); err != nil {
		t.Fatal(err)
	}
	wantReason(t, p.CheckAccount("b", false), ReasonAccount)
	empty := &Purchase{}
	if err := empty.CheckAccount("b", false); err != nil {
		t.Fatal(err)
	}
	wantReason(t, empty.CheckAccount("b", true), ReasonAccount)
}
