package catalog

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Rules Validate enforces that a caller may want to show a designer.
const (
	// MaxIDLength is the longest id. An id is 1 to MaxIDLength characters
	// from a-z, 0-9, '_', '.' and '-', starting with a letter or digit: safe
	// in URLs, log lines, Redis keys and ledger asset ids without escaping.
	MaxIDLength = 64
	// MaxNameLength is the longest display name, in characters.
	MaxNameLength = 200
	// MaxProductIDLength is the longest store product id. Product ids are
	// characters from A-Z, a-z, 0-9, '_', '.' and '-', which covers what
	// Apple and Google accept.
	MaxProductIDLength = 255
)

// Availability times must fall in these years, so that they marshal as RFC
// 3339 (which has four-digit years) and are plainly not typos.
const (
	minYear = 1970
	maxYear = 9999
)

// Problem is one thing wrong with a catalog. Path locates it in the document
// in the notation designers see in their editor, like
// "items[1].prices[0].currency" or "bundles[0].contents.items.sword".
type Problem struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// ValidationError lists every problem Validate found, in document order
// (sections in the order currencies, items, bundles, store_products; map
// entries such as bundle contents in key order).
type ValidationError struct {
	Problems []Problem
}

// maxProblemsInError keeps Error() readable for a log line; the full list is
// in Problems.
const maxProblemsInError = 3

func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("catalog: invalid: ")
	if len(e.Problems) > 1 {
		fmt.Fprintf(&b, "%d problems: ", len(e.Problems))
	}
	for i, p := range e.Problems {
		if i == maxProblemsInError {
			fmt.Fprintf(&b, "; and %d more", len(e.Problems)-i)
			break
		}
		if i > 0 {
			b.WriteString("; ")
		}
		if p.Path != "" {
			b.WriteString(p.Path)
			b.WriteString(": ")
		}
		b.WriteString(p.Message)
	}
	return b.String()
}

// Validate checks the rules a catalog must meet before it is published and
// returns nil or a *ValidationError listing every problem at once, so a
// designer can fix them all in one round.
//
// The rules: at least one currency; every currency, item and bundle has a
// well-formed id (see MaxIDLength), unique among currencies, and unique across
// items and bundles together; names are present, at most MaxNameLength
// characters and free of control characters; item kind is durable or
// consumable; items and bundles have at least one price, at most one per
// currency, in known currencies, with amounts in 1..MaxAmount; max_per_player
// is 1..MaxAmount when set and only on consumables; available_from is before
// available_until; bundle contents and store product grants are non-empty,
// name known items and currencies (not bundles), with quantities in
// 1..MaxAmount, exactly 1 for a durable item, and at most the item's
// max_per_player; an item's creator_id is a well-formed id and its
// creator_share_ppm is 0 to 1,000,000 and needs a creator_id (that the
// creator exists is checked at publish); store products name store apple or google and a well-formed
// product_id that is unique within its store; an entry's Details (description,
// category, tags, image_url, localized strings, metadata) keep to the limits
// in details.go, and locales are canonical BCP 47 tags.
func Validate(c *Catalog) error {
	if c == nil {
		return &ValidationError{Problems: []Problem{{Message: "catalog is missing"}}}
	}
	v := newValidator(c)
	if c.DefaultLocale != "" {
		if msg := localeProblem(c.DefaultLocale); msg != "" {
			v.add("default_locale", msg)
		}
	}
	if len(c.Currencies) == 0 {
		v.add("currencies", "at least one currency is required")
	}
	for i := range c.Currencies {
		v.currency(i, &c.Currencies[i])
	}
	for i := range c.Items {
		v.item(i, &c.Items[i])
	}
	for i := range c.Bundles {
		v.bundle(i, &c.Bundles[i])
	}
	for i := range c.StoreProducts {
		v.storeProduct(i, &c.StoreProducts[i])
	}
	if len(v.problems) > 0 {
		return &ValidationError{Problems: v.problems}
	}
	return nil
}

type validator struct {
	problems []Problem
	// First declaration of each id, as a path like "items[0]". References
	// may point forward in the document, so these are filled before any
	// check runs; a later declaration of the same id is a duplicate.
	currencies map[string]string
	entries    map[string]string // items and bundles: one id space
	items      map[string]*Item
	bundles    map[string]*Bundle
	products   map[[2]string]string // (store, product id) → first path
	// defaultLocale is the catalog's; no entry may localize into it.
	defaultLocale string
}

