package ratelimit_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/ratelimit"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// A real Redis: the budget per client, 429 with Retry-After and RATE_LIMITED beyond it, and,
// with Redis stopped, every request served and counted as failed open.
func TestLimitThenFailOpen(t *testing.T) {
	testenv.SkipShort(t, "starts redis-server")
	ctx := context.Background()
	addr, stop, err := devstack.StartRedisServer(ctx, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	rdb, err := redisclient.Open("redis://"+addr+"/0", redisclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	limited := prometheus.NewCounter(prometheus.CounterOpts{Name: "limited"})
	failOpen := prometheus.NewCounter(prometheus.CounterOpts{Name: "fail_open"})
	lim := ratelimit.New(ratelimit.Config{
		Redis: rdb, Breaker: redisclient.NewBreaker(redisclient.BreakerConfig{FailureThreshold: 3, OpenTimeout: time.Minute}),
		Rate: 1, Burst: 2, Limited: limited, FailOpen: failOpen,
	})
	h := lim.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	do := func(user int64, remote string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/query", nil)
		r.RemoteAddr = remote
		r.Header.Set("X-Forwarded-For", "203.0.113.9") // not trusted
		if user != 0 {
			r = r.WithContext(auth.WithViewer(r.Context(), user))
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	for _, c := range []struct {
		user   int64
		remote string
	}{{7, "192.0.2.1:1000"}, {0, "192.0.2.1:1001"}, {0, "[2001:db8::1]:1000"}} {
		for i := range 2 {
			if w := do(c.user, c.remote); w.Code != http.StatusOK {
				t.Fatalf("%+v request %d: %d", c, i, w.Code)
			}
		}
		w := do(c.user, c.remote)
		var body struct {
			Errors []struct {
				Message    string
				Extensions map[string]any
			}
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") != "1" || len(body.Errors) != 1 || body.Errors[0].Extensions["code"] != "RATE_LIMITED" {
			t.Fatalf("%+v over the limit: %d %q %s", c, w.Code, w.Header().Get("Retry-After"), w.Body)
		}
	}
	if n := value(limited); n != 3 {
		t.Fatalf("limited = %v, want 3", n)
	}
	// ChargeClient (an operation over a WebSocket or an event stream) draws on the budgets the
	// middleware does: the viewer's whatever the address, else the address's.
	for _, c := range []struct {
		user    int64
		addr    string
		limited bool
	}{{7, "198.51.100.1", true}, {0, "192.0.2.1", true}, {0, "2001:db8::1", true}, {0, "198.51.100.1", false}} {
		ctx := context.Background()
		if c.user != 0 {
			ctx = auth.WithViewer(ctx, c.user)
		}
		err := lim.ChargeClient(ctx, c.addr, 1)
		if (err != nil) != c.limited {
			t.Fatalf("ChargeClient %+v: %v", c, err)
		}
	}

	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		if w := do(7, "192.0.2.1:1000"); w.Code != http.StatusOK {
			t.Fatalf("Redis down, request %d: %d", i, w.Code)
		}
	}
	if n := value(failOpen); n != 10 {
		t.Fatalf("fail open = %v, want 10", n)
	}
}

func TestKey(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/query", nil)
	r.RemoteAddr = "198.51.100.7:5555"
	if k := ratelimit.Key(r); k != "ip:198.51.100.7" {
		t.Errorf("anonymous: %q", k)
	}
	if k := ratelimit.Key(r.WithContext(auth.WithViewer(r.Context(), 42))); k != "user:42" {
		t.Errorf("viewer: %q", k)
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
