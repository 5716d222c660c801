package catalog

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Change kinds in a Diff.
const (
	Added   = "added"
	Removed = "removed"
	Changed = "changed"
)

// Diff is what publishing a catalog would change: entities added, removed
// and changed field by field, with price changes called out because they are
// what a wrong publish costs most.
type Diff struct {
	// FromVersion is the live version compared against; 0 when none.
	FromVersion int64 `json:"from_version"`
	// DraftETag identifies the draft compared; send it as If-Match when
	// publishing to publish exactly what was reviewed.
	DraftETag    string         `json:"draft_etag,omitempty"`
	Changed      bool           `json:"changed"`
	Summary      DiffSummary    `json:"summary"`
	Changes      []EntityChange `json:"changes"`
	PriceChanges []PriceChange  `json:"price_changes"`
	// CreatorShareChanges lists every creator share that changes, also
	// those no field of the entity shows: a bundle's rates follow from its
	// contents' list prices (see creatorShares), so repricing an item can
	// change what its creator earns on every bundle holding it.
	CreatorShareChanges []CreatorShareChange `json:"creator_share_changes"`
}

// CreatorShareChange is a creator share of the sales of an item (Currency
// empty: any currency) or of a bundle paid in Currency that changed,
// appeared (Before nil) or disappeared (After nil), in parts per million.
type CreatorShareChange struct {
	Section   Section `json:"section"`
	ID        string  `json:"id"`
	Currency  string  `json:"currency,omitempty"`
	CreatorID string  `json:"creator_id"`
	Before    *int64  `json:"before"`
	After     *int64  `json:"after"`
}

// DiffSummary counts entities by kind of change.
type DiffSummary struct {
	Added   int `json:"added"`
	Removed int `json:"removed"`
	Changed int `json:"changed"`
}

// EntityChange is one entity added, removed or changed.
type EntityChange struct {
	Section Section `json:"section"`
	ID      string  `json:"id"`
	Change  string  `json:"change"`
	// Fields lists what changed, sorted by path: for an added entity every
	// field (Before nil), for a removed one every field (After nil).
	Fields []FieldChange `json:"fields,omitempty"`
}

// FieldChange is one leaf field that differs. Path names it like the
// document does, except that prices are keyed by currency ("prices.gold")
// rather than by position, so reordering prices is not a change. Before or
// After is nil when the field is absent on that side.
type FieldChange struct {
	Path   string `json:"path"`
	Before any    `json:"before"`
	After  any    `json:"after"`
}

// PriceChange is a price of an item or bundle that changed, appeared (Before
// nil: a new price, or any price of a new entity) or disappeared (After nil).
type PriceChange struct {
	Section  Section `json:"section"`
	ID       string  `json:"id"`
	Currency string  `json:"currency"`
	Before   *int64  `json:"before"`
	After    *int64  `json:"after"`
}

// Compare returns the changes that turn from into to. Entities are matched
// by section and id (the first of duplicate ids wins) and listed by section
// in document order, then by id.
func Compare(from, to *Catalog) *Diff {
	d := &Diff{Changes: []EntityChange{}, PriceChanges: []PriceChange{}, CreatorShareChanges: creatorShareChanges(from, to)}
	for _, sec := range Sections {
		old, cur := entitiesOf(from, sec), entitiesOf(to, sec)
		for _, id := range slices.Sorted(maps.Keys(unionKeys(old, cur))) {
			a, inOld := old[id]
			b, inNew := cur[id]
			switch {
			case !inOld:
				// Every field of a new entity is shown, so a wrong price on
				// a new item is as visible as a changed one.
				d.Changes = append(d.Changes, EntityChange{Section: sec, ID: id, Change: Added, Fields: compareFields(nil, b)})
				d.Summary.Added++
				d.PriceChanges = append(d.PriceChanges, priceChanges(sec, id, nil, b)...)
			case !inNew:
				d.Changes = append(d.Changes, EntityChange{Section: sec, ID: id, Change: Removed, Fields: compareFields(a, nil)})
				d.Summary.Removed++
				d.PriceChanges = append(d.PriceChanges, priceChanges(sec, id, a, nil)...)
			default:
				fields := compareFields(a, b)
				if len(fields) == 0 {
					continue
				}
				d.Changes = append(d.Changes, EntityChange{Section: sec, ID: id, Change: Changed, Fields: fields})
				d.Summary.Changed++
				d.PriceChanges = append(d.PriceChanges, priceChanges(sec, id, a, b)...)
			}
		}
	}
	d.Changed = len(d.Changes) > 0
	return d
}

