package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinop/coinop/catalog"
)

// adminTitles are the titles of the problem codes of the catalog workflow
// and keys (the other codes are in helpers_test.go).
var adminTitles = map[string]string{
	"precondition_failed":       "Precondition failed",
	"catalog_entity_not_found":  "Catalog entity not found",
	"catalog_version_not_found": "Catalog version not found",
	"schedule_conflict":         "Scheduled version would be superseded",
	"key_not_found":             "Key not found",
	"key_name_taken":            "Key name already used",
	"webhook_not_found":         "Webhook endpoint not found",
	"event_not_found":           "Event not found",
	"invalid_webhook":           "Webhook setting refused",
}

// wantProblem checks that r is a problem document with this status and
// code, and returns its body.
func wantProblem(t testing.TB, r response, status int, code string) map[string]any {
	t.Helper()
	if want, ok := adminTitles[code]; ok {
		if r.status != status {
			t.Fatalf("status = %d, want %d (%s): %s", r.status, status, code, r)
		}
		p := r.object(t)
		if p["code"] != code || p["title"] != want || p["type"] != "urn:coinop:problem:"+code || r.header.Get("Content-Type") != problemCT {
			t.Errorf("problem = %s, want code %s titled %q", r, code, want)
		}
		return p
	}
	return assertProblem(t, r, status, code)
}

// admin sends an admin request with the bootstrap token; headers are name,
// value pairs.
func (e *env) admin(t testing.TB, method, path, body string, headers ...string) response {
	t.Helper()
	return e.adminAs(t, adminToken, method, path, body, headers...)
}

func (e *env) adminAs(t testing.TB, token, method, path, body string, headers ...string) response {
	t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	req := newRequest(method, path, b, headers...)
	req.Header.Set("Authorization", bearer(token))
	if body != "" && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return e.do(t, req)
}

type draftStatus struct {
	Revision int64             `json:"revision"`
	ETag     string            `json:"etag"`
	Valid    bool              `json:"valid"`
	Errors   []catalog.Problem `json:"errors"`
}

