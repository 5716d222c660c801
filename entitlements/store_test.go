package entitlements_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

func applePurchase(tx, product string) entitlements.StorePurchase {
	return entitlements.StorePurchase{Store: "apple", Environment: "production", TransactionID: tx,
		OriginalTransactionID: tx, ProductID: product, Quantity: 1, PurchasedAt: time.Now()}
}

func TestRedeemGrantsOncePerTransaction(t *testing.T) {
	l, _ := newLedger(t)
	var granted, replayed atomic.Int64
	var wg sync.WaitGroup
	bodies := make([]string, 50)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := l.Redeem(context.Background(), "p1", applePurchase("tx-1", "com.example.gems100"))
			if err != nil {
				t.Errorf("redeem %d: %v", i, err)
				return
			}
			bodies[i] = string(out.Body)
			if out.Replayed {
				replayed.Add(1)
			} else {
				granted.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if granted.Load() != 1 || replayed.Load() != 49 {
		t.Fatalf("granted %d, replayed %d; want 1 and 49", granted.Load(), replayed.Load())
	}
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Fatalf("replay %d differs: %s vs %s", i, bodies[i], bodies[0])
		}
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 100 {
		t.Fatalf("gems = %d, want 100", h.Currencies["gems"])
	}
	assertAuditOK(t, l)
}

func TestRedeemByTwoPlayersGrantsOnce(t *testing.T) {
	l, _ := newLedger(t)
	var ok, owned atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			player := fmt.Sprintf("p%d", i%2)
			out, err := l.Redeem(context.Background(), player, applePurchase("tx-shared", "com.example.gems100"))
			switch {
			case errors.Is(err, entitlements.ErrReceiptOwnedByAnotherPlayer):
				owned.Add(1)
			case err == nil:
				if !out.Replayed {
					ok.Add(1)
				}
			default:
				t.Errorf("redeem: %v", err)
			}
		}(i)
	}
	wg.Wait()
	gems := holdings(t, l, "p0").Currencies["gems"] + holdings(t, l, "p1").Currencies["gems"]
	if ok.Load() != 1 || owned.Load() != 25 || gems != 100 {
		t.Fatalf("granted %d, refused %d, gems in total %d; want 1, 25, 100", ok.Load(), owned.Load(), gems)
	}
	assertAuditOK(t, l)
}

func TestRedeemRefusesUnknownProductsAndDoesNotDuplicateDurables(t *testing.T) {
	l, _ := newLedger(t)
	if _, err := l.Redeem(context.Background(), "p1", applePurchase("tx-x", "com.example.unknown")); !errors.Is(err, entitlements.ErrUnknownStoreProduct) {
		t.Fatalf("unknown product: %v", err)
	}
	if _, err := l.Grant(context.Background(), entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g", Reason: "r", Items: map[string]int64{"sword": 1}}); err != nil {
		t.Fatal(err)
	}
	// Paid for, so never refused; but a durable is not owned twice.
	out, err := l.Redeem(context.Background(), "p1", applePurchase("tx-sword", "com.example.sword"))
	if err != nil || out.Replayed {
		t.Fatalf("redeem an owned durable: %v", err)
	}
	if h := holdings(t, l, "p1"); h.Items["sword"] != 1 {
		t.Fatalf("swords = %d, want 1", h.Items["sword"])
	}
	assertAuditOK(t, l)
}

func TestRefundReversesOnceWithClawbackPolicies(t *testing.T) {
	for _, tt := range []struct {
		policy    entitlements.ClawbackPolicy
		spend     bool
		wantGems  int64
		shortfall int64
	}{
		{entitlements.ClawbackClamp, false, 0, 0},
		{entitlements.ClawbackClamp, true, 0, 50},
		{entitlements.ClawbackNegative, true, 0, 50},
		{entitlements.ClawbackFlag, true, 50, 100},
	} {
		t.Run(fmt.Sprintf("%s spent=%v", tt.policy, tt.spend), func(t *testing.T) {
			l, _ := newLedger(t)
			ctx := context.Background()
			if _, err := l.Redeem(ctx, "p1", applePurchase("tx-r", "com.example.gems100")); err != nil {
				t.Fatal(err)
			}
			if tt.spend {
				if _, err := buy(l, "p1", "spend", "starter", 1, "gems", 50); err != nil {
					t.Fatal(err)
				}
			}
			reversals := 0
			for i := 0; i < 3; i++ { // the store delivers the refund three times
				rev, err := l.Revoke(ctx, "apple", "tx-r", "REFUND", tt.policy)
				if err != nil {
					t.Fatal(err)
				}
				if rev.Reversed {
					reversals++
					if rev.Shortfall["gems"] != tt.shortfall {
						t.Errorf("shortfall = %v, want gems %d", rev.Shortfall, tt.shortfall)
					}
				}
			}
			if reversals != 1 {
				t.Fatalf("%d reversals, want 1", reversals)
			}
			if h := holdings(t, l, "p1"); h.Currencies["gems"] != tt.wantGems {
				t.Errorf("gems after refund = %d, want %d", h.Currencies["gems"], tt.wantGems)
			}
			debts, err := l.Debts(ctx, "p1", 10)
			if err != nil {
				t.Fatal(err)
			}
			var owed int64
			for _, d := range debts {
				owed += d.Amount
			}
			if owed != tt.shortfall {
				t.Errorf("debts = %d, want %d", owed, tt.shortfall)
			}
			assertAuditOK(t, l)
		})
	}
	l, _ := newLedger(t)
	if _, err := l.Revoke(context.Background(), "apple", "never", "REFUND", entitlements.ClawbackClamp); !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		t.Fatalf("unknown transaction: %v", err)
	}
}

