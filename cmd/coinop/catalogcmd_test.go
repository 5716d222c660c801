package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/entitlements"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/server"
)

const cliAdminToken = "cli-test-admin-token"

// startServer serves the API over a fresh database on a loopback port and
// returns its base URL and the database URL.
func startServer(t *testing.T) (baseURL, dbURL string) {
	t.Helper()
	dbURL = testenv.NewDatabase(t)
	rdb, _ := testenv.RedisClient(t)
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	store := catalog.NewStore(pool)
	live := catalog.NewLive(store)
	srv := server.New(server.Config{JWTSecret: []byte(strings.Repeat("s", 32)), AdminToken: cliAdminToken},
		server.Deps{Ledger: entitlements.New(pool, live), Catalogs: store, Live: live, DB: pool, Redis: rdb})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.App().Listener(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return "http://" + ln.Addr().String(), dbURL
}

// TestCatalogCLI runs the designers' loop with the CLI as a CI pipeline
// would, checking output and exit codes at each step.
func TestCatalogCLI(t *testing.T) {
	t.Parallel()
	base, _ := startServer(t)
	vars := map[string]string{"COINOP_URL": base, "COINOP_ADMIN_TOKEN": cliAdminToken}
	dir := t.TempDir()
	example := "../../examples/catalog.yaml"
	step := func(t *testing.T, wantCode int, args ...string) (string, string) {
		t.Helper()
		stdout, stderr, code := runCmd(t, vars, args...)
		if code != wantCode {
			t.Fatalf("coinop %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, wantCode, stdout, stderr)
		}
		return stdout, stderr
	}

	out, _ := step(t, 0, "catalog", "push", example)
	if strings.TrimSpace(out) != `draft "draft-1"` {
		t.Errorf("push printed %q", out)
	}
	out, _ = step(t, 1, "catalog", "diff", "--exit-code")
	if !strings.Contains(out, "+ items/sword") || !strings.Contains(out, "against version 0") {
		t.Errorf("diff printed:\n%s", out)
	}
	step(t, 0, "catalog", "validate", "--draft")
	out, _ = step(t, 0, "catalog", "publish", "--note", "launch", "--if-match", `"draft-1"`)
	if strings.TrimSpace(out) != "published version 1" {
		t.Errorf("publish printed %q", out)
	}
	out, _ = step(t, 0, "catalog", "diff", "--exit-code")
	if !strings.Contains(out, "no changes against version 1") {
		t.Errorf("diff after publish printed %q", out)
	}

	t.Run("pull writes the live catalog, the draft or a version, as YAML or JSON", func(t *testing.T) {
		want, err := catalog.Parse(mustRead(t, example), catalog.FormatYAML)
		if err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"-o", filepath.Join(dir, "live.yaml")},
			{"-o", filepath.Join(dir, "live.json")},
			{"--draft", "-o", filepath.Join(dir, "draft.yml")},
			{"--version", "1", "--format", "json", "-o", filepath.Join(dir, "v1.txt")},
		} {
			step(t, 0, append([]string{"catalog", "pull"}, args...)...)
			path := args[len(args)-1]
			f := formatOf(path)
			if strings.Contains(strings.Join(args, " "), "--format json") {
				f = catalog.FormatJSON
			}
			got, err := catalog.Parse(mustRead(t, path), f)
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("pull %v: %v; does not round-trip", args, err)
			}
		}
		out, _ := step(t, 0, "catalog", "pull")
		if !strings.HasPrefix(out, "currencies:\n- id: gold\n") {
			t.Errorf("pull to stdout is YAML in document order:\n%s", out)
		}
		out, errOut := step(t, 0, "catalog", "pull", "--locale", "fr-CA")
		if !strings.Contains(out, "name: Bouclier de chêne") || strings.Contains(out, "localized:") || !strings.Contains(errOut, "in locale fr") {
			t.Errorf("pull --locale fr-CA printed:\n%s\n%s", errOut, out)
		}
		step(t, 2, "catalog", "pull", "--draft", "--locale", "fr")
	})

	t.Run("an invalid file is not pushed and exits 1", func(t *testing.T) {
		bad := filepath.Join(dir, "bad.yaml")
		doc := strings.Replace(string(mustRead(t, example)), "amount: 500", "amount: 0", 1)
		if err := os.WriteFile(bad, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr := step(t, 1, "catalog", "push", bad)
		if !strings.Contains(stderr, "items[0].prices[0].amount") {
			t.Errorf("stderr = %q", stderr)
		}
		step(t, 0, "catalog", "diff", "--exit-code")
	})

	t.Run("a stale --if-match is a refusal, exit 3", func(t *testing.T) {
		_, stderr := step(t, 3, "catalog", "push", "--if-match", `"draft-0"`, example)
		if !strings.Contains(stderr, "412 precondition_failed") || !strings.Contains(stderr, `current ETag: "draft-1"`) {
			t.Errorf("stderr = %q", stderr)
		}
	})

	t.Run("schedule, conflict, rollback and versions", func(t *testing.T) {
		at := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
		out, _ := step(t, 0, "catalog", "publish", "--note", "weekend", "--at", at)
		if strings.TrimSpace(out) != "scheduled version 2 for "+at {
			t.Errorf("scheduled publish printed %q", out)
		}
		_, stderr := step(t, 3, "catalog", "rollback", "1")
		if !strings.Contains(stderr, "schedule_conflict") || !strings.Contains(stderr, "version 2 is scheduled for "+at) {
			t.Errorf("stderr = %q", stderr)
		}
		out, _ = step(t, 0, "catalog", "rollback", "--supersede-scheduled", "1")
		if strings.TrimSpace(out) != "published version 3" {
			t.Errorf("rollback printed %q", out)
		}
		out, _ = step(t, 0, "catalog", "versions")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 3 || !strings.Contains(lines[0], "3  live") || !strings.Contains(lines[0], "(rollback to 1)") ||
			!strings.Contains(lines[1], "2  superseded") || !strings.Contains(lines[2], "1  past") {
			t.Errorf("versions printed:\n%s", out)
		}
		out, _ = step(t, 0, "catalog", "versions", "--json")
		if !strings.HasPrefix(out, `{"versions":[`) {
			t.Errorf("versions --json printed %q", out)
		}
	})

	t.Run("a refused credential names the variable to set", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			vars map[string]string
			want []string
		}{
			{"a wrong key", map[string]string{"COINOP_URL": base, "COINOP_ADMIN_KEY": "coinop_ak_wrong"},
				[]string{"401 unauthenticated", "COINOP_ADMIN_KEY"}},
			{"no key at all", map[string]string{"COINOP_URL": base},
				[]string{"401 unauthenticated", "no Authorization header", "set COINOP_ADMIN_KEY"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, stderr, code := runCmd(t, tc.vars, "catalog", "diff")
				if code != 3 {
					t.Errorf("exit %d, want 3", code)
				}
				for _, w := range tc.want {
					if !strings.Contains(stderr, w) {
						t.Errorf("stderr %q does not mention %q", stderr, w)
					}
				}
			})
		}
	})

	t.Run("exit codes for CI", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			vars map[string]string
			args []string
			code int
		}{
			{"a wrong key", map[string]string{"COINOP_URL": base, "COINOP_ADMIN_KEY": "wrong"}, []string{"catalog", "diff"}, 3},
			{"no server", map[string]string{"COINOP_URL": "http://127.0.0.1:1", "COINOP_ADMIN_TOKEN": cliAdminToken}, []string{"catalog", "diff"}, 3},
			{"no file", vars, []string{"catalog", "push"}, 2},
			{"an unknown subcommand", vars, []string{"catalog", "frobnicate"}, 2},
			{"an unknown flag", vars, []string{"catalog", "diff", "--colour"}, 2},
			{"extra arguments", vars, []string{"catalog", "publish", "now"}, 2},
			{"a bad --at", vars, []string{"catalog", "publish", "--at", "saturday"}, 2},
			{"validate with nothing to validate", vars, []string{"catalog", "validate"}, 2},
			{"a rollback to a version that does not exist", vars, []string{"catalog", "rollback", "99"}, 3},
		} {
			t.Run(tc.name, func(t *testing.T) {
				if _, stderr, code := runCmd(t, tc.vars, tc.args...); code != tc.code {
					t.Errorf("exit %d, want %d: %s", code, tc.code, stderr)
				}
			})
		}
	})
}

