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
