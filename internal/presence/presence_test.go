package presence

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

type fixture struct {
	*Tracker
	rdb        *redis.Client
	roundTrips *testenv.RoundTripCounter
}

func newTracker(t *testing.T, url string, ttl time.Duration) fixture {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond, 200*time.Millisecond
	opts.MaxRetries = -1
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { rdb.Close() })
	counter := &testenv.RoundTripCounter{}
	rdb.AddHook(counter)
	tr := New(Config{
		Redis: rdb, Breaker: redisclient.NewBreaker(redisclient.BreakerConfig{CallTimeout: time.Second}),
		TTL: ttl, Registerer: prometheus.NewRegistry(),
	})
	t.Cleanup(tr.Close)
	return fixture{Tracker: tr, rdb: rdb, roundTrips: counter}
}

func (f fixture) online(t *testing.T, ids ...int64) []bool {
	t.Helper()
	got, err := f.Online(context.Background(), ids)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// A request makes its viewer online for TTL; requests within Refresh write nothing more.
func TestSeen(t *testing.T) {
	t.Parallel()
	f := newTracker(t, testenv.NewRedis(t), time.Minute)
	ctx := t.Context()
	if diff := cmp.Diff([]bool{false, false}, f.online(t, 1, 2)); diff != "" {
		t.Fatalf("before (-want +got):\n%s", diff)
	}
	f.Seen(ctx, 1)
	ttl, err := f.rdb.PTTL(ctx, Key(1)).Result()
	if err != nil || ttl <= time.Minute || ttl > 75*time.Second {
		t.Fatalf("key TTL %v (%v), want the TTL and a refresh period: 75 s", ttl, err)
	}
	before := f.roundTrips.Load()
	for range 100 {
		f.Seen(ctx, 1)
	}
	if n := f.roundTrips.Load() - before; n != 0 {
		t.Fatalf("100 more requests within the refresh period cost %d round trips, want 0", n)
	}
	if got := count(t, f.m.writes); got != 1 {
		t.Fatalf("%v writes, want 1", got)
	}
	if diff := cmp.Diff([]bool{true, false}, f.online(t, 1, 2)); diff != "" {
		t.Fatalf("after (-want +got):\n%s", diff)
	}
}

// Reading any number of users is one round trip.
func TestOnlineIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	f := newTracker(t, testenv.NewRedis(t), time.Minute)
	ids := make([]int64, 250)
	want := make([]bool, 250)
	for i := range ids {
		ids[i] = int64(i + 1)
		if i%3 == 0 {
			f.Seen(t.Context(), ids[i])
			want[i] = true
		}
	}
	before := f.roundTrips.Load()
	if diff := cmp.Diff(want, f.online(t, ids...)); diff != "" {
		t.Fatalf("online (-want +got):\n%s", diff)
	}
	if n := f.roundTrips.Load() - before; n != 1 {
		t.Fatalf("%d round trips, want 1", n)
	}
	if got := f.online(t); len(got) != 0 {
		t.Fatalf("no users: %v", got)
	}
}

// A user with an open connection stays online however long it lasts, and goes offline TTL
// (give or take a refresh) after it closes.
func TestConnectedStaysOnline(t *testing.T) {
	t.Parallel()
	const ttl = 400 * time.Millisecond
	f := newTracker(t, testenv.NewRedis(t), ttl)
	disconnect := f.Connected(t.Context(), 7)
	for range 6 { // three TTLs
		time.Sleep(ttl / 2)
		if !f.online(t, 7)[0] {
			t.Fatal("offline while connected")
		}
	}
	disconnect()
	disconnect() // once only
	deadline := time.Now().Add(10 * ttl)
	for f.online(t, 7)[0] {
		if time.Now().After(deadline) {
			t.Fatal("still online long after the connection closed")
		}
		time.Sleep(ttl / 10)
	}
	f.mu.Lock()
	conns := len(f.conns)
	f.mu.Unlock()
	if conns != 0 {
		t.Fatalf("%d users with connections left", conns)
	}
}

// The middleware marks the viewer of an authenticated request, and nobody for an anonymous one.
func TestMiddleware(t *testing.T) {
	t.Parallel()
	f := newTracker(t, testenv.NewRedis(t), time.Minute)
	served := 0
	h := f.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ }))
	anon := httptest.NewRequest("POST", "/query", nil)
	h.ServeHTTP(httptest.NewRecorder(), anon)
	viewer := httptest.NewRequest("POST", "/query", nil)
	h.ServeHTTP(httptest.NewRecorder(), viewer.WithContext(auth.WithViewer(viewer.Context(), 5)))
	if served != 2 {
		t.Fatalf("served %d requests, want 2", served)
	}
	if diff := cmp.Diff([]bool{true}, f.online(t, 5)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if n, err := f.rdb.DBSize(t.Context()).Result(); err != nil || n != 1 {
		t.Fatalf("%d keys (%v), want the viewer's only", n, err)
	}
}

// Without Redis everyone reads as offline, and nothing fails.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	f := newTracker(t, "redis://127.0.0.1:1/0", time.Minute)
	f.Seen(t.Context(), 1)
	disconnect := f.Connected(t.Context(), 2)
	defer disconnect()
	if diff := cmp.Diff([]bool{false, false}, f.online(t, 1, 2)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if got := count(t, f.m.readFailures); got != 1 {
		t.Fatalf("%v read failures, want 1", got)
	}
	if got := count(t, f.m.writeFailures); got != 2 {
		t.Fatalf("%v write failures, want 2", got)
	}
	// A failed write is not throttled: the next request tries again.
	f.mu.Lock()
	_, throttled := f.written[1]
	f.mu.Unlock()
	if throttled {
		t.Fatal("a failed write throttles the next one")
	}
}

func count(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}
