package catalog

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Notifier announces catalog changes to every replica over Redis pub/sub,
// on the channel <prefix>catalog. A message only says "the catalog changed"
// (its payload, the new version, is informational): a replica that gets one
// calls Live.Wake, and Live.Refresh reads the truth from Postgres. So a lost,
// duplicated or reordered message can delay a replica until its next poll
// but never make it serve the wrong version.
type Notifier struct {
	rdb     redis.UniversalClient
	channel string
	log     *slog.Logger
}

// NewNotifier returns a Notifier on rdb whose channel starts with prefix
// (COINOP_REDIS_PREFIX), so several deployments can share one Redis.
func NewNotifier(rdb redis.UniversalClient, prefix string) *Notifier {
	return &Notifier{rdb: rdb, channel: prefix + "catalog", log: slog.Default()}
}

// Channel returns the Redis channel the notifier uses.
func (n *Notifier) Channel() string { return n.channel }

// notifyTimeout bounds a publish: it runs after a commit, in the request,
// and a slow Redis must not hold the response up.
const notifyTimeout = 500 * time.Millisecond

// Notify announces that version was published. It returns the Redis error,
// if any; the version is committed either way.
func (n *Notifier) Notify(ctx context.Context, version int64) error {
	ctx, cancel := context.WithTimeout(ctx, notifyTimeout)
	defer cancel()
	if err := n.rdb.Publish(ctx, n.channel, strconv.FormatInt(version, 10)).Err(); err != nil {
		return fmt.Errorf("catalog: notify %s: %w", n.channel, err)
	}
	return nil
}

// Listen subscribes to the channel and wakes live for every message, until
// ctx ends. go-redis reconnects and resubscribes on its own after a Redis
// outage; each (re)subscription wakes live too, since messages sent while
// the connection was down are lost. Failures are logged once per outage.
func (n *Notifier) Listen(ctx context.Context, live *Live) {
	ps := n.rdb.Subscribe(ctx, n.channel)
	defer ps.Close()
	msgs := ps.ChannelWithSubscriptions(redis.WithChannelHealthCheckInterval(5 * time.Second))
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-msgs:
			if !ok {
				return
			}
			if sub, isSub := m.(*redis.Subscription); isSub {
				n.log.Debug("catalog notifications subscribed", "channel", sub.Channel, "kind", sub.Kind)
			}
			live.Wake()
		}
	}
}