type shareKey struct {
	section           Section
	id, currency, who string
}

// sharesOf lists every creator share of c's sales: items' own, and
// bundles' per currency. The first of duplicate ids wins, as in Compare.
func sharesOf(c *Catalog) map[shareKey]int64 {
	out := map[shareKey]int64{}
	if c == nil {
		return out
	}
	items := map[string]*Item{}
	for i := range c.Items {
		it := &c.Items[i]
		if _, dup := items[it.ID]; dup {
			continue
		}
		items[it.ID] = it
		if it.CreatorID != "" && it.CreatorSharePPM > 0 {
			out[shareKey{SectionItems, it.ID, "", it.CreatorID}] = it.CreatorSharePPM
		}
	}
	seen := map[string]bool{}
	for i := range c.Bundles {
		b := &c.Bundles[i]
		if seen[b.ID] {
			continue
		}
		seen[b.ID] = true
		shares, _ := creatorShares(b, items)
		for cur, list := range shares {
			for _, s := range list {
				out[shareKey{SectionBundles, b.ID, cur, s.CreatorID}] = s.SharePPM
			}
		}
	}
	return out
}

func creatorShareChanges(from, to *Catalog) []CreatorShareChange {
	old, cur := sharesOf(from), sharesOf(to)
	keys := map[shareKey]bool{}
	for k := range old {
		keys[k] = true
	}
	for k := range cur {
		keys[k] = true
	}
	out := []CreatorShareChange{}
	for k := range keys {
		a, inOld := old[k]
		b, inNew := cur[k]
		if inOld && inNew && a == b {
			continue
		}
		c := CreatorShareChange{Section: k.section, ID: k.id, Currency: k.currency, CreatorID: k.who}
		if inOld {
			c.Before = &a
		}
		if inNew {
			c.After = &b
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(x, y CreatorShareChange) int {
		return cmp.Or(cmp.Compare(sectionOrder(x.Section), sectionOrder(y.Section)),
			cmp.Compare(x.ID, y.ID), cmp.Compare(x.Currency, y.Currency), cmp.Compare(x.CreatorID, y.CreatorID))
	})
	return out
}

func sectionOrder(s Section) int { return slices.Index(Sections, s) }

func unionKeys(a, b map[string]any) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// entitiesOf indexes a section by id, keeping the first of duplicates.
func entitiesOf(c *Catalog, sec Section) map[string]any {
	out := map[string]any{}
	if c == nil {
		return out
	}
	for i := range c.sectionLen(sec) {
		id := c.entityID(sec, i)
		if _, dup := out[id]; !dup {
			out[id] = c.entityAt(sec, i)
		}
	}
	return out
}

// compareFields flattens both entities to leaf paths and lists the ones
// that differ.
func compareFields(a, b any) []FieldChange {
	fa, fb := flatten(a), flatten(b)
	var out []FieldChange
	for _, p := range slices.Sorted(maps.Keys(unionKeys(fa, fb))) {
		va, okA := fa[p]
		vb, okB := fb[p]
		if okA && okB && reflect.DeepEqual(va, vb) {
			continue
		}
		out = append(out, FieldChange{Path: p, Before: va, After: vb})
	}
	return out
}

// flatten turns an entity into its leaf values by path, with prices keyed
// by currency. Numbers stay json.Number, so they are printed exactly.
func flatten(v any) map[string]any {
	b, err := encodeValue(v)
	if err != nil {
		return map[string]any{}
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return map[string]any{}
	}
	if prices, ok := m["prices"].([]any); ok {
		byCurrency := map[string]any{}
		for i, p := range prices {
			pm, _ := p.(map[string]any)
			cur, _ := pm["currency"].(string)
			key := cur
			if !validID(cur) {
				key = "[" + strconv.Itoa(i) + "]" // an invalid draft; keep it visible
			}
			if _, dup := byCurrency[key]; !dup {
				byCurrency[key] = pm["amount"]
			}
		}
		m["prices"] = byCurrency
	}
	out := map[string]any{}
	flattenInto(out, "", m)
	return out
}

func flattenInto(out map[string]any, path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		if len(v) == 0 && path != "" {
			out[path] = map[string]any{}
			return
		}
		for k, child := range v {
			flattenInto(out, joinField(path, k), child)
		}
	case []any:
		if len(v) == 0 {
			out[path] = []any{}
			return
		}
		for i, child := range v {
			flattenInto(out, fmt.Sprintf("%s[%d]", path, i), child)
		}
	default:
		out[path] = v
	}
}

