package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/coinop/coinop"

// rules: a package (by import path suffix) and the import path prefixes it
// must not depend on, directly or indirectly.
var rules = []struct {
	pkg       string
	forbidden []string
	why       string
}{
	{"catalog", []string{"github.com/gofiber/", module + "/server", module + "/entitlements", module + "/receipts"}, "the catalog is a domain package: no HTTP, and it sits below entitlements"},
	{"entitlements", []string{"github.com/gofiber/", module + "/server"}, "domain packages know nothing of HTTP"},
	{"outbox", []string{"github.com/gofiber/", module + "/server", module + "/entitlements", module + "/catalog"}, "the outbox sits below the packages that write events"},
	{"webhooks", []string{"github.com/gofiber/", module + "/server", module + "/entitlements", module + "/catalog"}, "webhooks read the outbox; they never reach into postings"},
	{"receipts", []string{"github.com/gofiber/", module + "/server", module + "/entitlements", "github.com/jackc/pgx"}, "receipts verifies store input; recording it is entitlements' job"},
	{"stores", []string{"github.com/gofiber/", module + "/server"}, "redemption, notifications and the store worker are domain rules; HTTP maps them"},
	{"creators", []string{"github.com/gofiber/", module + "/server", module + "/entitlements"}, "creator accounts and accrual are domain rules; the ledger writer calls them, never the reverse"},
	{"loadtest", []string{module + "/"}, "the load tool speaks HTTP only, like a studio's own client"},
	{"internal/apiclient", []string{module + "/"}, "the generated client knows the API only through docs/openapi.yaml"},
	{"access", []string{"github.com/gofiber/", module + "/server"}, "keys and roles are domain rules; HTTP maps them"},
	{"audit", []string{"github.com/gofiber/", module + "/server"}, "the audit log is a domain record; HTTP maps it"},
	{"console", []string{module + "/", "github.com/"}, "the console is files; the server serves them"},
}

func TestDependencyDirection(t *testing.T) {
	for _, r := range rules {
		t.Run(r.pkg, func(t *testing.T) {
			out, err := exec.Command("go", "list", "-json=ImportPath,Deps", module+"/"+r.pkg).Output()
			if err != nil {
				t.Fatalf("go list %s: %v", r.pkg, err)
			}
			var p struct {
				ImportPath string
				Deps       []string
			}
			if err := json.Unmarshal(out, &p); err != nil {
				t.Fatal(err)
			}
			for _, dep := range p.Deps {
				for _, bad := range r.forbidden {
					if strings.HasPrefix(dep, bad) {
						t.Errorf("%s depends on %s: %s", p.ImportPath, dep, r.why)
					}
				}
			}
		})
	}
}
