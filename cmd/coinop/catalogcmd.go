package main

// coinop catalog: the designers' loop for catalogs kept in git. validate
// FILE works offline; every other subcommand talks to the admin API, so it
// needs only a URL and a key. Exit codes are meant for CI pipelines:
//
//	0  ok
//	1  the catalog is invalid, or `diff --exit-code` found changes
//	2  usage error
//	3  the server refused the request or could not be reached

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coinop/coinop/catalog"
)

// Exit codes of coinop catalog.
const (
	exitInvalid = 1
	exitUsage   = 2
	exitServer  = 3
)

const catalogUsage = `usage: coinop catalog SUBCOMMAND [flags]

  validate FILE                  check a catalog file offline (exit 1 if invalid)
  validate --draft               check the server's draft
  pull [--draft | --version N | --locale L] [--format yaml|json] [-o FILE]
                                 write the live catalog (or the draft, or a version,
                                 or the live catalog as a client in locale L gets it)
  push [--if-match ETAG] [--publish [--note N]] FILE
                                 replace the draft with FILE (validated first)
  diff [--exit-code] [--json]    what publishing the draft would change
  publish [--note N] [--at TIME] [--if-match ETAG] [--supersede-scheduled]
                                 publish the draft, now or at TIME (RFC 3339)
  versions [--limit N] [--json]  list published versions, newest first
  rollback [--note N] [--supersede-scheduled] VERSION
                                 publish an earlier version again, as a new version

Every subcommand but validate FILE takes --url (env COINOP_URL, default
http://127.0.0.1:8080) and --admin-token (env COINOP_ADMIN_KEY, then
COINOP_ADMIN_TOKEN).

Exit codes: 0 ok, 1 invalid catalog or (diff --exit-code) changes found,
2 usage, 3 server or network error.
`

func runCatalog(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, catalogUsage)
		return exitError{exitUsage}
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "validate":
		return catalogValidate(ctx, rest, getenv, stdout, stderr)
	case "pull":
		return catalogPull(ctx, rest, getenv, stdout, stderr)
	case "push":
		return catalogPush(ctx, rest, getenv, stdout, stderr)
	case "diff":
		return catalogDiff(ctx, rest, getenv, stdout, stderr)
	case "publish":
		return catalogPublish(ctx, rest, getenv, stdout, stderr)
	case "versions":
		return catalogVersions(ctx, rest, getenv, stdout, stderr)
	case "rollback":
		return catalogRollback(ctx, rest, getenv, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, catalogUsage)
		return nil
	}
	fmt.Fprintf(stderr, "coinop catalog: unknown subcommand %q\n\n%s", sub, catalogUsage)
	return exitError{exitUsage}
}

func formatOf(path string) catalog.Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return catalog.FormatYAML
	}
	return catalog.FormatJSON
}

func contentType(f catalog.Format) string {
	if f == catalog.FormatYAML {
		return "application/yaml"
	}
	return "application/json"
}

// readCatalog parses and validates a file, printing every problem.
func readCatalog(path string, stderr io.Writer) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return nil, exitError{exitInvalid}
	}
	c, err := catalog.Parse(data, formatOf(path))
	if err == nil {
		err = catalog.Validate(c)
	}
	var verr *catalog.ValidationError
	if errors.As(err, &verr) {
		for _, p := range verr.Problems {
			fmt.Fprintf(stderr, "%s: %s: %s\n", path, p.Path, p.Message)
		}
		return nil, exitError{exitInvalid}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, exitError{exitInvalid}
	}
	return data, nil
}

// newFlags returns a flag set for a subcommand, with the connection flags
// when remote.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("catalog "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, catalogUsage) }
	return fs
}

// adminClient calls the admin API for the catalog subcommands.
type adminClient struct {
	base, token string
	http        *http.Client
	stderr      io.Writer
	cmd         string
}

func bindClient(fs *flag.FlagSet, getenv func(string) string, stderr io.Writer) *adminClient {
	c := &adminClient{http: &http.Client{Timeout: 30 * time.Second}, stderr: stderr, cmd: "coinop " + fs.Name()}
	fs.StringVar(&c.base, "url", envOr(getenv, "COINOP_URL", "http://127.0.0.1:8080"), "coinop base URL (env COINOP_URL)")
	fs.StringVar(&c.token, "admin-token", envOr(getenv, "COINOP_ADMIN_KEY", getenv("COINOP_ADMIN_TOKEN")),
		"admin API key or token (env COINOP_ADMIN_KEY, then COINOP_ADMIN_TOKEN)")
	return c
}

