package server_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/creators"
	"github.com/coinop/coinop/entitlements"
)

// The problem titles of creators, beside those in helpers_test.go.
func init() {
	for code, title := range map[string]string{
		"creators_disabled":     "Creator program not enabled",
		"unknown_creator":       "Creator not found",
		"creator_exists":        "Creator exists",
		"unknown_creator_code":  "Unknown creator code",
		"creator_code_taken":    "Creator code taken",
		"creator_suspended":     "Creator suspended",
		"own_creator_code":      "Own creator code",
		"creator_player_linked": "Player linked to another creator",
		"payout_below_minimum":  "Nothing to pay out",
		"creator_code_not_set":  "No creator code set",
		"not_tippable":          "Currency not tippable",
		"tip_limit_exceeded":    "Daily tip limit reached",
	} {
		titles[code] = title
	}
}

// withCreators turns the creator program on, for the ledger and the
// server, as serve wires it.
func withCreators(p creators.Program) option {
	return func(c *envConfig) {
		c.creators = &p
		withLedgerOptions(entitlements.WithCreatorProgram(p))(c)
	}
}

// testProgram is the default program without a hold (earnings are
// available at once, so a payout can follow a purchase) and a small tip
// limit.
func testProgram() creators.Program {
	p := creators.DefaultProgram()
	p.Hold = 0
	p.TipDailyLimit = 100
	p.TipFeePPM = 100_000
	return p
}

// newCreatorsEnv is a server with the program on, creators ninja (code
// NINJA, linked to player ninja-player) and maker (code MAPS), and the
// fixture catalog republished with gems tippable and a map-pack made by
// maker at 30%.
func newCreatorsEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	e := newEnv(t, append([]option{withCreators(testProgram())}, opts...)...)
	for _, body := range []string{
		`{"creator_id":"ninja","display_name":"Ninja","player_id":"ninja-player","codes":["NINJA"]}`,
		`{"creator_id":"maker","display_name":"Map Maker","codes":["MAPS"]}`,
	} {
		if r := e.admin(t, "POST", "/admin/v1/creators", body); r.status != http.StatusCreated {
			t.Fatalf("create creator: %s", r)
		}
	}
	doc := fixtureCatalog(t)
	for i := range doc.Currencies {
		doc.Currencies[i].Tippable = doc.Currencies[i].ID == "gems"
	}
	doc.Items = append(doc.Items, catalog.Item{ID: "map-pack", Name: "Map pack", Kind: catalog.KindConsumable,
		Prices: []catalog.Price{{Currency: "gems", Amount: 10}}, CreatorID: "maker", CreatorSharePPM: 300_000})
	snap, err := e.store.Publish(context.Background(), doc, "creators", "test")
	if err != nil {
		t.Fatal(err)
	}
	e.live.Set(snap)
	return e
}

func (e *env) playerCall(t testing.TB, player, method, path, body string, headers ...string) response {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req := newRequest(method, path, b, append([]string{"Authorization", bearer(playerToken(player))}, headers...)...)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(t, req)
}

type earningsBody struct {
	CreatorID string             `json:"creator_id"`
	Earnings  []creators.Earning `json:"earnings"`
}

func (e *env) earnings(t testing.TB, creator string) map[string]creators.Earning {
	t.Helper()
	r := e.admin(t, "GET", "/admin/v1/creators/"+creator+"/earnings", "")
	if r.status != http.StatusOK {
		t.Fatalf("earnings of %s: %s", creator, r)
	}
	var b earningsBody
	r.decode(t, &b)
	out := map[string]creators.Earning{}
	for _, e := range b.Earnings {
		out[e.Currency] = e
	}
	return out
}

