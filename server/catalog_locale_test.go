package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/coinop/coinop/catalog"
)

// localizedCatalog is the fixture catalog with French names for the sword
// and gems, and English as its default locale.
func localizedCatalog(t *testing.T) []byte {
	t.Helper()
	doc := fixtureCatalog(t)
	doc.DefaultLocale = "en"
	for i := range doc.Items {
		if doc.Items[i].ID == "sword" {
			doc.Items[i].Description = "Sharp."
			doc.Items[i].Localized = map[string]catalog.Text{"fr": {Name: "Épée", Description: "Tranchante."}}
		}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCatalogServesTheRequestedLocale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if r := e.putCatalog(t, "application/json", localizedCatalog(t)); r.status != http.StatusCreated {
		t.Fatalf("publish: %s", r)
	}
	type served struct {
		Version int64  `json:"version"`
		Locale  string `json:"locale"`
		Catalog struct {
			Items []struct {
				ID          string         `json:"id"`
				Name        string         `json:"name"`
				Description string         `json:"description"`
				Localized   map[string]any `json:"localized"`
			} `json:"items"`
		} `json:"catalog"`
	}
	sword := func(t *testing.T, r response) (served, string, string) {
		t.Helper()
		var s served
		r.decode(t, &s)
		for _, it := range s.Catalog.Items {
			if it.ID == "sword" {
				if it.Localized != nil && s.Locale != "" {
					t.Errorf("a localized answer still carries every locale: %s", r.body)
				}
				return s, it.Name, it.Description
			}
		}
		t.Fatalf("no sword in %s", r.body)
		return s, "", ""
	}
	tests := []struct {
		name, query, accept         string
		locale, swordName, swordDoc string
		etag                        string
	}{
		{"locale=fr gives the French strings", "?locale=fr", "", "fr", "Épée", "Tranchante.", `"catalog-2-fr"`},
		{"Accept-Language fr-CA gives the French strings", "", "fr-CA,fr;q=0.9,en;q=0.5", "fr", "Épée", "Tranchante.", `"catalog-2-fr"`},
		{"the query wins over the header", "?locale=fr", "de", "fr", "Épée", "Tranchante.", `"catalog-2-fr"`},
		{"a locale the catalog lacks falls back to the default", "?locale=ja", "", "en", "Sword", "Sharp.", `"catalog-2-und"`},
		{"the default locale gets the entries' own strings", "", "en-GB", "en", "Sword", "Sharp.", `"catalog-2-und"`},
		{"no locale at all gets the whole document", "", "", "", "Sword", "Sharp.", `"catalog-2"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := newRequest(http.MethodGet, "/v1/catalog"+tt.query, nil)
			if tt.accept != "" {
				req.Header.Set("Accept-Language", tt.accept)
			}
			r := e.do(t, req)
			if r.status != http.StatusOK {
				t.Fatalf("GET: %s", r)
			}
			if got := r.header.Get("ETag"); got != tt.etag {
				t.Errorf("ETag = %s, want %s", got, tt.etag)
			}
			if got := r.header.Get("Vary"); !strings.Contains(got, "Accept-Language") {
				t.Errorf("Vary = %q, want Accept-Language", got)
			}
			s, name, desc := sword(t, r)
			if s.Locale != tt.locale || name != tt.swordName || desc != tt.swordDoc {
				t.Errorf("locale %q, sword %q %q; want %q, %q %q", s.Locale, name, desc, tt.locale, tt.swordName, tt.swordDoc)
			}
			if tt.query == "" && tt.accept == "" {
				if !strings.Contains(string(r.body), `"localized":{"fr":`) {
					t.Errorf("the whole document lacks the localized strings: %s", r.body)
				}
			}
			// Each locale's ETag revalidates its own answer.
			req.Header.Set("If-None-Match", tt.etag)
			if r := e.do(t, req); r.status != http.StatusNotModified {
				t.Errorf("If-None-Match %s: %d, want 304", tt.etag, r.status)
			}
		})
	}
	t.Run("a malformed locale is a problem", func(t *testing.T) {
		r := e.get(t, "/v1/catalog?locale=not_a%20locale", "")
		if r.status != http.StatusBadRequest || r.object(t)["code"] != "invalid_request" {
			t.Fatalf("GET ?locale=bad: %s", r)
		}
	})
}
