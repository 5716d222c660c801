package receipts

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/coinop/coinop/receipts/fakestore"
)

// appleTestCA is Apple's own test chain (java-certs, see testdata README):
// what Apple's libraries sign their model payloads with in their tests.
func appleTestCA(t testing.TB) *fakestore.CA {
	t.Helper()
	dir := "java-certs"
	ca, err := fakestore.NewCAFromPEM(vector(t, filepath.Join(dir, "testCA.pem")), vector(t, filepath.Join(dir, "testIntermediate.pem")),
		vector(t, filepath.Join(dir, "testLeaf.pem")), vector(t, filepath.Join(dir, "testLeaf.key")))
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// appleModel reads one of Apple's model payloads with its LocalTesting
// environment made Sandbox and the given members replaced.
func appleModel(t testing.TB, name string, set func(m map[string]any)) []byte {
	t.Helper()
	b := bytes.ReplaceAll(vector(t, filepath.Join("models", name)), []byte(`"LocalTesting"`), []byte(`"Sandbox"`))
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if set != nil {
		set(m)
	}
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func signedBody(t testing.TB, ca *fakestore.CA, payload []byte) []byte {
	t.Helper()
	jws, err := ca.Sign(payload, fakestore.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"signedPayload": jws})
	return b
}

// TestAppleModelNotifications verifies the notification shapes of Apple's
// App Store Server Library, signed with Apple's test chain.
func TestAppleModelNotifications(t *testing.T) {
	ca := appleTestCA(t)
	roots := ca.Roots()
	v := newVerifier(t, roots, EnvSandbox, "com.example")
	dropData := func(m map[string]any) {
		delete(m["data"].(map[string]any), "signedTransactionInfo")
		delete(m["data"].(map[string]any), "signedRenewalInfo")
	}
	tests := []struct {
		name, model string
		set         func(map[string]any)
		check       func(t *testing.T, n *Notification)
	}{
		{"a summary notification with storefrontCountryCodes as an array is accepted", "signedSummaryNotification.json", nil,
			func(t *testing.T, n *Notification) {
				if n.Type != "RENEWAL_EXTENSION" || n.Subtype != "SUMMARY" || n.Summary == nil || len(n.Summary.StorefrontCountryCodes) != 3 || n.Summary.SucceededCount != 5 {
					t.Fatalf("got %+v (summary %+v)", n, n.Summary)
				}
			}},
		{"RESCIND_CONSENT, carrying appData, is accepted", "signedRescindConsentNotification.json", nil,
			func(t *testing.T, n *Notification) {
				if n.Type != "RESCIND_CONSENT" || n.BundleID != "com.example" || n.Environment != EnvSandbox {
					t.Fatalf("got %+v", n)
				}
			}},
		{"EXTERNAL_PURCHASE_TOKEN in the sandbox is accepted", "signedExternalPurchaseTokenSandboxNotification.json", nil,
			func(t *testing.T, n *Notification) {
				if n.Type != "EXTERNAL_PURCHASE_TOKEN" || n.Environment != EnvSandbox || n.ExternalPurchaseID == "" {
					t.Fatalf("got %+v", n)
				}
			}},
		{"CONSUMPTION_REQUEST carries its reason", "signedConsumptionRequestNotification.json", dropData,
			func(t *testing.T, n *Notification) {
				if n.Type != "CONSUMPTION_REQUEST" || n.ConsumptionRequestReason != "UNINTENDED_PURCHASE" {
					t.Fatalf("got %+v", n)
				}
			}},
		{"a notification of a shape newer than this code is accepted as unknown", "signedNotification.json",
			func(m map[string]any) {
				delete(m, "data")
				m["notificationType"] = "SOMETHING_NEW"
				m["newContainer"] = map[string]any{"x": []int{1}}
			},
			func(t *testing.T, n *Notification) {
				if !n.Unknown || n.Type != "SOMETHING_NEW" || n.Purchase != nil {
					t.Fatalf("got %+v", n)
				}
			}},
		{"an unknown field of another type inside data is ignored", "signedNotification.json",
			func(m map[string]any) { dropData(m); m["data"].(map[string]any)["bundleVersion"] = []int{1, 2, 3} },
			func(t *testing.T, n *Notification) {
				if n.Type != "SUBSCRIBED" || n.Unknown {
					t.Fatalf("got %+v", n)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := v.VerifyNotification(signedBody(t, ca, appleModel(t, tc.model, tc.set)), VerifyOptions{AllowSandbox: true})
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, n)
		})
	}
}

// TestAppleProratedRefund: Apple's REFUND_PRORATED model (50000 milli-percent)
// is half of the purchase, not all of it.
func TestAppleProratedRefund(t *testing.T) {
	ca := appleTestCA(t)
	v := newVerifier(t, ca.Roots(), EnvSandbox, "com.example")
	jws, err := ca.Sign(appleModel(t, "signedTransactionWithRevocation.json", nil), fakestore.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p, err := v.VerifyTransaction(jws, VerifyOptions{AllowSandbox: true})
	if err != nil {
		t.Fatal(err)
	}
	if p.RevokedAt == nil || p.RevokedShare != FullShare/2 {
		t.Fatalf("revoked at %v, share %d; want half (%d)", p.RevokedAt, p.RevokedShare, FullShare/2)
	}
}
