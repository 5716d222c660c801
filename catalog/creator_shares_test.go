package catalog

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// creatorCatalog: a sword (300 gold) made by smith at 30%, a shield
// (200 gold) made by tanner at 50%, a potion (100 gold, 1 gem) made by
// no one.
func creatorCatalog(bundles ...Bundle) *Catalog {
	return &Catalog{
		Currencies: []Currency{{ID: "gold", Name: "Gold"}, {ID: "gems", Name: "Gems"}},
		Items: []Item{
			{ID: "sword", Name: "Sword", Kind: KindDurable, Prices: []Price{{"gold", 300}}, CreatorID: "smith", CreatorSharePPM: 300_000},
			{ID: "shield", Name: "Shield", Kind: KindDurable, Prices: []Price{{"gold", 200}, {"gems", 2}}, CreatorID: "tanner", CreatorSharePPM: 500_000},
			{ID: "potion", Name: "Potion", Kind: KindConsumable, Prices: []Price{{"gold", 100}, {"gems", 1}}},
		},
		Bundles: bundles,
	}
}

func bundleOf(prices []Price, items map[string]int64, currencies map[string]int64) Bundle {
	return Bundle{ID: "pack", Name: "Pack", Prices: prices, Contents: Grants{Items: items, Currencies: currencies}}
}

func TestBundleCreatorShares(t *testing.T) {
	tests := []struct {
		name     string
		bundle   Bundle
		currency string
		want     []CreatorShare
	}{
		{"the share follows the list value, not the bundle's discount",
			bundleOf([]Price{{"gold", 250}}, map[string]int64{"sword": 1, "potion": 2}, nil), "gold",
			// sword 300 of 500 list: 30% × 3/5 = 18%
			[]CreatorShare{{"smith", 180_000}}},
		{"two creators each get their part",
			bundleOf([]Price{{"gold", 400}}, map[string]int64{"sword": 1, "shield": 1}, nil), "gold",
			// sword 300/500 × 30% = 18%, shield 200/500 × 50% = 20%
			[]CreatorShare{{"smith", 180_000}, {"tanner", 200_000}}},
		{"a quantity multiplies the content's value",
			bundleOf([]Price{{"gold", 1000}}, map[string]int64{"shield": 1, "potion": 3}, nil), "gold",
			// shield 200 of 500: 50% × 2/5
			[]CreatorShare{{"tanner", 200_000}}},
		{"a content of the paid currency is worth its amount",
			bundleOf([]Price{{"gold", 500}}, map[string]int64{"sword": 1}, map[string]int64{"gold": 600}), "gold",
			// sword 300 of 900: 30% × 1/3 = 100000
			[]CreatorShare{{"smith", 100_000}}},
		{"the rate rounds down to a whole ppm, once",
			bundleOf([]Price{{"gems", 3}}, map[string]int64{"shield": 1, "potion": 1}, nil), "gems",
			// shield 2 of 3 gems: 50% × 2/3 = 333333.33…
			[]CreatorShare{{"tanner", 333_333}}},
		{"each currency has its own rate",
			bundleOf([]Price{{"gold", 250}, {"gems", 3}}, map[string]int64{"shield": 1, "potion": 1}, nil), "gold",
			// shield 200 of 300 gold: 50% × 2/3
			[]CreatorShare{{"tanner", 333_333}}},
		{"nothing creator-made credits no one",
			bundleOf([]Price{{"gold", 50}}, map[string]int64{"potion": 1}, nil), "gold", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap, err := NewSnapshot(1, time.Now(), creatorCatalog(tt.bundle))
			if err != nil {
				t.Fatal(err)
			}
			if got := snap.CreatorShares("pack", tt.currency); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("CreatorShares(pack, %s) = %v, want %v", tt.currency, got, tt.want)
			}
		})
	}
	snap, err := NewSnapshot(1, time.Now(), creatorCatalog())
	if err != nil {
		t.Fatal(err)
	}
	if got := snap.CreatorShares("sword", "gold"); !reflect.DeepEqual(got, []CreatorShare{{"smith", 300_000}}) {
		t.Errorf("an item's shares = %v, want its own", got)
	}
	if got := snap.CreatorShares("potion", "gold"); got != nil {
		t.Errorf("an item made by no one credits %v", got)
	}
}

