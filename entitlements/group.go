package entitlements

import (
	"context"
	"sync"
	"time"
)

// Group commit: concurrent purchases are coalesced into batches, each one
// transaction and one commit for all its postings (see apply). There is no
// timer: a posting that finds a lane free is sent at once, alone; postings
// that arrive while every lane is busy queue up and leave together, up to
// maxBatch, as soon as a lane's batch returns. At low load that is the
// latency of one posting; at high load one commit pays for many.
//
// No goroutine outlives its work: the first posting that finds a lane free
// starts a runner, which drains the queue and exits when it is empty.
type groupCommit struct {
	l        *Ledger
	lanes    int
	maxBatch int
	timeout  time.Duration

	mu      sync.Mutex
	queue   []*waiter
	running int
}

type waiter struct {
	p    *posting
	out  postOutcome
	done chan struct{}
}

// Defaults for WithGroupCommit.
const (
	DefaultCommitLanes = 2
	DefaultMaxBatch    = 64
)

// WithGroupCommit sets how many batches of purchases may be in flight at once
// (lanes, each on its own connection) and how many purchases one batch may
// carry. lanes 0 or maxBatch 1 sends each purchase on its own.
func WithGroupCommit(lanes, maxBatch int) Option {
	return func(l *Ledger) { l.lanes, l.maxBatch = lanes, maxBatch }
}

// submit posts p with whichever batch takes it and waits for its outcome.
// The batch runs on its own context: the caller giving up does not cancel
// other callers' postings, and p may still commit after ctx ends (a retry
// with the same key then replays it).
func (g *groupCommit) submit(ctx context.Context, p *posting) (postResult, error) {
	w := &waiter{p: p, done: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, w)
	start := g.running < g.lanes
	if start {
		g.running++
	}
	g.mu.Unlock()
	if start {
		go g.run()
	}
	select {
	case <-w.done:
		return w.out.res, w.out.err
	case <-ctx.Done():
		return postResult{}, ctx.Err()
	}
}

func (g *groupCommit) run() {
	for {
		g.mu.Lock()
		if len(g.queue) == 0 {
			g.running--
			g.mu.Unlock()
			return
		}
		n := min(len(g.queue), g.maxBatch)
		batch := make([]*waiter, n)
		copy(batch, g.queue)
		rest := copy(g.queue, g.queue[n:])
		clear(g.queue[rest:])
		g.queue = g.queue[:rest]
		g.mu.Unlock()
		g.execute(batch)
	}
}

// execute posts one batch. If a batch of several fails as a whole
// (deadlock, serialization failure, lost connection, statement timeout, a
// key held by another transaction), every posting is posted again on its
// own, in arrival order, so that no posting fails for another's sake: the
// keys make that safe whether or not the batch committed.
func (g *groupCommit) execute(batch []*waiter) {
	ps := make([]*posting, len(batch))
	for i, w := range batch {
		ps[i] = w.p
	}
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
	outs, patches, err := g.l.postOwn(ctx, ps)
	cancel()
	if err == nil {
		g.l.metrics.batch(len(batch), false)
		// The cache hears of the batch before anyone is answered, so a
		// client reading right after its purchase sees it. That takes two
		// Redis round trips, which the lane does not wait for: it sends
		// the next batch meanwhile. Patches racing each other are safe, an
		// entry moves only from the version a patch expects.
		go func() {
			g.l.afterPatches(context.Background(), patches)
			for i, w := range batch {
				w.out = outs[i]
				close(w.done)
			}
		}()
		return
	}
	g.l.metrics.batch(len(batch), true)
	if len(batch) == 1 {
		// Alone, the posting's failure is its own, as without group commit:
		// the caller answers 503 and the client's retry with the key is safe.
		batch[0].out = postOutcome{err: postErr(batch[0].p, err)}
		close(batch[0].done)
		return
	}
	for _, w := range batch {
		ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
		outs, patches, err := g.l.postOwn(ctx, []*posting{w.p})
		cancel()
		if err != nil {
			w.out = postOutcome{err: postErr(w.p, err)}
		} else {
			g.l.afterPatches(context.Background(), patches)
			w.out = outs[0]
		}
		close(w.done)
	}
}

// writerMetrics counts batches, for tests and the benchmark.
type writerMetrics struct {
	mu                          sync.Mutex
	batches, postings, failures int64
	largest                     int
}

func (m *writerMetrics) batch(n int, failed bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.batches++
	m.postings += int64(n)
	m.largest = max(m.largest, n)
	if failed {
		m.failures++
	}
}

// WriterStats describes the group commit so far.
type WriterStats struct {
	// Batches is how many batches of purchases were sent, Postings how many
	// purchases they carried, Largest the most in one batch.
	Batches, Postings int64
	Largest           int
	// Fallbacks counts batches that failed as a whole and whose purchases
	// were then posted one by one.
	Fallbacks int64
}

// WriterStats returns the group commit's counters.
func (l *Ledger) WriterStats() WriterStats {
	m := &l.metrics
	m.mu.Lock()
	defer m.mu.Unlock()
	return WriterStats{Batches: m.batches, Postings: m.postings, Largest: m.largest, Fallbacks: m.failures}
}
