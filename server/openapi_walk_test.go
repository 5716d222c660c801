package server_test

import (
	"bufio"
	"bytes"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/coinop/coinop/receipts/fakestore"
	"github.com/coinop/coinop/server"
)

const walkServerToken = "walk-server-token"

// walkStep is one request of the walk and the status it must get. The
// request is built when the step runs, so a step can use what earlier
// steps made (a key's secret, an ETag).
type walkStep struct {
	name   string
	env    *env
	req    func() *http.Request
	status int
}

// TestOpenAPIWalk sends every operation of docs/openapi.yaml at least one
// request it accepts and, where the spec declares a 4xx, at least one it
// refuses. env.do checks each exchange against the spec (openapi_test.go);
// this test adds the status each step must get, and fails when an operation
// of the spec was left out of the walk.
func TestOpenAPIWalk(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withConfig(func(c *server.Config) {
		c.ServerToken = walkServerToken
		// Below fasthttp's server-wide limit (the largest route limit, at
		// least 1 MiB), so that each route's own limit answers its 413.
		c.CatalogBodyLimit = 64 << 10
	}))
	se := newStoreEnv(t)
	ce := newCreatorsEnv(t)
	// The batch check's own 1 MiB limit answers only below fasthttp's
	// server-wide one, which is the largest route limit.
	roomy := newEnv(t, withConfig(func(c *server.Config) {
		c.ServerToken = walkServerToken
		c.CatalogBodyLimit = 2 << 20
	}))

	const player = "walker"
	playerTok := playerToken(player)
	var viewerKey string
	var draftETag, entityETag string
	fixture := string(readFile(t, "catalog.json"))
	future := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	big := func(n int) []byte { return bytes.Repeat([]byte(" "), n) }

	// req builds a request with a bearer token (when not empty), a JSON
	// body (when not nil) and extra header pairs.
	req := func(method, path, token string, body []byte, headers ...string) func() *http.Request {
		return func() *http.Request {
			r := newRequest(method, path, body, headers...)
			if token != "" {
				r.Header.Set("Authorization", bearer(token))
			}
			if body != nil && r.Header.Get("Content-Type") == "" {
				r.Header.Set("Content-Type", "application/json")
			}
			return r
		}
	}
	adm := func(method, path string, body []byte, headers ...string) func() *http.Request {
		return req(method, path, adminToken, body, headers...)
	}
	viewer := func(method, path string, body []byte) func() *http.Request {
		return func() *http.Request { return req(method, path, viewerKey, body)() }
	}
	js := func(s string) []byte { return []byte(s) }
	grant := func(key, body string) func() *http.Request {
		return adm("POST", "/admin/v1/players/"+player+"/grants", js(body), "Idempotency-Key", key)
	}
	srvH := func(route, key, body string, headers ...string) func() *http.Request {
		return req("POST", "/v1/players/"+player+"/"+route, walkServerToken, js(body), append([]string{"Idempotency-Key", key}, headers...)...)
	}
	srv := func(route, key, body string) func() *http.Request { return srvH(route, key, body) }
	purchase := func(key, body string, headers ...string) func() *http.Request {
		h := []string{"Idempotency-Key", key}
		if key == "" {
			h = nil
		}
		return req("POST", "/v1/purchases", playerTok, js(body), append(h, headers...)...)
	}

	// refund refunds the walker's latest purchase, found when the step runs.
	refund := func(key, body string) func() *http.Request {
		return func() *http.Request {
			var tx int64
			if err := e.pool.QueryRow(t.Context(), `SELECT coalesce(max(id), 0) FROM ledger_transactions
				WHERE player_id = $1 AND kind = 'purchase'`, player).Scan(&tx); err != nil {
				t.Fatal(err)
			}
			return adm("POST", fmt.Sprintf("/admin/v1/players/%s/purchases/%d/refund", player, tx), js(body), "Idempotency-Key", key)()
		}
	}

	steps := []walkStep{
		// Operations.
		{"liveness", e, req("GET", "/healthz", "", nil), 200},
		{"readiness", e, req("GET", "/readyz", "", nil, "X-Request-Id", "walk-1"), 200},
		{"metrics", e, req("GET", "/metrics", "", nil), 200},

		// Keys first: the walk needs a viewer key for the 403s.
		{"create a viewer key", e, adm("POST", "/admin/v1/keys", js(`{"name":"walk-viewer","roles":["viewer"]}`)), 201},
		{"a key name is never reused", e, adm("POST", "/admin/v1/keys", js(`{"name":"walk-viewer","roles":["viewer"]}`)), 409},
		{"a key needs roles", e, adm("POST", "/admin/v1/keys", js(`{"name":"walk-x"}`)), 400},
		{"a key body must be JSON", e, adm("POST", "/admin/v1/keys", js(`name=x`), "Content-Type", "text/plain"), 415},
		{"keys are listed", e, adm("GET", "/admin/v1/keys?include_revoked=true", nil), 200},
		{"include_revoked is a boolean", e, adm("GET", "/admin/v1/keys?include_revoked=maybe", nil), 400},
		{"a viewer key may not list keys", e, viewer("GET", "/admin/v1/keys", nil), 403},
		{"create a limited server key", e, adm("POST", "/admin/v1/keys", js(`{"name":"walk-server","roles":["server"],"limits":{"currencies":["gold"],"max_per_posting":100,"hourly_budget":{"gold":1000}}}`)), 201},
		{"set a key's limits", e, adm("PUT", "/admin/v1/keys/walk-server/limits", js(`{"currencies":["gold","gems"],"items":["potion"],"hourly_budget":{"gems":10}}`)), 200},
		{"remove a key's limits", e, adm("PUT", "/admin/v1/keys/walk-server/limits", js(`null`)), 200},
		{"limits refuse a budget of 0", e, adm("PUT", "/admin/v1/keys/walk-server/limits", js(`{"hourly_budget":{"gold":0}}`)), 400},
		{"limits of a key that does not exist", e, adm("PUT", "/admin/v1/keys/nobody/limits", js(`null`)), 404},
		{"limits must be JSON", e, adm("PUT", "/admin/v1/keys/walk-server/limits", js(`x`), "Content-Type", "text/plain"), 415},
		{"limits over the body limit", e, adm("PUT", "/admin/v1/keys/walk-server/limits", big(64<<10+1)), 413},
		{"a viewer key may not set limits", e, viewer("PUT", "/admin/v1/keys/walk-server/limits", js(`null`)), 403},
		{"setting limits needs a token", e, req("PUT", "/admin/v1/keys/walk-server/limits", "", js(`null`)), 401},
		{"register a webhook endpoint", e, adm("POST", "/admin/v1/webhooks", js(`{"url":"https://hooks.example.com/walk","event_types":["ledger.*"]}`)), 201},
		{"a webhook needs a url", e, adm("POST", "/admin/v1/webhooks", js(`{"description":"x"}`)), 400},
		{"a webhook url must be https", e, adm("POST", "/admin/v1/webhooks", js(`{"url":"ftp://hooks.example.com"}`)), 422},
		{"webhooks are listed", e, adm("GET", "/admin/v1/webhooks", nil), 200},
		{"a webhook is read", e, adm("GET", "/admin/v1/webhooks/1", nil), 200},
		{"an unknown webhook", e, adm("GET", "/admin/v1/webhooks/999999", nil), 404},
		{"a webhook is disabled", e, adm("PATCH", "/admin/v1/webhooks/1", js(`{"enabled":false,"event_types":null}`)), 200},
		{"a webhook patch refuses a bad event type", e, adm("PATCH", "/admin/v1/webhooks/1", js(`{"event_types":["Nope"]}`)), 422},
		{"a webhook patch refuses unknown fields", e, adm("PATCH", "/admin/v1/webhooks/1", js(`{"secret":"x"}`)), 400},
		{"a webhook patch must be JSON", e, adm("PATCH", "/admin/v1/webhooks/1", js(`x`), "Content-Type", "text/plain"), 415},
		{"a webhook patch of an unknown endpoint", e, adm("PATCH", "/admin/v1/webhooks/999999", js(`{}`)), 404},
		{"a webhook's secret is rotated", e, adm("POST", "/admin/v1/webhooks/1/rotate-secret", nil), 200},
		{"rotating an unknown webhook", e, adm("POST", "/admin/v1/webhooks/999999/rotate-secret", nil), 404},
		{"a time range is redelivered", e, adm("POST", "/admin/v1/webhooks/1/redeliveries", js(`{"since":"2000-01-01T00:00:00Z","until":"2100-01-01T00:00:00Z"}`)), 202},
		{"a redelivery of an unknown event", e, adm("POST", "/admin/v1/webhooks/1/redeliveries", js(`{"event_id":999999}`)), 404},
		{"a redelivery needs an event or a range", e, adm("POST", "/admin/v1/webhooks/1/redeliveries", js(`{}`)), 422},
		{"a redelivery refuses a bad time", e, adm("POST", "/admin/v1/webhooks/1/redeliveries", js(`{"since":"yesterday"}`)), 400},
		{"a viewer key may not list webhooks", e, viewer("GET", "/admin/v1/webhooks", nil), 403},
		{"listing webhooks needs a token", e, req("GET", "/admin/v1/webhooks", "", nil), 401},
		{"a webhook is deleted", e, adm("DELETE", "/admin/v1/webhooks/1", nil), 200},
		{"deleting an unknown webhook", e, adm("DELETE", "/admin/v1/webhooks/1", nil), 404},

		// Player API.
		{"the live catalog", e, req("GET", "/v1/catalog", "", nil), 200},
		{"the live catalog, not modified", e, req("GET", "/v1/catalog", "", nil, "If-None-Match", `"catalog-1"`), 304},
		{"a wallet", e, req("GET", "/v1/wallet", playerTok, nil), 200},
		{"a wallet needs a token", e, req("GET", "/v1/wallet", "", nil), 401},
		{"a wallet refuses a bad token", e, req("GET", "/v1/wallet", "not-a-jwt", nil), 401},
		{"entitlements", e, req("GET", "/v1/entitlements", playerTok, nil), 200},
		{"entitlements need a token", e, req("GET", "/v1/entitlements", "", nil), 401},
		{"fund the walker", e, grant("fund", `{"reason":"walk","currencies":{"gold":1000},"items":{"sword":1}}`), 201},
		{"a grant replays", e, grant("fund", `{"reason":"walk","currencies":{"gold":1000},"items":{"sword":1}}`), 201},
		{"a grant key with another body", e, grant("fund", `{"reason":"walk","currencies":{"gold":1}}`), 422},
		{"a grant needs a reason", e, grant("g2", `{"currencies":{"gold":1}}`), 400},
		{"a grant of an unknown currency", e, grant("g3", `{"reason":"walk","currencies":{"zzz":1}}`), 404},
		{"a grant of a durable owned", e, grant("g4", `{"reason":"walk","items":{"sword":1}}`), 409},
		{"a grant body must be JSON", e, adm("POST", "/admin/v1/players/"+player+"/grants", js(`x`), "Idempotency-Key", "g5", "Content-Type", "text/plain"), 415},
		{"a grant body over the limit", e, adm("POST", "/admin/v1/players/"+player+"/grants", big(64<<10+1), "Idempotency-Key", "g6"), 413},
		{"a grant needs the support role", e, viewer("POST", "/admin/v1/players/"+player+"/grants", js(`{"reason":"walk","currencies":{"gold":1}}`)), 403},
		{"a grant needs a token", e, req("POST", "/admin/v1/players/"+player+"/grants", "", js(`{}`), "Idempotency-Key", "g7"), 401},
		{"a purchase", e, purchase("buy-1", buy("potion", 1, "gold", 100)), 201},
		{"a purchase is refunded", e, refund("r1", `{"reason":"walk","quantity":1}`), 201},
		{"a refund replays", e, refund("r1", `{"reason":"walk","quantity":1}`), 201},
		{"a refund key with another body", e, refund("r1", `{"reason":"walk again"}`), 422},
		{"a refund past the purchase", e, refund("r2", `{"reason":"walk"}`), 409},
		{"a refund needs a reason", e, refund("r3", `{"quantity":1}`), 400},
		{"a refund of an unknown transaction", e, adm("POST", "/admin/v1/players/"+player+"/purchases/999999/refund",
			js(`{"reason":"walk"}`), "Idempotency-Key", "r4"), 404},
		{"a refund body must be JSON", e, adm("POST", "/admin/v1/players/"+player+"/purchases/1/refund", js(`x`),
			"Idempotency-Key", "r5", "Content-Type", "text/plain"), 415},
		{"a refund body over the limit", e, adm("POST", "/admin/v1/players/"+player+"/purchases/1/refund", big(64<<10+1),
			"Idempotency-Key", "r6"), 413},
		{"a refund needs the support role", e, viewer("POST", "/admin/v1/players/"+player+"/purchases/1/refund", js(`{"reason":"walk"}`)), 403},
		{"a refund needs a token", e, req("POST", "/admin/v1/players/"+player+"/purchases/1/refund", "", js(`{}`), "Idempotency-Key", "r7"), 401},
		{"a purchase replays", e, purchase("buy-1", buy("potion", 1, "gold", 100)), 201},
		{"a purchase key with another body", e, purchase("buy-1", buy("potion", 2, "gold", 100)), 422},
		{"a purchase needs a key", e, purchase("", buy("potion", 1, "gold", 100)), 400},
		{"a purchase beyond the balance", e, purchase("buy-2", buy("potion", 1000, "gold", 100)), 402},
		{"a purchase of an unknown item", e, purchase("buy-3", buy("nope", 1, "gold", 100)), 404},
		{"a purchase at a stale price", e, purchase("buy-4", buy("potion", 1, "gold", 99)), 409},
		{"a purchase in a currency the item is not sold in", e, purchase("buy-9", buy("potion", 1, "gems", 1)), 409},
		{"a purchase of a malformed item id", e, purchase("buy-10", buy("Potion!", 1, "gold", 100)), 400},
		{"a purchase of a durable owned", e, purchase("buy-5", buy("sword", 1, "gold", 500)), 409},
		{"a purchase body must be JSON", e, purchase("buy-6", "x", "Content-Type", "text/plain"), 415},
		{"a purchase body over the limit", e, req("POST", "/v1/purchases", playerTok, big(64<<10+1), "Idempotency-Key", "buy-7"), 413},
		{"a purchase needs a token", e, req("POST", "/v1/purchases", "", js(buy("potion", 1, "gold", 100)), "Idempotency-Key", "buy-8"), 401},

		// Game-server API.
		{"a check", e, req("GET", "/v1/players/"+player+"/entitlements/sword", walkServerToken, nil), 200},
		{"a check of an item not in the catalog", e, req("GET", "/v1/players/"+player+"/entitlements/swrod", walkServerToken, nil), 404},
		{"a check of a bad player id", e, req("GET", "/v1/players/"+strings.Repeat("p", 129)+"/entitlements/sword", walkServerToken, nil), 400},
		{"a check needs the server key", e, req("GET", "/v1/players/"+player+"/entitlements/sword", playerTok, nil), 403},
		{"a check needs a token", e, req("GET", "/v1/players/"+player+"/entitlements/sword", "", nil), 401},
		{"a batch check", e, req("POST", "/v1/entitlements/check", walkServerToken,
			js(`{"checks":[{"player_id":"walker","item_id":"sword"},{"player_id":"nobody","item_id":"potion"}]}`)), 200},
		{"a batch needs checks", e, req("POST", "/v1/entitlements/check", walkServerToken, js(`{}`)), 400},
		{"a batch body must be JSON", e, req("POST", "/v1/entitlements/check", walkServerToken, js(`x`), "Content-Type", "text/plain"), 415},
		{"a batch over 1 MiB", roomy, req("POST", "/v1/entitlements/check", walkServerToken, big(1<<20+1)), 413},
		{"a batch needs the server key", e, req("POST", "/v1/entitlements/check", adminToken, js(`{"checks":[]}`)), 403},
		{"a batch needs a token", e, req("POST", "/v1/entitlements/check", "", js(`{"checks":[]}`)), 401},

		// Server postings.
		{"an award", e, srv("awards", "aw-1", `{"source":"match:1","reason":"won","currencies":{"gold":100},"items":{"potion":2}}`), 201},
		{"an award replays", e, srv("awards", "aw-1", `{"source":"match:1","reason":"won","currencies":{"gold":100},"items":{"potion":2}}`), 201},
		{"an award key with another body", e, srv("awards", "aw-1", `{"source":"match:1","reason":"won","currencies":{"gold":1}}`), 422},
		{"an award needs a source", e, srv("awards", "aw-2", `{"reason":"won","currencies":{"gold":1}}`), 400},
		{"an award of an unknown currency", e, srv("awards", "aw-3", `{"source":"s","reason":"r","currencies":{"zzz":1}}`), 404},
		{"an award of a durable owned", e, srv("awards", "aw-4", `{"source":"s","reason":"r","items":{"sword":1}}`), 409},
		{"an award body must be JSON", e, srvH("awards", "aw-5", `x`, "Content-Type", "text/plain"), 415},
		{"an award body over the limit", e, req("POST", "/v1/players/"+player+"/awards", walkServerToken, big(64<<10+1), "Idempotency-Key", "aw-6"), 413},
		{"an award needs the server key", e, req("POST", "/v1/players/"+player+"/awards", playerTok, js(`{}`), "Idempotency-Key", "aw-7"), 403},
		{"an award needs a token", e, req("POST", "/v1/players/"+player+"/awards", "", js(`{}`), "Idempotency-Key", "aw-8"), 401},
		{"a spend", e, srv("spends", "sp-1", `{"source":"shop","reason":"repair","currencies":{"gold":10}}`), 201},
		{"a spend beyond the balance", e, srv("spends", "sp-2", `{"source":"shop","reason":"repair","currencies":{"gold":100000}}`), 402},
		{"a spend of an unknown currency", e, srv("spends", "sp-3", `{"source":"shop","reason":"repair","currencies":{"zzz":1}}`), 404},
		{"a spend needs currencies", e, srv("spends", "sp-4", `{"source":"shop","reason":"repair"}`), 400},
		{"a spend key with another body", e, srv("spends", "sp-1", `{"source":"shop","reason":"repair","currencies":{"gold":11}}`), 422},
		{"a spend body must be JSON", e, srvH("spends", "sp-5", `x`, "Content-Type", "text/plain"), 415},
		{"a spend body over the limit", e, req("POST", "/v1/players/"+player+"/spends", walkServerToken, big(64<<10+1), "Idempotency-Key", "sp-6"), 413},
		{"a spend needs the server key", e, req("POST", "/v1/players/"+player+"/spends", adminToken, js(`{}`), "Idempotency-Key", "sp-7"), 403},
		{"a spend needs a token", e, req("POST", "/v1/players/"+player+"/spends", "", js(`{}`), "Idempotency-Key", "sp-8"), 401},
		{"a consumption", e, srv("consumptions", "co-1", `{"source":"match:1","reason":"drank","items":{"potion":1}}`), 201},
		{"a consumption beyond what is held", e, srv("consumptions", "co-2", `{"source":"match:1","reason":"drank","items":{"potion":100}}`), 402},
		{"a consumption of an unknown item", e, srv("consumptions", "co-3", `{"source":"match:1","reason":"drank","items":{"zzz":1}}`), 404},
		{"a consumption needs items", e, srv("consumptions", "co-4", `{"source":"match:1","reason":"drank"}`), 400},
		{"a consumption key with another body", e, srv("consumptions", "co-1", `{"source":"match:1","reason":"drank","items":{"potion":2}}`), 422},
		{"a consumption body must be JSON", e, srvH("consumptions", "co-5", `x`, "Content-Type", "text/plain"), 415},
		{"a consumption body over the limit", e, req("POST", "/v1/players/"+player+"/consumptions", walkServerToken, big(64<<10+1), "Idempotency-Key", "co-6"), 413},
		{"a consumption needs the server key", e, req("POST", "/v1/players/"+player+"/consumptions", playerTok, js(`{}`), "Idempotency-Key", "co-7"), 403},
		{"a consumption needs a token", e, req("POST", "/v1/players/"+player+"/consumptions", "", js(`{}`), "Idempotency-Key", "co-8"), 401},
		{"an exchange", e, srv("exchanges", "ex-1", `{"source":"craft","reason":"arrows","take":{"currencies":{"gold":5},"items":{"potion":1}},"give":{"items":{"arrow":10}}}`), 201},
		{"an exchange beyond what is held", e, srv("exchanges", "ex-2", `{"source":"craft","reason":"arrows","take":{"items":{"potion":100}},"give":{"items":{"arrow":10}}}`), 402},
		{"an exchange of an unknown item", e, srv("exchanges", "ex-3", `{"source":"craft","reason":"arrows","take":{"items":{"zzz":1}},"give":{"items":{"arrow":10}}}`), 404},
		{"an exchange giving a durable owned", e, srv("exchanges", "ex-4", `{"source":"craft","reason":"x","take":{"currencies":{"gold":1}},"give":{"items":{"sword":1}}}`), 409},
		{"an exchange needs both sides", e, srv("exchanges", "ex-5", `{"source":"craft","reason":"x","take":{"currencies":{"gold":1}}}`), 400},
		{"an exchange key with another body", e, srv("exchanges", "ex-1", `{"source":"craft","reason":"arrows","take":{"currencies":{"gold":5}},"give":{"items":{"arrow":10}}}`), 422},
		{"an exchange body must be JSON", e, srvH("exchanges", "ex-6", `x`, "Content-Type", "text/plain"), 415},
		{"an exchange body over the limit", e, req("POST", "/v1/players/"+player+"/exchanges", walkServerToken, big(64<<10+1), "Idempotency-Key", "ex-7"), 413},
		{"an exchange needs the server key", e, req("POST", "/v1/players/"+player+"/exchanges", playerTok, js(`{}`), "Idempotency-Key", "ex-8"), 403},
		{"an exchange needs a token", e, req("POST", "/v1/players/"+player+"/exchanges", "", js(`{}`), "Idempotency-Key", "ex-9"), 401},

		{"a player consumption", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"arrow","quantity":1}`), "Idempotency-Key", "pc-1"), 201},
		{"a player consumption replays", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"arrow","quantity":1}`), "Idempotency-Key", "pc-1"), 201},
		{"a player consumption key with another body", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"arrow","quantity":2}`), "Idempotency-Key", "pc-1"), 422},
		{"a player consumption of an item not marked so", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"potion","quantity":1}`), "Idempotency-Key", "pc-2"), 409},
		{"a player consumption beyond what is held", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"arrow","quantity":1000}`), "Idempotency-Key", "pc-3"), 402},
		{"a player consumption of an unknown item", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"nope","quantity":1}`), "Idempotency-Key", "pc-4"), 404},
		{"a player consumption needs a quantity", e, req("POST", "/v1/consumptions", playerTok, js(`{"item_id":"arrow"}`), "Idempotency-Key", "pc-5"), 400},
		{"a player consumption body must be JSON", e, req("POST", "/v1/consumptions", playerTok, js(`x`), "Idempotency-Key", "pc-6", "Content-Type", "text/plain"), 415},
		{"a player consumption body over the limit", e, req("POST", "/v1/consumptions", playerTok, big(64<<10+1), "Idempotency-Key", "pc-7"), 413},
		{"a player consumption needs a token", e, req("POST", "/v1/consumptions", "", js(`{}`), "Idempotency-Key", "pc-8"), 401},

		{"the event feed", e, req("GET", "/v1/events?after=0&limit=50", walkServerToken, nil), 200},
		{"the event feed refuses a bad cursor", e, req("GET", "/v1/events?after=x", walkServerToken, nil), 400},
		{"the event feed needs the server key", e, req("GET", "/v1/events", playerTok, nil), 403},
		{"the event feed needs a token", e, req("GET", "/v1/events", "", nil), 401},

		// Admin reads.
		{"a ledger page", e, adm("GET", "/admin/v1/players/"+player+"/ledger?limit=10", nil), 200},
		{"a ledger limit out of range", e, adm("GET", "/admin/v1/players/"+player+"/ledger?limit=0", nil), 400},
		{"the audit", e, adm("GET", "/admin/v1/audit", nil), 200},
		{"the audit refuses player tokens", e, req("GET", "/admin/v1/audit", playerTok, nil), 403},
		{"the audit log", e, adm("GET", "/admin/v1/audit-log?action=player.*", nil), 200},
		{"the audit log refuses a bad time", e, adm("GET", "/admin/v1/audit-log?since=yesterday", nil), 400},
		{"a player's holdings", e, adm("GET", "/admin/v1/players/"+player+"/holdings", nil), 200},
		{"holdings of a malformed player id", e, adm("GET", "/admin/v1/players/"+strings.Repeat("p", 129)+"/holdings", nil), 400},
		{"a player's debts", e, adm("GET", "/admin/v1/players/"+player+"/debts", nil), 200},
		{"debts refuse a bad limit", e, adm("GET", "/admin/v1/players/"+player+"/debts?limit=0", nil), 400},
		{"who the caller is", e, adm("GET", "/admin/v1/me", nil), 200},
		{"who needs a token", e, req("GET", "/admin/v1/me", "", nil), 401},
		{"a player token is not an admin", e, req("GET", "/admin/v1/me", playerTok, nil), 403},
		{"the console", e, req("GET", "/console", "", nil), 200},
		{"the console, not modified", e, func() *http.Request {
			r := req("GET", "/console/app.js", "", nil)()
			r.Header.Set("If-None-Match", consoleETag(t, e, "/console/app.js"))
			return r
		}, 304},
		{"a console file", e, req("GET", "/console/app.js", "", nil), 200},
		{"no such console file", e, req("GET", "/console/nope.js", "", nil), 404},
		{"the catalog in a locale", e, req("GET", "/v1/catalog?locale=fr", "", nil, "Accept-Language", "de"), 200},
		{"the catalog refuses a malformed locale", e, req("GET", "/v1/catalog?locale=not_a%20locale", "", nil), 400},
		{"store purchases", e, adm("GET", "/admin/v1/players/"+player+"/store-purchases", nil), 200},
		{"store purchases refuse a bad limit", e, adm("GET", "/admin/v1/players/"+player+"/store-purchases?limit=0", nil), 400},
		{"refunds", e, adm("GET", "/admin/v1/refunds", nil), 200},
		{"refunds refuse a bad limit", e, adm("GET", "/admin/v1/refunds?limit=x", nil), 400},
		{"the notification inbox", e, adm("GET", "/admin/v1/store-notifications?status=pending", nil), 200},
		{"the inbox refuses an unknown status", e, adm("GET", "/admin/v1/store-notifications?status=weird", nil), 400},
		{"the store sweeps", e, adm("GET", "/admin/v1/store-sweeps", nil), 200},
		{"the store sweeps need a token", e, req("GET", "/admin/v1/store-sweeps", "", nil), 401},

		// The catalog workflow.
		{"the draft", e, adm("GET", "/admin/v1/catalog/draft", nil), 200},
		{"the draft needs a token", e, req("GET", "/admin/v1/catalog/draft", "", nil), 401},
		{"replace the draft", e, adm("PUT", "/admin/v1/catalog/draft", js(fixture)), 200},
		{"the draft, not modified", e, func() *http.Request {
			return adm("GET", "/admin/v1/catalog/draft", nil, "If-None-Match", draftETag)()
		}, 304},
		{"replace the draft if unchanged", e, func() *http.Request {
			return adm("PUT", "/admin/v1/catalog/draft", js(fixture), "If-Match", draftETag)()
		}, 200},
		{"replace the draft if it is a stale ETag", e, adm("PUT", "/admin/v1/catalog/draft", js(fixture), "If-Match", `"draft-999"`), 412},
		{"a draft that cannot be read", e, adm("PUT", "/admin/v1/catalog/draft", js(`{"itemz":[]}`)), 422},
		{"a draft must be JSON or YAML", e, adm("PUT", "/admin/v1/catalog/draft", js(`x`), "Content-Type", "text/plain"), 415},
		{"a draft over the limit", e, adm("PUT", "/admin/v1/catalog/draft", big(64<<10+1)), 413},
		{"a viewer may not edit the draft", e, viewer("PUT", "/admin/v1/catalog/draft", js(fixture)), 403},
		{"validate the draft", e, adm("POST", "/admin/v1/catalog/draft/validate", nil), 200},
		{"validate takes no body", e, adm("POST", "/admin/v1/catalog/draft/validate", js(fixture)), 400},
		{"the diff", e, adm("GET", "/admin/v1/catalog/draft/diff", nil), 200},
		{"the diff refuses player tokens", e, req("GET", "/admin/v1/catalog/draft/diff", playerTok, nil), 403},
	}
	for _, ent := range []struct{ section, id, body, replaced, wrongID string }{
		{"currencies", "rubies", `{"name":"Rubies"}`, `{"id":"rubies","name":"Red rubies"}`, `{"id":"other","name":"x"}`},
		{"items", "bow", `{"name":"Bow","kind":"durable","prices":[{"currency":"gold","amount":50}]}`, `{"name":"Bow"}`, `{"id":"other"}`},
		{"bundles", "pack", `{"name":"Pack","prices":[{"currency":"gems","amount":3}],"contents":{"items":{"potion":2}}}`, `{"name":"Pack","contents":{"currencies":{"gold":10}}}`, `{"id":"other"}`},
		{"store_products", "google:com.example.new", `{"grants":{"currencies":{"gems":10}}}`, `{"store":"google","product_id":"com.example.new","grants":{"items":{"potion":1}}}`, `{"store":"apple"}`},
	} {
		url := "/admin/v1/catalog/draft/" + ent.section + "/" + ent.id
		missing := "/admin/v1/catalog/draft/" + ent.section + "/missing"
		if ent.section == "store_products" {
			missing = "/admin/v1/catalog/draft/store_products/google:missing"
		}
		tooLong := "/admin/v1/catalog/draft/" + ent.section + "/" + strings.Repeat("x", 301)
		steps = append(steps,
			walkStep{"create a draft " + ent.section + " entity", e, adm("PUT", url, js(ent.body)), 201},
			walkStep{"read it", e, adm("GET", url, nil), 200},
			walkStep{"read it, not modified", e, func() *http.Request { return adm("GET", url, nil, "If-None-Match", entityETag)() }, 304},
			walkStep{"replace it if unchanged", e, func() *http.Request { return adm("PUT", url, js(ent.replaced), "If-Match", entityETag)() }, 200},
			walkStep{"replace it with a stale ETag", e, adm("PUT", url, js(ent.replaced), "If-Match", `"e-stale"`), 412},
			walkStep{"a body whose id is not the URL's", e, adm("PUT", url, js(ent.wrongID)), 422},
			walkStep{"an entity must be JSON or YAML", e, adm("PUT", url, js(`x`), "Content-Type", "text/plain"), 415},
			walkStep{"an entity over the limit", e, adm("PUT", url, big(64<<10+1)), 413},
			walkStep{"an id too long", e, adm("GET", tooLong, nil), 400},
			walkStep{"an id too long to write", e, adm("PUT", tooLong, js(ent.body)), 400},
			walkStep{"an id too long to delete", e, adm("DELETE", tooLong, nil), 400},
			walkStep{"an unknown entity", e, adm("GET", missing, nil), 404},
			walkStep{"a viewer may read it", e, viewer("GET", url, nil), 200},
			walkStep{"a viewer may not write it", e, viewer("PUT", url, js(ent.body)), 403},
			walkStep{"a viewer may not delete it", e, viewer("DELETE", url, nil), 403},
			walkStep{"reading needs a token", e, req("GET", url, "", nil), 401},
			walkStep{"delete it with a stale ETag", e, adm("DELETE", url, nil, "If-Match", `"e-stale"`), 412},
			walkStep{"delete it", e, adm("DELETE", url, nil), 204},
			walkStep{"delete it again", e, adm("DELETE", url, nil), 404},
		)
	}
	steps = append(steps, []walkStep{
		{"schedule the draft", e, adm("POST", "/admin/v1/catalog/publish", js(`{"note":"walk","publish_at":"`+future+`"}`)), 201},
		{"publishing now would supersede it", e, adm("POST", "/admin/v1/catalog/publish", js(`{}`)), 409},
		{"publish refuses a past time", e, adm("POST", "/admin/v1/catalog/publish", js(`{"publish_at":"2001-01-01T00:00:00Z"}`)), 400},
		{"publish refuses a stale draft ETag", e, adm("POST", "/admin/v1/catalog/publish", js(`{}`), "If-Match", `"draft-999"`), 412},
		{"publish takes JSON", e, adm("POST", "/admin/v1/catalog/publish", js(`x`), "Content-Type", "text/plain"), 415},
		{"publish body over the limit", e, adm("POST", "/admin/v1/catalog/publish", big(64<<10+1)), 413},
		{"a viewer may not publish", e, viewer("POST", "/admin/v1/catalog/publish", js(`{}`)), 403},
		{"a whole catalog over a schedule", e, adm("PUT", "/admin/v1/catalog", js(fixture)), 409},
		{"a whole catalog, superseding", e, adm("PUT", "/admin/v1/catalog?supersede_scheduled=true&note=walk", js(fixture)), 201},
		{"supersede_scheduled is a boolean", e, adm("PUT", "/admin/v1/catalog?supersede_scheduled=maybe", js(fixture)), 400},
		{"a whole catalog that is invalid", e, adm("PUT", "/admin/v1/catalog", js(`{"currencies":[]}`)), 422},
		{"a whole catalog must be JSON or YAML", e, adm("PUT", "/admin/v1/catalog", js(`x`), "Content-Type", "text/plain"), 415},
		{"a whole catalog over the limit", e, adm("PUT", "/admin/v1/catalog", big(64<<10+1)), 413},
		{"a viewer may not publish a catalog", e, viewer("PUT", "/admin/v1/catalog", js(fixture)), 403},
		{"an invalid draft", e, adm("PUT", "/admin/v1/catalog/draft", js(`{"currencies":[]}`)), 200},
		{"an invalid draft does not publish", e, adm("POST", "/admin/v1/catalog/publish", nil), 422},
		{"roll back", e, adm("POST", "/admin/v1/catalog/rollback", js(`{"version":1,"supersede_scheduled":true}`)), 201},
		{"roll back needs a version", e, adm("POST", "/admin/v1/catalog/rollback", js(`{}`)), 400},
		{"roll back to no version", e, adm("POST", "/admin/v1/catalog/rollback", js(`{"version":999}`)), 404},
		{"roll back takes JSON", e, adm("POST", "/admin/v1/catalog/rollback", js(`x`), "Content-Type", "text/plain"), 415},
		{"roll back body over the limit", e, adm("POST", "/admin/v1/catalog/rollback", big(64<<10+1)), 413},
		{"a viewer may not roll back", e, viewer("POST", "/admin/v1/catalog/rollback", js(`{"version":1}`)), 403},
		{"versions", e, adm("GET", "/admin/v1/catalog/versions?limit=2", nil), 200},
		{"versions refuse limit 0", e, adm("GET", "/admin/v1/catalog/versions?limit=0", nil), 400},
		{"a version", e, adm("GET", "/admin/v1/catalog/versions/1", nil), 200},
		{"a version as YAML", e, adm("GET", "/admin/v1/catalog/versions/1", nil, "Accept", "application/yaml"), 200},
		{"a version that is not a number", e, adm("GET", "/admin/v1/catalog/versions/abc", nil), 400},
		{"a version that does not exist", e, adm("GET", "/admin/v1/catalog/versions/999", nil), 404},
		{"versions need a token", e, req("GET", "/admin/v1/catalog/versions", "", nil), 401},

		// Stores.
		{"redeem a signed transaction", se.env, func() *http.Request {
			return receiptRequest("p1", appleJWS(se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "w-1", AppAccountToken: server.AppAccountToken("p1")})))
		}, 201},
		{"redeem it again", se.env, func() *http.Request {
			return receiptRequest("p1", appleJWS(se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "w-1", AppAccountToken: server.AppAccountToken("p1")})))
		}, 200},
		{"another player redeems it", se.env, func() *http.Request {
			return receiptRequest("p2", appleJWS(se.mint(t, fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "w-1"})))
		}, 409},
		{"a receipt needs a store", se.env, func() *http.Request { return receiptRequest("p1", map[string]string{"receipt": "x"}) }, 400},
		{"a receipt that is not signed", se.env, func() *http.Request { return receiptRequest("p1", appleJWS("a.b.c")) }, 422},
		{"a receipt must be JSON", se.env, func() *http.Request {
			r := receiptRequest("p1", appleJWS("a.b.c"))
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415},
		{"a receipt over 1 MiB", se.env, func() *http.Request { return receiptRequest("p1", big(1<<20+1)) }, 413},
		{"a receipt needs a token", se.env, req("POST", "/v1/receipts", "", js(`{}`)), 401},
		{"an Apple notification", se.env, func() *http.Request {
			return newRequest("POST", "/v1/stores/apple/notifications",
				se.appleNotification(t, "TEST", "walk-n1", fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "w-2"}),
				"Content-Type", "application/json")
		}, 200},
		{"an Apple notification that is not JSON", se.env, req("POST", "/v1/stores/apple/notifications", "", js(`x`)), 400},
		{"an Apple notification not signed by Apple", se.env, req("POST", "/v1/stores/apple/notifications", "", js(`{"signedPayload":"a.b.c"}`)), 422},
		{"a Google notification", se.env, func() *http.Request {
			r := newRequest("POST", "/v1/stores/google/notifications",
				pushBody(t, "walk-m1", map[string]any{"testNotification": map[string]any{"version": "1.0"}}), "Content-Type", "application/json")
			r.Header.Set("Authorization", bearer(se.pushToken(t, nil)))
			return r
		}, 200},
		{"a Google notification without a token", se.env, req("POST", "/v1/stores/google/notifications", "", js(`{}`)), 401},
		{"a Google notification that is not JSON", se.env, func() *http.Request {
			return req("POST", "/v1/stores/google/notifications", se.pushToken(t, nil), js(`x`))()
		}, 400},

		// Creators (ce: the program on, creators ninja and maker).
		{"list creators", ce, adm("GET", "/admin/v1/creators?limit=10", nil), 200},
		{"list creators refuses limit 0", ce, adm("GET", "/admin/v1/creators?limit=0", nil), 400},
		{"create a creator", ce, adm("POST", "/admin/v1/creators", js(`{"creator_id":"walker-fan","display_name":"Fan","codes":["FAN"]}`)), 201},
		{"a creator id is taken", ce, adm("POST", "/admin/v1/creators", js(`{"creator_id":"walker-fan","display_name":"Fan"}`)), 409},
		{"a creator", ce, adm("GET", "/admin/v1/creators/ninja", nil), 200},
		{"a creator that does not exist", ce, adm("GET", "/admin/v1/creators/nobody", nil), 404},
		{"suspend a creator", ce, adm("PATCH", "/admin/v1/creators/walker-fan", js(`{"status":"suspended"}`)), 200},
		{"a status that is not one", ce, adm("PATCH", "/admin/v1/creators/walker-fan", js(`{"status":"gone"}`)), 400},
		{"add a code", ce, adm("POST", "/admin/v1/creators/ninja/codes", js(`{"code":"NINJA-2"}`)), 201},
		{"a taken code", ce, adm("POST", "/admin/v1/creators/maker/codes", js(`{"code":"ninja-2"}`)), 409},
		{"no creator code yet", ce, req("GET", "/v1/creator-code", playerTok, nil), 404},
		{"support a creator", ce, req("PUT", "/v1/creator-code", playerTok, js(`{"code":"ninja"}`)), 200},
		{"an unknown creator code", ce, req("PUT", "/v1/creator-code", playerTok, js(`{"code":"NOPE"}`)), 422},
		{"the creator code", ce, req("GET", "/v1/creator-code", playerTok, nil), 200},
		{"fund the walker for creators", ce, grant("fund", `{"reason":"walk","currencies":{"gems":1000}}`), 201},
		{"nothing to pay out yet", ce, adm("POST", "/admin/v1/creators/ninja/payouts", nil, "Idempotency-Key", "walk-po-0"), 409},
		{"a purchase under the code", ce, purchase("walk-creator-buy", buy("map-pack", 10, "gems", 10)), 201},
		{"tip a creator", ce, req("POST", "/v1/creators/ninja/tips", playerTok, js(`{"currency":"gems","amount":20}`), "Idempotency-Key", "walk-tip"), 201},
		{"tip in a currency that is not tippable", ce, req("POST", "/v1/creators/ninja/tips", playerTok, js(`{"currency":"gold","amount":1}`), "Idempotency-Key", "walk-tip-2"), 409},
		{"earnings", ce, adm("GET", "/admin/v1/creators/ninja/earnings", nil), 200},
		{"earnings of nobody", ce, adm("GET", "/admin/v1/creators/nobody/earnings", nil), 404},
		{"a statement", ce, adm("GET", "/admin/v1/creators/ninja/statement", nil), 200},
		{"a statement as CSV", ce, adm("GET", "/admin/v1/creators/ninja/statement?format=csv", nil), 200},
		{"a statement from a bad time", ce, adm("GET", "/admin/v1/creators/ninja/statement?from=soon", nil), 400},
		{"pay out", ce, adm("POST", "/admin/v1/creators/ninja/payouts", nil, "Idempotency-Key", "walk-po-1"), 201},
		{"pay out again with the key", ce, adm("POST", "/admin/v1/creators/ninja/payouts", nil, "Idempotency-Key", "walk-po-1"), 201},
		{"stop supporting", ce, req("DELETE", "/v1/creator-code", playerTok, nil), 204},
		{"stop supporting needs a token", ce, req("DELETE", "/v1/creator-code", "", nil), 401},

		// Last, so that the key works for every step above.
		{"revoke the viewer key", e, adm("DELETE", "/admin/v1/keys/walk-viewer", nil), 200},
		{"revoke a key that does not exist", e, adm("DELETE", "/admin/v1/keys/nobody", nil), 404},
		{"revoking needs a token", e, req("DELETE", "/admin/v1/keys/walk-viewer", "", nil), 401},
	}...)

	s := spec(t)
	seen := map[string][]int{} // "METHOD /template" → statuses
	for _, st := range steps {
		r := st.env.do(t, st.req())
		if r.status != st.status {
			t.Errorf("%s: status %d, want %d: %s", st.name, r.status, st.status, r.body)
		}
		op, ok := s.operation(st.req())
		if !ok {
			t.Errorf("%s: no operation in the spec", st.name)
			continue
		}
		seen[op] = append(seen[op], r.status)
		switch {
		case st.name == "create a viewer key":
			var created struct{ Secret string }
			r.decode(t, &created)
			viewerKey = created.Secret
		case r.header.Get("ETag") != "" && strings.Contains(op, "/draft/") && strings.HasPrefix(op, "PUT"):
			entityETag = r.header.Get("ETag")
		case r.header.Get("ETag") != "" && op == "PUT /admin/v1/catalog/draft":
			draftETag = r.header.Get("ETag")
		}
	}

	s.eachOperation(func(name string, op *v3.Operation) {
		got := seen[name]
		if !slices.ContainsFunc(got, func(c int) bool { return c < 400 }) {
			t.Errorf("%s (%s): the walk sends it no request it accepts", name, op.OperationId)
		}
		declares4xx := false
		for code := range op.Responses.Codes.KeysFromOldest() {
			declares4xx = declares4xx || strings.HasPrefix(code, "4")
		}
		if declares4xx && !slices.ContainsFunc(got, func(c int) bool { return c >= 400 && c < 500 }) {
			t.Errorf("%s (%s): the walk sends it no request it refuses", name, op.OperationId)
		}
	})
}

