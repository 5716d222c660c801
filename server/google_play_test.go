package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/api/androidpublisher/v3"
)

// Google Play as it really sends (issue 12): payload shapes Google
// documents for RTDN and the Play Developer API, each a case coinop
// refused or mishandled before.

// pushBodyAs is pushBody with the developer notification exactly as given
// (pushBody sets version, packageName and a string eventTimeMillis).
func pushBodyAs(t testing.TB, messageID string, notification map[string]any) []byte {
	t.Helper()
	data, err := json.Marshal(notification)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]any{
		"message":      map[string]any{"data": base64.StdEncoding.EncodeToString(data), "messageId": messageID, "publishTime": time.Now().UTC().Format(time.RFC3339Nano)},
		"subscription": "projects/coinop/subscriptions/play-rtdn",
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func playSub(order string, expiry time.Time) *androidpublisher.SubscriptionPurchaseV2 {
	return &androidpublisher.SubscriptionPurchaseV2{
		SubscriptionState: "SUBSCRIPTION_STATE_ACTIVE", LatestOrderId: order, StartTime: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339),
		AcknowledgementState: "ACKNOWLEDGEMENT_STATE_ACKNOWLEDGED",
		LineItems:            []*androidpublisher.SubscriptionPurchaseLineItem{{ProductId: "com.example.vip", ExpiryTime: expiry.UTC().Format(time.RFC3339)}},
	}
}

// notificationByID finds one inbox entry.
func (e *env) notificationByID(t testing.TB, id string) storeNotification {
	t.Helper()
	for _, n := range e.storeNotifications(t, "") {
		if n.NotificationID == id {
			return n
		}
	}
	t.Fatalf("notification %s not in the inbox: %+v", id, e.storeNotifications(t, ""))
	return storeNotification{}
}

func TestGoogleNotificationShapesPlaySends(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)

	t.Run("a subscription notification without subscriptionId renews the subscription", func(t *testing.T) {
		se.play.AddSubscription("tok-noid", playSub("GPA.700", time.Now().Add(24*time.Hour)))
		if r := se.redeem(t, "g-noid", googlePurchase("com.example.vip", "tok-noid")); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		se.play.AddSubscription("tok-noid", playSub("GPA.700..0", time.Now().Add(48*time.Hour)))
		r := se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-noid", map[string]any{"subscriptionNotification": map[string]any{
			"version": "1.0", "notificationType": 2, "purchaseToken": "tok-noid"}}))
		if r.status != http.StatusOK {
			t.Fatalf("push: %s", r)
		}
		se.runWorker(t)
		if ps := se.storePurchases(t, "g-noid"); len(ps) != 2 || ps[0].TransactionID != "GPA.700..0" {
			t.Fatalf("store purchases = %+v", ps)
		}
		if n := se.notificationByID(t, "m-noid"); n.Status != "processed" || n.Kind != "SUBSCRIPTION_RENEWED" {
			t.Fatalf("inbox entry = %+v", n)
		}
	})

	t.Run("a numeric eventTimeMillis is accepted", func(t *testing.T) {
		r := se.postGoogle(t, se.pushToken(t, nil), pushBodyAs(t, "m-num", map[string]any{
			"version": "1.0", "packageName": testPackage, "eventTimeMillis": time.Now().UnixMilli(),
			"testNotification": map[string]any{"version": "1.0"}}))
		if r.status != http.StatusOK {
			t.Fatalf("push: %s", r)
		}
		se.runWorker(t)
		if n := se.notificationByID(t, "m-num"); n.Status != "processed" || n.Kind != "TEST" {
			t.Fatalf("inbox entry = %+v", n)
		}
	})

	t.Run("a pending refund review is recorded and changes nothing", func(t *testing.T) {
		googleRedeemed(t, se, "g-review", "tok-review", "GPA.710")
		r := se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-review", map[string]any{"pendingRefundReviewNotification": map[string]any{
			"version": "1.0", "pendingRefundToken": "prt-1", "orderId": "GPA.710", "refundReason": 7}}))
		if r.status != http.StatusOK {
			t.Fatalf("push: %s", r)
		}
		se.runWorker(t)
		if n := se.notificationByID(t, "m-review"); n.Status != "processed" || n.Kind != "PENDING_REFUND_REVIEW" {
			t.Fatalf("inbox entry = %+v", n)
		}
		if w := se.wallet(t, "g-review"); w["gems"] != 100 {
			t.Fatalf("wallet = %v", w)
		}
	})

	t.Run("a kind of notification coinop does not know is recorded, not refused", func(t *testing.T) {
		r := se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-new", map[string]any{"someFutureNotification": map[string]any{
			"version": "1.0", "purchaseToken": "tok-x"}}))
		if r.status != http.StatusOK {
			t.Fatalf("push: %s", r)
		}
		se.runWorker(t)
		if n := se.notificationByID(t, "m-new"); n.Status != "processed" || n.Kind != "UNKNOWN:someFutureNotification" {
			t.Fatalf("inbox entry = %+v", n)
		}
	})
	se.assertAuditOK(t)
}

