package catalog

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"testing"
	"time"

	"sigs.k8s.io/yaml"
)

// FuzzParse checks that Parse and Validate never panic, that every failure is
// a *ParseError or *ValidationError, and that a catalog which parses and
// validates survives the trip through canonical JSON, through YAML, and into a
// Snapshot unchanged. Run it with
//
//	go test ./catalog -run '^$' -fuzz FuzzParse -fuzztime 2m
//
// New failing inputs land in testdata/fuzz/FuzzParse and become regression
// tests.
func FuzzParse(f *testing.F) {
	for _, seed := range []struct {
		file string
		yaml bool
	}{
		{"testdata/catalog.json", false},
		{"testdata/catalog.yaml", true},
		{"../examples/catalog.yaml", true},
	} {
		data, err := os.ReadFile(seed.file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, seed.yaml)
	}
	// The same documents in the other format: JSON is YAML, and YAML seeds
	// given to the JSON parser exercise its error paths.
	f.Add([]byte(`{"currencies":[{"id":"g","name":"G"}]}`), true)
	f.Add([]byte(`{"currencies":[{"id":"g","name":"G"}],"items":[{"id":"a","name":"A","kind":"consumable","prices":[{"currency":"g","amount":1}],"max_per_player":3,"available_from":"2026-01-01T00:00:00+05:30"}]}`), false)
	f.Add([]byte(`{"bundles":[{"contents":{"items":{"a":1,"a":2}}}]}`), false)
	f.Add([]byte(`{"items":[{"prices":[{"amount":1e3}]}]}`), false)
	f.Add([]byte("a: &a [x, *a]\n"), true)
	f.Add([]byte("currencies: [{id: \"\\u0000\", name: \"\\t\"}]\n"), true)
	f.Add([]byte(`{} {}`), false)
	f.Add([]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[`), false)

	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		format := FormatJSON
		if isYAML {
			format = FormatYAML
		}
		c, err := Parse(data, format)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error is %T, want *ParseError: %v", err, err)
			}
			if c != nil {
				t.Fatal("Parse returned a catalog with an error")
			}
			return
		}
		if err := Validate(c); err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || len(ve.Problems) == 0 {
				t.Fatalf("Validate error is %T with no problems: %v", err, err)
			}
			return
		}

		doc, err := encode(c)
		if err != nil {
			t.Fatalf("a valid catalog does not encode: %v", err)
		}
		// parseJSON, not Parse: a canonical form that grew past
		// MaxDocumentSize must still read back.
		again, err := parseJSON(doc, doc, FormatJSON)
		if err != nil {
			t.Fatalf("canonical JSON does not parse: %v\n%s", err, doc)
		}
		if !reflect.DeepEqual(c, again) {
			t.Fatalf("JSON round trip changed the catalog:\nbefore %+v\nafter  %+v", c, again)
		}
		if err := Validate(again); err != nil {
			t.Fatalf("round-tripped catalog is invalid: %v", err)
		}

		y, err := yaml.JSONToYAML(doc)
		if err != nil {
			t.Fatalf("JSONToYAML: %v", err)
		}
		fromYAML, err := Parse(y, FormatYAML)
		if err != nil {
			t.Fatalf("the YAML form does not parse: %v\n%s", err, y)
		}
		if !reflect.DeepEqual(c, fromYAML) {
			t.Fatalf("YAML round trip changed the catalog:\nbefore %+v\nafter  %+v", c, fromYAML)
		}

		s, err := NewSnapshot(1, time.Unix(0, 0), c)
		if err != nil {
			t.Fatalf("NewSnapshot: %v", err)
		}
		if !bytes.Equal(s.JSON(), doc) {
			t.Fatalf("Snapshot.JSON differs from the canonical encoding:\n%s\n%s", s.JSON(), doc)
		}
	})
}