func TestCreatorRoutesAreOffWithoutTheProgram(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, r := range []response{
		e.admin(t, "GET", "/admin/v1/creators", ""),
		e.admin(t, "POST", "/admin/v1/creators", `{"creator_id":"x","display_name":"X"}`),
		e.admin(t, "GET", "/admin/v1/creators/x/earnings", ""),
		e.playerCall(t, "p1", "GET", "/v1/creator-code", ""),
		e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"NINJA"}`),
		e.playerCall(t, "p1", "POST", "/v1/creators/x/tips", `{"currency":"gems","amount":1}`, "Idempotency-Key", "t"),
	} {
		assertProblem(t, r, http.StatusNotFound, "creators_disabled")
	}
}

func TestAdminManagesCreators(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)

	r := e.admin(t, "GET", "/admin/v1/creators/ninja", "")
	var ninja creators.Creator
	r.decode(t, &ninja)
	if r.status != http.StatusOK || ninja.DisplayName != "Ninja" || ninja.Status != "active" || len(ninja.Codes) != 1 || ninja.Codes[0] != "NINJA" ||
		ninja.PlayerID == nil || *ninja.PlayerID != "ninja-player" {
		t.Fatalf("GET ninja = %s", r)
	}

	// Pages.
	r = e.admin(t, "GET", "/admin/v1/creators?limit=1", "")
	var page struct {
		Creators  []creators.Creator `json:"creators"`
		NextAfter *string            `json:"next_after"`
	}
	r.decode(t, &page)
	if len(page.Creators) != 1 || page.Creators[0].ID != "maker" || page.NextAfter == nil || *page.NextAfter != "maker" {
		t.Fatalf("first page = %s", r)
	}
	r = e.admin(t, "GET", "/admin/v1/creators?limit=1&after=maker", "")
	page.NextAfter = nil
	r.decode(t, &page)
	if len(page.Creators) != 1 || page.Creators[0].ID != "ninja" || page.NextAfter != nil {
		t.Fatalf("second page = %s", r)
	}

	// A code, then suspension and back.
	r = e.admin(t, "POST", "/admin/v1/creators/ninja/codes", `{"code":"ninja-2026"}`)
	if r.status != http.StatusCreated || !strings.Contains(string(r.body), `"ninja-2026"`) {
		t.Fatalf("add code = %s", r)
	}
	for _, status := range []string{"suspended", "active"} {
		r = e.admin(t, "PATCH", "/admin/v1/creators/ninja", `{"status":"`+status+`"}`)
		if r.status != http.StatusOK || !strings.Contains(string(r.body), `"status":"`+status+`"`) {
			t.Fatalf("PATCH %s = %s", status, r)
		}
	}
	entries, _, err := audit.New(e.pool).List(context.Background(), audit.Filter{Target: "creator:ninja"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, en := range entries {
		actions = append(actions, en.Action+"/"+en.Actor)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "creator.create/admin-token") || !strings.Contains(got, "creator.add_code/admin-token") ||
		strings.Count(got, "creator.status/admin-token") != 2 {
		t.Errorf("audit log of creator:ninja = %s", got)
	}

	cases := []struct {
		name, method, path, body string
		status                   int
		code, detail             string
	}{
		{"an existing id", "POST", "/admin/v1/creators", `{"creator_id":"ninja","display_name":"Again"}`, 409, "creator_exists", ""},
		{"a taken code in another case", "POST", "/admin/v1/creators", `{"creator_id":"copy","display_name":"Copy","codes":["ninja"]}`, 409, "creator_code_taken", ""},
		{"a player linked to another creator", "POST", "/admin/v1/creators", `{"creator_id":"twin","display_name":"Twin","player_id":"ninja-player"}`, 409, "creator_player_linked", ""},
		{"a bad id", "POST", "/admin/v1/creators", `{"creator_id":"Not OK","display_name":"X"}`, 400, "invalid_request", "creator_id"},
		{"no display name", "POST", "/admin/v1/creators", `{"creator_id":"x"}`, 400, "invalid_request", "display_name"},
		{"a blank display name", "POST", "/admin/v1/creators", `{"creator_id":"x","display_name":"  "}`, 400, "invalid_request", "display_name"},
		{"a bad code", "POST", "/admin/v1/creators", `{"creator_id":"x","display_name":"X","codes":["no"]}`, 400, "invalid_request", "codes"},
		{"an unknown field", "POST", "/admin/v1/creators", `{"creator_id":"x","display_name":"X","share":5}`, 400, "invalid_request", "share"},
		{"a creator that does not exist", "GET", "/admin/v1/creators/nobody", "", 404, "unknown_creator", ""},
		{"a malformed creator id", "GET", "/admin/v1/creators/NO%20BODY", "", 404, "unknown_creator", ""},
		{"a status that is not one", "PATCH", "/admin/v1/creators/ninja", `{"status":"banned"}`, 400, "invalid_request", "status"},
		{"a patch without status", "PATCH", "/admin/v1/creators/ninja", `{}`, 400, "invalid_request", "status"},
		{"suspending nobody", "PATCH", "/admin/v1/creators/nobody", `{"status":"suspended"}`, 404, "unknown_creator", ""},
		{"a code for nobody", "POST", "/admin/v1/creators/nobody/codes", `{"code":"NOBODY"}`, 404, "unknown_creator", ""},
		{"a taken code", "POST", "/admin/v1/creators/maker/codes", `{"code":"Ninja"}`, 409, "creator_code_taken", ""},
		{"a short code", "POST", "/admin/v1/creators/maker/codes", `{"code":"ab"}`, 400, "invalid_request", "code"},
		{"a code body without code", "POST", "/admin/v1/creators/maker/codes", `{}`, 400, "invalid_request", "code"},
		{"a page of 0", "GET", "/admin/v1/creators?limit=0", "", 400, "invalid_request", "limit"},
		{"earnings of nobody", "GET", "/admin/v1/creators/nobody/earnings", "", 404, "unknown_creator", ""},
		{"a statement of nobody", "GET", "/admin/v1/creators/nobody/statement", "", 404, "unknown_creator", ""},
		{"a statement from a bad time", "GET", "/admin/v1/creators/ninja/statement?from=yesterday", "", 400, "invalid_request", "from"},
		{"a statement to a bad time", "GET", "/admin/v1/creators/ninja/statement?to=1", "", 400, "invalid_request", "to"},
		{"a statement ending before it starts", "GET", "/admin/v1/creators/ninja/statement?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", "", 400, "invalid_request", "from"},
		{"a statement in another format", "GET", "/admin/v1/creators/ninja/statement?format=xml", "", 400, "invalid_request", "format"},
		{"a payout without a key", "POST", "/admin/v1/creators/ninja/payouts", "", 400, "idempotency_key_missing", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := assertProblem(t, e.admin(t, tc.method, tc.path, tc.body), tc.status, tc.code)
			if detail, _ := p["detail"].(string); !strings.Contains(detail, tc.detail) {
				t.Errorf("detail = %q, want it to name %q", detail, tc.detail)
			}
		})
	}
}

func TestAPlayerSetsClearsAndIsRefusedCreatorCodes(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)
	assertProblem(t, e.playerCall(t, "p1", "GET", "/v1/creator-code", ""), http.StatusNotFound, "creator_code_not_set")

	before := time.Now().Truncate(time.Second)
	r := e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"ninja"}`)
	var pc creators.PlayerCode
	r.decode(t, &pc)
	if r.status != http.StatusOK || pc.Code != "NINJA" || pc.CreatorID != "ninja" || !pc.Active || pc.PlayerID != "p1" ||
		pc.ExpiresAt.Sub(pc.SetAt) != 14*24*time.Hour || pc.SetAt.Before(before) {
		t.Fatalf("PUT = %s", r)
	}
	r = e.playerCall(t, "p1", "GET", "/v1/creator-code", "")
	var got creators.PlayerCode
	r.decode(t, &got)
	if r.status != http.StatusOK || got.CreatorID != "ninja" || !got.ExpiresAt.Equal(pc.ExpiresAt) {
		t.Fatalf("GET = %s", r)
	}
	// Replacing it.
	if r := e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"MAPS"}`); r.status != http.StatusOK || !strings.Contains(string(r.body), `"creator_id":"maker"`) {
		t.Fatalf("replace = %s", r)
	}
	if r := e.playerCall(t, "p1", "DELETE", "/v1/creator-code", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE = %s", r)
	}
	if r := e.playerCall(t, "p1", "DELETE", "/v1/creator-code", ""); r.status != http.StatusNoContent {
		t.Fatalf("DELETE again = %s", r)
	}
	assertProblem(t, e.playerCall(t, "p1", "GET", "/v1/creator-code", ""), http.StatusNotFound, "creator_code_not_set")

	assertProblem(t, e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"NOPE"}`), http.StatusUnprocessableEntity, "unknown_creator_code")
	assertProblem(t, e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"x"}`), http.StatusUnprocessableEntity, "unknown_creator_code")
	assertProblem(t, e.playerCall(t, "ninja-player", "PUT", "/v1/creator-code", `{"code":"NINJA"}`), http.StatusForbidden, "own_creator_code")
	assertProblem(t, e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{}`), http.StatusBadRequest, "invalid_request")
	assertProblem(t, e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"NINJA","days":30}`), http.StatusBadRequest, "invalid_request")
	assertProblem(t, e.playerCall(t, "", "PUT", "/v1/creator-code", `{"code":"NINJA"}`), http.StatusUnauthorized, "unauthenticated")
	if r := e.admin(t, "PATCH", "/admin/v1/creators/maker", `{"status":"suspended"}`); r.status != http.StatusOK {
		t.Fatal(r)
	}
	assertProblem(t, e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"MAPS"}`), http.StatusConflict, "creator_suspended")
}

