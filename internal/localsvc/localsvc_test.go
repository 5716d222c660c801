package localsvc

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

func TestStartPostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, err := StartPostgres(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })

	conn, err := pgx.Connect(ctx, p.URL())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1", n, err)
	}
	conn.Close(ctx)

	if err := p.Stop(); err != nil {
		t.Fatal(err)
	}
	if PostgresReachable(ctx, p.URL()) {
		t.Error("server still reachable after Stop")
	}
	if _, err := os.Stat(p.dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("directory %s left after Stop: %v", p.dir, err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestRedisComesBackEmptyOnTheSamePortAfterStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, err := StartRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	addr := r.Addr()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if RedisReachable(ctx, r.URL()) {
		t.Fatal("reachable after Stop")
	}

	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if r.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", r.Addr(), addr)
	}
	// The same client recovers: the outage tests in other packages rely on it.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Fatalf("GET after restart = %v, want redis.Nil (no persistence)", err)
	}
	if err := r.Start(ctx); err != nil {
		t.Errorf("Start while running: %v", err)
	}
}

func TestRedisClusterServesEverySlot(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	c, err := StartRedisCluster(ctx, t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	if got := len(c.Addrs()); got != 3 {
		t.Fatalf("%d addrs, want 3", got)
	}
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs()})
	defer cc.Close()
	// 50 keys land on all three masters with near certainty.
	for i := range 50 {
		k := fmt.Sprintf("key-%d", i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
		if got, err := cc.Get(ctx, k).Int(); err != nil || got != i {
			t.Fatalf("GET %s = %d, %v; want %d", k, got, err, i)
		}
	}
}

func TestStartRedisClusterRefusesFewerThanThreeNodes(t *testing.T) {
	t.Parallel()
	if _, err := StartRedisCluster(t.Context(), t.TempDir(), 2); err == nil {
		t.Fatal("want an error")
	}
}

func TestEnsureRedis(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, err := StartRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })

	t.Run("uses the given URL when it answers", func(t *testing.T) {
		got, stop, err := EnsureRedis(ctx, r.URL(), "")
		if err != nil {
			t.Fatal(err)
		}
		stop()
		if got != r.URL() {
			t.Errorf("URL = %s, want %s", got, r.URL())
		}
		if !RedisReachable(ctx, r.URL()) {
			t.Error("stop stopped a server it did not start")
		}
	})
	t.Run("fails when the given URL does not answer", func(t *testing.T) {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := EnsureRedis(ctx, fmt.Sprintf("redis://:secret@127.0.0.1:%d/0", port), ""); err == nil {
			t.Fatal("want an error")
		} else if !strings.Contains(err.Error(), "xxxxx") || strings.Contains(err.Error(), "secret") {
			t.Errorf("error %q should redact the password", err)
		}
	})
	t.Run("finds or starts a server when no URL is given", func(t *testing.T) {
		got, stop, err := EnsureRedis(ctx, "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		if !RedisReachable(ctx, got) {
			t.Errorf("%s does not answer", got)
		}
	})
}

func TestEnsurePostgresFailsWhenTheGivenURLDoesNotAnswer(t *testing.T) {
	t.Parallel()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if _, _, err := EnsurePostgres(t.Context(), url, ""); err == nil {
		t.Fatal("want an error")
	}
}

func TestMissingBinariesSayWhatToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := StartRedis(t.Context(), t.TempDir())
	if !errors.Is(err, ErrRedisNotInstalled) {
		t.Fatalf("err = %v, want ErrRedisNotInstalled", err)
	}
	if !strings.Contains(err.Error(), "apt-get install redis-server") {
		t.Errorf("error %q does not say what to install", err)
	}
}

func TestPostgresBinaryDirectoriesSortNewestFirst(t *testing.T) {
	older, newer := "/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin"
	if pgDirVersion(newer) <= pgDirVersion(older) {
		t.Errorf("version(%s) = %v, not above version(%s) = %v", newer, pgDirVersion(newer), older, pgDirVersion(older))
	}
}

func TestPostgresKeepsAcknowledgedCommitsAcrossKillAndStart(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	p, err := StartPostgresWith(ctx, t.TempDir(), "synchronous_commit=on")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop() })
	url := p.URL()

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	var setting string
	if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&setting); err != nil || setting != "on" {
		t.Errorf("synchronous_commit = %q, %v; want on", setting, err)
	}
	conn.Close(ctx)

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	if PostgresReachable(ctx, url) {
		t.Fatal("server still reachable after Kill")
	}
	if err := p.Kill(); err != nil {
		t.Errorf("second Kill: %v", err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if p.URL() != url {
		t.Errorf("URL after Start = %s, want %s", p.URL(), url)
	}
	conn, err = pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 1 {
		t.Fatalf("count after crash recovery = %d, %v; want 1", n, err)
	}
}

func TestRedisComesBackWithItsLastSaveAfterStop(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r, err := StartRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Stop() })
	c := redis.NewClient(&redis.Options{Addr: r.Addr(), MaxRetries: -1})
	defer c.Close()
	if err := c.Set(ctx, "k", "old", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(r.Dir() + "/dump.rdb"); err != nil {
		t.Fatalf("SAVE left no dump.rdb in Dir: %v", err)
	}
	if err := c.Set(ctx, "k", "new", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "old" {
		t.Fatalf("GET after restart = %q, %v; want the saved \"old\"", got, err)
	}
}
