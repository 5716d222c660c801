package server_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/coinop/coinop/catalog"
)

type catalogResponse struct {
	Version int64           `json:"version"`
	Catalog catalog.Catalog `json:"catalog"`
}

func (e *env) putCatalog(t testing.TB, contentType string, doc []byte) response {
	t.Helper()
	req := newRequest(http.MethodPut, "/admin/v1/catalog", doc, "Authorization", bearer(adminToken))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(t, req)
}

func (e *env) getCatalog(t testing.TB, ifNoneMatch string) response {
	t.Helper()
	req := newRequest(http.MethodGet, "/v1/catalog", nil)
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	return e.do(t, req)
}

func price(t testing.TB, c catalog.Catalog, item string) int64 {
	t.Helper()
	for _, it := range c.Items {
		if it.ID == item {
			return it.Prices[0].Amount
		}
	}
	t.Fatalf("catalog has no item %s", item)
	return 0
}

// TestCatalog reads, revalidates and publishes catalogs over HTTP.
func TestCatalog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	r := e.getCatalog(t, "")
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" ||
		r.header.Get("ETag") != `"catalog-1"` || r.header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("GET /v1/catalog: %s (ETag %q, Cache-Control %q)", r, r.header.Get("ETag"), r.header.Get("Cache-Control"))
	}
	var got catalogResponse
	r.decode(t, &got)
	if want := fixtureCatalog(t); got.Version != 1 || !reflect.DeepEqual(&got.Catalog, want) {
		t.Fatalf("GET /v1/catalog = version %d %+v, want version 1 %+v", got.Version, got.Catalog, want)
	}
	// A public route: no token needed, and a player's token changes nothing.
	if r2 := e.get(t, "/v1/catalog", playerToken("p1")); r2.status != http.StatusOK || string(r2.body) != string(r.body) {
		t.Errorf("GET /v1/catalog with a token: %s", r2)
	}

	t.Run("If-None-Match with the current ETag is 304", func(t *testing.T) {
		for _, inm := range []string{`"catalog-1"`, `W/"catalog-1"`, `"catalog-0", "catalog-1"`, `*`} {
			r := e.getCatalog(t, inm)
			if r.status != http.StatusNotModified || len(r.body) != 0 || r.header.Get("ETag") != `"catalog-1"` {
				t.Errorf("If-None-Match %s: %s (ETag %q), want an empty 304 with the ETag", inm, r, r.header.Get("ETag"))
			}
		}
		for _, inm := range []string{`"catalog-2"`, `"catalog-10"`, `catalog-1`} {
			if r := e.getCatalog(t, inm); r.status != http.StatusOK {
				t.Errorf("If-None-Match %s: %s, want 200", inm, r)
			}
		}
	})

	t.Run("publishing YAML makes a new version that is served and sold from", func(t *testing.T) {
		r := e.putCatalog(t, "application/yaml", readFile(t, "catalog_v2.yaml"))
		if r.status != http.StatusCreated || string(r.body) != `{"version":2}` ||
			r.header.Get("ETag") != `"catalog-2"` || r.header.Get("Location") != "/v1/catalog" {
			t.Fatalf("PUT YAML: %s (ETag %q, Location %q)", r, r.header.Get("ETag"), r.header.Get("Location"))
		}
		if r := e.getCatalog(t, `"catalog-1"`); r.status != http.StatusOK || r.header.Get("ETag") != `"catalog-2"` {
			t.Fatalf("old ETag after publish: %s", r)
		} else {
			var got catalogResponse
			r.decode(t, &got)
			if got.Version != 2 || price(t, got.Catalog, "potion") != 120 {
				t.Fatalf("GET after YAML publish: version %d, potion %d; want 2, 120", got.Version, price(t, got.Catalog, "potion"))
			}
		}
		if r := e.getCatalog(t, `"catalog-2"`); r.status != http.StatusNotModified {
			t.Errorf("new ETag: %s, want 304", r)
		}
		e.grant(t, "p1", "fund", map[string]int64{"gold": 120}, nil)
		p := assertProblem(t, e.purchase(t, "p1", "old-price", buy("potion", 1, "gold", 100)), http.StatusConflict, "price_mismatch")
		if prices, _ := json.Marshal(p["prices"]); string(prices) != `[{"amount":120,"currency":"gold"}]` {
			t.Errorf("prices = %s", prices)
		}
		if r := e.purchase(t, "p1", "new-price", buy("potion", 1, "gold", 120)); r.status != http.StatusCreated {
			t.Errorf("purchase at the new price: %s", r)
		}
	})

	t.Run("publishing JSON makes the next version", func(t *testing.T) {
		for _, ct := range []string{"application/json", "application/json; charset=utf-8", ""} {
			r := e.putCatalog(t, ct, readFile(t, "catalog.json"))
			if r.status != http.StatusCreated {
				t.Fatalf("PUT JSON as %q: %s", ct, r)
			}
		}
		r := e.getCatalog(t, "")
		var got catalogResponse
		r.decode(t, &got)
		if got.Version != 5 || r.header.Get("ETag") != `"catalog-5"` || price(t, got.Catalog, "potion") != 100 {
			t.Fatalf("GET after JSON publishes: version %d, ETag %s, potion %d; want 5, \"catalog-5\", 100",
				got.Version, r.header.Get("ETag"), price(t, got.Catalog, "potion"))
		}
		// The served document publishes again as it is.
		raw := struct{ Catalog json.RawMessage }{}
		r.decode(t, &raw)
		if r := e.putCatalog(t, "application/json", raw.Catalog); r.status != http.StatusCreated || string(r.body) != `{"version":6}` {
			t.Fatalf("PUT of the served document: %s", r)
		}
	})

	t.Run("an invalid catalog is 422 with every problem and its path", func(t *testing.T) {
		doc := []byte(`{
			"currencies": [{"id": "gold", "name": "Gold"}, {"id": "gold", "name": "Gold again"}],
			"items": [
				{"id": "Bad ID", "name": "Bad", "kind": "weapon", "prices": [{"currency": "silver", "amount": 0}]},
				{"id": "potion", "name": "", "kind": "consumable", "prices": []},
				{"id": "sword", "name": "Sword", "kind": "durable", "max_per_player": 2, "prices": [{"currency": "gold", "amount": 1}]}
			],
			"bundles": [{"id": "potion", "name": "Dup", "prices": [{"currency": "gold", "amount": 1}], "contents": {"items": {"sword": 2, "shield": 1}}}],
			"store_products": []
		}`)
		r := e.putCatalog(t, "application/json", doc)
		p := assertProblem(t, r, http.StatusUnprocessableEntity, "catalog_invalid")
		var body struct {
			Errors []catalog.Problem `json:"errors"`
		}
		r.decode(t, &body)
		paths := map[string]bool{}
		for _, pr := range body.Errors {
			paths[pr.Path] = true
			if pr.Message == "" {
				t.Errorf("problem at %s has no message", pr.Path)
			}
		}
		for _, want := range []string{
			"currencies[1].id", "items[0].id", "items[0].kind", "items[0].prices[0].currency", "items[0].prices[0].amount",
			"items[1].name", "items[1].prices", "items[2].max_per_player", "bundles[0].id",
			"bundles[0].contents.items.sword", "bundles[0].contents.items.shield",
		} {
			if !paths[want] {
				t.Errorf("no problem at %s; got %+v", want, body.Errors)
			}
		}
		// Exactly what catalog.Validate finds, in its order.
		c, err := catalog.Parse(doc, catalog.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		var ve *catalog.ValidationError
		if !errors.As(catalog.Validate(c), &ve) || !reflect.DeepEqual(body.Errors, ve.Problems) {
			t.Errorf("errors = %+v\nwant %+v", body.Errors, ve)
		}
		if d, _ := p["detail"].(string); !strings.Contains(d, "problem") {
			t.Errorf("detail = %q", d)
		}
	})

	t.Run("an unreadable catalog is 422 with where it broke", func(t *testing.T) {
		for _, tc := range []struct{ name, ct, doc, want string }{
			{"YAML syntax", "application/yaml", "currencies:\n  - {id: gold\n", "line"},
			{"JSON syntax", "application/json", `{"currencies": [}`, "line 1"},
			{"unknown field", "application/json", `{"currencies": [{"id": "gold", "name": "Gold", "symbol": "G"}]}`, `currencies[0]: unknown field "symbol"`},
			{"wrong type", "application/yaml", "currencies: gold\n", "currencies: expected a list"},
			{"empty document", "application/json", ``, "empty"},
		} {
			r := e.putCatalog(t, tc.ct, []byte(tc.doc))
			assertProblem(t, r, http.StatusUnprocessableEntity, "catalog_invalid")
			var body struct {
				Errors []catalog.Problem `json:"errors"`
			}
			r.decode(t, &body)
			if len(body.Errors) != 1 || !strings.Contains(body.Errors[0].Message, tc.want) {
				t.Errorf("%s: errors = %+v, want one mentioning %q", tc.name, body.Errors, tc.want)
			}
		}
	})

	// None of the refused documents was published.
	if r := e.getCatalog(t, ""); r.header.Get("ETag") != `"catalog-6"` {
		t.Errorf("ETag after refused publishes = %s, want \"catalog-6\"", r.header.Get("ETag"))
	}
}
