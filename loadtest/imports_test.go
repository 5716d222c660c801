package loadtest

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImportsNothingFromTheModule keeps the load tester a black box: it
// must reach the server over HTTP only, never through shared code that
// could make a server bug agree with itself.
func TestImportsNothingFromTheModule(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		parsed, err := parser.ParseFile(fset, f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/coinop/coinop" || strings.HasPrefix(path, "github.com/coinop/coinop/") {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
