// Package admission sheds load instead of collapsing under it. A Limiter bounds how many GraphQL
// operations execute at once, with a limit that adapts to latency; a few more requests may wait
// a moment for a slot, and the rest are refused at once: over HTTP with 503, Retry-After and the
// code SERVICE_UNAVAILABLE (Middleware). A Budget, a token bucket, bounds how often something
// costly may happen per second.
//
// # Why
//
// The executed path is bound by the CPU: two cores, shared with PostgreSQL, PgBouncer and Redis.
// Without a bound, a load above capacity only adds operations in flight. They share the cores,
// each runs longer, none finishes sooner, and clients time out having been served nothing: with
// both caches off, an open load of 2,400 req/s against a capacity near 1,200 completed 985 req/s
// at a p99 of 11.6 s, and thousands of requests were never answered. With at most L operations
// executing, an admitted operation shares the cores with at most L−1 others, throughput stays at
// capacity as long as L keeps the cores busy, and a refused request costs the server little more
// than reading its headers, and its client one quick answer it can act on.
//
// # Invariants
//
//   - A slot is given out only while fewer operations than the limit hold one. The limit may fall
//     below the number in flight: nothing running is interrupted, and nobody is admitted until
//     enough have finished.
//   - No request waits more than MaxWait for a slot, and at most MaxQueue wait at once; a request
//     that finds the queue full is refused at once, and a waiter whose context ends leaves the
//     queue at once.
//   - Every admission is released exactly once. A Release called again does nothing; a slot
//     granted to a waiter at the moment it gave up is passed on, not lost. Release never waits
//     for anything but the Limiter's mutex, held for a few steps: it hands its slot to the next
//     waiter by closing a channel.
//
// # The limit
//
// The limit follows latency, in the manner of Netflix's concurrency-limits (its Gradient2
// limit). Finished operations are gathered in windows of at least 50 operations and 50 ms, and
// each window ends in one of three ways:
//
//   - If an operation in it was dropped (its deadline passed), the limit is multiplied by 0.9.
//   - If it was app-limited, the operations in flight never reaching half the limit, the limit
//     stays: the window says nothing about a limit the load did not reach.
//   - Otherwise its average latency a is compared with the baseline b. While a ≤ 3·b the limit
//     L grows by √L/5 (a fifth of the way to L + √L): fast while it is small, slower as it
//     grows. Past that it moves a fifth of the way toward g·L, where the gradient
//     g = max(0.5, 3·b/a) falls as latency rises: it shrinks by at most a tenth a window.
//
// The baseline is the latency of the current mix of operations without queueing, and what keeps
// it honest is where it is learned. An app-limited window, and a window at MinLimit (the least
// queueing the Limiter can make), set it to their average; any other window can only lower it,
// halfway to a lower average, never raise it. A baseline that rose with the latency it is
// compared with (Gradient2's long-term average) would creep up under sustained overload and take
// the limit with it, until the limit no longer limited anything. Here, on saturated cores, where
// latency grows in proportion to the number in flight, the limit settles where latency is about
// three times the baseline, and stays there. Three, not the 1.5 of CPU-bound work: an executed
// page spends part of its time waiting on PostgreSQL and PgBouncer, which run on the same cores,
// and throughput keeps rising with operations in flight well past the knee a CPU-bound model
// predicts (measured with both caches off on two cores: about 870 req/s at 4 in flight, 1,000 at
// 7, 1,300 at 32). With the baseline learned at MinLimit, a tolerance of 1.5 held the limit near
// 7 and the served rate at about 75% of capacity under twice the capacity offered
// (TestOverloadSheds); three holds it at 20 to 30. If the operations themselves become slower, the
// limit falls to MinLimit, the baseline is learned again there, and the limit climbs back.
// Until a baseline has been measured (a server started under full load) windows back off as for
// a drop, down to MinLimit if need be.
//
// Latency runs from admission to release: time spent waiting for a slot is not execution. A
// window's average covers whatever mix of operations finished in it; fifty of them keep it
// steady as long as the mix does not change from one window to the next.
//
// # The queue
//
// While the queue keeps up, it is FIFO: a burst, or a pool of clients larger than the limit (32
// connections in a closed loop against a limit of 10), waits its turn and every request is
// served. Once a request has been refused (it found the queue full, or waited MaxWait) arrivals
// exceed what the slots serve, and FIFO would hand each slot to the waiter that has waited
// longest: every admitted operation would carry nearly MaxWait of added latency and be the one
// whose client was most likely to have given up. From then on the queue is LIFO: a slot goes to
// the newest waiter, which has waited least, and the oldest, which would have been refused
// anyway, run out their MaxWait. The queue is FIFO again when it next empties. This is the
// "adaptive LIFO" Facebook runs in front of its servers; a queue that has not emptied since a
// refusal is a standing queue, not a burst.
//
// # Defaults, for a two-core server
//
//   - MinLimit 8: four operations per core, so that both cores stay busy while some operations
//     wait on PostgreSQL or Redis (with 4, throughput at the floor was a third below capacity).
//   - InitialLimit 20: PgBouncer's pool of 20 server connections. Operations past it would wait
//     for a connection anyway; the limit moves from there as soon as windows close.
//   - MaxLimit 64: an executed page costs about 0.6 ms of server CPU, so 64 operations in flight
//     on two cores already mean about 20 ms each. A higher limit could only let in queueing the
//     Limiter exists to prevent.
//   - MaxWait 50 ms: long enough for a pool of a few tens of clients to be served in turn (30
//     waiters drain in 20 ms at 1,500 req/s), and short next to the seconds of a collapse.
//   - MaxQueue 1,024: the queue is bounded in time by MaxWait; its length only bounds memory.
//     Answers from the caches take tens of microseconds, so a burst of several hundred requests
//     arriving at once on an idle server drains well within MaxWait; refusing it at a length
//     sized for the executed path (60 or so) would shed load the server can serve.
//   - RetryAfter 1 s: overload passes in seconds or not at all, and clients retry with jitter.
//
// # Use
//
// Middleware wraps the /query handler. Place it inside the request deadline, so that an
// operation whose deadline passes is reported as dropped, and inside the per-client rate limit,
// so that one client's flood is refused with 429 before it takes slots from everyone else.
// WebSocket upgrade requests pass through it untouched.
//
// Transports of long-lived connections admit each operation themselves, with the same Limiter:
//
//	release, err := limiter.Acquire(ctx)
//	if err != nil {
//		var ref *admission.Refusal
//		if errors.As(err, &ref) {
//			// answer the operation with an error: message ref.Error(), extensions ref.Extensions()
//		}
//		return // otherwise ctx ended
//	}
//	// run the operation, then:
//	release(admission.OutcomeOf(ctx))
//
// A subscription holds a slot while it sets up (membership, replay) and releases it when it
// starts streaming: a slot held for the life of a connection would be lost to execution, and its
// latency would say nothing about the server's. A query or mutation over WebSocket holds one for
// its execution, as over HTTP.
//
// # Metrics
//
// threadline_admission_limit, threadline_admission_in_flight and threadline_admission_queued
// (gauges); threadline_admission_admitted_total, threadline_admission_refused_total by reason
// (queue_full, wait_timeout), threadline_admission_canceled_total (waiters whose context ended);
// threadline_admission_queue_wait_seconds (the wait of admitted operations, 0 for most).
package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/internal/defaults"
)

