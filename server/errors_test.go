package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/server"
)

type errorCase struct {
	name   string
	send   func(t *testing.T) response
	status int
	code   string
	// detail, when set, must appear in the problem's detail.
	detail string
	check  func(t *testing.T, r response, p map[string]any)
}

func runErrorCases(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := tc.send(t)
			p := assertProblem(t, r, tc.status, tc.code)
			if tc.detail != "" {
				if d, _ := p["detail"].(string); !strings.Contains(d, tc.detail) {
					t.Errorf("detail = %q, want it to mention %q", d, tc.detail)
				}
			}
			if tc.status == http.StatusUnauthorized {
				assertChallenge(t, r, p)
			}
			if tc.status == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if tc.status >= 500 {
				if id, _ := p["request_id"].(string); id == "" || id != r.header.Get("X-Request-Id") {
					t.Errorf("request_id = %q, X-Request-Id = %q: want the same, non-empty", id, r.header.Get("X-Request-Id"))
				}
			} else if _, ok := p["request_id"]; ok {
				t.Errorf("a %d problem carries a request_id", tc.status)
			}
			if tc.check != nil {
				tc.check(t, r, p)
			}
		})
	}
}

// TestPurchaseBodyErrors covers every way a purchase body can be malformed:
// each is a 400 invalid_request, and none is stored against the key.
func TestPurchaseBodyErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	valid := buy("potion", 1, "gold", 100)
	bodies := []struct{ name, body, detail string }{
		{"an empty body is refused", ``, "JSON object"},
		{"whitespace only is refused", "  \n\t ", "JSON object"},
		{"malformed JSON is refused", `{"item_id": "potion",`, "Malformed JSON"},
		{"unquoted keys are refused", `{item_id: "potion"}`, "Malformed JSON"},
		{"a JSON array is refused", `[` + valid + `]`, "JSON object"},
		{"a JSON string is refused", `"potion"`, "JSON object"},
		{"null is refused", `null`, `"item_id" is required`},
		{"an unknown field is refused", `{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100},"player_id":"p2"}`, `"player_id"`},
		{"an unknown nested field is refused", `{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100,"discount":5}}`, `"discount"`},
		{"a missing item_id is refused", `{"quantity":1,"price":{"currency":"gold","amount":100}}`, `"item_id" is required`},
		{"a null item_id is refused", `{"item_id":null,"quantity":1,"price":{"currency":"gold","amount":100}}`, `"item_id" is required`},
		{"a missing quantity is refused", `{"item_id":"potion","price":{"currency":"gold","amount":100}}`, `"quantity" is required`},
		{"a missing price is refused", `{"item_id":"potion","quantity":1}`, `"price" is required`},
		{"a missing price.currency is refused", `{"item_id":"potion","quantity":1,"price":{"amount":100}}`, `"price.currency" is required`},
		{"a missing price.amount is refused", `{"item_id":"potion","quantity":1,"price":{"currency":"gold"}}`, `"price.amount" is required`},
		{"an empty item_id is refused", buy("", 1, "gold", 100), "item_id"},
		{"an empty currency is refused", buy("potion", 1, "", 100), "price.currency"},
		{"a numeric item_id is refused", `{"item_id":7,"quantity":1,"price":{"currency":"gold","amount":100}}`, `"item_id" must be a string`},
		{"a string quantity is refused", `{"item_id":"potion","quantity":"1","price":{"currency":"gold","amount":100}}`, `"quantity" must be an integer`},
		{"a fractional quantity is refused", `{"item_id":"potion","quantity":1.5,"price":{"currency":"gold","amount":100}}`, `"quantity" must be an integer`},
		{"an exponent quantity is refused", `{"item_id":"potion","quantity":1e2,"price":{"currency":"gold","amount":100}}`, `"quantity" must be an integer`},
		{"a quantity beyond int64 is refused", `{"item_id":"potion","quantity":99999999999999999999,"price":{"currency":"gold","amount":100}}`, `"quantity"`},
		{"a boolean quantity is refused", `{"item_id":"potion","quantity":true,"price":{"currency":"gold","amount":100}}`, `"quantity"`},
		{"a string price is refused", `{"item_id":"potion","quantity":1,"price":"100 gold"}`, `"price"`},
		{"a string price.amount is refused", `{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":"100"}}`, `"price.amount" must be an integer`},
		{"quantity 0 is refused", buy("potion", 0, "gold", 100), "quantity"},
		{"a negative quantity is refused", buy("potion", -1, "gold", 100), "quantity"},
		{"quantity 1001 is refused", buy("potion", 1001, "gold", 100), "quantity"},
		{"price 0 is refused", buy("potion", 1, "gold", 0), "price.amount"},
		{"a negative price is refused", buy("potion", 1, "gold", -100), "price.amount"},
		{"a 60 KB item_id is refused, not stored", buy(strings.Repeat("x", 60<<10), 1, "gold", 100), "item_id must be a catalog id"},
		{"an item_id with a NUL is refused", `{"item_id":"pot\u0000ion","quantity":1,"price":{"currency":"gold","amount":100}}`, "item_id must be a catalog id"},
		{"an item_id in capitals is refused", buy("Potion", 1, "gold", 100), "item_id must be a catalog id"},
		{"a 60 KB currency is refused, not stored", buy("potion", 1, strings.Repeat("g", 60<<10), 100), "price.currency must be a catalog currency id"},
		{"a second object after the body is refused", valid + `{}`, "after the JSON object"},
		{"garbage after the body is refused", valid + `x`, "after the JSON object"},
		{"a closing bracket after the body is refused", valid + `]`, "after the JSON object"},
	}
	var cases []errorCase
	for i, b := range bodies {
		player, key := fmt.Sprintf("body-%d", i), fmt.Sprintf("key-%d", i)
		cases = append(cases, errorCase{
			name: b.name, status: http.StatusBadRequest, code: "invalid_request", detail: b.detail,
			send: func(t *testing.T) response { return e.purchase(t, player, key, b.body) },
			check: func(t *testing.T, _ response, _ map[string]any) {
				// Not stored: the same key with a corrected body buys.
				e.grant(t, player, "fund", map[string]int64{"gold": 100}, nil)
				if r := e.purchase(t, player, key, valid); r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
					t.Fatalf("corrected retry with the same key: %s (replayed %q), want a fresh 201", r, r.header.Get("Idempotent-Replayed"))
				}
			},
		})
	}
	runErrorCases(t, cases)
}

