package admission_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/internal/admission"
)

// fixed returns a Limiter whose limit cannot move from n.
func fixed(n, maxQueue int, maxWait time.Duration) *admission.Limiter {
	return admission.New(admission.Config{MinLimit: n, MaxLimit: n, MaxQueue: maxQueue, MaxWait: maxWait})
}

func acquire(t *testing.T, l *admission.Limiter) admission.Release {
	t.Helper()
	release, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	return release
}

func reason(err error) admission.Reason {
	var ref *admission.Refusal
	if errors.As(err, &ref) {
		return ref.Reason
	}
	return ""
}

// waitFor polls until cond holds; it fails the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(100 * time.Microsecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func checkStats(t *testing.T, l *admission.Limiter, want admission.Stats) {
	t.Helper()
	if got := l.Stats(); got != want {
		t.Fatalf("stats (-want +got):\n-%+v\n+%+v", want, got)
	}
}

// queued starts a waiter in the background and returns once it is in the queue. The channel
// receives the waiter's Release (nil if refused) and error.
type result struct {
	release admission.Release
	err     error
}

func queued(t *testing.T, ctx context.Context, l *admission.Limiter) <-chan result {
	t.Helper()
	before := l.Stats().Queued
	ch := make(chan result, 1)
	go func() {
		release, err := l.Acquire(ctx)
		ch <- result{release, err}
	}()
	waitFor(t, "a waiter to join the queue", func() bool { return l.Stats().Queued == before+1 })
	return ch
}

func TestDefaults(t *testing.T) {
	l := admission.New(admission.Config{})
	checkStats(t, l, admission.Stats{Limit: admission.DefaultInitialLimit})
	var held []admission.Release
	for range admission.DefaultInitialLimit {
		held = append(held, acquire(t, l))
	}
	checkStats(t, l, admission.Stats{Limit: 20, InFlight: 20})
	for _, release := range held {
		release(admission.Ignored)
	}
	checkStats(t, l, admission.Stats{Limit: 20})
}

func TestRefusedAfterMaxWait(t *testing.T) {
	l := fixed(1, 10, 5*time.Millisecond)
	release := acquire(t, l)
	defer release(admission.Success)
	_, err := l.Acquire(context.Background())
	var ref *admission.Refusal
	if !errors.As(err, &ref) || ref.Reason != admission.WaitTimeout || ref.Seconds() != 1 {
		t.Fatalf("Acquire with the only slot held: %v, want a wait_timeout refusal with retry after 1 s", err)
	}
	if ref.Error() != "server overloaded: retry after 1 s" {
		t.Errorf("message %q", ref.Error())
	}
	checkStats(t, l, admission.Stats{Limit: 1, InFlight: 1})
}

func TestRefusedAtOnceWhenQueueFull(t *testing.T) {
	for _, c := range []struct {
		name     string
		maxQueue int
	}{{"queue of one", 1}, {"no queue", -1}} {
		t.Run(c.name, func(t *testing.T) {
			l := fixed(1, c.maxQueue, time.Hour)
			release := acquire(t, l)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			for range max(0, c.maxQueue) {
				queued(t, ctx, l)
			}
			// MaxWait is an hour: only a full queue can refuse this at all.
			if _, err := l.Acquire(context.Background()); reason(err) != admission.QueueFull {
				t.Fatalf("Acquire with the queue full: %v, want a queue_full refusal", err)
			}
			cancel()
			waitFor(t, "the canceled waiters to leave", func() bool { return l.Stats().Queued == 0 })
			release(admission.Success)
			checkStats(t, l, admission.Stats{Limit: 1})
		})
	}
}

