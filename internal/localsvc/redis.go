package localsvc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrRedisNotInstalled is returned when redis-server or redis-cli cannot be
// found.
var ErrRedisNotInstalled = errors.New("redis-server not found: install Redis, e.g. apt-get install redis-server")

// RedisReachable reports whether a Redis server answers PING at url within
// about a second.
func RedisReachable(ctx context.Context, url string) bool {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return false
	}
	return redisPing(ctx, opt)
}

func redisPing(ctx context.Context, opt *redis.Options) bool {
	// A plain dial first: go-redis logs every failed dial, and "nothing is
	// listening" is the usual answer while a server starts or when no
	// default server runs.
	network := opt.Network
	if network == "" {
		network = "tcp"
	}
	nc, err := (&net.Dialer{Timeout: probeTimeout}).DialContext(ctx, network, opt.Addr)
	if err != nil {
		return false
	}
	_ = nc.Close()

	opt.DialTimeout = probeTimeout
	opt.DialerRetries = 1
	opt.ReadTimeout = probeTimeout
	opt.WriteTimeout = probeTimeout
	opt.MaxRetries = -1 // one answer is what we are asking for
	opt.PoolSize = 1
	c := redis.NewClient(opt)
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

// Redis is a throwaway redis-server started by StartRedis. It can be stopped
// and started again on the same port, to test an outage and the recovery.
// Its methods are safe for concurrent use.
type Redis struct {
	bin     string
	dir     string
	cluster bool // started with --cluster-enabled

	mu   sync.Mutex
	port int
	proc *process // nil before the first start
}

// StartRedis starts redis-server on a random port of 127.0.0.1 with its
// working directory in dir (created if missing; a new temporary directory
// when dir is ""), without persistence. The directory is left in place, since
// the server can be started again; the caller removes it.
//
// It returns ErrRedisNotInstalled when redis-server is missing, and an error
// that includes the server's log when the server does not start.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	r, err := newRedis(dir, false)
	if err != nil {
		return nil, err
	}
	if err := r.startFresh(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

func newRedis(dir string, cluster bool) (_ *Redis, err error) {
	defer wrap(&err, "start redis")
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, ErrRedisNotInstalled
	}
	if dir == "" {
		if dir, err = os.MkdirTemp("", "coinop-redis-"); err != nil {
			return nil, fmt.Errorf("create directory: %w", err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return nil, err
	}
	return &Redis{bin: bin, dir: dir, cluster: cluster}, nil
}

// startFresh starts the server for the first time, on a new port each
// attempt in case another process took the one we picked.
func (r *Redis) startFresh(ctx context.Context) (err error) {
	defer wrap(&err, "start redis")
	r.mu.Lock()
	defer r.mu.Unlock()
	for range startAttempts {
		if r.port, err = freePort(); err != nil {
			return err
		}
		if err = r.startLocked(ctx); err == nil || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Start starts the server again on the port it had, after Stop. It returns
// nil at once if the server is running.
func (r *Redis) Start(ctx context.Context) (err error) {
	defer wrap(&err, "start redis")
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.exited() {
		return nil
	}
	return r.startLocked(ctx)
}

func (r *Redis) startLocked(ctx context.Context) error {
	args := []string{
		"--port", strconv.Itoa(r.port),
		"--bind", "127.0.0.1",
		"--dir", r.dir,
		// No persistence: a restart is meant to come back empty, like a
		// cache server that lost its memory, unless a client ran SAVE
		// (see Dir).
		"--save", "",
		"--appendonly", "no",
	}
	if r.cluster {
		args = append(args, "--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(r.dir, fmt.Sprintf("nodes-%d.conf", r.port)))
	}
	logPath := filepath.Join(r.dir, fmt.Sprintf("redis-%d.log", r.port))
	proc, err := startProcess(r.bin, args, r.dir, logPath, nil)
	if err != nil {
		return err
	}
	opt := &redis.Options{Addr: r.addrLocked()}
	if err := waitReady(ctx, proc, logPath, func(ctx context.Context) bool {
		return redisPing(ctx, opt)
	}); err != nil {
		_ = proc.stop(syscall.SIGKILL, time.Second)
		return fmt.Errorf("port %d: %w", r.port, err)
	}
	r.proc = proc
	return nil
}

// Stop kills the server, as a crash would, and waits for it to exit. It
// returns nil if the server is not running.
func (r *Redis) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		return nil
	}
	if err := r.proc.stop(syscall.SIGKILL, 10*time.Second); err != nil {
		return fmt.Errorf("stop redis on port %d: %w", r.port, err)
	}
	return nil
}

// Addr returns the server's host:port.
func (r *Redis) Addr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.addrLocked()
}

func (r *Redis) addrLocked() string { return "127.0.0.1:" + strconv.Itoa(r.port) }

// Dir returns the server's working directory, where SAVE and BGSAVE write
// dump.rdb. A Start after Stop loads that file when it exists, so a test can
// bring the server back with an older snapshot of its data.
func (r *Redis) Dir() string { return r.dir }

// URL returns a redis:// URL for the server's database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }
