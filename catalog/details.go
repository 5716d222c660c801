package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Limits on what designers write to describe an entry (Details). They keep a
// catalog that every client downloads small, and one entry's text readable
// in a store page.
const (
	// MaxDescriptionLength is the longest description, in characters.
	MaxDescriptionLength = 2000
	// MaxCategoryLength is the longest category, in characters.
	MaxCategoryLength = 64
	// MaxTags is the most tags one entry may have; each is a well-formed id
	// (see MaxIDLength) of at most MaxTagLength characters.
	MaxTags      = 20
	MaxTagLength = 32
	// MaxImageURLLength is the longest image_url.
	MaxImageURLLength = 2048
	// MaxMetadataSize bounds an entry's metadata, as canonical JSON bytes.
	MaxMetadataSize = 4096
	// maxMetadataDepth bounds how deeply metadata nests: game data needs a
	// few levels, and clients decoding every entry should not meet more.
	maxMetadataDepth = 8
	// MaxLocales is the most locales one entry may be translated into.
	MaxLocales = 50
)

// Details describe a currency, item or bundle to players: what the game
// client shows in its store, so it needs no catalog of its own. All of it is
// optional and none of it changes what is sold or granted.
type Details struct {
	// Description is the default-locale description.
	Description string `json:"description,omitempty"`
	// Category groups entries in a store page ("weapons").
	Category string `json:"category,omitempty"`
	// Tags are ids clients filter by ("sale", "new").
	Tags []string `json:"tags,omitempty"`
	// ImageURL is an absolute https (or http) URL of the entry's picture.
	ImageURL string `json:"image_url,omitempty"`
	// Localized holds name and description per BCP 47 locale ("fr",
	// "pt-BR"); a string left empty falls back to the default.
	Localized map[string]Text `json:"localized,omitempty"`
	// Metadata is a JSON object the game defines, passed through to
	// clients unchanged.
	Metadata Metadata `json:"metadata,omitempty"`
}

// Text is an entry's strings in one locale.
type Text struct {
	Name        string `json:"name,omitempty"`
	Description string `json:"description,omitempty"`
}

// Metadata is a free-form JSON object. It decodes numbers as json.Number,
// so integers of any size survive, and encodes with sorted keys, so its
// canonical JSON (and an entity's ETag) does not depend on the order a
// designer or Postgres's jsonb wrote the keys in.
type Metadata map[string]any

// UnmarshalJSON keeps numbers exact.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return err
	}
	*m = v
	return nil
}

// normalize makes empty lists and maps nil, as they read back after being
// encoded (they are omitted), so a parsed catalog equals its re-parse.
func (d *Details) normalize() {
	if len(d.Tags) == 0 {
		d.Tags = nil
	}
	if len(d.Localized) == 0 {
		d.Localized = nil
	}
	if len(d.Metadata) == 0 {
		d.Metadata = nil
	}
}

// details checks d at path p (the entry's path, like "items[2]").
func (v *validator) details(p string, d *Details) {
	v.text(p+".description", "description", d.Description, MaxDescriptionLength, true)
	if d.Category != "" {
		v.text(p+".category", "category", d.Category, MaxCategoryLength, false)
	}
	if len(d.Tags) > MaxTags {
		v.add(p+".tags", fmt.Sprintf("at most %d tags are allowed", MaxTags))
	}
	seen := map[string]int{}
	for i, tag := range d.Tags {
		tp := fmt.Sprintf("%s.tags[%d]", p, i)
		switch first, dup := seen[tag]; {
		case !validID(tag) || len(tag) > MaxTagLength:
			v.add(tp, fmt.Sprintf("invalid tag %q: use 1-%d characters from a-z, 0-9, '_', '.' and '-', starting with a letter or digit", tag, MaxTagLength))
		case dup:
			v.add(tp, fmt.Sprintf("duplicate tag %q (first at %s.tags[%d])", tag, p, first))
		default:
			seen[tag] = i
		}
	}
	if d.ImageURL != "" {
		v.imageURL(p+".image_url", d.ImageURL)
	}
	if len(d.Localized) > MaxLocales {
		v.add(p+".localized", fmt.Sprintf("at most %d locales are allowed", MaxLocales))
	}
	for _, loc := range slices.Sorted(maps.Keys(d.Localized)) {
		lp := joinLocale(p+".localized", loc)
		if msg := localeProblem(loc); msg != "" {
			v.add(lp, msg)
			continue
		}
		if loc == v.defaultLocale {
			v.add(lp, fmt.Sprintf("%q is the catalog's default_locale: its strings are name and description", loc))
			continue
		}
		t := d.Localized[loc]
		if t.Name == "" && t.Description == "" {
			v.add(lp, "a locale needs a name or a description")
		}
		if t.Name != "" {
			v.name(lp, t.Name)
		}
		v.text(lp+".description", "description", t.Description, MaxDescriptionLength, true)
	}
	if d.Metadata != nil {
		v.metadata(p+".metadata", d.Metadata)
	}
}

