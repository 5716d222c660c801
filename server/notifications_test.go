package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/api/androidpublisher/v3"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/receipts/fakestore"
)

// refundsPage is GET /admin/v1/refunds.
type refundsPage struct {
	Refunds []storePurchase `json:"refunds"`
	Debts   []struct {
		PlayerID      string `json:"player_id"`
		Store         string `json:"store"`
		TransactionID string `json:"transaction_id"`
		AssetType     string `json:"asset_type"`
		AssetID       string `json:"asset_id"`
		Amount        int64  `json:"amount"`
		Policy        string `json:"policy"`
	} `json:"debts"`
}

func (e *env) refunds(t testing.TB) refundsPage {
	t.Helper()
	r := e.get(t, "/admin/v1/refunds", adminToken)
	if r.status != http.StatusOK {
		t.Fatalf("GET /admin/v1/refunds: %s", r)
	}
	var p refundsPage
	r.decode(t, &p)
	return p
}

func TestAppleRefundNotification(t *testing.T) {
	t.Parallel()

	t.Run("a refund delivered three times reverses the grant once", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3001"}
		if r := se.redeem(t, "p1", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		se.assertAuditOK(t)
		refund := tx
		refund.RevocationDate = time.Now()
		body := se.appleNotification(t, "REFUND", "8f7c4a52-0000-4000-8000-000000000001", refund)
		for i, wantDup := range []bool{false, true, true} {
			r := se.postApple(t, body)
			var ack struct {
				NotificationID string `json:"notification_id"`
				Duplicate      bool   `json:"duplicate"`
			}
			r.decode(t, &ack)
			if r.status != http.StatusOK || ack.Duplicate != wantDup || ack.NotificationID != "8f7c4a52-0000-4000-8000-000000000001" {
				t.Fatalf("delivery %d: %s", i+1, r)
			}
		}
		if w := se.wallet(t, "p1"); w["gems"] != 100 {
			t.Fatalf("the refund was applied before the worker ran: %v", w)
		}
		inbox := se.storeNotifications(t, "")
		if len(inbox) != 1 || inbox[0].Status != "pending" || inbox[0].Kind != "REFUND" || inbox[0].Store != "apple" {
			t.Fatalf("inbox = %+v", inbox)
		}
		se.runWorker(t)
		se.runWorker(t)
		if w := se.wallet(t, "p1"); w["gems"] != 0 {
			t.Fatalf("wallet after the refund = %v, want 0 gems", w)
		}
		if k := strings.Join(se.ledgerKinds(t, "p1"), " "); k != "store_refund store_purchase" {
			t.Fatalf("ledger kinds = %s", k)
		}
		if inbox := se.storeNotifications(t, "processed"); len(inbox) != 1 || inbox[0].Attempts != 1 {
			t.Fatalf("processed notifications = %+v", inbox)
		}
		ps := se.storePurchases(t, "p1")
		if len(ps) != 1 || ps[0].RevokedAt == nil {
			t.Fatalf("store purchases = %+v", ps)
		}
		if rf := se.refunds(t); len(rf.Refunds) != 1 || rf.Refunds[0].TransactionID != "3001" || len(rf.Debts) != 0 {
			t.Fatalf("refunds = %+v", rf)
		}
		// A second refund notification (another UUID) for the same
		// transaction changes nothing.
		if r := se.postApple(t, se.appleNotification(t, "REFUND", "", refund)); r.status != http.StatusOK {
			t.Fatalf("second notification: %s", r)
		}
		se.runWorker(t)
		if k := strings.Join(se.ledgerKinds(t, "p1"), " "); k != "store_refund store_purchase" {
			t.Fatalf("ledger kinds after a second refund = %s", k)
		}
		if inbox := se.storeNotifications(t, "processed"); len(inbox) != 2 {
			t.Fatalf("processed notifications = %+v", inbox)
		}
		// The refunded transaction cannot be redeemed again.
		if r := se.redeem(t, "p1", appleJWS(se.mint(t, refund))); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("redeeming the refunded transaction: %s", r)
		}
		// The redemption and the one refund are events; the duplicates not.
		var events string
		if err := se.pool.QueryRow(context.Background(),
			`SELECT string_agg(type, ' ' ORDER BY id) FROM events WHERE player_id = 'p1'`).Scan(&events); err != nil {
			t.Fatal(err)
		}
		if events != "ledger.store_purchase ledger.store_refund" {
			t.Errorf("events = %q", events)
		}
		se.assertAuditOK(t)
	})

	t.Run("a refund of currency already spent takes what is left and records the rest as debt", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t)
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3101"}
		if r := se.redeem(t, "spender", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		if r := se.purchase(t, "spender", "buy-potions", buy("potion", 2, "gems", 30)); r.status != http.StatusCreated {
			t.Fatalf("purchase: %s", r)
		}
		tx.RevocationDate = time.Now()
		if r := se.postApple(t, se.appleNotification(t, "REFUND", "", tx)); r.status != http.StatusOK {
			t.Fatalf("notification: %s", r)
		}
		se.runWorker(t)
		if w, items := se.wallet(t, "spender"), se.items(t, "spender"); w["gems"] != 0 || items["potion"] != 2 {
			t.Fatalf("after the refund: wallet %v, items %v", w, items)
		}
		rf := se.refunds(t)
		if len(rf.Debts) != 1 || rf.Debts[0].PlayerID != "spender" || rf.Debts[0].AssetID != "gems" || rf.Debts[0].Amount != 60 ||
			rf.Debts[0].Policy != "clamp" || rf.Debts[0].TransactionID != "3101" {
			t.Fatalf("debts = %+v", rf.Debts)
		}
		se.assertAuditOK(t)
	})

	t.Run("the flag policy takes nothing back and records the whole grant", func(t *testing.T) {
		t.Parallel()
		se := newStoreEnv(t, withPolicy(entitlements.ClawbackFlag))
		tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3201"}
		if r := se.redeem(t, "flagged", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		tx.RevocationDate = time.Now()
		se.postApple(t, se.appleNotification(t, "REVOKE", "", tx))
		se.runWorker(t)
		if w := se.wallet(t, "flagged"); w["gems"] != 100 {
			t.Fatalf("wallet = %v, want the 100 gems kept", w)
		}
		if rf := se.refunds(t); len(rf.Refunds) != 1 || len(rf.Debts) != 1 || rf.Debts[0].Amount != 100 || rf.Debts[0].Policy != "flag" {
			t.Fatalf("refunds = %+v", rf)
		}
		se.assertAuditOK(t)
	})
}

