package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/coinop/coinop/access"
	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/catalog"
	"github.com/coinop/coinop/internal/testenv"
	"github.com/coinop/coinop/server"
)

// newKey creates an admin API key with these roles directly in the database
// and returns its secret.
func newKey(t testing.TB, e *env, name string, roles ...access.Role) string {
	t.Helper()
	keys := access.NewKeys(e.pool, access.KeysConfig{})
	_, secret, err := keys.Create(context.Background(), name, roles, audit.Attribution{Actor: "test"})
	if err != nil {
		t.Fatalf("create key %s: %v", name, err)
	}
	return secret
}

// adminRoute is one admin route with a request that passes validation for
// a caller who may use it.
type adminRoute struct {
	method, path, body string
	headers            []string
	role               access.Role
}

// anyRole marks a route every authenticated admin caller may use; its
// operation in docs/openapi.yaml has no x-coinop-role.
const anyRole access.Role = ""

// TestEachRoleCanDoExactlyItsRoutes sends every admin route with a key of
// each role (and the bootstrap token): a role that does not cover the route
// gets 403 forbidden, one that does gets through authorization. It also
// fails when a new admin route is added without a row here.
func TestEachRoleCanDoExactlyItsRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t, withServerToken(), withCreators(testProgram()))
	doc := string(readFile(t, "catalog.json"))
	routes := []adminRoute{
		{"PUT", "/admin/v1/catalog", doc, nil, access.RolePublisher},
		{"GET", "/admin/v1/catalog/draft", "", nil, access.RoleViewer},
		{"PUT", "/admin/v1/catalog/draft", doc, nil, access.RoleEditor},
		{"POST", "/admin/v1/catalog/draft/validate", "", nil, access.RoleViewer},
		{"GET", "/admin/v1/catalog/draft/diff", "", nil, access.RoleViewer},
		{"GET", "/admin/v1/catalog/draft/:section/:id", "", nil, access.RoleViewer},
		{"PUT", "/admin/v1/catalog/draft/:section/:id", `{"name":"Gold"}`, nil, access.RoleEditor},
		{"DELETE", "/admin/v1/catalog/draft/:section/:id", "", nil, access.RoleEditor},
		{"POST", "/admin/v1/catalog/publish", `{"note":"roles"}`, nil, access.RolePublisher},
		{"POST", "/admin/v1/catalog/rollback", `{"version":1}`, nil, access.RolePublisher},
		{"GET", "/admin/v1/catalog/versions", "", nil, access.RoleViewer},
		{"GET", "/admin/v1/catalog/versions/:version", "", nil, access.RoleViewer},
		{"POST", "/admin/v1/players/:player_id/grants", `{"reason":"roles","currencies":{"gold":1}}`, nil, access.RoleSupport},
		{"GET", "/admin/v1/players/:player_id/ledger", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/players/:player_id/holdings", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/players/:player_id/debts", "", nil, access.RoleSupport},
		{"POST", "/admin/v1/players/:player_id/purchases/:transaction_id/refund", `{"reason":"roles"}`, nil, access.RoleSupport},
		{"GET", "/admin/v1/me", "", nil, anyRole},
		{"GET", "/admin/v1/audit", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/audit-log", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/players/:player_id/store-purchases", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/refunds", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/store-notifications", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/store-sweeps", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/keys", "", nil, access.RoleAdmin},
		{"POST", "/admin/v1/keys", `{"name":"made-by-%s","roles":["viewer"]}`, nil, access.RoleAdmin},
		{"DELETE", "/admin/v1/keys/:key", "", nil, access.RoleAdmin},
		{"PUT", "/admin/v1/keys/:key/limits", `null`, nil, access.RoleAdmin},
		{"GET", "/admin/v1/creators", "", nil, access.RoleSupport},
		{"POST", "/admin/v1/creators", `{"creator_id":"made-by-%s","display_name":"Roles"}`, nil, access.RoleSupport},
		{"GET", "/admin/v1/creators/:creator_id", "", nil, access.RoleSupport},
		{"PATCH", "/admin/v1/creators/:creator_id", `{"status":"active"}`, nil, access.RoleSupport},
		{"POST", "/admin/v1/creators/:creator_id/codes", `{"code":"by-%s"}`, nil, access.RoleSupport},
		{"GET", "/admin/v1/creators/:creator_id/earnings", "", nil, access.RoleSupport},
		{"GET", "/admin/v1/creators/:creator_id/statement", "", nil, access.RoleSupport},
		{"POST", "/admin/v1/creators/:creator_id/payouts", "", []string{"Idempotency-Key", "roles"}, access.RoleAdmin},
		{"GET", "/admin/v1/webhooks", "", nil, access.RoleAdmin},
		{"POST", "/admin/v1/webhooks", `{"url":"https://hooks.example.com/%s"}`, nil, access.RoleAdmin},
		{"GET", "/admin/v1/webhooks/:id", "", nil, access.RoleAdmin},
		{"PATCH", "/admin/v1/webhooks/:id", `{"enabled":false}`, nil, access.RoleAdmin},
		{"DELETE", "/admin/v1/webhooks/:id", "", nil, access.RoleAdmin},
		{"POST", "/admin/v1/webhooks/:id/rotate-secret", "", nil, access.RoleAdmin},
		{"POST", "/admin/v1/webhooks/:id/redeliveries", `{"event_id":1}`, nil, access.RoleAdmin},
	}

	t.Run("the table covers every admin route", func(t *testing.T) {
		var inTable []string
		for _, r := range routes {
			inTable = append(inTable, r.method+" "+r.path)
		}
		var inApp []string
		for _, r := range e.app.GetRoutes(true) {
			if !strings.HasPrefix(r.Path, "/admin/v1/") || r.Method == http.MethodHead {
				continue
			}
			inApp = append(inApp, r.Method+" "+r.Path)
			if !slices.Contains(inTable, r.Method+" "+r.Path) {
				t.Errorf("%s %s has no row in this table: give it a role", r.Method, r.Path)
			}
		}
		for _, r := range inTable {
			if !slices.Contains(inApp, r) {
				t.Errorf("%s is in this table but not a route", r)
			}
		}
	})

	t.Run("docs/openapi.yaml has every admin route with its role", func(t *testing.T) {
		var spec struct {
			Paths map[string]map[string]json.RawMessage `json:"paths"`
		}
		if err := yaml.Unmarshal(readRepoFile(t, "docs/openapi.yaml"), &spec); err != nil {
			t.Fatal(err)
		}
		param := regexp.MustCompile(`:([a-z_]+)`)
		for _, r := range routes {
			path := param.ReplaceAllString(r.path, "{$1}")
			// The spec has one path per draft section, so that each has
			// its own entity type.
			paths := []string{path}
			if strings.Contains(path, "{section}") {
				paths = nil
				for _, sec := range catalog.Sections {
					paths = append(paths, strings.Replace(path, "{section}", string(sec), 1))
				}
			}
			for _, path := range paths {
				raw, ok := spec.Paths[path][strings.ToLower(r.method)]
				var op struct {
					Role string `json:"x-coinop-role"`
				}
				if ok {
					if err := json.Unmarshal(raw, &op); err != nil {
						t.Fatalf("%s %s: %v", r.method, path, err)
					}
				}
				switch {
				case !ok:
					t.Errorf("%s %s is not in docs/openapi.yaml", r.method, path)
				case op.Role != string(r.role):
					t.Errorf("%s %s: x-coinop-role %q in docs/openapi.yaml, want %q", r.method, path, op.Role, r.role)
				}
			}
		}
	})

	callers := map[string]string{"bootstrap": adminToken}
	for _, role := range access.Roles {
		callers[string(role)] = newKey(t, e, "key-"+string(role), role)
	}
	// What each caller may do, beyond its own role.
	may := func(caller string, need access.Role) bool {
		if need == anyRole {
			return true
		}
		switch caller {
		case "bootstrap":
			return need != access.RoleServer
		case string(access.RoleEditor), string(access.RolePublisher):
			return need == access.Role(caller) || need == access.RoleViewer
		}
		return need == access.Role(caller)
	}
	fill := strings.NewReplacer(":section", "currencies", ":id", "gold", ":version", "1",
		":player_id", "p1", ":key", "no-such-key", ":creator_id", "no-such-creator", ":transaction_id", "1")
	n := 0
	for _, rt := range routes {
		for _, caller := range slices.Sorted(maps.Keys(callers)) {
			n++
			name := fmt.Sprintf("%s %s as %s", rt.method, rt.path, caller)
			t.Run(name, func(t *testing.T) {
				path := fill.Replace(rt.path)
				body := rt.body
				if strings.Contains(body, "%s") {
					body = fmt.Sprintf(body, caller)
				}
				headers := append([]string{}, rt.headers...)
				if rt.method == "POST" && (strings.HasSuffix(path, "/grants") || strings.HasSuffix(path, "/refund")) {
					headers = append(headers, "Idempotency-Key", fmt.Sprintf("roles-%d", n))
				}
				r := e.adminAs(t, callers[caller], rt.method, path, body, headers...)
				if may(caller, rt.role) {
					if r.status == http.StatusForbidden || r.status == http.StatusUnauthorized || r.status >= 500 {
						t.Fatalf("%s may use this route: %s", caller, r)
					}
					return
				}
				p := wantProblem(t, r, http.StatusForbidden, "forbidden")
				if p["required_role"] != string(rt.role) {
					t.Errorf("required_role = %v, want %s", p["required_role"], rt.role)
				}
			})
		}
	}

	t.Run("game-server routes take the server role and nothing else", func(t *testing.T) {
		for caller, token := range callers {
			for _, send := range []func() response{
				func() response { return e.get(t, "/v1/players/p1/entitlements/sword", token) },
				func() response {
					return e.adminAs(t, token, "POST", "/v1/entitlements/check", `{"checks":[{"player_id":"p1","item_id":"sword"}]}`)
				},
			} {
				r := send()
				if caller == string(access.RoleServer) {
					if r.status != http.StatusOK {
						t.Errorf("server key: %s", r)
					}
					continue
				}
				if r.status != http.StatusForbidden {
					t.Errorf("%s on a game-server route: %s, want 403", caller, r)
				}
			}
		}
	})

	t.Run("unknown and revoked keys are 401", func(t *testing.T) {
		fake := access.KeyPrefix + strings.Repeat("A", 43)
		assertProblem(t, e.adminAs(t, fake, "GET", "/admin/v1/catalog/draft", ""), http.StatusUnauthorized, "unauthenticated")
		assertProblem(t, e.get(t, "/v1/players/p1/entitlements/sword", fake), http.StatusUnauthorized, "unauthenticated")
	})
}