func newValidator(c *Catalog) *validator {
	v := &validator{
		currencies: make(map[string]string),
		entries:    make(map[string]string),
		items:      make(map[string]*Item),
		bundles:    make(map[string]*Bundle),
		products:   make(map[[2]string]string),

		defaultLocale: c.DefaultLocale,
	}
	for i, cur := range c.Currencies {
		if _, dup := v.currencies[cur.ID]; !dup && cur.ID != "" {
			v.currencies[cur.ID] = fmt.Sprintf("currencies[%d]", i)
		}
	}
	for i := range c.Items {
		it := &c.Items[i]
		if _, dup := v.entries[it.ID]; !dup && it.ID != "" {
			v.entries[it.ID] = fmt.Sprintf("items[%d]", i)
			v.items[it.ID] = it
		}
	}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		if _, dup := v.entries[b.ID]; !dup && b.ID != "" {
			v.entries[b.ID] = fmt.Sprintf("bundles[%d]", i)
			v.bundles[b.ID] = b
		}
	}
	return v
}

func (v *validator) add(path, msg string) {
	v.problems = append(v.problems, Problem{Path: path, Message: msg})
}

func (v *validator) currency(i int, c *Currency) {
	p := fmt.Sprintf("currencies[%d]", i)
	v.id(p, c.ID, v.currencies)
	v.name(p, c.Name)
	v.details(p, &c.Details)
}

func (v *validator) item(i int, it *Item) {
	p := fmt.Sprintf("items[%d]", i)
	v.id(p, it.ID, v.entries)
	v.name(p, it.Name)
	v.details(p, &it.Details)
	switch it.Kind {
	case KindDurable, KindConsumable:
	case "":
		v.add(p+".kind", "kind is required")
	default:
		v.add(p+".kind", fmt.Sprintf("unknown kind %q: must be %q or %q", string(it.Kind), KindDurable, KindConsumable))
	}
	v.prices(p, it.Prices)
	switch {
	case it.MaxPerPlayer == 0: // not set
	case it.Kind == KindDurable:
		v.add(p+".max_per_player", "max_per_player is only allowed on consumable items")
	case it.MaxPerPlayer < 0:
		v.add(p+".max_per_player", "max_per_player must be at least 1")
	case it.MaxPerPlayer > MaxAmount:
		v.add(p+".max_per_player", fmt.Sprintf("max_per_player must be at most %d", int64(MaxAmount)))
	}
	if it.PlayerConsumable && it.Kind == KindDurable {
		v.add(p+".player_consumable", "player_consumable is only allowed on consumable items")
	}
	v.window(p, it.AvailableFrom, it.AvailableUntil)
	switch {
	case it.CreatorID != "" && !validID(it.CreatorID):
		v.add(p+".creator_id", "creator_id must be a creator id (1 to 64 of a-z, 0-9, '_', '.', '-')")
	case it.CreatorSharePPM < 0 || it.CreatorSharePPM > MaxCreatorSharePPM:
		v.add(p+".creator_share_ppm", fmt.Sprintf("creator_share_ppm must be 0 to %d (100%%)", MaxCreatorSharePPM))
	case it.CreatorSharePPM > 0 && it.CreatorID == "":
		v.add(p+".creator_share_ppm", "creator_share_ppm needs a creator_id")
	}
}

func (v *validator) bundle(i int, b *Bundle) {
	p := fmt.Sprintf("bundles[%d]", i)
	v.id(p, b.ID, v.entries)
	v.name(p, b.Name)
	v.details(p, &b.Details)
	v.prices(p, b.Prices)
	v.grants(p+".contents", b.Contents, b.ID, "contents must not be empty")
	v.bundleCreatorShares(p, b)
	v.window(p, b.AvailableFrom, b.AvailableUntil)
}

func (v *validator) storeProduct(i int, sp *StoreProduct) {
	p := fmt.Sprintf("store_products[%d]", i)
	switch sp.Store {
	case StoreApple, StoreGoogle:
	case "":
		v.add(p+".store", "store is required")
	default:
		v.add(p+".store", fmt.Sprintf("unknown store %q: must be %q or %q", sp.Store, StoreApple, StoreGoogle))
	}
	switch {
	case sp.ProductID == "":
		v.add(p+".product_id", "product_id is required")
	case !validProductID(sp.ProductID):
		v.add(p+".product_id", fmt.Sprintf("invalid product_id %q: use 1-%d characters from A-Z, a-z, 0-9, '_', '.' and '-'", sp.ProductID, MaxProductIDLength))
	default:
		key := [2]string{sp.Store, sp.ProductID}
		if first, dup := v.products[key]; dup {
			v.add(p+".product_id", fmt.Sprintf("duplicate product_id %q for store %q (first at %s)", sp.ProductID, sp.Store, first))
		} else {
			v.products[key] = p
		}
	}
	v.grants(p+".grants", sp.Grants, "", "grants must not be empty")
}