// TestDesignerLoop walks a full cycle through the admin API: edit an entity
// of the draft, validate, diff, publish, see it live, roll back, and find
// every write in the audit log.
func TestDesignerLoop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.admin(t, "GET", "/admin/v1/catalog/draft", "")
	if r.status != 200 || r.header.Get("ETag") != `"draft-0.1"` {
		t.Fatalf("GET draft: %s (ETag %s)", r, r.header.Get("ETag"))
	}
	var draft catalog.Catalog
	r.decode(t, &draft)
	if len(draft.Items) != 4 {
		t.Fatalf("the untouched draft is the live catalog: %s", r.body)
	}

	// Edit: a sword sale, an invalid new item, then fix the item.
	sword := e.admin(t, "GET", "/admin/v1/catalog/draft/items/sword", "")
	if sword.status != 200 || !strings.HasPrefix(sword.header.Get("ETag"), `"e-`) {
		t.Fatalf("GET sword: %s", sword)
	}
	r = e.admin(t, "PUT", "/admin/v1/catalog/draft/items/sword",
		`{"name":"Sword","kind":"durable","prices":[{"currency":"gold","amount":400},{"currency":"gems","amount":5}]}`,
		"If-Match", sword.header.Get("ETag"))
	if r.status != 200 || r.header.Get("ETag") == sword.header.Get("ETag") {
		t.Fatalf("PUT sword: %s", r)
	}
	r = e.admin(t, "PUT", "/admin/v1/catalog/draft/items/bow", "name: Bow\nkind: bow\nprices: []\n", "Content-Type", "application/yaml")
	if r.status != 201 || r.header.Get("Location") != "/admin/v1/catalog/draft/items/bow" {
		t.Fatalf("PUT bow: %s", r)
	}

	var st draftStatus
	r = e.admin(t, "POST", "/admin/v1/catalog/draft/validate", "")
	r.decode(t, &st)
	if r.status != 200 || st.Valid || len(st.Errors) != 2 || st.Errors[0].Path != "items[4].kind" || st.Errors[1].Path != "items[4].prices" {
		t.Fatalf("validate: %s", r)
	}
	wantProblem(t, e.admin(t, "POST", "/admin/v1/catalog/publish", `{"note":"too early"}`), 422, "catalog_invalid")

	r = e.admin(t, "PUT", "/admin/v1/catalog/draft/items/bow", `{"name":"Bow","kind":"durable","prices":[{"currency":"gold","amount":800}]}`)
	if r.status != 200 {
		t.Fatalf("fix bow: %s", r)
	}
	r = e.admin(t, "POST", "/admin/v1/catalog/draft/validate", "")
	r.decode(t, &st)
	if !st.Valid || st.Revision != 3 || st.ETag != `"draft-3"` {
		t.Fatalf("validate after the fix: %s", r)
	}

	var diff catalog.Diff
	r = e.admin(t, "GET", "/admin/v1/catalog/draft/diff", "")
	r.decode(t, &diff)
	if r.status != 200 || diff.FromVersion != 1 || diff.Summary != (catalog.DiffSummary{Added: 1, Changed: 1}) || diff.DraftETag != st.ETag {
		t.Fatalf("diff: %s", r)
	}
	if len(diff.PriceChanges) != 2 || diff.PriceChanges[0].ID != "bow" || diff.PriceChanges[0].Before != nil ||
		diff.PriceChanges[1].ID != "sword" || *diff.PriceChanges[1].Before != 500 || *diff.PriceChanges[1].After != 400 {
		t.Errorf("price changes (the new bow's price, then the sword's change): %+v", diff.PriceChanges)
	}

	var v catalog.VersionInfo
	r = e.admin(t, "POST", "/admin/v1/catalog/publish", `{"note":"sword sale"}`, "If-Match", diff.DraftETag)
	r.decode(t, &v)
	if r.status != 201 || v.Version != 2 || v.Status != "live" || v.CreatedBy != "admin-token" || r.header.Get("Location") != "/admin/v1/catalog/versions/2" {
		t.Fatalf("publish: %s", r)
	}
	live := e.getCatalog(t, "")
	var got catalogResponse
	live.decode(t, &got)
	if got.Version != 2 || price(t, got.Catalog, "sword") != 400 {
		t.Fatalf("GET /v1/catalog after publish: %s", live)
	}

	r = e.admin(t, "POST", "/admin/v1/catalog/rollback", `{"version":1}`)
	r.decode(t, &v)
	if r.status != 201 || v.Version != 3 || v.SourceVersion == nil || *v.SourceVersion != 1 || v.Note != "rollback to version 1" {
		t.Fatalf("rollback: %s", r)
	}
	e.getCatalog(t, "").decode(t, &got)
	if got.Version != 3 || price(t, got.Catalog, "sword") != 500 || len(got.Catalog.Items) != 4 {
		t.Fatalf("after rollback the live catalog is version 1's: %+v", got)
	}
	r = e.admin(t, "GET", "/admin/v1/catalog/draft/diff", "")
	r.decode(t, &diff)
	if diff.Changed {
		t.Errorf("rollback resets the draft, so nothing is left to publish: %s", r.body)
	}

	var versions struct {
		Versions []catalog.VersionInfo `json:"versions"`
	}
	e.admin(t, "GET", "/admin/v1/catalog/versions", "").decode(t, &versions)
	var list []string
	for _, v := range versions.Versions {
		list = append(list, fmt.Sprintf("%d:%s", v.Version, v.Status))
	}
	if strings.Join(list, " ") != "3:live 2:past 1:past" {
		t.Errorf("versions = %v", list)
	}
	if r := e.admin(t, "GET", "/admin/v1/catalog/versions/2", "", "Accept", "application/yaml"); r.status != 200 ||
		r.header.Get("Content-Type") != "application/yaml" || !strings.Contains(string(r.body), "amount: 400") {
		t.Errorf("GET version 2 as YAML: %s", r)
	}

	var log struct {
		Entries []struct {
			Actor, Action, Target string
			RequestID             string `json:"request_id"`
		} `json:"entries"`
	}
	e.admin(t, "GET", "/admin/v1/audit-log?action=catalog.*", "", "X-Request-Id", "audit-read").decode(t, &log)
	var acts []string
	for _, en := range log.Entries {
		acts = append(acts, en.Action+" "+en.Target)
		if en.Actor != "admin-token" && en.Actor != "test" {
			t.Errorf("%s by %q", en.Action, en.Actor)
		}
	}
	want := []string{
		"catalog.rollback catalog/versions/3",
		"catalog.draft.replace catalog/draft",
		"catalog.publish catalog/versions/2",
		"catalog.draft.put catalog/draft/items/bow",
		"catalog.draft.put catalog/draft/items/bow",
		"catalog.draft.put catalog/draft/items/sword",
		"catalog.publish catalog/versions/1",
	}
	if strings.Join(acts, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log, newest first:\n%s\nwant\n%s", strings.Join(acts, "\n"), strings.Join(want, "\n"))
	}
}

