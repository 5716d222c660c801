package entitlements_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/migrations"
)

// lastReleaseMigration is the schema the release before the Go writer ran
// on: its coinop_post stored every answer as jsonb.
const lastReleaseMigration = 7

// TestKeysStoredBeforeTheUpgradeReplayByteForByte stores a purchase, a
// rejection, a grant and a store redemption the way the previous release
// did (its coinop_post, on its schema), upgrades the schema, and replays
// each through the new writer: the bytes must be the ones the previous
// release answered.
func TestKeysStoredBeforeTheUpgradeReplayByteForByte(t *testing.T) {
	ctx := context.Background()
	dbURL := emptyDatabase(t)
	if err := migrations.UpTo(ctx, dbURL, lastReleaseMigration); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	oldPost := func(player, scope, key string, fingerprint []byte, kind, account string, changes, result any) (string, []byte) {
		t.Helper()
		ch, _ := json.Marshal(changes)
		res, _ := json.Marshal(result)
		var outcome string
		var response []byte
		err := pool.QueryRow(ctx, `SELECT outcome, response FROM coinop_post($1, $2, $3, $4, $5, $6, $7, NULL, NULL, $8, $9, $10, '{}', '5 seconds')`,
			player, scope, key, fingerprint, kind, "ref-"+key, account, ch, []string{"gold", "gems"}, res).Scan(&outcome, &response)
		if err != nil {
			t.Fatalf("old coinop_post %s: %v", key, err)
		}
		return outcome, response
	}
	type change struct {
		Type  string `json:"type"`
		ID    string `json:"id"`
		Delta int64  `json:"delta"`
	}

	// A grant, exactly as the previous release's Grant sent it.
	grantFP := fingerprint(t, struct {
		Reason     string           `json:"reason"`
		Currencies map[string]int64 `json:"currencies"`
		Items      map[string]int64 `json:"items"`
	}{"welcome", map[string]int64{"gold": 150}, nil})
	if out, _ := oldPost("p1", entitlements.ScopeAdminGrant, "grant-1", grantFP, entitlements.KindAdminGrant, entitlements.AccountAdminGrants,
		[]change{{"currency", "gold", 150}}, map[string]any{"grant_id": "g-1", "player_id": "p1", "reason": "welcome"}); out != "ok" {
		t.Fatalf("old grant: %s", out)
	}
	// A purchase, and a second one the balance no longer covers.
	potionFP := fingerprint(t, struct {
		ItemID   string        `json:"item_id"`
		Quantity int64         `json:"quantity"`
		Price    catalog.Price `json:"price"`
	}{"potion", 1, catalog.Price{Currency: "gold", Amount: 100}})
	outcome, oldPurchase := oldPost("p1", entitlements.ScopePurchase, "buy-1", potionFP, entitlements.KindPurchase, entitlements.AccountPurchases,
		[]change{{"currency", "gold", -100}, {"item", "potion", 1}},
		map[string]any{"purchase_id": "pu-1", "item_id": "potion", "quantity": 1, "price": catalog.Price{Currency: "gold", Amount: 100}})
	if outcome != "ok" {
		t.Fatalf("old purchase: %s", outcome)
	}
	outcome, oldRejection := oldPost("p1", entitlements.ScopePurchase, "buy-2", potionFP, entitlements.KindPurchase, entitlements.AccountPurchases,
		[]change{{"currency", "gold", -100}, {"item", "potion", 1}},
		map[string]any{"purchase_id": "pu-2", "item_id": "potion", "quantity": 1, "price": catalog.Price{Currency: "gold", Amount: 100}})
	if outcome != string(entitlements.CodeInsufficientFunds) {
		t.Fatalf("old second purchase: %s, want insufficient_funds", outcome)
	}
	// A store redemption: the previous release kept coinop_post's answer in
	// store_purchases.response.
	storeKey := "apple:tx-1"
	sum := sha256.Sum256([]byte(storeKey))
	_, oldRedeem := oldPost("p1", "store", storeKey, sum[:], entitlements.KindStorePurchase, "system:store_apple",
		[]change{{"currency", "gems", 100}},
		map[string]any{"purchase_id": "pu-3", "store": "apple", "transaction_id": "tx-1", "product_id": "com.example.gems100", "quantity": 1})
	if _, err := pool.Exec(ctx, `INSERT INTO store_purchases (store, transaction_id, player_id, product_id, environment, quantity, purchased_at, response)
		VALUES ('apple', 'tx-1', 'p1', 'com.example.gems100', 'Production', 1, now(), $1)`, oldRedeem); err != nil {
		t.Fatal(err)
	}
	// The jsonb text the previous release answered is not what Go would
	// encode, so byte equality below means the stored bytes were replayed.
	if !bytes.Contains(oldPurchase, []byte(`": `)) {
		t.Fatalf("old answer %s is not jsonb text", oldPurchase)
	}

	pool.Close()
	if err := migrations.Up(ctx, dbURL); err != nil {
		t.Fatalf("upgrade: %v", err)
	}
	pool, err = pgxpool.New(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	l := entitlements.New(pool, staticCatalog{fixtureCatalog(t)})

	out, err := buy(l, "p1", "buy-1", "potion", 1, "gold", 100)
	if err != nil || !out.Replayed || !bytes.Equal(out.Body, oldPurchase) {
		t.Errorf("purchase replay: %v replayed=%v\n got %s\nwant %s", err, out.Replayed, out.Body, oldPurchase)
	}
	_, err = buy(l, "p1", "buy-2", "potion", 1, "gold", 100)
	var r *entitlements.Rejection
	if !errors.As(err, &r) || r.Code != entitlements.CodeInsufficientFunds || !r.Replayed || !bytes.Equal(r.Detail, oldRejection) {
		t.Errorf("rejection replay: %v\n got %s\nwant %s", err, detailOf(r), oldRejection)
	}
	out, err = l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "grant-1", Reason: "welcome",
		Currencies: map[string]int64{"gold": 150}})
	if err != nil || !out.Replayed {
		t.Errorf("grant replay: %v replayed=%v", err, out.Replayed)
	}
	red, err := l.Redeem(ctx, "p1", entitlements.StorePurchase{Store: "apple", Environment: "Production", TransactionID: "tx-1",
		ProductID: "com.example.gems100", Quantity: 1, PurchasedAt: time.Now()})
	if err != nil || !red.Replayed || !bytes.Equal(red.Body, oldRedeem) {
		t.Errorf("redemption replay: %v replayed=%v\n got %s\nwant %s", err, red.Replayed, red.Body, oldRedeem)
	}
	// Nothing was applied twice, and new postings go on from the old state.
	h := holdings(t, l, "p1")
	if h.Currencies["gold"] != 50 || h.Currencies["gems"] != 100 || h.Items["potion"] != 1 {
		t.Errorf("holdings after the replays %+v, want 50 gold, 100 gems, 1 potion", h)
	}
	if _, err := buy(l, "p1", "buy-3", "potion", 1, "gold", 100); rejectionCode(err) != entitlements.CodeInsufficientFunds {
		t.Errorf("a new purchase after the upgrade: %v, want insufficient_funds", err)
	}
	assertAuditOK(t, l)
}

func detailOf(r *entitlements.Rejection) []byte {
	if r == nil {
		return nil
	}
	return r.Detail
}

func fingerprint(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return sum[:]
}

// emptyDatabase creates a database with no migrations applied, dropped when
// the test ends.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("coinop_t_%d_upgrade%d", time.Now().Unix(), rand.Uint32()) // testenv's naming, so a leftover is dropped as stale
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), testenv.AdminURL(t))
		if err != nil {
			t.Error(err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(testenv.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}
