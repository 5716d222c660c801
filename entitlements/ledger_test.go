package entitlements_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type staticCatalog struct{ snap *catalog.Snapshot }

func (s staticCatalog) Current() *catalog.Snapshot { return s.snap }

var (
	past   = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	past2  = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	future = time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)
)

func fixtureCatalog(t testing.TB) *catalog.Snapshot {
	t.Helper()
	c := &catalog.Catalog{
		Currencies: []catalog.Currency{{ID: "gold", Name: "Gold"}, {ID: "gems", Name: "Gems"}},
		Items: []catalog.Item{
			{ID: "sword", Name: "Sword", Kind: catalog.KindDurable, Prices: []catalog.Price{{Currency: "gold", Amount: 500}, {Currency: "gems", Amount: 5}}},
			{ID: "potion", Name: "Potion", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gold", Amount: 100}}},
			{ID: "elixir", Name: "Elixir", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gold", Amount: 10}}, MaxPerPlayer: 3},
			{ID: "old-hat", Name: "Old Hat", Kind: catalog.KindDurable, Prices: []catalog.Price{{Currency: "gold", Amount: 1}}, AvailableFrom: &past, AvailableUntil: &past2},
			{ID: "vip", Name: "VIP Pass", Kind: catalog.KindDurable, Prices: []catalog.Price{{Currency: "gems", Amount: 1000}}},
			{ID: "pricey", Name: "Pricey", Kind: catalog.KindConsumable, Prices: []catalog.Price{{Currency: "gems", Amount: catalog.MaxAmount}}},
		},
		Bundles: []catalog.Bundle{{
			ID: "starter", Name: "Starter Pack", Prices: []catalog.Price{{Currency: "gems", Amount: 50}},
			Contents:       catalog.Grants{Items: map[string]int64{"sword": 1, "potion": 5}, Currencies: map[string]int64{"gold": 1000}},
			AvailableUntil: &future,
		}},
		StoreProducts: []catalog.StoreProduct{
			{Store: "apple", ProductID: "com.example.gems100", Grants: catalog.Grants{Currencies: map[string]int64{"gems": 100}}},
			{Store: "apple", ProductID: "com.example.sword", Grants: catalog.Grants{Items: map[string]int64{"sword": 1}}},
			{Store: "apple", ProductID: "com.example.vip.monthly", Grants: catalog.Grants{Items: map[string]int64{"vip": 1}, Currencies: map[string]int64{"gems": 10}}},
			{Store: "google", ProductID: "gems_100", Grants: catalog.Grants{Currencies: map[string]int64{"gems": 100}}},
		},
	}
	snap, err := catalog.NewSnapshot(1, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

func newLedger(t testing.TB, opts ...entitlements.Option) (*entitlements.Ledger, *pgxpool.Pool) {
	t.Helper()
	pool, _ := testenv.NewPool(t)
	return entitlements.New(pool, staticCatalog{fixtureCatalog(t)}, opts...), pool
}

func fund(t testing.TB, l *entitlements.Ledger, player string, currencies map[string]int64) {
	t.Helper()
	_, err := l.Grant(context.Background(), entitlements.GrantRequest{
		PlayerID: player, IdempotencyKey: fmt.Sprintf("fund-%s-%d", player, time.Now().UnixNano()),
		Reason: "test funding", Currencies: currencies,
	})
	if err != nil {
		t.Fatalf("fund %s: %v", player, err)
	}
}

func holdings(t testing.TB, l *entitlements.Ledger, player string) entitlements.Holdings {
	t.Helper()
	h, err := l.Holdings(context.Background(), player)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func assertAuditOK(t testing.TB, l *entitlements.Ledger) {
	t.Helper()
	checks, err := l.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if !c.OK {
			t.Errorf("audit %s failed: %s", c.Name, c.Detail)
		}
	}
}

func buy(l *entitlements.Ledger, player, key, item string, qty int64, currency string, amount int64) (entitlements.Outcome, error) {
	return l.Purchase(context.Background(), entitlements.PurchaseRequest{
		PlayerID: player, IdempotencyKey: key, ItemID: item, Quantity: qty,
		Price: catalog.Price{Currency: currency, Amount: amount},
	})
}

func rejectionCode(err error) entitlements.Code {
	var r *entitlements.Rejection
	if errors.As(err, &r) {
		return r.Code
	}
	return ""
}

func TestPurchaseChargesAndGrantsOnce(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	out, err := buy(l, "p1", "k1", "potion", 3, "gold", 100)
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		PurchaseID   string           `json:"purchase_id"`
		ItemID       string           `json:"item_id"`
		Quantity     int64            `json:"quantity"`
		Price        catalog.Price    `json:"price"`
		Balances     map[string]int64 `json:"balances"`
		Entitlements []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	}
	if err := json.Unmarshal(out.Body, &body); err != nil {
		t.Fatal(err)
	}
	if body.PurchaseID == "" || body.ItemID != "potion" || body.Quantity != 3 || body.Price.Amount != 100 {
		t.Errorf("body = %s", out.Body)
	}
	if body.Balances["gold"] != 700 || body.Balances["gems"] != 0 {
		t.Errorf("balances = %v, want gold 700 gems 0", body.Balances)
	}
	if len(body.Entitlements) != 1 || body.Entitlements[0].ItemID != "potion" || body.Entitlements[0].Quantity != 3 {
		t.Errorf("entitlements = %+v", body.Entitlements)
	}
	h := holdings(t, l, "p1")
	if h.Currencies["gold"] != 700 || h.Items["potion"] != 3 || h.Version != out.Version {
		t.Errorf("holdings = %+v, outcome version %d", h, out.Version)
	}
	txs, _, err := l.History(context.Background(), "p1", 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(txs) != 2 || txs[0].Kind != entitlements.KindPurchase || txs[0].Reference != body.PurchaseID || len(txs[0].Entries) != 4 {
		t.Fatalf("history = %+v", txs)
	}
	assertAuditOK(t, l)
}

// The acceptance test: 200 concurrent purchases of a 100-gold
// consumable by one player holding 5,000 gold.
func TestConcurrentPurchasesNeverOverspend(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "whale", map[string]int64{"gold": 5000})
	var ok, poor, other atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			_, err := buy(l, "whale", fmt.Sprintf("k-%d", i), "potion", 1, "gold", 100)
			switch {
			case err == nil:
				ok.Add(1)
			case rejectionCode(err) == entitlements.CodeInsufficientFunds:
				poor.Add(1)
			default:
				other.Add(1)
				t.Errorf("purchase %d: %v", i, err)
			}
		}(i)
	}
	close(start)
	wg.Wait()
	if ok.Load() != 50 || poor.Load() != 150 || other.Load() != 0 {
		t.Fatalf("ok=%d insufficient=%d other=%d, want 50/150/0", ok.Load(), poor.Load(), other.Load())
	}
	h := holdings(t, l, "whale")
	if h.Currencies["gold"] != 0 || h.Items["potion"] != 50 {
		t.Fatalf("holdings = %+v, want gold 0, potion 50", h)
	}
	assertAuditOK(t, l)
}

func TestIdempotencyKeyChargesOnceAndReplaysIdentically(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	bodies := make([]string, 25)
	replayed := make([]bool, 25)
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := buy(l, "p1", "same-key", "potion", 2, "gold", 100)
			if err != nil {
				t.Errorf("concurrent %d: %v", i, err)
				return
			}
			bodies[i], replayed[i] = string(out.Body), out.Replayed
		}(i)
	}
	wg.Wait()
	for i := 20; i < 25; i++ {
		out, err := buy(l, "p1", "same-key", "potion", 2, "gold", 100)
		if err != nil {
			t.Fatalf("sequential %d: %v", i, err)
		}
		bodies[i], replayed[i] = string(out.Body), out.Replayed
	}
	firsts := 0
	for i := range bodies {
		if bodies[i] != bodies[0] {
			t.Errorf("body %d differs:\n%s\n%s", i, bodies[i], bodies[0])
		}
		if !replayed[i] {
			firsts++
		}
	}
	if firsts != 1 {
		t.Errorf("%d responses were not replays, want exactly 1", firsts)
	}
	h := holdings(t, l, "p1")
	if h.Currencies["gold"] != 800 || h.Items["potion"] != 2 {
		t.Errorf("holdings = %+v, want one charge: gold 800, potion 2", h)
	}
	assertAuditOK(t, l)
}

