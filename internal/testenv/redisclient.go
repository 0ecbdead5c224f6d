package testenv

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// PauseRedis makes the standalone Redis behind rdb hang for d (CLIENT PAUSE ... ALL): it keeps
// its data and connections but answers no client until d has passed, as a Redis stalled by a
// slow command or a fork would. The command goes on a connection of its own, with rdb's options
// but a read timeout of 2s, so that rdb's short timeouts do not fail it; that connection is
// closed when the test ends.
func PauseRedis(t testing.TB, rdb redis.UniversalClient, d time.Duration) {
	t.Helper()
	opts := *rdb.(*redis.Client).Options()
	opts.ReadTimeout = 2 * time.Second
	raw := redis.NewClient(&opts)
	t.Cleanup(func() { _ = raw.Close() })
	if err := raw.Do(context.Background(), "CLIENT", "PAUSE", strconv.FormatInt(d.Milliseconds(), 10), "ALL").Err(); err != nil {
		t.Fatalf("testenv: pausing redis: %v", err)
	}
}

// RedisClient returns a client of the standalone Redis at url with the short timeouts of a
// server's (dial 500ms, read and write 250ms, bounded by the context too) and no retries, so
// that a test sees an outage as the server would; it is closed when the test ends.
func RedisClient(t testing.TB, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 500*time.Millisecond, 250*time.Millisecond, 250*time.Millisecond
	opts.ContextTimeoutEnabled = true
	opts.MaxRetries = -1
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}