// response is a read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request and returns a 2xx response. Anything else is
// reported on stderr and returned as the exit code: 1 for an invalid
// catalog, 3 for the rest (refusals, server errors, network errors).
func (c *adminClient) call(ctx context.Context, method, path string, body []byte, headers ...string) (*response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.base, "/")+path, rd)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.cmd, err)
		return nil, exitError{exitUsage}
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] != "" {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: %v\n", c.cmd, err)
		return nil, exitError{exitServer}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		fmt.Fprintf(c.stderr, "%s: reading the response: %v\n", c.cmd, err)
		return nil, exitError{exitServer}
	}
	r := &response{status: resp.StatusCode, header: resp.Header, body: data}
	if r.status >= 200 && r.status < 300 || r.status == http.StatusNotModified {
		return r, nil
	}
	return nil, c.report(r)
}

// problemDoc is the part of a problem document the CLI prints.
type problemDoc struct {
	Code        string              `json:"code"`
	Title       string              `json:"title"`
	Detail      string              `json:"detail"`
	Errors      []catalog.Problem   `json:"errors"`
	CurrentETag string              `json:"current_etag"`
	Pending     []pendingVersionDoc `json:"pending_versions"`
	RequestID   string              `json:"request_id"`
}

type pendingVersionDoc struct {
	Version int64     `json:"version"`
	LiveAt  time.Time `json:"live_at"`
	Note    string    `json:"note"`
}

func (c *adminClient) report(r *response) error {
	var p problemDoc
	if json.Unmarshal(r.body, &p) != nil || p.Code == "" {
		fmt.Fprintf(c.stderr, "%s: HTTP %d: %s\n", c.cmd, r.status, bytes.TrimSpace(r.body))
		return exitError{exitServer}
	}
	fmt.Fprintf(c.stderr, "%s: %d %s: %s\n", c.cmd, r.status, p.Code, p.Detail)
	for _, e := range p.Errors {
		fmt.Fprintf(c.stderr, "  %s: %s\n", e.Path, e.Message)
	}
	if p.CurrentETag != "" {
		fmt.Fprintf(c.stderr, "  current ETag: %s\n", p.CurrentETag)
	}
	for _, v := range p.Pending {
		fmt.Fprintf(c.stderr, "  version %d is scheduled for %s (%s)\n", v.Version, v.LiveAt.Format(time.RFC3339), v.Note)
	}
	if p.RequestID != "" {
		fmt.Fprintf(c.stderr, "  request id: %s\n", p.RequestID)
	}
	if r.status == http.StatusUnauthorized {
		if c.token == "" {
			fmt.Fprintf(c.stderr, "  no admin credential was sent: set COINOP_ADMIN_KEY to an admin API key (coinop keys create), or pass --admin-token\n")
		} else {
			fmt.Fprintf(c.stderr, "  the server refused the credential in COINOP_ADMIN_KEY (or --admin-token, COINOP_ADMIN_TOKEN): set COINOP_ADMIN_KEY to a valid admin API key\n")
		}
	}
	if p.Code == "catalog_invalid" {
		return exitError{exitInvalid}
	}
	return exitError{exitServer}
}

func (c *adminClient) decode(r *response, v any) error {
	if err := json.Unmarshal(r.body, v); err != nil {
		fmt.Fprintf(c.stderr, "%s: unexpected response: %v\n", c.cmd, err)
		return exitError{exitServer}
	}
	return nil
}

// usageError prints a message and the usage and returns exit code 2.
func usageError(stderr io.Writer, format string, args ...any) error {
	fmt.Fprintf(stderr, "coinop catalog: "+format+"\n\n%s", append(args, catalogUsage)...)
	return exitError{exitUsage}
}

type draftStatusDoc struct {
	Revision int64             `json:"revision"`
	ETag     string            `json:"etag"`
	Valid    bool              `json:"valid"`
	Errors   []catalog.Problem `json:"errors"`
}

func catalogValidate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stderr)
	draft := fs.Bool("draft", false, "validate the server's draft instead of a file")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	switch {
	case *draft && fs.NArg() == 0:
		r, err := client.call(ctx, http.MethodPost, "/admin/v1/catalog/draft/validate", nil)
		if err != nil {
			return err
		}
		var st draftStatusDoc
		if err := client.decode(r, &st); err != nil {
			return err
		}
		for _, p := range st.Errors {
			fmt.Fprintf(stderr, "draft: %s: %s\n", p.Path, p.Message)
		}
		if !st.Valid {
			return exitError{exitInvalid}
		}
		fmt.Fprintf(stdout, "draft %s: valid\n", st.ETag)
		return nil
	case !*draft && fs.NArg() == 1:
		if _, err := readCatalog(fs.Arg(0), stderr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: valid\n", fs.Arg(0))
		return nil
	}
	return usageError(stderr, "validate takes one FILE, or --draft")
}

