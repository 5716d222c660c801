package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/language"
)

// TestValidateDetails has one case per rule about Details, as
// TestValidateRules does for the rest.
func TestValidateDetails(t *testing.T) {
	tests := []struct {
		name    string
		change  func(c *Catalog)
		path    string
		message string
	}{
		{"a described, tagged, localized item with metadata is fine",
			func(c *Catalog) {
				c.DefaultLocale = "en"
				c.Items[0].Details = Details{Description: "Sharp.\nVery sharp.", Category: "Weapons", Tags: []string{"sale", "new"},
					ImageURL: "https://cdn.example.com/sword.png", Localized: map[string]Text{"fr": {Name: "Épée"}, "pt-BR": {Description: "Afiada."}},
					Metadata: Metadata{"rarity": "epic", "stats": map[string]any{"attack": json.Number("12")}}}
			}, "", ""},
		{"a description of 2001 characters is too long",
			func(c *Catalog) { c.Items[0].Description = strings.Repeat("d", 2001) },
			"items[0].description", "description is longer than 2000 characters"},
		{"a description with a control character other than newline and tab is rejected",
			func(c *Catalog) { c.Bundles[0].Description = "Best\x07" },
			"bundles[0].description", "description contains control characters"},
		{"a category may not contain a newline",
			func(c *Catalog) { c.Currencies[0].Category = "a\nb" },
			"currencies[0].category", "category contains control characters"},
		{"a blank category is rejected",
			func(c *Catalog) { c.Items[1].Category = "  " },
			"items[1].category", "category is blank"},
		{"a tag must be an id",
			func(c *Catalog) { c.Items[1].Tags = []string{"ok", "Not OK"} },
			"items[1].tags[1]", `invalid tag "Not OK": use 1-32 characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit`},
		{"a duplicate tag is reported at the second one",
			func(c *Catalog) { c.Items[1].Tags = []string{"sale", "sale"} },
			"items[1].tags[1]", `duplicate tag "sale" (first at items[1].tags[0])`},
		{"more than 20 tags are rejected",
			func(c *Catalog) {
				for i := range 21 {
					c.Items[1].Tags = append(c.Items[1].Tags, "t"+strings.Repeat("x", i))
				}
			},
			"items[1].tags", "at most 20 tags are allowed"},
		{"a javascript: image_url is rejected",
			func(c *Catalog) { c.Items[0].ImageURL = "javascript:alert(1)" },
			"items[0].image_url", `image_url "javascript:alert(1)" must be an absolute https:// or http:// URL`},
		{"a relative image_url is rejected",
			func(c *Catalog) { c.Items[0].ImageURL = "/img/sword.png" },
			"items[0].image_url", `image_url "/img/sword.png" must be an absolute https:// or http:// URL`},
		{"a locale must be a BCP 47 tag",
			func(c *Catalog) { c.Items[0].Localized = map[string]Text{"not a locale": {Name: "x"}} },
			`items[0].localized["not a locale"]`, `invalid locale "not a locale": use a BCP 47 language tag like "fr" or "pt-BR"`},
		{"a locale must be written canonically",
			func(c *Catalog) { c.Items[0].Localized = map[string]Text{"pt_br": {Name: "x"}} },
			`items[0].localized.pt_br`, `locale "pt_br" must be written "pt-BR"`},
		{"a locale needs some text",
			func(c *Catalog) { c.Items[0].Localized = map[string]Text{"fr": {}} },
			"items[0].localized.fr", "a locale needs a name or a description"},
		{"a localized name follows the name rules",
			func(c *Catalog) { c.Items[0].Localized = map[string]Text{"fr": {Name: strings.Repeat("n", 201)}} },
			"items[0].localized.fr.name", "name is longer than 200 characters"},
		{"the default locale cannot be localized again",
			func(c *Catalog) {
				c.DefaultLocale = "fr"
				c.Items[0].Localized = map[string]Text{"fr": {Name: "Épée"}}
			},
			"items[0].localized.fr", `"fr" is the catalog's default_locale: its strings are name and description`},
		{"the default locale must be a BCP 47 tag",
			func(c *Catalog) { c.DefaultLocale = "english" },
			"default_locale", `invalid locale "english": use a BCP 47 language tag like "fr" or "pt-BR"`},
		{"metadata above 4096 bytes is rejected",
			func(c *Catalog) { c.Items[0].Metadata = Metadata{"blob": strings.Repeat("x", 4096)} },
			"items[0].metadata", "metadata is 4107 bytes of JSON; at most 4096 are allowed"},
		{"metadata with a NUL, which jsonb cannot store, is rejected",
			func(c *Catalog) { c.Items[0].Metadata = Metadata{"k": []any{"a\x00b"}} },
			"items[0].metadata", "metadata contains a NUL character"},
		{"metadata nested too deeply is rejected",
			func(c *Catalog) {
				var v any = "leaf"
				for range 8 {
					v = []any{v}
				}
				c.Items[0].Metadata = Metadata{"deep": v}
			},
			"items[0].metadata", "metadata nests deeper than 8 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testCatalog()
			tt.change(c)
			err := Validate(c)
			if tt.path == "" && tt.message == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate = %v (%T), want *ValidationError", err, err)
			}
			want := []Problem{{Path: tt.path, Message: tt.message}}
			if !reflect.DeepEqual(ve.Problems, want) {
				t.Errorf("problems:\n got %q\nwant %q", ve.Problems, want)
			}
		})
	}
}

