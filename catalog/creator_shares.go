package catalog

import (
	"fmt"
	"maps"
	"math/big"
	"slices"
)

// CreatorShare is what one sale credits one creator: SharePPM parts per
// million of the price paid (300000 is 30%).
type CreatorShare struct {
	CreatorID string `json:"creator_id"`
	SharePPM  int64  `json:"share_ppm"`
}

// A bundle holding creator-made items credits each creator a share of the
// bundle's price: the item's share of the part of the price its contents
// are worth. What a content is worth, in the currency the bundle is paid
// in, is its standalone list price in that currency times the quantity
// (a currency content of the paid currency is worth its amount). A sword
// listed at 300 gold bundled with a shield listed at 200 gold carries
// 300/500 of the bundle's price, whatever the bundle sells for, so the
// sword's creator, at 30% of the sword, earns 18% of every sale of the
// bundle. The rate is worked out once per
// catalog version, rounded down to a whole part per million, and from
// then on every sale credits it exactly, like an item's own share (see
// package creators): rounding happens once, in the published rate, never
// per sale. A bundle with a creator-made item must therefore give every
// content a value in each currency it is sold for; Validate refuses one
// that does not, rather than guess.

// creatorShares returns, for each currency b is priced in, the share of
// each creator of its creator-made contents (sorted by creator id), and the
// contents that have no value in a currency whose shares they would decide
// (path suffix → currency). items resolves the contents; unknown ones are
// left out, as Validate reports them elsewhere.
func creatorShares(b *Bundle, items map[string]*Item) (map[string][]CreatorShare, map[string]string) {
	made := false
	for id := range b.Contents.Items {
		if it, ok := items[id]; ok && it.CreatorID != "" && it.CreatorSharePPM > 0 {
			made = true
		}
	}
	if !made {
		return nil, nil
	}
	shares := map[string][]CreatorShare{}
	missing := map[string]string{}
	for _, price := range b.Prices {
		cur := price.Currency
		if _, done := shares[cur]; done {
			continue
		}
		total := new(big.Int)
		perCreator := map[string]*big.Int{} // Σ share_ppm × value
		ok := true
		for _, id := range slices.Sorted(maps.Keys(b.Contents.Items)) {
			it, known := items[id]
			if !known {
				continue
			}
			unit := listPrice(it.Prices, cur)
			if unit == 0 {
				missing[joinKey("items", id)] = cur
				ok = false
				continue
			}
			value := new(big.Int).Mul(big.NewInt(unit), big.NewInt(b.Contents.Items[id]))
			total.Add(total, value)
			if it.CreatorID != "" && it.CreatorSharePPM > 0 {
				w := perCreator[it.CreatorID]
				if w == nil {
					w = new(big.Int)
					perCreator[it.CreatorID] = w
				}
				w.Add(w, value.Mul(value, big.NewInt(it.CreatorSharePPM)))
			}
		}
		for _, id := range slices.Sorted(maps.Keys(b.Contents.Currencies)) {
			if id != cur {
				missing[joinKey("currencies", id)] = cur
				ok = false
				continue
			}
			total.Add(total, big.NewInt(b.Contents.Currencies[id]))
		}
		if !ok || total.Sign() == 0 {
			continue
		}
		var list []CreatorShare
		for _, creator := range slices.Sorted(maps.Keys(perCreator)) {
			ppm := new(big.Int).Quo(perCreator[creator], total).Int64() // rounds down
			if ppm > 0 {
				list = append(list, CreatorShare{CreatorID: creator, SharePPM: ppm})
			}
		}
		shares[cur] = list
	}
	return shares, missing
}

func listPrice(prices []Price, currency string) int64 {
	for _, p := range prices {
		if p.Currency == currency {
			return p.Amount
		}
	}
	return 0
}

// bundleCreatorShares reports the contents of a bundle with creator-made
// items that have no value in one of the bundle's currencies.
func (v *validator) bundleCreatorShares(p string, b *Bundle) {
	_, missing := creatorShares(b, v.items)
	for _, suffix := range slices.Sorted(maps.Keys(missing)) {
		v.add(p+".contents."+suffix, fmt.Sprintf(
			"the bundle holds creator-made items and is sold for %s, so every content needs a value in %s: give this item a price in %s (a currency content must be %s itself); its creators' shares of the bundle price follow from those values",
			missing[suffix], missing[suffix], missing[suffix], missing[suffix]))
	}
}

// CreatorShares returns what a sale of id (an item or a bundle) paid in
// currency credits the creators of what it sells: an item's own creator
// share, or a bundle's shares worked out from its contents (see above).
// Nil when it credits no creator.
func (s *Snapshot) CreatorShares(id, currency string) []CreatorShare {
	if it, ok := s.items[id]; ok {
		if it.CreatorID == "" || it.CreatorSharePPM <= 0 {
			return nil
		}
		return []CreatorShare{{CreatorID: it.CreatorID, SharePPM: it.CreatorSharePPM}}
	}
	return s.bundleShares[id][currency]
}