func catalogPull(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("pull", stderr)
	draft := fs.Bool("draft", false, "pull the draft instead of the live catalog")
	version := fs.Int64("version", 0, "pull this published version instead of the live catalog")
	format := fs.String("format", "", "yaml or json (default: from the -o file's extension, else yaml)")
	locale := fs.String("locale", "", "pull the live catalog as a client in this BCP 47 locale receives it (one locale's strings, no localized maps)")
	out := fs.String("o", "", "write to this file instead of standard output")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	if fs.NArg() != 0 || *draft && *version != 0 || *version < 0 || *locale != "" && (*draft || *version != 0) {
		return usageError(stderr, "pull takes no arguments, and at most one of --draft, --version and --locale")
	}
	f := catalog.FormatYAML
	switch {
	case *format == "yaml":
	case *format == "json":
		f = catalog.FormatJSON
	case *format != "":
		return usageError(stderr, "--format must be yaml or json")
	case *out != "":
		f = formatOf(*out)
	}
	path := "/v1/catalog"
	switch {
	case *draft:
		path = "/admin/v1/catalog/draft"
	case *version > 0:
		path = "/admin/v1/catalog/versions/" + strconv.FormatInt(*version, 10)
	}
	isLive := path == "/v1/catalog"
	if *locale != "" {
		path += "?locale=" + url.QueryEscape(*locale)
	}
	r, err := client.call(ctx, http.MethodGet, path, nil, "Accept", contentType(f))
	if err != nil {
		return err
	}
	data := r.body
	if isLive {
		// The public route wraps the document with its version and always
		// speaks JSON.
		var live struct {
			Version int64           `json:"version"`
			Locale  string          `json:"locale"`
			Catalog json.RawMessage `json:"catalog"`
		}
		if err := client.decode(r, &live); err != nil {
			return err
		}
		c, err := catalog.Parse(live.Catalog, catalog.FormatJSON)
		if err != nil {
			fmt.Fprintf(stderr, "coinop catalog pull: the live catalog: %v\n", err)
			return exitError{exitServer}
		}
		if data, err = catalog.Encode(c, f); err != nil {
			return err
		}
		if live.Locale != "" {
			fmt.Fprintf(stderr, "live version %d in locale %s\n", live.Version, live.Locale)
		} else {
			fmt.Fprintf(stderr, "live version %d\n", live.Version)
		}
	} else if etag := r.header.Get("ETag"); etag != "" {
		fmt.Fprintf(stderr, "%s %s\n", strings.TrimPrefix(path, "/admin/v1/catalog/"), etag)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	if *out == "" {
		_, err := stdout.Write(data)
		return err
	}
	if err := os.WriteFile(*out, data, 0o644); err != nil {
		fmt.Fprintf(stderr, "coinop catalog pull: %v\n", err)
		return exitError{exitInvalid}
	}
	return nil
}

func catalogPush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("push", stderr)
	ifMatch := fs.String("if-match", "", "replace the draft only if its ETag is still this one")
	publish := fs.Bool("publish", false, "publish the draft right after replacing it")
	note := fs.String("note", "", "with --publish: note recorded with the version")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	if fs.NArg() != 1 {
		return usageError(stderr, "push takes one FILE")
	}
	path := fs.Arg(0)
	data, err := readCatalog(path, stderr)
	if err != nil {
		return err
	}
	r, err := client.call(ctx, http.MethodPut, "/admin/v1/catalog/draft", data,
		"Content-Type", contentType(formatOf(path)), "If-Match", *ifMatch)
	if err != nil {
		return err
	}
	var st draftStatusDoc
	if err := client.decode(r, &st); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "draft %s\n", st.ETag)
	if !*publish {
		return nil
	}
	return publishDraft(ctx, client, publishRequest{Note: *note}, st.ETag, stdout)
}

type publishRequest struct {
	Note               string  `json:"note,omitempty"`
	PublishAt          *string `json:"publish_at,omitempty"`
	SupersedeScheduled bool    `json:"supersede_scheduled,omitempty"`
}

type versionDoc struct {
	Version       int64     `json:"version"`
	Note          string    `json:"note"`
	CreatedBy     string    `json:"created_by"`
	CreatedAt     time.Time `json:"created_at"`
	LiveAt        time.Time `json:"live_at"`
	SourceVersion *int64    `json:"source_version"`
	Status        string    `json:"status"`
}

func publishDraft(ctx context.Context, client *adminClient, req publishRequest, ifMatch string, stdout io.Writer) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	r, err := client.call(ctx, http.MethodPost, "/admin/v1/catalog/publish", body,
		"Content-Type", "application/json", "If-Match", ifMatch)
	if err != nil {
		return err
	}
	return printPublished(client, r, stdout)
}