const describedJSON = `{"default_locale":"en","currencies":[{"id":"gems","name":"Gems","localized":{"fr":{"name":"Gemmes"}}}],
"items":[{"id":"sword","name":"Sword","description":"Sharp.","category":"weapons","tags":["new"],
"image_url":"https://cdn.example.com/sword.png","localized":{"fr":{"name":"Épée","description":"Tranchante."},"pt-BR":{"name":"Espada"}},
"metadata":{"z":1,"a":{"big":9007199254740993,"list":[1,"two",null,true]}},
"kind":"durable","prices":[{"currency":"gems","amount":5}]}],"bundles":[],"store_products":[]}`

func TestDetailsParseAndEncodeCanonically(t *testing.T) {
	c := mustParse(t, []byte(describedJSON), FormatJSON)
	if err := Validate(c); err != nil {
		t.Fatal(err)
	}
	snap, err := NewSnapshot(1, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(snap.JSON())
	// Metadata keys come out sorted and an integer above 2^53 exact, so every
	// replica serves the same bytes whatever order Postgres kept.
	if want := `"metadata":{"a":{"big":9007199254740993,"list":[1,"two",null,true]},"z":1}`; !strings.Contains(doc, want) {
		t.Errorf("document %s\nlacks %s", doc, want)
	}
	again := mustParse(t, snap.JSON(), FormatJSON)
	if !reflect.DeepEqual(again, snap.Catalog) {
		t.Errorf("the canonical document does not parse back to the same catalog")
	}
	y, err := Encode(c, FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	if fromYAML := mustParse(t, y, FormatYAML); !reflect.DeepEqual(fromYAML, c) {
		t.Errorf("YAML does not parse back to the same catalog:\n%s", y)
	}
}

func TestEmptyDetailsParseBackEqual(t *testing.T) {
	doc := strings.Replace(describedJSON, `"tags":["new"]`, `"tags":[],"localized":{},"metadata":{}`, 1)
	doc = strings.Replace(doc, `,"localized":{"fr":{"name":"Épée","description":"Tranchante."},"pt-BR":{"name":"Espada"}},
"metadata":{"z":1,"a":{"big":9007199254740993,"list":[1,"two",null,true]}}`, "", 1)
	c := mustParse(t, []byte(doc), FormatJSON)
	b, err := Encode(c, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if again := mustParse(t, b, FormatJSON); !reflect.DeepEqual(again, c) {
		t.Errorf("empty tags, localized and metadata do not read back equal:\n%s", b)
	}
}

func TestParseRejectsMetadataThatIsNotAnObject(t *testing.T) {
	doc := strings.Replace(describedJSON, `"metadata":{"z":1,"a":{"big":9007199254740993,"list":[1,"two",null,true]}}`, `"metadata":[1]`, 1)
	_, err := Parse([]byte(doc), FormatJSON)
	var pe *ParseError
	if !errors.As(err, &pe) || pe.Path != "items[0].metadata" || pe.Message != "expected an object, got a list" {
		t.Fatalf("Parse = %v, want items[0].metadata: expected an object", err)
	}
}

func TestLocalizedSnapshots(t *testing.T) {
	snap, err := NewSnapshot(3, time.Now(), mustParse(t, []byte(describedJSON), FormatJSON))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		accept string
		want   string
	}{
		{"fr", "fr"},
		{"fr-CA", "fr"},
		{"de, fr;q=0.5", "fr"},
		{"pt", "pt-BR"},
		{"en-US", ""}, // the default locale: the entries' own strings
		{"ja", ""},    // no match: the defaults
		{"", ""},
	}
	for _, tt := range tests {
		tags, _, _ := language.ParseAcceptLanguage(tt.accept)
		if got := snap.MatchLocale(tags); got != tt.want {
			t.Errorf("MatchLocale(%q) = %q, want %q", tt.accept, got, tt.want)
		}
	}
	fr, err := snap.LocalizedJSON("fr")
	if err != nil {
		t.Fatal(err)
	}
	var doc Catalog
	if err := json.Unmarshal(fr, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Items[0].Name != "Épée" || doc.Items[0].Description != "Tranchante." || doc.Currencies[0].Name != "Gemmes" {
		t.Errorf("fr strings: %s", fr)
	}
	if doc.Items[0].Localized != nil {
		t.Errorf("a localized document still carries every locale: %s", fr)
	}
	pt, _ := snap.LocalizedJSON("pt-BR")
	if !strings.Contains(string(pt), `"name":"Espada","description":"Sharp."`) {
		t.Errorf("pt-BR falls back to the default description: %s", pt)
	}
	if snap.Catalog.Items[0].Name != "Sword" || snap.Catalog.Items[0].Localized == nil {
		t.Errorf("localizing changed the snapshot itself")
	}
	if got := snap.LocalizedETag("fr"); got != `"catalog-3-fr"` {
		t.Errorf("LocalizedETag = %s", got)
	}
	def, _ := snap.LocalizedJSON("")
	if strings.Contains(string(def), "localized") || !strings.Contains(string(def), `"name":"Sword"`) {
		t.Errorf("the default strings: %s", def)
	}
	if _, err := snap.LocalizedJSON("xx"); err == nil {
		t.Errorf("LocalizedJSON of an unknown locale = nil error")
	}
}

func TestDiffShowsDetails(t *testing.T) {
	a := testCatalog()
	b := testCatalog()
	b.Items[0].Description = "Sharp."
	b.Items[0].Localized = map[string]Text{"fr": {Name: "Épée"}}
	b.Items[0].Metadata = Metadata{"rarity": "epic"}
	d := Compare(a, b)
	var paths []string
	for _, f := range d.Changes[0].Fields {
		paths = append(paths, f.Path)
	}
	want := []string{"description", "localized.fr.name", "metadata.rarity"}
	if !reflect.DeepEqual(paths, want) {
		t.Errorf("changed fields = %v, want %v", paths, want)
	}
}
