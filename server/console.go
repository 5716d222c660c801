package server

// The web console (package console): static files under /console, with
// headers that suit an admin page. The page itself holds no secret; it
// calls the admin API with the key its user signs in with.

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"mime"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/coinop/coinop/console"
)

// consoleCSP allows the page's own scripts, styles and API calls and
// nothing else: no inline script or style, no other origin, no framing
// (clickjacking a publish button), no plugins, no form posts anywhere, and
// Trusted Types so DOM sinks like innerHTML cannot be fed strings.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; manifest-src 'self'; form-action 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; object-src 'none'; require-trusted-types-for 'script'; trusted-types 'none'"

type consoleFile struct {
	body        []byte
	contentType string
	etag        string
}

// consoleFiles reads the embedded files once: they cannot change while the
// binary runs, so each one's ETag is computed at start.
func consoleFiles() map[string]consoleFile {
	out := map[string]consoleFile{}
	fsys := console.Files()
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		sum := sha256.Sum256(b)
		out[p] = consoleFile{body: b, contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic(err) // embedded at build time; unreadable means a broken binary
	}
	return out
}

// consoleHeaders are set on every console response, errors included.
func consoleHeaders(c *fiber.Ctx) {
	c.Set(fiber.HeaderContentSecurityPolicy, consoleCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set("Cross-Origin-Opener-Policy", "same-origin")
	c.Set(fiber.HeaderCrossOriginResourcePolicy, "same-origin")
	c.Set(fiber.HeaderPermissionsPolicy, "camera=(), microphone=(), geolocation=(), payment=(), usb=()")
}

// serveConsole answers GET /console (the page) and GET /console/NAME (its
// files). Files are revalidated on every load (no-cache with an ETag), so a
// new release is picked up at once without stale scripts.
func (s *Server) serveConsole() fiber.Handler {
	files := consoleFiles()
	return func(c *fiber.Ctx) error {
		consoleHeaders(c)
		name := strings.TrimPrefix(c.Path(), "/console")
		name = strings.TrimPrefix(name, "/")
		if name == "" {
			name = "index.html"
		}
		f, ok := files[name]
		if !ok {
			return fiber.ErrNotFound
		}
		c.Set(fiber.HeaderETag, f.etag)
		c.Set(fiber.HeaderCacheControl, "no-cache")
		if etagMatches(c.Get(fiber.HeaderIfNoneMatch), f.etag) {
			return c.SendStatus(fiber.StatusNotModified)
		}
		c.Set(fiber.HeaderContentType, f.contentType)
		return c.Send(f.body)
	}
}
