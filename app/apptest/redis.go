package apptest

import (
	"testing"

	"github.com/threadline/threadline/internal/testenv"
)

// Redis is a redis-server of one test's own, for tests of an outage: Stop takes it away under
// a running server and Restart brings it back on the same address, so that the server's
// clients reconnect without being told (testenv.Redis; its URL is for Options.RedisURL).
type Redis = testenv.Redis

// StartRedis starts a redis-server with a data directory of the test's own (testenv.StartRedis).
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	return testenv.StartRedis(t)
}
