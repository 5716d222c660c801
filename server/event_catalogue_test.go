package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/receipts/fakestore"
)

// readmeEventExamples reads the event catalogue of README.md: the json
// blocks between the event-catalogue markers, each an envelope, by type.
func readmeEventExamples(t *testing.T) map[string]map[string]any {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	start, end := bytes.Index(b, []byte("<!-- event-catalogue -->")), bytes.Index(b, []byte("<!-- /event-catalogue -->"))
	if start < 0 || end < start {
		t.Fatal("README.md has no <!-- event-catalogue --> … <!-- /event-catalogue --> section")
	}
	out := map[string]map[string]any{}
	for _, m := range regexp.MustCompile("(?s)```json\n(.*?)```").FindAllSubmatch(b[start:end], -1) {
		var env map[string]any
		if err := json.Unmarshal(m[1], &env); err != nil {
			t.Fatalf("README event example is not JSON: %v\n%s", err, m[1])
		}
		typ, _ := env["type"].(string)
		if _, dup := out[typ]; dup || typ == "" {
			t.Fatalf("README event example with no or a repeated type %q", typ)
		}
		out[typ] = env
	}
	return out
}

// keyDiff says where want and got differ in their keys, recursively
// (objects by key, arrays element by element against want's first), or "".
func keyDiff(path string, want, got any) string {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return path + ": an object in README, not in the event"
		}
		keys := func(m map[string]any) string {
			var k []string
			for key := range m {
				k = append(k, key)
			}
			sort.Strings(k)
			return strings.Join(k, ",")
		}
		if keys(w) != keys(g) {
			return path + ": README keys {" + keys(w) + "}, event keys {" + keys(g) + "}"
		}
		for k := range w {
			if d := keyDiff(path+"."+k, w[k], g[k]); d != "" {
				return d
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			return path + ": an array in README, not in the event"
		}
		if len(w) == 0 || len(g) == 0 {
			if len(w) != len(g) {
				return path + ": README array and event array differ in being empty"
			}
			return ""
		}
		for i := range g {
			if d := keyDiff(path+"[]", w[0], g[i]); d != "" {
				return d
			}
		}
	}
	return ""
}