func TestCanceledWaiterLeavesAtOnce(t *testing.T) {
	l := fixed(1, 10, time.Hour)
	release := acquire(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	ch := queued(t, ctx, l)
	cancel()
	r := <-ch
	if !errors.Is(r.err, context.Canceled) || r.release != nil {
		t.Fatalf("canceled waiter: %v, want context.Canceled and no Release", r.err)
	}
	checkStats(t, l, admission.Stats{Limit: 1, InFlight: 1})
	release(admission.Success)
	checkStats(t, l, admission.Stats{Limit: 1}) // the slot went to nobody

	if _, err := l.Acquire(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a context already canceled: %v", err)
	}
	checkStats(t, l, admission.Stats{Limit: 1})
}

// FIFO while the queue keeps up; LIFO from a refusal until the queue is empty again.
func TestQueueOrder(t *testing.T) {
	l := fixed(1, 3, time.Hour)
	ctx := context.Background()
	holder := acquire(t, l)
	a, b, c := queued(t, ctx, l), queued(t, ctx, l), queued(t, ctx, l)

	next := func(release admission.Release, want <-chan result, name string, others ...<-chan result) admission.Release {
		t.Helper()
		release(admission.Success)
		r := <-want
		if r.err != nil {
			t.Fatalf("%s: %v", name, r.err)
		}
		for _, o := range others {
			select {
			case r := <-o:
				t.Fatalf("admitted another waiter than %s: %v", name, r.err)
			default:
			}
		}
		return r.release
	}
	holder = next(holder, a, "the oldest waiter (FIFO)", b, c)

	d := queued(t, ctx, l) // the queue: b, c, d; full
	if _, err := l.Acquire(ctx); reason(err) != admission.QueueFull {
		t.Fatalf("Acquire with the queue full: %v", err)
	}
	holder = next(holder, d, "the newest waiter after a refusal (LIFO)", b, c)
	holder = next(holder, c, "the newest waiter (LIFO)", b)
	holder = next(holder, b, "the last waiter")

	e, f := queued(t, ctx, l), queued(t, ctx, l) // the queue emptied: FIFO again
	holder = next(holder, e, "the oldest waiter once the queue had emptied (FIFO)", f)
	holder = next(holder, f, "the last waiter")
	holder(admission.Success)
	checkStats(t, l, admission.Stats{Limit: 1})
}

func TestReleaseTwiceCountsOnce(t *testing.T) {
	l := fixed(1, -1, time.Hour)
	release := acquire(t, l)
	release(admission.Success)
	release(admission.Success)
	release(admission.Dropped)
	checkStats(t, l, admission.Stats{Limit: 1})
	second := acquire(t, l)
	// Had the extra calls counted, this would find a slot.
	if _, err := l.Acquire(context.Background()); reason(err) != admission.QueueFull {
		t.Fatalf("Acquire with the one slot held: %v, want a refusal", err)
	}
	second(admission.Success)
	release(admission.Success) // still nothing
	checkStats(t, l, admission.Stats{Limit: 1})
}

// Many goroutines acquire and release, some giving up while they wait, some waiting past
// MaxWait: operations in flight never exceed the limit, and every request is accounted for once.
func TestConcurrentAcquireRelease(t *testing.T) {
	const limit, workers, each = 3, 32, 200
	reg := prometheus.NewRegistry()
	l := admission.New(admission.Config{MinLimit: limit, MaxLimit: limit, MaxQueue: 8, MaxWait: 2 * time.Millisecond, Registerer: reg})
	var active, peak, admitted, refused, canceled atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range each {
				ctx, cancel := context.WithCancel(context.Background())
				if rng.IntN(8) == 0 {
					time.AfterFunc(time.Duration(rng.IntN(1000))*time.Microsecond, cancel)
				}
				release, err := l.Acquire(ctx)
				switch {
				case err == nil:
					admitted.Add(1)
					n := active.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					if rng.IntN(2) == 0 {
						time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
					}
					active.Add(-1)
					release([]admission.Outcome{admission.Success, admission.Dropped, admission.Ignored}[rng.IntN(3)])
					if rng.IntN(4) == 0 {
						release(admission.Success) // a second call does nothing
					}
				case reason(err) != "":
					refused.Add(1)
				case errors.Is(err, context.Canceled):
					canceled.Add(1)
				default:
					t.Errorf("Acquire: %v", err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Errorf("%d operations in flight at once, limit %d", p, limit)
	}
	checkStats(t, l, admission.Stats{Limit: limit})
	if got := admitted.Load() + refused.Load() + canceled.Load(); got != workers*each {
		t.Errorf("admitted %d + refused %d + canceled %d = %d, want %d", admitted.Load(), refused.Load(), canceled.Load(), got, workers*each)
	}
	counted := map[string]int64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				counted[mf.GetName()] += int64(c.GetValue())
			}
		}
	}
	for name, want := range map[string]int64{
		"threadline_admission_admitted_total": admitted.Load(),
		"threadline_admission_refused_total":  refused.Load(),
		"threadline_admission_canceled_total": canceled.Load(),
	} {
		if counted[name] != want {
			t.Errorf("%s = %d, want %d", name, counted[name], want)
		}
	}
}