func TestAppleNotificationRejections(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	otherCA, err := fakestore.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherCA.MintNotification(fakestore.NotificationClaims{Type: "REFUND", BundleID: testBundle, AppAppleID: testAppID, Environment: "Production",
		Transaction: &fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "1"}})
	if err != nil {
		t.Fatal(err)
	}
	otherApp, err := se.ca.MintNotification(fakestore.NotificationClaims{Type: "TEST", BundleID: "com.other.app", AppAppleID: testAppID, Environment: "Production"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []errorCase{
		{name: "a notification signed by another CA is refused", status: 422, code: "receipt_invalid",
			send:  func(t *testing.T) response { return se.postApple(t, foreign) },
			check: wantReason("chain")},
		{name: "a notification for another app is refused", status: 422, code: "receipt_invalid",
			send:  func(t *testing.T) response { return se.postApple(t, otherApp) },
			check: wantReason("bundle")},
		{name: "a body without signedPayload is refused", status: 422, code: "receipt_invalid",
			send:  func(t *testing.T) response { return se.postApple(t, []byte(`{"payload":"x"}`)) },
			check: wantReason("format")},
		{name: "a garbage signedPayload is refused", status: 422, code: "receipt_invalid",
			send:  func(t *testing.T) response { return se.postApple(t, []byte(`{"signedPayload":"a.b.c"}`)) },
			check: wantReason("format")},
		{name: "a body that is not JSON is refused", status: 400, code: "invalid_request",
			send: func(t *testing.T) response { return se.postApple(t, []byte(`signedPayload=x`)) }},
	}
	runErrorCases(t, cases)
	if inbox := se.storeNotifications(t, ""); len(inbox) != 0 {
		t.Fatalf("refused notifications were stored: %+v", inbox)
	}
}

func wantReason(reason string) func(t *testing.T, r response, p map[string]any) {
	return func(t *testing.T, r response, p map[string]any) {
		t.Helper()
		if p["reason"] != reason {
			t.Errorf("reason = %v, want %s: %s", p["reason"], reason, r.body)
		}
	}
}

func TestAppleRenewalNotification(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t, withTesters("tester"))
	month := 30 * 24 * time.Hour
	first := fakestore.TransactionClaims{ProductID: "com.example.vip", TransactionID: "4001", Type: "Auto-Renewable Subscription",
		ExpiresDate: time.Now().Add(month)}
	if r := se.redeem(t, "subscriber", appleJWS(se.mint(t, first))); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}

	t.Run("a renewal is granted to the player who owns the subscription", func(t *testing.T) {
		renewal := first
		renewal.TransactionID, renewal.OriginalTransactionID, renewal.ExpiresDate = "4002", "4001", time.Now().Add(2*month)
		for range 2 {
			if r := se.postApple(t, se.appleNotification(t, "DID_RENEW", "", renewal)); r.status != http.StatusOK {
				t.Fatalf("notification: %s", r)
			}
		}
		se.runWorker(t)
		ps := se.storePurchases(t, "subscriber")
		if len(ps) != 2 || ps[0].TransactionID != "4002" || ps[1].TransactionID != "4001" {
			t.Fatalf("store purchases = %+v", ps)
		}
		if w, items := se.wallet(t, "subscriber"), se.items(t, "subscriber"); w["gems"] != 20 || items["vip"] != 1 {
			t.Fatalf("wallet %v, items %v", w, items)
		}
		if k := strings.Join(se.ledgerKinds(t, "subscriber"), " "); k != "store_purchase store_purchase" {
			t.Fatalf("ledger kinds = %s", k)
		}
	})

	t.Run("a renewal of a subscription never redeemed here is processed without a grant", func(t *testing.T) {
		stranger := fakestore.TransactionClaims{ProductID: "com.example.vip", TransactionID: "4102", OriginalTransactionID: "4101",
			Type: "Auto-Renewable Subscription", ExpiresDate: time.Now().Add(month)}
		se.postApple(t, se.appleNotification(t, "SUBSCRIBED", "", stranger))
		se.runWorker(t)
		if pending := se.storeNotifications(t, "pending"); len(pending) != 0 {
			t.Fatalf("pending = %+v", pending)
		}
		r := se.get(t, "/admin/v1/refunds", adminToken)
		if r.status != http.StatusOK || strings.Contains(string(r.body), "4102") {
			t.Fatalf("refunds: %s", r)
		}
	})

	t.Run("a subscription Apple reports in billing retry, then expired, stops granting its items", func(t *testing.T) {
		last := first
		last.TransactionID, last.OriginalTransactionID, last.ExpiresDate = "4002", "4001", time.Now().Add(-time.Minute)
		se.postApple(t, se.appleStatusNotification(t, "DID_FAIL_TO_RENEW", 3, last))
		se.runWorker(t)
		if items := se.items(t, "subscriber"); items["vip"] != 0 {
			t.Fatalf("items in billing retry = %v, want no vip", items)
		}
		se.postApple(t, se.appleStatusNotification(t, "EXPIRED", 2, last))
		se.runWorker(t)
		if items := se.items(t, "subscriber"); items["vip"] != 0 {
			t.Fatalf("items after expiry = %v, want no vip", items)
		}
		if w := se.wallet(t, "subscriber"); w["gems"] != 20 {
			t.Fatalf("wallet = %v: expiry takes back nothing already granted", w)
		}
		if failed := se.storeNotifications(t, "pending"); len(failed) != 0 {
			t.Fatalf("pending = %+v", failed)
		}
	})

	t.Run("a test notification is processed", func(t *testing.T) {
		body, err := se.ca.MintNotification(fakestore.NotificationClaims{Type: "TEST", NotificationUUID: "test-uuid", BundleID: testBundle, AppAppleID: testAppID, Environment: "Production"})
		if err != nil {
			t.Fatal(err)
		}
		if r := se.postApple(t, body); r.status != http.StatusOK {
			t.Fatalf("TEST: %s", r)
		}
		se.runWorker(t)
		found := false
		for _, n := range se.storeNotifications(t, "processed") {
			found = found || (n.NotificationID == "test-uuid" && n.Kind == "TEST")
		}
		if !found {
			t.Fatalf("TEST not processed: %+v", se.storeNotifications(t, ""))
		}
	})
	se.assertAuditOK(t)
}

