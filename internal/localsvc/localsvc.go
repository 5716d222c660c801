// Package localsvc finds or starts the Postgres and Redis servers that tests
// and `coinop dev` need, so that neither requires a hand-configured machine.
//
// It either checks that a server answers at a URL (PostgresReachable,
// RedisReachable, EnsurePostgres, EnsureRedis) or starts a throwaway one from
// the binaries installed locally (StartPostgres, StartRedis,
// StartRedisCluster). Throwaway servers bind 127.0.0.1 on a random free port,
// keep their files in a directory of their own, skip every fsync, and are
// started as children of this process that the kernel kills if the process
// dies (Linux), so a test binary killed by a timeout leaves no server behind.
//
// The package owns no tables or Redis keys. It must not import the testing
// package, because `coinop dev` uses it at run time.
package localsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Defaults that a developer machine or CI runner usually has running.
const (
	DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	DefaultRedisURL    = "redis://127.0.0.1:6379/0"
)

const (
	// probeTimeout bounds one reachability check: local servers answer in
	// milliseconds, and a check that hangs on a firewalled port would stall
	// every test binary.
	probeTimeout = time.Second
	// readyTimeout bounds the wait for a server we started. initdb plus start
	// is about 1 s on an idle machine, but a 2-core CI building and testing
	// several packages at once can be many times slower.
	readyTimeout = 60 * time.Second
	// startAttempts is how often a start is retried on a fresh port, because
	// another process can take the free port between freePort and the bind.
	startAttempts = 3
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago. The
// port is released before the server binds it, so callers retry on failure.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// process is a server running as a child of this process.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, valid once done is closed
}

// startProcess starts bin with args, appending its output to logPath. cred,
// when not nil, runs it as another OS user.
func startProcess(bin string, args []string, dir, logPath string, cred *syscall.Credential) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	// The child holds its own copy of the descriptor, so ours can be closed
	// once it has started.
	defer logf.Close()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = sysProcAttr(cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to grace for the process to exit, and kills it if
// it has not.
func (p *process) stop(sig os.Signal, grace time.Duration) error {
	if p.exited() {
		return nil
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal pid %d: %w", p.cmd.Process.Pid, err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill pid %d: %w", p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// waitReady polls probe until it succeeds, the process exits, or ctx or
// readyTimeout expires. The error carries the end of the server's log, which
// is where the reason a server did not start is written.
func waitReady(ctx context.Context, p *process, logPath string, probe func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		if probe(ctx) {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before accepting connections (%v); log:\n%s", p.err, logTail(logPath))
		case <-ctx.Done():
			return fmt.Errorf("not accepting connections: %w; log:\n%s", ctx.Err(), logTail(logPath))
		case <-tick.C:
		}
	}
}

// logTail returns the last few lines of a log file for an error message.
func logTail(path string) string {
	const max = 2048
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		_, _ = f.Seek(-max, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return string(bytes.TrimSpace(b))
}

// redact hides a password in a URL so it can go into an error message.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
