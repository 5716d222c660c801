package server

import (
	"bytes"
	"testing"
	"time"

	"github.com/coinop/coinop/entitlements"
)

// checkBodyMatches fails unless the hand-built answer, when it is built, is
// byte for byte what encodeJSON writes for the same result.
func checkBodyMatches(t *testing.T, r entitlements.CheckResult) (built bool) {
	t.Helper()
	want, err := encodeJSON(checkBodyOf(r))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := appendCheckBody(nil, r)
	if ok && !bytes.Equal(got, want) {
		t.Fatalf("appendCheckBody(%+v) = %s, encodeJSON writes %s", r, got, want)
	}
	return ok
}

func TestTheHandBuiltCheckAnswerIsEncodeJSONs(t *testing.T) {
	exp := time.Date(2026, 12, 3, 11, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		r     entitlements.CheckResult
		built bool
	}{
		{"owned", entitlements.CheckResult{PlayerID: "p1", ItemID: "sword", Owned: true, Quantity: 3}, true},
		{"not owned", entitlements.CheckResult{PlayerID: "p1", ItemID: "sword"}, true},
		{"large quantity", entitlements.CheckResult{PlayerID: "p-~!#$%", ItemID: "x.y:z", Owned: true, Quantity: 1<<63 - 1}, true},
		{"subscription", entitlements.CheckResult{PlayerID: "p1", ItemID: "vip", Owned: true, Quantity: 1, ExpiresAt: &exp}, false},
		{"unknown item", entitlements.CheckResult{PlayerID: "p1", ItemID: "nope", Err: entitlements.ErrUnknownItem}, false},
		{"HTML in an id", entitlements.CheckResult{PlayerID: "<p>&", ItemID: "sword"}, false},
		{"quote", entitlements.CheckResult{PlayerID: `p"1`, ItemID: "sword"}, false},
		{"backslash", entitlements.CheckResult{PlayerID: `p\1`, ItemID: "sword"}, false},
		{"non-ASCII", entitlements.CheckResult{PlayerID: "p1", ItemID: "épée\u2028"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if built := checkBodyMatches(t, tc.r); built != tc.built {
				t.Errorf("built by hand: %v, want %v", built, tc.built)
			}
		})
	}
}

func FuzzHandBuiltCheckAnswer(f *testing.F) {
	f.Add("p1", "sword", true, int64(1))
	f.Add("<p>", "\u2028", false, int64(0))
	f.Add("p\x00", "\xff", true, int64(-5))
	f.Fuzz(func(t *testing.T, player, item string, owned bool, quantity int64) {
		checkBodyMatches(t, entitlements.CheckResult{PlayerID: player, ItemID: item, Owned: owned, Quantity: quantity})
	})
}
