package receipts

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/awa/go-iap/appstore"

	"github.com/coinop/coinop/receipts/fakestore"
)

func receiptAnswer(env, bundle string, inApp ...map[string]string) func(appstore.IAPRequest) (int, any) {
	return func(appstore.IAPRequest) (int, any) {
		return 200, map[string]any{"status": 0, "environment": env, "receipt": map[string]any{"bundle_id": bundle, "in_app": inApp}}
	}
}

func statusAnswer(status int) func(appstore.IAPRequest) (int, any) {
	return func(appstore.IAPRequest) (int, any) { return 200, map[string]any{"status": status} }
}

func newLegacy(t *testing.T, f *fakestore.VerifyReceiptServer, env Environment) *AppleLegacy {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	a, err := NewAppleLegacy(AppleLegacyConfig{
		BundleID: testBundle, Environment: env, SharedSecret: "s3cret",
		ProductionURL: srv.URL + "/prod", SandboxURL: srv.URL + "/sandbox",
		HTTPClient: &http.Client{Timeout: 2 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var (
	gemsEntry = map[string]string{"quantity": "2", "product_id": "gems.100", "transaction_id": "1000000000000001",
		"original_transaction_id": "1000000000000001", "purchase_date_ms": "1700000000000", "in_app_ownership_type": "PURCHASED"}
	vipEntry = map[string]string{"quantity": "1", "product_id": "vip.monthly", "transaction_id": "1000000000000003",
		"original_transaction_id": "1000000000000002", "purchase_date_ms": "1700000000000", "expires_date_ms": "1702592000000",
		"cancellation_date_ms": "1701000000000", "cancellation_reason": "1"}
)

const someReceipt = "TUlJVG9nWUpLb1pJaHZjTkFRY0NvSUlUa3pDQ0U0OENBUUV4Q3pBSkJnVXJEZ01DR2dVQU1JSURR"

func TestAppleLegacyVerifyReceipt(t *testing.T) {
	ctx := context.Background()
	t.Run("a production receipt gives one purchase per in_app entry", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(func(req appstore.IAPRequest) (int, any) {
			if req.ReceiptData != someReceipt || req.Password != "s3cret" {
				return 200, map[string]any{"status": 21002}
			}
			return receiptAnswer("Production", testBundle, gemsEntry, vipEntry)(req)
		}, nil)
		ps, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 2 || f.Calls() != "/prod" {
			t.Fatalf("purchases %+v calls %s", ps, f.Calls())
		}
		g, v := ps[0], ps[1]
		if g.Store != StoreApple || g.Environment != EnvProduction || g.TransactionID != "1000000000000001" || g.ProductID != "gems.100" ||
			g.Quantity != 2 || g.PurchasedAt.UnixMilli() != 1700000000000 || g.Type != ProductUnknown || g.OwnershipType != "PURCHASED" {
			t.Fatalf("gems %+v", g)
		}
		if v.OriginalTransactionID != "1000000000000002" || v.Type != ProductAutoRenewable || v.ExpiresAt == nil ||
			v.RevokedAt == nil || v.RevocationReason != "app_issue" {
			t.Fatalf("vip %+v", v)
		}
	})
	t.Run("the published legacy transaction receipt is sent verbatim", func(t *testing.T) {
		legacy := strings.TrimSpace(string(vector(t, "legacyTransactionReceipt.b64")))
		f := fakestore.NewVerifyReceiptServer(func(req appstore.IAPRequest) (int, any) {
			if req.ReceiptData != legacy {
				return 200, map[string]any{"status": 21002}
			}
			e := map[string]string{"product_id": "p", "transaction_id": "33993399", "purchase_date_ms": "1"}
			return receiptAnswer("Production", testBundle, e)(req)
		}, nil)
		ps, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, legacy, VerifyOptions{})
		if err != nil || len(ps) != 1 || ps[0].TransactionID != "33993399" {
			t.Fatalf("%+v %v", ps, err)
		}
	})
	t.Run("a sandbox receipt falls back to the sandbox when allowed", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(statusAnswer(21007), receiptAnswer("Sandbox", testBundle, gemsEntry))
		ps, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{AllowSandbox: true})
		if err != nil || len(ps) != 1 || ps[0].Environment != EnvSandbox || f.Calls() != "/prod,/sandbox" {
			t.Fatalf("%+v %v calls %s", ps, err, f.Calls())
		}
	})
	t.Run("a sandbox receipt is refused without calling the sandbox when not allowed", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(statusAnswer(21007), receiptAnswer("Sandbox", testBundle, gemsEntry))
		_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		wantReason(t, err, ReasonEnvironment)
		if f.Calls() != "/prod" {
			t.Fatalf("calls %s, want the production endpoint only", f.Calls())
		}
	})
	t.Run("a sandbox deployment asks the sandbox only", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(nil, receiptAnswer("Sandbox", testBundle, gemsEntry))
		ps, err := newLegacy(t, f, EnvSandbox).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		if err != nil || len(ps) != 1 || f.Calls() != "/sandbox" {
			t.Fatalf("%+v %v calls %s", ps, err, f.Calls())
		}
	})
	t.Run("a production receipt is refused by a sandbox deployment", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(nil, statusAnswer(21008))
		_, err := newLegacy(t, f, EnvSandbox).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		wantReason(t, err, ReasonEnvironment)
	})
	t.Run("a receipt for another bundle is refused", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(receiptAnswer("Production", "com.other", gemsEntry), nil)
		_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		wantReason(t, err, ReasonBundle)
	})
	t.Run("an entry without a purchase date is refused", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(receiptAnswer("Production", testBundle, map[string]string{"product_id": "p", "transaction_id": "1"}), nil)
		_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		wantReason(t, err, ReasonFormat)
	})
	for _, tt := range []struct {
		status int
		want   Reason
	}{{21000, ReasonFormat}, {21002, ReasonFormat}, {21003, ReasonSignature}, {21010, ReasonAccount}, {21099, ReasonFormat}} {
		t.Run("status "+itoa(tt.status)+" is refused as "+string(tt.want), func(t *testing.T) {
			f := fakestore.NewVerifyReceiptServer(statusAnswer(tt.status), nil)
			_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
			wantReason(t, err, tt.want)
		})
	}
	unavailableCases := map[string]func(appstore.IAPRequest) (int, any){
		"status 21005": statusAnswer(21005),
		"status 21009": statusAnswer(21009),
		"status 21150": statusAnswer(21150),
		"is_retryable": func(appstore.IAPRequest) (int, any) {
			return 200, map[string]any{"status": 21199, "is_retryable": true}
		},
		"HTTP 503":            func(appstore.IAPRequest) (int, any) { return 503, map[string]any{} },
		"HTTP 500":            func(appstore.IAPRequest) (int, any) { return 500, "oops" },
		"a body that is HTML": func(appstore.IAPRequest) (int, any) { return 200, "<html>" },
	}
	for name, h := range unavailableCases {
		t.Run(name+" means the store is unavailable", func(t *testing.T) {
			f := fakestore.NewVerifyReceiptServer(h, nil)
			_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
			if !errors.Is(err, ErrStoreUnavailable) {
				t.Fatalf("got %v, want ErrStoreUnavailable", err)
			}
		})
	}
	t.Run("a sandbox answering 5xx after 21007 means the store is unavailable", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(statusAnswer(21007), func(appstore.IAPRequest) (int, any) { return 502, nil })
		_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{AllowSandbox: true})
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("status 21004 means our shared secret is wrong", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(statusAnswer(21004), nil)
		_, err := newLegacy(t, f, EnvProduction).VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		if !errors.Is(err, ErrMisconfigured) || ReasonOf(err) != "" {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a network error means the store is unavailable", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		srv.Close()
		a, _ := NewAppleLegacy(AppleLegacyConfig{BundleID: testBundle, Environment: EnvProduction, ProductionURL: srv.URL, SandboxURL: srv.URL + "/s"})
		_, err := a.VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("a timeout means the store is unavailable", func(t *testing.T) {
		done := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-done }))
		defer slow.Close()
		defer close(done)
		a, _ := NewAppleLegacy(AppleLegacyConfig{BundleID: testBundle, Environment: EnvProduction, ProductionURL: slow.URL, SandboxURL: slow.URL + "/s",
			HTTPClient: &http.Client{Timeout: 100 * time.Millisecond}})
		_, err := a.VerifyReceipt(ctx, someReceipt, VerifyOptions{})
		if !errors.Is(err, ErrStoreUnavailable) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("input that is not base64 is refused before any call", func(t *testing.T) {
		f := fakestore.NewVerifyReceiptServer(nil, nil)
		a := newLegacy(t, f, EnvProduction)
		for _, in := range []string{"", "not base64!", strings.Repeat("A", 2<<20)} {
			_, err := a.VerifyReceipt(ctx, in, VerifyOptions{})
			wantReason(t, err, ReasonFormat)
		}
		if f.Calls() != "" {
			t.Fatalf("calls %s", f.Calls())
		}
	})
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