// priceChanges lists the price differences of an item or bundle.
func priceChanges(sec Section, id string, a, b any) []PriceChange {
	pa, pb := pricesOf(a), pricesOf(b)
	if pa == nil && pb == nil {
		return nil
	}
	var out []PriceChange
	for _, cur := range slices.Sorted(maps.Keys(unionPrices(pa, pb))) {
		before, okA := pa[cur]
		after, okB := pb[cur]
		if okA && okB && before == after {
			continue
		}
		pc := PriceChange{Section: sec, ID: id, Currency: cur}
		if okA {
			pc.Before = &before
		}
		if okB {
			pc.After = &after
		}
		out = append(out, pc)
	}
	return out
}

func unionPrices(a, b map[string]int64) map[string]bool {
	out := map[string]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func pricesOf(v any) map[string]int64 {
	var prices []Price
	switch v := v.(type) {
	case *Item:
		prices = v.Prices
	case *Bundle:
		prices = v.Prices
	default:
		return nil
	}
	out := make(map[string]int64, len(prices))
	for _, p := range prices {
		if _, dup := out[p.Currency]; !dup {
			out[p.Currency] = p.Amount
		}
	}
	return out
}

// String renders the diff for a terminal: one line per entity ("+" added,
// "-" removed, "~" changed) with its changed fields below, then the price
// changes with their relative size.
func (d *Diff) String() string {
	var b strings.Builder
	if !d.Changed {
		fmt.Fprintf(&b, "no changes against version %d\n", d.FromVersion)
		return b.String()
	}
	fmt.Fprintf(&b, "against version %d: %d added, %d removed, %d changed\n",
		d.FromVersion, d.Summary.Added, d.Summary.Removed, d.Summary.Changed)
	marks := map[string]string{Added: "+", Removed: "-", Changed: "~"}
	for _, c := range d.Changes {
		fmt.Fprintf(&b, "%s %s/%s\n", marks[c.Change], c.Section, c.ID)
		for _, f := range c.Fields {
			fmt.Fprintf(&b, "    %s: %s -> %s\n", f.Path, showValue(f.Before), showValue(f.After))
		}
	}
	if len(d.PriceChanges) > 0 {
		b.WriteString("price changes:\n")
		for _, p := range d.PriceChanges {
			fmt.Fprintf(&b, "  %s/%s %s: %s -> %s%s\n", p.Section, p.ID, p.Currency,
				showPrice(p.Before), showPrice(p.After), percent(p.Before, p.After))
		}
	}
	if len(d.CreatorShareChanges) > 0 {
		b.WriteString("creator share changes (ppm of the price):\n")
		for _, c := range d.CreatorShareChanges {
			in := ""
			if c.Currency != "" {
				in = " paid in " + c.Currency
			}
			fmt.Fprintf(&b, "  %s/%s%s, creator %s: %s -> %s\n", c.Section, c.ID, in, c.CreatorID, showPrice(c.Before), showPrice(c.After))
		}
	}
	return b.String()
}

func showValue(v any) string {
	if v == nil {
		return "(none)"
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func showPrice(p *int64) string {
	if p == nil {
		return "(none)"
	}
	return strconv.FormatInt(*p, 10)
}

func percent(before, after *int64) string {
	if before == nil || after == nil || *before == 0 {
		return ""
	}
	return fmt.Sprintf(" (%+.1f%%)", (float64(*after)-float64(*before))*100/float64(*before))
}
