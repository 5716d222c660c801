package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type receipt struct {
	PurchaseID string `json:"purchase_id"`
	ItemID     string `json:"item_id"`
	Quantity   int64  `json:"quantity"`
	Price      struct {
		Currency string `json:"currency"`
		Amount   int64  `json:"amount"`
	} `json:"price"`
	Balances     map[string]int64 `json:"balances"`
	Entitlements []struct {
		ItemID   string `json:"item_id"`
		Quantity int64  `json:"quantity"`
	} `json:"entitlements"`
}

// TestPurchases buys each kind of thing and checks the receipt, the wallet
// and the entitlements the player then sees.
func TestPurchases(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 1000, "gems": 60}, nil)

	r := e.purchase(t, "p1", "potions", buy("potion", 3, "gold", 100))
	if r.status != http.StatusCreated || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("potions: %s", r)
	}
	var got receipt
	r.decode(t, &got)
	if got.PurchaseID == "" || got.ItemID != "potion" || got.Quantity != 3 || got.Price.Currency != "gold" || got.Price.Amount != 100 ||
		fmt.Sprint(got.Balances) != "map[gems:60 gold:700]" || fmt.Sprint(got.Entitlements) != "[{potion 3}]" {
		t.Errorf("potion receipt = %s", r.body)
	}
	if fields := keys(r.object(t)); fields != "balances entitlements item_id price purchase_id quantity" {
		t.Errorf("receipt fields = %s", fields)
	}

	r = e.purchase(t, "p1", "sword", buy("sword", 1, "gems", 5))
	r.decode(t, &got)
	if r.status != http.StatusCreated || fmt.Sprint(got.Balances) != "map[gems:55 gold:700]" || fmt.Sprint(got.Entitlements) != "[{sword 1}]" {
		t.Errorf("sword for gems: %s", r)
	}

	// The bundle grants gold and potions; a second player buys it so the
	// sword in it is not already owned.
	e.grant(t, "p2", "fund", map[string]int64{"gems": 50}, nil)
	r = e.purchase(t, "p2", "starter", buy("starter", 1, "gems", 50))
	r.decode(t, &got)
	if r.status != http.StatusCreated || fmt.Sprint(got.Balances) != "map[gems:0 gold:1000]" ||
		fmt.Sprint(got.Entitlements) != "[{potion 5} {sword 1}]" {
		t.Errorf("starter bundle: %s", r)
	}

	if w := e.wallet(t, "p1"); fmt.Sprint(w) != "map[gems:55 gold:700]" {
		t.Errorf("p1 wallet = %v", w)
	}
	if it := e.items(t, "p1"); fmt.Sprint(it) != "map[potion:3 sword:1]" {
		t.Errorf("p1 entitlements = %v", it)
	}
	if w := e.wallet(t, "p2"); fmt.Sprint(w) != "map[gems:0 gold:1000]" {
		t.Errorf("p2 wallet = %v", w)
	}
	// A player never seen holds nothing and still sees every currency.
	if w := e.wallet(t, "p-new"); fmt.Sprint(w) != "map[gems:0 gold:0]" {
		t.Errorf("new player's wallet = %v", w)
	}
	if r := e.get(t, "/v1/entitlements", playerToken("p-new")); string(r.body) != `{"player_id":"p-new","entitlements":[]}` {
		t.Errorf("new player's entitlements = %s", r.body)
	}

	t.Run("content types a game client may send are accepted", func(t *testing.T) {
		for i, ct := range []string{"", "application/json; charset=utf-8", "application/vnd.game+json", "APPLICATION/JSON"} {
			req := purchaseRequest("p1", fmt.Sprint("ct-", i), buy("potion", 1, "gold", 100))
			if ct == "" {
				req.Header.Del("Content-Type")
			} else {
				req.Header.Set("Content-Type", ct)
			}
			if r := e.do(t, req); r.status != http.StatusCreated {
				t.Errorf("Content-Type %q: %s", ct, r)
			}
		}
		// "bearer" in lower case is the same scheme.
		req := purchaseRequest("p1", "lower-bearer", buy("potion", 1, "gold", 100))
		req.Header.Set("Authorization", "bearer "+playerToken("p1"))
		if r := e.do(t, req); r.status != http.StatusCreated {
			t.Errorf("lower-case bearer: %s", r)
		}
	})
	e.assertAuditOK(t)
}

func keys(m map[string]any) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return strings.Join(ks, " ")
}