func TestNotificationInboxDeduplicatesAndRetries(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		dup, err := l.ReceiveNotification(ctx, "apple", "uuid-1", "REFUND", []byte(`{"a":1}`))
		if err != nil || dup != (i > 0) {
			t.Fatalf("delivery %d: duplicate=%v err=%v", i, dup, err)
		}
	}
	claimed, err := l.ClaimNotifications(ctx, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	if again, _ := l.ClaimNotifications(ctx, 10, time.Minute); len(again) != 0 {
		t.Fatalf("a leased notification was handed out again")
	}
	if err := l.FinishNotification(ctx, claimed[0], errors.New("store down")); err != nil {
		t.Fatal(err)
	}
	list, err := l.Notifications(ctx, "pending", 10)
	if err != nil || len(list) != 1 || list[0].LastError != "store down" || list[0].Attempts != 1 {
		t.Fatalf("inbox = %+v, %v", list, err)
	}
	if err := l.FinishNotification(ctx, list[0], nil); err != nil {
		t.Fatal(err)
	}
	if done, _ := l.Notifications(ctx, "processed", 10); len(done) != 1 {
		t.Fatalf("processed = %d, want 1", len(done))
	}
}

func TestSubscriptionsHoldUntilTheyExpire(t *testing.T) {
	forEachRedis(t, func(t *testing.T, rdb redis.UniversalClient, prefix string) {
		pool, _ := testenv.NewPool(t)
		l, _ := cachedLedger(t, pool, rdb, prefix, entitlements.CacheConfig{})
		ctx := context.Background()
		month := time.Now().Add(30 * 24 * time.Hour).Truncate(time.Second)
		sub := applePurchase("tx-s1", "com.example.vip.monthly")
		sub.OriginalTransactionID, sub.ExpiresAt = "orig-1", &month
		if _, err := l.Redeem(ctx, "p1", sub); err != nil {
			t.Fatal(err)
		}
		h := holdings(t, l, "p1")
		if h.Quantity("vip", time.Now()) != 1 || h.Items["vip"] != 0 || h.Currencies["gems"] != 10 {
			t.Fatalf("after subscribing: %+v", h)
		}
		if ents := h.Entitlements(time.Now()); len(ents) != 1 || ents[0].ExpiresAt == nil || !ents[0].ExpiresAt.Equal(month) {
			t.Fatalf("entitlements = %+v", ents)
		}
		if h.Quantity("vip", month.Add(time.Second)) != 0 {
			t.Error("a subscription held past its expiry")
		}
		// A renewal is a new transaction of the same subscription.
		next := month.Add(30 * 24 * time.Hour)
		renewal := applePurchase("tx-s2", "com.example.vip.monthly")
		renewal.OriginalTransactionID, renewal.ExpiresAt = "orig-1", &next
		if _, err := l.Redeem(ctx, "p1", renewal); err != nil {
			t.Fatal(err)
		}
		if h := holdings(t, l, "p1"); !h.Subscriptions["vip"].Equal(next) || h.Currencies["gems"] != 20 {
			t.Fatalf("after renewal: %+v", h)
		}
		// The store says it expired (billing failed past any grace period).
		if err := l.UpdateSubscription(ctx, "apple", "orig-1", nil, "expired"); err != nil {
			t.Fatal(err)
		}
		if h := holdings(t, l, "p1"); h.Quantity("vip", time.Now()) != 0 {
			t.Fatalf("cached read after expiry still grants vip: %+v", h)
		}
		if err := l.UpdateSubscription(ctx, "apple", "nope", nil, "expired"); !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
			t.Fatalf("unknown subscription: %v", err)
		}
		// A refund of the subscription revokes it even while active.
		if err := l.UpdateSubscription(ctx, "apple", "orig-1", &next, "active"); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Revoke(ctx, "apple", "tx-s2", "REFUND", entitlements.ClawbackClamp); err != nil {
			t.Fatal(err)
		}
		if h := holdings(t, l, "p1"); h.Quantity("vip", time.Now()) != 0 {
			t.Fatalf("after refund: %+v", h)
		}
		assertAuditOK(t, l)
	})
}

