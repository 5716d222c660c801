package server

import (
	"testing"
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