// TestOpenAPIServerLimit checks the one answer env.send cannot see: a body
// over the server-wide limit, which fasthttp refuses before any handler
// runs. It must be a problem like any other, with its X-Request-Id.
func TestOpenAPIServerLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	base := e.listen(t)
	conn := dialRaw(t, base)
	// Bodies are streamed: the refusal, on Content-Length, comes once the
	// first bytes of the body have arrived.
	if _, err := fmt.Fprintf(conn, "POST /v1/purchases HTTP/1.1\r\nHost: coinop\r\nAuthorization: %s\r\n"+
		"Content-Type: application/json\r\nIdempotency-Key: k\r\nX-Request-Id: big-body-1\r\nContent-Length: %d\r\n\r\n%s",
		bearer(playerToken("p1")), 64<<20, strings.Repeat(" ", 16<<10)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	r := readResponse(t, resp)
	assertProblem(t, r, http.StatusRequestEntityTooLarge, "request_too_large")
	if got := r.header.Get("X-Request-Id"); got != "big-body-1" {
		t.Errorf("X-Request-Id = %q, want the caller's big-body-1", got)
	}
	x := exchange{method: "POST", path: "/v1/purchases", resp: r, reqHeader: http.Header{
		"Authorization": {bearer(playerToken("p1"))}, "Content-Type": {"application/json"}, "Idempotency-Key": {"k"},
	}, reqBody: []byte(buy("potion", 1, "gold", 100))}
	for _, p := range spec(t).checkExchange(x) {
		t.Errorf("openapi: %s", p)
	}
}

