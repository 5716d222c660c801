package server

// The designers' catalog workflow: the draft (whole and per entity, with
// ETag/If-Match), validation, the diff against the live version, publish
// (now or scheduled), versions and rollback, plus the direct publish of a
// whole document. Roles are checked by the routes (server.go); every write
// is audited by package catalog in the transaction of the change.

import (
	"bytes"
	"errors"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/catalog"
)

// catalogFormat is the format of a catalog body by its Content-Type: JSON
// when there is none, as elsewhere in the API.
func catalogFormat(c *fiber.Ctx) (catalog.Format, error) {
	ct := c.Get(fiber.HeaderContentType)
	if ct == "" {
		return catalog.FormatJSON, nil
	}
	f, ok := catalog.FormatFromContentType(ct)
	if !ok {
		return "", newProblem(fiber.StatusUnsupportedMediaType, codeUnsupportedMediaType,
			"Send the catalog as application/json or application/yaml.")
	}
	return f, nil
}

// wantsYAML reports whether the Accept header asks for YAML before JSON;
// anything else, including no Accept header, gets JSON.
func wantsYAML(c *fiber.Ctx) bool {
	for _, part := range strings.Split(c.Get(fiber.HeaderAccept), ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if f, ok := catalog.FormatFromContentType(mt); ok {
			return f == catalog.FormatYAML
		}
	}
	return false
}

// sendDocument answers with a catalog document as JSON (canonical) or YAML.
func sendDocument(c *fiber.Ctx, doc *catalog.Catalog, canonical []byte) error {
	c.Set(fiber.HeaderVary, fiber.HeaderAccept)
	if !wantsYAML(c) {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(canonical)
	}
	y, err := catalog.Encode(doc, catalog.FormatYAML)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, "application/yaml")
	return c.Send(y)
}

// putCatalog publishes a whole document now (the one-step workflow, kept
// for scripts): it also becomes the draft.
func (s *Server) putCatalog(c *fiber.Ctx) error {
	format, err := catalogFormat(c)
	if err != nil {
		return err
	}
	doc, err := catalog.Parse(c.Body(), format)
	if err != nil {
		return err
	}
	supersede, err := queryBool(c, "supersede_scheduled")
	if err != nil {
		return err
	}
	p, err := s.catalogs.PublishDocument(c.UserContext(), doc, catalog.PublishOptions{
		Note: strings.Clone(c.Query("note")), SupersedeScheduled: supersede, By: catalogBy(c)})
	if err != nil {
		return err
	}
	s.live.Set(p.Snapshot)
	c.Set(fiber.HeaderETag, p.Snapshot.ETag())
	c.Set(fiber.HeaderLocation, "/v1/catalog")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"version": p.Version})
}

func queryBool(c *fiber.Ctx, name string) (bool, error) {
	v := c.Query(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid(name + " must be true or false.")
	}
	return b, nil
}

// draftStatus answers draft writes and validation: where the draft is and
// what is wrong with it, so an editor sees the problems at once.
type draftStatus struct {
	Revision  int64             `json:"revision"`
	ETag      string            `json:"etag"`
	UpdatedBy string            `json:"updated_by"`
	UpdatedAt time.Time         `json:"updated_at"`
	Valid     bool              `json:"valid"`
	Errors    []catalog.Problem `json:"errors"`
}

func statusOf(d *catalog.Draft, problems []catalog.Problem) draftStatus {
	if problems == nil {
		problems = []catalog.Problem{}
	}
	return draftStatus{Revision: d.Revision, ETag: d.ETag(), UpdatedBy: d.UpdatedBy, UpdatedAt: d.UpdatedAt,
		Valid: len(problems) == 0, Errors: problems}
}

func problemsOf(c *catalog.Catalog) []catalog.Problem {
	var ve *catalog.ValidationError
	if errors.As(catalog.Validate(c), &ve) {
		return ve.Problems
	}
	return nil
}

func (s *Server) getDraft(c *fiber.Ctx) error {
	d, err := s.catalogs.Draft(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, d.ETag())
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), d.ETag()) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return sendDocument(c, d.Catalog, d.JSON())
}

func (s *Server) putDraft(c *fiber.Ctx) error {
	format, err := catalogFormat(c)
	if err != nil {
		return err
	}
	doc, err := catalog.Parse(c.Body(), format)
	if err != nil {
		return err
	}
	d, err := s.catalogs.ReplaceDraft(c.UserContext(), doc, c.Get(fiber.HeaderIfMatch), catalogBy(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, d.ETag())
	return c.JSON(statusOf(d, problemsOf(d.Catalog)))
}

func (s *Server) postValidateDraft(c *fiber.Ctx) error {
	if len(bytes.TrimSpace(c.Body())) > 0 {
		return invalid("validate takes no body: it validates the draft. Replace the draft first (PUT /admin/v1/catalog/draft), or validate a file offline with coinop catalog validate FILE.")
	}
	d, problems, err := s.catalogs.ValidateDraft(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, d.ETag())
	return c.JSON(statusOf(d, problems))
}

func (s *Server) getDraftDiff(c *fiber.Ctx) error {
	diff, err := s.catalogs.DiffDraft(c.UserContext())
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, diff.DraftETag)
	return c.JSON(diff)
}

// entityPath reads the section and id of an entity route. Store products
// are addressed as store:product_id (apple:com.example.gems100); ids may be
// percent-encoded.
func entityPath(c *fiber.Ctx) (catalog.Section, string, error) {
	sec, ok := catalog.ParseSection(c.Params("section"))
	if !ok {
		return "", "", fiber.ErrNotFound
	}
	id, err := url.PathUnescape(c.Params("id"))
	if err != nil || id == "" || len(id) > 300 {
		return "", "", invalid("The entity id in the URL is malformed.")
	}
	return sec, strings.Clone(id), nil
}

