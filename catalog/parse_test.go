package catalog

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t *testing.T, data []byte, f Format) *Catalog {
	t.Helper()
	c, err := Parse(data, f)
	if err != nil {
		t.Fatalf("Parse(%s): %v", f, err)
	}
	return c
}

func TestParseJSONAndYAMLGiveEqualCatalogs(t *testing.T) {
	fromJSON := mustParse(t, readFile(t, "testdata/catalog.json"), FormatJSON)
	fromYAML := mustParse(t, readFile(t, "testdata/catalog.yaml"), FormatYAML)
	if !reflect.DeepEqual(fromJSON, fromYAML) {
		t.Fatalf("JSON and YAML documents differ:\njson %+v\nyaml %+v", fromJSON, fromYAML)
	}
	if err := Validate(fromJSON); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// Spot-check that values arrived where they belong.
	potion := fromJSON.Items[1]
	if potion.MaxPerPlayer != 99 || potion.Kind != KindConsumable || !potion.AvailableFrom.Equal(date(2026, 1, 1)) {
		t.Errorf("potion = %+v", potion)
	}
	if got := fromJSON.Bundles[0].Contents.Items["potion"]; got != 5 {
		t.Errorf("starter contents potion = %d, want 5", got)
	}
	if sp := fromJSON.StoreProducts[0]; sp.ProductID != "com.example.gems100" || sp.Grants.Currencies["gems"] != 100 {
		t.Errorf("store product = %+v", sp)
	}
}

func TestExampleCatalogIsValid(t *testing.T) {
	c := mustParse(t, readFile(t, "../examples/catalog.yaml"), FormatYAML)
	if err := Validate(c); err != nil {
		t.Fatalf("examples/catalog.yaml: %v", err)
	}
	s, err := NewSnapshot(1, time.Now(), c)
	if err != nil {
		t.Fatal(err)
	}
	// What the demo promises: gold and gems, a durable sword, a potion with
	// max_per_player 99 buyable any day, a starter bundle, one product per
	// store.
	if got := s.CurrencyIDs(); !reflect.DeepEqual(got, []string{"gems", "gold"}) {
		t.Errorf("currencies = %v", got)
	}
	if sword, ok := s.Item("sword"); !ok || sword.Kind != KindDurable {
		t.Errorf("sword = %+v, %v", sword, ok)
	}
	potion, ok := s.Item("potion")
	if !ok || potion.Kind != KindConsumable || potion.MaxPerPlayer != 99 || !potion.AvailableAt(time.Now()) {
		t.Errorf("potion = %+v, %v; want a consumable with max 99 available now", potion, ok)
	}
	if _, ok := s.Bundle("starter"); !ok {
		t.Error("no starter bundle")
	}
	var stores []string
	for _, sp := range c.StoreProducts {
		stores = append(stores, sp.Store)
	}
	if !reflect.DeepEqual(stores, []string{StoreApple, StoreGoogle}) {
		t.Errorf("store products for %v, want one apple and one google", stores)
	}
}

func TestParseNormalizes(t *testing.T) {
	doc := `{"currencies": [{"id": "gold", "name": "Gold"}],
	  "items": [{"id": "hat", "name": "Hat", "kind": "durable", "prices": [{"currency": "gold", "amount": 1}],
	             "available_from": "2026-01-01T02:00:00+02:00"}],
	  "bundles": [{"id": "b", "name": "B", "prices": [{"currency": "gold", "amount": 1}],
	               "contents": {"items": {}, "currencies": {"gold": 1}}}]}`
	c := mustParse(t, []byte(doc), FormatJSON)
	from := c.Items[0].AvailableFrom
	if from.Location() != time.UTC || !from.Equal(date(2026, 1, 1)) {
		t.Errorf("available_from = %v, want 2026-01-01 00:00 UTC", from)
	}
	if c.Bundles[0].Contents.Items != nil {
		t.Errorf("empty contents.items = %#v, want nil", c.Bundles[0].Contents.Items)
	}
	if c.StoreProducts == nil {
		t.Error("missing store_products decoded as nil, want an empty list so it is served as []")
	}
}

func TestParseIgnoresAByteOrderMark(t *testing.T) {
	withBOM := append([]byte("\ufeff"), readFile(t, "testdata/catalog.json")...)
	for _, f := range []Format{FormatJSON, FormatYAML} {
		if _, err := Parse(withBOM, f); err != nil {
			t.Errorf("%s with a byte order mark: %v", f, err)
		}
	}
}

