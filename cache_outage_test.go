package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/internal/testenv"
)

// TestRedisOutage stops Redis under a running server: every read still succeeds from
// PostgreSQL, /health/cache shows the breaker open, /readyz reports PostgreSQL fine and Redis
// down; Redis restarted, hits resume within seconds without a server restart.
func TestRedisOutage(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skips under -short
	rds := apptest.StartRedis(t)
	srv := apptest.Start(t, apptest.Options{Seed: true, RedisURL: rds.URL(), Configure: func(c *app.Config) {
		c.RedisBreakerOpen = 500 * time.Millisecond
		c.ResponseCacheEnabled = false // it would answer the repeated reads before the history cache sees them
	}})

	demo := srv.Client(1)
	read := func() {
		t.Helper()
		demo.Query(t, `{ conversations(first: 3) { edges { node { messages(limit: 20) { items { seq sender { name } } } } } } }`, nil, nil)
	}
	read()
	read()
	if h := cacheHealthOf(t, &srv.Endpoint); h.Hits == 0 || h.Breaker != "closed" {
		t.Fatalf("before the outage: %+v", h)
	}

	rds.Stop(t)
	for range 30 {
		read() // fails the test on any error
	}
	h := cacheHealthOf(t, &srv.Endpoint)
	if h.Breaker != "open" || h.Evictions != nil {
		t.Fatalf("during the outage: %+v", h)
	}
	status, ready := srv.Get("/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(ready, `"postgres":"ok"`) || !strings.Contains(ready, `"redis":"connection refused"`) {
		t.Fatalf("readyz during the outage: %d %s", status, ready)
	}

	rds.Restart(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := cacheHealthOf(t, &srv.Endpoint).Hits
		read()
		read()
		if h := cacheHealthOf(t, &srv.Endpoint); h.Hits > before && h.Breaker == "closed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cache hits 10s after Redis came back: %+v", cacheHealthOf(t, &srv.Endpoint))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _ := srv.Get("/readyz"); status != http.StatusOK {
		t.Fatalf("readyz after the outage: %d", status)
	}
}

// cacheHealth is the history cache's part of /health/cache, and the response cache's hits.
type cacheHealth struct {
	Hits, Misses, Errors int64
	HitRatio             float64
	Evictions            *int64
	Breaker              string
	ResponseCache        *struct{ Hits, LocalHits int64 }
}

// redisHits counts the hits Redis answered, in either cache: the history cache's, and the
// response cache's beyond those of its in-process tier. Under a load that repeats its reads the
// response cache answers them once filled, and the history cache behind it sees no more reads.
func (h cacheHealth) redisHits() int64 {
	n := h.Hits
	if r := h.ResponseCache; r != nil {
		n += r.Hits - r.LocalHits
	}
	return n
}

func cacheHealthOf(t *testing.T, srv *apptest.Endpoint) cacheHealth {
	t.Helper()
	_, body := srv.GetOps("/health/cache")
	var h cacheHealth
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/health/cache: %v: %s", err, body)
	}
	return h
}
