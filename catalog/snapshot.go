package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/text/language"
)

// Snapshot is one published catalog version, indexed for lookups. It is
// immutable: it shares nothing with the *Catalog it was built from, and
// callers must not modify it or anything it returns, which is what lets every
// request read it concurrently without locks.
type Snapshot struct {
	Version     int64
	PublishedAt time.Time
	Catalog     *Catalog

	json    []byte
	etag    string
	items   map[string]*Item
	bundles map[string]*Bundle
	// bundleShares: bundle id → currency → its creators' shares.
	bundleShares map[string]map[string][]CreatorShare
	currencies   map[string]*Currency
	currencyIDs  []string
	products     map[productKey]*StoreProduct

	// Locales: the catalog's (see indexLocales), their matcher, and the
	// localized documents computed so far (locale → []byte).
	locales   []string
	matcher   language.Matcher
	localized sync.Map
}

type productKey struct{ store, productID string }

// NewSnapshot validates c and builds a snapshot of it as version v, published
// at publishedAt. Store returns snapshots of what is in Postgres; NewSnapshot
// is for tests and tools that need one without a database. It returns the
// *ValidationError from Validate, or an error if c cannot be encoded.
func NewSnapshot(v int64, publishedAt time.Time, c *Catalog) (*Snapshot, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	own, doc, err := canonicalize(c)
	if err != nil {
		return nil, fmt.Errorf("catalog: new snapshot: %w", err)
	}
	return build(v, publishedAt, own, doc), nil
}

// canonicalize returns a private, normalized copy of c and its canonical
// JSON. Going through JSON is the simplest deep copy that is sure to match
// what a replica loading the stored document will hold.
func canonicalize(c *Catalog) (*Catalog, []byte, error) {
	raw, err := encode(c)
	if err != nil {
		return nil, nil, err
	}
	own, err := parseJSON(raw, raw, FormatJSON)
	if err != nil {
		return nil, nil, err
	}
	doc, err := encode(own)
	if err != nil {
		return nil, nil, err
	}
	return own, doc, nil
}

// snapshotFromDocument builds a snapshot from a stored document. It does not
// validate: rules are enforced when a version is published, and a rule made
// stricter in a later release must not stop a replica from serving a version
// that was valid when it was published.
func snapshotFromDocument(v int64, publishedAt time.Time, doc []byte) (*Snapshot, error) {
	c, err := parseJSON(doc, doc, FormatJSON)
	if err != nil {
		return nil, fmt.Errorf("stored document: %w", err)
	}
	// Re-encode rather than serve doc as stored: Postgres keeps jsonb in its
	// own key order, and every replica must serve identical bytes.
	canonical, err := encode(c)
	if err != nil {
		return nil, fmt.Errorf("stored document: %w", err)
	}
	return build(v, publishedAt, c, canonical), nil
}

// build indexes c, which the snapshot then owns, with doc its canonical JSON.
func build(v int64, publishedAt time.Time, c *Catalog, doc []byte) *Snapshot {
	s := &Snapshot{
		Version:     v,
		PublishedAt: publishedAt.UTC(),
		Catalog:     c,
		json:        doc,
		etag:        fmt.Sprintf(`"catalog-%d"`, v),
		items:       make(map[string]*Item, len(c.Items)),
		bundles:     make(map[string]*Bundle, len(c.Bundles)),
		currencies:  make(map[string]*Currency, len(c.Currencies)),
		products:    make(map[productKey]*StoreProduct, len(c.StoreProducts)),
	}
	// The first declaration wins, as in Validate; a published catalog has no
	// duplicates anyway.
	for i := range c.Currencies {
		cur := &c.Currencies[i]
		if _, dup := s.currencies[cur.ID]; !dup {
			s.currencies[cur.ID] = cur
			s.currencyIDs = append(s.currencyIDs, cur.ID)
		}
	}
	slices.Sort(s.currencyIDs)
	for i := range c.Items {
		if _, dup := s.items[c.Items[i].ID]; !dup {
			s.items[c.Items[i].ID] = &c.Items[i]
		}
	}
	for i := range c.Bundles {
		if _, dup := s.bundles[c.Bundles[i].ID]; !dup {
			s.bundles[c.Bundles[i].ID] = &c.Bundles[i]
		}
	}
	s.bundleShares = map[string]map[string][]CreatorShare{}
	for id, b := range s.bundles {
		if shares, _ := creatorShares(b, s.items); shares != nil {
			s.bundleShares[id] = shares
		}
	}
	for i := range c.StoreProducts {
		sp := &c.StoreProducts[i]
		k := productKey{sp.Store, sp.ProductID}
		if _, dup := s.products[k]; !dup {
			s.products[k] = sp
		}
	}
	s.indexLocales()
	return s
}

// encode is the one canonical JSON form of a catalog: what is stored and what
// clients are served. HTML escaping is off because the document is served as
// application/json, never embedded in HTML, and "Swords & Shields" should read
// as written.
func encode(c *Catalog) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// JSON returns the canonical JSON document of this version, computed once.
// It is the body of GET /v1/catalog and parses back with Parse, so a pulled
// catalog can be edited and published again. The caller must not modify it.
func (s *Snapshot) JSON() []byte { return s.json }

// ETag returns a strong entity tag for JSON(), like "catalog-7" with the
// quotes. A version's document never changes, so the version is enough.
func (s *Snapshot) ETag() string { return s.etag }

// Item returns the item with this id.
func (s *Snapshot) Item(id string) (*Item, bool) {
	it, ok := s.items[id]
	return it, ok
}

// Bundle returns the bundle with this id.
func (s *Snapshot) Bundle(id string) (*Bundle, bool) {
	b, ok := s.bundles[id]
	return b, ok
}

// Currency returns the currency with this id.
func (s *Snapshot) Currency(id string) (*Currency, bool) {
	c, ok := s.currencies[id]
	return c, ok
}

// CurrencyIDs returns every currency id, sorted. The slice is the caller's.
func (s *Snapshot) CurrencyIDs() []string { return slices.Clone(s.currencyIDs) }

// StoreProduct returns the store product with this store and product id.
func (s *Snapshot) StoreProduct(store, productID string) (*StoreProduct, bool) {
	sp, ok := s.products[productKey{store, productID}]
	return sp, ok
}
