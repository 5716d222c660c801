package receipts

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/receipts/fakestore"
)

// Every answer to untrusted input is a purchase or an error that is an
// *InvalidError; nothing panics.
func checkInvalid(t *testing.T, err error) {
	t.Helper()
	var ie *InvalidError
	if err != nil && !errors.As(err, &ie) {
		t.Fatalf("error %v is not an InvalidError", err)
	}
}

func FuzzVerifyTransaction(f *testing.F) {
	ca, err := fakestore.NewCA()
	if err != nil {
		f.Fatal(err)
	}
	good := mint(f, ca, goodClaims())
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(strings.Replace(good, ".", "..", 1))
	for _, name := range []string{"transactionInfo.jws", "renewalInfo.jws", "xcode-signed-transaction.jws", "missingX5CHeaderClaim.jws", "legacyTransactionReceipt.b64"} {
		f.Add(string(vector(f, name)))
	}
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJFUzI1NiIsIng1YyI6W119.e30.AA")
	verifiers := []*AppleVerifier{
		newVerifier(f, ca.Roots(), EnvSandbox, testBundle),
		newVerifier(f, ca.Roots(), EnvProduction, testBundle),
		newVerifier(f, nil, EnvXcode, "com.example.naturelab.backyardbirds.example"),
	}
	f.Fuzz(func(t *testing.T, jws string) {
		for _, v := range verifiers {
			p, err := v.VerifyTransaction(jws, VerifyOptions{AllowSandbox: true})
			checkInvalid(t, err)
			if err == nil && (p.TransactionID == "" || p.ProductID == "") {
				t.Fatalf("accepted an incomplete purchase %+v", p)
			}
			_, err = v.VerifyRenewalInfo(jws, VerifyOptions{})
			checkInvalid(t, err)
		}
	})
}

func FuzzVerifyNotification(f *testing.F) {
	ca, err := fakestore.NewCA()
	if err != nil {
		f.Fatal(err)
	}
	c := goodClaims()
	body, err := ca.MintNotification(fakestore.NotificationClaims{Type: "ONE_TIME_CHARGE", BundleID: testBundle, AppAppleID: testAppAppleID, Transaction: &c})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(body)
	f.Add(notificationBody(f, string(vector(f, "testNotification.jws"))))
	f.Add(notificationBody(f, string(vector(f, "wrongBundleId.jws"))))
	f.Add([]byte(`{"signedPayload":""}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	f.Add([]byte(``))
	v := newVerifier(f, ca.Roots(), EnvSandbox, testBundle)
	vx := newVerifier(f, nil, EnvXcode, testBundle)
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := v.VerifyNotification(body, VerifyOptions{})
		checkInvalid(t, err)
		_, err = vx.VerifyNotification(body, VerifyOptions{})
		checkInvalid(t, err)
	})
}

func FuzzDecodePushEnvelope(f *testing.F) {
	f.Add(pushBody(f, subNotification()))
	f.Add(pushBody(f, map[string]any{"version": "1.0", "packageName": "p", "eventTimeMillis": "1", "testNotification": map[string]any{}}))
	f.Add([]byte(`{"message":{"messageId":"1","data":"e30="}}`))
	f.Add([]byte(`{"message":null}`))
	f.Add([]byte(``))
	// Shapes Google documents: a numeric eventTimeMillis, no subscriptionId,
	// a partial refund, a pending refund review, a kind added later.
	f.Add(pushBody(f, map[string]any{"version": "1.0", "packageName": "p", "eventTimeMillis": 1767323045678,
		"subscriptionNotification": map[string]any{"version": "1.0", "notificationType": 2, "purchaseToken": "t"}}))
	f.Add(pushBody(f, map[string]any{"version": "1.0", "packageName": "p", "eventTimeMillis": "1",
		"voidedPurchaseNotification": map[string]any{"purchaseToken": "t", "orderId": "GPA.1", "productType": 2, "refundType": 2}}))
	f.Add(pushBody(f, map[string]any{"version": "1.0", "packageName": "p", "eventTimeMillis": "1",
		"pendingRefundReviewNotification": map[string]any{"version": "1.0", "pendingRefundToken": "r", "orderId": "GPA.1", "refundReason": 7}}))
	f.Add(pushBody(f, map[string]any{"version": "1.0", "packageName": "p", "eventTimeMillis": "1", "futureNotification": map[string]any{}}))
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := DecodePushEnvelope(body)
		checkInvalid(t, err)
		if err != nil {
			return
		}
		n := m.Notification
		if m.MessageID == "" || n.PackageName == "" || n.EventTimeMillis <= 0 || !m.EventTime.Equal(time.UnixMilli(n.EventTimeMillis)) {
			t.Fatalf("accepted an incomplete message %+v", m)
		}
		if s := n.SubscriptionNotification; s != nil && s.PurchaseToken == "" {
			t.Fatalf("accepted a subscription notification without a token: %+v", s)
		}
		if v := n.VoidedPurchaseNotification; v != nil && v.PurchaseToken == "" {
			t.Fatalf("accepted a voided purchase without a token: %+v", v)
		}
	})
}

func FuzzTransactionIDFromAppReceipt(f *testing.F) {
	for _, name := range []string{"xcode-app-receipt-with-transaction.b64", "xcode-app-receipt-empty.b64", "legacyTransactionReceipt.b64"} {
		f.Add(strings.TrimSpace(string(vector(f, name))))
	}
	f.Fuzz(func(t *testing.T, b64 string) {
		_, err := TransactionIDFromAppReceipt(b64)
		checkInvalid(t, err)
		_, err = TransactionIDFromLegacyTransactionReceipt(b64)
		checkInvalid(t, err)
	})
}