func (s *Server) getDraftEntity(c *fiber.Ctx) error {
	sec, id, err := entityPath(c)
	if err != nil {
		return err
	}
	e, err := s.catalogs.DraftEntity(c.UserContext(), sec, id)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, e.ETag)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	if etagMatches(c.Get(fiber.HeaderIfNoneMatch), e.ETag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	return c.JSON(e.Value)
}

func (s *Server) putDraftEntity(c *fiber.Ctx) error {
	sec, id, err := entityPath(c)
	if err != nil {
		return err
	}
	format, err := catalogFormat(c)
	if err != nil {
		return err
	}
	v, err := catalog.ParseEntity(sec, id, c.Body(), format)
	if err != nil {
		return err
	}
	e, created, err := s.catalogs.PutDraftEntity(c.UserContext(), sec, id, v, c.Get(fiber.HeaderIfMatch), catalogBy(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, e.ETag)
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
		c.Set(fiber.HeaderLocation, "/admin/v1/catalog/draft/"+string(sec)+"/"+url.PathEscape(id))
	}
	return c.Status(status).JSON(e.Value)
}

func (s *Server) deleteDraftEntity(c *fiber.Ctx) error {
	sec, id, err := entityPath(c)
	if err != nil {
		return err
	}
	if _, err := s.catalogs.DeleteDraftEntity(c.UserContext(), sec, id, c.Get(fiber.HeaderIfMatch), catalogBy(c)); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

type publishBody struct {
	Note               *string `json:"note"`
	PublishAt          *string `json:"publish_at"`
	SupersedeScheduled bool    `json:"supersede_scheduled"`
}

// decodeOptional decodes a JSON body that may be absent altogether.
func decodeOptional(c *fiber.Ctx, v any) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	if len(bytes.TrimSpace(c.Body())) == 0 {
		return nil
	}
	return decodeStrict(c.Body(), v)
}

func (s *Server) postPublish(c *fiber.Ctx) error {
	var b publishBody
	if err := decodeOptional(c, &b); err != nil {
		return err
	}
	opts := catalog.PublishOptions{SupersedeScheduled: b.SupersedeScheduled, IfMatch: c.Get(fiber.HeaderIfMatch), By: catalogBy(c)}
	if b.Note != nil {
		opts.Note = *b.Note
	}
	if b.PublishAt != nil {
		at, err := time.Parse(time.RFC3339, *b.PublishAt)
		if err != nil {
			return invalid("publish_at must be an RFC 3339 time, like 2026-11-28T18:00:00Z.")
		}
		opts.At = &at
	}
	p, err := s.catalogs.PublishDraft(c.UserContext(), opts)
	if err != nil {
		return err
	}
	return s.published(c, p)
}

// published answers a publish or rollback, and serves the new version on
// this replica at once when it is live now (others hear of it over Redis).
func (s *Server) published(c *fiber.Ctx, p *catalog.Published) error {
	if p.Status == catalog.StatusLive {
		s.live.Set(p.Snapshot)
	}
	c.Set(fiber.HeaderLocation, "/admin/v1/catalog/versions/"+strconv.FormatInt(p.Version, 10))
	return c.Status(fiber.StatusCreated).JSON(p.VersionInfo)
}

type rollbackBody struct {
	Version            *int64  `json:"version"`
	Note               *string `json:"note"`
	SupersedeScheduled bool    `json:"supersede_scheduled"`
}

func (s *Server) postRollback(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b rollbackBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Version == nil {
		return missing("version")
	}
	if *b.Version < 1 {
		return invalid("version must be a published version number.")
	}
	opts := catalog.PublishOptions{SupersedeScheduled: b.SupersedeScheduled, By: catalogBy(c)}
	if b.Note != nil {
		opts.Note = *b.Note
	}
	p, err := s.catalogs.Rollback(c.UserContext(), *b.Version, opts)
	if err != nil {
		return err
	}
	return s.published(c, p)
}

type versionsResponse struct {
	Versions   []catalog.VersionInfo `json:"versions"`
	NextBefore *int64                `json:"next_before"`
}

func (s *Server) getVersions(c *fiber.Ctx) error {
	limit, ok := parseNonNegativeInt(c.Query("limit"), catalog.DefaultVersionsLimit)
	if !ok || limit < 1 || limit > catalog.MaxVersionsLimit {
		return invalid("limit must be an integer from 1 to 1000.")
	}
	before, ok := parseNonNegativeInt(c.Query("before"), 0)
	if !ok {
		return invalid("before must be a version number.")
	}
	list, err := s.catalogs.VersionsBefore(c.UserContext(), before, int(limit))
	if err != nil {
		return err
	}
	resp := versionsResponse{Versions: list}
	if n := len(list); n == int(limit) && list[n-1].Version > 1 {
		resp.NextBefore = &list[n-1].Version
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.JSON(resp)
}

func (s *Server) getVersion(c *fiber.Ctx) error {
	v, err := strconv.ParseInt(c.Params("version"), 10, 64)
	if err != nil || v < 1 {
		return invalid("The version in the URL must be a positive integer.")
	}
	snap, err := s.catalogs.Version(c.UserContext(), v)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderETag, snap.ETag())
	return sendDocument(c, snap.Catalog, snap.JSON())
}