func TestARefundBeforeRedemptionBlocksTheRedemption(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	if _, err := l.Revoke(ctx, "apple", "tx-early", "REFUND", entitlements.ClawbackClamp); !errors.Is(err, entitlements.ErrStorePurchaseNotFound) {
		t.Fatalf("revoke unknown: %v", err)
	}
	if _, err := l.Redeem(ctx, "p1", applePurchase("tx-early", "com.example.gems100")); !errors.Is(err, entitlements.ErrStorePurchaseRevoked) {
		t.Fatalf("redeem after refund: %v", err)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 0 {
		t.Fatalf("granted %d gems for a refunded transaction", h.Currencies["gems"])
	}
}

func reviewCatalog(t *testing.T, version int64, elixirMax int64) *catalog.Snapshot {
	c := &catalog.Catalog{
		Currencies: []catalog.Currency{{ID: "gold", Name: "Gold"}, {ID: "gems", Name: "Gems"}},
		Items: []catalog.Item{
			{ID: "elixir", Name: "Elixir", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gold", Amount: 10}}, MaxPerPlayer: elixirMax},
			{ID: "vip", Name: "VIP", Kind: catalog.KindDurable, Prices: []catalog.Price{{Currency: "gems", Amount: 1000}}},
			{ID: "badge", Name: "Badge", Kind: catalog.KindDurable, Prices: []catalog.Price{{Currency: "gems", Amount: 1000}}},
		},
		StoreProducts: []catalog.StoreProduct{
			{Store: "apple", ProductID: "com.example.pack", Grants: catalog.Grants{Currencies: map[string]int64{"gems": 100}, Items: map[string]int64{"elixir": 1}}},
			{Store: "apple", ProductID: "com.example.vipplus", Grants: catalog.Grants{Items: map[string]int64{"vip": 1, "badge": 1}}},
		},
	}
	snap, err := catalog.NewSnapshot(version, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

type swapCat struct{ snap *catalog.Snapshot }

func (s *swapCat) Current() *catalog.Snapshot { return s.snap }

// A player holding more than a since-lowered max_per_player still gets the
// rest of a paid store purchase.
func TestAPaidPurchaseIsNeverRefusedByALoweredLimit(t *testing.T) {
	pool, _ := testenv.NewPool(t)
	cat := &swapCat{reviewCatalog(t, 1, 5)}
	l := entitlements.New(pool, cat)
	if _, err := l.Grant(context.Background(), entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g1", Reason: "x", Items: map[string]int64{"elixir": 5}}); err != nil {
		t.Fatal(err)
	}
	cat.snap = reviewCatalog(t, 2, 3) // designers lower the limit
	p := entitlements.StorePurchase{Store: "apple", Environment: "production", TransactionID: "t1", ProductID: "com.example.pack", Quantity: 1, PurchasedAt: time.Now()}
	_, err := l.Redeem(context.Background(), "p1", p)
	if err != nil {
		t.Fatalf("paid purchase refused: %v", err)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gems"] != 100 || h.Items["elixir"] != 5 {
		t.Errorf("holdings = %+v, want the gems granted and elixirs left at 5", h)
	}
}

// A subscription product that grants two items holds both.
func TestASubscriptionGrantsEveryItem(t *testing.T) {
	pool, _ := testenv.NewPool(t)
	l := entitlements.New(pool, &swapCat{reviewCatalog(t, 1, 5)})
	exp := time.Now().Add(30 * 24 * time.Hour)
	p := entitlements.StorePurchase{Store: "apple", Environment: "production", TransactionID: "s1", OriginalTransactionID: "s1",
		ProductID: "com.example.vipplus", Quantity: 1, PurchasedAt: time.Now(), ExpiresAt: &exp}
	out, err := l.Redeem(context.Background(), "p1", p)
	if err != nil {
		t.Fatal(err)
	}
	h := holdings(t, l, "p1")
	t.Logf("body %s; subscriptions %v", out.Body, h.Subscriptions)
	if len(h.Subscriptions) != 2 {
		t.Errorf("subscription grants %v, want vip and badge", h.Subscriptions)
	}
}
