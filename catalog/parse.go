package catalog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"sigs.k8s.io/yaml"
)

// MaxDocumentSize is the largest catalog document Parse accepts, in bytes,
// before and after YAML conversion. A large real catalog is a few hundred
// KiB; the limit keeps a hostile upload from costing much memory or CPU.
const MaxDocumentSize = 4 << 20

// maxConvertedSize bounds YAML once converted to JSON. JSON quotes every key
// and string, so a YAML document near MaxDocumentSize can legitimately grow;
// anchors and aliases can grow it without bound, which yaml.v2 only partly
// guards against.
const maxConvertedSize = 2 * MaxDocumentSize

// Format is the syntax of a catalog document.
type Format string

// Formats Parse accepts.
const (
	FormatJSON Format = "json"
	FormatYAML Format = "yaml"
)

// FormatFromContentType maps an HTTP Content-Type (parameters such as charset
// allowed) to a Format. It returns false for anything else.
func FormatFromContentType(ct string) (Format, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", false
	}
	switch mt { // ParseMediaType lower-cases the media type.
	case "application/json":
		return FormatJSON, true
	case "application/yaml", "application/x-yaml", "text/yaml":
		return FormatYAML, true
	}
	return "", false
}

// ParseError says why a document could not be read as a Catalog.
type ParseError struct {
	Format Format
	// Path locates the problem in the document, like "items[1].prices[0]";
	// empty for the document as a whole.
	Path string
	// Line and Column (1-based, column in characters) locate the problem in
	// the input; 0 when unknown. YAML documents are checked after conversion
	// to JSON, so only YAML syntax errors carry a line.
	Line, Column int
	Message      string
}

func (e *ParseError) Error() string {
	var b strings.Builder
	b.WriteString("catalog: invalid ")
	b.WriteString(strings.ToUpper(string(e.Format)))
	b.WriteString(" document: ")
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d", e.Line)
		if e.Column > 0 {
			fmt.Fprintf(&b, ", column %d", e.Column)
		}
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Message)
	return b.String()
}

// Parse reads a catalog document strictly: unknown or duplicate fields, values
// of the wrong type, anything after the document, and documents larger than
// MaxDocumentSize are rejected. YAML is converted to JSON first, so both
// formats go through the same checks. Times are normalized to UTC.
//
// Parse does not validate the catalog; call Validate for that. Every failure
// is a *ParseError. Parse never panics.
func Parse(data []byte, format Format) (*Catalog, error) {
	switch format {
	case FormatJSON:
		if len(data) > MaxDocumentSize {
			return nil, tooLarge(FormatJSON)
		}
		// Editors on Windows like to start files with a byte order mark,
		// which JSON does not allow and which carries no meaning here.
		data = bytes.TrimPrefix(data, []byte("\ufeff"))
		return parseJSON(data, data, FormatJSON)
	case FormatYAML:
		if len(data) > MaxDocumentSize {
			return nil, tooLarge(FormatYAML)
		}
		js, err := yamlToJSON(data)
		if err != nil {
			return nil, err
		}
		// Positions in the converted JSON mean nothing to whoever wrote the
		// YAML, so errors past this point carry a path but no line.
		return parseJSON(js, nil, FormatYAML)
	default:
		return nil, &ParseError{Format: format, Message: fmt.Sprintf("unknown format %q", string(format))}
	}
}

func tooLarge(f Format) *ParseError {
	return &ParseError{Format: f, Message: fmt.Sprintf("document is larger than %d bytes", MaxDocumentSize)}
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// yamlError turns the YAML library's messages, such as
// "yaml: unmarshal errors:\n  line 2: key \"x\" already set in map", into a
// ParseError with the first line number in Line.
func yamlError(err error) *ParseError {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.TrimPrefix(msg, "unmarshal errors:\n")
	lines := strings.Split(msg, "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	msg = strings.Join(lines, "; ")
	pe := &ParseError{Format: FormatYAML, Message: msg}
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		pe.Line, _ = strconv.Atoi(m[1])
		pe.Message = msg[len(m[0]):]
	}
	return pe
}

func yamlToJSON(data []byte) (js []byte, err error) {
	// The YAML decoder is third-party code fed untrusted input, and YAML
	// parsers have panicked on malformed documents before (CVE-2022-28948).
	// Parse promises an error, not a crash.
	defer func() {
		if r := recover(); r != nil {
			js, err = nil, &ParseError{Format: FormatYAML, Message: "malformed YAML"}
		}
	}()
	// The strict variant rejects duplicate keys, as the JSON path does.
	js, err = yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, yamlError(err)
	}
	if len(js) > maxConvertedSize {
		return nil, &ParseError{Format: FormatYAML, Message: fmt.Sprintf("document is larger than %d bytes once converted to JSON", maxConvertedSize)}
	}
	return js, nil
}