// TestPlayersOnlyReachTheirOwnWallet: the player is the token's sub and
// nothing else. No player route has a player id in its path, and ids in the
// query, headers or body are ignored or refused.
func TestPlayersOnlyReachTheirOwnWallet(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 1000}, map[string]int64{"potion": 4})

	t.Run("no route with a player id in its path takes a player token", func(t *testing.T) {
		n := 0
		for _, rt := range e.app.GetRoutes(true) {
			if !slices.Contains(rt.Params, "player_id") {
				continue
			}
			n++
			path := rt.Path
			for _, p := range rt.Params {
				val := "sword"
				if p == "player_id" {
					val = "p1"
				}
				path = strings.Replace(path, ":"+p, val, 1)
			}
			r := e.do(t, newRequest(rt.Method, path, []byte(`{"reason":"x","currencies":{"gold":1}}`),
				"Authorization", bearer(playerToken("p2")), "Content-Type", "application/json", "Idempotency-Key", "x"))
			if r.status != http.StatusForbidden && r.status != http.StatusUnauthorized {
				t.Errorf("%s %s with p2's token: %s", rt.Method, path, r)
			}
		}
		if n == 0 {
			t.Error("no route takes a player_id: the admin routes are missing")
		}
	})

	p2 := playerToken("p2")
	for _, path := range []string{"/v1/wallet?player_id=p1", "/v1/wallet?sub=p1", "/v1/entitlements?player_id=p1"} {
		req := newRequest(http.MethodGet, path, nil, "Authorization", bearer(p2), "X-Player-Id", "p1")
		r := e.do(t, req)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"player_id":"p2"`) ||
			strings.Contains(string(r.body), "1000") || strings.Contains(string(r.body), "potion") {
			t.Errorf("GET %s as p2: %s", path, r)
		}
	}

	// p2 cannot spend p1's gold, however the request is dressed up.
	assertProblem(t, e.purchase(t, "p2", "k1", buy("potion", 1, "gold", 100)), http.StatusPaymentRequired, "insufficient_funds")
	assertProblem(t, e.purchase(t, "p2", "k2",
		`{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100},"player_id":"p1"}`),
		http.StatusBadRequest, "invalid_request")
	req := purchaseRequest("p2", "k3", buy("potion", 1, "gold", 100))
	req.URL.RawQuery = "player_id=p1"
	req.Header.Set("X-Player-Id", "p1")
	assertProblem(t, e.do(t, req), http.StatusPaymentRequired, "insufficient_funds")
	// A token minted for p1 with another secret is no way in either.
	req = purchaseRequest("p1", "k4", buy("potion", 1, "gold", 100))
	req.Header.Set("Authorization", bearer(signHS256(jwtClaims("p1"), "not-the-secret-not-the-secret-00")))
	assertProblem(t, e.do(t, req), http.StatusUnauthorized, "unauthenticated")

	if w := e.wallet(t, "p1"); w["gold"] != 1000 {
		t.Errorf("p1 gold = %d, want 1000 untouched", w["gold"])
	}
	if it := e.items(t, "p1"); it["potion"] != 4 {
		t.Errorf("p1 potions = %d, want 4", it["potion"])
	}
	if w := e.wallet(t, "p2"); w["gold"] != 0 {
		t.Errorf("p2 gold = %d, want 0", w["gold"])
	}
	if page := e.ledgerPage(t, "p2", ""); len(page.Transactions) != 0 {
		t.Errorf("p2 has %d ledger transactions, want none", len(page.Transactions))
	}
	// p1's key "k1" is still free: p2's use of it was p2's.
	if r := e.purchase(t, "p1", "k1", buy("potion", 1, "gold", 100)); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Errorf("p1 with p2's key: %s", r)
	}
}

// TestConcurrentPurchasesNeverOverspend fires 200 purchases of a 100-gold
// potion at once for a player funded with 5,000 gold through the admin API:
// exactly 50 succeed and 150 are refused for funds, and the books balance.
func TestConcurrentPurchasesNeverOverspend(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 5000}, nil)

	const n = 200
	results := make([]response, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i], errs[i] = e.send(purchaseRequest("p1", fmt.Sprint("buy-", i), buy("potion", 1, "gold", 100)))
		})
	}
	close(start)
	wg.Wait()

	counts := map[int]int{}
	balances := map[int64]bool{}
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		counts[r.status]++
		switch r.status {
		case http.StatusCreated:
			var got receipt
			r.decode(t, &got)
			if balances[got.Balances["gold"]] {
				t.Errorf("two purchases both left %d gold", got.Balances["gold"])
			}
			balances[got.Balances["gold"]] = true
		case http.StatusPaymentRequired:
			var p struct{ Code string }
			r.decode(t, &p)
			if p.Code != "insufficient_funds" {
				t.Errorf("request %d: %s", i, r)
			}
		default:
			t.Errorf("request %d: %s", i, r)
		}
	}
	if counts[http.StatusCreated] != 50 || counts[http.StatusPaymentRequired] != 150 {
		t.Fatalf("statuses = %v, want 50 × 201 and 150 × 402", counts)
	}
	// The receipts saw every balance from 4,900 down to 0 exactly once.
	for gold := int64(0); gold < 5000; gold += 100 {
		if !balances[gold] {
			t.Errorf("no receipt left %d gold", gold)
		}
	}
	if w := e.wallet(t, "p1"); w["gold"] != 0 {
		t.Errorf("gold = %d, want 0", w["gold"])
	}
	if it := e.items(t, "p1"); it["potion"] != 50 {
		t.Errorf("potions = %d, want 50", it["potion"])
	}
	page := e.ledgerPage(t, "p1", "?limit=500")
	if len(page.Transactions) != 51 {
		t.Errorf("%d ledger transactions, want 51 (1 grant, 50 purchases)", len(page.Transactions))
	}
	e.assertAuditOK(t)
}

// jwtClaims are valid claims for sub, to sign with any secret.
func jwtClaims(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(time.Hour).Unix()}
}
