package testenv

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/devstack"
)

// NewRedisCluster starts a three-master Redis Cluster of the test's own (stopped when the test
// ends) and returns its nodes' addresses. Like NewRedis, it skips the test under -short.
func NewRedisCluster(t testing.TB) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: needs redis-server; skipped with -short")
	}
	addrs, stop, err := devstack.StartRedisCluster(context.Background(), t.TempDir(), [3]int{})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("testenv: stopping the redis cluster: %v", err)
		}
	})
	return addrs
}

// ShardSubscribers returns how many sharded Pub/Sub subscriptions (SSUBSCRIBE) channel has on
// the masters of cc, summed: a channel subscribed once, on its slot's node, has 1.
func ShardSubscribers(ctx context.Context, cc *redis.ClusterClient, channel string) (int64, error) {
	var n atomic.Int64 // the masters answer concurrently
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		m, err := node.PubSubShardNumSub(ctx, channel).Result()
		n.Add(m[channel])
		return err
	})
	return n.Load(), err
}

// NewRedisClusterClients starts a Redis Cluster of the test's own (NewRedisCluster) and returns n
// clients of it, as n server instances would hold, each with connections of its own; they are
// closed when the test ends.
func NewRedisClusterClients(t testing.TB, n int) []*redis.ClusterClient {
	t.Helper()
	addrs := NewRedisCluster(t)
	clients := make([]*redis.ClusterClient, n)
	for i := range clients {
		clients[i] = redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		t.Cleanup(func() { _ = clients[i].Close() })
	}
	return clients
}

// WantOneShardSubscriber fails the test unless each of channels has exactly one sharded Pub/Sub
// subscription on the masters of cc (ShardSubscribers): one subscription per channel, on its
// slot's node.
func WantOneShardSubscriber(t testing.TB, cc *redis.ClusterClient, channels ...string) {
	t.Helper()
	for _, channel := range channels {
		if n, err := ShardSubscribers(t.Context(), cc, channel); err != nil || n != 1 {
			t.Fatalf("channel %s: %d shard subscriptions (%v), want 1", channel, n, err)
		}
	}
}
