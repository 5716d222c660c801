package entitlements

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/coinop/coinop/internal/testenv"
)

// holdFirstRead blocks the first HMGET sent on its own until release is
// closed, and counts the pipelines of HMGETs sent.
type holdFirstRead struct {
	held      chan struct{}
	release   chan struct{}
	once      sync.Once
	pipelines atomic.Int64
}

func (h *holdFirstRead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdFirstRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "hmget" {
			h.once.Do(func() {
				close(h.held)
				<-h.release
			})
		}
		return next(ctx, cmd)
	}
}

func (h *holdFirstRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if len(cmds) > 0 && cmds[0].Name() == "hmget" {
			h.pipelines.Add(1)
		}
		return next(ctx, cmds)
	}
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// Reads that find every round trip in flight wait, then go together in one
// pipeline, each answered with its own key's entry.
func TestConcurrentEntryReadsShareOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	hook := &holdFirstRead{held: make(chan struct{}), release: make(chan struct{})}
	rdb.AddHook(hook)
	c := NewCache(rdb, pool, CacheConfig{Prefix: prefix, ReadRoundTrips: 1})
	const n = 10
	for i := range n {
		if err := rdb.HSet(ctx, fmt.Sprintf("%sk%d", prefix, i), "e", i, "v", i*10, "d", fmt.Sprint("data-", i)).Err(); err != nil {
			t.Fatal(err)
		}
	}
	got := make([][]any, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	read := func(i int) {
		defer wg.Done()
		got[i], errs[i] = c.reader.read(ctx, fmt.Sprintf("%sk%d", prefix, i))
	}
	wg.Add(1)
	go read(0)
	<-hook.held // the first read is in flight, alone
	for i := 1; i < n; i++ {
		wg.Add(1)
		go read(i)
	}
	waitFor(t, "the other reads to queue", func() bool {
		c.reader.mu.Lock()
		defer c.reader.mu.Unlock()
		return len(c.reader.pending) == n-1
	})
	close(hook.release)
	wg.Wait()
	for i := range n {
		want := []any{fmt.Sprint(i), fmt.Sprint(i * 10), fmt.Sprint("data-", i)}
		if errs[i] != nil || fmt.Sprint(got[i]) != fmt.Sprint(want) {
			t.Errorf("read %d = %v, %v; want %v", i, got[i], errs[i], want)
		}
	}
	if p := hook.pipelines.Load(); p != 1 {
		t.Errorf("%d pipelines for the %d queued reads, want 1", p, n-1)
	}
	var m dto.Metric
	if err := c.metrics.sharedReads.Write(&m); err != nil || m.GetCounter().GetValue() != n-1 {
		v := m.GetCounter().GetValue()
		t.Errorf("shared reads = %v, want %d", v, n-1)
	}
	c.reader.mu.Lock()
	defer c.reader.mu.Unlock()
	if c.reader.inflight != 0 || len(c.reader.pending) != 0 {
		t.Errorf("after the reads: %d in flight, %d pending", c.reader.inflight, len(c.reader.pending))
	}
}

// With every read sharing round trips, a read that starts after a change
// has committed still sees the change: the shared pipeline is sent after
// the read began.
func TestSharedReadsNeverServeHoldingsFromBeforeACommit(t *testing.T) {
	ctx := context.Background()
	pool, _ := testenv.NewPool(t)
	rdb, prefix := testenv.RedisClient(t)
	l := New(pool, goldCatalog(t), WithCache(NewCache(rdb, pool, CacheConfig{Prefix: prefix, ReadRoundTrips: 1})))
	grantGold(t, l, "fund")
	for round := 1; round <= 20; round++ {
		// The change commits while other checks of the player are in flight.
		stop := make(chan struct{})
		var background sync.WaitGroup
		for range 4 {
			background.Add(1)
			go func() {
				defer background.Done()
				for {
					select {
					case <-stop:
						return
					default:
						if _, err := l.Holdings(ctx, "p1"); err != nil {
							t.Error(err)
							return
						}
					}
				}
			}()
		}
		grantGold(t, l, fmt.Sprint("k", round))
		want := int64(100 * (round + 1))
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				h, err := l.Holdings(ctx, "p1")
				if err != nil || h.Currencies["gold"] != want {
					t.Errorf("round %d: a check after the grant saw %v v%d (%v), want gold %d", round, h.Currencies, h.Version, err, want)
				}
			}()
		}
		wg.Wait()
		close(stop)
		background.Wait()
	}
}