// TestOpenAPICheckFindsMismatches shows that the check is not vacuous: each
// of these exchanges breaks the spec in one way, and each is reported.
func TestOpenAPICheckFindsMismatches(t *testing.T) {
	t.Parallel()
	s := spec(t)
	ok := response{status: 200, header: http.Header{
		"Content-Type": {"application/json"}, "X-Request-Id": {"r1"},
	}, body: []byte(`{"status":"ok"}`)}
	with := func(f func(r *response)) response {
		r := ok
		r.header = ok.header.Clone()
		f(&r)
		return r
	}
	if p := s.checkExchange(exchange{method: "GET", path: "/healthz", resp: ok}); len(p) > 0 {
		t.Fatalf("a matching exchange is reported: %v", p)
	}
	// A batch check's entries are either a check or an error, and the
	// spec tells them apart by which of owned and error is present.
	batch := exchange{method: "POST", path: "/v1/entitlements/check",
		reqHeader: http.Header{"Content-Type": {"application/json"}, "Authorization": {bearer(walkServerToken)}},
		reqBody:   []byte(`{"checks":[{"player_id":"p1","item_id":"sword"},{"player_id":"p1","item_id":"swrod"}]}`),
		resp: with(func(r *response) {
			r.body = []byte(`{"results":[{"player_id":"p1","item_id":"sword","owned":true,"quantity":1},` +
				`{"player_id":"p1","item_id":"swrod","error":{"code":"item_not_found","detail":"The catalog has no such item or currency."}}]}`)
		})}
	if p := s.checkExchange(batch); len(p) > 0 {
		t.Fatalf("a batch with a check and an error is reported: %v", p)
	}
	for _, tc := range []struct {
		name string
		x    exchange
	}{
		{"an undeclared status", exchange{method: "GET", path: "/healthz", resp: with(func(r *response) { r.status = 418 })}},
		{"an undeclared header", exchange{method: "GET", path: "/healthz", resp: with(func(r *response) { r.header.Set("Location", "/x") })}},
		{"a missing X-Request-Id", exchange{method: "GET", path: "/healthz", resp: with(func(r *response) { r.header.Del("X-Request-Id") })}},
		{"a body of the wrong shape", exchange{method: "GET", path: "/healthz", resp: with(func(r *response) { r.body = []byte(`{"status":"fine"}`) })}},
		{"an undeclared body member", exchange{method: "GET", path: "/healthz", resp: with(func(r *response) { r.body = []byte(`{"status":"ok","extra":1}`) })}},
		{"an unknown route that answers 200", exchange{method: "GET", path: "/healthz/", resp: ok}},
		{"a batch result with both owned and error", exchange{method: "POST", path: "/v1/entitlements/check",
			reqHeader: http.Header{"Content-Type": {"application/json"}, "Authorization": {bearer(walkServerToken)}},
			reqBody:   []byte(`{"checks":[{"player_id":"p1","item_id":"x"}]}`),
			resp: with(func(r *response) {
				r.body = []byte(`{"results":[{"player_id":"p1","item_id":"x","owned":false,"quantity":0,"error":{"code":"item_not_found","detail":"d"}}]}`)
			})}},
		{"a request the spec refuses, accepted", exchange{method: "POST", path: "/admin/v1/keys",
			reqHeader: http.Header{"Content-Type": {"application/json"}, "Authorization": {bearer(adminToken)}},
			reqBody:   []byte(`{"name":"x","roles":["wizard"]}`),
			resp:      with(func(r *response) { r.status = 201; r.body = []byte(`{}`) })}},
	} {
		if p := s.checkExchange(tc.x); len(p) == 0 {
			t.Errorf("%s: not reported", tc.name)
		}
	}
}

// TestExactRouting: paths are matched exactly, as the spec writes them.
func TestExactRouting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for path, token := range map[string]string{
		// Under /v1/ the player group authenticates before routing.
		"/v1/catalog/": playerToken("p1"), "/v1/Catalog": playerToken("p1"), "/V1/CATALOG": "",
		"/healthz/": "", "/HEALTHZ": "", "/admin/v1/catalog/versions/": adminToken, "/Admin/v1/keys": adminToken,
	} {
		t.Run(path+" is not found", func(t *testing.T) {
			t.Parallel()
			assertProblem(t, e.get(t, path, token), http.StatusNotFound, "not_found")
		})
	}
	if r := e.get(t, "/v1/catalog", ""); r.status != http.StatusOK {
		t.Errorf("GET /v1/catalog = %s", r)
	}
}

// consoleETag reads the ETag of a console file, for a revalidation.
func consoleETag(t *testing.T, e *env, path string) string {
	t.Helper()
	return e.get(t, path, "").header.Get("ETag")
}