func TestGooglePartialRefund(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	// Quantity 3 of 100 gems and 2 potions: 300 gems, 6 potions.
	p := playProduct("com.example.gems100", "GPA.800", 0)
	p.Quantity, p.RefundableQuantity = 3, 3
	se.play.AddProduct("tok-multi", p)
	if r := se.redeem(t, "g-multi", googlePurchase("com.example.gems100", "tok-multi")); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}
	if w := se.wallet(t, "g-multi"); w["gems"] != 300 {
		t.Fatalf("wallet = %v", w)
	}
	// One of three refunded: still purchased, refundableQuantity 2.
	refunded := playProduct("com.example.gems100", "GPA.800", 0)
	refunded.Quantity, refunded.RefundableQuantity = 3, 2
	se.play.AddProduct("tok-multi", refunded)
	body := pushBody(t, "m-partial", map[string]any{"voidedPurchaseNotification": map[string]any{
		"purchaseToken": "tok-multi", "orderId": "GPA.800", "productType": 2, "refundType": 2}})
	if r := se.postGoogle(t, se.pushToken(t, nil), body); r.status != http.StatusOK {
		t.Fatalf("push: %s", r)
	}
	se.runWorker(t)
	// Never more than Play refunded: the whole purchase is not taken back.
	if w, items := se.wallet(t, "g-multi"), se.items(t, "g-multi"); w["gems"] < 200 || items["potion"] < 4 {
		t.Fatalf("a third refunded took more than a third: wallet %v, items %v", w, items)
	}
	if n := se.notificationByID(t, "m-partial"); n.Status == "processed" && se.wallet(t, "g-multi")["gems"] == 300 {
		t.Fatalf("partial refund dropped: %+v", n)
	}
	t.Run("one third back", func(t *testing.T) {
		if w, items := se.wallet(t, "g-multi"), se.items(t, "g-multi"); w["gems"] != 200 || items["potion"] != 4 {
			t.Fatalf("after a third refunded: wallet %v, items %v", w, items)
		}
		// The same refund told again (Pub/Sub redelivers under a new
		// message id): the share is cumulative, nothing more is taken.
		se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-partial-again", map[string]any{"voidedPurchaseNotification": map[string]any{
			"purchaseToken": "tok-multi", "orderId": "GPA.800", "productType": 2, "refundType": 2}}))
		se.runWorker(t)
		if w, items := se.wallet(t, "g-multi"), se.items(t, "g-multi"); w["gems"] != 200 || items["potion"] != 4 {
			t.Fatalf("after the same refund twice: wallet %v, items %v", w, items)
		}
		if n := se.notificationByID(t, "m-partial"); n.Status != "processed" {
			t.Fatalf("partial refund notification %+v, want processed", n)
		}
	})

	t.Run("a quantity-based refund of everything revokes the purchase", func(t *testing.T) {
		all := playProduct("com.example.gems100", "GPA.810", 0)
		all.Quantity, all.RefundableQuantity = 2, 2
		se.play.AddProduct("tok-all", all)
		if r := se.redeem(t, "g-all", googlePurchase("com.example.gems100", "tok-all")); r.status != http.StatusCreated {
			t.Fatalf("redeem: %s", r)
		}
		// Play leaves refundableQuantity out once it is 0; purchaseState stays 0.
		none := playProduct("com.example.gems100", "GPA.810", 0)
		none.Quantity = 2
		se.play.AddProduct("tok-all", none)
		se.postGoogle(t, se.pushToken(t, nil), pushBody(t, "m-all", map[string]any{"voidedPurchaseNotification": map[string]any{
			"purchaseToken": "tok-all", "orderId": "GPA.810", "productType": 2, "refundType": 2}}))
		se.runWorker(t)
		if w := se.wallet(t, "g-all"); w["gems"] != 0 {
			t.Fatalf("wallet = %v", w)
		}
	})
}

