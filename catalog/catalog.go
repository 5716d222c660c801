package catalog

import (
	"sort"
	"time"
)

// Limits that keep arithmetic on catalog values inside int64.
const (
	// MaxAmount bounds every price amount, grant quantity and max_per_player.
	// With quantities per purchase bounded by MaxQuantity, amount × quantity
	// is at most 10^18, below the int64 limit of about 9.2 × 10^18, so totals
	// never overflow.
	MaxAmount = 1_000_000_000_000

	// MaxQuantity is the largest number of units one purchase may ask for.
	// Callers that multiply a catalog amount by a requested quantity must
	// reject larger quantities first.
	MaxQuantity = 1_000_000
)

// Catalog is the document designers write and publish. Use Parse to read one
// and Validate before trusting it; a published Snapshot is always valid.
type Catalog struct {
	// DefaultLocale, when set, is the BCP 47 locale of the entries' own
	// name and description, so a client asking for it gets those.
	DefaultLocale string         `json:"default_locale,omitempty"`
	Currencies    []Currency     `json:"currencies"`
	Items         []Item         `json:"items"`
	Bundles       []Bundle       `json:"bundles"`
	StoreProducts []StoreProduct `json:"store_products"`
}

// Currency is a soft or hard currency players hold a balance of.
type Currency struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Details
	// Tippable lets players tip creators in this currency (package
	// creators); off unless set.
	Tippable bool `json:"tippable,omitempty"`
}

// Kind says how an item is held.
type Kind string

const (
	// KindDurable items are owned at most once (a sword, a skin).
	KindDurable Kind = "durable"
	// KindConsumable items stack, up to Item.MaxPerPlayer when that is set.
	KindConsumable Kind = "consumable"
)

// Item is something a player can buy with currency and hold.
type Item struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Details
	Kind   Kind    `json:"kind"`
	Prices []Price `json:"prices"`
	// MaxPerPlayer caps how many of a consumable one player may hold;
	// 0 means no cap. Durables are capped at one by their kind.
	MaxPerPlayer int64 `json:"max_per_player,omitempty"`
	// PlayerConsumable lets players use the item up themselves (POST
	// /v1/consumptions, for client-authoritative games); off unless set,
	// consumables only. Game servers may consume any item.
	PlayerConsumable bool `json:"player_consumable,omitempty"`
	// AvailableFrom and AvailableUntil bound when the item can be bought:
	// from is inclusive, until is exclusive, nil means unbounded.
	AvailableFrom  *time.Time `json:"available_from,omitempty"`
	AvailableUntil *time.Time `json:"available_until,omitempty"`
	// CreatorID names the creator who made the item (package creators);
	// every sale credits them CreatorSharePPM parts per million of the
	// price (300000 is 30%), in the sale's own ledger transaction. Publish
	// checks that the creator exists.
	CreatorID       string `json:"creator_id,omitempty"`
	CreatorSharePPM int64  `json:"creator_share_ppm,omitempty"`
}

// MaxCreatorSharePPM is a creator share of 100%.
const MaxCreatorSharePPM = 1_000_000

// CreatorIDs returns the creators the catalog's items name, sorted, once each.
func (c *Catalog) CreatorIDs() []string {
	seen := map[string]bool{}
	var out []string
	for _, it := range c.Items {
		if it.CreatorID != "" && !seen[it.CreatorID] {
			seen[it.CreatorID] = true
			out = append(out, it.CreatorID)
		}
	}
	sort.Strings(out)
	return out
}

// Price is what one unit costs in one currency.
type Price struct {
	Currency string `json:"currency"`
	Amount   int64  `json:"amount"`
}

// Bundle is a purchasable set of items and currencies. Items and bundles
// share one id space, because a purchase names either.
type Bundle struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	Details
	Prices         []Price    `json:"prices"`
	Contents       Grants     `json:"contents"`
	AvailableFrom  *time.Time `json:"available_from,omitempty"`
	AvailableUntil *time.Time `json:"available_until,omitempty"`
}

// Grants is what a player receives: item quantities and currency amounts,
// keyed by id.
type Grants struct {
	Items      map[string]int64 `json:"items,omitempty"`
	Currencies map[string]int64 `json:"currencies,omitempty"`
}

// Empty reports whether g grants nothing.
func (g Grants) Empty() bool { return len(g.Items) == 0 && len(g.Currencies) == 0 }

// Store names accepted in StoreProduct.Store.
const (
	StoreApple  = "apple"
	StoreGoogle = "google"
)

// StoreProduct maps a real-money product in an app store to what a verified
// purchase of it grants.
type StoreProduct struct {
	Store     string `json:"store"`
	ProductID string `json:"product_id"`
	Grants    Grants `json:"grants"`
}

// AvailableAt reports whether the item can be bought at t.
func (it *Item) AvailableAt(t time.Time) bool {
	return availableAt(it.AvailableFrom, it.AvailableUntil, t)
}

// PriceIn returns the item's price in currency, if it has one.
func (it *Item) PriceIn(currency string) (Price, bool) { return priceIn(it.Prices, currency) }

// AvailableAt reports whether the bundle can be bought at t.
func (b *Bundle) AvailableAt(t time.Time) bool {
	return availableAt(b.AvailableFrom, b.AvailableUntil, t)
}

// PriceIn returns the bundle's price in currency, if it has one.
func (b *Bundle) PriceIn(currency string) (Price, bool) { return priceIn(b.Prices, currency) }

func availableAt(from, until *time.Time, t time.Time) bool {
	if from != nil && t.Before(*from) {
		return false
	}
	if until != nil && !t.Before(*until) {
		return false
	}
	return true
}

// priceIn scans rather than indexes: an entry has a handful of prices at most.
func priceIn(prices []Price, currency string) (Price, bool) {
	for _, p := range prices {
		if p.Currency == currency {
			return p, true
		}
	}
	return Price{}, false
}

// normalize puts a decoded catalog in the one shape that marshals and
// re-parses to an equal value: times in UTC, empty grant maps as nil (they are
// omitted when marshalled), and top-level lists as empty rather than nil so
// clients are served [] instead of null.
func normalize(c *Catalog) {
	if c.Currencies == nil {
		c.Currencies = []Currency{}
	}
	if c.Items == nil {
		c.Items = []Item{}
	}
	if c.Bundles == nil {
		c.Bundles = []Bundle{}
	}
	if c.StoreProducts == nil {
		c.StoreProducts = []StoreProduct{}
	}
	for i := range c.Currencies {
		c.Currencies[i].Details.normalize()
	}
	for i := range c.Items {
		it := &c.Items[i]
		it.AvailableFrom, it.AvailableUntil = utc(it.AvailableFrom), utc(it.AvailableUntil)
		it.Details.normalize()
	}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		b.AvailableFrom, b.AvailableUntil = utc(b.AvailableFrom), utc(b.AvailableUntil)
		normalizeGrants(&b.Contents)
		b.Details.normalize()
	}
	for i := range c.StoreProducts {
		normalizeGrants(&c.StoreProducts[i].Grants)
	}
}

func normalizeGrants(g *Grants) {
	if len(g.Items) == 0 {
		g.Items = nil
	}
	if len(g.Currencies) == 0 {
		g.Currencies = nil
	}
}

func utc(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// ValidID reports whether s is a well-formed catalog id (see MaxIDLength).
// An id that is not can name nothing in any catalog, so requests can refuse
// it before anything is looked up or stored.
func ValidID(s string) bool { return validID(s) }
