package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/go-redis/redis_rate/v10"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/server"
)

const serverToken = "test-game-server-key"

func withServerToken() option {
	return withConfig(func(c *server.Config) { c.ServerToken = serverToken })
}

// cachedEnv is a server whose holdings reads go through the Redis cache.
func cachedEnv(t testing.TB, opts ...option) *env {
	t.Helper()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	cache := entitlements.NewCache(rdb, pool, entitlements.CacheConfig{Prefix: prefix})
	return newEnv(t, append(opts, withRedis(rdb), withConfig(func(c *server.Config) { c.RedisPrefix = prefix }),
		withLedgerOptions(entitlements.WithCache(cache)))...)
}

func TestGameServerChecksOneEntitlement(t *testing.T) {
	e := cachedEnv(t, withServerToken())
	e.grant(t, "p1", "g1", nil, map[string]int64{"sword": 1})
	r := e.get(t, "/v1/players/p1/entitlements/sword", serverToken)
	var got struct {
		PlayerID string `json:"player_id"`
		ItemID   string `json:"item_id"`
		Owned    bool   `json:"owned"`
		Quantity int64  `json:"quantity"`
	}
	r.decode(t, &got)
	if r.status != 200 || !got.Owned || got.Quantity != 1 || got.PlayerID != "p1" || got.ItemID != "sword" {
		t.Fatalf("owned sword: %s", r)
	}
	r = e.get(t, "/v1/players/p1/entitlements/potion", serverToken)
	r.decode(t, &got)
	if r.status != 200 || got.Owned || got.Quantity != 0 {
		t.Fatalf("unowned potion: %s", r)
	}
	for name, token := range map[string]string{"player token": playerToken("p1"), "admin token": adminToken} {
		assertProblem(t, e.get(t, "/v1/players/p1/entitlements/sword", token), http.StatusForbidden, "forbidden")
		_ = name
	}
	assertProblem(t, e.get(t, "/v1/players/p1/entitlements/sword", ""), http.StatusUnauthorized, "unauthenticated")
	assertProblem(t, e.get(t, "/v1/players/p1/entitlements/sword", "wrong-key"), http.StatusUnauthorized, "unauthenticated")
}

func TestGameServerChecksAThousandPairsAtOnce(t *testing.T) {
	e := cachedEnv(t, withServerToken())
	for i := 0; i < 10; i++ {
		if i%2 == 0 {
			e.grant(t, fmt.Sprintf("p%d", i), "g", nil, map[string]int64{"sword": 1})
		}
	}
	type pair struct {
		PlayerID string `json:"player_id"`
		ItemID   string `json:"item_id"`
	}
	checks := make([]pair, server.MaxChecks)
	for i := range checks {
		item := "sword"
		if i%3 == 0 {
			item = "potion"
		}
		checks[i] = pair{fmt.Sprintf("p%d", i%25), item}
	}
	body, _ := json.Marshal(map[string]any{"checks": checks})
	post := func(token string, body []byte) response {
		return e.do(t, newRequest(http.MethodPost, "/v1/entitlements/check", body,
			"Authorization", bearer(token), "Content-Type", "application/json"))
	}
	r := post(serverToken, body)
	var got struct {
		Results []struct {
			PlayerID string `json:"player_id"`
			ItemID   string `json:"item_id"`
			Owned    bool   `json:"owned"`
			Quantity int64  `json:"quantity"`
		} `json:"results"`
	}
	r.decode(t, &got)
	if r.status != 200 || len(got.Results) != len(checks) {
		t.Fatalf("batch: %d results, status %d", len(got.Results), r.status)
	}
	for i, res := range got.Results {
		n, _ := strconv.Atoi(checks[i].PlayerID[1:])
		want := checks[i].ItemID == "sword" && n < 10 && n%2 == 0
		if res.PlayerID != checks[i].PlayerID || res.ItemID != checks[i].ItemID || res.Owned != want {
			t.Fatalf("result %d = %+v, want owned=%v for %+v", i, res, want, checks[i])
		}
	}
	assertProblem(t, post(playerToken("p0"), body), http.StatusForbidden, "forbidden")
	assertProblem(t, post(adminToken, body), http.StatusForbidden, "forbidden")
	tooMany, _ := json.Marshal(map[string]any{"checks": append(checks, pair{"p1", "sword"})})
	assertProblem(t, post(serverToken, tooMany), http.StatusBadRequest, "invalid_request")
	assertProblem(t, post(serverToken, []byte(`{"checks":[{"player_id":"p1"}]}`)), http.StatusBadRequest, "invalid_request")
	assertProblem(t, post(serverToken, []byte(`{"checks":[{"player_id":"a b","item_id":"x"}]}`)), http.StatusBadRequest, "invalid_request")
}