// A slot granted to a waiter just as its context ends is passed on, never lost nor counted twice.
func TestGrantRacingCancel(t *testing.T) {
	l := fixed(1, 10, time.Hour)
	for range 300 {
		holder := acquire(t, l)
		ctx, cancel := context.WithCancel(context.Background())
		ch := queued(t, ctx, l)
		go cancel()
		holder(admission.Success)
		if r := <-ch; r.err == nil {
			checkStats(t, l, admission.Stats{Limit: 1, InFlight: 1})
			r.release(admission.Success)
		} else if !errors.Is(r.err, context.Canceled) {
			t.Fatal(r.err)
		}
		checkStats(t, l, admission.Stats{Limit: 1})
	}
}

func TestMetrics(t *testing.T) {
	// A wait that runs out.
	reg := prometheus.NewRegistry()
	l := admission.New(admission.Config{MinLimit: 2, MaxLimit: 2, MaxWait: time.Millisecond, Registerer: reg})
	a, b := acquire(t, l), acquire(t, l)
	if _, err := l.Acquire(context.Background()); reason(err) != admission.WaitTimeout {
		t.Fatalf("third Acquire: %v", err)
	}
	a(admission.Success)
	checkMetrics(t, reg, map[string]float64{
		"threadline_admission_admitted_total":                     2,
		"threadline_admission_canceled_total":                     0,
		"threadline_admission_refused_total{reason=queue_full}":   0,
		"threadline_admission_refused_total{reason=wait_timeout}": 1,
		"threadline_admission_limit":                              2,
		"threadline_admission_in_flight":                          1,
		"threadline_admission_queued":                             0,
		"threadline_admission_queue_wait_seconds_count":           2,
	})
	b(admission.Success)

	// A full queue, and a waiter that gives up.
	reg = prometheus.NewRegistry()
	l = admission.New(admission.Config{MinLimit: 2, MaxLimit: 2, MaxQueue: 1, MaxWait: time.Hour, Registerer: reg})
	a, b = acquire(t, l), acquire(t, l)
	ctx, cancel := context.WithCancel(context.Background())
	ch := queued(t, ctx, l)
	if _, err := l.Acquire(context.Background()); reason(err) != admission.QueueFull {
		t.Fatalf("Acquire with the queue full: %v", err)
	}
	want := map[string]float64{
		"threadline_admission_admitted_total":                     2,
		"threadline_admission_canceled_total":                     0,
		"threadline_admission_refused_total{reason=queue_full}":   1,
		"threadline_admission_refused_total{reason=wait_timeout}": 0,
		"threadline_admission_limit":                              2,
		"threadline_admission_in_flight":                          2,
		"threadline_admission_queued":                             1,
		"threadline_admission_queue_wait_seconds_count":           2,
	}
	checkMetrics(t, reg, want)
	cancel()
	<-ch
	a(admission.Success)
	b(admission.Success)
	want["threadline_admission_canceled_total"] = 1
	want["threadline_admission_in_flight"] = 0
	want["threadline_admission_queued"] = 0
	checkMetrics(t, reg, want)
}

// checkMetrics compares the counters, gauges and histogram counts gathered from reg, by name
// and labels, with want.
func checkMetrics(t *testing.T, reg *prometheus.Registry, want map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += "{" + lp.GetName() + "=" + lp.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				got[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				got[key] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				got[key+"_count"] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: -%v +%v", k, w, got[k])
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected metric %s", k)
		}
	}
}

// Acquire and Release back to back from many goroutines: with slots to spare (the fast path),
// and with four goroutines per CPU on two slots (most wait in the queue and are handed a slot by
// a Release).
func BenchmarkAcquireRelease(b *testing.B) {
	for _, c := range []struct {
		name               string
		limit, parallelism int
	}{
		{"free", 1 << 10, 1},
		{"contended", 2, 4},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := admission.New(admission.Config{MinLimit: c.limit, MaxLimit: c.limit, MaxQueue: 1 << 20, MaxWait: time.Minute})
			b.SetParallelism(c.parallelism)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					release, err := l.Acquire(ctx)
					if err != nil {
						b.Error(err)
						return
					}
					release(admission.Success)
				}
			})
		})
	}
}