func TestIdempotencyKeyReusedWithAnotherRequest(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	if _, err := buy(l, "p1", "k", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	_, err := buy(l, "p1", "k", "potion", 2, "gold", 100)
	if !errors.Is(err, entitlements.ErrIdempotencyKeyReused) {
		t.Fatalf("err = %v, want ErrIdempotencyKeyReused", err)
	}
	// Keys are scoped to the player: another player's identical key is theirs.
	fund(t, l, "p2", map[string]int64{"gold": 1000})
	if out, err := buy(l, "p2", "k", "potion", 2, "gold", 100); err != nil || out.Replayed {
		t.Fatalf("p2 with p1's key: replayed=%v err=%v", out.Replayed, err)
	}
	// And to the route: a grant with the same key is a different request.
	if _, err := l.Grant(context.Background(), entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "k", Reason: "r", Currencies: map[string]int64{"gold": 1}}); err != nil {
		t.Fatalf("grant with a purchase's key: %v", err)
	}
	if h := holdings(t, l, "p1"); h.Currencies["gold"] != 901 {
		t.Errorf("p1 gold = %d, want 901", h.Currencies["gold"])
	}
}

func TestIdempotencyKeyInUseWhileFirstRequestRuns(t *testing.T) {
	l, pool := newLedger(t, entitlements.WithKeyWait(100*time.Millisecond))
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	ctx := context.Background()
	// Simulate a first request still in flight: its transaction has claimed the key.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (player_id, scope, key, fingerprint, outcome, response)
		VALUES ('p1', $1, 'busy', '\x00', 'pending', '{}')`, entitlements.ScopePurchase); err != nil {
		t.Fatal(err)
	}
	_, err = buy(l, "p1", "busy", "potion", 1, "gold", 100)
	if !errors.Is(err, entitlements.ErrIdempotencyKeyInUse) {
		t.Fatalf("err = %v, want ErrIdempotencyKeyInUse", err)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	// The first request failed, so the key is free again.
	if _, err := buy(l, "p1", "busy", "potion", 1, "gold", 100); err != nil {
		t.Fatalf("after the first request rolled back: %v", err)
	}
}

func TestRejectionsAreStoredAndReplayed(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 1000, "gems": 100})
	if _, err := buy(l, "p1", "own-sword", "sword", 1, "gold", 500); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3} {
		if _, err := buy(l, "p1", fmt.Sprintf("elixir-%d", n), "elixir", 1, "gold", 10); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name     string
		item     string
		qty      int64
		currency string
		amount   int64
		want     entitlements.Code
		detail   string
	}{
		{"unknown item", "nope", 1, "gold", 1, entitlements.CodeItemNotFound, `"item_id":"nope"`},
		{"outside its window", "old-hat", 1, "gold", 1, entitlements.CodeItemUnavailable, `"available_until":"2021-01-01T00:00:00Z"`},
		{"stale price", "potion", 1, "gold", 90, entitlements.CodePriceMismatch, `"prices":[{"currency":"gold","amount":100}]`},
		{"currency the item is not sold in", "potion", 1, "gems", 100, entitlements.CodeCurrencyNotOffered, `"currency":"gems"`},
		{"durable already owned", "sword", 1, "gems", 5, entitlements.CodeAlreadyOwned, `"held":1`},
		{"durable bought twice at once", "sword", 2, "gems", 5, entitlements.CodeLimitExceeded, `"max":1`},
		{"bundle holding an owned durable", "starter", 1, "gems", 50, entitlements.CodeAlreadyOwned, `"asset_id":"sword"`},
		{"over max_per_player", "elixir", 1, "gold", 10, entitlements.CodeLimitExceeded, `"max":3`},
		{"not enough gold", "potion", 10, "gold", 100, entitlements.CodeInsufficientFunds, `"required":1000`},
		{"price times quantity beyond any balance", "pricey", 1000, "gems", catalog.MaxAmount, entitlements.CodeInsufficientFunds, `"balance":100`},
	}
	before := holdings(t, l, "p1")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := fmt.Sprintf("reject-%d", i)
			_, err := buy(l, "p1", key, tt.item, tt.qty, tt.currency, tt.amount)
			var r *entitlements.Rejection
			if !errors.As(err, &r) || r.Code != tt.want {
				t.Fatalf("err = %v, want rejection %s", err, tt.want)
			}
			if r.Replayed || !json.Valid(r.Detail) || !containsJSON(r.Detail, tt.detail) {
				t.Errorf("replayed=%v detail=%s, want it to contain %s", r.Replayed, r.Detail, tt.detail)
			}
			_, err = buy(l, "p1", key, tt.item, tt.qty, tt.currency, tt.amount)
			var again *entitlements.Rejection
			if !errors.As(err, &again) || again.Code != tt.want || !again.Replayed || string(again.Detail) != string(r.Detail) {
				t.Fatalf("retry: err = %v (replayed %v), want the stored %s replayed", err, again != nil && again.Replayed, tt.want)
			}
		})
	}
	after := holdings(t, l, "p1")
	if fmt.Sprint(before.Currencies, before.Items) != fmt.Sprint(after.Currencies, after.Items) {
		t.Errorf("rejections changed holdings: %v → %v", before, after)
	}
	assertAuditOK(t, l)
}

// containsJSON looks for a fragment of the body as the writer encodes it
// (encoding/json: compact, map keys sorted, struct fields in order).
func containsJSON(b []byte, s string) bool { return len(s) == 0 || jsonContains(string(b), s) }

func jsonContains(haystack, needle string) bool {
	for i := 0; i+len(needle) <= len(haystack); i++ {
		if haystack[i:i+len(needle)] == needle {
			return true
		}
	}
	return false
}

func TestStoredOutcomeWinsOverLaterCatalogChanges(t *testing.T) {
	pool, _ := testenv.NewPool(t)
	snap := fixtureCatalog(t)
	src := &swappableCatalog{}
	src.snap.Store(snap)
	l := entitlements.New(pool, src)
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	first, err := buy(l, "p1", "k", "potion", 1, "gold", 100)
	if err != nil {
		t.Fatal(err)
	}
	// The potion's price changes after the purchase; the retry must still
	// replay the success rather than answer price_mismatch.
	c := *snap.Catalog
	c.Items = append([]catalog.Item(nil), c.Items...)
	c.Items[1].Prices = []catalog.Price{{Currency: "gold", Amount: 150}}
	next, err := catalog.NewSnapshot(2, time.Now(), &c)
	if err != nil {
		t.Fatal(err)
	}
	src.snap.Store(next)
	again, err := buy(l, "p1", "k", "potion", 1, "gold", 100)
	if err != nil || !again.Replayed || string(again.Body) != string(first.Body) {
		t.Fatalf("retry after a price change: replayed=%v err=%v", again.Replayed, err)
	}
}

type swappableCatalog struct {
	snap atomic.Pointer[catalog.Snapshot]
}

func (s *swappableCatalog) Current() *catalog.Snapshot { return s.snap.Load() }

func TestBundleGrantsContentsAtomically(t *testing.T) {
	l, _ := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gems": 120})
	out, err := buy(l, "p1", "b1", "starter", 2, "gems", 50)
	if err == nil || rejectionCode(err) != entitlements.CodeAlreadyOwned {
		// Two starter packs would grant two swords, a durable.
		t.Fatalf("two starter packs: out=%s err=%v, want already_owned", out.Body, err)
	}
	out, err = buy(l, "p1", "b2", "starter", 1, "gems", 50)
	if err != nil {
		t.Fatal(err)
	}
	h := holdings(t, l, "p1")
	if h.Currencies["gems"] != 70 || h.Currencies["gold"] != 1000 || h.Items["sword"] != 1 || h.Items["potion"] != 5 {
		t.Fatalf("holdings = %+v", h)
	}
	var body struct {
		Entitlements []struct {
			ItemID   string `json:"item_id"`
			Quantity int64  `json:"quantity"`
		} `json:"entitlements"`
	}
	_ = json.Unmarshal(out.Body, &body)
	if fmt.Sprint(body.Entitlements) != "[{potion 5} {sword 1}]" {
		t.Errorf("entitlements in response = %v", body.Entitlements)
	}
	assertAuditOK(t, l)
}

func TestInvalidRequestsAreRefusedBeforeTheDatabase(t *testing.T) {
	l, _ := newLedger(t)
	long := make([]byte, 129)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name  string
		req   entitlements.PurchaseRequest
		field string
	}{
		{"no player", entitlements.PurchaseRequest{IdempotencyKey: "k", ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "player_id"},
		{"player id too long", entitlements.PurchaseRequest{PlayerID: string(long), IdempotencyKey: "k", ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "player_id"},
		{"player id with a space", entitlements.PurchaseRequest{PlayerID: "a b", IdempotencyKey: "k", ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "player_id"},
		{"no key", entitlements.PurchaseRequest{PlayerID: "p", ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "Idempotency-Key"},
		{"no item", entitlements.PurchaseRequest{PlayerID: "p", IdempotencyKey: "k", Quantity: 1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "item_id"},
		{"zero quantity", entitlements.PurchaseRequest{PlayerID: "p", IdempotencyKey: "k", ItemID: "potion", Price: catalog.Price{Currency: "gold", Amount: 100}}, "quantity"},
		{"negative quantity", entitlements.PurchaseRequest{PlayerID: "p", IdempotencyKey: "k", ItemID: "potion", Quantity: -1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "quantity"},
		{"quantity above the maximum", entitlements.PurchaseRequest{PlayerID: "p", IdempotencyKey: "k", ItemID: "potion", Quantity: entitlements.MaxQuantity + 1, Price: catalog.Price{Currency: "gold", Amount: 100}}, "quantity"},
		{"no currency", entitlements.PurchaseRequest{PlayerID: "p", IdempotencyKey: "k", ItemID: "potion", Quantity: 1, Price: catalog.Price{Amount: 100}}, "price.currency"},
		{"zero amount", entitlements.PurchaseRequest{PlayerID: "p", IdempotencyKey: "k", ItemID: "potion", Quantity: 1, Price: catalog.Price{Currency: "gold"}}, "price.amount"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := l.Purchase(context.Background(), tt.req)
			var inv *entitlements.InvalidError
			if !errors.As(err, &inv) || inv.Field != tt.field {
				t.Fatalf("err = %v, want InvalidError on %s", err, tt.field)
			}
		})
	}
}

func TestGrant(t *testing.T) {
	l, _ := newLedger(t)
	ctx := context.Background()
	out, err := l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g1", Reason: "compensation",
		Currencies: map[string]int64{"gold": 1000}, Items: map[string]int64{"sword": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if !jsonContains(string(out.Body), `"balances":{"gems":0,"gold":1000}`) || !jsonContains(string(out.Body), `{"item_id":"sword","quantity":1}`) {
		t.Errorf("body = %s", out.Body)
	}
	_, err = l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g2", Reason: "again", Items: map[string]int64{"sword": 1}})
	if rejectionCode(err) != entitlements.CodeAlreadyOwned {
		t.Errorf("second sword: %v, want already_owned", err)
	}
	_, err = l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g3", Reason: "typo", Currencies: map[string]int64{"gld": 1}})
	if rejectionCode(err) != entitlements.CodeItemNotFound {
		t.Errorf("unknown currency: %v, want item_not_found", err)
	}
	for name, req := range map[string]entitlements.GrantRequest{
		"no reason":       {PlayerID: "p1", IdempotencyKey: "g4", Currencies: map[string]int64{"gold": 1}},
		"nothing granted": {PlayerID: "p1", IdempotencyKey: "g5", Reason: "r"},
		"negative amount": {PlayerID: "p1", IdempotencyKey: "g6", Reason: "r", Currencies: map[string]int64{"gold": -5}},
		"huge amount":     {PlayerID: "p1", IdempotencyKey: "g7", Reason: "r", Currencies: map[string]int64{"gold": catalog.MaxAmount + 1}},
	} {
		var inv *entitlements.InvalidError
		if _, err := l.Grant(ctx, req); !errors.As(err, &inv) {
			t.Errorf("%s: err = %v, want InvalidError", name, err)
		}
	}
	if h := holdings(t, l, "p1"); h.Currencies["gold"] != 1000 || h.Items["sword"] != 1 {
		t.Errorf("holdings = %+v", h)
	}
	assertAuditOK(t, l)
}

func TestBalancesCannotOverflow(t *testing.T) {
	l, pool := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 1})
	// Put the balance at the edge directly, with a matching ledger entry, to
	// test the database's overflow guard rather than the request limits.
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `UPDATE balances SET quantity = 9223372036854775800 WHERE player_id = 'p1' AND asset_id = 'gold'`); err != nil {
		t.Fatal(err)
	}
	_, err := l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "edge", Reason: "r", Currencies: map[string]int64{"gold": 100}})
	if rejectionCode(err) != entitlements.CodeLimitExceeded {
		t.Fatalf("err = %v, want limit_exceeded", err)
	}
}

func TestDatabaseRefusesNegativeAndUnbalancedWrites(t *testing.T) {
	l, pool := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 10})
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `UPDATE balances SET quantity = -1 WHERE player_id = 'p1'`); err == nil {
		t.Error("a negative balance was accepted")
	}
	// An unbalanced ledger transaction fails at commit.
	_, err := pool.Exec(ctx, `WITH t AS (INSERT INTO ledger_transactions (player_id, kind, reference) VALUES ('p1', 'x', 'x') RETURNING id)
		INSERT INTO ledger_entries (transaction_id, account, asset_type, asset_id, amount) SELECT id, 'player:p1', 'currency', 'gold', 5 FROM t`)
	if err == nil {
		t.Error("an unbalanced ledger transaction was committed")
	}
	if _, err := pool.Exec(ctx, `UPDATE ledger_entries SET amount = amount * 2`); err == nil {
		t.Error("a ledger entry was rewritten")
	}
	if _, err := pool.Exec(ctx, `DELETE FROM ledger_transactions`); err == nil {
		t.Error("ledger transactions were deleted")
	}
	assertAuditOK(t, l)
}

func TestAuditFindsABalanceThatDisagreesWithTheLedger(t *testing.T) {
	l, pool := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 10})
	if _, err := pool.Exec(context.Background(), `UPDATE balances SET quantity = 11 WHERE player_id = 'p1'`); err != nil {
		t.Fatal(err)
	}
	checks, err := l.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range checks {
		if c.Name == "balances_match_ledger" && c.OK {
			t.Fatal("audit missed a balance of 11 against a ledger sum of 10")
		}
	}
}

func TestHistoryPages(t *testing.T) {
	l, _ := newLedger(t)
	for i := 0; i < 5; i++ {
		fund(t, l, "p1", map[string]int64{"gold": int64(i + 1)})
	}
	var seen []int64
	before := int64(0)
	for {
		txs, next, err := l.History(context.Background(), "p1", before, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			seen = append(seen, tx.ID)
		}
		if next == 0 {
			break
		}
		before = next
	}
	if len(seen) != 5 {
		t.Fatalf("paged through %d transactions, want 5: %v", len(seen), seen)
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Fatalf("not newest first: %v", seen)
		}
	}
}

func TestPurgeIdempotencyKeys(t *testing.T) {
	l, pool := newLedger(t)
	fund(t, l, "p1", map[string]int64{"gold": 1000})
	if _, err := buy(l, "p1", "old", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := buy(l, "p1", "new", "potion", 1, "gold", 100); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(context.Background(), `UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = 'old'`); err != nil {
		t.Fatal(err)
	}
	n, err := l.PurgeIdempotencyKeys(context.Background(), 24*time.Hour)
	if err != nil || n != 1 {
		t.Fatalf("purged %d, %v; want 1", n, err)
	}
	var oldLeft, newLeft bool
	err = pool.QueryRow(context.Background(), `SELECT
		EXISTS (SELECT 1 FROM idempotency_keys WHERE key = 'old'),
		EXISTS (SELECT 1 FROM idempotency_keys WHERE key = 'new')`).Scan(&oldLeft, &newLeft)
	if err != nil || oldLeft || !newLeft {
		t.Errorf("old key kept = %v, new key kept = %v (%v); want false, true", oldLeft, newLeft, err)
	}
}

// BenchmarkPurchase measures one purchase against real Postgres, each with a
// fresh idempotency key, spread over many players as in production.
func BenchmarkPurchase(b *testing.B) {
	l, _ := newLedger(b)
	const players = 64
	for i := 0; i < players; i++ {
		fund(b, l, fmt.Sprintf("bench-%d", i), map[string]int64{"gold": catalog.MaxAmount})
	}
	var n atomic.Int64
	// Many requests in flight, as behind a busy server: commits share WAL
	// flushes, which is where a single stream spends its time.
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			if _, err := buy(l, fmt.Sprintf("bench-%d", i%players), fmt.Sprintf("bk-%d", i), "potion", 1, "gold", 100); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func TestGrantsAreAuditedInTheirTransaction(t *testing.T) {
	l, pool := newLedger(t)
	ctx := context.Background()
	req := entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g1", Reason: "ticket 42", Actor: "key:alice",
		RequestID: "req-1", Currencies: map[string]int64{"gold": 5}}
	for i := 0; i < 3; i++ { // retries are replays: audited once
		if _, err := l.Grant(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	_, err := l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g2", Reason: "again", Actor: "key:alice", Items: map[string]int64{"sword": 1}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g3", Reason: "dup", Actor: "key:alice", Items: map[string]int64{"sword": 1}})
	if rejectionCode(err) != entitlements.CodeAlreadyOwned {
		t.Fatalf("second sword: %v", err)
	}
	// The rejection was stored: its retry replays it.
	_, err = l.Grant(ctx, entitlements.GrantRequest{PlayerID: "p1", IdempotencyKey: "g3", Reason: "dup", Actor: "key:alice", Items: map[string]int64{"sword": 1}})
	var r *entitlements.Rejection
	if !errors.As(err, &r) || !r.Replayed {
		t.Fatalf("retry of a rejected grant: %v", err)
	}
	var n int
	var actor, target, requestID string
	if err := pool.QueryRow(ctx, `SELECT count(*), min(actor), min(target), max(request_id) FROM audit_log WHERE action = 'player.grant'`).Scan(&n, &actor, &target, &requestID); err != nil {
		t.Fatal(err)
	}
	if n != 2 || actor != "key:alice" || target != "players/p1" || requestID != "req-1" {
		t.Fatalf("audit rows = %d (%s %s %s), want 2 grants by key:alice on players/p1", n, actor, target, requestID)
	}
}
