package testenv

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestParallelTestsGetDifferentMigratedDatabases(t *testing.T) {
	var (
		mu    sync.Mutex
		names = map[string]bool{}
	)
	t.Run("group", func(t *testing.T) {
		for _, sub := range []string{"a", "b", "c"} {
			t.Run(sub, func(t *testing.T) {
				t.Parallel()
				pool, _ := NewPool(t)
				var name string
				var players *string
				err := pool.QueryRow(t.Context(),
					`SELECT current_database(), to_regclass('public.players')::text`).Scan(&name, &players)
				if err != nil {
					t.Fatal(err)
				}
				if players == nil {
					t.Errorf("database %s has no table players: not migrated", name)
				}
				// A write here must not be seen by the other tests.
				if _, err := pool.Exec(t.Context(), `INSERT INTO players (player_id) VALUES ('p1')`); err != nil {
					t.Fatalf("insert into %s: %v", name, err)
				}
				mu.Lock()
				defer mu.Unlock()
				if names[name] {
					t.Errorf("database %s handed out twice", name)
				}
				names[name] = true
			})
		}
	})
	if len(names) != 3 {
		t.Fatalf("got databases %v, want 3 different ones", names)
	}

	// The group's cleanups have run: its databases are gone.
	conn, err := pgx.Connect(t.Context(), AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for name := range names {
		var exists bool
		if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s not dropped after its test", name)
		}
	}
}

func TestNewDatabaseIsDroppedEvenWithConnectionsLeftOpen(t *testing.T) {
	var url string
	t.Run("leaves a connection open", func(t *testing.T) {
		url = NewDatabase(t)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn // deliberately not closed: WITH (FORCE) must cope
	})
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(t.Context(), AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, cfg.Database).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s not dropped", cfg.Database)
	}
}

func TestRedisPrefixesDifferAndTheirKeysAreDeleted(t *testing.T) {
	var prefixes [2]string
	for i := range prefixes {
		t.Run("writes keys under its prefix", func(t *testing.T) {
			c, prefix := RedisClient(t)
			prefixes[i] = prefix
			for _, k := range []string{"a", "b"} {
				if err := c.Set(t.Context(), prefix+k, "v", time.Hour).Err(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	if prefixes[0] == prefixes[1] {
		t.Fatalf("both tests got prefix %q", prefixes[0])
	}
	c, _ := RedisClient(t)
	for _, p := range prefixes {
		keys, err := c.Keys(t.Context(), p+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) != 0 {
			t.Errorf("keys %v left after the test", keys)
		}
	}
}

func TestStaleDatabaseNamesAreRecognisedByAge(t *testing.T) {
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
	tests := []struct {
		name    string
		created time.Time
		ok      bool
	}{
		{"coinop_t_" + strconv.FormatInt(old.Unix(), 10) + "_abcdef", old, true},
		{"coinop_tmpl_" + strconv.FormatInt(old.Unix(), 10) + "_abcdef", old, true},
		{"coinop_t_abcdef", time.Time{}, false},
		{"coinop", time.Time{}, false},
		{"other_db", time.Time{}, false},
	}
	for _, tt := range tests {
		created, ok := dbCreated(tt.name)
		if ok != tt.ok || !created.Equal(tt.created) {
			t.Errorf("dbCreated(%q) = %v, %v; want %v, %v", tt.name, created, ok, tt.created, tt.ok)
		}
	}
	if created, ok := dbCreated(dbName("coinop_t_")); !ok || time.Since(created) > time.Minute {
		t.Errorf("dbName does not round-trip through dbCreated: %v, %v", created, ok)
	}
}