// id checks a declaration's id; first maps each id to the path of its first
// declaration, so any other declaration is a duplicate.
func (v *validator) id(p, id string, first map[string]string) {
	switch {
	case id == "":
		v.add(p+".id", "id is required")
	case !validID(id):
		v.add(p+".id", fmt.Sprintf("invalid id %q: use 1-%d characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit", id, MaxIDLength))
	case first[id] != p:
		v.add(p+".id", fmt.Sprintf("duplicate id %q (first used by %s)", id, first[id]))
	}
}

func (v *validator) name(p, name string) {
	p += ".name"
	switch {
	case strings.TrimSpace(name) == "":
		v.add(p, "name is required")
	case utf8.RuneCountInString(name) > MaxNameLength:
		v.add(p, fmt.Sprintf("name is longer than %d characters", MaxNameLength))
	case strings.ContainsFunc(name, unicode.IsControl) || !utf8.ValidString(name):
		// Control characters break log lines and UIs, and Postgres
		// refuses NUL in jsonb.
		v.add(p, "name contains control characters")
	}
}

func (v *validator) prices(p string, prices []Price) {
	if len(prices) == 0 {
		v.add(p+".prices", "at least one price is required")
		return
	}
	seen := make(map[string]int, len(prices))
	for j, pr := range prices {
		pp := fmt.Sprintf("%s.prices[%d]", p, j)
		switch _, known := v.currencies[pr.Currency]; {
		case pr.Currency == "":
			v.add(pp+".currency", "currency is required")
		case !known:
			v.add(pp+".currency", fmt.Sprintf("unknown currency %q", pr.Currency))
		default:
			if k, dup := seen[pr.Currency]; dup {
				v.add(pp+".currency", fmt.Sprintf("duplicate price in currency %q (first at %s.prices[%d])", pr.Currency, p, k))
			} else {
				seen[pr.Currency] = j
			}
		}
		v.amount(pp+".amount", "amount", pr.Amount)
	}
}

func (v *validator) amount(p, what string, n int64) {
	switch {
	case n <= 0:
		v.add(p, what+" must be greater than 0")
	case n > MaxAmount:
		v.add(p, fmt.Sprintf("%s must be at most %d", what, int64(MaxAmount)))
	}
}

// grants checks bundle contents (self is the bundle's id) or store product
// grants (self is empty).
func (v *validator) grants(p string, g Grants, self, emptyMsg string) {
	if g.Empty() {
		v.add(p, emptyMsg)
		return
	}
	for _, id := range slices.Sorted(maps.Keys(g.Items)) {
		q, ip := g.Items[id], joinKey(p+".items", id)
		it, isItem := v.items[id]
		_, isBundle := v.bundles[id]
		switch {
		case self != "" && id == self:
			v.add(ip, "bundle contains itself")
			continue
		case isBundle && self != "":
			v.add(ip, "bundles cannot contain bundles")
			continue
		case isBundle:
			v.add(ip, "store products cannot grant bundles")
			continue
		case !isItem:
			v.add(ip, fmt.Sprintf("unknown item %q", id))
			continue
		}
		if q <= 0 || q > MaxAmount {
			v.amount(ip, "quantity", q)
			continue
		}
		switch {
		case it.Kind == KindDurable && q != 1:
			v.add(ip, "durable item quantity must be exactly 1")
		case it.Kind == KindConsumable && it.MaxPerPlayer > 0 && q > it.MaxPerPlayer:
			// It could never be granted in full, so purchases would fail.
			v.add(ip, fmt.Sprintf("quantity %d exceeds max_per_player %d", q, it.MaxPerPlayer))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(g.Currencies)) {
		cp := joinKey(p+".currencies", id)
		if _, known := v.currencies[id]; !known {
			v.add(cp, fmt.Sprintf("unknown currency %q", id))
			continue
		}
		v.amount(cp, "quantity", g.Currencies[id])
	}
}

func (v *validator) window(p string, from, until *time.Time) {
	okFrom := v.timeInRange(p+".available_from", from)
	okUntil := v.timeInRange(p+".available_until", until)
	if okFrom && okUntil && from != nil && until != nil && !from.Before(*until) {
		v.add(p+".available_until", "available_until must be after available_from")
	}
}

func (v *validator) timeInRange(p string, t *time.Time) bool {
	if t == nil {
		return true
	}
	if y := t.UTC().Year(); y < minYear || y > maxYear {
		v.add(p, fmt.Sprintf("time must be between the years %d and %d", minYear, maxYear))
		return false
	}
	return true
}

// validID reports whether s is a well-formed currency, item or bundle id.
func validID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case (c == '_' || c == '.' || c == '-') && i > 0:
		default:
			return false
		}
	}
	return true
}

func validProductID(s string) bool {
	if len(s) == 0 || len(s) > MaxProductIDLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}
