package receipts

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/awa/go-iap/playstore"
	"github.com/golang-jwt/jwt/v5"
)

func pushBody(t testing.TB, notification any) []byte {
	t.Helper()
	data, err := json.Marshal(notification)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"message": map[string]any{
			"attributes":  map[string]string{"k": "v"},
			"data":        base64.StdEncoding.EncodeToString(data),
			"messageId":   "136969346945",
			"publishTime": "2026-01-02T03:04:05.678Z",
		},
		"subscription": "projects/coinop/subscriptions/play-rtdn",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func subNotification() map[string]any {
	return map[string]any{
		"version": "1.0", "packageName": testPackage, "eventTimeMillis": "1767323045678",
		"subscriptionNotification": map[string]any{"version": "1.0", "notificationType": 4, "purchaseToken": "tok-s", "subscriptionId": "vip.monthly"},
	}
}

func TestDecodePushEnvelope(t *testing.T) {
	t.Run("a subscription notification decodes", func(t *testing.T) {
		m, err := DecodePushEnvelope(pushBody(t, subNotification()))
		if err != nil {
			t.Fatal(err)
		}
		n := m.Notification
		if m.MessageID != "136969346945" || m.Subscription != "projects/coinop/subscriptions/play-rtdn" ||
			!m.PublishTime.Equal(time.Date(2026, 1, 2, 3, 4, 5, 678e6, time.UTC)) || m.Attributes["k"] != "v" ||
			m.EventTime.UnixMilli() != 1767323045678 || n.PackageName != testPackage || n.SubscriptionNotification == nil ||
			n.SubscriptionNotification.NotificationType != playstore.SubscriptionNotificationTypePurchased ||
			n.SubscriptionNotification.PurchaseToken != "tok-s" {
			t.Fatalf("%+v", m)
		}
	})
	t.Run("one-time, voided and test notifications decode", func(t *testing.T) {
		for _, kind := range []map[string]any{
			{"oneTimeProductNotification": map[string]any{"version": "1.0", "notificationType": 1, "purchaseToken": "t", "sku": "gems.100"}},
			{"voidedPurchaseNotification": map[string]any{"purchaseToken": "t", "orderId": "GPA.1", "productType": 2, "refundType": 1}},
			{"testNotification": map[string]any{"version": "1.0"}},
		} {
			n := map[string]any{"version": "1.0", "packageName": testPackage, "eventTimeMillis": "1"}
			for k, v := range kind {
				n[k] = v
			}
			if _, err := DecodePushEnvelope(pushBody(t, n)); err != nil {
				t.Fatalf("%v: %v", kind, err)
			}
		}
	})
	t.Run("a numeric eventTimeMillis decodes like a string one", func(t *testing.T) {
		n := subNotification()
		n["eventTimeMillis"] = json.Number("1767323045678")
		m, err := DecodePushEnvelope(pushBody(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if m.EventTime.UnixMilli() != 1767323045678 || m.Notification.EventTimeMillis != 1767323045678 {
			t.Fatalf("event time = %v", m.EventTime)
		}
	})
	t.Run("a subscription notification without subscriptionId decodes", func(t *testing.T) {
		n := subNotification()
		n["subscriptionNotification"] = map[string]any{"version": "1.0", "notificationType": 2, "purchaseToken": "tok-s"}
		m, err := DecodePushEnvelope(pushBody(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if s := m.Notification.SubscriptionNotification; s == nil || s.PurchaseToken != "tok-s" || s.SubscriptionID != "" {
			t.Fatalf("%+v", m.Notification)
		}
	})
	t.Run("a partial refund's voided purchase notification keeps its refundType", func(t *testing.T) {
		n := map[string]any{"version": "1.0", "packageName": testPackage, "eventTimeMillis": "1767323045678",
			"voidedPurchaseNotification": map[string]any{"purchaseToken": "t", "orderId": "GPA.1", "productType": 2, "refundType": 2}}
		m, err := DecodePushEnvelope(pushBody(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if v := m.Notification.VoidedPurchaseNotification; v == nil || v.RefundType != playstore.VoidedPurchaseRefundTypePartialRefund ||
			v.ProductType != playstore.VoidedPurchaseProductTypeOneTime || v.OrderID != "GPA.1" {
			t.Fatalf("%+v", m.Notification.VoidedPurchaseNotification)
		}
	})
	t.Run("a pending refund review notification decodes", func(t *testing.T) {
		n := map[string]any{"version": "1.0", "packageName": testPackage, "eventTimeMillis": "1767323045678",
			"pendingRefundReviewNotification": map[string]any{"version": "1.0", "pendingRefundToken": "prt", "orderId": "GPA.2", "refundReason": 7}}
		m, err := DecodePushEnvelope(pushBody(t, n))
		if err != nil {
			t.Fatal(err)
		}
		if r := m.Notification.PendingRefundReviewNotification; r == nil || r.OrderID != "GPA.2" || r.RefundReason != playstore.RefundReasonChargeback {
			t.Fatalf("%+v", m.Notification)
		}
	})
	t.Run("a kind of notification coinop does not know decodes, named", func(t *testing.T) {
		for name, n := range map[string]map[string]any{
			"a new kind": {"version": "1.0", "packageName": testPackage, "eventTimeMillis": "1",
				"someNewNotification": map[string]any{"purchaseToken": "t"}},
			"no kind at all": {"version": "1.0", "packageName": testPackage, "eventTimeMillis": "1"},
		} {
			m, err := DecodePushEnvelope(pushBody(t, n))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			want := map[string]string{"a new kind": "someNewNotification", "no kind at all": ""}[name]
			if got := strings.Join(m.Notification.Unknown, ","); got != want {
				t.Fatalf("%s: unknown = %q, want %q", name, got, want)
			}
		}
	})
	t.Run("the package name is checked by GooglePlay.DecodePush", func(t *testing.T) {
		g, err := NewGooglePlay(GooglePlayConfig{PackageName: "com.other", Environment: EnvProduction}, fakePlayAPI{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.DecodePush(pushBody(t, subNotification()))
		wantReason(t, err, ReasonBundle)
	})
	edit := func(f func(map[string]any)) map[string]any {
		n := subNotification()
		f(n)
		return n
	}
	bad := map[string][]byte{
		"an empty body":                nil,
		"JSON null":                    []byte("null"),
		"no message":                   []byte(`{"subscription":"s"}`),
		"a message without data":       []byte(`{"message":{"messageId":"1"}}`),
		"a message without an id":      []byte(`{"message":{"data":"e30="}}`),
		"data that is not base64":      []byte(`{"message":{"messageId":"1","data":"!!"}}`),
		"data that is not JSON":        []byte(`{"message":{"messageId":"1","data":"bm9wZQ=="}}`),
		"a bad publishTime":            []byte(`{"message":{"messageId":"1","data":"e30=","publishTime":"yesterday"}}`),
		"trailing data":                append(pushBody(t, subNotification()), []byte(`{}`)...),
		"a huge body":                  []byte(`{"message":{"messageId":"1","data":"` + strings.Repeat("A", 100<<10) + `"}}`),
		"no packageName":               pushBody(t, edit(func(n map[string]any) { delete(n, "packageName") })),
		"two kinds of notification":    pushBody(t, edit(func(n map[string]any) { n["testNotification"] = map[string]any{"version": "1.0"} })),
		"a bad eventTimeMillis":        pushBody(t, edit(func(n map[string]any) { n["eventTimeMillis"] = "soon" })),
		"a fractional eventTimeMillis": pushBody(t, edit(func(n map[string]any) { n["eventTimeMillis"] = 1.5 })),
		"no eventTimeMillis":           pushBody(t, edit(func(n map[string]any) { delete(n, "eventTimeMillis") })),
		"a token-less subscription notification": pushBody(t, edit(func(n map[string]any) {
			n["subscriptionNotification"] = map[string]any{"notificationType": 4, "subscriptionId": "x"}
		})),
		"a string notificationType": pushBody(t, edit(func(n map[string]any) {
			n["subscriptionNotification"] = map[string]any{"notificationType": "4", "subscriptionId": "x", "purchaseToken": "t"}
		})),
	}
	for name, body := range bad {
		t.Run("refuses "+name, func(t *testing.T) {
			m, err := DecodePushEnvelope(body)
			if m != nil {
				t.Fatalf("got %+v", m)
			}
			wantReason(t, err, ReasonFormat)
		})
	}
}

type fakePlayAPI struct{ PlayAPI }

// jwksServer serves one RSA key as a JWKS and counts fetches.
type jwksServer struct {
	*httptest.Server
	key     *rsa.PrivateKey
	fetches atomic.Int32
	down    atomic.Bool
}

func newJWKS(t *testing.T) *jwksServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	j := &jwksServer{key: key}
	j.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.fetches.Add(1)
		if j.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		e := base64.RawURLEncoding.EncodeToString
		w.Header().Set("Cache-Control", "public, max-age=3600")
		json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{
			{"kty": "RSA", "alg": "RS256", "use": "sig", "kid": "k1", "n": e(key.N.Bytes()), "e": e(big.NewInt(int64(key.E)).Bytes())},
			{"kty": "EC", "kid": "ec"},
		}})
	}))
	t.Cleanup(j.Close)
	return j
}

const (
	pushAudience = "https://coinop.example/v1/google/rtdn"
	pushEmail    = "rtdn-push@coinop.iam.gserviceaccount.com"
)

func goodPushClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://accounts.google.com", "aud": pushAudience, "email": pushEmail, "email_verified": true,
		"sub": "1234", "iat": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

func TestPushAuthenticator(t *testing.T) {
	ctx := context.Background()
	j := newJWKS(t)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := NewPushAuthenticator(PushAuthConfig{Audience: pushAudience, ServiceAccountEmail: pushEmail, JWKSURL: j.URL, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(j.key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	with := func(edit func(jwt.MapClaims)) string {
		c := goodPushClaims(now)
		edit(c)
		return sign(c)
	}

	t.Run("accepts a good token and caches the keys", func(t *testing.T) {
		for range 3 {
			if err := a.Authenticate(ctx, sign(goodPushClaims(now))); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.Authenticate(ctx, with(func(c jwt.MapClaims) { c["iss"] = "accounts.google.com" })); err != nil {
			t.Fatal(err)
		}
		if n := j.fetches.Load(); n != 1 {
			t.Fatalf("JWKS fetched %d times", n)
		}
	})

	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	signWith := func(m jwt.SigningMethod, key any, kid string) string {
		tok := jwt.NewWithClaims(m, goodPushClaims(now))
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + s
	}
	good := sign(goodPushClaims(now))
	parts := strings.Split(strings.TrimPrefix(good, "Bearer "), ".")
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"k1"}`)) + "." + parts[1] + "."

	for name, header := range map[string]string{
		"no header":                  "",
		"a Basic header":             "Basic dXNlcjpwYXNz",
		"a bare token":               strings.TrimPrefix(good, "Bearer "),
		"a wrong audience":           with(func(c jwt.MapClaims) { c["aud"] = "https://evil.example" }),
		"a wrong email":              with(func(c jwt.MapClaims) { c["email"] = "someone@gmail.com" }),
		"an unverified email":        with(func(c jwt.MapClaims) { c["email_verified"] = false }),
		"email_verified as a string": with(func(c jwt.MapClaims) { c["email_verified"] = "true" }),
		"a wrong issuer":             with(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"an expired token":           with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }),
		"no exp":                     with(func(c jwt.MapClaims) { delete(c, "exp") }),
		"an iat in the future":       with(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Hour).Unix() }),
		"alg HS256":                  signWith(jwt.SigningMethodHS256, []byte("secret"), "k1"),
		"alg ES256":                  signWith(jwt.SigningMethodES256, ecKey, "ec"),
		"alg RS512":                  signWith(jwt.SigningMethodRS512, j.key, "k1"),
		"alg none":                   "Bearer " + noneTok,
		"another RSA key":            signWith(jwt.SigningMethodRS256, otherKey, "k1"),
		"an unknown key id":          signWith(jwt.SigningMethodRS256, otherKey, "k9"),
		"a tampered payload":         "Bearer " + parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"x"}`)) + "." + parts[2],
		"garbage":                    "Bearer a.b.c",
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			err := a.Authenticate(ctx, header)
			if !errors.Is(err, ErrPushUnauthorized) {
				t.Fatalf("got %v, want ErrPushUnauthorized", err)
			}
		})
	}

	t.Run("an unreachable JWKS means unavailable, not unauthorized", func(t *testing.T) {
		j2 := newJWKS(t)
		j2.down.Store(true)
		a2, _ := NewPushAuthenticator(PushAuthConfig{Audience: pushAudience, ServiceAccountEmail: pushEmail, JWKSURL: j2.URL, Now: func() time.Time { return now }})
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, goodPushClaims(now))
		tok.Header["kid"] = "k1"
		s, _ := tok.SignedString(j2.key)
		err := a2.Authenticate(ctx, "Bearer "+s)
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
		j2.down.Store(false)
		now = now.Add(2 * time.Minute) // past the refetch limit
		if err := a2.Authenticate(ctx, "Bearer "+s); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("unknown key ids refetch the JWKS at most once a minute", func(t *testing.T) {
		before := j.fetches.Load()
		for range 5 {
			a.Authenticate(ctx, signWith(jwt.SigningMethodRS256, otherKey, "k-new"))
		}
		if n := j.fetches.Load() - before; n > 1 {
			t.Fatalf("JWKS fetched %d times", n)
		}
	})
}

func TestNewPushAuthenticatorNeedsAudienceAndEmail(t *testing.T) {
	if _, err := NewPushAuthenticator(PushAuthConfig{Audience: "a"}); err == nil {
		t.Fatal("accepted a config without email")
	}
	if _, err := NewPushAuthenticator(PushAuthConfig{ServiceAccountEmail: "e"}); err == nil {
		t.Fatal("accepted a config without audience")
	}
}

// While the JWKS cannot be fetched, concurrent pushes share one fetch and
// then fail fast until the retry interval passes, instead of each one
// queueing for its own fetch behind a lock.
func TestPushAuthenticatorSharesOneJWKSFetch(t *testing.T) {
	j := newJWKS(t)
	j.down.Store(true)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	a, err := NewPushAuthenticator(PushAuthConfig{Audience: pushAudience, ServiceAccountEmail: pushEmail, JWKSURL: j.URL,
		Now: func() time.Time { return time.Unix(0, clock.Load()).UTC() }})
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, goodPushClaims(now))
	tok.Header["kid"] = "k1"
	signed, err := tok.SignedString(j.key)
	if err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 10)
	for range 10 {
		go func() { errs <- a.Authenticate(context.Background(), "Bearer "+signed) }()
	}
	for range 10 {
		if err := <-errs; !errors.Is(err, ErrStoreUnavailable) {
			t.Errorf("with the JWKS down: %v, want ErrStoreUnavailable", err)
		}
	}
	if n := j.fetches.Load(); n != 1 {
		t.Errorf("10 concurrent pushes fetched the JWKS %d times, want 1", n)
	}
	// Within the retry interval nothing is fetched; after it, one fetch.
	clock.Add(int64(jwksRetry - time.Second))
	if err := a.Authenticate(context.Background(), "Bearer "+signed); !errors.Is(err, ErrStoreUnavailable) || j.fetches.Load() != 1 {
		t.Errorf("inside the retry interval: %v after %d fetches", err, j.fetches.Load())
	}
	j.down.Store(false)
	clock.Add(int64(2 * time.Second))
	if err := a.Authenticate(context.Background(), "Bearer "+signed); err != nil || j.fetches.Load() != 2 {
		t.Errorf("after the retry interval with the JWKS back: %v after %d fetches", err, j.fetches.Load())
	}
}
