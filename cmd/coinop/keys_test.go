package main

import (
	"strings"
	"testing"

	"github.com/coinop/coinop/internal/testenv"
)

// TestKeysLimitsCLI gives a server key limits at creation, replaces and
// removes them.
func TestKeysLimitsCLI(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	db := map[string]string{"COINOP_DATABASE_URL": dbURL, "USER": "ops"}
	stdout, stderr, code := runCmd(t, db, "keys", "create", "--name", "gs", "--role", "server",
		"--currencies", "gold", "--items", "potion", "--max-per-posting", "500", "--budget", "gold=1000")
	if code != 0 || !strings.HasPrefix(stdout, "coinop_ak_") {
		t.Fatalf("create: exit %d %q %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCmd(t, db, "keys", "limits", "gs", "--currencies", "gold,gems", "--budget", "gems=5")
	want := `key 1 "gs" limits: {"currencies":["gems","gold"],"items":null,"max_per_posting":0,"hourly_budget":{"gems":5}}`
	if code != 0 || strings.TrimSpace(stdout) != want {
		t.Errorf("limits: exit %d %q %q", code, stdout, stderr)
	}
	if stdout, _, code := runCmd(t, db, "keys", "limits", "gs", "--none"); code != 0 || strings.TrimSpace(stdout) != `key 1 "gs" limits: null` {
		t.Errorf("limits --none: exit %d %q", code, stdout)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"keys", "limits", "gs", "--budget", "gems"}, 1},
		{[]string{"keys", "limits", "gs", "--currencies", "gold", "--budget", "gems=5"}, 1},
		{[]string{"keys", "limits", "nobody", "--none"}, 1},
		{[]string{"keys", "limits", "gs"}, 2},
		{[]string{"keys", "limits", "gs", "--none", "--items", "potion"}, 2},
	} {
		if _, stderr, code := runCmd(t, db, tc.args...); code != tc.code {
			t.Errorf("coinop %s: exit %d, want %d: %s", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
	}
}