func printPublished(client *adminClient, r *response, stdout io.Writer) error {
	var v versionDoc
	if err := client.decode(r, &v); err != nil {
		return err
	}
	if v.Status == catalog.StatusScheduled {
		fmt.Fprintf(stdout, "scheduled version %d for %s\n", v.Version, v.LiveAt.Format(time.RFC3339))
		return nil
	}
	fmt.Fprintf(stdout, "published version %d\n", v.Version)
	return nil
}

func catalogDiff(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("diff", stderr)
	exitCode := fs.Bool("exit-code", false, "exit with 1 when the draft differs from the live catalog")
	asJSON := fs.Bool("json", false, "print the diff as JSON")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	if fs.NArg() != 0 {
		return usageError(stderr, "diff takes no arguments")
	}
	r, err := client.call(ctx, http.MethodGet, "/admin/v1/catalog/draft/diff", nil)
	if err != nil {
		return err
	}
	var d catalog.Diff
	if err := client.decode(r, &d); err != nil {
		return err
	}
	if *asJSON {
		stdout.Write(append(bytes.TrimSpace(r.body), '\n'))
	} else {
		fmt.Fprint(stdout, d.String())
	}
	if *exitCode && d.Changed {
		return exitError{exitInvalid}
	}
	return nil
}

func catalogPublish(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("publish", stderr)
	note := fs.String("note", "", "note recorded with the version")
	at := fs.String("at", "", "schedule the version for this time (RFC 3339, like 2026-11-28T18:00:00Z)")
	ifMatch := fs.String("if-match", "", "publish only if the draft's ETag is still this one (from push or diff)")
	supersede := fs.Bool("supersede-scheduled", false, "publish even if scheduled versions would then never go live")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	if fs.NArg() != 0 {
		return usageError(stderr, "publish takes no arguments (it publishes the draft; push a file first)")
	}
	req := publishRequest{Note: *note, SupersedeScheduled: *supersede}
	if *at != "" {
		t, err := time.Parse(time.RFC3339, *at)
		if err != nil {
			return usageError(stderr, "--at must be an RFC 3339 time, like 2026-11-28T18:00:00Z")
		}
		s := t.Format(time.RFC3339)
		req.PublishAt = &s
	}
	return publishDraft(ctx, client, req, *ifMatch, stdout)
}

func catalogVersions(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("versions", stderr)
	limit := fs.Int("limit", 20, "how many versions, newest first (1-1000)")
	asJSON := fs.Bool("json", false, "print the list as JSON")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	if fs.NArg() != 0 || *limit < 1 || *limit > catalog.MaxVersionsLimit {
		return usageError(stderr, "versions takes no arguments and a --limit from 1 to 1000")
	}
	r, err := client.call(ctx, http.MethodGet, "/admin/v1/catalog/versions?limit="+strconv.Itoa(*limit), nil)
	if err != nil {
		return err
	}
	if *asJSON {
		stdout.Write(append(bytes.TrimSpace(r.body), '\n'))
		return nil
	}
	var list struct {
		Versions []versionDoc `json:"versions"`
	}
	if err := client.decode(r, &list); err != nil {
		return err
	}
	for _, v := range list.Versions {
		extra := ""
		if v.SourceVersion != nil {
			extra = fmt.Sprintf(" (rollback to %d)", *v.SourceVersion)
		}
		fmt.Fprintf(stdout, "%6d  %-10s  live at %s  by %s%s  %s\n", v.Version, v.Status,
			v.LiveAt.Format(time.RFC3339), v.CreatedBy, extra, v.Note)
	}
	return nil
}

func catalogRollback(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := newFlags("rollback", stderr)
	note := fs.String("note", "", "note recorded with the new version (default: rollback to version N)")
	supersede := fs.Bool("supersede-scheduled", false, "roll back even if scheduled versions would then never go live")
	client := bindClient(fs, getenv, stderr)
	if err := fs.Parse(args); err != nil {
		return exitError{exitUsage}
	}
	if fs.NArg() != 1 {
		return usageError(stderr, "rollback takes one VERSION")
	}
	v, err := strconv.ParseInt(fs.Arg(0), 10, 64)
	if err != nil || v < 1 {
		return usageError(stderr, "VERSION must be a published version number")
	}
	body, err := json.Marshal(map[string]any{"version": v, "note": *note, "supersede_scheduled": *supersede})
	if err != nil {
		return err
	}
	r, err := client.call(ctx, http.MethodPost, "/admin/v1/catalog/rollback", body, "Content-Type", "application/json")
	if err != nil {
		return err
	}
	return printPublished(client, r, stdout)
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
