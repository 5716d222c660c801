package localsvc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// ErrPostgresNotInstalled is returned by StartPostgres when initdb or
// postgres cannot be found.
var ErrPostgresNotInstalled = errors.New("postgres server binaries not found (initdb, postgres): install PostgreSQL, e.g. apt-get install postgresql")

// PostgresReachable reports whether a Postgres server accepts a connection
// at url within about a second.
func PostgresReachable(ctx context.Context, url string) bool {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return false
	}
	cfg.ConnectTimeout = probeTimeout
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return false
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.Ping(ctx) == nil
}

// Postgres is a throwaway Postgres server started by StartPostgres. It can
// be crashed (Kill) and started again (Start) on the same port and data, to
// test an outage and the recovery. Its methods are safe for concurrent use.
type Postgres struct {
	dir     string // data, socket and log; removed by Stop
	port    int
	bin     string
	args    []string
	logPath string
	cred    *syscall.Credential

	mu   sync.Mutex
	proc *process

	stopOnce sync.Once
	stopErr  error
}

// StartPostgres initializes a new cluster under dir (os.TempDir() when dir is
// "") and starts a server for it on a random port of 127.0.0.1, with trust
// authentication for the user postgres and fsync off: its data is meant to be
// lost. It takes about a second.
//
// initdb refuses to run as root, so when the caller is root the server runs
// as the OS user postgres; if that user cannot reach dir, or dir is too deep
// for a Unix socket path, the files go under os.TempDir() instead.
//
// It returns ErrPostgresNotInstalled when the binaries are missing, and an
// error that includes the server's log when the server does not start.
func StartPostgres(ctx context.Context, dir string) (*Postgres, error) {
	return StartPostgresWith(ctx, dir)
}

// StartPostgresWith is StartPostgres with server settings ("name=value")
// passed after the defaults, so they override them: a server that is
// crashed on purpose and must keep every commit it acknowledged needs
// "synchronous_commit=on".
func StartPostgresWith(ctx context.Context, dir string, settings ...string) (_ *Postgres, err error) {
	defer wrap(&err, "start postgres")
	initdb, postgres, err := postgresBinaries()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	base, err := postgresBase(dir, cred)
	if err != nil {
		return nil, err
	}
	root, err := os.MkdirTemp(base, "coinop-pg-")
	if err != nil {
		return nil, fmt.Errorf("create directory: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(root)
		}
	}()
	if cred != nil {
		if err := os.Chown(root, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("chown %s to postgres: %w", root, err)
		}
	}
	data := filepath.Join(root, "data")
	logPath := filepath.Join(root, "postgres.log")

	// --locale=C avoids depending on which locales the machine has generated.
	cmd := exec.CommandContext(ctx, initdb, "-D", data, "-A", "trust", "-U", "postgres",
		"-E", "UTF8", "--locale=C", "--no-sync")
	cmd.Dir = root
	cmd.SysProcAttr = sysProcAttr(cred)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	var (
		p       *Postgres
		lastErr error
	)
	for range startAttempts {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		// The server is our child rather than a daemon started by pg_ctl, so
		// that the kernel's parent-death signal reaches it (see sysProcAttr).
		args := []string{"-D", data, "-p", strconv.Itoa(port),
			"-c", "listen_addresses=127.0.0.1",
			"-c", "unix_socket_directories=" + root,
			// Durability buys nothing for data that is thrown away.
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			// Parallel tests each hold a pool.
			"-c", "max_connections=300",
		}
		for _, s := range settings {
			args = append(args, "-c", s)
		}
		p = &Postgres{dir: root, port: port, bin: postgres, args: args, logPath: logPath, cred: cred}
		p.mu.Lock()
		lastErr = p.startLocked(ctx)
		p.mu.Unlock()
		if lastErr == nil || ctx.Err() != nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	return p, nil
}

// startLocked starts the server process and waits until it accepts
// connections; on failure it stops what it started.
func (p *Postgres) startLocked(ctx context.Context) error {
	proc, err := startProcess(p.bin, p.args, p.dir, p.logPath, p.cred)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, proc, p.logPath, func(ctx context.Context) bool {
		return PostgresReachable(ctx, p.URL())
	}); err != nil {
		_ = proc.stop(syscall.SIGQUIT, 5*time.Second)
		return err
	}
	p.proc = proc
	return nil
}

