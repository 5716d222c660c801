package server

// Admin API keys over HTTP, for the admin role. The same operations act on
// the database directly in `coinop keys`, which is how the first keys are
// made; both record every change in the audit log.

import (
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/access"
)

func (s *Server) getKeys(c *fiber.Ctx) error {
	all, err := queryBool(c, "include_revoked")
	if err != nil {
		return err
	}
	keys, err := s.keys.List(c.UserContext(), all)
	if err != nil {
		return err
	}
	if keys == nil {
		keys = []access.Key{}
	}
	return c.JSON(fiber.Map{"keys": keys})
}

type keyBody struct {
	Name   *string        `json:"name"`
	Roles  []string       `json:"roles"`
	Limits *access.Limits `json:"limits"`
}

// postKey creates a key and answers with its secret, the only time it is
// ever shown.
func (s *Server) postKey(c *fiber.Ctx) error {
	if err := requireJSON(c); err != nil {
		return err
	}
	var b keyBody
	if err := decodeStrict(c.Body(), &b); err != nil {
		return err
	}
	if b.Name == nil {
		return missing("name")
	}
	if b.Roles == nil {
		return missing("roles")
	}
	roles, err := access.ParseRoles(b.Roles...)
	if err != nil {
		return err
	}
	key, secret, err := s.keys.CreateLimited(c.UserContext(), *b.Name, roles, b.Limits, auditBy(c))
	if err != nil {
		return err
	}
	// No Location: no route reads one key (GET /admin/v1/keys lists them),
	// and a Location must name something a client can fetch.
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"key": key, "secret": secret})
}

// deleteKey revokes the key named (or numbered) in the URL.
func (s *Server) deleteKey(c *fiber.Ctx) error {
	ref, err := url.PathUnescape(c.Params("key"))
	if err != nil || ref == "" {
		return invalid("The key in the URL must be its name or id.")
	}
	key, err := s.keys.Revoke(c.UserContext(), strings.Clone(ref), auditBy(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"key": key})
}

// putKeyLimits replaces the limits of the key named (or numbered) in the
// URL; a body of null removes them.
func (s *Server) putKeyLimits(c *fiber.Ctx) error {
	ref, err := url.PathUnescape(c.Params("key"))
	if err != nil || ref == "" {
		return invalid("The key in the URL must be its name or id.")
	}
	if err := requireJSON(c); err != nil {
		return err
	}
	var limits *access.Limits
	if strings.TrimSpace(string(c.Body())) != "null" {
		limits = new(access.Limits)
		if err := decodeStrict(c.Body(), limits); err != nil {
			return err
		}
	}
	key, err := s.keys.SetLimits(c.UserContext(), strings.Clone(ref), limits, auditBy(c))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"key": key})
}
