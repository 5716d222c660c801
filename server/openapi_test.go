package server_test

// Every request the server tests send through env.send, and every response
// they get back, is checked against docs/openapi.yaml with libopenapi-validator
// (an OpenAPI 3.1 validator independent of the server's code). So the spec
// cannot drift from the server without a test failing: a status, header or
// body shape the spec does not declare fails the test that produced it.

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/config"
	vErrors "github.com/pb33f/libopenapi-validator/errors"
	"github.com/pb33f/libopenapi-validator/paths"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"
)

// specPath is the spec in this repository, relative to the package directory
// go test runs in.
const specPath = "../docs/openapi.yaml"

// genericResponseHeaders are HTTP's own headers, which no operation declares.
// Every other header a response carries must be declared on that response.
var genericResponseHeaders = []string{"content-type", "content-length", "date", "vary", "connection", "transfer-encoding"}

// strictIgnorePaths are the members strict mode must not report ("**"
// matches one or more segments here, so top-level forms are listed too): the keys
// of maps (balances by currency, grants by id), which a schema declares
// with additionalProperties, and free-form documents (ledger metadata,
// stored notification bodies, audit before/after, diff values, audit
// check rows), which the spec leaves open on purpose.
var strictIgnorePaths = []string{
	"$.body.balances.*",
	"$.body.totals_micro.*",
	"$.body.amounts.*",
	"$.body.**.balances.*",
	"$.body.currencies.*",
	"$.body.items.*",
	"$.body.take.*.*",
	"$.body.give.*.*",
	"$.body.hourly_budget.*",
	"$.body.given_back.*",
	"$.body.taken_back.*",
	"$.body.shortfall.*",
	"$.body.**.hourly_budget.*",
	"$.body.contents.*.*",
	"$.body.**.contents.*.*",
	"$.body.grants.*.*",
	"$.body.**.grants.*.*",
	"$.body.**.metadata.**",
	"$.body.metadata.**",
	"$.body.localized.*",
	"$.body.**.localized.*",
	"$.body.events[*].data.**",
	"$.body.notifications[*].body.**",
	"$.body.entries[*].before.**",
	"$.body.entries[*].after.**",
	"$.body.changes[*].fields[*].before.**",
	"$.body.changes[*].fields[*].after.**",
	"$.body.checks[*].detail[*].**",
}

type openAPISpec struct {
	doc   libopenapi.Document
	model *v3.Document
	// mu serializes the validator: libopenapi renders schemas lazily and
	// writes shared model state as it does (a data race under -race when
	// parallel tests validate at once).
	mu        sync.Mutex
	validator validator.Validator
}

var (
	specOnce   sync.Once
	loadedSpec *openAPISpec
	specErr    error
)

// spec loads and builds docs/openapi.yaml once per test binary.
func spec(t testing.TB) *openAPISpec {
	t.Helper()
	specOnce.Do(func() {
		b, err := os.ReadFile(specPath)
		if err != nil {
			specErr = err
			return
		}
		doc, err := libopenapi.NewDocument(b)
		if err != nil {
			specErr = fmt.Errorf("parse %s: %w", specPath, err)
			return
		}
		m, err := doc.BuildV3Model()
		if err != nil {
			specErr = fmt.Errorf("build %s: %w", specPath, err)
			return
		}
		v, errs := validator.NewValidator(doc,
			// Compile each schema pattern once, not on every check.
			config.WithRegexCache(&sync.Map{}),
			config.WithFormatAssertions(),
			// Strict mode reports headers and body members the spec does
			// not declare, even where additionalProperties allows them.
			config.WithStrictMode(),
			config.WithStrictIgnorePaths(strictIgnorePaths...),
			config.WithStrictIgnoredHeaders(append(slices.Clone(genericResponseHeaders),
				// Request headers every client sends; the operation
				// declares its own (Idempotency-Key, If-Match, ...).
				"authorization", "accept", "user-agent", "host", "accept-encoding", "x-forwarded-for")...),
		)
		if len(errs) > 0 {
			specErr = fmt.Errorf("validator for %s: %v", specPath, errs)
			return
		}
		loadedSpec = &openAPISpec{doc: doc, model: &m.Model, validator: v}
	})
	if specErr != nil {
		t.Fatal(specErr)
	}
	return loadedSpec
}

// specChecks collects one env's exchanges until its test ends.
type specChecks struct {
	mu sync.Mutex
	xs []exchange
}

func (c *specChecks) add(x exchange) {
	c.mu.Lock()
	c.xs = append(c.xs, x)
	c.mu.Unlock()
}

