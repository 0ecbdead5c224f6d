package apptest

import (
	"context"
	"net"
	"strconv"
	"testing"

	"github.com/threadline/threadline/internal/devstack"
)

// Redis is a redis-server of one test's own, for tests of an outage: Stop takes it away under
// a running server and Restart brings it back on the same address, so that the server's
// clients reconnect without being told. It is stopped when the test ends, whatever state the
// test left it in.
type Redis struct {
	// Addr is its host:port, the same after Restart.
	Addr string
	dir  string
	stop func() error // nil while stopped
}

// StartRedis starts a redis-server with a data directory of the test's own.
func StartRedis(t testing.TB) *Redis {
	t.Helper()
	r := &Redis{dir: t.TempDir()}
	addr, stop, err := devstack.StartRedisServer(context.Background(), r.dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	r.Addr, r.stop = addr, stop
	t.Cleanup(func() {
		if r.stop != nil {
			_ = r.stop()
		}
	})
	return r
}

// URL is the URL of its database 0, for Options.RedisURL.
func (r *Redis) URL() string { return "redis://" + r.Addr + "/0" }

// Stop stops the server, failing the test if it cannot.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	stop := r.stop
	r.stop = nil
	if stop == nil {
		t.Fatal("apptest: Redis.Stop: not running")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Restart starts the stopped server again on its address, with its data directory.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	if r.stop != nil {
		t.Fatal("apptest: Redis.Restart: still running")
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
		t.Fatal(err)
	}
	r.stop = stop
}
