// Package console is coinop's web console for designers and support: plain
// HTML, CSS and ES-module JavaScript with no build step, embedded in the
// binary, so `go build` needs no Node and what is served is what is in the
// repository. server serves it at /console; the page talks to the admin API
// with the key the user signs in with, kept in sessionStorage only.
//
// console holds files only: it must not import any other coinop package.
package console

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// Files returns the console's files (index.html, app.js, ...) at the root.
func Files() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}
