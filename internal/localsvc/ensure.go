package localsvc

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
)

// EnsurePostgres returns the URL of a Postgres server to use, in this order:
// url when it is not "" (an error if nothing answers there, since the caller
// asked for that server and should not silently get another), the local
// default DefaultPostgresURL when it answers, or a throwaway server started
// in dir. stop stops the throwaway server and is a no-op otherwise; it is
// never nil when err is nil.
func EnsurePostgres(ctx context.Context, url, dir string) (effectiveURL string, stop func(), err error) {
	if url != "" {
		if _, err := pgx.ParseConfig(url); err != nil {
			return "", nil, fmt.Errorf("postgres URL %s: %w", redact(url), err)
		}
		if !PostgresReachable(ctx, url) {
			return "", nil, fmt.Errorf("postgres at %s is not reachable", redact(url))
		}
		return url, func() {}, nil
	}
	if PostgresReachable(ctx, DefaultPostgresURL) {
		return DefaultPostgresURL, func() {}, nil
	}
	p, err := StartPostgres(ctx, dir)
	if err != nil {
		return "", nil, fmt.Errorf("nothing answers at %s, and a throwaway server did not start: %w", DefaultPostgresURL, err)
	}
	return p.URL(), func() { _ = p.Stop() }, nil
}

// EnsureRedis is EnsurePostgres for Redis: url when it is not "" (an error if
// it does not answer), else DefaultRedisURL when it answers, else a
// throwaway server started in dir (a new temporary directory, removed by
// stop, when dir is "").
func EnsureRedis(ctx context.Context, url, dir string) (effectiveURL string, stop func(), err error) {
	if url != "" {
		if _, err := redis.ParseURL(url); err != nil {
			return "", nil, fmt.Errorf("redis URL %s: %w", redact(url), err)
		}
		if !RedisReachable(ctx, url) {
			return "", nil, fmt.Errorf("redis at %s is not reachable", redact(url))
		}
		return url, func() {}, nil
	}
	if RedisReachable(ctx, DefaultRedisURL) {
		return DefaultRedisURL, func() {}, nil
	}
	r, err := StartRedis(ctx, dir)
	if err != nil {
		return "", nil, fmt.Errorf("nothing answers at %s, and a throwaway server did not start: %w", DefaultRedisURL, err)
	}
	return r.URL(), func() {
		_ = r.Stop()
		if dir == "" {
			_ = os.RemoveAll(r.dir)
		}
	}, nil
}
