package receipts

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/receipts/fakestore"
	"google.golang.org/api/androidpublisher/v3"
)

const testPackage = "com.coinop.game"

// newPlay wires GooglePlay to go-iap's real Play client, which talks to a
// fakestore.PlayServer on loopback through a fake service account.
func newPlay(t *testing.T, env Environment, wrap func(http.Handler) http.Handler) (*GooglePlay, *fakestore.PlayServer) {
	t.Helper()
	fake := fakestore.NewPlayServer()
	var h http.Handler = fake
	if wrap != nil {
		h = wrap(fake)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	key, hc, err := fakestore.PlayClient(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	api, err := NewPlayAPI(key, hc)
	if err != nil {
		t.Fatal(err)
	}
	g, err := NewGooglePlay(GooglePlayConfig{PackageName: testPackage, Environment: env, Timeout: 2 * time.Second}, api)
	if err != nil {
		t.Fatal(err)
	}
	return g, fake
}

func int64p(i int64) *int64 { return &i }

func TestGooglePlayVerifyProduct(t *testing.T) {
	ctx := context.Background()
	purchased := &androidpublisher.ProductPurchase{
		OrderId: "GPA.3312-5512-0912-55123", ProductId: "gems.100", PurchaseState: 0, PurchaseTimeMillis: 1700000000123,
		ObfuscatedExternalAccountId: "player-42", Quantity: 3,
	}
	t.Run("a purchased product verifies", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddProduct("tok-1", purchased)
		p, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := Purchase{Store: StoreGoogle, Environment: EnvProduction, TransactionID: "GPA.3312-5512-0912-55123",
			OriginalTransactionID: "GPA.3312-5512-0912-55123", ProductID: "gems.100", Quantity: 3,
			PurchasedAt: time.UnixMilli(1700000000123).UTC(), AppAccountToken: "player-42", PurchaseToken: "tok-1"}
		if *p != want {
			t.Fatalf("got %+v\nwant %+v", *p, want)
		}
		if calls := fake.Calls(); len(calls) != 1 || calls[0] != "GET /androidpublisher/v3/applications/"+testPackage+"/purchases/products/gems.100/tokens/tok-1" {
			t.Fatalf("calls %q", calls)
		}
	})
	t.Run("a promo purchase without orderId is keyed by its token", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddProduct("tok-promo", &androidpublisher.ProductPurchase{ProductId: "gems.100", PurchaseTimeMillis: 1, PurchaseType: int64p(1)})
		p, err := g.VerifyProduct(ctx, "gems.100", "tok-promo", VerifyOptions{})
		if err != nil || p.TransactionID != "tok-promo" || p.Quantity != 1 || p.Environment != EnvProduction {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("a license-tester purchase is sandbox, accepted in production only when allowed", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddProduct("tok-test", &androidpublisher.ProductPurchase{OrderId: "GPA.1", ProductId: "gems.100", PurchaseTimeMillis: 1, PurchaseType: int64p(0)})
		_, err := g.VerifyProduct(ctx, "gems.100", "tok-test", VerifyOptions{})
		wantReason(t, err, ReasonEnvironment)
		p, err := g.VerifyProduct(ctx, "gems.100", "tok-test", VerifyOptions{AllowSandbox: true})
		if err != nil || p.Environment != EnvSandbox {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("a sandbox deployment refuses real purchases", func(t *testing.T) {
		g, fake := newPlay(t, EnvSandbox, nil)
		fake.AddProduct("tok-1", purchased)
		_, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{AllowSandbox: true})
		wantReason(t, err, ReasonEnvironment)
	})
	for _, tt := range []struct {
		name  string
		state int64
	}{{"cancelled", 1}, {"pending", 2}, {"in an unknown state", 7}} {
		t.Run("a "+tt.name+" purchase is refused as state", func(t *testing.T) {
			g, fake := newPlay(t, EnvProduction, nil)
			c := *purchased
			c.PurchaseState = tt.state
			fake.AddProduct("tok", &c)
			_, err := g.VerifyProduct(ctx, "gems.100", "tok", VerifyOptions{})
			wantReason(t, err, ReasonState)
		})
	}
	t.Run("an unknown token is refused", func(t *testing.T) {
		g, _ := newPlay(t, EnvProduction, nil)
		_, err := g.VerifyProduct(ctx, "gems.100", "nope", VerifyOptions{})
		wantReason(t, err, ReasonSignature)
	})
	t.Run("a token for another product is refused", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddProduct("tok-1", purchased)
		_, err := g.VerifyProduct(ctx, "gems.500", "tok-1", VerifyOptions{})
		if ReasonOf(err) != ReasonSignature && ReasonOf(err) != ReasonProduct {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("ids that no store issues are refused before any call", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		for _, in := range [][2]string{{"", "t"}, {"p", ""}, {"../x", "t"}, {"p", "a/b"}, {"p", "a b"}, {"p", "a%2F"}, {"p", strings.Repeat("t", 3000)}} {
			_, err := g.VerifyProduct(ctx, in[0], in[1], VerifyOptions{})
			wantReason(t, err, ReasonFormat)
		}
		if len(fake.Calls()) != 0 {
			t.Fatalf("calls %q", fake.Calls())
		}
	})
	for _, status := range []int{500, 502, 503, 429} {
		t.Run("HTTP "+itoa(status)+" means the store is unavailable", func(t *testing.T) {
			g, fake := newPlay(t, EnvProduction, nil)
			fake.AddProduct("tok-1", purchased)
			fake.FailWith(status)
			_, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
			if !errors.Is(err, ErrStoreUnavailable) {
				t.Fatalf("got %v", err)
			}
		})
	}
	t.Run("HTTP 401 means our credentials are wrong", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.FailWith(401)
		_, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
		if !errors.Is(err, ErrMisconfigured) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a refused service account means our credentials are wrong", func(t *testing.T) {
		g, _ := newPlay(t, EnvProduction, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/token" {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(400)
					w.Write([]byte(`{"error":"invalid_grant"}`))
					return
				}
				h.ServeHTTP(w, r)
			})
		})
		_, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
		if !errors.Is(err, ErrMisconfigured) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a slow store times out as unavailable", func(t *testing.T) {
		done := make(chan struct{})
		g, fake := newPlay(t, EnvProduction, func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/token" {
					<-done
				}
				h.ServeHTTP(w, r)
			})
		})
		defer close(done)
		g.cfg.Timeout = 100 * time.Millisecond
		fake.AddProduct("tok-1", purchased)
		_, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestGooglePlayAcknowledgeAndConsume(t *testing.T) {
	ctx := context.Background()
	g, fake := newPlay(t, EnvProduction, nil)
	fake.AddProduct("tok-1", &androidpublisher.ProductPurchase{OrderId: "GPA.1", ProductId: "gems.100", PurchaseTimeMillis: 1})
	p, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
	if err != nil || p.Acknowledged {
		t.Fatalf("%+v %v", p, err)
	}
	if err := g.Acknowledge(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := g.Consume(ctx, p); err != nil {
		t.Fatal(err)
	}
	base := "/androidpublisher/v3/applications/" + testPackage + "/purchases/products/gems.100/tokens/tok-1"
	want := []string{"GET " + base, "POST " + base + ":acknowledge", "POST " + base + ":consume"}
	if got := fake.Calls(); !slices.Equal(got, want) {
		t.Fatalf("calls %q\nwant %q", got, want)
	}
	if s := fake.Product("tok-1"); s.AcknowledgementState != 1 || s.ConsumptionState != 1 {
		t.Fatalf("fake state %+v", s)
	}
	p2, err := g.VerifyProduct(ctx, "gems.100", "tok-1", VerifyOptions{})
	if err != nil || !p2.Acknowledged {
		t.Fatalf("%+v %v", p2, err)
	}
	t.Run("refuses purchases from another store", func(t *testing.T) {
		if err := g.Acknowledge(ctx, &Purchase{Store: StoreApple, ProductID: "p", PurchaseToken: "t"}); err == nil {
			t.Fatal("acknowledged an Apple purchase")
		}
		if err := g.Consume(ctx, nil); err == nil {
			t.Fatal("consumed nil")
		}
	})
	t.Run("store errors are mapped", func(t *testing.T) {
		fake.FailWith(503)
		defer fake.FailWith(0)
		if err := g.Acknowledge(ctx, p); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
		if err := g.Consume(ctx, p); !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
	})
}

func TestGooglePlayVerifySubscription(t *testing.T) {
	ctx := context.Background()
	sub := func(state string) *androidpublisher.SubscriptionPurchaseV2 {
		return &androidpublisher.SubscriptionPurchaseV2{
			SubscriptionState: state, LatestOrderId: "GPA.7777-1111-2222-33333..2", StartTime: "2026-01-01T00:00:00.5Z",
			AcknowledgementState:       "ACKNOWLEDGEMENT_STATE_PENDING",
			ExternalAccountIdentifiers: &androidpublisher.ExternalAccountIdentifiers{ObfuscatedExternalAccountId: "player-42"},
			LineItems: []*androidpublisher.SubscriptionPurchaseLineItem{
				{ProductId: "vip.monthly", ExpiryTime: "2026-03-01T00:00:00Z", AutoRenewingPlan: &androidpublisher.AutoRenewingPlan{AutoRenewEnabled: true}},
			},
		}
	}
	for _, tt := range []struct{ state, want string }{
		{"SUBSCRIPTION_STATE_ACTIVE", SubActive},
		{"SUBSCRIPTION_STATE_IN_GRACE_PERIOD", SubGracePeriod},
		{"SUBSCRIPTION_STATE_ON_HOLD", SubBillingRetry},
		{"SUBSCRIPTION_STATE_PAUSED", SubPaused},
		{"SUBSCRIPTION_STATE_CANCELED", SubCanceled},
		{"SUBSCRIPTION_STATE_EXPIRED", SubExpired},
	} {
		t.Run(tt.state+" maps to "+tt.want, func(t *testing.T) {
			g, fake := newPlay(t, EnvProduction, nil)
			fake.AddSubscription("tok-s", sub(tt.state))
			p, err := g.VerifySubscription(ctx, "vip.monthly", "tok-s", VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.SubscriptionState != tt.want || p.TransactionID != "GPA.7777-1111-2222-33333..2" ||
				p.OriginalTransactionID != "GPA.7777-1111-2222-33333" || p.Type != ProductAutoRenewable ||
				p.ExpiresAt == nil || !p.ExpiresAt.Equal(time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)) ||
				!p.PurchasedAt.Equal(time.Date(2026, 1, 1, 0, 0, 0, 5e8, time.UTC)) || p.AppAccountToken != "player-42" ||
				p.Environment != EnvProduction || p.Acknowledged {
				t.Fatalf("purchase %+v", p)
			}
		})
	}
	t.Run("a pending subscription is refused as state", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddSubscription("tok-s", sub("SUBSCRIPTION_STATE_PENDING"))
		_, err := g.VerifySubscription(ctx, "vip.monthly", "tok-s", VerifyOptions{})
		wantReason(t, err, ReasonState)
	})
	t.Run("a token for another subscription is refused as product", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddSubscription("tok-s", sub("SUBSCRIPTION_STATE_ACTIVE"))
		_, err := g.VerifySubscription(ctx, "vip.yearly", "tok-s", VerifyOptions{})
		wantReason(t, err, ReasonProduct)
	})
	t.Run("a test subscription is sandbox", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		s := sub("SUBSCRIPTION_STATE_ACTIVE")
		s.TestPurchase = &androidpublisher.TestPurchase{}
		fake.AddSubscription("tok-s", s)
		_, err := g.VerifySubscription(ctx, "vip.monthly", "tok-s", VerifyOptions{})
		wantReason(t, err, ReasonEnvironment)
		p, err := g.VerifySubscription(ctx, "vip.monthly", "tok-s", VerifyOptions{AllowSandbox: true})
		if err != nil || p.Environment != EnvSandbox {
			t.Fatalf("%+v %v", p, err)
		}
	})
	t.Run("acknowledging a subscription reaches the subscriptions API; consuming it is refused", func(t *testing.T) {
		g, fake := newPlay(t, EnvProduction, nil)
		fake.AddSubscription("tok-s", sub("SUBSCRIPTION_STATE_ACTIVE"))
		p, err := g.VerifySubscription(ctx, "vip.monthly", "tok-s", VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Acknowledge(ctx, p); err != nil {
			t.Fatal(err)
		}
		wantReason(t, g.Consume(ctx, p), ReasonProduct)
		calls := fake.Calls()
		if want := "POST /androidpublisher/v3/applications/" + testPackage + "/purchases/subscriptions/vip.monthly/tokens/tok-s:acknowledge"; calls[len(calls)-1] != want {
			t.Fatalf("calls %q", calls)
		}
		p, err = g.VerifySubscription(ctx, "vip.monthly", "tok-s", VerifyOptions{})
		if err != nil || !p.Acknowledged {
			t.Fatalf("%+v %v", p, err)
		}
	})
}
