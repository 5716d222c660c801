package catalog

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	from := testCatalog()
	to := testCatalog()
	to.Items[0].Prices = []Price{{"gems", 4}, {"gold", 450}} // reordered, gold and gems changed
	to.Items[1].MaxPerPlayer = 0                             // potion: field removed
	to.Items[2].AvailableFrom = ptr(date(2026, 12, 1))       // shield: field added
	to.Items = append(to.Items, Item{ID: "bow", Name: "Bow", Kind: KindDurable, Prices: []Price{{"gold", 800}}})
	to.Bundles[0].Contents.Items["potion"] = 10
	to.Bundles[0].Prices = append(to.Bundles[0].Prices, Price{"gold", 5000})
	to.StoreProducts = to.StoreProducts[:1] // google product removed

	d := Compare(from, to)
	if !d.Changed || d.Summary != (DiffSummary{Added: 1, Removed: 1, Changed: 4}) {
		t.Fatalf("summary = %+v", d.Summary)
	}
	type line struct{ sec, id, change, fields string }
	var got []line
	for _, c := range d.Changes {
		var fs []string
		for _, f := range c.Fields {
			fs = append(fs, f.Path+"="+showValue(f.Before)+">"+showValue(f.After))
		}
		got = append(got, line{string(c.Section), c.ID, c.Change, strings.Join(fs, " ")})
	}
	want := []line{
		{"items", "bow", Added, `id=(none)>"bow" kind=(none)>"durable" name=(none)>"Bow" prices.gold=(none)>800`},
		{"items", "potion", Changed, "max_per_player=99>(none)"},
		{"items", "shield", Changed, `available_from=(none)>"2026-12-01T00:00:00Z"`},
		{"items", "sword", Changed, "prices.gems=5>4 prices.gold=500>450"},
		{"bundles", "starter", Changed, "contents.items.potion=5>10 prices.gold=(none)>5000"},
		{"store_products", "google:com.example.gems100", Removed, `grants.currencies.gems=100>(none) product_id="com.example.gems100">(none) store="google">(none)`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes:\n%+v\nwant\n%+v", got, want)
	}
	var prices []string
	for _, p := range d.PriceChanges {
		prices = append(prices, string(p.Section)+"/"+p.ID+" "+p.Currency+" "+showPrice(p.Before)+">"+showPrice(p.After))
	}
	if want := []string{"items/bow gold (none)>800", "items/sword gems 5>4", "items/sword gold 500>450", "bundles/starter gold (none)>5000"}; !reflect.DeepEqual(prices, want) {
		t.Errorf("price changes = %q, want %q", prices, want)
	}

	text := d.String()
	for _, s := range []string{"1 added, 1 removed, 4 changed", "+ items/bow", "    prices.gold: (none) -> 800", "- store_products/google:com.example.gems100",
		"~ items/sword", "    prices.gold: 500 -> 450", "items/sword gold: 500 -> 450 (-10.0%)"} {
		if !strings.Contains(text, s) {
			t.Errorf("String() lacks %q:\n%s", s, text)
		}
	}
	if _, err := json.Marshal(d); err != nil {
		t.Errorf("diff does not marshal: %v", err)
	}
}

func TestCompareEqualCatalogsHasNoChanges(t *testing.T) {
	d := Compare(testCatalog(), testCatalog())
	if d.Changed || len(d.Changes) != 0 || len(d.PriceChanges) != 0 {
		t.Errorf("diff of equal catalogs = %+v", d)
	}
	if !strings.Contains(d.String(), "no changes") {
		t.Errorf("String() = %q", d.String())
	}
	if d := Compare(&Catalog{}, testCatalog()); d.Summary.Added != 9 {
		t.Errorf("against nothing, every entity is added: %+v", d.Summary)
	}
}

func TestParseEntity(t *testing.T) {
	t.Run("YAML and JSON bodies, id from the URL", func(t *testing.T) {
		v, err := ParseEntity(SectionItems, "bow", []byte("name: Bow\nkind: durable\nprices:\n  - currency: gold\n    amount: 800\navailable_from: 2026-12-01T01:00:00+01:00\n"), FormatYAML)
		if err != nil {
			t.Fatal(err)
		}
		it := v.(*Item)
		if it.ID != "bow" || it.Prices[0].Amount != 800 || it.AvailableFrom.Location() != time.UTC || !it.AvailableFrom.Equal(date(2026, 12, 1)) {
			t.Errorf("item = %+v", it)
		}
	})
	tests := []struct {
		name      string
		sec       Section
		id, body  string
		parseErr  bool
		wantPath  string
		wantMatch string
	}{
		{name: "an id that disagrees with the URL", sec: SectionCurrencies, id: "gold", body: `{"id":"gems","name":"Gems"}`, wantPath: "id"},
		{name: "a store that disagrees", sec: SectionStoreProducts, id: "apple:x", body: `{"store":"google","grants":{"currencies":{"gems":1}}}`, wantPath: "store"},
		{name: "a store product id without a store", sec: SectionStoreProducts, id: "com.example.x", body: `{"grants":{}}`, wantPath: ""},
		{name: "an unknown field", sec: SectionItems, id: "bow", body: `{"name":"Bow","colour":"red"}`, parseErr: true, wantMatch: `unknown field "colour"`},
		{name: "a wrong type, with its path", sec: SectionItems, id: "bow", body: `{"prices":[{"currency":"gold","amount":"800"}]}`, parseErr: true, wantMatch: "prices[0].amount"},
		{name: "not an object", sec: SectionBundles, id: "b", body: `[1]`, parseErr: true, wantMatch: "one bundle"},
		{name: "trailing data", sec: SectionCurrencies, id: "gold", body: `{"name":"Gold"} {}`, parseErr: true, wantMatch: "after the document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseEntity(tt.sec, tt.id, []byte(tt.body), FormatJSON)
			var pe *ParseError
			var ve *ValidationError
			switch {
			case tt.parseErr:
				if !errors.As(err, &pe) || !strings.Contains(pe.Error(), tt.wantMatch) {
					t.Errorf("= %v, want a ParseError mentioning %q", err, tt.wantMatch)
				}
			case !errors.As(err, &ve) || ve.Problems[0].Path != tt.wantPath:
				t.Errorf("= %v, want a ValidationError at %q", err, tt.wantPath)
			}
		})
	}
}

func TestEncodeYAMLKeepsFieldOrderAndParsesBack(t *testing.T) {
	c := testCatalog()
	c.Items[0].AvailableUntil = ptr(date(2027, 1, 1))
	c.Items[0].Name = "Swords & Shields: \"yes\""
	y, err := Encode(c, FormatYAML)
	if err != nil {
		t.Fatal(err)
	}
	text := string(y)
	if !strings.HasPrefix(text, "currencies:\n- id: gold\n  name: Gold\n") {
		t.Errorf("YAML does not follow the document's order:\n%s", text)
	}
	back, err := Parse(y, FormatYAML)
	if err != nil {
		t.Fatalf("Parse(Encode(c)): %v\n%s", err, text)
	}
	want, _ := Parse(mustEncode(t, c), FormatJSON)
	if !reflect.DeepEqual(back, want) {
		t.Errorf("YAML round trip differs:\n got %+v\nwant %+v", back, want)
	}
}

func mustEncode(t *testing.T, c *Catalog) []byte {
	t.Helper()
	b, err := Encode(c, FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
