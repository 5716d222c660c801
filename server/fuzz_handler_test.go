package server_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
)

// FuzzPurchaseHandler sends arbitrary bodies and idempotency keys through
// the whole stack to a real database. Whatever arrives, the answer is one
// of the documented outcomes, never a 5xx, errors are problem documents, and
// the books still balance.
func FuzzPurchaseHandler(f *testing.F) {
	e := newEnv(f)
	e.grant(f, "fuzzer", "fund", map[string]int64{"gold": 1_000_000_000_000, "gems": 1_000_000_000_000}, nil)
	for _, seed := range []struct{ key, body string }{
		{"a", buy("potion", 1, "gold", 100)},
		{"a", buy("potion", 2, "gold", 100)},
		{"b", buy("sword", 1, "gems", 5)},
		{"c", buy("starter", 3, "gems", 50)},
		{"d", buy("arrow", 1000, "gold", 1)},
		{"e", buy("relic", 1, "gold", 10)},
		{"f", buy("dragon", 1, "gold", 10)},
		{"g", `{"item_id":"potion","quantity":1,"price":{"currency":"gold","amount":100}}junk`},
		{"", buy("potion", 1, "gold", 100)},
		{"key with space", buy("potion", 1, "gold", 100)},
		{"h", `{"item_id":"potion","quantity":1001,"price":{"currency":"gold","amount":100}}`},
		{"i", `{"item_id":"` + string(make([]byte, 300)) + `"}`},
	} {
		f.Add(seed.key, []byte(seed.body))
	}
	f.Cleanup(func() { e.assertAuditOK(f) })
	allowed := map[int]bool{201: true, 400: true, 402: true, 404: true, 409: true, 413: true, 422: true}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, key string, body []byte) {
		// Keys from the fuzzer are often reused on purpose; prefix them
		// per run so that one run's outcomes do not leak into another's.
		key = fmt.Sprint(n.Add(1), "-", key)
		req := newRequest(http.MethodPost, "/v1/purchases", body,
			"Authorization", bearer(playerToken("fuzzer")), "Content-Type", "application/json")
		req.Header["Idempotency-Key"] = []string{key}
		r, err := e.sendChecked(t, req)
		if err != nil {
			// Header values net/http refuses to write never reach the server.
			t.Skipf("request not sendable: %v", err)
		}
		if !allowed[r.status] {
			t.Fatalf("key %q body %q: %s", key, body, r)
		}
		if r.status != http.StatusCreated {
			code, _ := r.object(t)["code"].(string)
			assertProblem(t, r, r.status, code)
			return
		}
		var got receipt
		r.decode(t, &got)
		if got.PurchaseID == "" || got.ItemID == "" || got.Quantity < 1 || got.Price.Amount < 1 {
			t.Fatalf("receipt %s for %q", r.body, body)
		}
	})
}