// TestEveryErrorCode sends one request per problem code the API documents
// and checks the whole problem document.
func TestEveryErrorCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	now := time.Now()
	sign := func(claims jwt.MapClaims) string { return signHS256(claims, testSecret) }
	withToken := func(token string) func(t *testing.T) response {
		return func(t *testing.T) response {
			req := newRequest(http.MethodGet, "/v1/wallet", nil)
			if token != "" {
				req.Header.Set("Authorization", token)
			}
			return e.do(t, req)
		}
	}
	valid := buy("potion", 1, "gold", 100)
	postAs := func(auth, path, contentType, key string, body []byte) func(t *testing.T) response {
		return func(t *testing.T) response {
			req := newRequest(http.MethodPost, path, body)
			if auth != "" {
				req.Header.Set("Authorization", bearer(auth))
			}
			if contentType != "" {
				req.Header.Set("Content-Type", contentType)
			}
			if key != "" {
				req.Header.Set("Idempotency-Key", key)
			}
			return e.do(t, req)
		}
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "p1", "exp": now.Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs512, _ := jwt.NewWithClaims(jwt.SigningMethodHS512, jwt.MapClaims{"sub": "p1", "exp": now.Add(time.Hour).Unix()}).
		SignedString([]byte(testSecret))

	cases := []errorCase{
		// 400 invalid_request beyond the body (see TestPurchaseBodyErrors).
		{name: "an Idempotency-Key with a space is refused", status: 400, code: "invalid_request", detail: "Idempotency-Key",
			send: func(t *testing.T) response { return e.purchase(t, "p-key", "two words", valid) }},
		{name: "an Idempotency-Key over 255 characters is refused", status: 400, code: "invalid_request", detail: "Idempotency-Key",
			send: func(t *testing.T) response { return e.purchase(t, "p-key", strings.Repeat("k", 256), valid) }},
		{name: "a grant without a reason is refused", status: 400, code: "invalid_request", detail: `"reason" is required`,
			send: postAs(adminToken, "/admin/v1/players/p-g/grants", "application/json", "g1", []byte(`{"currencies":{"gold":1}}`))},
		{name: "a grant of nothing is refused", status: 400, code: "invalid_request", detail: "at least one",
			send: postAs(adminToken, "/admin/v1/players/p-g/grants", "application/json", "g2", []byte(`{"reason":"x"}`))},
		{name: "a negative grant is refused", status: 400, code: "invalid_request", detail: "currencies.gold",
			send: postAs(adminToken, "/admin/v1/players/p-g/grants", "application/json", "g3", []byte(`{"reason":"x","currencies":{"gold":-5}}`))},
		{name: "a grant with an unknown field is refused", status: 400, code: "invalid_request", detail: `"amount"`,
			send: postAs(adminToken, "/admin/v1/players/p-g/grants", "application/json", "g4", []byte(`{"reason":"x","amount":5}`))},
		{name: "a ledger page of 0 is refused", status: 400, code: "invalid_request", detail: "limit",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/players/p1/ledger?limit=0", adminToken) }},
		{name: "a ledger page of 501 is refused", status: 400, code: "invalid_request", detail: "limit",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/players/p1/ledger?limit=501", adminToken) }},
		{name: "a non-numeric ledger cursor is refused", status: 400, code: "invalid_request", detail: "before",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/players/p1/ledger?before=abc", adminToken) }},
		{name: "a negative ledger cursor is refused", status: 400, code: "invalid_request", detail: "before",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/players/p1/ledger?before=-1", adminToken) }},

		// 400 idempotency_key_missing.
		{name: "a purchase without Idempotency-Key is refused", status: 400, code: "idempotency_key_missing",
			send: postAs(playerToken("p1"), "/v1/purchases", "application/json", "", []byte(valid))},
		{name: "a grant without Idempotency-Key is refused", status: 400, code: "idempotency_key_missing",
			send: postAs(adminToken, "/admin/v1/players/p1/grants", "application/json", "", []byte(`{"reason":"x","currencies":{"gold":1}}`))},

		// 401 unauthenticated.
		{name: "no Authorization header is unauthenticated", status: 401, code: "unauthenticated", detail: "no Authorization header", send: withToken("")},
		{name: "a Basic credential is unauthenticated", status: 401, code: "unauthenticated", detail: "must use the Bearer scheme", send: withToken("Basic cDE6cGFzcw==")},
		{name: "an empty bearer token is unauthenticated", status: 401, code: "unauthenticated", detail: "no token", send: withToken("Bearer ")},
		{name: "a token that is not a JWT is unauthenticated", status: 401, code: "unauthenticated", detail: "not a well-formed JWT", send: withToken("Bearer not-a-jwt")},
		{name: "an expired token is unauthenticated", status: 401, code: "unauthenticated",
			detail: "expired at " + time.Unix(now.Add(-time.Minute).Unix(), 0).UTC().Format(time.RFC3339),
			send:   withToken(bearer(sign(jwt.MapClaims{"sub": "p1", "exp": now.Add(-time.Minute).Unix()})))},
		{name: "a token without exp is unauthenticated", status: 401, code: "unauthenticated", detail: "no exp claim",
			send: withToken(bearer(sign(jwt.MapClaims{"sub": "p1"})))},
		{name: "a token not valid before a future time is unauthenticated", status: 401, code: "unauthenticated", detail: "not valid yet",
			send: withToken(bearer(sign(jwt.MapClaims{"sub": "p1", "exp": now.Add(2 * time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()})))},
		{name: "an alg none token is unauthenticated", status: 401, code: "unauthenticated", detail: "signature does not verify", send: withToken(bearer(none))},
		{name: "an HS512 token is unauthenticated", status: 401, code: "unauthenticated", detail: "must be HS256", send: withToken(bearer(hs512))},
		{name: "a token signed with another secret is unauthenticated", status: 401, code: "unauthenticated", detail: "signature does not verify",
			send: withToken(bearer(signHS256(jwt.MapClaims{"sub": "p1", "exp": now.Add(time.Hour).Unix()}, "another-secret-another-secret-12")))},
		{name: "a token without sub is unauthenticated", status: 401, code: "unauthenticated", detail: "sub claim",
			send: withToken(bearer(sign(jwt.MapClaims{"exp": now.Add(time.Hour).Unix()})))},
		{name: "a token whose sub has a space is unauthenticated", status: 401, code: "unauthenticated", detail: "sub claim",
			send: withToken(bearer(sign(jwt.MapClaims{"sub": "p 1", "exp": now.Add(time.Hour).Unix()})))},
		{name: "a string exp is unauthenticated", status: 401, code: "unauthenticated", detail: "exp claim must be a number",
			send: withToken(bearer(signRawHS256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"p1","exp":"%d"}`, now.Add(time.Hour).Unix()))))},
		{name: "a token issued in the future is unauthenticated", status: 401, code: "unauthenticated", detail: "not valid yet",
			send: withToken(bearer(sign(jwt.MapClaims{"sub": "p1", "exp": now.Add(2 * time.Hour).Unix(), "iat": now.Add(time.Hour).Unix()})))},
		{name: "a crit header is unauthenticated", status: 401, code: "unauthenticated", detail: `"crit"`,
			send: withToken(bearer(signRawHS256(`{"alg":"HS256","typ":"JWT","crit":["exp"]}`, fmt.Sprintf(`{"sub":"p1","exp":%d}`, now.Add(time.Hour).Unix()))))},
		{name: "a duplicate sub is unauthenticated", status: 401, code: "unauthenticated", detail: "each claim once",
			send: withToken(bearer(signRawHS256(`{"alg":"HS256","typ":"JWT"}`, fmt.Sprintf(`{"sub":"p1","sub":"p2","exp":%d}`, now.Add(time.Hour).Unix()))))},
		{name: "the admin token is unauthenticated on the player API", status: 401, code: "unauthenticated", detail: "not a well-formed JWT", send: withToken(bearer(adminToken))},
		{name: "a purchase without a token is unauthenticated", status: 401, code: "unauthenticated",
			send: postAs("", "/v1/purchases", "application/json", "k", []byte(valid))},
		{name: "the admin API without a token is unauthenticated", status: 401, code: "unauthenticated",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/audit", "") }},
		{name: "the admin API with a wrong token is unauthenticated", status: 401, code: "unauthenticated", detail: "neither a valid admin token nor an API key",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/audit", adminToken+"x") }},

		// 403 forbidden: a valid player token on every admin route.
		{name: "a player token cannot read the audit", status: 403, code: "forbidden",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/audit", playerToken("p1")) }},
		{name: "a player token cannot read a ledger, even their own", status: 403, code: "forbidden",
			send: func(t *testing.T) response { return e.get(t, "/admin/v1/players/p1/ledger", playerToken("p1")) }},
		{name: "a player token cannot grant, even to themselves", status: 403, code: "forbidden",
			send: postAs(playerToken("p1"), "/admin/v1/players/p1/grants", "application/json", "k", []byte(`{"reason":"x","currencies":{"gold":1000}}`))},
		{name: "a player token cannot publish a catalog", status: 403, code: "forbidden",
			send: func(t *testing.T) response {
				return e.do(t, newRequest(http.MethodPut, "/admin/v1/catalog", readFile(t, "catalog.json"),
					"Authorization", bearer(playerToken("p1")), "Content-Type", "application/json"))
			}},

		// 404 and 409 business rejections.
		{name: "an unknown item is item_not_found", status: 404, code: "item_not_found",
			send: func(t *testing.T) response { return e.purchase(t, "p-nf", "k", buy("dragon", 1, "gold", 1)) },
			check: func(t *testing.T, _ response, p map[string]any) {
				if p["item_id"] != "dragon" {
					t.Errorf("item_id = %v, want dragon", p["item_id"])
				}
			}},
		{name: "a grant of an unknown currency is item_not_found", status: 404, code: "item_not_found",
			send: postAs(adminToken, "/admin/v1/players/p-g/grants", "application/json", "g5", []byte(`{"reason":"x","currencies":{"diamonds":1}}`)),
			check: func(t *testing.T, _ response, p map[string]any) {
				if fmt.Sprint(p["unknown"]) != "[currencies.diamonds]" {
					t.Errorf("unknown = %v, want [currencies.diamonds]", p["unknown"])
				}
			}},
		{name: "an item outside its window is item_unavailable", status: 409, code: "item_unavailable",
			send: func(t *testing.T) response {
				e.grant(t, "p-un", "fund", map[string]int64{"gold": 100}, nil)
				return e.purchase(t, "p-un", "k", buy("relic", 1, "gold", 10))
			},
			check: func(t *testing.T, _ response, p map[string]any) {
				if p["available_until"] != "2020-02-01T00:00:00Z" {
					t.Errorf("available_until = %v", p["available_until"])
				}
			}},
		{name: "a stale price is price_mismatch", status: 409, code: "price_mismatch",
			send: func(t *testing.T) response { return e.purchase(t, "p-pm", "k", buy("potion", 1, "gold", 90)) }},
		{name: "a price in a currency the item is not sold for is currency_not_offered", status: 409, code: "currency_not_offered",
			send: func(t *testing.T) response { return e.purchase(t, "p-pm2", "k", buy("potion", 1, "gems", 100)) },
			check: func(t *testing.T, r response, p map[string]any) {
				if p["item_id"] != "potion" || p["currency"] != "gems" {
					t.Errorf("item_id, currency = %v, %v; want potion, gems", p["item_id"], p["currency"])
				}
				if fmt.Sprint(p["prices"]) != "[map[amount:100 currency:gold]]" {
					t.Errorf("prices = %v, want the offered price of 100 gold", p["prices"])
				}
			}},
		{name: "a second sword is already_owned", status: 409, code: "already_owned",
			send: func(t *testing.T) response {
				e.grant(t, "p-ao", "fund", map[string]int64{"gold": 1000}, nil)
				if r := e.purchase(t, "p-ao", "k1", buy("sword", 1, "gold", 500)); r.status != 201 {
					t.Fatalf("first sword: %s", r)
				}
				return e.purchase(t, "p-ao", "k2", buy("sword", 1, "gold", 500))
			},
			check: func(t *testing.T, _ response, p map[string]any) {
				if p["item_id"] != "sword" || p["asset_id"] != "sword" {
					t.Errorf("item_id, asset_id = %v, %v; want sword for both", p["item_id"], p["asset_id"])
				}
			}},
		{name: "a starter bundle with a sword owned is already_owned", status: 409, code: "already_owned",
			send: func(t *testing.T) response {
				e.grant(t, "p-ao2", "fund", map[string]int64{"gems": 50}, map[string]int64{"sword": 1})
				return e.purchase(t, "p-ao2", "k", buy("starter", 1, "gems", 50))
			},
			check: func(t *testing.T, _ response, p map[string]any) {
				if p["item_id"] != "sword" {
					t.Errorf("item_id = %v, want sword, the owned item inside the bundle", p["item_id"])
				}
			}},
		{name: "two durables in one purchase is limit_exceeded", status: 409, code: "limit_exceeded",
			send: func(t *testing.T) response {
				e.grant(t, "p-le", "fund", map[string]int64{"gold": 1000}, nil)
				return e.purchase(t, "p-le", "k", buy("sword", 2, "gold", 500))
			}},
		{name: "a potion beyond max_per_player is limit_exceeded", status: 409, code: "limit_exceeded",
			send: func(t *testing.T) response {
				e.grant(t, "p-le2", "fund", map[string]int64{"gold": 100}, map[string]int64{"potion": 99})
				return e.purchase(t, "p-le2", "k", buy("potion", 1, "gold", 100))
			},
			check: func(t *testing.T, _ response, p map[string]any) {
				if fmt.Sprintf("%v %v", p["max"], p["held"]) != "99 99" {
					t.Errorf("max, held = %v, %v; want 99, 99", p["max"], p["held"])
				}
			}},

		// 402.
		{name: "a purchase over the balance is insufficient_funds", status: 402, code: "insufficient_funds",
			send: func(t *testing.T) response {
				e.grant(t, "p-if", "fund", map[string]int64{"gold": 99}, nil)
				return e.purchase(t, "p-if", "k", buy("potion", 1, "gold", 100))
			},
			check: func(t *testing.T, _ response, p map[string]any) {
				if fmt.Sprintf("%v %v %v", p["asset_id"], p["required"], p["balance"]) != "gold 100 99" {
					t.Errorf("asset_id, required, balance = %v, %v, %v; want gold, 100, 99", p["asset_id"], p["required"], p["balance"])
				}
			}},

		// 413.
		{name: "a purchase body over the limit is request_too_large", status: 413, code: "request_too_large",
			send: func(t *testing.T) response {
				return e.purchase(t, "p1", "k", valid+strings.Repeat(" ", 64<<10))
			}},
		{name: "a grant body over the limit is request_too_large", status: 413, code: "request_too_large",
			send: postAs(adminToken, "/admin/v1/players/p1/grants", "application/json", "k",
				[]byte(`{"reason":"`+strings.Repeat("x", 64<<10)+`"}`))},

		// 415.
		{name: "a purchase sent as text/plain is unsupported_media_type", status: 415, code: "unsupported_media_type",
			send: postAs(playerToken("p1"), "/v1/purchases", "text/plain", "k", []byte(valid))},
		{name: "a purchase sent as a form is unsupported_media_type", status: 415, code: "unsupported_media_type",
			send: postAs(playerToken("p1"), "/v1/purchases", "application/x-www-form-urlencoded", "k", []byte("item_id=potion"))},
		{name: "a grant sent as XML is unsupported_media_type", status: 415, code: "unsupported_media_type",
			send: postAs(adminToken, "/admin/v1/players/p1/grants", "application/xml", "k", []byte(`<grant/>`))},
		{name: "a catalog sent as CSV is unsupported_media_type", status: 415, code: "unsupported_media_type",
			send: func(t *testing.T) response {
				return e.do(t, newRequest(http.MethodPut, "/admin/v1/catalog", []byte("id,name\n"),
					"Authorization", bearer(adminToken), "Content-Type", "text/csv"))
			}},

		// 422 idempotency_key_reused.
		{name: "a key reused with another body is idempotency_key_reused", status: 422, code: "idempotency_key_reused",
			send: func(t *testing.T) response {
				e.grant(t, "p-ku", "fund", map[string]int64{"gold": 1000}, nil)
				if r := e.purchase(t, "p-ku", "k", buy("potion", 1, "gold", 100)); r.status != 201 {
					t.Fatalf("first purchase: %s", r)
				}
				return e.purchase(t, "p-ku", "k", buy("potion", 2, "gold", 100))
			}},
		{name: "a grant key reused with another body is idempotency_key_reused", status: 422, code: "idempotency_key_reused",
			send: func(t *testing.T) response {
				e.grant(t, "p-ku2", "same", map[string]int64{"gold": 1}, nil)
				return postAs(adminToken, "/admin/v1/players/p-ku2/grants", "application/json", "same",
					[]byte(`{"reason":"test funding","currencies":{"gold":2}}`))(t)
			}},

		// 422 catalog_invalid (see TestCatalog for every problem listed).
		{name: "an invalid catalog is catalog_invalid", status: 422, code: "catalog_invalid",
			send: func(t *testing.T) response {
				return e.do(t, newRequest(http.MethodPut, "/admin/v1/catalog", []byte(`{"currencies":[]}`),
					"Authorization", bearer(adminToken), "Content-Type", "application/json"))
			}},

		// 404 not_found for routes.
		{name: "an unknown route is not_found", status: 404, code: "not_found",
			send: func(t *testing.T) response { return e.get(t, "/v2/wallet", "") }},
		{name: "an unknown player route is not_found for a player", status: 404, code: "not_found",
			send: func(t *testing.T) response { return e.get(t, "/v1/wallets", playerToken("p1")) }},
	}
	runErrorCases(t, cases)

	// The rejections changed nothing: the ledger and balances still agree.
	t.Cleanup(func() {
		var n int64
		if err := e.pool.QueryRow(ctx, `SELECT count(*) FROM ledger_transactions WHERE kind = 'purchase'`).Scan(&n); err != nil {
			t.Error(err)
		}
		// p-ao bought one sword, p-ku one potion; nothing else was sold.
		if n != 2 {
			t.Errorf("%d purchases recorded, want 2", n)
		}
		e.assertAuditOK(t)
	})
}

// TestIdempotencyKeyInUse holds a key's row in an open transaction, as a
// slow first request would, and checks that a concurrent retry gets 409
// idempotency_key_in_use once the configured wait is over, and that nothing
// is stored: the retry after the first request ends goes through.
func TestIdempotencyKeyInUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withLedgerOptions(entitlements.WithKeyWait(100*time.Millisecond)))
	ctx := context.Background()
	e.grant(t, "p1", "fund", map[string]int64{"gold": 100}, nil)
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `INSERT INTO idempotency_keys (player_id, scope, key, fingerprint, outcome, response)
		VALUES ('p1', $1, 'k', '\x00', 'pending', '{}')`, entitlements.ScopePurchase); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	r := e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100))
	assertProblem(t, r, http.StatusConflict, "idempotency_key_in_use")
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("answered after %v, before the key wait of 100ms", waited)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	r = e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100))
	if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry once the key is free: %s, want a fresh 201", r)
	}
}

// TestRateLimited: a player over the configured rate gets 429 rate_limited
// with Retry-After; another player is not affected.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	limits, err := server.ParseRateLimits("player=2/m")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, withConfig(func(c *server.Config) { c.RateLimits = limits }))
	for i := range 2 {
		if r := e.get(t, "/v1/wallet", playerToken("p1")); r.status != http.StatusOK {
			t.Fatalf("request %d within the limit: %s", i, r)
		}
	}
	r := e.get(t, "/v1/wallet", playerToken("p1"))
	assertProblem(t, r, http.StatusTooManyRequests, "rate_limited")
	if ra := r.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After = %q, want seconds to wait", ra)
	}
	if r := e.get(t, "/v1/wallet", playerToken("p2")); r.status != http.StatusOK {
		t.Errorf("another player: %s", r)
	}
}

// TestCatalogNotPublished: before the first publish nothing can be sold or
// granted, and the catalog read says why.
func TestCatalogNotPublished(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withoutCatalog())
	runErrorCases(t, []errorCase{
		{name: "GET /v1/catalog is catalog_not_published", status: 503, code: "catalog_not_published",
			send: func(t *testing.T) response { return e.get(t, "/v1/catalog", "") }},
		{name: "a purchase is catalog_not_published", status: 503, code: "catalog_not_published",
			send: func(t *testing.T) response { return e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100)) }},
		{name: "a grant is catalog_not_published", status: 503, code: "catalog_not_published",
			send: func(t *testing.T) response {
				return e.do(t, newRequest(http.MethodPost, "/admin/v1/players/p1/grants", []byte(`{"reason":"x","currencies":{"gold":1}}`),
					"Authorization", bearer(adminToken), "Idempotency-Key", "g"))
			}},
	})
	t.Run("readyz is ready but degraded", func(t *testing.T) {
		r := e.get(t, "/readyz", "")
		var body struct{ Status string }
		r.decode(t, &body)
		if r.status != http.StatusOK || body.Status != "degraded" {
			t.Fatalf("GET /readyz: %s, want 200 degraded", r)
		}
	})
}

// TestPostgresDown: when Postgres cannot be reached, requests that need it
// answer 503 unavailable with Retry-After, never 500.
func TestPostgresDown(t *testing.T) {
	t.Parallel()
	// A port nothing listens on: every connection attempt is refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dead, err := pgxpool.New(context.Background(), "postgres://coinop@"+addr+"/coinop?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dead.Close)
	down := newEnv(t, withPool(dead))

	// The same server over a pool that has been closed, as during shutdown.
	closedPool, _ := testenv.NewPool(t)
	closed := newEnv(t, withPool(closedPool))
	closedPool.Close()

	var cases []errorCase
	for _, s := range []struct {
		name string
		e    *env
	}{{"refused", down}, {"closed pool", closed}} {
		e := s.e
		cases = append(cases,
			errorCase{name: s.name + ": GET /v1/wallet is unavailable", status: 503, code: "unavailable",
				send: func(t *testing.T) response { return e.get(t, "/v1/wallet", playerToken("p1")) }},
			errorCase{name: s.name + ": a purchase is unavailable", status: 503, code: "unavailable",
				send: func(t *testing.T) response { return e.purchase(t, "p1", "k", buy("potion", 1, "gold", 100)) }},
			errorCase{name: s.name + ": GET /v1/entitlements is unavailable", status: 503, code: "unavailable",
				send: func(t *testing.T) response { return e.get(t, "/v1/entitlements", playerToken("p1")) }},
			errorCase{name: s.name + ": the audit is unavailable", status: 503, code: "unavailable",
				send: func(t *testing.T) response { return e.get(t, "/admin/v1/audit", adminToken) }},
			errorCase{name: s.name + ": a grant is unavailable", status: 503, code: "unavailable",
				send: func(t *testing.T) response {
					return e.do(t, newRequest(http.MethodPost, "/admin/v1/players/p1/grants", []byte(`{"reason":"x","currencies":{"gold":1}}`),
						"Authorization", bearer(adminToken), "Idempotency-Key", "g"))
				}},
		)
	}
	runErrorCases(t, cases)

	t.Run("readyz is 503 and the catalog is still served", func(t *testing.T) {
		r := down.get(t, "/readyz", "")
		var body struct {
			Status string
			Checks struct{ Postgres, Redis struct{ OK bool } }
		}
		r.decode(t, &body)
		if r.status != http.StatusServiceUnavailable || body.Status != "unavailable" || body.Checks.Postgres.OK || !body.Checks.Redis.OK {
			t.Errorf("GET /readyz: %s, want 503 unavailable with postgres down and redis up", r)
		}
		if r := down.get(t, "/v1/catalog", ""); r.status != http.StatusOK {
			t.Errorf("GET /v1/catalog from memory: %s", r)
		}
	})
}

// TestPostgresRestart: when Postgres restarts (or fails over) it terminates
// every connection, and the next statement on each pooled connection fails
// with SQLSTATE 57P01. Those requests are 503 unavailable: the statement did
// not run, so the client's retry with the same key is safe and succeeds.
func TestPostgresRestart(t *testing.T) {
	t.Parallel()
	cfg, err := pgxpool.ParseConfig(testenv.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	// One connection that is never pinged before use, as in a busy pool
	// whose connections were all used within the last second.
	cfg.MaxConns = 1
	cfg.ShouldPing = func(context.Context, pgxpool.ShouldPingParams) bool { return false }
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	e := newEnv(t, withPool(pool))
	e.grant(t, "p1", "fund", map[string]int64{"gold": 100}, nil)

	terminateBackends(t, pool)
	r := e.get(t, "/v1/wallet", playerToken("p1"))
	assertProblem(t, r, http.StatusServiceUnavailable, "unavailable")
	if w := e.wallet(t, "p1"); w["gold"] != 100 {
		t.Fatalf("gold = %d after reconnecting, want 100", w["gold"])
	}

	terminateBackends(t, pool)
	body := buy("potion", 1, "gold", 100)
	assertProblem(t, e.purchase(t, "p1", "k", body), http.StatusServiceUnavailable, "unavailable")
	r = e.purchase(t, "p1", "k", body)
	if r.status != http.StatusCreated || r.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("retry after the restart: %s, want a fresh 201", r)
	}
	if w := e.wallet(t, "p1"); w["gold"] != 0 {
		t.Fatalf("gold = %d, want 0", w["gold"])
	}
}

// terminateBackends ends every connection to pool's database from another
// session, as a Postgres restart would.
func terminateBackends(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	var db string
	if err := pool.QueryRow(ctx, `SELECT current_database()`).Scan(&db); err != nil {
		t.Fatal(err)
	}
	admin, err := pgxpool.New(ctx, testenv.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no connection to terminate")
	}
	// pg_terminate_backend only signals; wait until the backends are gone.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = $1`, db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
	t.Fatalf("%d connections to %s still open", n, db)
}

// TestBodyLimits: each route refuses bodies over its configured limit, and
// a body over every route's limit is refused by fasthttp before any handler
// runs and still comes back as a problem document.
func TestBodyLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *server.Config) { c.BodyLimit = 1 << 10; c.CatalogBodyLimit = 8 << 10 }))
	for _, tc := range []struct {
		name, method, path, token string
		size                      int
		detail                    string
	}{
		{"a purchase over the player limit", http.MethodPost, "/v1/purchases", playerToken("p1"), 1<<10 + 1, "larger than 1024 bytes"},
		{"a grant over the player limit", http.MethodPost, "/admin/v1/players/p1/grants", adminToken, 1<<10 + 1, "larger than 1024 bytes"},
		{"a catalog over the catalog limit", http.MethodPut, "/admin/v1/catalog", adminToken, 8<<10 + 1, "larger than 8192 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(buy("potion", 1, "gold", 100))
			body = append(body, bytes.Repeat([]byte(" "), tc.size-len(body))...)
			r := e.do(t, newRequest(tc.method, tc.path, body, "Authorization", bearer(tc.token),
				"Content-Type", "application/json", "Idempotency-Key", "k"))
			p := assertProblem(t, r, http.StatusRequestEntityTooLarge, "request_too_large")
			if d, _ := p["detail"].(string); !strings.Contains(d, tc.detail) {
				t.Errorf("detail = %q, want it to say %q", d, tc.detail)
			}
		})
	}

	// Over a real connection: a body declared far over every limit is
	// refused on its Content-Length once the first bytes arrive (bodies are
	// streamed, so nothing near 64 MiB is ever buffered), and the connection
	// is closed rather than parsed on from the middle of the unread body.
	t.Run("a body over the server limit", func(t *testing.T) {
		base := e.listen(t)
		conn := dialRaw(t, base)
		if _, err := fmt.Fprintf(conn, "POST /v1/purchases HTTP/1.1\r\nHost: coinop\r\nAuthorization: %s\r\n"+
			"Content-Type: application/json\r\nIdempotency-Key: k\r\nContent-Length: %d\r\n\r\n",
			bearer(playerToken("p1")), 64<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := conn.Write(bytes.Repeat([]byte(" "), 16<<10)); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		p := assertProblem(t, readResponse(t, resp), http.StatusRequestEntityTooLarge, "request_too_large")
		if d, _ := p["detail"].(string); !strings.Contains(d, "larger than 1024 bytes") {
			t.Errorf("detail = %q", d)
		}
		if !resp.Close {
			t.Error("the connection stays open after a refused, unread body")
		}
		// EOF, or a reset since the rest of the body was never read.
		if b, err := br.ReadByte(); err == nil {
			t.Errorf("after the answer the server kept the connection open and sent %q", b)
		}
	})

	// A body a handler refused without reading (here, before
	// authentication) must not be parsed as the next request: a request
	// smuggled inside it is never served.
	t.Run("an unread body closes the connection", func(t *testing.T) {
		base := e.listen(t)
		conn := dialRaw(t, base)
		smuggled := "GET /healthz HTTP/1.1\r\nHost: coinop\r\n\r\n"
		if _, err := fmt.Fprintf(conn, "POST /v1/purchases HTTP/1.1\r\nHost: coinop\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			len(smuggled), smuggled); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401", resp.StatusCode)
		}
		if next, err := http.ReadResponse(br, nil); err == nil {
			next.Body.Close()
			t.Fatalf("a request smuggled in the unread body was served: %d", next.StatusCode)
		}
	})
}

// assertChallenge checks a 401's WWW-Authenticate (RFC 6750 3): the Bearer
// scheme, an error code unless the request had no credentials at all, and
// the problem's detail as error_description.
func assertChallenge(t *testing.T, r response, p map[string]any) {
	t.Helper()
	got := r.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(got, `Bearer realm="coinop"`) {
		t.Fatalf("WWW-Authenticate = %q, want the Bearer scheme with realm coinop", got)
	}
	detail, _ := p["detail"].(string)
	if detail == "" {
		t.Fatal("a 401 must say why in its detail")
	}
	if want := `error_description="` + strings.ReplaceAll(detail, `"`, `\"`) + `"`; !strings.Contains(got, want) {
		t.Errorf("WWW-Authenticate = %q, want %s", got, want)
	}
	hasError := strings.Contains(got, `error="`)
	if noCredentials := strings.Contains(detail, "no Authorization header"); noCredentials == hasError {
		t.Errorf("WWW-Authenticate = %q: error code present = %v, want %v (RFC 6750 3.1)", got, hasError, !noCredentials)
	}
}

// signRawHS256 signs a header and claims given as exact JSON text, for
// tokens no JWT library would write (duplicate claims, string dates).
func signRawHS256(header, claims string) string {
	enc := base64.RawURLEncoding
	input := enc.EncodeToString([]byte(header)) + "." + enc.EncodeToString([]byte(claims))
	mac := hmac.New(sha256.New, []byte(testSecret))
	mac.Write([]byte(input))
	return input + "." + enc.EncodeToString(mac.Sum(nil))
}