// googleRedeemed redeems a Google consumable for player.
func googleRedeemed(t *testing.T, se *storeEnv, player, token, order string) {
	t.Helper()
	se.play.AddProduct(token, playProduct("com.example.gems100", order, 0))
	if r := se.redeem(t, player, googlePurchase("com.example.gems100", token)); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}
}

func voided(token, order string) map[string]any {
	return map[string]any{"voidedPurchaseNotification": map[string]any{"purchaseToken": token, "orderId": order, "productType": 2, "refundType": 1}}
}

func TestGoogleVoidedPurchaseNotification(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)

	t.Run("a voided purchase Play reports cancelled is revoked once", func(t *testing.T) {
		googleRedeemed(t, se, "g1", "tok-void", "GPA.100")
		se.play.AddProduct("tok-void", playProduct("com.example.gems100", "GPA.100", 1))
		token := se.pushToken(t, nil)
		for i, id := range []string{"m-1", "m-1", "m-2"} {
			r := se.postGoogle(t, token, pushBody(t, id, voided("tok-void", "GPA.100")))
			var ack struct {
				Duplicate bool `json:"duplicate"`
			}
			r.decode(t, &ack)
			if r.status != http.StatusOK || ack.Duplicate != (i == 1) {
				t.Fatalf("push %d: %s", i, r)
			}
		}
		se.runWorker(t)
		if w, items := se.wallet(t, "g1"), se.items(t, "g1"); w["gems"] != 0 || items["potion"] != 0 {
			t.Fatalf("after the void: wallet %v, items %v", w, items)
		}
		if k := strings.Join(se.ledgerKinds(t, "g1"), " "); k != "store_refund store_purchase" {
			t.Fatalf("ledger kinds = %s", k)
		}
		for _, n := range se.storeNotifications(t, "") {
			if n.Status != "processed" || n.Kind != "VOIDED_PURCHASE" {
				t.Fatalf("inbox = %+v", se.storeNotifications(t, ""))
			}
		}
	})

	t.Run("a voided purchase Play still reports purchased is not revoked", func(t *testing.T) {
		googleRedeemed(t, se, "g2", "tok-still", "GPA.200")
		se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-still", voided("tok-still", "GPA.200")))
		se.runWorker(t)
		if w := se.wallet(t, "g2"); w["gems"] != 100 {
			t.Fatalf("wallet = %v", w)
		}
	})

	t.Run("a cancelled one-time product notification revokes the purchase", func(t *testing.T) {
		googleRedeemed(t, se, "g3", "tok-cancel", "GPA.300")
		se.play.AddProduct("tok-cancel", playProduct("com.example.gems100", "GPA.300", 1))
		body := pushBody(t, "m-cancel", map[string]any{"oneTimeProductNotification": map[string]any{
			"version": "1.0", "notificationType": 2, "purchaseToken": "tok-cancel", "sku": "com.example.gems100"}})
		se.postGoogle(t, se.pushToken(t, nil), body)
		se.runWorker(t)
		if w := se.wallet(t, "g3"); w["gems"] != 0 {
			t.Fatalf("wallet = %v", w)
		}
	})

	t.Run("Play being down keeps the notification for a retry", func(t *testing.T) {
		googleRedeemed(t, se, "g4", "tok-down", "GPA.400")
		se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-down", voided("tok-down", "GPA.400")))
		se.play.FailWith(http.StatusServiceUnavailable)
		se.runWorker(t)
		se.play.FailWith(0)
		var n *storeNotification
		for _, x := range se.storeNotifications(t, "pending") {
			if x.NotificationID == "m-down" {
				n = &x
			}
		}
		if n == nil || n.Attempts != 1 || !strings.Contains(n.LastError, "store unavailable") {
			t.Fatalf("m-down = %+v", n)
		}
		if w := se.wallet(t, "g4"); w["gems"] != 100 {
			t.Fatalf("wallet = %v", w)
		}
	})
	se.assertAuditOK(t)
}

