package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"
)

var designer = Attribution{Actor: "key:alice", RequestID: "req-1"}

type auditRow struct {
	Actor, Action, Target, RequestID string
	Before, After                    json.RawMessage
}

// auditRows returns the audit log, oldest first.
func auditRows(t *testing.T, s *Store) []auditRow {
	t.Helper()
	rows, err := s.db.Query(t.Context(), `SELECT actor, action, target, request_id, before, after FROM audit_log ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.Actor, &r.Action, &r.Target, &r.RequestID, &r.Before, &r.After); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func actions(rows []auditRow) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.Action + " " + r.Target
	}
	return out
}

func TestDraftFollowsTheLiveCatalogUntilEdited(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)

	d, err := store.Draft(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Edited || d.Revision != 0 || d.ETag() != `"draft-0.0"` || len(d.Catalog.Currencies) != 0 {
		t.Fatalf("empty installation: draft %+v", d)
	}
	publish(t, store, testCatalog(), "launch")
	if d, err = store.Draft(ctx); err != nil || !reflect.DeepEqual(d.Catalog, testCatalog()) {
		t.Fatalf("draft after a publish = %+v, %v; want the live catalog", d, err)
	}
	if d.Edited || d.ETag() != `"draft-0.1"` {
		t.Errorf("a publish edited the draft that follows the live catalog: %s", d.ETag())
	}
}

func TestReplaceDraftWithIfMatch(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	c := testCatalog()
	d, err := store.ReplaceDraft(ctx, c, `"draft-0.0"`, designer)
	if err != nil || d.Revision != 1 || !d.Edited || d.UpdatedBy != "key:alice" {
		t.Fatalf("ReplaceDraft = %+v, %v", d, err)
	}

	t.Run("a stale ETag is refused with the current one", func(t *testing.T) {
		_, err := store.ReplaceDraft(ctx, c, `"draft-0.0"`, designer)
		var pe *PreconditionError
		if !errors.As(err, &pe) || pe.ETag != `"draft-1"` {
			t.Fatalf("ReplaceDraft(stale) = %v, want PreconditionError with \"draft-1\"", err)
		}
	})
	t.Run("a weak or malformed ETag never matches, * always does", func(t *testing.T) {
		for _, im := range []string{`W/"draft-1"`, `draft-1`, `"draft-2"`} {
			var pe *PreconditionError
			if _, err := store.ReplaceDraft(ctx, c, im, designer); !errors.As(err, &pe) {
				t.Errorf("If-Match %s: %v, want PreconditionError", im, err)
			}
		}
		for _, im := range []string{`*`, `"draft-0.0", "draft-1"`} {
			if _, err := store.ReplaceDraft(ctx, c, im, designer); err != nil {
				t.Errorf("If-Match %s: %v", im, err)
			}
		}
	})
	t.Run("replacing with the same document changes nothing", func(t *testing.T) {
		before := len(auditRows(t, store))
		d, err := store.ReplaceDraft(ctx, testCatalog(), "", designer)
		if err != nil || d.Revision != 1 {
			t.Fatalf("ReplaceDraft(same) = revision %d, %v; want 1", d.Revision, err)
		}
		if after := len(auditRows(t, store)); after != before {
			t.Errorf("a no-op replace wrote %d audit rows", after-before)
		}
	})
	t.Run("the draft may be invalid", func(t *testing.T) {
		bad := testCatalog()
		bad.Items[0].Prices[0].Amount = 0
		if _, err := store.ReplaceDraft(ctx, bad, "", designer); err != nil {
			t.Fatalf("ReplaceDraft(invalid) = %v; drafts are work in progress", err)
		}
		d, problems, err := store.ValidateDraft(ctx)
		if err != nil || d.Revision != 2 || len(problems) != 1 || problems[0].Path != "items[0].prices[0].amount" {
			t.Fatalf("ValidateDraft = %+v, %v, %v", d, problems, err)
		}
		if _, err := store.PublishDraft(ctx, PublishOptions{By: designer}); !isValidationError(err) {
			t.Errorf("PublishDraft(invalid) = %v, want *ValidationError", err)
		}
	})
}

func isValidationError(err error) bool {
	var ve *ValidationError
	return errors.As(err, &ve)
}

// TestConcurrentDraftEditsWithTheSameETag: two designers read the draft, then
// both save. Exactly one wins; the other gets a precondition failure rather
// than silently overwriting the first.
func TestConcurrentDraftEditsWithTheSameETag(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	if _, err := store.ReplaceDraft(ctx, testCatalog(), "", designer); err != nil {
		t.Fatal(err)
	}
	d, err := store.Draft(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sword, err := store.DraftEntity(ctx, SectionItems, "sword")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(i int) error
	}{
		{"whole document", func(i int) error {
			c := testCatalog()
			c.Currencies[0].Name = []string{"Gold A", "Gold B"}[i]
			_, err := store.ReplaceDraft(ctx, c, d.ETag(), designer)
			return err
		}},
		{"one entity", func(i int) error {
			it := *sword.Value.(*Item)
			it.Prices = []Price{{"gold", int64(400 + i)}}
			_, _, err := store.PutDraftEntity(ctx, SectionItems, "sword", &it, sword.ETag, designer)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i := range 2 {
				wg.Go(func() { errs[i] = tc.edit(i) })
			}
			wg.Wait()
			var ok, refused int
			for _, err := range errs {
				var pe *PreconditionError
				switch {
				case err == nil:
					ok++
				case errors.As(err, &pe):
					refused++
				default:
					t.Errorf("unexpected error: %v", err)
				}
			}
			if ok != 1 || refused != 1 {
				t.Fatalf("%d succeeded and %d were refused; want exactly one of each: %v", ok, refused, errs)
			}
		})
	}
}

func TestDraftEntities(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	if _, err := store.ReplaceDraft(ctx, testCatalog(), "", designer); err != nil {
		t.Fatal(err)
	}
	parse := func(sec Section, id, body string) any {
		t.Helper()
		v, err := ParseEntity(sec, id, []byte(body), FormatJSON)
		if err != nil {
			t.Fatalf("ParseEntity(%s, %s): %v", sec, id, err)
		}
		return v
	}

	t.Run("edits of different entities do not conflict", func(t *testing.T) {
		sword, _ := store.DraftEntity(ctx, SectionItems, "sword")
		potion, _ := store.DraftEntity(ctx, SectionItems, "potion")
		if _, _, err := store.PutDraftEntity(ctx, SectionItems, "sword",
			parse(SectionItems, "sword", `{"name":"Sword","kind":"durable","prices":[{"currency":"gold","amount":450}]}`), sword.ETag, designer); err != nil {
			t.Fatal(err)
		}
		if _, _, err := store.PutDraftEntity(ctx, SectionItems, "potion",
			parse(SectionItems, "potion", `{"id":"potion","name":"Big Potion","kind":"consumable","prices":[{"currency":"gold","amount":100}]}`), potion.ETag, designer); err != nil {
			t.Fatalf("editing potion after sword changed: %v", err)
		}
	})
	t.Run("a new entity is appended and reported as created", func(t *testing.T) {
		e, created, err := store.PutDraftEntity(ctx, SectionCurrencies, "rubies", parse(SectionCurrencies, "rubies", `{"name":"Rubies"}`), "", designer)
		if err != nil || !created || e.Value.(*Currency).ID != "rubies" {
			t.Fatalf("PutDraftEntity(new) = %+v, %v, %v", e, created, err)
		}
		d, _ := store.Draft(ctx)
		if last := d.Catalog.Currencies[len(d.Catalog.Currencies)-1]; last.ID != "rubies" {
			t.Errorf("last currency = %q", last.ID)
		}
	})
	t.Run("If-Match on a missing entity fails", func(t *testing.T) {
		var pe *PreconditionError
		if _, _, err := store.PutDraftEntity(ctx, SectionCurrencies, "opals", parse(SectionCurrencies, "opals", `{"name":"Opals"}`), `"e-0"`, designer); !errors.As(err, &pe) {
			t.Errorf("= %v, want PreconditionError", err)
		}
	})
	t.Run("store products are addressed as store:product_id", func(t *testing.T) {
		e, err := store.DraftEntity(ctx, SectionStoreProducts, "apple:com.example.gems100")
		if err != nil || e.Value.(*StoreProduct).Store != StoreApple {
			t.Fatalf("DraftEntity = %+v, %v", e, err)
		}
		v := parse(SectionStoreProducts, "google:com.example.gems500", `{"grants":{"currencies":{"gems":500}}}`)
		if sp := v.(*StoreProduct); sp.Store != "google" || sp.ProductID != "com.example.gems500" {
			t.Errorf("store and product id from the URL: %+v", sp)
		}
	})
	t.Run("delete removes it, with If-Match", func(t *testing.T) {
		shield, _ := store.DraftEntity(ctx, SectionItems, "shield")
		var pe *PreconditionError
		if _, err := store.DeleteDraftEntity(ctx, SectionItems, "shield", `"e-stale"`, designer); !errors.As(err, &pe) {
			t.Fatalf("delete with a stale ETag = %v", err)
		}
		if _, err := store.DeleteDraftEntity(ctx, SectionItems, "shield", shield.ETag, designer); err != nil {
			t.Fatal(err)
		}
		if _, err := store.DraftEntity(ctx, SectionItems, "shield"); !errors.Is(err, ErrEntityNotFound) {
			t.Errorf("after delete: %v, want ErrEntityNotFound", err)
		}
		if _, err := store.DeleteDraftEntity(ctx, SectionItems, "shield", "", designer); !errors.Is(err, ErrEntityNotFound) {
			t.Errorf("second delete: %v, want ErrEntityNotFound", err)
		}
	})
	t.Run("every change is audited with before and after", func(t *testing.T) {
		rows := auditRows(t, store)
		want := []string{
			"catalog.draft.replace catalog/draft",
			"catalog.draft.put catalog/draft/items/sword",
			"catalog.draft.put catalog/draft/items/potion",
			"catalog.draft.put catalog/draft/currencies/rubies",
			"catalog.draft.delete catalog/draft/items/shield",
		}
		if got := actions(rows); !reflect.DeepEqual(got, want) {
			t.Fatalf("audit log:\n%q\nwant\n%q", got, want)
		}
		for _, r := range rows {
			if r.Actor != "key:alice" || r.RequestID != "req-1" {
				t.Errorf("%s: actor %q request %q", r.Action, r.Actor, r.RequestID)
			}
		}
		var before, after struct {
			Prices []Price `json:"prices"`
		}
		if err := json.Unmarshal(rows[1].Before, &before); err != nil || before.Prices[0].Amount != 500 {
			t.Errorf("sword before = %s", rows[1].Before)
		}
		if err := json.Unmarshal(rows[1].After, &after); err != nil || after.Prices[0].Amount != 450 {
			t.Errorf("sword after = %s", rows[1].After)
		}
		if string(rows[3].Before) != "" || string(rows[4].After) != "" {
			t.Errorf("a create has no before and a delete no after: %s / %s", rows[3].Before, rows[4].After)
		}
	})
}

func TestPublishDiffAndRollback(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	v1 := publish(t, store, testCatalog(), "launch")

	sale := testCatalog()
	sale.Items[0].Prices[0].Amount = 400
	sale.Items = append(sale.Items, Item{ID: "bow", Name: "Bow", Kind: KindDurable, Prices: []Price{{"gold", 800}}})
	sale.Bundles = nil
	d, err := store.ReplaceDraft(ctx, sale, "", designer)
	if err != nil {
		t.Fatal(err)
	}

	diff, err := store.DiffDraft(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff.FromVersion != 1 || diff.DraftETag != d.ETag() || !diff.Changed || diff.Summary != (DiffSummary{Added: 1, Removed: 1, Changed: 1}) {
		t.Fatalf("diff = %+v", diff)
	}
	var prices []string
	for _, p := range diff.PriceChanges {
		prices = append(prices, string(p.Section)+"/"+p.ID+" "+p.Currency+" "+showPrice(p.Before)+">"+showPrice(p.After))
	}
	if want := []string{"items/bow gold (none)>800", "items/sword gold 500>400", "bundles/starter gems 50>(none)"}; !reflect.DeepEqual(prices, want) {
		t.Errorf("price changes = %q, want %q (the added bow's and the removed bundle's prices included)", prices, want)
	}

	var pe *PreconditionError
	if _, err := store.PublishDraft(ctx, PublishOptions{IfMatch: `"draft-0"`, By: designer}); !errors.As(err, &pe) {
		t.Fatalf("publish with a stale draft ETag = %v", err)
	}
	p, err := store.PublishDraft(ctx, PublishOptions{Note: "sword sale", IfMatch: d.ETag(), By: designer})
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 2 || p.Status != StatusLive || p.Note != "sword sale" || p.Snapshot.Version != 2 {
		t.Fatalf("PublishDraft = %+v", p)
	}
	if diff, _ := store.DiffDraft(ctx); diff.Changed || diff.FromVersion != 2 {
		t.Errorf("diff after publish = %+v, want none against version 2", diff)
	}

	rb, err := store.Rollback(ctx, 1, PublishOptions{By: designer})
	if err != nil {
		t.Fatal(err)
	}
	if rb.Version != 3 || *rb.SourceVersion != 1 || rb.Note != "rollback to version 1" || string(rb.Snapshot.JSON()) != string(v1.JSON()) {
		t.Fatalf("Rollback = %+v", rb)
	}
	if latest, _ := store.Latest(ctx); latest.Version != 3 {
		t.Errorf("live version = %d, want 3", latest.Version)
	}
	if d, _ := store.Draft(ctx); !reflect.DeepEqual(d.Catalog, v1.Catalog) {
		t.Error("rollback did not reset the draft to the restored catalog")
	}
	if _, err := store.Rollback(ctx, 99, PublishOptions{By: designer}); !errors.Is(err, ErrVersionNotFound) {
		t.Errorf("rollback to a missing version = %v", err)
	}

	list, err := store.Versions(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var statuses []string
	for _, v := range list {
		statuses = append(statuses, v.Status)
	}
	if !reflect.DeepEqual(statuses, []string{StatusLive, StatusPast, StatusPast}) {
		t.Errorf("statuses = %v", statuses)
	}
	want := []string{
		"catalog.publish catalog/versions/1",
		"catalog.draft.replace catalog/draft",
		"catalog.publish catalog/versions/2",
		"catalog.draft.replace catalog/draft",
		"catalog.rollback catalog/versions/3",
	}
	if got := actions(auditRows(t, store)); !reflect.DeepEqual(got, want) {
		t.Errorf("audit log:\n%q\nwant\n%q", got, want)
	}
}

func TestScheduledVersions(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store, _ := newStore(t)
	publish(t, store, testCatalog(), "launch")
	weekend := time.Now().Add(time.Hour).UTC().Truncate(time.Second)

	sale := testCatalog()
	sale.Items[0].Prices[0].Amount = 250
	if _, err := store.ReplaceDraft(ctx, sale, "", designer); err != nil {
		t.Fatal(err)
	}
	p, err := store.PublishDraft(ctx, PublishOptions{Note: "weekend sale", At: &weekend, By: designer})
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != 2 || p.Status != StatusScheduled || !p.LiveAt.Equal(weekend) {
		t.Fatalf("scheduled publish = %+v", p)
	}
	if v, err := store.LatestVersion(ctx); err != nil || v != 1 {
		t.Errorf("live version = %d, %v; want 1 until the weekend", v, err)
	}
	if _, next, _ := store.liveState(ctx); next < 59*time.Minute || next > time.Hour {
		t.Errorf("next scheduled in %v, want about an hour", next)
	}

	t.Run("a publish that would shadow it must be confirmed", func(t *testing.T) {
		var sc *ScheduleConflictError
		_, err := store.PublishDraft(ctx, PublishOptions{Note: "hotfix", By: designer})
		if !errors.As(err, &sc) || len(sc.Pending) != 1 || sc.Pending[0].Version != 2 {
			t.Fatalf("publish now = %v, want a ScheduleConflictError naming version 2", err)
		}
		later := weekend.Add(time.Hour)
		if _, err := store.PublishDraft(ctx, PublishOptions{Note: "after the sale", At: &later, By: designer}); err != nil {
			t.Errorf("a version scheduled after it does not shadow it: %v", err)
		}
	})
	t.Run("times in the past are refused", func(t *testing.T) {
		past := time.Now().Add(-time.Minute)
		var re *RequestError
		if _, err := store.PublishDraft(ctx, PublishOptions{At: &past, By: designer}); !errors.As(err, &re) || re.Field != "publish_at" {
			t.Errorf("= %v, want RequestError on publish_at", err)
		}
	})
	t.Run("superseding is explicit and shows in the version list", func(t *testing.T) {
		p, err := store.PublishDraft(ctx, PublishOptions{Note: "hotfix", SupersedeScheduled: true, By: designer})
		if err != nil {
			t.Fatal(err)
		}
		list, _ := store.Versions(ctx, 0)
		got := map[int64]string{}
		for _, v := range list {
			got[v.Version] = v.Status
		}
		want := map[int64]string{1: StatusPast, 2: StatusSuperseded, 3: StatusSuperseded, p.Version: StatusLive}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("statuses = %v, want %v", got, want)
		}
	})
}
