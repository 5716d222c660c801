package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func runCmd(t *testing.T, getenv map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, env(getenv), &out, &errb)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
	default:
		code = 1
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

func TestUnknownCommandPrintsUsage(t *testing.T) {
	_, stderr, code := runCmd(t, nil, "frobnicate")
	if code != 2 || !strings.Contains(stderr, "Usage:") {
		t.Fatalf("code %d, stderr %q", code, stderr)
	}
}

func TestTokenIsAValidPlayerJWT(t *testing.T) {
	secret := strings.Repeat("s", 32)
	stdout, stderr, code := runCmd(t, map[string]string{"COINOP_JWT_SECRET": secret}, "token", "--player", "p1", "--ttl", "2h")
	if code != 0 {
		t.Fatalf("code %d: %s", code, stderr)
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(strings.TrimSpace(stdout), &claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
	if err != nil || claims.Subject != "p1" {
		t.Fatalf("token %q: %v, sub %q", stdout, err, claims.Subject)
	}
	if ttl := time.Until(claims.ExpiresAt.Time); ttl < time.Hour || ttl > 2*time.Hour {
		t.Errorf("expires in %v, want about 2h", ttl)
	}
}

func TestTokenRefusesAShortSecretAndAMissingPlayer(t *testing.T) {
	if _, _, code := runCmd(t, map[string]string{"COINOP_JWT_SECRET": "short"}, "token", "--player", "p1"); code == 0 {
		t.Error("a short secret was accepted")
	}
	if _, _, code := runCmd(t, map[string]string{"COINOP_JWT_SECRET": strings.Repeat("s", 32)}, "token"); code == 0 {
		t.Error("a token without --player was printed")
	}
}

func TestCatalogValidate(t *testing.T) {
	stdout, stderr, code := runCmd(t, nil, "catalog", "validate", "../../examples/catalog.yaml")
	if code != 0 || !strings.Contains(stdout, "valid") {
		t.Fatalf("example catalog: code %d, %s%s", code, stdout, stderr)
	}
	bad := filepath.Join(t.TempDir(), "bad.json")
	doc := `{"currencies":[{"id":"gold","name":"Gold"}],"items":[{"id":"sword","name":"Sword","kind":"durable","prices":[{"currency":"gld","amount":0}]}]}`
	if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCmd(t, nil, "catalog", "validate", bad)
	if code != 1 || !strings.Contains(stderr, `items[0].prices[0].currency`) || !strings.Contains(stderr, `items[0].prices[0].amount`) {
		t.Fatalf("invalid catalog: code %d, stderr %q", code, stderr)
	}
}

// The README's configuration table must list every setting with its default.
func TestReadmeDocumentsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	for _, s := range settings {
		line := ""
		for _, l := range strings.Split(string(readme), "\n") {
			if strings.Contains(l, "`"+s.env+"`") && strings.HasPrefix(strings.TrimSpace(l), "|") {
				line = l
				break
			}
		}
		if line == "" {
			t.Errorf("README has no configuration row for %s", s.env)
			continue
		}
		if s.def != "" && !strings.Contains(line, s.def) {
			t.Errorf("README row for %s does not show the default %q: %s", s.env, s.def, line)
		}
	}
}

// `coinop keys` (like every command that talks to Postgres) and `make dev`
// must meet in one database without settings, and dev's public credentials
// must not listen beyond loopback.
func TestDevAndTheDatabaseCommandsShareDefaults(t *testing.T) {
	var defaultURL, defaultAddr string
	for _, s := range settings {
		switch s.env {
		case "COINOP_DATABASE_URL":
			defaultURL = s.def
		case "COINOP_ADDR":
			defaultAddr = s.def
		}
	}
	u, err := url.Parse(defaultURL)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimPrefix(u.Path, "/"); got != devDatabase {
		t.Errorf("the default COINOP_DATABASE_URL names database %q, dev uses %q: `coinop keys create` after `make dev` would miss it", got, devDatabase)
	}
	if host, _, _ := net.SplitHostPort(devAddr); host != "127.0.0.1" {
		t.Errorf("dev listens on %q, want loopback only", devAddr)
	}
	if defaultAddr != ":8080" {
		t.Errorf("serve's default address = %q, want :8080", defaultAddr)
	}
}
