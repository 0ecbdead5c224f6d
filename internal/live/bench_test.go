package live

import (
	"context"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/testenv"
)

// BenchmarkFanout: 10,000 concurrent subscribers on one instance (hub B), spread over 100
// conversations and all on one conversation. Each iteration publishes one message through
// another instance (hub A), so it travels through Redis as it does in production, and waits
// until every subscriber of its conversation has received it.
//
//	go test -run XXX -bench Fanout -benchtime 200x ./internal/live
//
// Reported: bytes/subscriber (heap and stacks per subscription, including one goroutine that
// consumes it as gqlgen's writer would), and the publish-to-delivery latency until the
// message has reached all subscribers of its conversation: p50-ms, p99-ms (and the median
// single delivery, delivery-p50-ms). LIVE_BENCH_SUBSCRIBERS changes the 10,000.
func BenchmarkFanout(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("LIVE_BENCH_SUBSCRIBERS")); err == nil && v > 0 {
		n = v
	}
	for _, convs := range []int{100, 1} {
		b.Run(strconv.Itoa(n)+"subs-"+strconv.Itoa(convs)+"convs", func(b *testing.B) { benchFanout(b, n, convs) })
	}
}

func benchFanout(b *testing.B, subscribers, convs int) {
	url := testenv.NewRedis(b)
	store := newMemStore()
	for c := 1; c <= convs; c++ {
		store.conversation(int64(c), 1)
	}
	quiet := func(c *Config) { c.ReadyTimeout = 10 * time.Second }
	a := newTestHub(b, testenv.RedisClient(b, url), store, quiet)
	hub := newTestHub(b, testenv.RedisClient(b, url), store, quiet)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)

	// Per message in flight: how many receipts are still due, and when the last came.
	type pending struct {
		remaining atomic.Int64
		start     time.Time
		done      chan time.Time
	}
	var current [1 << 10]atomic.Pointer[pending] // by conversation
	var deliveryNanos []int64
	var dmu sync.Mutex
	sample := func(d time.Duration) {
		dmu.Lock()
		deliveryNanos = append(deliveryNanos, int64(d))
		dmu.Unlock()
	}

	before := memInUse()
	var consumers sync.WaitGroup
	for i := range subscribers {
		conv := int64(i%convs + 1)
		ch, err := hub.SubscribeMessages(ctx, 1, conv, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		first := i < convs // one subscriber per conversation samples single deliveries
		consumers.Go(func() {
			for m := range ch {
				p := current[m.ConversationID].Load()
				if first {
					sample(time.Since(p.start))
				}
				if p.remaining.Add(-1) == 0 {
					p.done <- time.Now()
				}
			}
		})
	}
	perSubscriber := float64(memInUse()-before) / float64(subscribers)
	perConv := int64(subscribers / convs)
	if subscribers%convs != 0 {
		b.Fatalf("%d subscribers do not spread evenly over %d conversations", subscribers, convs)
	}

	reachAll := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		conv := int64(i%convs + 1)
		m := store.commit(conv, "benchmark")
		p := &pending{done: make(chan time.Time, 1)}
		p.remaining.Store(perConv)
		current[conv].Store(p)
		p.start = time.Now()
		a.Publish(ctx, m)
		select {
		case end := <-p.done:
			reachAll = append(reachAll, end.Sub(p.start))
		case <-time.After(30 * time.Second):
			b.Fatalf("message %d reached %d of %d subscribers in 30s", i, perConv-p.remaining.Load(), perConv)
		}
	}
	b.StopTimer()
	if got := hub.metric("threadline_subscription_cutoffs_total"); got != 0 {
		b.Errorf("%v subscribers were cut off", got)
	}
	slices.Sort(reachAll)
	b.ReportMetric(perSubscriber, "bytes/subscriber") // after ResetTimer, which drops metrics
	b.ReportMetric(ms(percentile(reachAll, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(reachAll, 0.99)), "p99-ms")
	dmu.Lock()
	d := make([]time.Duration, len(deliveryNanos))
	for i, v := range deliveryNanos {
		d[i] = time.Duration(v)
	}
	dmu.Unlock()
	slices.Sort(d)
	b.ReportMetric(ms(percentile(d, 0.50)), "delivery-p50-ms")
	cancel()
	consumers.Wait()
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc + ms.StackInuse
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