// TestConcurrentDraftEditsOneWins: two editors hold the same ETag and save
// at once; one gets 200, the other 412 precondition_failed with the ETag to
// re-read, for the whole document and for one entity.
func TestConcurrentDraftEditsOneWins(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doc := string(readFile(t, "catalog.json"))
	draftETag := e.admin(t, "GET", "/admin/v1/catalog/draft", "").header.Get("ETag")
	swordETag := e.admin(t, "GET", "/admin/v1/catalog/draft/items/sword", "").header.Get("ETag")
	for _, tc := range []struct {
		name, path, etag string
		body             func(i int) string
	}{
		{"whole document", "/admin/v1/catalog/draft", draftETag, func(i int) string {
			return strings.Replace(doc, `"name": "Gold"`, fmt.Sprintf(`"name": "Gold %d"`, i), 1)
		}},
		{"one item", "/admin/v1/catalog/draft/items/sword", swordETag, func(i int) string {
			return fmt.Sprintf(`{"name":"Sword","kind":"durable","prices":[{"currency":"gold","amount":%d}]}`, 400+i)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			results := make([]response, 2)
			for i := range 2 {
				wg.Go(func() {
					req := newRequest("PUT", tc.path, []byte(tc.body(i)), "Authorization", bearer(adminToken),
						"Content-Type", "application/json", "If-Match", tc.etag)
					r, err := e.send(req)
					if err != nil {
						t.Error(err)
					}
					results[i] = r
				})
			}
			wg.Wait()
			codes := []int{results[0].status, results[1].status}
			if !(codes[0] == 200 && codes[1] == 412 || codes[0] == 412 && codes[1] == 200) {
				t.Fatalf("statuses = %v, want one 200 and one 412: %s / %s", codes, results[0], results[1])
			}
			for _, r := range results {
				if r.status == 412 {
					p := wantProblem(t, r, 412, "precondition_failed")
					if p["current_etag"] == "" || p["current_etag"] == tc.etag {
						t.Errorf("current_etag = %v", p["current_etag"])
					}
				}
			}
		})
	}
}

func TestCatalogWorkflowErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	soon := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status                   int
		code                     string
	}{
		{"an unknown entity", "GET", "/admin/v1/catalog/draft/items/nope", "", nil, 404, "catalog_entity_not_found"},
		{"deleting an unknown entity", "DELETE", "/admin/v1/catalog/draft/currencies/nope", "", nil, 404, "catalog_entity_not_found"},
		{"an unknown section", "GET", "/admin/v1/catalog/draft/weapons/sword", "", nil, 404, "not_found"},
		{"an entity body that is not an object", "PUT", "/admin/v1/catalog/draft/items/bow", `[]`, nil, 422, "catalog_invalid"},
		{"an entity id that disagrees with the URL", "PUT", "/admin/v1/catalog/draft/items/bow", `{"id":"sword","name":"Bow"}`, nil, 422, "catalog_invalid"},
		{"an entity field that does not exist", "PUT", "/admin/v1/catalog/draft/currencies/ruby", `{"name":"Ruby","color":"red"}`, nil, 422, "catalog_invalid"},
		{"a draft in XML", "PUT", "/admin/v1/catalog/draft", `<catalog/>`, []string{"Content-Type", "application/xml"}, 415, "unsupported_media_type"},
		{"a stale If-Match on an entity", "PUT", "/admin/v1/catalog/draft/items/sword", `{"name":"Sword","kind":"durable","prices":[{"currency":"gold","amount":1}]}`, []string{"If-Match", `"e-0"`}, 412, "precondition_failed"},
		{"If-Match on an entity that does not exist", "PUT", "/admin/v1/catalog/draft/currencies/ruby", `{"name":"Ruby"}`, []string{"If-Match", `*`}, 412, "precondition_failed"},
		{"a stale If-Match on publish", "POST", "/admin/v1/catalog/publish", `{}`, []string{"If-Match", `"draft-9"`}, 412, "precondition_failed"},
		{"a publish_at that is not a time", "POST", "/admin/v1/catalog/publish", `{"publish_at":"saturday"}`, nil, 400, "invalid_request"},
		{"a publish_at in the past", "POST", "/admin/v1/catalog/publish", `{"publish_at":"2020-01-01T00:00:00Z"}`, nil, 400, "invalid_request"},
		{"an unknown publish field", "POST", "/admin/v1/catalog/publish", `{"when":"now"}`, nil, 400, "invalid_request"},
		{"a note too long", "POST", "/admin/v1/catalog/publish", `{"note":"` + strings.Repeat("n", 1001) + `"}`, nil, 400, "invalid_request"},
		{"a body on validate", "POST", "/admin/v1/catalog/draft/validate", `{"currencies":[]}`, nil, 400, "invalid_request"},
		{"a rollback without a version", "POST", "/admin/v1/catalog/rollback", `{}`, nil, 400, "invalid_request"},
		{"a rollback to a version that does not exist", "POST", "/admin/v1/catalog/rollback", `{"version":42}`, nil, 404, "catalog_version_not_found"},
		{"a version that does not exist", "GET", "/admin/v1/catalog/versions/42", "", nil, 404, "catalog_version_not_found"},
		{"a version that is not a number", "GET", "/admin/v1/catalog/versions/latest", "", nil, 400, "invalid_request"},
		{"a versions limit out of range", "GET", "/admin/v1/catalog/versions?limit=0", "", nil, 400, "invalid_request"},
		{"an audit-log time that is not a time", "GET", "/admin/v1/audit-log?since=yesterday", "", nil, 400, "invalid_request"},
		{"an audit-log limit out of range", "GET", "/admin/v1/audit-log?limit=501", "", nil, 400, "invalid_request"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			wantProblem(t, e.admin(t, tc.method, tc.path, tc.body, tc.headers...), tc.status, tc.code)
		})
	}

	t.Run("a publish that would shadow a scheduled version is 409 until confirmed", func(t *testing.T) {
		r := e.admin(t, "POST", "/admin/v1/catalog/publish", `{"note":"weekend","publish_at":"`+soon+`"}`)
		if r.status != 201 {
			t.Fatalf("schedule: %s", r)
		}
		p := wantProblem(t, e.admin(t, "POST", "/admin/v1/catalog/publish", `{"note":"now"}`), 409, "schedule_conflict")
		if pending, _ := p["pending_versions"].([]any); len(pending) != 1 {
			t.Errorf("pending_versions = %v", p["pending_versions"])
		}
		wantProblem(t, e.admin(t, "PUT", "/admin/v1/catalog", string(readFile(t, "catalog.json"))), 409, "schedule_conflict")
		if r := e.admin(t, "POST", "/admin/v1/catalog/publish", `{"note":"now","supersede_scheduled":true}`); r.status != 201 {
			t.Errorf("confirmed publish: %s", r)
		}
	})
}