// TestKeysOverHTTP creates, uses, lists and revokes a key through the admin
// API; a revoked key stops working at once on the replica that revoked it
// and within the cache TTL on another.
func TestKeysOverHTTP(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	pool, _ := testenv.NewPool(t)
	shortTTL := withConfig(func(c *server.Config) { c.KeyCacheTTL = ttl })
	a := newEnv(t, withPool(pool), shortTTL)
	b := newEnv(t, withPool(pool), shortTTL)

	r := a.admin(t, "POST", "/admin/v1/keys", `{"name":"alice","roles":["editor"]}`, "X-Request-Id", "mk-alice")
	var made struct {
		Key    access.Key `json:"key"`
		Secret string     `json:"secret"`
	}
	r.decode(t, &made)
	if r.status != 201 || !strings.HasPrefix(made.Secret, access.KeyPrefix) || made.Key.Name != "alice" ||
		!slices.Equal(made.Key.Roles, []access.Role{access.RoleEditor}) || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %s", r)
	}
	if strings.Contains(string(a.admin(t, "GET", "/admin/v1/keys", "").body), made.Secret) {
		t.Fatal("the key list shows a secret")
	}
	for _, e := range []*env{a, b} {
		if r := e.adminAs(t, made.Secret, "GET", "/admin/v1/catalog/draft", ""); r.status != 200 {
			t.Fatalf("alice reads the draft: %s", r)
		}
	}
	wantProblem(t, a.admin(t, "POST", "/admin/v1/keys", `{"name":"alice","roles":["viewer"]}`), 409, "key_name_taken")
	wantProblem(t, a.admin(t, "POST", "/admin/v1/keys", `{"name":"bob","roles":["root"]}`), 400, "invalid_request")
	wantProblem(t, a.admin(t, "POST", "/admin/v1/keys", `{"name":"bob","roles":[]}`), 400, "invalid_request")
	wantProblem(t, a.admin(t, "POST", "/admin/v1/keys", `{"name":"b o b","roles":["viewer"]}`), 400, "invalid_request")
	wantProblem(t, a.admin(t, "DELETE", "/admin/v1/keys/nobody", ""), 404, "key_not_found")

	if r := a.admin(t, "DELETE", "/admin/v1/keys/alice", ""); r.status != 200 || !strings.Contains(string(r.body), `"revoked_by":"admin-token"`) {
		t.Fatalf("revoke: %s", r)
	}
	revoked := time.Now()
	assertProblem(t, a.adminAs(t, made.Secret, "GET", "/admin/v1/catalog/draft", ""), 401, "unauthenticated")
	for {
		r := b.adminAs(t, made.Secret, "GET", "/admin/v1/catalog/draft", "")
		if r.status == 401 {
			break
		}
		if time.Since(revoked) > ttl+time.Second {
			t.Fatalf("the other replica still accepts the revoked key after %v: %s", time.Since(revoked), r)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if elapsed := time.Since(revoked); elapsed > ttl+200*time.Millisecond {
		t.Errorf("the other replica took %v to refuse the revoked key; the TTL is %v", elapsed, ttl)
	}

	var log struct {
		Entries []audit.Entry `json:"entries"`
	}
	a.admin(t, "GET", "/admin/v1/audit-log?target=keys/*", "").decode(t, &log)
	if len(log.Entries) != 2 || log.Entries[0].Action != "key.revoke" || log.Entries[1].Action != "key.create" ||
		log.Entries[1].RequestID != "mk-alice" || log.Entries[1].Actor != "admin-token" {
		t.Fatalf("audit log of keys: %+v", log.Entries)
	}
	if strings.Contains(string(log.Entries[1].After), "hash") || strings.Contains(string(log.Entries[1].After), made.Secret) {
		t.Errorf("the audit log holds key material: %s", log.Entries[1].After)
	}
}

func readRepoFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
