package live

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// Events reach subscribers on two paths: handled by the topic's fanout while a subscriber is
// direct, or by the subscriber's goroutine (gaps, repeats, MemberRemoved, a consumer that has
// fallen behind). Whatever the mix, each stream receives exactly what it would on the
// subscriber's goroutine alone: every message (messages stream) or event (events stream) once,
// in order. The schedule is random: lost publishes (gaps filled from the store), events
// published again, another member leaving and coming back, and consumers that pause so that
// their channels fill up.
func TestDirectAndQueuedDeliveryAgree(t *testing.T) {
	t.Parallel()
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			t.Parallel()
			url := testenv.NewRedis(t)
			store := newMemStore()
			store.conversation(1, 10, 11)
			a := newTestHub(t, testenv.RedisClient(t, url), store)
			b := newTestHub(t, testenv.RedisClient(t, url), store, func(c *Config) { c.Buffer = 4096 })
			ctx := t.Context()
			fast := subscribe(t, b, ctx, 10, 1, nil)
			slow := subscribe(t, b, ctx, 10, 1, nil)
			events, err := b.SubscribeEvents(ctx, 10, 1, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			const steps = 400
			rng := rand.New(rand.NewPCG(seed, 7))
			// Consumers read while events are published: a pausing one, a fast one, an events one.
			type result struct {
				name string
				got  []int64
			}
			results := make(chan result, 3)
			read := func(name string, ch <-chan *chat.Message, pause bool) {
				var got []int64
				deadline := time.After(30 * time.Second)
				for {
					select {
					case m, ok := <-ch:
						if !ok {
							results <- result{name, got}
							return
						}
						got = append(got, m.Seq)
						if pause && len(got)%25 == 1 {
							time.Sleep(30 * time.Millisecond) // the consumer falls behind for a moment
						}
						if m.Body == "last" {
							results <- result{name, got}
							return
						}
					case <-deadline:
						results <- result{name, got}
						return
					}
				}
			}
			go read("fast", fast.ch, false)
			go read("pausing", slow.ch, true)
			go func() {
				var got []int64
				deadline := time.After(30 * time.Second)
				for {
					select {
					case ev, ok := <-events:
						if !ok {
							results <- result{"events", got}
							return
						}
						got = append(got, ev.Header().EventSeq)
						if added, ok := ev.(*chat.MessageAdded); ok && added.Message.Body == "last" {
							results <- result{"events", got}
							return
						}
					case <-deadline:
						results <- result{"events", got}
						return
					}
				}
			}()

			var published []chat.Event
			for i := range steps {
				var ev chat.Event
				switch r := rng.IntN(20); {
				case r == 0:
					store.commit(1, fmt.Sprint("lost ", i)) // a gap, filled when a later event arrives
					continue
				case r == 1 && len(published) > 0:
					ev = published[rng.IntN(len(published))] // again: dropped
				case r == 2:
					ev = store.remove(1, 11)
					published = append(published, ev)
					store.conversation(1, 10, 11)
					hubFor(rng, a, b).Publish(ctx, ev)
					ev = store.commit(1, fmt.Sprint("m ", i))
				default:
					ev = store.commit(1, fmt.Sprint("m ", i))
				}
				published = append(published, ev)
				hubFor(rng, a, b).Publish(ctx, ev)
				if rng.IntN(5) == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			last := store.commit(1, "last")
			a.Publish(ctx, last)

			for range 3 {
				r := <-results
				want := last.Message.Seq
				if r.name == "events" {
					want = last.EventSeq
				}
				t.Run(r.name, func(t *testing.T) { checkRun(t, r.got, 1, want) })
			}
			if got := b.metric("threadline_subscription_cutoffs_total"); got != 0 {
				t.Errorf("cutoffs %v, want 0", got)
			}
		})
	}
}

// hubFor picks the instance an event is published through: the subscribers' own instance
// sees its events twice (directly, and back from Redis).
func hubFor(rng *rand.Rand, a, b testHub) testHub {
	if rng.IntN(2) == 0 {
		return b
	}
	return a
}