func TestGoogleSubscriptionRenewalNotification(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	sub := func(order string, expiry time.Time) *androidpublisher.SubscriptionPurchaseV2 {
		return &androidpublisher.SubscriptionPurchaseV2{
			SubscriptionState: "SUBSCRIPTION_STATE_ACTIVE", LatestOrderId: order, StartTime: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
			AcknowledgementState: "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
			LineItems:            []*androidpublisher.SubscriptionPurchaseLineItem{{ProductId: "com.example.vip", ExpiryTime: expiry.UTC().Format(time.RFC3339)}},
		}
	}
	se.play.AddSubscription("tok-sub", sub("GPA.500", time.Now().Add(24*time.Hour)))
	if r := se.redeem(t, "g-sub", googlePurchase("com.example.vip", "tok-sub")); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}
	se.play.AddSubscription("tok-sub", sub("GPA.500..0", time.Now().Add(48*time.Hour)))
	body := pushBody(t, "m-renew", map[string]any{"subscriptionNotification": map[string]any{
		"version": "1.0", "notificationType": 2, "purchaseToken": "tok-sub", "subscriptionId": "com.example.vip"}})
	if r := se.postGoogle(t, se.pushToken(t, nil), body); r.status != http.StatusOK {
		t.Fatalf("push: %s", r)
	}
	se.runWorker(t)
	ps := se.storePurchases(t, "g-sub")
	if len(ps) != 2 || ps[0].TransactionID != "GPA.500..0" || ps[0].AcknowledgedAt == nil {
		t.Fatalf("store purchases = %+v", ps)
	}
	if n := se.storeNotifications(t, "processed"); len(n) != 1 || n[0].Kind != "SUBSCRIPTION_RENEWED" {
		t.Fatalf("inbox = %+v", n)
	}
	if items := se.items(t, "g-sub"); items["vip"] != 1 {
		t.Fatalf("items after the renewal = %v", items)
	}

	// On hold: Play's state ends access until the payment recovers.
	onHold := sub("GPA.500..0", time.Now().Add(-time.Minute))
	onHold.SubscriptionState = "SUBSCRIPTION_STATE_ON_HOLD"
	se.play.AddSubscription("tok-sub", onHold)
	se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-hold", map[string]any{"subscriptionNotification": map[string]any{
		"version": "1.0", "notificationType": 5, "purchaseToken": "tok-sub", "subscriptionId": "com.example.vip"}}))
	se.runWorker(t)
	if items := se.items(t, "g-sub"); items["vip"] != 0 {
		t.Fatalf("items on hold = %v, want no vip", items)
	}
	se.play.AddSubscription("tok-sub", sub("GPA.500..1", time.Now().Add(72*time.Hour)))
	se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-recovered", map[string]any{"subscriptionNotification": map[string]any{
		"version": "1.0", "notificationType": 1, "purchaseToken": "tok-sub", "subscriptionId": "com.example.vip"}}))
	se.runWorker(t)
	if items := se.items(t, "g-sub"); items["vip"] != 1 {
		t.Fatalf("items after recovery = %v", items)
	}
	if ps := se.storePurchases(t, "g-sub"); len(ps) != 3 || ps[0].TransactionID != "GPA.500..1" {
		t.Fatalf("store purchases = %+v", ps)
	}
	se.assertAuditOK(t)
}