// text checks free text: at most max characters, no control characters
// (multiline allows newlines and tabs, which descriptions need).
func (v *validator) text(p, what, s string, max int, multiline bool) {
	bad := func(r rune) bool { return unicode.IsControl(r) && !(multiline && (r == '\n' || r == '\t')) }
	switch {
	case utf8.RuneCountInString(s) > max:
		v.add(p, fmt.Sprintf("%s is longer than %d characters", what, max))
	case !utf8.ValidString(s) || strings.ContainsFunc(s, bad):
		v.add(p, what+" contains control characters")
	case !multiline && strings.TrimSpace(s) == "":
		v.add(p, what+" is blank")
	}
}

func (v *validator) imageURL(p, s string) {
	u, err := url.Parse(s)
	switch {
	case len(s) > MaxImageURLLength:
		v.add(p, fmt.Sprintf("image_url is longer than %d characters", MaxImageURLLength))
	case err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil:
		// Clients load it as an image: only a plain web URL is safe to hand
		// them (no javascript:, data: or credentials).
		v.add(p, fmt.Sprintf("image_url %q must be an absolute https:// or http:// URL", s))
	}
}

func (v *validator) metadata(p string, m Metadata) {
	b, err := encodeValue(m)
	switch {
	case err != nil:
		v.add(p, "metadata cannot be encoded as JSON")
	case len(b) > MaxMetadataSize:
		v.add(p, fmt.Sprintf("metadata is %d bytes of JSON; at most %d are allowed", len(b), MaxMetadataSize))
	case depth(map[string]any(m)) > maxMetadataDepth:
		v.add(p, fmt.Sprintf("metadata nests deeper than %d levels", maxMetadataDepth))
	case hasNUL(map[string]any(m)):
		// Postgres refuses \u0000 in jsonb, so such a catalog could not be
		// stored.
		v.add(p, "metadata contains a NUL character")
	}
}

func hasNUL(v any) bool {
	switch v := v.(type) {
	case string:
		return strings.ContainsRune(v, 0)
	case map[string]any:
		for k, c := range v {
			if strings.ContainsRune(k, 0) || hasNUL(c) {
				return true
			}
		}
	case []any:
		for _, c := range v {
			if hasNUL(c) {
				return true
			}
		}
	}
	return false
}

func depth(v any) int {
	d := 0
	switch v := v.(type) {
	case map[string]any:
		for _, c := range v {
			d = max(d, depth(c))
		}
		return d + 1
	case []any:
		for _, c := range v {
			d = max(d, depth(c))
		}
		return d + 1
	}
	return 0
}

// localeProblem says what is wrong with a locale key, or "" when it is a
// well-formed BCP 47 tag written canonically ("pt-BR", not "pt_br"), which
// lets a request's locale be matched by exact string once chosen.
func localeProblem(loc string) string {
	tag, err := language.Parse(loc)
	switch {
	case err != nil || loc == "" || tag == language.Und:
		return fmt.Sprintf("invalid locale %q: use a BCP 47 language tag like \"fr\" or \"pt-BR\"", loc)
	case tag.String() != loc:
		return fmt.Sprintf("locale %q must be written %q", loc, tag.String())
	}
	return ""
}

// joinLocale appends a locale key to a path: locales contain '-' and
// capitals, so they are always quoted unless a plain id.
func joinLocale(path, loc string) string { return joinKey(path, loc) }

