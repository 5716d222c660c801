package server

import (
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/catalog"
)

// catalogBody caches the encoded GET /v1/catalog response of one version, so
// the hot read path is a pointer load and a write.
type catalogBody struct {
	version int64
	etag    string
	body    []byte
}

func (s *Server) encodedCatalog(snap *catalog.Snapshot) (*catalogBody, error) {
	if cb := s.catalogBody.Load(); cb != nil && cb.version == snap.Version && cb.etag == snap.ETag() {
		return cb, nil
	}
	body, err := json.Marshal(struct {
		Version int64           `json:"version"`
		Catalog json.RawMessage `json:"catalog"`
	}{snap.Version, snap.JSON()})
	if err != nil {
		return nil, err
	}
	cb := &catalogBody{version: snap.Version, etag: snap.ETag(), body: body}
	s.catalogBody.Store(cb)
	return cb, nil
}

func (s *Server) getCatalog(c *fiber.Ctx) error {
	snap := s.live.Current()
	if snap == nil {
		return catalog.ErrNoCatalog
	}
	cb, err := s.encodedCatalog(snap)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, cb.etag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), cb.etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(cb.body)
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
