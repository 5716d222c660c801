package server

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/text/language"

	"github.com/coinop/coinop/catalog"
)

// catalogBody caches the encoded GET /v1/catalog responses of one version,
// so the hot read path is a pointer load and a write. localized holds the
// bodies of its locales (locale → []byte), as they are asked for: at most
// one per locale the catalog has.
type catalogBody struct {
	version   int64
	etag      string
	body      []byte
	localized sync.Map
}

type catalogResponse struct {
	Version int64 `json:"version"`
	// Locale is the locale of the strings served, when known: the matched
	// locale, or the catalog's default_locale.
	Locale  string          `json:"locale,omitempty"`
	Catalog json.RawMessage `json:"catalog"`
}

func (s *Server) encodedCatalog(snap *catalog.Snapshot) (*catalogBody, error) {
	if cb := s.catalogBody.Load(); cb != nil && cb.version == snap.Version && cb.etag == snap.ETag() {
		return cb, nil
	}
	body, err := json.Marshal(catalogResponse{Version: snap.Version, Catalog: snap.JSON()})
	if err != nil {
		return nil, err
	}
	cb := &catalogBody{version: snap.Version, etag: snap.ETag(), body: body}
	s.catalogBody.Store(cb)
	return cb, nil
}

// localizedBody is the response body in locale loc (from MatchLocale).
func (cb *catalogBody) localizedBody(snap *catalog.Snapshot, loc string) ([]byte, error) {
	if b, ok := cb.localized.Load(loc); ok {
		return b.([]byte), nil
	}
	doc, err := snap.LocalizedJSON(loc)
	if err != nil {
		return nil, err
	}
	served := loc
	if served == "" {
		served = snap.Catalog.DefaultLocale
	}
	body, err := json.Marshal(catalogResponse{Version: snap.Version, Locale: served, Catalog: doc})
	if err != nil {
		return nil, err
	}
	cb.localized.Store(loc, body)
	return body, nil
}

// requestedLocale reads the client's locale preferences: ?locale= (one BCP
// 47 tag) or else Accept-Language. ok is false when the client named none,
// so it is served the whole document with every locale's strings.
func requestedLocale(c *fiber.Ctx) (prefs []language.Tag, ok bool, err error) {
	if q := c.Query("locale"); q != "" {
		tag, err := language.Parse(q)
		if err != nil || len(q) > 100 {
			return nil, false, newProblem(fiber.StatusBadRequest, codeInvalidRequest,
				"locale must be a BCP 47 language tag, like fr or pt-BR.")
		}
		return []language.Tag{tag}, true, nil
	}
	h := c.Get(fiber.HeaderAcceptLanguage)
	if h == "" {
		return nil, false, nil
	}
	// A malformed header is the browser's or proxy's doing, not the
	// player's: it gets the default strings rather than an error.
	tags, _, _ := language.ParseAcceptLanguage(h)
	return tags, true, nil
}

func (s *Server) getCatalog(c *fiber.Ctx) error {
	snap := s.live.Current()
	if snap == nil {
		return catalog.ErrNoCatalog
	}
	prefs, localized, err := requestedLocale(c)
	if err != nil {
		return err
	}
	cb, err := s.encodedCatalog(snap)
	if err != nil {
		return err
	}
	body, etag := cb.body, cb.etag
	if localized {
		loc := snap.MatchLocale(prefs)
		if body, err = cb.localizedBody(snap, loc); err != nil {
			return err
		}
		etag = snap.LocalizedETag(loc)
	}
	// Caches must key on the language too: the same URL answers each
	// Accept-Language with its own strings.
	c.Set(fiber.HeaderVary, fiber.HeaderAcceptLanguage)
	c.Set(fiber.HeaderETag, etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(body)
}

// etagMatches implements If-None-Match's weak comparison over a list.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	want := strings.TrimPrefix(etag, "W/")
	for _, candidate := range strings.Split(header, ",") {
		candidate = strings.TrimSpace(candidate)
		if candidate == "*" || strings.TrimPrefix(candidate, "W/") == want {
			return true
		}
	}
	return false
}

func parseNonNegativeInt(s string, def int64) (int64, bool) {
	if s == "" {
		return def, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil && n >= 0
}
