package main

import (
	"strings"
	"testing"

	"github.com/coinop/coinop/internal/testenv"
)

// TestWebhooksCLI registers, lists, disables, enables, rotates, redelivers
// and deletes an endpoint; the secret is printed only by create and rotate.
func TestWebhooksCLI(t *testing.T) {
	t.Parallel()
	db := map[string]string{"COINOP_DATABASE_URL": testenv.NewDatabase(t), "USER": "ops"}
	stdout, stderr, code := runCmd(t, db, "webhooks", "create", "--url", "https://example.com/hook", "--types", "ledger.*,catalog.published")
	if code != 0 || !strings.HasPrefix(stdout, "whsec_") {
		t.Fatalf("create: exit %d %q %q", code, stdout, stderr)
	}
	secret := strings.TrimSpace(stdout)
	for _, args := range [][]string{{"list"}, {"disable", "1"}, {"enable", "1"}, {"redeliver", "1", "--since", "2026-01-01T00:00:00Z", "--until", "2030-01-01T00:00:00Z"}} {
		out, errOut, code := runCmd(t, db, append([]string{"webhooks"}, args...)...)
		if code != 0 || strings.Contains(out+errOut, secret) {
			t.Errorf("webhooks %v: exit %d %q %q", args, code, out, errOut)
		}
	}
	if out, _, code := runCmd(t, db, "webhooks", "rotate", "1"); code != 0 || !strings.HasPrefix(out, "whsec_") || strings.Contains(out, secret) {
		t.Errorf("rotate: exit %d %q", code, out)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"webhooks", "create", "--url", "http://example.com/"}, 1},
		{[]string{"webhooks", "create", "--url", "http://127.0.0.1:9/", "--allow-insecure"}, 0},
		{[]string{"webhooks", "create", "--url", "https://example.com/", "--types", "Bad"}, 1},
		{[]string{"webhooks", "redeliver", "1", "--event", "999"}, 1},
		{[]string{"webhooks", "disable", "77"}, 1},
		{[]string{"webhooks", "disable"}, 2},
		{[]string{"webhooks", "create"}, 2},
		{[]string{"webhooks", "delete", "1"}, 0},
	} {
		if _, stderr, code := runCmd(t, db, tc.args...); code != tc.code {
			t.Errorf("coinop %s: exit %d, want %d: %s", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
	}
}
