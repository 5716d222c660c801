package server_test

import (
	"io/fs"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/coinop/coinop/console"
)

func TestConsoleIsServedWithAdminPageHeaders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tt := range []struct{ path, contentType string }{
		{"/console", "text/html; charset=utf-8"},
		{"/console/app.js", "text/javascript; charset=utf-8"},
		{"/console/style.css", "text/css; charset=utf-8"},
	} {
		t.Run(tt.path, func(t *testing.T) {
			r := e.get(t, tt.path, "")
			if r.status != http.StatusOK || r.header.Get("Content-Type") != tt.contentType {
				t.Fatalf("GET %s: %d %s", tt.path, r.status, r.header.Get("Content-Type"))
			}
			csp := r.header.Get("Content-Security-Policy")
			for _, want := range []string{"default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
				"object-src 'none'", "form-action 'none'", "require-trusted-types-for 'script'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe") || strings.Contains(csp, "http") || strings.Contains(csp, "*") {
				t.Errorf("CSP %q allows inline code or other origins", csp)
			}
			for h, want := range map[string]string{
				"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
				"Cross-Origin-Opener-Policy": "same-origin", "Cache-Control": "no-cache",
			} {
				if got := r.header.Get(h); got != want {
					t.Errorf("%s = %q, want %q", h, got, want)
				}
			}
			etag := r.header.Get("ETag")
			if r := e.do(t, newRequest(http.MethodGet, tt.path, nil, "If-None-Match", etag)); etag == "" || r.status != http.StatusNotModified {
				t.Errorf("If-None-Match %s: %d, want 304", etag, r.status)
			}
		})
	}
	t.Run("an unknown file is a 404 problem with the same headers", func(t *testing.T) {
		r := e.get(t, "/console/nope.js", "")
		assertProblem(t, r, http.StatusNotFound, "not_found")
		if r.header.Get("Content-Security-Policy") == "" {
			t.Errorf("a 404 under /console has no CSP")
		}
	})
}

// TestConsoleFilesHaveNoInlineCode keeps the page within its CSP: no inline
// scripts, styles or event handlers, nothing loaded from another origin, no
// HTML-string DOM sinks (Trusted Types would refuse them at run time).
func TestConsoleFilesHaveNoInlineCode(t *testing.T) {
	forbidden := []struct {
		re  *regexp.Regexp
		why string
	}{
		{regexp.MustCompile(`<script(?:\s[^>]*)?>[^<\s]`), "inline script"},
		{regexp.MustCompile(`<style|\sstyle="`), "inline style"},
		{regexp.MustCompile(`\son[a-z]+="`), "inline event handler"},
		{regexp.MustCompile(`(?:src|href)="(?:https?:)?//`), "another origin"},
		{regexp.MustCompile(`\.(?:innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write|\beval\(|new Function\(`), "an HTML or code string sink"},
	}
	err := fs.WalkDir(console.Files(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(console.Files(), p)
		if err != nil {
			return err
		}
		for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAll(b, -1) {
			if !strings.Contains(string(tag), ` src="/console/`) {
				t.Errorf("%s has a script that is not one of the console's files: %s", p, tag)
			}
		}
		for _, f := range forbidden {
			if loc := f.re.FindIndex(b); loc != nil {
				t.Errorf("%s has %s: %q", p, f.why, b[loc[0]:min(loc[1]+20, len(b))])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