// checkSpecAtEnd makes e keep every exchange env.send makes and check them
// all against docs/openapi.yaml when t ends, failing t on a mismatch.
// Checking at the end keeps the validator's time (tens of milliseconds a
// request under -race) out of tests that measure time. Benchmarks are not
// checked: they measure the server, not the validator; a fuzz target checks
// each exchange itself (env.sendChecked).
func (e *env) checkSpecAtEnd(t testing.TB) {
	switch t.(type) {
	case *testing.B, *testing.F:
		return
	}
	e.checks = &specChecks{}
	t.Cleanup(func() {
		e.checks.mu.Lock()
		xs := e.checks.xs
		e.checks.xs = nil
		e.checks.mu.Unlock()
		for _, x := range xs {
			reportMismatches(t, x)
		}
	})
}

func reportMismatches(t testing.TB, x exchange) {
	t.Helper()
	key := x.key()
	if _, ok := matched.Load(key); ok {
		return
	}
	problems := spec(t).checkExchange(x)
	for _, p := range problems {
		t.Errorf("openapi: %s %s: %s", x.method, x.path, p)
	}
	if len(problems) == 0 {
		matched.Store(key, struct{}{})
	}
}

// matched holds the keys of exchanges that matched the spec. Tests repeat
// many exchanges byte for byte (every env starts with GET /healthz; the
// catalog is read hundreds of times), and the check is a function of the
// exchange, so each distinct one is checked once per test binary.
var matched sync.Map

// key identifies an exchange for matched: everything the check reads,
// except the values of headers that differ on every request (the request
// id, which must only be present and of a valid length, and the date).
func (x exchange) key() [sha256.Size]byte {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", x.method, x.path)
	writeHeader := func(hdr http.Header) {
		names := slices.Sorted(maps.Keys(hdr))
		for _, name := range names {
			vals := hdr[name]
			switch http.CanonicalHeaderKey(name) {
			case "X-Request-Id":
				if len(vals) == 1 && len(vals[0]) >= 1 && len(vals[0]) <= 128 {
					vals = []string{"(valid)"}
				}
			case "Date":
				vals = []string{"(date)"}
			}
			fmt.Fprintf(h, "%s: %q\n", name, vals)
		}
		h.Write([]byte{0})
	}
	writeHeader(x.reqHeader)
	fmt.Fprintf(h, "%d:", len(x.reqBody))
	h.Write(x.reqBody)
	fmt.Fprintf(h, "\n%d\n", x.resp.status)
	writeHeader(x.resp.header)
	h.Write(x.resp.body)
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// exchange is one request and its response, bodies read.
type exchange struct {
	method, path string
	reqHeader    http.Header
	reqBody      []byte
	resp         response
}

// checkExchange returns why the exchange does not match the spec, or nil.
//
// The response must always match the operation's declared responses:
// status, headers (declared, valid, and nothing undeclared) and body. A
// request the spec says is invalid must be refused with a 4xx: tests send
// such requests on purpose, and the spec and server must agree they are bad.
// A request to a route the spec does not have must get 404 not_found (or
// 401/403 where authentication runs before routing).
func (s *openAPISpec) checkExchange(x exchange) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	req := x.request()
	var problems []string
	_, reqErrs := s.validator.ValidateHttpRequestSync(req)
	unknown := !s.exactRoute(req)
	for _, e := range reqErrs {
		unknown = unknown || e.IsPathMissingError() || e.IsOperationMissingError()
	}
	if unknown {
		switch x.resp.status {
		case http.StatusNotFound, http.StatusUnauthorized, http.StatusForbidden:
			return nil
		}
		return []string{fmt.Sprintf("no operation in the spec, but the server answered %s", x.resp)}
	}
	// OpenAPI does not forbid parameters an operation does not declare, and
	// tests send some on purpose (a player id in the query, to show it is
	// ignored); strict mode reports them, but a server may ignore them.
	reqErrs = slices.DeleteFunc(reqErrs, func(e *vErrors.ValidationError) bool {
		return e.ValidationType == vErrors.StrictValidationType &&
			(e.ValidationSubType == vErrors.StrictSubTypeHeader || e.ValidationSubType == vErrors.StrictSubTypeQuery)
	})
	if len(reqErrs) > 0 && (x.resp.status < 400 || x.resp.status >= 500) {
		problems = append(problems, fmt.Sprintf("the spec refuses the request (%s) but the server answered %d",
			joinErrors(reqErrs), x.resp.status))
	}
	httpResp := &http.Response{
		StatusCode: x.resp.status,
		Header:     x.resp.header,
		Body:       io.NopCloser(bytes.NewReader(x.resp.body)),
		Request:    req,
	}
	if ok, errs := s.validator.ValidateHttpResponse(x.request(), httpResp); !ok {
		problems = append(problems, fmt.Sprintf("response %d does not match the spec: %s", x.resp.status, joinErrors(errs)))
	}
	return problems
}