// TestReadmeEventCatalogue: every event type the postings and the catalog
// write has an example in README's event catalogue with exactly the keys
// (recursively) in its data as the real event, and README shows no
// type this test does not produce, so the catalogue cannot drift.
func TestReadmeEventCatalogue(t *testing.T) {
	t.Parallel()
	e := newEconomyEnv(t)
	const p = "p1"
	e.grant(t, p, "g1", map[string]int64{"gold": 1000}, nil)
	if r := e.purchase(t, p, "buy-1", buy("potion", 2, "gold", 100)); r.status != http.StatusCreated {
		t.Fatalf("purchase: %s", r)
	}
	for _, m := range []struct{ route, key, body string }{
		{"awards", "a1", `{"source":"match-service","reason":"won","items":{"arrow":3}}`},
		{"spends", "s1", `{"source":"match-service","reason":"entry fee","currencies":{"gold":10}}`},
		{"consumptions", "c1", `{"source":"match-service","reason":"drank","items":{"potion":1}}`},
		{"exchanges", "x1", `{"source":"crafting","reason":"craft","take":{"items":{"potion":1}},"give":{"currencies":{"gems":1}}}`},
	} {
		if r := e.move(t, m.route, p, m.key, m.body); r.status != http.StatusCreated {
			t.Fatalf("%s: %s", m.route, r)
		}
	}
	if r := e.do(t, newRequest(http.MethodPost, "/v1/consumptions", []byte(`{"item_id":"arrow","quantity":1}`),
		"Authorization", bearer(playerToken(p)), "Idempotency-Key", "pc1")); r.status != http.StatusCreated {
		t.Fatalf("player consumption: %s", r)
	}

	r := e.get(t, "/v1/events?after=0", economyServerToken)
	var page struct {
		Events []map[string]any `json:"events"`
	}
	r.decode(t, &page)
	real := map[string]map[string]any{}
	for _, ev := range page.Events {
		typ, _ := ev["type"].(string)
		real[typ] = ev
	}
	// Store events: a redemption and its refund, over the fake store.
	se := newStoreEnv(t)
	tx := fakestore.TransactionClaims{ProductID: "com.example.gems100", TransactionID: "3001"}
	if r := se.redeem(t, "p1", appleJWS(se.mint(t, tx))); r.status != http.StatusCreated {
		t.Fatalf("redeem: %s", r)
	}
	t0 := time.Now()
	refund := tx
	refund.RevocationDate, refund.SignedDate = t0, t0
	if r := se.postApple(t, se.appleNotification(t, "REFUND", "8f7c4a52-0000-4000-8000-000000000001", refund)); r.status != http.StatusOK {
		t.Fatalf("refund notification: %s", r)
	}
	se.runWorker(t)
	// The refund reversed: the transaction as Apple signs it afterwards.
	reversed := tx
	reversed.SignedDate = t0.Add(time.Second)
	if r := se.postApple(t, se.appleNotification(t, "REFUND_REVERSED", "8f7c4a52-0000-4000-8000-000000000002", reversed)); r.status != http.StatusOK {
		t.Fatalf("refund reversed notification: %s", r)
	}
	se.runWorker(t)
	// A subscription's first purchase: subscription.active.
	sub := fakestore.TransactionClaims{ProductID: "com.example.vip", TransactionID: "3101", Type: "Auto-Renewable Subscription",
		ExpiresDate: time.Now().Add(30 * 24 * time.Hour)}
	if r := se.redeem(t, "p2", appleJWS(se.mint(t, sub))); r.status != http.StatusCreated {
		t.Fatalf("redeem subscription: %s", r)
	}
	collect(t, se.pool, real, `type LIKE 'ledger.store%' OR type LIKE 'subscription.%'`)

	// Creator events: a purchase under a code (creator.credit), a tip
	// (ledger.tip) and a payout (creator.payout).
	ce := newCreatorsEnv(t)
	ce.grant(t, "fan", "fund", map[string]int64{"gems": 1000}, nil)
	if r := ce.playerCall(t, "fan", "PUT", "/v1/creator-code", `{"code":"NINJA"}`); r.status != http.StatusOK {
		t.Fatalf("set code: %s", r)
	}
	if r := ce.purchase(t, "fan", "buy-map", buy("map-pack", 10, "gems", 10)); r.status != http.StatusCreated {
		t.Fatalf("purchase under a code: %s", r)
	}
	if r := ce.playerCall(t, "fan", "POST", "/v1/creators/ninja/tips", `{"currency":"gems","amount":40}`, "Idempotency-Key", "tip-1"); r.status != http.StatusCreated {
		t.Fatalf("tip: %s", r)
	}
	if r := ce.admin(t, "POST", "/admin/v1/creators/ninja/payouts", "", "Idempotency-Key", "payout-1"); r.status != http.StatusCreated {
		t.Fatalf("payout: %s", r)
	}
	// Support refunds 2 of the 10 map packs after the payout
	// (ledger.purchase_refund, a creator.reversal per credit).
	path := fmt.Sprintf("/admin/v1/players/fan/purchases/%d/refund", ce.latestOfKind(t, "fan", "purchase"))
	if r := ce.admin(t, "POST", path, `{"reason":"bought by mistake","quantity":2}`, "Idempotency-Key", "refund-1"); r.status != http.StatusCreated {
		t.Fatalf("refund: %s", r)
	}
	collect(t, ce.pool, real, `type LIKE 'creator.%' OR type IN ('ledger.tip', 'ledger.purchase_refund')`)
	for _, typ := range []string{"ledger.store_purchase", "ledger.store_refund", "ledger.store_refund_reversal", "subscription.active",
		"creator.credit", "creator.payout", "ledger.tip", "ledger.purchase_refund", "creator.reversal"} {
		if _, ok := real[typ]; !ok {
			t.Fatalf("no %s event was written", typ)
		}
	}
	checkCatalogue(t, real)
}

// collect adds the first event of each type matching where to real, in
// the envelope's shape.
func collect(t *testing.T, pool *pgxpool.Pool, real map[string]map[string]any, where string) {
	t.Helper()
	rows, err := pool.Query(t.Context(), `SELECT id, type, player_id, created_at, data FROM events WHERE `+where+` ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			id     int64
			typ    string
			player *string
			at     time.Time
			data   map[string]any
		)
		if err := rows.Scan(&id, &typ, &player, &at, &data); err != nil {
			t.Fatal(err)
		}
		if _, seen := real[typ]; !seen { // the first of a type: README shows the plain case
			real[typ] = map[string]any{"id": id, "type": typ, "player_id": player, "created_at": at.UTC(), "data": data}
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
}

// checkCatalogue compares README's examples with the real events.
func checkCatalogue(t *testing.T, real map[string]map[string]any) {
	t.Helper()
	docs := readmeEventExamples(t)
	for typ, env := range real {
		ex, ok := docs[typ]
		if !ok {
			b, _ := json.Marshal(env)
			t.Errorf("README's event catalogue has no %s; the real event is\n%s", typ, b)
			continue
		}
		if d := keyDiff(typ+".data", ex["data"], env["data"]); d != "" {
			b, _ := json.Marshal(env)
			t.Errorf("README's %s example differs from the real event at %s; the real event is\n%s", typ, d, b)
		}
	}
	for typ := range docs {
		if _, ok := real[typ]; !ok {
			t.Errorf("README's event catalogue shows %s, which this test does not produce", typ)
		}
	}
}