// TestACodePurchaseEarnsAStatementAndAPayoutOnce walks the admin side of a
// creator's money: a purchase under a code, the earnings, the statement as
// JSON and CSV, and a payout that a retry does not repeat.
func TestACodePurchaseEarnsAStatementAndAPayoutOnce(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)
	start := time.Now().Add(-time.Second).UTC()
	assertProblem(t, e.admin(t, "POST", "/admin/v1/creators/ninja/payouts", "", "Idempotency-Key", "early"), http.StatusConflict, "payout_below_minimum")

	e.grant(t, "p1", "fund", map[string]int64{"gems": 1000}, nil)
	if r := e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"NINJA"}`); r.status != http.StatusOK {
		t.Fatal(r)
	}
	// 10 map packs of 10 gems: maker's item share 30% = 30 gems, ninja's
	// code 5% = 5 gems.
	if r := e.purchase(t, "p1", "buy-1", buy("map-pack", 10, "gems", 10)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	// One sword of 5 gems: 5% = 0.25 gems, carried.
	if r := e.purchase(t, "p1", "buy-2", buy("sword", 1, "gems", 5)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.Available != 5 || got.RemainderMicro != 250_000 || got.EarnedMicro != 5_250_000 || got.Paid != 0 {
		t.Errorf("ninja's gems = %+v, want 5 available and 0.25 carried", got)
	}
	if got := e.earnings(t, "maker")["gems"]; got.Available != 30 || got.EarnedMicro != 30_000_000 {
		t.Errorf("maker's gems = %+v, want 30", got)
	}

	q := "?from=" + url.QueryEscape(start.Format(time.RFC3339Nano))
	r := e.admin(t, "GET", "/admin/v1/creators/ninja/statement"+q, "")
	var st creators.Statement
	r.decode(t, &st)
	if r.status != http.StatusOK || len(st.Lines) != 2 || st.Totals["gems"] != 5_250_000 || st.Lines[0].Kind != "code" ||
		st.Lines[0].LedgerTransactionID == nil || st.Lines[0].LedgerKind == nil || *st.Lines[0].LedgerKind != "purchase" || st.Lines[1].Amount != "0.25" {
		t.Fatalf("statement = %s", r)
	}
	for _, ask := range []struct{ query, accept string }{{q + "&format=csv", ""}, {q, "text/csv"}} {
		var headers []string
		if ask.accept != "" {
			headers = []string{"Accept", ask.accept}
		}
		r := e.admin(t, "GET", "/admin/v1/creators/ninja/statement"+ask.query, "", headers...)
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") ||
			!strings.Contains(r.header.Get("Content-Disposition"), "attachment") {
			t.Fatalf("CSV statement = %s", r)
		}
		rows, err := csv.NewReader(strings.NewReader(string(r.body))).ReadAll()
		if err != nil || len(rows) != 3 || strings.Join(rows[0], ",") != strings.Join(creators.CSVHeader, ",") || rows[2][5] != "0.25" {
			t.Fatalf("CSV = %q, %v", r.body, err)
		}
	}

	// Payouts: one per key, even at once; a second key finds nothing left.
	var wg sync.WaitGroup
	results := make([]response, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.admin(t, "POST", "/admin/v1/creators/ninja/payouts", "", "Idempotency-Key", "po-1")
		}()
	}
	wg.Wait()
	replays := 0
	var first creators.Payout
	for i, r := range results {
		var po creators.Payout
		r.decode(t, &po)
		if r.status != http.StatusCreated || po.Amounts["gems"] != 5 || po.Actor != "admin-token" {
			t.Fatalf("payout %d = %s", i, r)
		}
		if first.PayoutID == 0 {
			first = po
		}
		if po.PayoutID != first.PayoutID {
			t.Errorf("payouts %d and %d with one key", first.PayoutID, po.PayoutID)
		}
		if r.header.Get("Idempotent-Replayed") == "true" {
			replays++
		}
	}
	if replays != len(results)-1 {
		t.Errorf("%d replays, want %d", replays, len(results)-1)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.Available != 0 || got.RemainderMicro != 250_000 || got.Paid != 5 {
		t.Errorf("after the payout ninja's gems = %+v", got)
	}
	assertProblem(t, e.admin(t, "POST", "/admin/v1/creators/ninja/payouts", "", "Idempotency-Key", "po-2"), http.StatusConflict, "payout_below_minimum")
	assertProblem(t, e.admin(t, "POST", "/admin/v1/creators/nobody/payouts", "", "Idempotency-Key", "po-3"), http.StatusNotFound, "unknown_creator")
}

func TestPlayersTipCreators(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gems": 1000, "gold": 1000}, nil)
	tip := func(creator, key, body string) response {
		return e.playerCall(t, "p1", "POST", "/v1/creators/"+creator+"/tips", body, "Idempotency-Key", key)
	}
	r := tip("ninja", "tip-1", `{"currency":"gems","amount":40}`)
	if r.status != http.StatusCreated || !strings.Contains(string(r.body), `"creator_credit":"36"`) {
		t.Fatalf("tip = %s", r)
	}
	if again := tip("ninja", "tip-1", `{"currency":"gems","amount":40}`); again.status != http.StatusCreated ||
		again.header.Get("Idempotent-Replayed") != "true" || string(again.body) != string(r.body) {
		t.Fatalf("replay = %s", again)
	}
	if got := e.wallet(t, "p1")["gems"]; got != 960 {
		t.Errorf("gems after one tip of 40 = %d", got)
	}
	// Support sees the tip in the player's ledger (checked against the spec).
	if page := e.ledgerPage(t, "p1", ""); !strings.Contains(fmt.Sprint(page), "tip") {
		t.Errorf("the player's ledger does not show the tip: %+v", page)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.Available != 36 {
		t.Errorf("ninja's gems = %+v, want 36 (40 less the 10%% fee)", got)
	}

	p := assertProblem(t, tip("ninja", "tip-2", `{"currency":"gems","amount":61}`), http.StatusTooManyRequests, "tip_limit_exceeded")
	if fmt.Sprintf("%v %v %v", p["limit"], p["used"], p["requested"]) != "100 40 61" || p["resets_at"] == nil {
		t.Errorf("tip_limit_exceeded = %v", p)
	}
	assertProblem(t, tip("ninja", "tip-3", `{"currency":"gold","amount":1}`), http.StatusConflict, "not_tippable")
	assertProblem(t, tip("ninja", "tip-3", `{"currency":"gold","amount":1}`), http.StatusConflict, "not_tippable")
	assertProblem(t, tip("nobody", "tip-4", `{"currency":"gems","amount":1}`), http.StatusNotFound, "unknown_creator")
	assertProblem(t, tip("ninja", "tip-5", `{"currency":"gems"}`), http.StatusBadRequest, "invalid_request")
	assertProblem(t, tip("ninja", "tip-5", `{"currency":"gems","amount":0}`), http.StatusBadRequest, "invalid_request")
	assertProblem(t, tip("ninja", "tip-5", `{"amount":1}`), http.StatusBadRequest, "invalid_request")
	assertProblem(t, e.playerCall(t, "p1", "POST", "/v1/creators/ninja/tips", `{"currency":"gems","amount":1}`), http.StatusBadRequest, "idempotency_key_missing")
	assertProblem(t, tip("ninja", "tip-6", `{"currency":"gems","amount":2000}`), http.StatusTooManyRequests, "tip_limit_exceeded")
	if r := e.admin(t, "PATCH", "/admin/v1/creators/ninja", `{"status":"suspended"}`); r.status != http.StatusOK {
		t.Fatal(r)
	}
	assertProblem(t, tip("ninja", "tip-7", `{"currency":"gems","amount":1}`), http.StatusConflict, "creator_suspended")
}

// TestABundleUnderACodeCreditsTheShareOfItsPrice: a bundle is a purchase
// like any other for a code, 5% of its price.
func TestABundleUnderACodeCreditsTheShareOfItsPrice(t *testing.T) {
	t.Parallel()
	e := newCreatorsEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gems": 100}, nil)
	if r := e.playerCall(t, "p1", "PUT", "/v1/creator-code", `{"code":"NINJA"}`); r.status != http.StatusOK {
		t.Fatal(r)
	}
	if r := e.purchase(t, "p1", "starter", buy("starter", 1, "gems", 50)); r.status != http.StatusCreated {
		t.Fatal(r)
	}
	if got := e.earnings(t, "ninja")["gems"]; got.EarnedMicro != 2_500_000 || got.Available != 2 || got.RemainderMicro != 500_000 {
		t.Errorf("ninja's gems after a 50-gem bundle = %+v, want 2.5", got)
	}
}
