//go:build chaos

package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// replica is one `coinop serve` process. It keeps its port across restarts,
// so clients reach the restarted process at the same address.
type replica struct {
	name    string
	bin     string
	addr    string
	env     []string
	logPath string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // exit status, valid once done is closed
}

func newReplica(name, bin, dir string, env []string) (*replica, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	return &replica{
		name:    name,
		bin:     bin,
		addr:    addr,
		env:     append([]string{"COINOP_ADDR=" + addr, "PATH=" + os.Getenv("PATH")}, env...),
		logPath: filepath.Join(dir, name+".log"),
	}, nil
}

func (r *replica) url(path string) string { return "http://" + r.addr + path }

// start runs the process and waits until /readyz answers 200.
func (r *replica) start(ctx context.Context) error {
	logf, err := os.OpenFile(r.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "=== chaos: start %s at %s\n", r.name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, "serve")
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = logf, logf
	// The kernel kills the replica if the test binary dies without cleanup.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.name, err)
	}
	done := make(chan struct{})
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	go func() {
		err := cmd.Wait()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
	}()
	return r.awaitReady(ctx, done)
}

func (r *replica) awaitReady(ctx context.Context, done chan struct{}) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(r.url("/readyz"))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-done:
			return fmt.Errorf("%s exited before it was ready (%v); log:\n%s", r.name, r.exitErr(), tail(r.logPath))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w; log:\n%s", r.name, ctx.Err(), tail(r.logPath))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (r *replica) exitErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *replica) running() bool {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// signal sends sig and waits up to grace for the process to exit, then
// kills it. It returns how the process exited.
func (r *replica) signal(sig syscall.Signal, grace time.Duration) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s did not exit within %s of %v", r.name, grace, sig)
	}
	return r.exitErr()
}

// blackhole is a TCP proxy that can stop forwarding without closing
// anything, as a network partition that drops packets does. What arrives
// while it holds (bytes, new connections, closes) is delivered after the
// release at the time TCP would retransmit it: new connections on the SYN
// schedule (1, 3, 7, 15, 31, 63 s after the first try), bytes and closes on
// an RTO doubling from 200 ms (0.2, 0.6, 1.4, 3.0, 6.2 s…). A partition
// that heals is not over at once for the connections that lived through it.
type blackhole struct {
	ln     net.Listener
	target string

	accepted atomic.Int64 // connections opened through the proxy

	mu     sync.Mutex
	open   chan struct{} // closed while forwarding
	healed time.Time     // when the last hold ended
	conns  map[net.Conn]struct{}
}

// poolState reads the replica's Postgres pool gauges from /metrics, as
// "acquired=… idle=… constructing=…", or why it could not.
func (r *replica) poolState() string {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(r.url("/metrics"))
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "coinop_db_pool_connections{state=\""); ok {
			state, value, _ := strings.Cut(rest, "\"} ")
			parts = append(parts, state+"="+value)
		}
	}
	return strings.Join(parts, " ")
}

var (
	synRetries  = cumulative(time.Second, 6)
	dataRetries = cumulative(200*time.Millisecond, 12)
)

// cumulative returns the times of n retransmissions after a first send,
// the interval starting at first and doubling.
func cumulative(first time.Duration, n int) []time.Duration {
	var out []time.Duration
	at, step := time.Duration(0), first
	for range n {
		at += step
		out = append(out, at)
		step *= 2
	}
	return out
}

func newBlackhole(target string) (*blackhole, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &blackhole{ln: ln, target: target, open: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	close(b.open)
	go b.accept()
	return b, nil
}

func (b *blackhole) addr() string { return b.ln.Addr().String() }

// hold stops forwarding; release resumes it.
func (b *blackhole) hold() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.open:
		b.open = make(chan struct{})
	default:
	}
}

func (b *blackhole) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case <-b.open:
	default:
		b.healed = time.Now()
		close(b.open)
	}
}

// pass returns when something first sent at since gets through: at once
// unless the blackhole is holding, else at the first of its retransmissions
// after the release. It reports false when TCP would have given up.
func (b *blackhole) pass(since time.Time, retries []time.Duration) bool {
	b.mu.Lock()
	open := b.open
	b.mu.Unlock()
	select {
	case <-open:
		return true
	default:
	}
	<-open
	b.mu.Lock()
	healed := b.healed
	b.mu.Unlock()
	for _, r := range retries {
		if at := since.Add(r); !at.Before(healed) {
			time.Sleep(time.Until(at))
			return true
		}
	}
	return false
}

func (b *blackhole) track(c net.Conn, add bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if add {
		b.conns[c] = struct{}{}
	} else {
		delete(b.conns, c)
	}
}

func (b *blackhole) accept() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.accepted.Add(1)
		go b.handle(c)
	}
}

func (b *blackhole) handle(client net.Conn) {
	b.track(client, true)
	defer b.track(client, false)
	if !b.pass(time.Now(), synRetries) {
		client.Close()
		return
	}
	up, err := net.DialTimeout("tcp", b.target, 2*time.Second)
	if err != nil {
		client.Close()
		return
	}
	b.track(up, true)
	defer b.track(up, false)
	var wg sync.WaitGroup
	wg.Go(func() { b.pipe(up, client) })
	wg.Go(func() { b.pipe(client, up) })
	wg.Wait()
}

// pipe copies src to dst through the blackhole, and passes a close on.
func (b *blackhole) pipe(dst, src net.Conn) {
	defer src.Close()
	defer dst.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if !b.pass(time.Now(), dataRetries) {
			return // TCP gave up: both ends see a reset
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (b *blackhole) close() {
	b.release()
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(bytes.TrimSpace(b))
}

// admin sends an admin API request with the admin token and decodes a JSON
// answer into out (when not nil). It fails on any status but want.
func admin(ctx context.Context, r *replica, method, path, key string, body, out any, want int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url(path), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s on %s: %d %s", method, path, r.name, resp.StatusCode, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}
