package catalog

import (
	"testing"
	"time"
)

// testCatalog returns a fresh valid catalog. Each validation case changes one
// thing in it, so the entries are chosen to make a single change produce a
// single problem: silver, shield and the google product are referenced by
// nothing else.
func testCatalog() *Catalog {
	return &Catalog{
		Currencies: []Currency{
			{ID: "gold", Name: "Gold"},
			{ID: "gems", Name: "Gems"},
			{ID: "silver", Name: "Silver"},
		},
		Items: []Item{
			{ID: "sword", Name: "Sword", Kind: KindDurable, Prices: []Price{{"gold", 500}, {"gems", 5}}},
			{ID: "potion", Name: "Potion", Kind: KindConsumable, Prices: []Price{{"gold", 100}}, MaxPerPlayer: 99},
			{ID: "shield", Name: "Shield", Kind: KindDurable, Prices: []Price{{"gold", 300}}},
		},
		Bundles: []Bundle{{
			ID: "starter", Name: "Starter Pack", Prices: []Price{{"gems", 50}},
			Contents: Grants{Items: map[string]int64{"sword": 1, "potion": 5}, Currencies: map[string]int64{"gold": 1000}},
		}},
		StoreProducts: []StoreProduct{
			{Store: StoreApple, ProductID: "com.example.gems100", Grants: Grants{Currencies: map[string]int64{"gems": 100}}},
			{Store: StoreGoogle, ProductID: "com.example.gems100", Grants: Grants{Currencies: map[string]int64{"gems": 100}}},
		},
	}
}

func ptr[T any](v T) *T { return &v }

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func TestAvailableAt(t *testing.T) {
	from, until := date(2026, 1, 1), date(2027, 1, 1)
	tests := []struct {
		name        string
		from, until *time.Time
		at          time.Time
		want        bool
	}{
		{"no window is always available", nil, nil, date(1999, 1, 1), true},
		{"before from is unavailable", &from, &until, from.Add(-time.Nanosecond), false},
		{"from itself is available", &from, &until, from, true},
		{"inside the window is available", &from, &until, date(2026, 6, 1), true},
		{"until itself is unavailable", &from, &until, until, false},
		{"after until is unavailable", &from, &until, until.Add(time.Hour), false},
		{"only from: any time after is available", &from, nil, date(2100, 1, 1), true},
		{"only until: any time before is available", nil, &until, date(1999, 1, 1), true},
		{"other time zones compare by instant", &from, &until, time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("CET", 3600)), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it := Item{AvailableFrom: tt.from, AvailableUntil: tt.until}
			if got := it.AvailableAt(tt.at); got != tt.want {
				t.Errorf("Item.AvailableAt(%v) = %v, want %v", tt.at, got, tt.want)
			}
			b := Bundle{AvailableFrom: tt.from, AvailableUntil: tt.until}
			if got := b.AvailableAt(tt.at); got != tt.want {
				t.Errorf("Bundle.AvailableAt(%v) = %v, want %v", tt.at, got, tt.want)
			}
		})
	}
}

func TestPriceIn(t *testing.T) {
	c := testCatalog()
	sword, starter := &c.Items[0], &c.Bundles[0]
	if p, ok := sword.PriceIn("gems"); !ok || p != (Price{"gems", 5}) {
		t.Errorf("sword.PriceIn(gems) = %v, %v; want {gems 5}, true", p, ok)
	}
	if p, ok := sword.PriceIn("silver"); ok {
		t.Errorf("sword.PriceIn(silver) = %v, true; want not found", p)
	}
	if p, ok := starter.PriceIn("gems"); !ok || p.Amount != 50 {
		t.Errorf("starter.PriceIn(gems) = %v, %v; want 50, true", p, ok)
	}
	if _, ok := starter.PriceIn("gold"); ok {
		t.Error("starter.PriceIn(gold) found a price; want none")
	}
}

func TestFormatFromContentType(t *testing.T) {
	tests := []struct {
		ct     string
		want   Format
		wantOK bool
	}{
		{"application/json", FormatJSON, true},
		{"application/json; charset=utf-8", FormatJSON, true},
		{"Application/JSON", FormatJSON, true},
		{"application/yaml", FormatYAML, true},
		{"application/x-yaml", FormatYAML, true},
		{"text/yaml; charset=UTF-8", FormatYAML, true},
		{"text/plain", "", false},
		{"application/jsonx", "", false},
		{"", "", false},
		{"application/json; charset", "", false}, // malformed parameter
	}
	for _, tt := range tests {
		got, ok := FormatFromContentType(tt.ct)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("FormatFromContentType(%q) = %q, %v; want %q, %v", tt.ct, got, ok, tt.want, tt.wantOK)
		}
	}
}
