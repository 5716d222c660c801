package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/coinop/coinop/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func TestRecordAndList(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := testenv.NewPool(t)
	log := New(pool)
	by := func(actor string) Attribution { return Attribution{Actor: actor, RequestID: "r-" + actor} }
	writes := []struct {
		actor, action, target string
		before, after         any
	}{
		{"key:alice", "catalog.draft.put", "catalog/draft/items/sword", map[string]int{"price": 500}, map[string]int{"price": 450}},
		{"key:bob", "catalog.publish", "catalog/versions/2", nil, map[string]int{"version": 2}},
		{"admin-token", "key.create", "keys/1", nil, map[string]string{"name": "alice"}},
		{"key:alice", "catalog.draft.delete", "catalog/draft/items/bow", map[string]string{"id": "bow"}, nil},
		{"key:carol", "player.grant", "players/p_1", nil, map[string]int{"gold": 5}},
	}
	for _, w := range writes {
		// Recorded inside the writer's transaction, as every writer does.
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			return Record(ctx, tx, by(w.actor), w.action, w.target, w.before, w.after)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Run("a rolled-back change leaves no entry", func(t *testing.T) {
		boom := errors.New("boom")
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if err := Record(ctx, tx, by("key:mallory"), "catalog.publish", "catalog/versions/9", nil, nil); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatal(err)
		}
		if got, _, _ := log.List(ctx, Filter{Actor: "key:mallory"}); len(got) != 0 {
			t.Errorf("entries of a rolled-back change: %+v", got)
		}
	})

	targets := func(f Filter) string {
		t.Helper()
		entries, _, err := log.List(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Target)
		}
		return strings.Join(out, " ")
	}
	tests := []struct {
		name string
		f    Filter
		want string
	}{
		{"everything, newest first", Filter{}, "players/p_1 catalog/draft/items/bow keys/1 catalog/versions/2 catalog/draft/items/sword"},
		{"by actor", Filter{Actor: "key:alice"}, "catalog/draft/items/bow catalog/draft/items/sword"},
		{"by action prefix", Filter{Action: "catalog.*"}, "catalog/draft/items/bow catalog/versions/2 catalog/draft/items/sword"},
		{"by exact action", Filter{Action: "catalog.publish"}, "catalog/versions/2"},
		{"by target prefix", Filter{Target: "catalog/draft/*"}, "catalog/draft/items/bow catalog/draft/items/sword"},
		{"a prefix with LIKE wildcards is literal", Filter{Target: "players/p_*"}, "players/p_1"},
		{"an underscore does not match any character", Filter{Target: "players/p%*"}, ""},
		{"until is exclusive", Filter{Until: time.Now().Add(-time.Hour)}, ""},
		{"since is inclusive", Filter{Since: time.Now().Add(-time.Hour), Actor: "key:bob"}, "catalog/versions/2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := targets(tt.f); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	t.Run("pages chain through the cursor", func(t *testing.T) {
		var all []string
		f := Filter{Limit: 2}
		for page := 0; ; page++ {
			entries, next, err := log.List(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				all = append(all, e.Target)
			}
			if next == 0 {
				break
			}
			if page > 5 {
				t.Fatal("too many pages")
			}
			f.Cursor = next
		}
		if got := strings.Join(all, " "); got != targets(Filter{}) {
			t.Errorf("paged = %q", got)
		}
	})

	t.Run("entries carry before, after and the request id", func(t *testing.T) {
		entries, _, _ := log.List(ctx, Filter{Target: "catalog/draft/items/sword"})
		e := entries[0]
		if string(e.Before) != `{"price": 500}` || string(e.After) != `{"price": 450}` || e.RequestID != "r-key:alice" || e.At.IsZero() {
			t.Errorf("entry = %+v (before %s, after %s)", e, e.Before, e.After)
		}
		entries, _, _ = log.List(ctx, Filter{Action: "key.create"})
		if entries[0].Before != nil {
			t.Errorf("a create has before %s, want null", entries[0].Before)
		}
	})
}

// TestTheAuditLogCannotBeAltered: UPDATE, DELETE and TRUNCATE fail for the
// application's database role (the tests connect as the role that ran the
// migrations, like coinop serve with COINOP_AUTO_MIGRATE), and a role set
// up as the README recommends cannot even disable the triggers.
func TestTheAuditLogCannotBeAltered(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, _ := testenv.NewPool(t)
	if err := Record(ctx, pool, Attribution{Actor: "key:alice"}, "catalog.publish", "catalog/versions/1", nil, nil); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		`UPDATE audit_log SET actor = 'someone else'`,
		`DELETE FROM audit_log`,
		`TRUNCATE audit_log`,
	} {
		_, err := pool.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || !strings.Contains(pgErr.Message, "audit_log rows are immutable") {
			t.Errorf("%s: %v, want the immutability trigger to refuse it", sql, err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM audit_log WHERE actor = 'key:alice'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("the entry is gone or changed: %d, %v", n, err)
	}

	t.Run("a role that does not own the table cannot drop the guard", func(t *testing.T) {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Release()
		b := make([]byte, 6)
		_, _ = rand.Read(b)
		role := "coinop_app_" + hex.EncodeToString(b)
		_, err = conn.Exec(ctx, `CREATE ROLE `+role+` NOLOGIN`)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "42501" {
			t.Skipf("the test database user may not CREATE ROLE (%v); the triggers above are still checked", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx := context.Background()
			_, _ = pool.Exec(ctx, `DROP OWNED BY `+role)
			_, _ = pool.Exec(ctx, `DROP ROLE `+role)
		})
		// The grants README "Audit log" recommends for the application role.
		for _, sql := range []string{
			`GRANT SELECT, INSERT ON audit_log TO ` + role,
			`SET ROLE ` + role,
		} {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		defer func() { _, _ = conn.Exec(context.Background(), `RESET ROLE`) }()
		if err := Record(ctx, conn, Attribution{Actor: "key:app"}, "catalog.publish", "catalog/versions/2", nil, nil); err != nil {
			t.Errorf("the application role cannot record: %v", err)
		}
		for _, sql := range []string{
			`ALTER TABLE audit_log DISABLE TRIGGER audit_log_immutable`,
			`DROP TRIGGER audit_log_immutable ON audit_log`,
			`UPDATE audit_log SET actor = 'x'`,
			`DELETE FROM audit_log`,
			`TRUNCATE audit_log`,
		} {
			if _, err := conn.Exec(ctx, sql); err == nil {
				t.Errorf("%s succeeded for the application role", sql)
			}
		}
	})
}