// exactRoute reports whether the request's path is one of the spec's
// templates exactly: the validator forgives a trailing slash and collapses
// doubled ones, but the server (StrictRouting, CaseSensitive) does not.
func (s *openAPISpec) exactRoute(req *http.Request) bool {
	_, errs, template := paths.FindPath(req, s.model, nil)
	if len(errs) > 0 || template == "" {
		return false
	}
	got, want := strings.Split(req.URL.EscapedPath(), "/"), strings.Split(template, "/")
	if len(got) != len(want) {
		return false
	}
	for i := range want {
		if param := strings.HasPrefix(want[i], "{") && strings.HasSuffix(want[i], "}"); param {
			if got[i] == "" {
				return false
			}
		} else if got[i] != want[i] {
			return false
		}
	}
	return true
}

// operation names the spec's operation for req, like "GET /v1/catalog".
func (s *openAPISpec) operation(req *http.Request) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	item, errs, template := paths.FindPath(req, s.model, nil)
	if item == nil || len(errs) > 0 {
		return "", false
	}
	return req.Method + " " + template, true
}

// eachOperation calls f with every operation of the spec.
func (s *openAPISpec) eachOperation(f func(name string, op *v3.Operation)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for path, item := range s.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			f(strings.ToUpper(method)+" "+path, op)
		}
	}
}

func (x exchange) request() *http.Request {
	req, err := http.NewRequest(x.method, "http://127.0.0.1:8080"+x.path, bytes.NewReader(x.reqBody))
	if err != nil {
		panic(err)
	}
	req.Header = x.reqHeader.Clone()
	// The spec's description says JSON bodies may come without a
	// Content-Type or as any */*+json type; its requestBody content lists
	// application/json only, so validate such bodies as that.
	if ct := req.Header.Get("Content-Type"); len(x.reqBody) > 0 && (ct == "" || strings.HasSuffix(strings.SplitN(ct, ";", 2)[0], "+json")) {
		req.Header.Set("Content-Type", "application/json")
	}
	if len(x.reqBody) == 0 {
		req.Body = http.NoBody
	}
	return req
}

func joinErrors(errs []*vErrors.ValidationError) string {
	var parts []string
	for _, e := range errs {
		s := e.Message
		if e.Reason != "" {
			s += ": " + e.Reason
		}
		for _, se := range e.SchemaValidationErrors {
			s += fmt.Sprintf(" [%s: %s]", se.FieldPath, se.Reason)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// TestOpenAPISpecIsValid builds docs/openapi.yaml with libopenapi (an error
// fails it), validates it against the OpenAPI 3.1 meta-schema, and checks
// the promises its description makes about every operation: each takes
// X-Request-Id and each response declares it, and each 401 declares
// WWW-Authenticate.
func TestOpenAPISpecIsValid(t *testing.T) {
	t.Parallel()
	s := spec(t)
	s.mu.Lock()
	defer s.mu.Unlock()
	if v := s.doc.GetVersion(); !strings.HasPrefix(v, "3.1") {
		t.Errorf("openapi version %q, want 3.1.x", v)
	}
	if ok, errs := s.validator.ValidateDocument(); !ok {
		t.Errorf("not valid OpenAPI: %s", joinErrors(errs))
	}
	if l := s.model.Info.License; l == nil || l.Identifier != "Apache-2.0" {
		t.Errorf("info.license = %+v, want SPDX identifier Apache-2.0", l)
	}
	for path, item := range s.model.Paths.PathItems.FromOldest() {
		for method, op := range item.GetOperations().FromOldest() {
			name := strings.ToUpper(method) + " " + path
			params := slices.Concat(item.Parameters, op.Parameters)
			if !slices.ContainsFunc(params, func(p *v3.Parameter) bool { return p.Name == "X-Request-Id" && p.In == "header" }) {
				t.Errorf("%s does not take the X-Request-Id header", name)
			}
			for code, resp := range op.Responses.Codes.FromOldest() {
				if resp.Headers == nil {
					t.Errorf("%s %s declares no headers (X-Request-Id at least)", name, code)
					continue
				}
				if h, ok := resp.Headers.Get("X-Request-Id"); !ok || !h.Required {
					t.Errorf("%s %s does not declare X-Request-Id as required", name, code)
				}
				if _, ok := resp.Headers.Get("WWW-Authenticate"); code == "401" && !ok {
					t.Errorf("%s 401 does not declare WWW-Authenticate", name)
				}
			}
		}
	}
}
