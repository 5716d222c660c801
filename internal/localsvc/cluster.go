package localsvc

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisCluster is a throwaway Redis Cluster of masters without replicas,
// started by StartRedisCluster.
type RedisCluster struct {
	nodes []*Redis
}

// StartRedisCluster starts nodes (at least 3, as Redis Cluster requires)
// redis-server processes with cluster mode on, in dir, joins them with
// `redis-cli --cluster create`, and waits until every node reports
// cluster_state:ok, so the cluster takes writes for every slot as soon as it
// is returned.
//
// It returns ErrRedisNotInstalled when redis-server is missing, an error that
// says so when redis-cli is missing, and an error with redis-cli's output when
// the cluster does not form.
func StartRedisCluster(ctx context.Context, dir string, nodes int) (_ *RedisCluster, err error) {
	defer wrap(&err, "start redis cluster")
	if nodes < 3 {
		return nil, fmt.Errorf("%d nodes: Redis Cluster needs at least 3 masters", nodes)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, errors.New("redis-cli not found: install Redis, e.g. apt-get install redis-tools")
	}
	c := &RedisCluster{}
	defer func() {
		if err != nil {
			_ = c.Stop()
		}
	}()
	for range nodes {
		r, err := newRedis(dir, true)
		if err != nil {
			return nil, err
		}
		if err := r.startFresh(ctx); err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, r)
	}

	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.WaitDelay = time.Second
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("redis-cli --cluster create: %w\n%s", err, out)
	}
	if err := c.waitOK(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// waitOK polls CLUSTER INFO on every node until all say cluster_state:ok.
// redis-cli returns once the nodes agree on the configuration, but a node
// only turns its state to ok on its next cron tick.
func (c *RedisCluster) waitOK(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.nodes))
	for i, n := range c.nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: n.Addr(), PoolSize: 1})
		defer clients[i].Close()
	}
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		var notOK []string
		for _, cl := range clients {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				notOK = append(notOK, cl.Options().Addr)
			}
		}
		if len(notOK) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("nodes %v not cluster_state:ok: %w", notOK, ctx.Err())
		case <-tick.C:
		}
	}
}

// Addrs returns the host:port of every node, the seed list for
// redis.NewClusterClient.
func (c *RedisCluster) Addrs() []string {
	addrs := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		addrs[i] = n.Addr()
	}
	return addrs
}

// Stop kills every node and waits for them to exit. It returns the errors of
// the nodes that could not be stopped.
func (c *RedisCluster) Stop() error {
	var errs []error
	for _, n := range c.nodes {
		errs = append(errs, n.Stop())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("stop redis cluster: %w", err)
	}
	return nil
}