// Kill stops the server at once, as `pg_ctl -m immediate stop` does: no
// checkpoint, so the next Start runs crash recovery. The data stays. It
// returns nil if the server is not running.
func (p *Postgres) Kill() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.proc.stop(syscall.SIGQUIT, 10*time.Second); err != nil {
		return fmt.Errorf("kill postgres: %w", err)
	}
	return nil
}

// Start starts the server again after Kill, on the port and data it had,
// and waits until it accepts connections. It returns nil at once if the
// server is running.
func (p *Postgres) Start(ctx context.Context) (err error) {
	defer wrap(&err, "start postgres")
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.proc.exited() {
		return nil
	}
	return p.startLocked(ctx)
}

// URL returns the URL of the server's postgres database as the superuser.
func (p *Postgres) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Stop shuts the server down at once, as `pg_ctl -m immediate stop` does, and
// removes its directory. Calling it again returns the first result.
func (p *Postgres) Stop() error {
	p.stopOnce.Do(func() {
		// SIGQUIT is Postgres's immediate shutdown: no checkpoint, which is
		// what we want for data about to be deleted.
		p.mu.Lock()
		err := p.proc.stop(syscall.SIGQUIT, 10*time.Second)
		p.mu.Unlock()
		if err != nil {
			p.stopErr = fmt.Errorf("stop postgres: %w", err)
			return
		}
		if err := os.RemoveAll(p.dir); err != nil {
			p.stopErr = fmt.Errorf("stop postgres: remove %s: %w", p.dir, err)
		}
	})
	return p.stopErr
}

// postgresBinaries finds initdb and postgres, in PATH first and then in the
// newest of the Debian/Ubuntu versioned directories, which are not in PATH.
func postgresBinaries() (initdb, postgres string, err error) {
	if i, err1 := exec.LookPath("initdb"); err1 == nil {
		if p, err2 := exec.LookPath("postgres"); err2 == nil {
			return i, p, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgDirVersion(dirs[i]) > pgDirVersion(dirs[j]) })
	for _, d := range dirs {
		i, p := filepath.Join(d, "initdb"), filepath.Join(d, "postgres")
		if isExecutable(i) && isExecutable(p) {
			return i, p, nil
		}
	}
	return "", "", ErrPostgresNotInstalled
}

// pgDirVersion returns the major version in /usr/lib/postgresql/VERSION/bin,
// so that 15 sorts above 9.6.
func pgDirVersion(dir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
	return v
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// postgresCredential returns nil when the caller may run initdb itself, and
// the OS user postgres when the caller is root.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, initdb must run as the OS user postgres: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("user postgres: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// postgresBase returns the directory under which the server's directory is
// created: dir when the server's user can reach it and a socket path in it
// fits, os.TempDir() otherwise.
func postgresBase(dir string, cred *syscall.Credential) (string, error) {
	tmp := os.TempDir()
	if dir == "" {
		return tmp, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("create directory: %w", err)
	}
	// A Unix socket path is limited to 107 bytes; ours adds
	// "/coinop-pg-NNNNNNNNNN/.s.PGSQL.NNNNN.lock" to base.
	if len(abs)+45 > 107 {
		return tmp, nil
	}
	if cred != nil && !traversable(abs, cred) {
		return tmp, nil
	}
	return abs, nil
}

// traversable reports whether the user cred may enter dir and each of its
// parents, judged from the permission bits only.
func traversable(dir string, cred *syscall.Credential) bool {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return false
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return false
		}
		// Owner, then group, then others: the first class that matches decides.
		bit := os.FileMode(0o001)
		switch {
		case st.Uid == cred.Uid:
			bit = 0o100
		case st.Gid == cred.Gid:
			bit = 0o010
		}
		if fi.Mode().Perm()&bit == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// wrap prefixes a non-nil *errp with what was being done, except for the
// not-installed errors, which are meant to be read as they are.
func wrap(errp *error, what string) {
	if *errp == nil || errors.Is(*errp, ErrPostgresNotInstalled) || errors.Is(*errp, ErrRedisNotInstalled) {
		return
	}
	*errp = fmt.Errorf("%s: %w", what, *errp)
}
