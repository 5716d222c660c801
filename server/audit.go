package server

// GET /admin/v1/audit-log: the record of admin writes, newest first, for the
// support role. (GET /admin/v1/audit, in admin.go, is a different thing: it
// checks the ledger's invariants.)

import (
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/audit"
)

type auditLogResponse struct {
	Entries []audit.Entry `json:"entries"`
	// NextCursor continues the listing (pass it as cursor); null on the
	// last page.
	NextCursor *string `json:"next_cursor"`
}

func (s *Server) getAuditLog(c *fiber.Ctx) error {
	f := audit.Filter{
		Actor:  strings.Clone(c.Query("actor")),
		Action: strings.Clone(c.Query("action")),
		Target: strings.Clone(c.Query("target")),
	}
	for _, v := range []struct {
		name string
		val  string
	}{{"actor", f.Actor}, {"action", f.Action}, {"target", f.Target}} {
		if len(v.val) > 500 {
			return invalid(v.name + " is longer than 500 characters.")
		}
	}
	var err error
	if f.Since, err = queryTime(c, "since"); err != nil {
		return err
	}
	if f.Until, err = queryTime(c, "until"); err != nil {
		return err
	}
	limit, ok := parseNonNegativeInt(c.Query("limit"), audit.DefaultLimit)
	if !ok || limit < 1 || limit > audit.MaxLimit {
		return invalid("limit must be an integer from 1 to 500.")
	}
	f.Limit = int(limit)
	if f.Cursor, ok = parseNonNegativeInt(c.Query("cursor"), 0); !ok {
		return invalid("cursor must be the next_cursor of a previous page.")
	}
	entries, next, err := s.auditLog.List(c.UserContext(), f)
	if err != nil {
		return err
	}
	resp := auditLogResponse{Entries: entries}
	if resp.Entries == nil {
		resp.Entries = []audit.Entry{}
	}
	if next > 0 {
		cur := strconv.FormatInt(next, 10)
		resp.NextCursor = &cur
	}
	return c.JSON(resp)
}

func queryTime(c *fiber.Ctx, name string) (time.Time, error) {
	v := c.Query(name)
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, invalid(name + " must be an RFC 3339 time, like 2026-11-01T00:00:00Z.")
	}
	return t, nil
}