// CodeServiceUnavailable is the public error code (extensions.code) of a refused request.
const CodeServiceUnavailable = "SERVICE_UNAVAILABLE"

// Defaults of Config; the package doc argues for each.
const (
	DefaultMinLimit     = 8
	DefaultMaxLimit     = 64
	DefaultInitialLimit = 20
	DefaultMaxQueue     = 1024
	DefaultMaxWait      = 50 * time.Millisecond
	DefaultRetryAfter   = time.Second
)

// Config configures a Limiter. Zero values take the defaults.
type Config struct {
	// MinLimit and MaxLimit bound the concurrency limit; InitialLimit is where it starts
	// (clamped between them).
	MinLimit, MaxLimit, InitialLimit int
	// MaxQueue is how many requests may wait for a slot at once. Negative: none wait; a request
	// that finds every slot taken is refused at once.
	MaxQueue int
	// MaxWait is the longest a request waits for a slot before it is refused.
	MaxWait time.Duration
	// RetryAfter is what a refused request is told to wait before it retries, rounded up to
	// whole seconds, at least one.
	RetryAfter time.Duration
	// Registerer receives the Limiter's metrics; nil: not registered.
	Registerer prometheus.Registerer
}

// Outcome is how an admitted operation ended, as Release reports it to the limit.
type Outcome int