func TestReadsThroughTheCacheSeeEachPurchase(t *testing.T) {
	e := cachedEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 1000}, nil)
	for i := 1; i <= 3; i++ {
		_ = e.wallet(t, "p1") // warm the cache
		r := e.purchase(t, "p1", fmt.Sprintf("k%d", i), buy("potion", 1, "gold", 100))
		if r.status != http.StatusCreated {
			t.Fatalf("purchase %d: %s", i, r)
		}
		if w := e.wallet(t, "p1"); w["gold"] != 1000-int64(i)*100 {
			t.Fatalf("wallet after purchase %d: %v", i, w)
		}
		if items := e.items(t, "p1"); items["potion"] != int64(i) {
			t.Fatalf("entitlements after purchase %d: %v", i, items)
		}
	}
}

func TestPlayerAPIIsRateLimitedPerPlayer(t *testing.T) {
	e := cachedEnv(t, withServerToken(), withConfig(func(c *server.Config) {
		c.RateLimits = server.RateLimits{Player: redis_rate.Limit{Rate: 3, Burst: 3, Period: 60e9}}
	}))
	for i := 0; i < 3; i++ {
		if r := e.get(t, "/v1/wallet", playerToken("p1")); r.status != 200 {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	r := e.get(t, "/v1/wallet", playerToken("p1"))
	assertProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Another player has their own budget; game servers and admins are never limited.
	if r := e.get(t, "/v1/wallet", playerToken("p2")); r.status != 200 {
		t.Fatalf("another player: %s", r)
	}
	for i := 0; i < 5; i++ {
		if r := e.get(t, "/v1/players/p1/entitlements/sword", serverToken); r.status != 200 {
			t.Fatalf("game server check %d: %s", i, r)
		}
		if r := e.get(t, "/admin/v1/audit", adminToken); r.status != 200 {
			t.Fatalf("admin %d: %s", i, r)
		}
	}
}

func TestRateLimitsParse(t *testing.T) {
	for _, tt := range []struct {
		in     string
		player int
		ip     int
		ok     bool
	}{
		{"off", 0, 0, true},
		{"player=20/s,ip=300/s", 20, 300, true},
		{"player=5/m", 5, 0, true},
		{"ip=1/h", 0, 1, true},
		{"player=0/s", 0, 0, false},
		{"player=20", 0, 0, false},
		{"player=20/d", 0, 0, false},
		{"user=20/s", 0, 0, false},
		{"player=x/s", 0, 0, false},
	} {
		rl, err := server.ParseRateLimits(tt.in)
		if (err == nil) != tt.ok || rl.Player.Rate != tt.player || rl.IP.Rate != tt.ip {
			t.Errorf("ParseRateLimits(%q) = %+v, %v", tt.in, rl, err)
		}
	}
}

func TestPerIPLimitBelievesOnlyTrustedProxies(t *testing.T) {
	e := cachedEnv(t, withConfig(func(c *server.Config) {
		c.RateLimits = server.RateLimits{IP: redis_rate.Limit{Rate: 2, Burst: 2, Period: 60e9}}
		c.TrustedProxies = []string{"0.0.0.0"} // app.Test's connections come from 0.0.0.0
	}))
	from := func(ip, player string) response {
		req := newRequest(http.MethodGet, "/v1/wallet", nil, "Authorization", bearer(playerToken(player)), "X-Forwarded-For", ip)
		return e.do(t, req)
	}
	for i := 0; i < 2; i++ {
		if r := from("203.0.113.7", fmt.Sprintf("p%d", i)); r.status != 200 {
			t.Fatalf("request %d: %s", i, r)
		}
	}
	assertProblem(t, from("203.0.113.7", "p9"), http.StatusTooManyRequests, "rate_limited")
	// Another client behind the same load balancer has its own budget.
	if r := from("198.51.100.4", "p9"); r.status != 200 {
		t.Fatalf("another client: %s", r)
	}
	// The client writes the left of X-Forwarded-For; the load balancer
	// appends the address it saw. A forged leftmost entry changes nothing.
	for i := 0; i < 5; i++ {
		r := from(fmt.Sprintf("10.9.9.%d, 203.0.113.7", i), "p9")
		assertProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	}
}

// Through several trusted hops, the client is the nearest untrusted entry
// counted from the right.
func TestPerIPLimitWalksForwardedForFromTheRight(t *testing.T) {
	e := cachedEnv(t, withConfig(func(c *server.Config) {
		c.RateLimits = server.RateLimits{IP: redis_rate.Limit{Rate: 1, Burst: 1, Period: 60e9}}
		c.TrustedProxies = []string{"0.0.0.0", "10.0.0.0/8"}
	}))
	from := func(xff, player string) response {
		return e.do(t, newRequest(http.MethodGet, "/v1/wallet", nil, "Authorization", bearer(playerToken(player)), "X-Forwarded-For", xff))
	}
	if r := from("198.51.100.1, 192.0.2.9, 10.1.2.3", "a"); r.status != 200 {
		t.Fatalf("first: %s", r)
	}
	// Same client (192.0.2.9, the nearest untrusted hop), another forged left part.
	assertProblem(t, from("1.1.1.1, 192.0.2.9, 10.1.2.3, 10.4.5.6", "b"), http.StatusTooManyRequests, "rate_limited")
	if r := from("198.51.100.1, 192.0.2.10, 10.1.2.3", "c"); r.status != 200 {
		t.Fatalf("another client: %s", r)
	}
}

// A check of an id the catalog does not know is a 404, not "not owned": a
// typo in a game server must not pass for a player who lacks the item.
func TestGameServerChecksOfUnknownItemsAreRefused(t *testing.T) {
	e := cachedEnv(t, withServerToken())
	e.grant(t, "p1", "g1", nil, map[string]int64{"arrow": 3})

	p := assertProblem(t, e.get(t, "/v1/players/p1/entitlements/swrod", serverToken), http.StatusNotFound, "item_not_found")
	if d, _ := p["detail"].(string); d == "" {
		t.Error("item_not_found without a detail")
	}
	assertProblem(t, e.get(t, "/v1/players/p1/entitlements/gold", serverToken), http.StatusNotFound, "item_not_found")

	r := e.do(t, newRequest(http.MethodPost, "/v1/entitlements/check",
		[]byte(`{"checks":[{"player_id":"p1","item_id":"arrow"},{"player_id":"p1","item_id":"swrod"},{"player_id":"p2","item_id":"sword"}]}`),
		"Authorization", bearer(serverToken), "Content-Type", "application/json"))
	if r.status != http.StatusOK {
		t.Fatalf("batch: %s", r)
	}
	want := `{"results":[{"player_id":"p1","item_id":"arrow","owned":true,"quantity":3},` +
		`{"player_id":"p1","item_id":"swrod","error":{"code":"item_not_found","detail":"` + itemNotFoundDetail + `"}},` +
		`{"player_id":"p2","item_id":"sword","owned":false,"quantity":0}]}`
	if string(r.body) != want {
		t.Errorf("batch:\n got %s\nwant %s", r.body, want)
	}

	// An item retired from the catalog stays checkable for players who hold it.
	retired := []byte(`{"currencies":[{"id":"gold","name":"Gold"}],"items":[{"id":"potion","name":"Potion","kind":"consumable","prices":[{"currency":"gold","amount":100}]}]}`)
	if r := e.putCatalog(t, "application/json", retired); r.status != http.StatusOK && r.status != http.StatusCreated {
		t.Fatalf("publishing a catalog without arrows: %s", r)
	}
	var got struct {
		Owned    bool  `json:"owned"`
		Quantity int64 `json:"quantity"`
	}
	r = e.get(t, "/v1/players/p1/entitlements/arrow", serverToken)
	r.decode(t, &got)
	if r.status != http.StatusOK || !got.Owned || got.Quantity != 3 {
		t.Errorf("a held, retired item: %s", r)
	}
	assertProblem(t, e.get(t, "/v1/players/p2/entitlements/arrow", serverToken), http.StatusNotFound, "item_not_found")
}

const itemNotFoundDetail = "The live catalog has no item with this id and the player holds none: check the id (currencies are read from the wallet, not checked)."

// The limiter's keys live under COINOP_REDIS_PREFIX like every other key, so
// a Redis ACL that grants only the prefix cannot make the limiter fail open.
func TestRateLimitKeysStayUnderThePrefix(t *testing.T) {
	rdb, prefix := testenv.RedisClient(t)
	e := newEnv(t, withRedis(rdb), withConfig(func(c *server.Config) {
		c.RedisPrefix = prefix
		c.RateLimits = server.RateLimits{Player: redis_rate.Limit{Rate: 1, Burst: 1, Period: 60e9}}
	}))
	if r := e.get(t, "/v1/wallet", playerToken("p1")); r.status != 200 {
		t.Fatalf("first request: %s", r)
	}
	assertProblem(t, e.get(t, "/v1/wallet", playerToken("p1")), http.StatusTooManyRequests, "rate_limited")
	ctx := t.Context()
	if keys, err := rdb.Keys(ctx, prefix+"rl:player:p1").Result(); err != nil || len(keys) != 1 {
		t.Errorf("keys %srl:player:p1 = %v, %v; want the limiter's key there", prefix, keys, err)
	}
	if keys, err := rdb.Keys(ctx, "rate:"+prefix+"*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("keys outside the prefix: %v, %v", keys, err)
	}
}

// Player and item ids in paths are percent-decoded: an escaped id names
// the same player as the JSON body would, never a ghost account.
func TestPathIDsArePercentDecoded(t *testing.T) {
	e := newEnv(t, withServerToken())
	grant := func(path string) response {
		return e.do(t, newRequest(http.MethodPost, path, []byte(`{"reason":"ticket 1","currencies":{"gold":5}}`),
			"Authorization", bearer(adminToken), "Content-Type", "application/json", "Idempotency-Key", "g-"+path))
	}
	if r := grant("/admin/v1/players/%C3%A5lice/grants"); r.status != http.StatusCreated {
		t.Fatalf("grant to %%C3%%A5lice: %s", r)
	}
	if got := e.wallet(t, "ålice")["gold"]; got != 5 {
		t.Errorf("ålice has %d gold, want the 5 granted through the escaped path", got)
	}
	if got := e.wallet(t, "%C3%A5lice")["gold"]; got != 0 {
		t.Errorf("a ghost account %%C3%%A5lice got %d gold", got)
	}
	var got struct {
		PlayerID string `json:"player_id"`
		Owned    bool   `json:"owned"`
	}
	e.grant(t, "ålice", "sword", nil, map[string]int64{"sword": 1})
	r := e.get(t, "/v1/players/%C3%A5lice/entitlements/sword", serverToken)
	r.decode(t, &got)
	if r.status != http.StatusOK || got.PlayerID != "ålice" || !got.Owned {
		t.Errorf("check through an escaped path: %s", r)
	}
	for _, path := range []string{"/admin/v1/players/a%00b/grants", "/admin/v1/players/%FF/grants"} {
		assertProblem(t, grant(path), http.StatusBadRequest, "invalid_request")
	}
	assertProblem(t, e.get(t, "/v1/players/p1/entitlements/a%00b", serverToken), http.StatusBadRequest, "invalid_request")
	assertProblem(t, e.get(t, "/v1/players/p1/entitlements/%FF", serverToken), http.StatusBadRequest, "invalid_request")
}

// Refused credentials are budgeted per client: past the budget a client
// gets 429 before its token is looked at, on every authenticated route,
// while other clients are unaffected.
func TestRefusedCredentialsAreRateLimitedPerClient(t *testing.T) {
	e := cachedEnv(t, withServerToken(), withConfig(func(c *server.Config) {
		c.RateLimits = server.RateLimits{AuthFailures: redis_rate.Limit{Rate: 3, Burst: 3, Period: 60e9}}
		c.TrustedProxies = []string{"0.0.0.0"}
	}))
	from := func(ip, path, token string) response {
		return e.do(t, newRequest(http.MethodGet, path, nil, "Authorization", bearer(token), "X-Forwarded-For", ip))
	}
	for i := 0; i < 3; i++ {
		assertProblem(t, from("203.0.113.7", "/admin/v1/audit", fmt.Sprintf("guess-%d", i)), http.StatusUnauthorized, "unauthenticated")
	}
	r := from("203.0.113.7", "/admin/v1/audit", "guess-3")
	assertProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// Blocked before the token is checked: even the right one waits, and
	// so do the player and game-server routes.
	assertProblem(t, from("203.0.113.7", "/admin/v1/audit", adminToken), http.StatusTooManyRequests, "rate_limited")
	assertProblem(t, from("203.0.113.7", "/v1/wallet", playerToken("p1")), http.StatusTooManyRequests, "rate_limited")
	assertProblem(t, from("203.0.113.7", "/v1/players/p1/entitlements/sword", serverToken), http.StatusTooManyRequests, "rate_limited")
	// Another client, and successful requests, are not counted.
	for i := 0; i < 5; i++ {
		if r := from("198.51.100.4", "/admin/v1/audit", adminToken); r.status != http.StatusOK {
			t.Fatalf("another client: %s", r)
		}
	}
	assertProblem(t, from("198.51.100.4", "/admin/v1/audit", "guess"), http.StatusUnauthorized, "unauthenticated")
}

// Store notification routes take no credentials before their signature is
// checked, so they are limited per client IP like the player API.
func TestStoreNotificationRoutesAreRateLimitedPerIP(t *testing.T) {
	e := cachedEnv(t, withConfig(func(c *server.Config) {
		c.RateLimits = server.RateLimits{IP: redis_rate.Limit{Rate: 2, Burst: 2, Period: 60e9}}
	}))
	for _, path := range []string{"/v1/stores/apple/notifications", "/v1/stores/google/notifications"} {
		var last response
		for i := 0; i < 3; i++ {
			last = e.do(t, newRequest(http.MethodPost, path, []byte(`{}`), "Content-Type", "application/json"))
		}
		assertProblem(t, last, http.StatusTooManyRequests, "rate_limited")
	}
}
