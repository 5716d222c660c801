package catalog

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestValidateAcceptsTestCatalog(t *testing.T) {
	if err := Validate(testCatalog()); err != nil {
		t.Fatalf("Validate(testCatalog()) = %v, want nil", err)
	}
}

const idRule = "use 1-64 characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit"

// TestValidateRules has one case per rule: each changes the valid test
// catalog in one way and expects exactly one problem, with its exact path and
// message. Cases with no path/message check that a boundary value is accepted.
func TestValidateRules(t *testing.T) {
	tests := []struct {
		name    string
		change  func(c *Catalog)
		path    string
		message string
	}{
		// The catalog as a whole.
		{"an empty catalog is invalid",
			func(c *Catalog) { *c = Catalog{} },
			"currencies", "at least one currency is required"},

		// Ids.
		{"a missing id is reported",
			func(c *Catalog) { c.Currencies[2].ID = "" },
			"currencies[2].id", "id is required"},
		{"an id with upper case is malformed",
			func(c *Catalog) { c.Currencies[2].ID = "Silver" },
			"currencies[2].id", `invalid id "Silver": ` + idRule},
		{"an id starting with punctuation is malformed",
			func(c *Catalog) { c.Items[2].ID = "_shield" },
			"items[2].id", `invalid id "_shield": ` + idRule},
		{"an id with a space is malformed",
			func(c *Catalog) { c.Items[2].ID = "oak shield" },
			"items[2].id", `invalid id "oak shield": ` + idRule},
		{"an id of 65 characters is too long",
			func(c *Catalog) { c.Items[2].ID = strings.Repeat("s", 65) },
			"items[2].id", `invalid id "` + strings.Repeat("s", 65) + `": ` + idRule},
		{"an id of 64 characters with punctuation after the first is fine",
			func(c *Catalog) { c.Items[2].ID = "9" + strings.Repeat("a._-", 15) + "xyz" },
			"", ""},
		{"a duplicate currency id is reported at the second one",
			func(c *Catalog) { c.Currencies[2].ID = "gold" },
			"currencies[2].id", `duplicate id "gold" (first used by currencies[0])`},
		{"a duplicate item id is reported",
			func(c *Catalog) { c.Items[2].ID = "sword" },
			"items[2].id", `duplicate id "sword" (first used by items[0])`},
		{"items and bundles share one id space",
			func(c *Catalog) { c.Bundles[0].ID = "shield"; c.Bundles[0].Contents.Items = nil },
			"bundles[0].id", `duplicate id "shield" (first used by items[2])`},
		{"a currency may share an id with an item",
			func(c *Catalog) { c.Currencies[2].ID = "shield" },
			"", ""},

		// Names.
		{"a missing name is reported",
			func(c *Catalog) { c.Currencies[2].Name = "" },
			"currencies[2].name", "name is required"},
		{"a blank name counts as missing",
			func(c *Catalog) { c.Items[2].Name = " \t " },
			"items[2].name", "name is required"},
		{"a name of 201 characters is too long",
			func(c *Catalog) { c.Bundles[0].Name = strings.Repeat("n", 201) },
			"bundles[0].name", "name is longer than 200 characters"},
		{"a name of 200 characters, counted as characters not bytes, is fine",
			func(c *Catalog) { c.Items[2].Name = strings.Repeat("é", 200) },
			"", ""},
		{"a name with a control character is rejected",
			func(c *Catalog) { c.Items[2].Name = "Shield\x00" },
			"items[2].name", "name contains control characters"},

		// Kind.
		{"a missing kind is reported",
			func(c *Catalog) { c.Items[2].Kind = "" },
			"items[2].kind", "kind is required"},
		{"an unknown kind is reported",
			func(c *Catalog) { c.Items[2].Kind = "permanent" },
			"items[2].kind", `unknown kind "permanent": must be "durable" or "consumable"`},

		// Prices.
		{"an item without prices is reported",
			func(c *Catalog) { c.Items[2].Prices = nil },
			"items[2].prices", "at least one price is required"},
		{"a bundle without prices is reported",
			func(c *Catalog) { c.Bundles[0].Prices = []Price{} },
			"bundles[0].prices", "at least one price is required"},
		{"a price without currency is reported",
			func(c *Catalog) { c.Items[2].Prices[0].Currency = "" },
			"items[2].prices[0].currency", "currency is required"},
		{"a price in an unknown currency is reported",
			func(c *Catalog) { c.Items[0].Prices[1].Currency = "gld" },
			"items[0].prices[1].currency", `unknown currency "gld"`},
		{"a bundle price in an unknown currency is reported",
			func(c *Catalog) { c.Bundles[0].Prices[0].Currency = "diamonds" },
			"bundles[0].prices[0].currency", `unknown currency "diamonds"`},
		{"two prices in one currency are reported at the second",
			func(c *Catalog) { c.Items[2].Prices = []Price{{"gold", 300}, {"silver", 3}, {"gold", 250}} },
			"items[2].prices[2].currency", `duplicate price in currency "gold" (first at items[2].prices[0])`},
		{"a zero amount is rejected",
			func(c *Catalog) { c.Items[2].Prices[0].Amount = 0 },
			"items[2].prices[0].amount", "amount must be greater than 0"},
		{"a negative amount is rejected",
			func(c *Catalog) { c.Bundles[0].Prices[0].Amount = -50 },
			"bundles[0].prices[0].amount", "amount must be greater than 0"},
		{"an amount above MaxAmount is rejected",
			func(c *Catalog) { c.Items[2].Prices[0].Amount = MaxAmount + 1 },
			"items[2].prices[0].amount", "amount must be at most 1000000000000"},
		{"an amount of exactly MaxAmount is fine",
			func(c *Catalog) { c.Items[2].Prices[0].Amount = MaxAmount },
			"", ""},

		// max_per_player.
		{"a negative max_per_player is rejected",
			func(c *Catalog) { c.Items[1].MaxPerPlayer = -1 },
			"items[1].max_per_player", "max_per_player must be at least 1"},
		{"max_per_player on a durable is rejected",
			func(c *Catalog) { c.Items[2].MaxPerPlayer = 1 },
			"items[2].max_per_player", "max_per_player is only allowed on consumable items"},
		{"max_per_player above MaxAmount is rejected",
			func(c *Catalog) { c.Items[1].MaxPerPlayer = MaxAmount + 1 },
			"items[1].max_per_player", "max_per_player must be at most 1000000000000"},
		{"player_consumable on a durable is rejected",
			func(c *Catalog) { c.Items[2].PlayerConsumable = true },
			"items[2].player_consumable", "player_consumable is only allowed on consumable items"},
		{"player_consumable on a consumable is fine",
			func(c *Catalog) { c.Items[1].PlayerConsumable = true },
			"", ""},
		{"max_per_player of 1 is fine",
			func(c *Catalog) { c.Items[1].MaxPerPlayer = 1; c.Bundles[0].Contents.Items["potion"] = 1 },
			"", ""},

		// Availability windows.
		{"an item window that ends when it starts is rejected",
			func(c *Catalog) {
				c.Items[2].AvailableFrom, c.Items[2].AvailableUntil = ptr(date(2026, 1, 1)), ptr(date(2026, 1, 1))
			},
			"items[2].available_until", "available_until must be after available_from"},
		{"a bundle window that ends before it starts is rejected",
			func(c *Catalog) {
				c.Bundles[0].AvailableFrom, c.Bundles[0].AvailableUntil = ptr(date(2027, 1, 1)), ptr(date(2026, 1, 1))
			},
			"bundles[0].available_until", "available_until must be after available_from"},
		{"windows compare instants, not wall clocks",
			func(c *Catalog) {
				// 01:00 at UTC+2 is 23:00 the day before in UTC.
				c.Items[2].AvailableFrom = ptr(date(2026, 1, 1))
				c.Items[2].AvailableUntil = ptr(time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("", 2*3600)))
			},
			"items[2].available_until", "available_until must be after available_from"},
		{"a window open at one end is fine",
			func(c *Catalog) { c.Items[2].AvailableUntil = ptr(date(2026, 1, 1)) },
			"", ""},
		{"a time after year 9999 is rejected",
			func(c *Catalog) { c.Items[2].AvailableUntil = ptr(date(10000, 1, 1)) },
			"items[2].available_until", "time must be between the years 1970 and 9999"},
		{"a time before 1970 is rejected",
			func(c *Catalog) { c.Bundles[0].AvailableFrom = ptr(date(1969, 12, 31)) },
			"bundles[0].available_from", "time must be between the years 1970 and 9999"},

		// Bundle contents.
		{"empty bundle contents are rejected",
			func(c *Catalog) { c.Bundles[0].Contents = Grants{Items: map[string]int64{}} },
			"bundles[0].contents", "contents must not be empty"},
		{"a bundle with only currencies is fine",
			func(c *Catalog) { c.Bundles[0].Contents.Items = nil },
			"", ""},
		{"a bundle containing itself is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Items["starter"] = 1 },
			"bundles[0].contents.items.starter", "bundle contains itself"},
		{"a bundle containing another bundle is rejected",
			func(c *Catalog) {
				c.Bundles = append(c.Bundles, Bundle{ID: "mega", Name: "Mega", Prices: []Price{{"gems", 500}},
					Contents: Grants{Currencies: map[string]int64{"gold": 10}}})
				c.Bundles[0].Contents.Items["mega"] = 1
			},
			"bundles[0].contents.items.mega", "bundles cannot contain bundles"},
		{"a bundle containing an unknown item is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Items["axe"] = 1 },
			"bundles[0].contents.items.axe", `unknown item "axe"`},
		{"a key that is not an id is quoted in the path",
			func(c *Catalog) { c.Bundles[0].Contents.Items["Big Axe"] = 1 },
			`bundles[0].contents.items["Big Axe"]`, `unknown item "Big Axe"`},
		{"a durable quantity other than 1 is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Items["sword"] = 2 },
			"bundles[0].contents.items.sword", "durable item quantity must be exactly 1"},
		{"a zero item quantity is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Items["potion"] = 0 },
			"bundles[0].contents.items.potion", "quantity must be greater than 0"},
		{"a consumable quantity above max_per_player is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Items["potion"] = 100 },
			"bundles[0].contents.items.potion", "quantity 100 exceeds max_per_player 99"},
		{"a consumable quantity above MaxAmount is rejected",
			func(c *Catalog) { c.Items[1].MaxPerPlayer = 0; c.Bundles[0].Contents.Items["potion"] = MaxAmount + 1 },
			"bundles[0].contents.items.potion", "quantity must be at most 1000000000000"},
		{"an unknown currency in contents is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Currencies["gld"] = 5 },
			"bundles[0].contents.currencies.gld", `unknown currency "gld"`},
		{"a negative currency quantity is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Currencies["gold"] = -1000 },
			"bundles[0].contents.currencies.gold", "quantity must be greater than 0"},
		{"a currency quantity above MaxAmount is rejected",
			func(c *Catalog) { c.Bundles[0].Contents.Currencies["gold"] = MaxAmount + 1 },
			"bundles[0].contents.currencies.gold", "quantity must be at most 1000000000000"},

		// Store products.
		{"a missing store is reported",
			func(c *Catalog) { c.StoreProducts[1].Store = "" },
			"store_products[1].store", "store is required"},
		{"an unknown store is reported",
			func(c *Catalog) { c.StoreProducts[1].Store = "steam" },
			"store_products[1].store", `unknown store "steam": must be "apple" or "google"`},
		{"a missing product_id is reported",
			func(c *Catalog) { c.StoreProducts[1].ProductID = "" },
			"store_products[1].product_id", "product_id is required"},
		{"a malformed product_id is reported",
			func(c *Catalog) { c.StoreProducts[1].ProductID = "gems 100" },
			"store_products[1].product_id", `invalid product_id "gems 100": use 1-255 characters from A-Z, a-z, 0-9, '_', '.' and '-'`},
		{"a product_id used twice in one store is reported at the second",
			func(c *Catalog) { c.StoreProducts[1].Store = StoreApple },
			"store_products[1].product_id", `duplicate product_id "com.example.gems100" for store "apple" (first at store_products[0])`},
		{"empty grants are rejected",
			func(c *Catalog) { c.StoreProducts[1].Grants = Grants{} },
			"store_products[1].grants", "grants must not be empty"},
		{"granting an unknown currency is rejected",
			func(c *Catalog) { c.StoreProducts[1].Grants.Currencies = map[string]int64{"gemz": 100} },
			"store_products[1].grants.currencies.gemz", `unknown currency "gemz"`},
		{"granting a zero amount is rejected",
			func(c *Catalog) { c.StoreProducts[1].Grants.Currencies["gems"] = 0 },
			"store_products[1].grants.currencies.gems", "quantity must be greater than 0"},
		{"granting a bundle is rejected",
			func(c *Catalog) { c.StoreProducts[1].Grants.Items = map[string]int64{"starter": 1} },
			"store_products[1].grants.items.starter", "store products cannot grant bundles"},
		{"granting an unknown item is rejected",
			func(c *Catalog) { c.StoreProducts[1].Grants.Items = map[string]int64{"axe": 1} },
			"store_products[1].grants.items.axe", `unknown item "axe"`},
		{"granting a durable twice is rejected",
			func(c *Catalog) { c.StoreProducts[1].Grants.Items = map[string]int64{"shield": 2} },
			"store_products[1].grants.items.shield", "durable item quantity must be exactly 1"},
		{"granting items only is fine",
			func(c *Catalog) {
				c.StoreProducts[1].Grants = Grants{Items: map[string]int64{"potion": 10, "shield": 1}}
			},
			"", ""},
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

func TestValidateReportsAllProblemsInDocumentOrder(t *testing.T) {
	c := testCatalog()
	c.StoreProducts[0].Store = "steam"
	c.Bundles[0].Contents.Items["sword"] = 3
	c.Bundles[0].Contents.Items["axe"] = 1
	c.Items[0].Prices[1].Currency = "gld"
	c.Items[2].Kind = "weapon"
	c.Items[2].Prices[0].Amount = 0
	c.Currencies[1].Name = ""
	c.Bundles[0].Contents.Currencies["bronze"] = 1

	err := Validate(c)
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v, want *ValidationError", err)
	}
	// Sections in document order; within an entry, fields in declaration
	// order; map keys sorted, items before currencies.
	want := []Problem{
		{"currencies[1].name", "name is required"},
		{"items[0].prices[1].currency", `unknown currency "gld"`},
		{"items[2].kind", `unknown kind "weapon": must be "durable" or "consumable"`},
		{"items[2].prices[0].amount", "amount must be greater than 0"},
		{"bundles[0].contents.items.axe", `unknown item "axe"`},
		{"bundles[0].contents.items.sword", "durable item quantity must be exactly 1"},
		{"bundles[0].contents.currencies.bronze", `unknown currency "bronze"`},
		{"store_products[0].store", `unknown store "steam": must be "apple" or "google"`},
	}
	if !reflect.DeepEqual(ve.Problems, want) {
		t.Errorf("problems:\n got %q\nwant %q", ve.Problems, want)
	}
	// The same catalog always gives the same list, despite map iteration.
	for range 20 {
		var again *ValidationError
		errors.As(Validate(c), &again)
		if !reflect.DeepEqual(again.Problems, want) {
			t.Fatalf("second run gave a different order: %q", again.Problems)
		}
	}
}

func TestValidateNil(t *testing.T) {
	var ve *ValidationError
	if err := Validate(nil); !errors.As(err, &ve) {
		t.Fatalf("Validate(nil) = %v, want *ValidationError", err)
	}
}

func TestValidationErrorMessage(t *testing.T) {
	one := &ValidationError{Problems: []Problem{{"items[0].kind", "kind is required"}}}
	if got, want := one.Error(), "catalog: invalid: items[0].kind: kind is required"; got != want {
		t.Errorf("one problem: got %q, want %q", got, want)
	}
	many := &ValidationError{Problems: []Problem{
		{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"},
	}}
	if got, want := many.Error(), "catalog: invalid: 5 problems: a: 1; b: 2; c: 3; and 2 more"; got != want {
		t.Errorf("five problems: got %q, want %q", got, want)
	}
}
