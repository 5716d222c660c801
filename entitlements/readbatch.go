package entitlements

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// entryReader sends the entry reads (HMGET e v d) of concurrent checks to
// Redis together. On the game server's hot path a cached check is one
// Redis round trip, and on a busy machine the round trip's write and read
// system calls, and Redis' own per-read work, cost more than everything
// else the check does. A read that finds fewer than max round trips in
// flight goes alone, at once; one that finds max in flight waits for the
// first of them to come back and then goes with every other read that
// waited, as one pipeline. At low load nothing waits; under load, reads
// share round trips instead of queueing for connections.
//
// Each read is still one HMGET of its own key, sent after the read began
// and answered by Redis as it stands then, so what a caller may trust
// (epochs, version floors, identity checks; see Cache) is unchanged: the
// caller takes the epoch before the read and looks at the dial counters
// after it, exactly as with a read of its own.
//
// No goroutine runs in the background: the read whose round trip comes
// back hands the waiting reads to one of them, which sends them.
type entryReader struct {
	c   *Cache
	max int // round trips in flight at most before reads wait to share one

	mu       sync.Mutex
	inflight int
	pending  []*entryRead
}

// entryRead is one read waiting for, or holding, its answer.
type entryRead struct {
	key  string
	vals []any
	err  error
	// wake is signalled once: with batch set, this read sends batch (which
	// holds it); otherwise its answer is in vals and err.
	wake  chan struct{}
	batch []*entryRead
}

// read returns HMGET key e v d, sent alone or with other reads.
func (b *entryReader) read(ctx context.Context, key string) ([]any, error) {
	r := &entryRead{key: key}
	b.mu.Lock()
	if b.inflight < b.max {
		b.inflight++
		b.mu.Unlock()
		b.send(ctx, r, []*entryRead{r})
		return r.vals, r.err
	}
	r.wake = make(chan struct{}, 1)
	b.pending = append(b.pending, r)
	b.mu.Unlock()
	// No select on ctx: a read that gave up could not be handed the next
	// batch, and the round trip it waits for is bounded by the client's
	// read and write timeouts.
	<-r.wake
	if batch := r.batch; batch != nil {
		r.batch = nil
		b.send(ctx, r, batch)
	}
	return r.vals, r.err
}

// send makes one round trip for batch on behalf of self (one of its reads),
// answers every read in it, and hands the reads that queued meanwhile to
// one of them (or, with none, frees its place in flight).
func (b *entryReader) send(ctx context.Context, self *entryRead, batch []*entryRead) {
	// The round trip serves other callers too: the sender's cancellation
	// must not fail their reads (the client's timeouts still bound it).
	ctx = context.WithoutCancel(ctx)
	if len(batch) == 1 {
		r := batch[0]
		r.err = b.c.do(func() error {
			var err error
			r.vals, err = b.c.rdb.HMGet(ctx, r.key, "e", "v", "d").Result()
			return err
		})
	} else {
		cmds := make([]*redis.SliceCmd, len(batch))
		err := b.c.do(func() error {
			_, err := b.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, r := range batch {
					cmds[i] = p.HMGet(ctx, r.key, "e", "v", "d")
				}
				return nil
			})
			return err
		})
		for i, r := range batch {
			if err != nil {
				r.err = err
				continue
			}
			r.vals, r.err = cmds[i].Result()
		}
		b.c.metrics.sharedReads.Add(float64(len(batch)))
	}

	b.mu.Lock()
	next := b.pending
	b.pending = nil
	if len(next) == 0 {
		b.inflight--
	}
	b.mu.Unlock()
	for _, r := range batch {
		if r != self {
			r.wake <- struct{}{}
		}
	}
	if len(next) > 0 {
		// The place in flight passes to the first waiting read.
		next[0].batch = next
		next[0].wake <- struct{}{}
	}
}