// A bundle with creator-made items must give every content a value in each
// currency it is sold for: without it the creators' shares are unknown.
func TestABundleOfCreatorItemsNeedsAValueForEveryContent(t *testing.T) {
	tests := []struct {
		name  string
		b     Bundle
		paths []string
	}{
		{"a creator item without a price in the bundle's currency",
			bundleOf([]Price{{"gems", 5}}, map[string]int64{"sword": 1, "potion": 1}, nil),
			[]string{"bundles[0].contents.items.sword"}},
		{"another content without a price in it",
			bundleOf([]Price{{"gold", 5}, {"gems", 5}}, map[string]int64{"shield": 1, "sword": 1}, nil),
			[]string{"bundles[0].contents.items.sword"}},
		{"a content of another currency",
			bundleOf([]Price{{"gold", 5}}, map[string]int64{"sword": 1}, map[string]int64{"gems": 10}),
			[]string{"bundles[0].contents.currencies.gems"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(creatorCatalog(tt.b))
			var got []string
			if ve, ok := err.(*ValidationError); ok {
				for _, p := range ve.Problems {
					got = append(got, p.Path)
					if !strings.Contains(p.Message, "creator-made") {
						t.Errorf("%s: %q does not say why", p.Path, p.Message)
					}
				}
			}
			if !reflect.DeepEqual(got, tt.paths) {
				t.Errorf("problems at %v (%v), want %v", got, err, tt.paths)
			}
		})
	}
	// Without creator-made contents the old rule stands: no values needed.
	plain := bundleOf([]Price{{"gems", 5}}, map[string]int64{"potion": 1}, map[string]int64{"gold": 10})
	if err := Validate(creatorCatalog(plain)); err != nil {
		t.Errorf("a bundle of nothing creator-made: %v", err)
	}
}

// Repricing an item changes its creator's rate on every bundle holding it,
// though no field of the bundle changed: the diff lists it, with item
// shares that change, appear or go.
func TestTheDiffShowsCreatorShareChanges(t *testing.T) {
	pack := bundleOf([]Price{{"gold", 400}}, map[string]int64{"sword": 1, "potion": 2}, nil)
	from := creatorCatalog(pack)
	to := creatorCatalog(pack)
	to.Items[0].Prices = []Price{{"gold", 200}}                            // sword: 300 → 200 of the pack's list value
	to.Items[1].CreatorSharePPM = 400_000                                  // shield: 50% → 40%
	to.Items[2].CreatorID, to.Items[2].CreatorSharePPM = "brewer", 100_000 // potion: now creator-made
	d := Compare(from, to)
	i64 := func(n int64) *int64 { return &n }
	want := []CreatorShareChange{
		{Section: SectionItems, ID: "potion", CreatorID: "brewer", After: i64(100_000)},
		{Section: SectionItems, ID: "shield", CreatorID: "tanner", Before: i64(500_000), After: i64(400_000)},
		// potion now earns brewer 10% × 200/400 of the pack
		{Section: SectionBundles, ID: "pack", Currency: "gold", CreatorID: "brewer", After: i64(50_000)},
		// sword: 30% × 300/500 = 18% before, 30% × 200/400 = 15% after
		{Section: SectionBundles, ID: "pack", Currency: "gold", CreatorID: "smith", Before: i64(180_000), After: i64(150_000)},
	}
	if !reflect.DeepEqual(d.CreatorShareChanges, want) {
		t.Errorf("creator share changes:\n got %s\nwant %s", showValue(d.CreatorShareChanges), showValue(want))
	}
	if s := d.String(); !strings.Contains(s, "bundles/pack paid in gold, creator smith: 180000 -> 150000") {
		t.Errorf("the text diff does not show the bundle's rate:\n%s", s)
	}
	if same := Compare(from, from); len(same.CreatorShareChanges) != 0 {
		t.Errorf("no change lists %v", same.CreatorShareChanges)
	}
}