const (
	// Success: the operation ran to its end (with or without GraphQL errors); its latency counts.
	Success Outcome = iota
	// Dropped: the operation ran out of time (its deadline passed); the limit backs off.
	Dropped
	// Ignored: the end says nothing about the server (the client went away, a panic); not
	// counted.
	Ignored
)

// OutcomeOf is the outcome of an operation that ran under ctx and has returned: Dropped if ctx's
// deadline passed, Ignored if ctx was canceled (the client went away), else Success.
func OutcomeOf(ctx context.Context) Outcome {
	switch err := ctx.Err(); {
	case err == nil:
		return Success
	case errors.Is(err, context.DeadlineExceeded):
		return Dropped
	default:
		return Ignored
	}
}

// Release gives back an admitted operation's slot and reports how the operation ended. Calls
// after the first do nothing.
type Release func(Outcome)

// Reason is why a request was refused; its value is the reason label of
// threadline_admission_refused_total.
type Reason string

const (
	QueueFull   Reason = "queue_full"   // every slot was taken and the queue was full
	WaitTimeout Reason = "wait_timeout" // the request waited MaxWait without a slot
)

// Refusal is the error of a refused Acquire. Its Error is the message for the client.
type Refusal struct {
	Reason     Reason
	RetryAfter time.Duration // whole seconds, at least one
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("server overloaded: retry after %d s", r.Seconds())
}

// Seconds is RetryAfter in whole seconds, rounded up, at least one: the value of the Retry-After
// header.
func (r *Refusal) Seconds() int { return max(1, int(math.Ceil(r.RetryAfter.Seconds()))) }

// Extensions are the GraphQL error extensions of the refusal: code SERVICE_UNAVAILABLE and
// retryAfter in seconds.
func (r *Refusal) Extensions() map[string]any {
	return map[string]any{"code": CodeServiceUnavailable, "retryAfter": r.Seconds()}
}

// Stats is a snapshot of a Limiter.
type Stats struct {
	Limit    int // the current concurrency limit
	InFlight int // admitted operations not yet released
	Queued   int // requests waiting for a slot
}

// Limiter is an adaptive concurrency limit with a wait queue bounded in length and in time.
type Limiter struct {
	maxQueue       int
	maxWait        time.Duration
	full, timedOut *Refusal
	refusedBody    []byte // the HTTP body of a refusal
	now            func() time.Time
	m              metrics

	mu       sync.Mutex
	alg      gradient
	limit    int // alg.current(), kept in step with it
	inflight int
	queue    waitQueue
}