func TestGooglePushAuthentication(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	body := pushBody(t, "m-auth", map[string]any{"testNotification": map[string]any{"version": "1.0"}})
	cases := []errorCase{
		{name: "a push without a token is unauthenticated", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response { return se.postGoogle(t, "", body) }},
		{name: "a push for another audience is unauthenticated", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response {
				return se.postGoogle(t, se.pushToken(t, func(c jwt.MapClaims) { c["aud"] = "https://elsewhere.example" }), body)
			}},
		{name: "a push from another service account is unauthenticated", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response {
				return se.postGoogle(t, se.pushToken(t, func(c jwt.MapClaims) { c["email"] = "intruder@example.com" }), body)
			}},
		{name: "a push with an expired token is unauthenticated", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response {
				return se.postGoogle(t, se.pushToken(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), body)
			}},
		{name: "a push of another package is refused", status: 422, code: "receipt_invalid", check: wantReason("bundle"),
			send: func(t *testing.T) response {
				b := pushBody(t, "m-pkg", map[string]any{"testNotification": map[string]any{"version": "1.0"}})
				var env map[string]map[string]any
				json.Unmarshal(b, &env)
				return se.postGoogle(t, se.pushToken(t, nil), []byte(strings.Replace(string(b), env["message"]["data"].(string),
					encodeData(t, map[string]any{"version": "1.0", "packageName": "com.other", "eventTimeMillis": "1767323045678", "testNotification": map[string]any{}}), 1)))
			}},
		{name: "a push that is not JSON and carries no token is unauthenticated before its body is read", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response { return se.postGoogle(t, "", []byte("not json")) }},
		{name: "an authenticated push that is not JSON is invalid", status: 400, code: "invalid_request",
			send: func(t *testing.T) response { return se.postGoogle(t, se.pushToken(t, nil), []byte("not json")) }},
		{name: "a push without a message is refused", status: 422, code: "receipt_invalid", check: wantReason("format"),
			send: func(t *testing.T) response {
				return se.postGoogle(t, se.pushToken(t, nil), []byte(`{"subscription":"s"}`))
			}},
	}
	runErrorCases(t, cases)
	if inbox := se.storeNotifications(t, ""); len(inbox) != 0 {
		t.Fatalf("refused pushes were stored: %+v", inbox)
	}
	r := se.postGoogle(t, se.pushToken(t, nil), body)
	if r.status != http.StatusOK {
		t.Fatalf("authenticated push: %s", r)
	}
	se.runWorker(t)
	if n := se.storeNotifications(t, "processed"); len(n) != 1 || n[0].NotificationID != "m-auth" || n[0].Kind != "TEST" {
		t.Fatalf("inbox = %+v", n)
	}
}

