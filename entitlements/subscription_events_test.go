package entitlements_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/outbox"
)

// subscriptionEvents reads the feed's subscription.<state> events in order.
func subscriptionEvents(t *testing.T, feed *outbox.Feed) ([]string, []entitlements.SubscriptionEvent) {
	t.Helper()
	events, err := feed.Read(context.Background(), 0, outbox.MaxPage, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	var data []entitlements.SubscriptionEvent
	for _, e := range events {
		if !strings.HasPrefix(e.Type, entitlements.SubscriptionPrefix) {
			continue
		}
		var d entitlements.SubscriptionEvent
		if err := json.Unmarshal(e.Data, &d); err != nil {
			t.Fatalf("%s: %v", e.Type, err)
		}
		if e.PlayerID == nil || *e.PlayerID != "p1" {
			t.Errorf("%s names player %v", e.Type, e.PlayerID)
		}
		types, data = append(types, e.Type), append(data, d)
	}
	return types, data
}

// TestSubscriptionChangesWriteOneEventEach: a first purchase, a renewal, an
// expiry, a reinstatement and a refund each write one subscription.<state>
// event in their own transaction; a replayed redemption and a repeated
// notification that changes nothing write none.
func TestSubscriptionChangesWriteOneEventEach(t *testing.T) {
	l, pool := newLedger(t)
	feed := outbox.NewFeed(pool)
	ctx := context.Background()
	month := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second).UTC()
	next := month.Add(30 * 24 * time.Hour)

	sub := applePurchase("tx-s1", "com.example.vip.monthly")
	sub.OriginalTransactionID, sub.ExpiresAt = "orig-1", &month
	for range 2 { // the second is a replay: the same transaction again
		if _, err := l.Redeem(ctx, "p1", sub); err != nil {
			t.Fatal(err)
		}
	}
	renewal := applePurchase("tx-s2", "com.example.vip.monthly")
	renewal.OriginalTransactionID, renewal.ExpiresAt = "orig-1", &next
	if _, err := l.Redeem(ctx, "p1", renewal); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the store repeats its expiry notification
		if err := l.UpdateSubscription(ctx, "apple", "orig-1", nil, "expired"); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.UpdateSubscription(ctx, "apple", "orig-1", &next, "active"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Revoke(ctx, "apple", "tx-s2", "REFUND", entitlements.ClawbackClamp); err != nil {
		t.Fatal(err)
	}

	types, data := subscriptionEvents(t, feed)
	want := []string{"subscription.active", "subscription.active", "subscription.expired", "subscription.active", "subscription.revoked"}
	if strings.Join(types, " ") != strings.Join(want, " ") {
		t.Fatalf("events = %v, want %v", types, want)
	}
	first := data[0]
	if first.Store != "apple" || first.OriginalTransactionID != "orig-1" || first.ProductID != "com.example.vip.monthly" ||
		len(first.Items) != 1 || first.Items[0] != "vip" || !first.ExpiresAt.Equal(month) ||
		first.PreviousState != nil || first.PreviousExpiresAt != nil {
		t.Errorf("first purchase event = %+v", first)
	}
	if r := data[1]; !r.ExpiresAt.Equal(next) || r.PreviousState == nil || *r.PreviousState != "active" ||
		r.PreviousExpiresAt == nil || !r.PreviousExpiresAt.Equal(month) {
		t.Errorf("renewal event = %+v", r)
	}
	if e := data[2]; e.State != "expired" || e.ExpiresAt.After(time.Now()) || e.PreviousExpiresAt == nil || !e.PreviousExpiresAt.Equal(next) {
		t.Errorf("expiry event = %+v", e)
	}
	if r := data[4]; r.State != "revoked" || r.PreviousState == nil || *r.PreviousState != "active" {
		t.Errorf("revocation event = %+v", r)
	}
}