func TestParseAcceptsNull(t *testing.T) {
	// null leaves the zero value so Validate can say what is missing.
	doc := `{"currencies": [{"id": "gold", "name": null}], "items": null, "bundles": null, "store_products": null}`
	c := mustParse(t, []byte(doc), FormatJSON)
	var ve *ValidationError
	if err := Validate(c); !errors.As(err, &ve) || ve.Problems[0].Path != "currencies[0].name" {
		t.Errorf("Validate = %v, want currencies[0].name is required", err)
	}
}

func TestParseErrors(t *testing.T) {
	multiline := "{\n  \"currencies\": [],\n  \"items\": [\n    {\"id\": \"a\", \"prce\": 1}\n  ]\n}"
	tests := []struct {
		name   string
		format Format
		input  string
		want   ParseError // Message is matched as a substring; Format is filled in.
	}{
		{"an unknown top-level field", FormatJSON, `{"currencies": [], "itemz": []}`,
			ParseError{Line: 1, Column: 20, Message: `unknown field "itemz"`}},
		{"an unknown nested field, with its line and path", FormatJSON, multiline,
			ParseError{Path: "items[0]", Line: 4, Column: 17, Message: `unknown field "prce"`}},
		{"a field name in the wrong case", FormatJSON, `{"Currencies": []}`,
			ParseError{Line: 1, Column: 2, Message: `unknown field "Currencies"`}},
		{"a duplicate field", FormatJSON, `{"currencies": [], "currencies": []}`,
			ParseError{Line: 1, Column: 20, Message: `duplicate field "currencies"`}},
		{"a duplicate map key", FormatJSON, `{"bundles": [{"contents": {"items": {"sword": 1, "sword": 2}}}]}`,
			ParseError{Path: "bundles[0].contents.items", Line: 1, Column: 50, Message: `duplicate field "sword"`}},
		{"a second document after the first", FormatJSON, `{} {}`,
			ParseError{Line: 1, Column: 4, Message: "unexpected data after the document"}},
		{"garbage after the document", FormatJSON, "{}\nx",
			ParseError{Line: 2, Column: 1, Message: "unexpected data after the document"}},
		{"a trailing comma after the document", FormatJSON, `{},`,
			ParseError{Line: 1, Column: 3, Message: "unexpected data after the document"}},
		{"a string where an integer belongs", FormatJSON, `{"items": [{"prices": [{"amount": "5"}]}]}`,
			ParseError{Path: "items[0].prices[0].amount", Line: 1, Column: 35, Message: "expected an integer, got a string"}},
		{"a fraction where an integer belongs", FormatJSON, `{"items": [{"max_per_player": 1.5}]}`,
			ParseError{Path: "items[0].max_per_player", Line: 1, Column: 31, Message: "expected an integer, got 1.5"}},
		{"an integer beyond int64", FormatJSON, `{"items": [{"max_per_player": 99999999999999999999}]}`,
			ParseError{Path: "items[0].max_per_player", Line: 1, Column: 31, Message: "integer 99999999999999999999 is out of range"}},
		{"a number where a string belongs", FormatJSON, `{"currencies": [{"id": 7}]}`,
			ParseError{Path: "currencies[0].id", Line: 1, Column: 24, Message: "expected a string, got a number"}},
		{"an object where a list belongs", FormatJSON, `{"items": {}}`,
			ParseError{Path: "items", Line: 1, Column: 11, Message: "expected a list, got an object"}},
		{"a list where an object belongs", FormatJSON, `{"bundles": [{"contents": []}]}`,
			ParseError{Path: "bundles[0].contents", Line: 1, Column: 27, Message: "expected an object, got a list"}},
		{"a malformed time", FormatJSON, `{"items": [{"available_from": "2026-13-01"}]}`,
			ParseError{Path: "items[0].available_from", Line: 1, Column: 31, Message: `invalid time "2026-13-01"`}},
		{"a time that is not a string", FormatJSON, `{"items": [{"available_from": 1767225600}]}`,
			ParseError{Path: "items[0].available_from", Line: 1, Column: 31, Message: "expected a time"}},
		{"a list at the top level", FormatJSON, `[]`,
			ParseError{Line: 1, Column: 1, Message: "the document must be an object"}},
		{"null at the top level", FormatJSON, `null`,
			ParseError{Line: 1, Column: 1, Message: "the document must be an object"}},
		{"an empty document", FormatJSON, ``,
			ParseError{Message: "document is empty"}},
		{"a syntax error", FormatJSON, "{\"currencies\": [\n}",
			ParseError{Path: "currencies", Line: 2, Column: 1, Message: "invalid character '}'"}},
		{"a truncated document", FormatJSON, `{"currencies": [`,
			ParseError{Path: "currencies", Line: 1, Column: 17, Message: "unexpected end of document"}},
		{"an unknown format", Format("toml"), `{}`,
			ParseError{Message: `unknown format "toml"`}},

		{"YAML: an unknown field has a path but no line", FormatYAML, "currencies: []\nitems:\n  - id: a\n    prce: 1\n",
			ParseError{Path: "items[0]", Message: `unknown field "prce"`}},
		{"YAML: a duplicate key has a line", FormatYAML, "currencies: []\ncurrencies: []\n",
			ParseError{Line: 2, Message: `"currencies" already set`}},
		{"YAML: a syntax error has a line", FormatYAML, "currencies:\n  - id: gold\n name: Gold\n",
			ParseError{Line: 2, Message: "did not find expected key"}},
		{"YAML: a word where an integer belongs", FormatYAML, "items:\n  - prices:\n      - amount: five\n",
			ParseError{Path: "items[0].prices[0].amount", Message: "expected an integer, got a string"}},
		{"YAML: an unquoted number as a name", FormatYAML, "currencies:\n  - name: 2048\n",
			ParseError{Path: "currencies[0].name", Message: "expected a string, got a number"}},
		{"YAML: a scalar document", FormatYAML, "hello\n",
			ParseError{Message: "the document must be an object"}},
		{"YAML: an empty document", FormatYAML, "",
			ParseError{Message: "the document must be an object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.input), tt.format)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse = %+v, %v; want a *ParseError", c, err)
			}
			if c != nil {
				t.Errorf("Parse returned a catalog with its error")
			}
			if pe.Format != tt.format || pe.Path != tt.want.Path || pe.Line != tt.want.Line ||
				pe.Column != tt.want.Column || !strings.Contains(pe.Message, tt.want.Message) {
				t.Errorf("got  %#v\nwant %#v", *pe, tt.want)
			}
			if !strings.HasPrefix(pe.Error(), "catalog: invalid ") {
				t.Errorf("Error() = %q", pe.Error())
			}
		})
	}
}