func TestGooglePendingPurchaseCompletesThroughItsNotification(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	se.play.AddProduct("tok-pend", playProduct("com.example.gems100", "GPA.900", 2))
	if p := assertProblem(t, se.redeem(t, "g-pend", googlePurchase("com.example.gems100", "tok-pend")), http.StatusUnprocessableEntity, "receipt_invalid"); p["reason"] != "state" {
		t.Fatalf("pending redeem: %v", p)
	}
	purchased := func(id string) []byte {
		return pushBody(t, id, map[string]any{"oneTimeProductNotification": map[string]any{
			"version": "1.0", "notificationType": 1, "purchaseToken": "tok-pend", "sku": "com.example.gems100"}})
	}
	// Still pending: nothing granted, nothing forgotten.
	se.postGoogle(t, se.pushToken(t, nil), purchased("m-pend-0"))
	se.runWorker(t)
	if w := se.wallet(t, "g-pend"); w["gems"] != 0 {
		t.Fatalf("granted while pending: %v", w)
	}
	se.play.AddProduct("tok-pend", playProduct("com.example.gems100", "GPA.900", 0))
	// The same notification three times (and one redelivery): one grant.
	for _, id := range []string{"m-pend-1", "m-pend-1", "m-pend-2", "m-pend-3"} {
		if r := se.postGoogle(t, se.pushToken(t, nil), purchased(id)); r.status != http.StatusOK {
			t.Fatalf("push %s: %s", id, r)
		}
	}
	se.runWorker(t)
	if w, items := se.wallet(t, "g-pend"), se.items(t, "g-pend"); w["gems"] != 100 || items["potion"] != 2 {
		t.Fatalf("after completion: wallet %v, items %v", w, items)
	}
	if ps := se.storePurchases(t, "g-pend"); len(ps) != 1 || ps[0].TransactionID != "GPA.900" || ps[0].AcknowledgedAt == nil {
		t.Fatalf("store purchases = %+v", ps)
	}
	// The game redeeming it now replays the grant.
	if r := se.redeem(t, "g-pend", googlePurchase("com.example.gems100", "tok-pend")); r.status != http.StatusOK {
		t.Fatalf("redeem after completion: %s", r)
	}
	if w := se.wallet(t, "g-pend"); w["gems"] != 100 {
		t.Fatalf("wallet = %v", w)
	}
	se.assertAuditOK(t)
}

func TestGoogleLinkedPurchaseTokenMovesTheSubscription(t *testing.T) {
	t.Parallel()
	se := newStoreEnv(t)
	se.play.AddSubscription("tok-old", playSub("GPA.950", time.Now().Add(24*time.Hour)))
	if r := se.redeem(t, "g-up", googlePurchase("com.example.vip", "tok-old")); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}
	// An upgrade: a new token naming the old one; the old one is replaced.
	upgraded := playSub("GPA.960", time.Now().Add(30*24*time.Hour))
	upgraded.LinkedPurchaseToken = "tok-old"
	se.play.AddSubscription("tok-new", upgraded)
	old := playSub("GPA.950", time.Now().Add(-time.Minute))
	old.SubscriptionState = "SUBSCRIPTION_STATE_EXPIRED"
	se.play.AddSubscription("tok-old", old)
	notify := func(id, token string, typ int) {
		r := se.postGoogle(t, se.pushToken(t, nil), pushBody(t, id, map[string]any{"subscriptionNotification": map[string]any{
			"version": "1.0", "notificationType": typ, "purchaseToken": token}}))
		if r.status != http.StatusOK {
			t.Fatalf("push %s: %s", id, r)
		}
	}
	// Out of order and repeated: a renewal-like notification first, the
	// purchase three times, the old token's expiry in between.
	notify("m-l1", "tok-new", 2)
	notify("m-l2", "tok-new", 4)
	notify("m-l3", "tok-old", 13)
	notify("m-l4", "tok-new", 4)
	notify("m-l5", "tok-new", 4)
	se.runWorker(t)
	ps := se.storePurchases(t, "g-up")
	if len(ps) != 2 {
		t.Fatalf("store purchases = %+v", ps)
	}
	var ids []string
	for _, p := range ps {
		ids = append(ids, p.TransactionID)
	}
	if got := strings.Join(ids, " "); got != "GPA.960 GPA.950" && got != "GPA.950 GPA.960" {
		t.Fatalf("store purchases = %s", got)
	}
	if items := se.items(t, "g-up"); items["vip"] != 1 {
		t.Fatalf("items = %v", items)
	}
	// The game redeeming the new token too grants nothing more.
	if r := se.redeem(t, "g-up", googlePurchase("com.example.vip", "tok-new")); r.status != http.StatusOK {
		t.Fatalf("redeem of the new token: %s", r)
	}
	if ps := se.storePurchases(t, "g-up"); len(ps) != 2 {
		t.Fatalf("store purchases = %+v", ps)
	}
	// The replaced subscription no longer grants once the new one ends.
	ended := playSub("GPA.960", time.Now().Add(-time.Minute))
	ended.SubscriptionState, ended.LinkedPurchaseToken = "SUBSCRIPTION_STATE_EXPIRED", "tok-old"
	se.play.AddSubscription("tok-new", ended)
	notify("m-l6", "tok-new", 13)
	se.runWorker(t)
	if items := se.items(t, "g-up"); items["vip"] != 0 {
		t.Fatalf("items after the new subscription expired = %v", items)
	}
	for _, n := range se.storeNotifications(t, "") {
		if n.Status != "processed" {
			t.Fatalf("inbox = %+v", se.storeNotifications(t, ""))
		}
	}
	se.assertAuditOK(t)
}
