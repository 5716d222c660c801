package server

import (
	"testing"

	"github.com/coinop/coinop/entitlements"
)

// FuzzParseGrant: the admin grant body decoder never panics, and what it
// accepts has a reason.
func FuzzParseGrant(f *testing.F) {
	f.Add([]byte(`{"reason":"compensation","currencies":{"gold":1000},"items":{"sword":1}}`))
	f.Add([]byte(`{"reason":"x","currencies":{"gold":1,"gold":2}}`))
	f.Add([]byte(`{"Reason":"x"}`))
	f.Add([]byte(`{"reason":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parseGrant(body)
		if err == nil && b.Reason == nil {
			t.Fatalf("accepted a grant without a reason: %q", body)
		}
	})
}

// FuzzParsePurchaseRefund: the support refund body decoder never panics,
// and what it accepts has a reason and, when given, a quantity in range.
func FuzzParsePurchaseRefund(f *testing.F) {
	f.Add([]byte(`{"reason":"bought by mistake","quantity":2,"policy":"clamp"}`))
	f.Add([]byte(`{"reason":"x","quantity":0}`))
	f.Add([]byte(`{"reason":"x","quantity":-1}`))
	f.Add([]byte(`{"reason":"x","quantity":1e300}`))
	f.Add([]byte(`{"reason":"x","reason":"y"}`))
	f.Add([]byte(`{"quantity":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		b, err := parsePurchaseRefund(body)
		if err != nil {
			return
		}
		if b.Reason == nil {
			t.Fatalf("accepted a refund without a reason: %q", body)
		}
		if b.Quantity != nil && (*b.Quantity < 1 || *b.Quantity > entitlements.MaxQuantity) {
			t.Fatalf("accepted quantity %d: %q", *b.Quantity, body)
		}
	})
}

// FuzzDecodeChecks: the batch entitlement-check body decoder never panics.
func FuzzDecodeChecks(f *testing.F) {
	f.Add([]byte(`{"checks":[{"player_id":"p1","item_id":"sword"}]}`))
	f.Add([]byte(`{"checks":[{"player_id":"p1"}],"extra":1}`))
	f.Add([]byte(`{"checks":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var b checkBody
		_ = decodeStrict(body, &b)
	})
}