func TestParseErrorMessage(t *testing.T) {
	_, err := Parse([]byte("{\n  \"currencies\": [],\n  \"items\": [\n    {\"id\": \"a\", \"prce\": 1}\n  ]\n}"), FormatJSON)
	want := `catalog: invalid JSON document: line 4, column 17: items[0]: unknown field "prce"`
	if err == nil || err.Error() != want {
		t.Errorf("Error() = %v\nwant       %s", err, want)
	}
}

func TestParseRejectsOversizeDocuments(t *testing.T) {
	// Valid up to the limit, then one byte over: the size check, not a
	// syntax error, must be what rejects it.
	pad := func(n int) []byte {
		doc := []byte(`{"currencies": []}`)
		return append(doc, bytes.Repeat([]byte(" "), n-len(doc))...)
	}
	if _, err := Parse(pad(MaxDocumentSize), FormatJSON); err != nil {
		t.Fatalf("document of exactly MaxDocumentSize: %v", err)
	}
	for _, f := range []Format{FormatJSON, FormatYAML} {
		_, err := Parse(pad(MaxDocumentSize+1), f)
		var pe *ParseError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "larger than") {
			t.Errorf("%s: Parse = %v, want a too-large *ParseError", f, err)
		}
	}
}

func TestParseYAMLAliasExpansionIsBounded(t *testing.T) {
	// A small YAML document whose aliases expand past the size limit must
	// fail cleanly, whichever check catches it first.
	var b strings.Builder
	b.WriteString("a: &a [" + strings.Repeat(`"`+strings.Repeat("x", 10_000)+`",`, 10) + "]\n")
	b.WriteString("b: &b [" + strings.Repeat("*a,", 100) + "]\n") // 10 MB once expanded
	_, err := Parse([]byte(b.String()), FormatYAML)
	var pe *ParseError
	if !errors.As(err, &pe) || !strings.Contains(pe.Message, "larger than") && !strings.Contains(pe.Message, "aliasing") {
		t.Fatalf("Parse = %v, want a too-large *ParseError", err)
	}
}
