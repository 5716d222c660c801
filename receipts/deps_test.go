package receipts

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies fails when receipts or fakestore import what they must
// not: HTTP frameworks, database drivers, other coinop packages; and
// fakestore must not import receipts (whose tests use it).
func TestDependencies(t *testing.T) {
	forbidden := []string{
		"github.com/gofiber/", "github.com/valyala/fasthttp", "github.com/jackc/", "github.com/redis/", "github.com/go-redis/",
	}
	for _, pkg := range []string{".", "./fakestore"} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if strings.HasPrefix(dep, f) {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
			if dep == "database/sql" {
				t.Errorf("%s imports database/sql", pkg)
			}
			if strings.HasPrefix(dep, "github.com/coinop/coinop/") && !strings.HasPrefix(dep, "github.com/coinop/coinop/receipts") {
				t.Errorf("%s imports %s", pkg, dep)
			}
			if pkg == "./fakestore" && dep == "github.com/coinop/coinop/receipts" {
				t.Errorf("fakestore imports receipts")
			}
		}
	}
}