func TestDraftAsYAML(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.admin(t, "GET", "/admin/v1/catalog/draft", "", "Accept", "application/yaml")
	if r.status != 200 || r.header.Get("Content-Type") != "application/yaml" || !strings.HasPrefix(string(r.body), "currencies:\n- id: gold\n") {
		t.Fatalf("GET draft as YAML: %s", r)
	}
	edited := strings.Replace(string(r.body), "name: Gold\n", "name: Golden Coins\n", 1)
	r = e.admin(t, "PUT", "/admin/v1/catalog/draft", edited, "Content-Type", "application/yaml", "If-Match", r.header.Get("ETag"))
	var st draftStatus
	r.decode(t, &st)
	if r.status != 200 || !st.Valid || st.ETag != `"draft-1"` {
		t.Fatalf("PUT draft as YAML: %s", r)
	}
	if r := e.admin(t, "GET", "/admin/v1/catalog/draft/currencies/gold", ""); !strings.Contains(string(r.body), "Golden Coins") {
		t.Errorf("GET gold: %s", r)
	}
	if r := e.admin(t, "GET", "/admin/v1/catalog/draft", "", "If-None-Match", `"draft-1"`); r.status != 304 {
		t.Errorf("If-None-Match with the current ETag: %s", r)
	}
}

// TestPurchaseAtAnOldPriceAfterPublish: a client shows the old price, a
// designer publishes a new one, and the purchase sent with the old price is
// refused with 409 price_mismatch and the current prices.
func TestPurchaseAtAnOldPriceAfterPublish(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.grant(t, "p1", "fund", map[string]int64{"gold": 1000}, nil)
	if r := e.admin(t, "PUT", "/admin/v1/catalog/draft/items/potion",
		`{"name":"Potion","kind":"consumable","prices":[{"currency":"gold","amount":120}],"max_per_player":99}`); r.status != 200 {
		t.Fatalf("edit potion: %s", r)
	}
	if r := e.admin(t, "POST", "/admin/v1/catalog/publish", `{"note":"potion up"}`); r.status != 201 {
		t.Fatalf("publish: %s", r)
	}
	p := assertProblem(t, e.purchase(t, "p1", "old-price", buy("potion", 1, "gold", 100)), 409, "price_mismatch")
	prices, _ := json.Marshal(p["prices"])
	if string(prices) != `[{"amount":120,"currency":"gold"}]` {
		t.Errorf("prices = %s, want the new price", prices)
	}
	if r := e.purchase(t, "p1", "new-price", buy("potion", 1, "gold", 120)); r.status != http.StatusCreated {
		t.Errorf("purchase at the new price: %s", r)
	}
}
