package main

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
	"strings"
	"time"

	"github.com/coinop/coinop/catalog"
)

func runCatalog(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: coinop catalog validate FILE | push [--url URL] [--admin-token T] [--note N] FILE")
		return exitError{2}
	}
	switch args[0] {
	case "validate":
		return catalogValidate(args[1:], stdout, stderr)
	case "push":
		return catalogPush(ctx, args[1:], getenv, stdout, stderr)
	}
	fmt.Fprintf(stderr, "coinop catalog: unknown subcommand %q\n", args[0])
	return exitError{2}
}

func formatOf(path string) catalog.Format {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return catalog.FormatYAML
	}
	return catalog.FormatJSON
}

// readCatalog parses and validates a file, printing every problem.
func readCatalog(path string, stderr io.Writer) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
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
		return nil, exitError{1}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", path, err)
		return nil, exitError{1}
	}
	return data, nil
}

func catalogValidate(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: coinop catalog validate FILE")
		return exitError{2}
	}
	if _, err := readCatalog(args[0], stderr); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: valid\n", args[0])
	return nil
}

func catalogPush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("catalog push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	baseURL := fs.String("url", envOr(getenv, "COINOP_URL", "http://127.0.0.1:8080"), "coinop base URL (env COINOP_URL)")
	token := fs.String("admin-token", "", "admin token (default: env COINOP_ADMIN_TOKEN)")
	note := fs.String("note", "", "note recorded with the published version")
	if err := fs.Parse(args); err != nil {
		return exitError{2}
	}
	if *token == "" {
		*token = getenv("COINOP_ADMIN_TOKEN")
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "usage: coinop catalog push [flags] FILE")
		return exitError{2}
	}
	path := fs.Arg(0)
	data, err := readCatalog(path, stderr)
	if err != nil {
		return err
	}
	endpoint := strings.TrimRight(*baseURL, "/") + "/admin/v1/catalog"
	if *note != "" {
		endpoint += "?note=" + url.QueryEscape(*note)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, endpoint, bytes.NewReader(data))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	if formatOf(path) == catalog.FormatYAML {
		req.Header.Set("Content-Type", "application/yaml")
	} else {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("catalog push: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusCreated {
		fmt.Fprintf(stderr, "catalog push: %s\n%s\n", resp.Status, body)
		return exitError{1}
	}
	var out struct {
		Version int64 `json:"version"`
	}
	_ = json.Unmarshal(body, &out)
	fmt.Fprintf(stdout, "published version %d\n", out.Version)
	return nil
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}
