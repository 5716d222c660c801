package catalog

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	yaml "go.yaml.in/yaml/v2"
)

// Section names one list of a catalog. It is also the URL segment of the
// draft's entity routes (/admin/v1/catalog/draft/{section}/{id}), so the
// names are the document's own field names.
type Section string

// The four sections of a catalog.
const (
	SectionCurrencies    Section = "currencies"
	SectionItems         Section = "items"
	SectionBundles       Section = "bundles"
	SectionStoreProducts Section = "store_products"
)

// Sections lists every section in document order.
var Sections = []Section{SectionCurrencies, SectionItems, SectionBundles, SectionStoreProducts}

// ParseSection returns the section named s.
func ParseSection(s string) (Section, bool) {
	for _, sec := range Sections {
		if string(sec) == s {
			return sec, true
		}
	}
	return "", false
}

// singular is how a message names one entity of the section.
func (s Section) singular() string {
	switch s {
	case SectionCurrencies:
		return "currency"
	case SectionItems:
		return "item"
	case SectionBundles:
		return "bundle"
	}
	return "store product"
}

// StoreProductID is the id of a store product in entity routes, diffs and
// the audit log: the store, a colon and the product id, like
// "apple:com.example.gems100". Neither part can contain a colon (see
// Validate), so the id is unambiguous.
func StoreProductID(store, productID string) string { return store + ":" + productID }

// splitStoreProductID undoes StoreProductID.
func splitStoreProductID(id string) (store, productID string, ok bool) {
	return strings.Cut(id, ":")
}

// entityID returns the id of entity i of section sec in c.
func (c *Catalog) entityID(sec Section, i int) string {
	switch sec {
	case SectionCurrencies:
		return c.Currencies[i].ID
	case SectionItems:
		return c.Items[i].ID
	case SectionBundles:
		return c.Bundles[i].ID
	}
	sp := c.StoreProducts[i]
	return StoreProductID(sp.Store, sp.ProductID)
}

func (c *Catalog) sectionLen(sec Section) int {
	switch sec {
	case SectionCurrencies:
		return len(c.Currencies)
	case SectionItems:
		return len(c.Items)
	case SectionBundles:
		return len(c.Bundles)
	}
	return len(c.StoreProducts)
}

// entityAt returns a pointer to entity i of section sec.
func (c *Catalog) entityAt(sec Section, i int) any {
	switch sec {
	case SectionCurrencies:
		return &c.Currencies[i]
	case SectionItems:
		return &c.Items[i]
	case SectionBundles:
		return &c.Bundles[i]
	}
	return &c.StoreProducts[i]
}

// find returns the index of the first entity of section sec with this id,
// or -1. A draft may hold duplicates (it is not validated); entity routes act
// on the first, as Validate reports the others.
func (c *Catalog) find(sec Section, id string) int {
	for i := range c.sectionLen(sec) {
		if c.entityID(sec, i) == id {
			return i
		}
	}
	return -1
}

// put replaces the entity with this id in place, or appends it; v is a
// *Currency, *Item, *Bundle or *StoreProduct matching sec.
func (c *Catalog) put(sec Section, id string, v any) (created bool) {
	i := c.find(sec, id)
	switch sec {
	case SectionCurrencies:
		c.Currencies = putAt(c.Currencies, i, *v.(*Currency))
	case SectionItems:
		c.Items = putAt(c.Items, i, *v.(*Item))
	case SectionBundles:
		c.Bundles = putAt(c.Bundles, i, *v.(*Bundle))
	default:
		c.StoreProducts = putAt(c.StoreProducts, i, *v.(*StoreProduct))
	}
	return i < 0
}

func putAt[T any](list []T, i int, v T) []T {
	if i < 0 {
		return append(list, v)
	}
	list[i] = v
	return list
}

// remove deletes the entity at index i of section sec.
func (c *Catalog) remove(sec Section, i int) {
	switch sec {
	case SectionCurrencies:
		c.Currencies = append(c.Currencies[:i], c.Currencies[i+1:]...)
	case SectionItems:
		c.Items = append(c.Items[:i], c.Items[i+1:]...)
	case SectionBundles:
		c.Bundles = append(c.Bundles[:i], c.Bundles[i+1:]...)
	default:
		c.StoreProducts = append(c.StoreProducts[:i], c.StoreProducts[i+1:]...)
	}
}