// parseJSON checks data against the Catalog shape, then decodes it. src is
// the text positions refer to (nil when data was converted from YAML).
//
// It applies no size limit: Parse limits what users send, while documents
// this package wrote itself (stored versions, canonical copies) must always
// read back, even if their canonical form came out a little larger.
func parseJSON(data, src []byte, format Format) (*Catalog, error) {
	// encoding/json matches field names case-insensitively, keeps the last of
	// duplicate keys, and reports unknown fields without saying where. The
	// walk below checks the exact shape first so that a designer's mistake
	// comes back with a path and a line; the decode after it only fills in
	// the values.
	var c Catalog
	if err := decodeShaped(data, src, format, &c, "the document must be an object with currencies, items, bundles and store_products"); err != nil {
		return nil, err
	}
	normalize(&c)
	return &c, nil
}

// decodeShaped checks data against the shape of *v (a pointer to a struct),
// then decodes it into v. notObject is the message when data is not a JSON
// object.
func decodeShaped(data, src []byte, format Format, v any, notObject string) error {
	sc := &shapeChecker{dec: json.NewDecoder(bytes.NewReader(data)), src: src, format: format}
	sc.dec.UseNumber()
	if err := sc.document(reflect.TypeOf(v).Elem(), notObject); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// Unreachable unless the shape check and encoding/json disagree;
		// still an error, never a panic.
		pe := &ParseError{Format: format, Message: strings.TrimPrefix(err.Error(), "json: ")}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && src != nil {
			pe.Line, pe.Column = position(src, te.Offset)
		}
		return pe
	}
	return nil
}

var (
	timeType = reflect.TypeFor[time.Time]()
	// fieldCache maps a struct type to its JSON field names and types.
	fieldCache sync.Map // reflect.Type → map[string]reflect.Type
)

// shapeChecker walks the JSON tokens alongside the Catalog type. Its
// recursion follows the Go type, which is a few levels deep, so hostile
// nesting cannot exhaust the stack: the first token of the wrong kind ends
// the walk.
type shapeChecker struct {
	dec    *json.Decoder
	src    []byte
	format Format
}

// document checks a whole document, an object of type root.
func (s *shapeChecker) document(root reflect.Type, notObject string) error {
	tok, err := s.dec.Token()
	if err == io.EOF {
		return &ParseError{Format: s.format, Message: "document is empty"}
	}
	if err != nil {
		return s.tokenErr(err, "")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return s.errAt("", notObject)
	}
	if err := s.object(root, ""); err != nil {
		return err
	}
	// Point at the first byte after the document, whatever it is: the
	// decoder's own offsets for trailing garbage are not reliable.
	end := s.dec.InputOffset()
	if _, err := s.dec.Token(); err == io.EOF {
		return nil
	}
	if s.src != nil {
		for end < int64(len(s.src)) && isSpace(s.src[end]) {
			end++
		}
	}
	return s.errAtOffset(end, "", "unexpected data after the document")
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// value checks the next value against t.
func (s *shapeChecker) value(t reflect.Type, path string) error {
	tok, err := s.dec.Token()
	if err != nil {
		return s.tokenErr(err, path)
	}
	if tok == nil {
		// null leaves the zero value, which Validate then judges; that
		// gives a clearer message ("name is required") than a type error.
		return nil
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == timeType:
		str, ok := tok.(string)
		if !ok {
			return s.errAt(path, "expected a time like \"2026-01-01T00:00:00Z\", got "+describe(tok))
		}
		var tm time.Time
		if err := tm.UnmarshalText([]byte(str)); err != nil {
			return s.errAt(path, fmt.Sprintf("invalid time %q: use RFC 3339, like \"2026-01-01T00:00:00Z\"", str))
		}
		return nil
	case t.Kind() == reflect.String:
		if _, ok := tok.(string); !ok {
			return s.errAt(path, "expected a string, got "+describe(tok))
		}
		return nil
	case t.Kind() == reflect.Bool:
		if _, ok := tok.(bool); !ok {
			return s.errAt(path, "expected true or false, got "+describe(tok))
		}
		return nil
	case t.Kind() == reflect.Int64:
		n, ok := tok.(json.Number)
		if !ok {
			return s.errAt(path, "expected an integer, got "+describe(tok))
		}
		if _, err := strconv.ParseInt(string(n), 10, 64); err != nil {
			if errors.Is(err, strconv.ErrRange) {
				return s.errAt(path, fmt.Sprintf("integer %s is out of range", n))
			}
			return s.errAt(path, fmt.Sprintf("expected an integer, got %s", n))
		}
		return nil
	case t.Kind() == reflect.Struct || t.Kind() == reflect.Map:
		if d, ok := tok.(json.Delim); !ok || d != '{' {
			return s.errAt(path, "expected an object, got "+describe(tok))
		}
		return s.object(t, path)
	case t.Kind() == reflect.Slice:
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return s.errAt(path, "expected a list, got "+describe(tok))
		}
		for i := 0; s.dec.More(); i++ {
			if err := s.value(t.Elem(), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		return s.closing(path)
	case t.Kind() == reflect.Interface:
		// Free-form JSON (Metadata values): any value, read through.
		return s.skip(tok, path)
	default:
		// Only reachable if a field of a new type is added to Catalog
		// without teaching the checker about it.
		return s.errAt(path, fmt.Sprintf("unsupported field type %s", t))
	}
}

// object checks the members of an object whose '{' was just read.
func (s *shapeChecker) object(t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	if t.Kind() == reflect.Struct {
		fields = structFields(t)
	}
	seen := make(map[string]bool)
	for s.dec.More() {
		tok, err := s.dec.Token()
		if err != nil {
			return s.tokenErr(err, path)
		}
		key, ok := tok.(string)
		if !ok { // The decoder guarantees a string key; be safe anyway.
			return s.errAt(path, "expected a field name, got "+describe(tok))
		}
		if seen[key] {
			return s.errAt(path, fmt.Sprintf("duplicate field %q", key))
		}
		seen[key] = true
		var ft reflect.Type
		var child string
		if fields != nil {
			if ft, ok = fields[key]; !ok {
				return s.errAt(path, fmt.Sprintf("unknown field %q", key))
			}
			child = joinField(path, key)
		} else {
			ft, child = t.Elem(), joinKey(path, key)
		}
		if err := s.value(ft, child); err != nil {
			return err
		}
	}
	return s.closing(path)
}

// skip reads the rest of a free-form value whose first token was tok. It
// counts nesting instead of recursing, so hostile depth costs no stack.
func (s *shapeChecker) skip(tok json.Token, path string) error {
	depth := 0
	for {
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				depth++
			default:
				depth--
			}
		}
		if depth == 0 {
			return nil
		}
		var err error
		if tok, err = s.dec.Token(); err != nil {
			return s.tokenErr(err, path)
		}
	}
}