// Locales returns every locale the catalog has strings for, sorted, with
// the default locale (when set) first.
func (c *Catalog) Locales() []string {
	set := map[string]bool{}
	add := func(d *Details) {
		for loc := range d.Localized {
			set[loc] = true
		}
	}
	for i := range c.Currencies {
		add(&c.Currencies[i].Details)
	}
	for i := range c.Items {
		add(&c.Items[i].Details)
	}
	for i := range c.Bundles {
		add(&c.Bundles[i].Details)
	}
	delete(set, c.DefaultLocale)
	out := slices.Sorted(maps.Keys(set))
	if c.DefaultLocale != "" {
		out = append([]string{c.DefaultLocale}, out...)
	}
	return out
}

// localize returns a copy of c as a client in locale loc should see it:
// each name and description in loc where the entry has one, the default
// otherwise, and no localized maps (the client asked for one locale).
func localize(c *Catalog, loc string) *Catalog {
	out := *c
	out.Currencies = slices.Clone(c.Currencies)
	out.Items = slices.Clone(c.Items)
	out.Bundles = slices.Clone(c.Bundles)
	for i := range out.Currencies {
		localizeEntry(&out.Currencies[i].Name, &out.Currencies[i].Details, loc)
	}
	for i := range out.Items {
		localizeEntry(&out.Items[i].Name, &out.Items[i].Details, loc)
	}
	for i := range out.Bundles {
		localizeEntry(&out.Bundles[i].Name, &out.Bundles[i].Details, loc)
	}
	return &out
}

// localizeEntry works on copies of the entry structs; the maps and slices
// they share with the snapshot are only read, never written.
func localizeEntry(name *string, d *Details, loc string) {
	if t, ok := d.Localized[loc]; ok {
		if t.Name != "" {
			*name = t.Name
		}
		if t.Description != "" {
			d.Description = t.Description
		}
	}
	d.Localized = nil
}

// MatchLocale picks the catalog locale that best serves a client preferring
// prefs (most preferred first): the best match among Locales, or "" (the
// default strings) when none matches well. A request for a locale the
// catalog lacks, or for the default locale, is served the defaults.
func (s *Snapshot) MatchLocale(prefs []language.Tag) string {
	if len(prefs) == 0 || len(s.locales) == 0 {
		return ""
	}
	_, i, conf := s.matcher.Match(prefs...)
	if conf == language.No || i >= len(s.locales) {
		return ""
	}
	if loc := s.locales[i]; loc != s.Catalog.DefaultLocale {
		return loc
	}
	return ""
}

// LocalizedJSON returns the canonical JSON of the catalog as a client in
// locale loc (as MatchLocale returns it; "" for the default strings) sees
// it, computed once per locale. The caller must not modify it.
func (s *Snapshot) LocalizedJSON(loc string) ([]byte, error) {
	if b, ok := s.localized.Load(loc); ok {
		return b.([]byte), nil
	}
	if loc != "" && !slices.Contains(s.locales, loc) {
		return nil, fmt.Errorf("catalog: version %d has no locale %q", s.Version, loc)
	}
	b, err := encode(localize(s.Catalog, loc))
	if err != nil {
		return nil, fmt.Errorf("catalog: localize %q: %w", loc, err)
	}
	// Two requests may both encode; they store identical bytes.
	s.localized.Store(loc, b)
	return b, nil
}

// LocalizedETag is the entity tag of LocalizedJSON(loc): the version's tag
// qualified by the locale, "und" (undetermined, which no catalog locale
// can be) for the default strings.
func (s *Snapshot) LocalizedETag(loc string) string {
	if loc == "" {
		loc = "und"
	}
	return fmt.Sprintf(`"catalog-%d-%s"`, s.Version, loc)
}

// indexLocales prepares MatchLocale. The matcher's first tag is its
// fallback, so it is the default locale, or und when the catalog has none.
func (s *Snapshot) indexLocales() {
	locs := s.Catalog.Locales()
	if len(locs) == 0 {
		return
	}
	if s.Catalog.DefaultLocale == "" {
		locs = append([]string{""}, locs...)
	}
	tags := make([]language.Tag, len(locs))
	for i, l := range locs {
		// Published catalogs hold canonical tags only (Validate); a stored
		// one that no longer parses matches nothing rather than failing.
		tags[i], _ = language.Parse(l)
	}
	s.locales, s.matcher = locs, language.NewMatcher(tags)
}