// ParseEntity reads one currency, item, bundle or store product (as sec
// says) as strictly as Parse reads a document, for the entity at id. The id
// in the body may be left out; when present it must equal id (for a store
// product, store and product_id must match "store:product_id"). It returns a
// *Currency, *Item, *Bundle or *StoreProduct, a *ParseError when the body
// cannot be read, or a *ValidationError when its id disagrees with id. It
// does not validate the entity otherwise: drafts may be incomplete.
func ParseEntity(sec Section, id string, data []byte, format Format) (any, error) {
	if len(data) > MaxDocumentSize {
		return nil, tooLarge(format)
	}
	var src []byte
	switch format {
	case FormatJSON:
		data = bytes.TrimPrefix(data, []byte("\ufeff"))
		src = data
	case FormatYAML:
		js, err := yamlToJSON(data)
		if err != nil {
			return nil, err
		}
		data = js
	default:
		return nil, &ParseError{Format: format, Message: fmt.Sprintf("unknown format %q", string(format))}
	}
	notObject := "the body must be an object: one " + sec.singular()
	var (
		v   any
		err error
	)
	switch sec {
	case SectionCurrencies:
		var cur Currency
		err = decodeShaped(data, src, format, &cur, notObject)
		err = matchID(err, "id", &cur.ID, id)
		v = &cur
	case SectionItems:
		var it Item
		err = decodeShaped(data, src, format, &it, notObject)
		err = matchID(err, "id", &it.ID, id)
		it.AvailableFrom, it.AvailableUntil = utc(it.AvailableFrom), utc(it.AvailableUntil)
		v = &it
	case SectionBundles:
		var b Bundle
		err = decodeShaped(data, src, format, &b, notObject)
		err = matchID(err, "id", &b.ID, id)
		b.AvailableFrom, b.AvailableUntil = utc(b.AvailableFrom), utc(b.AvailableUntil)
		normalizeGrants(&b.Contents)
		v = &b
	case SectionStoreProducts:
		var sp StoreProduct
		err = decodeShaped(data, src, format, &sp, notObject)
		store, product, ok := splitStoreProductID(id)
		if err == nil && !ok {
			return nil, &ValidationError{Problems: []Problem{{Path: "", Message: fmt.Sprintf(
				"store product id %q must be store:product_id, like apple:com.example.gems100", id)}}}
		}
		err = matchID(err, "store", &sp.Store, store)
		err = matchID(err, "product_id", &sp.ProductID, product)
		normalizeGrants(&sp.Grants)
		v = &sp
	default:
		return nil, fmt.Errorf("catalog: unknown section %q", string(sec))
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// matchID fills an empty id field from the URL, or checks that it agrees.
func matchID(err error, field string, got *string, want string) error {
	if err != nil {
		return err
	}
	switch *got {
	case "":
		*got = want
	case want:
	default:
		return &ValidationError{Problems: []Problem{{Path: field, Message: fmt.Sprintf(
			"%s %q does not match %q in the URL", field, *got, want)}}}
	}
	return nil
}

// EntityETag is the strong entity tag of one entity's canonical JSON: it
// changes exactly when the entity does, so edits of different entities do
// not conflict while two edits of the same one do.
func EntityETag(v any) (string, error) {
	b, err := encodeValue(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return `"e-` + hex.EncodeToString(sum[:12]) + `"`, nil
}

// encodeValue is encode for any catalog value: canonical JSON without HTML
// escaping.
func encodeValue(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Encode writes c in format f: the canonical JSON that is stored and served,
// or YAML with the fields in the same order (id first, as designers write
// them), which Parse reads back to an equal catalog.
func Encode(c *Catalog, f Format) ([]byte, error) {
	js, err := encode(c)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	switch f {
	case FormatJSON:
		return js, nil
	case FormatYAML:
		out, err := jsonToYAML(js)
		if err != nil {
			return nil, fmt.Errorf("catalog: encode YAML: %w", err)
		}
		return out, nil
	}
	return nil, fmt.Errorf("catalog: unknown format %q", string(f))
}

// jsonToYAML converts JSON to YAML keeping the order of object keys, which
// a detour through map[string]any would sort alphabetically.
func jsonToYAML(js []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.UseNumber()
	v, err := yamlValue(dec)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(v)
}

func yamlValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		if t == '{' {
			ms := yaml.MapSlice{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				v, err := yamlValue(dec)
				if err != nil {
					return nil, err
				}
				ms = append(ms, yaml.MapItem{Key: k, Value: v})
			}
			_, err := dec.Token()
			return ms, err
		}
		list := []any{}
		for dec.More() {
			v, err := yamlValue(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token()
		return list, err
	case json.Number:
		if n, err := t.Int64(); err == nil {
			return n, nil
		}
		return t.Float64()
	}
	return tok, nil
}
