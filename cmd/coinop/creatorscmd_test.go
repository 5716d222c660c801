package main

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/coinop/coinop/audit"
	"github.com/coinop/coinop/internal/testenv"
)

// TestCreatorsCLI manages a creator from the command line, reads its
// earnings and statement, and records a payout once per key.
func TestCreatorsCLI(t *testing.T) {
	t.Parallel()
	dbURL := testenv.NewDatabase(t)
	db := map[string]string{"COINOP_DATABASE_URL": dbURL, "USER": "ops"}
	run := func(want int, args ...string) string {
		t.Helper()
		stdout, stderr, code := runCmd(t, db, append([]string{"creators"}, args...)...)
		if code != want {
			t.Fatalf("coinop creators %s: exit %d, want %d: %s %s", strings.Join(args, " "), code, want, stdout, stderr)
		}
		return stdout + stderr
	}
	if out := run(0, "create", "ninja", "--name", "Ninja", "--code", "NINJA", "--player", "ninja-player"); !strings.Contains(out, `creator ninja "Ninja" active player ninja-player codes NINJA`) {
		t.Errorf("create: %s", out)
	}
	run(0, "add-code", "ninja", "ninja-2026")
	if out := run(0, "suspend", "ninja"); !strings.Contains(out, "suspended") {
		t.Errorf("suspend: %s", out)
	}
	run(0, "activate", "ninja")
	if out := run(0, "list"); !strings.Contains(out, "ninja") || !strings.Contains(out, "NINJA,ninja-2026") {
		t.Errorf("list: %s", out)
	}
	if out := run(0, "show", "ninja"); !strings.Contains(out, "active") {
		t.Errorf("show: %s", out)
	}
	run(1, "create", "ninja", "--name", "Again")
	run(1, "add-code", "ninja", "ninja")
	run(1, "show", "nobody")
	run(1, "payout", "ninja", "--key", "early")
	run(2, "create", "x")
	run(2, "payout", "ninja")
	run(2, "statement", "ninja", "--from", "yesterday")
	run(2, "rename", "ninja")

	// A matured credit of 3.5 gems, as the writer would journal a tip.
	pool, err := pgxpool.New(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(context.Background(), `INSERT INTO creator_credits (creator_id, kind, source_account, currency, micro, spent, player_id, available_at, created_at)
		VALUES ('ninja', 'tip', 'system:creator_tips', 'gems', 3500000, 4, 'p1', now(), now())`); err != nil {
		t.Fatal(err)
	}
	if out := run(0, "earnings", "ninja"); !strings.Contains(out, "gems") || !strings.Contains(out, "0.5") {
		t.Errorf("earnings: %s", out)
	}
	if out := run(0, "statement", "ninja", "--csv"); !strings.HasPrefix(out, "line_id,created_at,creator_id") || !strings.Contains(out, ",ninja,tip,gems,3.5,3500000,") {
		t.Errorf("statement --csv: %s", out)
	}
	if out := run(0, "statement", "ninja"); !strings.Contains(out, `"totals_micro"`) {
		t.Errorf("statement: %s", out)
	}
	if out := run(0, "payout", "ninja", "--key", "po-1"); !strings.Contains(out, `to ninja: {"gems":3}`) {
		t.Errorf("payout: %s", out)
	}
	if out := run(0, "payout", "ninja", "--key", "po-1"); !strings.Contains(out, "already recorded") {
		t.Errorf("payout again: %s", out)
	}
	run(1, "payout", "ninja", "--key", "po-2")

	entries, _, err := audit.New(pool).List(context.Background(), audit.Filter{Target: "creator:ninja", Actor: "cli:ops"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, " "); strings.Count(got, "creator.") != 5 {
		t.Errorf("audit log as cli:ops: %s", got)
	}
}
