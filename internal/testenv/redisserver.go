package testenv

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/threadline/threadline/internal/devstack"
)

// Redis is a redis-server of one test's own, for tests of an outage: Stop takes it away under
// the code under test and Restart brings it back on the same address with the same data
// directory, so that clients configured with Addr reconnect without being told. It is stopped
// when the test ends, whatever state the test left it in. Its methods are called from the test's
// goroutine (or its subtests', run in turn), which alone changes its state.
type Redis struct {
	// Addr is its host:port, the same after Restart.
	Addr string
	dir  string
	stop func() error // nil while stopped
}

// StartRedis starts a redis-server of the test's own with a data directory of its own. Like
// NewRedis, it skips the test under -short.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: needs Redis; skipped with -short")
	}
	r := &Redis{dir: t.TempDir()}
	addr, stop, err := devstack.StartRedisServer(context.Background(), r.dir, 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	r.Addr, r.stop = addr, stop
	t.Cleanup(func() {
		if r.stop != nil {
			if err := r.stop(); err != nil {
				t.Errorf("testenv: stopping redis: %v", err)
			}
		}
	})
	return r
}

// URL is the redis:// URL of its database 0.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Stop stops the server, failing the test if it cannot or is not running.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	stop := r.stop
	r.stop = nil
	if stop == nil {
		t.Fatal("testenv: Redis.Stop: not running")
	}
	if err := stop(); err != nil {
		t.Fatalf("testenv: stopping redis: %v", err)
	}
}

// Restart starts the stopped server again on its address, with its data directory.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	if r.stop != nil {
		t.Fatal("testenv: Redis.Restart: still running")
	}
	_, portText, err := net.SplitHostPort(r.Addr)
	if err != nil {
		t.Fatal(err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatal(err)
	}
	_, stop, err := devstack.StartRedisServer(context.Background(), r.dir, port)
	if err != nil {
		t.Fatalf("testenv: restarting redis: %v", err)
	}
	r.stop = stop
}