// New returns a Limiter configured by cfg. It registers its metrics on cfg.Registerer, and
// panics if they are already registered there, like prometheus.MustRegister.
func New(cfg Config) *Limiter {
	cfg.MinLimit = defaults.Positive(cfg.MinLimit, DefaultMinLimit)
	cfg.MaxLimit = defaults.Positive(cfg.MaxLimit, DefaultMaxLimit)
	cfg.MaxLimit = max(cfg.MaxLimit, cfg.MinLimit)
	cfg.InitialLimit = defaults.Positive(cfg.InitialLimit, DefaultInitialLimit)
	cfg.InitialLimit = min(cfg.MaxLimit, max(cfg.MinLimit, cfg.InitialLimit))
	switch {
	case cfg.MaxQueue == 0:
		cfg.MaxQueue = DefaultMaxQueue
	case cfg.MaxQueue < 0:
		cfg.MaxQueue = 0
	}
	cfg.MaxWait = defaults.Positive(cfg.MaxWait, DefaultMaxWait)
	cfg.RetryAfter = defaults.Positive(cfg.RetryAfter, DefaultRetryAfter)
	secs := max(1, int(math.Ceil(cfg.RetryAfter.Seconds())))
	retryAfter := time.Duration(secs) * time.Second
	l := &Limiter{
		maxQueue: cfg.MaxQueue,
		maxWait:  cfg.MaxWait,
		full:     &Refusal{Reason: QueueFull, RetryAfter: retryAfter},
		timedOut: &Refusal{Reason: WaitTimeout, RetryAfter: retryAfter},
		now:      time.Now,
		alg:      newGradient(cfg.MinLimit, cfg.MaxLimit, cfg.InitialLimit),
		limit:    cfg.InitialLimit,
	}
	l.refusedBody = refusalBody(l.full)
	l.m = newMetrics(cfg.Registerer, l)
	return l
}

// Stats returns the Limiter's current state.
func (l *Limiter) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{Limit: l.limit, InFlight: l.inflight, Queued: l.queue.len}
}

// Acquire admits an operation: at once if a slot is free, else after waiting in the queue for at
// most MaxWait. It returns the Release to call when the operation ends, or an error: a *Refusal
// (the queue was full, or the wait ran out), or ctx's error if ctx ended first, in which case
// the request has left the queue.
func (l *Limiter) Acquire(ctx context.Context) (Release, error) {
	if err := ctx.Err(); err != nil {
		l.m.canceled.Inc()
		return nil, err
	}
	l.mu.Lock()
	if l.inflight < l.limit {
		// The queue is empty: whenever a slot frees or the limit rises, drain fills it first.
		l.inflight++
		l.alg.admitted(l.inflight)
		l.mu.Unlock()
		l.m.admitted.Inc()
		l.m.wait.Observe(0)
		return l.release(l.now()), nil
	}
	if l.queue.len >= l.maxQueue {
		l.queue.overflowed()
		l.mu.Unlock()
		l.m.refusedFull.Inc()
		return nil, l.full
	}
	w := &waiter{ready: make(chan struct{}), enqueued: l.now()}
	l.queue.push(w)
	l.mu.Unlock()

	timer := time.NewTimer(l.maxWait)
	defer timer.Stop()
	select {
	case <-w.ready:
	case <-timer.C:
		l.mu.Lock()
		if !w.granted {
			l.queue.remove(w)
			l.queue.overflowed()
			l.mu.Unlock()
			l.m.refusedTimeout.Inc()
			return nil, l.timedOut
		}
		l.mu.Unlock() // granted as the wait ran out: take it
	case <-ctx.Done():
		l.mu.Lock()
		if w.granted {
			// Granted as the context ended: pass the slot on.
			l.inflight--
			l.drain()
		} else {
			l.queue.remove(w)
		}
		l.mu.Unlock()
		l.m.canceled.Inc()
		return nil, ctx.Err()
	}
	start := l.now()
	l.m.admitted.Inc()
	l.m.wait.Observe(start.Sub(w.enqueued).Seconds())
	return l.release(start), nil
}

// release returns the Release of an operation admitted at start.
func (l *Limiter) release(start time.Time) Release {
	var done atomic.Bool
	return func(o Outcome) {
		if done.Swap(true) {
			return
		}
		now := l.now()
		l.mu.Lock()
		l.inflight--
		if o != Ignored && l.alg.observe(now, now.Sub(start), o == Dropped, l.inflight) {
			l.limit = l.alg.current()
		}
		l.drain()
		l.mu.Unlock()
	}
}

// drain grants free slots to waiters. l.mu must be held.
func (l *Limiter) drain() {
	for l.inflight < l.limit {
		w := l.queue.pop()
		if w == nil {
			return
		}
		w.granted = true
		l.inflight++
		l.alg.admitted(l.inflight)
		close(w.ready)
	}
}