// TestKeysCLI makes the first key straight in the database, uses it with
// the catalog CLI, lists it and revokes it.
func TestKeysCLI(t *testing.T) {
	t.Parallel()
	base, dbURL := startServer(t)
	db := map[string]string{"COINOP_DATABASE_URL": dbURL, "USER": "ops"}
	stdout, stderr, code := runCmd(t, db, "keys", "create", "--name", "ci", "--role", "editor", "--role", "publisher")
	key := strings.TrimSpace(stdout)
	if code != 0 || !strings.HasPrefix(key, "coinop_ak_") || !strings.Contains(stderr, `"ci" with roles editor,publisher`) {
		t.Fatalf("keys create: exit %d, %q, %q", code, stdout, stderr)
	}
	ci := map[string]string{"COINOP_URL": base, "COINOP_ADMIN_KEY": key}
	if _, stderr, code := runCmd(t, ci, "catalog", "push", "--publish", "--note", "from CI", "../../examples/catalog.yaml"); code != 0 {
		t.Fatalf("push --publish with the new key: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCmd(t, ci, "catalog", "versions"); code != 0 || strings.Contains(stderr, "forbidden") {
		t.Errorf("the editor and publisher can read versions: exit %d %s", code, stderr)
	}

	stdout, _, code = runCmd(t, db, "keys", "list")
	if code != 0 || !strings.Contains(stdout, "ci") || !strings.Contains(stdout, "editor,publisher") || strings.Contains(stdout, key) {
		t.Errorf("keys list: exit %d\n%s", code, stdout)
	}
	if stdout, _, code := runCmd(t, db, "keys", "revoke", "ci"); code != 0 || !strings.HasPrefix(stdout, `revoked key 1 "ci"`) {
		t.Errorf("keys revoke: exit %d %q", code, stdout)
	}
	if stdout, _, _ := runCmd(t, db, "keys", "list"); strings.Contains(stdout, "ci ") {
		t.Errorf("a revoked key is listed without --all:\n%s", stdout)
	}
	if stdout, _, _ := runCmd(t, db, "keys", "list", "--all"); !strings.Contains(stdout, "ci ") {
		t.Errorf("--all omits the revoked key:\n%s", stdout)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"keys", "create", "--name", "x", "--role", "root"}, 1},
		{[]string{"keys", "create", "--name", "ci", "--role", "viewer"}, 1},
		{[]string{"keys", "revoke", "nobody"}, 1},
		{[]string{"keys", "create", "--role", "viewer"}, 2},
		{[]string{"keys", "revoke"}, 2},
		{[]string{"keys", "rotate"}, 2},
		{[]string{"keys"}, 2},
	} {
		if _, stderr, code := runCmd(t, db, tc.args...); code != tc.code {
			t.Errorf("coinop %s: exit %d, want %d: %s", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