func (s *shapeChecker) closing(path string) error {
	if _, err := s.dec.Token(); err != nil {
		return s.tokenErr(err, path)
	}
	return nil
}

func structFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldCache.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		sf := t.Field(i)
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if sf.Anonymous && name == "" && sf.Type.Kind() == reflect.Struct {
			// An embedded struct (Details): encoding/json promotes its
			// fields, and so does the shape.
			maps.Copy(fields, structFields(sf.Type))
			continue
		}
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fields[name] = sf.Type
	}
	fieldCache.Store(t, fields)
	return fields
}

func describe(tok json.Token) string {
	switch v := tok.(type) {
	case json.Delim:
		switch v {
		case '{':
			return "an object"
		case '[':
			return "a list"
		}
		return fmt.Sprintf("%q", rune(v))
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case nil:
		return "null"
	}
	return fmt.Sprintf("%T", tok)
}

func (s *shapeChecker) tokenErr(err error, path string) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return s.errAtOffset(se.Offset, path, strings.TrimPrefix(se.Error(), "json: "))
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return s.errAtOffset(int64(len(s.src)), path, "unexpected end of document")
	}
	return &ParseError{Format: s.format, Path: path, Message: err.Error()}
}

// errAt reports a problem with the token just read.
func (s *shapeChecker) errAt(path, msg string) error {
	return s.errAtOffset(tokenStart(s.src, s.dec.InputOffset()), path, msg)
}

func (s *shapeChecker) errAtOffset(off int64, path, msg string) error {
	pe := &ParseError{Format: s.format, Path: path, Message: msg}
	if s.src != nil {
		pe.Line, pe.Column = position(s.src, off)
	}
	return pe
}

// tokenStart steps back from end, the offset just past a token, to where the
// token starts, so a position points at the offending value rather than after
// it.
func tokenStart(src []byte, end int64) int64 {
	if end <= 0 || end > int64(len(src)) {
		return end
	}
	i := end - 1
	switch c := src[i]; {
	case c == '"':
		// Find the opening quote: the nearest earlier quote not escaped by
		// an odd number of backslashes.
		for j := i - 1; j >= 0; j-- {
			if src[j] != '"' {
				continue
			}
			k := j - 1
			for k >= 0 && src[k] == '\\' {
				k--
			}
			if (j-k-1)%2 == 0 {
				return j
			}
		}
		return i
	case isLiteralByte(c):
		for i > 0 && isLiteralByte(src[i-1]) {
			i--
		}
		return i
	default:
		return i
	}
}

func isLiteralByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.'
}

// position converts a byte offset into a 1-based line and column, counting
// the column in characters.
func position(src []byte, off int64) (line, col int) {
	if off < 0 {
		off = 0
	}
	if off > int64(len(src)) {
		off = int64(len(src))
	}
	before := src[:off]
	line = 1 + bytes.Count(before, []byte("\n"))
	lineStart := bytes.LastIndexByte(before, '\n') + 1
	return line, 1 + utf8.RuneCount(before[lineStart:])
}

// joinField and joinKey build paths like items[1].contents.items.sword.
func joinField(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// joinKey appends a map key, quoting it when it would make the path
// ambiguous (a dot, a bracket, or anything that is not a plain id).
func joinKey(path, key string) string {
	if validID(key) && !strings.Contains(key, ".") {
		return joinField(path, key)
	}
	return path + "[" + strconv.Quote(key) + "]"
}
