package admission

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWaitQueue(t *testing.T) {
	var q waitQueue
	ws := make([]*waiter, 5)
	for i := range ws {
		ws[i] = &waiter{}
		q.push(ws[i])
	}
	order := func(want ...int) {
		t.Helper()
		for _, i := range want {
			if w := q.pop(); w != ws[i] {
				t.Fatalf("pop: got another waiter than %d", i)
			}
		}
	}
	q.remove(ws[2]) // from the middle
	order(0)        // FIFO
	q.overflowed()
	order(4, 3) // LIFO
	if !q.lifo || q.len != 1 {
		t.Fatalf("lifo %v, len %d; want true, 1", q.lifo, q.len)
	}
	order(1)
	if q.lifo || q.len != 0 || q.list.Len() != 0 || q.pop() != nil {
		t.Fatalf("empty queue: lifo %v, len %d", q.lifo, q.len)
	}
	q.overflowed() // an empty queue stays FIFO
	if q.lifo {
		t.Fatal("empty queue turned LIFO")
	}
}

// A waiter that waited MaxWait while others wait behind it turns the queue LIFO.
func TestWaitTimeoutTurnsQueueLIFO(t *testing.T) {
	l := New(Config{MinLimit: 1, MaxLimit: 1, MaxWait: time.Millisecond})
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	standing := &waiter{ready: make(chan struct{})}
	l.mu.Lock()
	l.queue.push(standing) // a waiter that has not given up yet
	l.mu.Unlock()
	if _, err := l.Acquire(context.Background()); err != l.timedOut {
		t.Fatalf("Acquire: %v, want the wait_timeout refusal", err)
	}
	l.mu.Lock()
	lifo := l.queue.lifo
	l.queue.remove(standing)
	l.mu.Unlock()
	if !lifo {
		t.Fatal("queue still FIFO after a waiter timed out")
	}
	release(Success)
}

// Latencies reported through Release move the limit, and a rising limit admits waiters at once.
func TestLimiterFollowsLatency(t *testing.T) {
	l := New(Config{MinLimit: 2, MaxLimit: 32, InitialLimit: 8, MaxWait: time.Hour})
	now := time.Unix(1e9, 0)
	l.now = func() time.Time { return now }
	ctx := context.Background()
	// round admits n operations at once and releases them lat later; it spreads a window's
	// time over its rounds.
	round := func(n int, lat time.Duration) {
		t.Helper()
		releases := make([]Release, n)
		for i := range releases {
			r, err := l.Acquire(ctx)
			if err != nil {
				t.Fatalf("Acquire %d of %d: %v", i+1, n, err)
			}
			releases[i] = r
		}
		now = now.Add(lat)
		for _, r := range releases {
			r(Success)
		}
	}
	for range 2 * windowSamples { // one at a time: app-limited, the baseline is 1 ms
		round(1, time.Millisecond)
	}
	if got := l.Stats().Limit; got != 8 {
		t.Fatalf("limit %d after app-limited windows, want 8", got)
	}
	for range 40 { // the limit in use, latency at the baseline: it grows
		round(l.Stats().Limit, time.Millisecond)
		now = now.Add(windowTime / 4)
	}
	grown := l.Stats().Limit
	if grown <= 8 {
		t.Fatalf("limit %d with latency at the baseline, want it above 8", grown)
	}
	for range 40 { // five times the baseline: it shrinks
		round(l.Stats().Limit, 5*time.Millisecond)
		now = now.Add(windowTime / 4)
	}
	if shrunk := l.Stats().Limit; shrunk >= grown {
		t.Fatalf("limit %d after latency rose, want it below %d", shrunk, grown)
	}

	// A window that closes with waiters queued and raises the limit admits them on the spot:
	// one release, two waiters admitted.
	l.mu.Lock()
	l.alg = newGradient(2, 32, 2)
	l.alg.limit, l.alg.baseline = 2.9, 0.001
	l.limit = 2
	l.mu.Unlock()
	a, _ := l.Acquire(ctx)
	b, _ := l.Acquire(ctx)
	waiting := make(chan Release, 2)
	for i := range 2 {
		go func() {
			r, err := l.Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			waiting <- r
		}()
		for l.Stats().Queued != i+1 {
			time.Sleep(100 * time.Microsecond)
		}
	}
	l.mu.Lock()
	for range windowSamples - 1 { // all but the last sample of a saturated window at the baseline
		l.alg.observe(now, time.Millisecond, false, 2)
	}
	l.mu.Unlock()
	now = now.Add(windowTime)
	a(Success) // the window closes: 2.9 + √2.9/5 ≥ 3
	if got := l.Stats(); got != (Stats{Limit: 3, InFlight: 3}) {
		t.Fatalf("after the window: %+v, want limit 3 with both waiters admitted", got)
	}
	(<-waiting)(Ignored)
	(<-waiting)(Ignored)
	b(Ignored)
	if got := l.Stats(); got != (Stats{Limit: 3}) {
		t.Fatalf("at the end: %+v", got)
	}
}

// The middleware reports a request whose deadline passed as dropped, and one whose client went
// away not at all.
func TestMiddlewareReportsOutcome(t *testing.T) {
	for _, c := range []struct {
		name           string
		timeout        time.Duration // 0: none
		handler        func(r *http.Request, cancel context.CancelFunc)
		samples, drops int
	}{
		{"finished", 0, func(*http.Request, context.CancelFunc) {}, 1, 0},
		{"deadline passed", time.Millisecond, func(r *http.Request, _ context.CancelFunc) { <-r.Context().Done() }, 1, 1},
		{"client gone", 0, func(_ *http.Request, cancel context.CancelFunc) { cancel() }, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.timeout > 0 {
				ctx, cancel = context.WithTimeout(ctx, c.timeout)
				defer cancel()
			}
			l := New(Config{})
			h := Middleware(l)(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) { c.handler(r, cancel) }))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/query", nil).WithContext(ctx))
			l.mu.Lock()
			samples, drops := l.alg.samples, l.alg.drops
			l.mu.Unlock()
			if samples != c.samples || drops != c.drops {
				t.Errorf("window: %d samples, %d drops; want %d, %d", samples, drops, c.samples, c.drops)
			}
		})
	}
}