func encodeData(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestStoreAdminRoutes(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	cases := []errorCase{
		{name: "an unknown inbox status is refused", status: 400, code: "invalid_request", detail: "status",
			send: func(t *testing.T) response { return se.get(t, "/admin/v1/store-notifications?status=done", adminToken) }},
		{name: "a refunds page of 0 is refused", status: 400, code: "invalid_request", detail: "limit",
			send: func(t *testing.T) response { return se.get(t, "/admin/v1/refunds?limit=0", adminToken) }},
		{name: "a player id over 128 characters is refused", status: 400, code: "invalid_request", detail: "player_id",
			send: func(t *testing.T) response {
				return se.get(t, "/admin/v1/players/"+strings.Repeat("p", 129)+"/store-purchases", adminToken)
			}},
		{name: "a player token cannot list store purchases", status: 403, code: "forbidden",
			send: func(t *testing.T) response {
				return se.get(t, "/admin/v1/players/p1/store-purchases", playerToken("p1"))
			}},
		{name: "the inbox needs the admin token", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response { return se.get(t, "/admin/v1/store-notifications", "") }},
	}
	runErrorCases(t, cases)
	r := se.get(t, "/admin/v1/refunds", adminToken)
	if r.status != http.StatusOK || string(r.body) != `{"refunds":[],"debts":[]}` {
		t.Fatalf("empty refunds: %s", r)
	}
	if r := se.get(t, "/admin/v1/players/nobody/store-purchases", adminToken); string(r.body) != `{"player_id":"nobody","store_purchases":[]}` {
		t.Fatalf("empty store purchases: %s", r)
	}
}

// A purchase refunded before the game redeemed it: the player still holds
// the original signed transaction, and it must not grant anything.
func TestARefundBeforeRedemptionBlocksTheOriginalTransaction(t *testing.T) {
	se := newStoreEnv(t)
	tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "9001"}
	original := se.mint(t, tx)
	refund := tx
	refund.RevocationDate = time.Now()
	if r := se.postApple(t, se.appleNotification(t, "REFUND", "", refund)); r.status != http.StatusOK {
		t.Fatalf("notification: %s", r)
	}
	se.runWorker(t)
	r := se.redeem(t, "p1", appleJWS(original))
	if body := assertProblem(t, r, http.StatusUnprocessableEntity, "receipt_invalid"); body["reason"] != "state" {
		t.Fatalf("reason = %v, want state", body["reason"])
	}
	if w := se.wallet(t, "p1"); w["gems"] != 0 {
		t.Fatalf("wallet = %v", w)
	}
	se.assertAuditOK(t)
}
