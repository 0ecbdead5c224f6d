package live

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// TestPollDeliversWhatPubSubDidNot commits events that nobody publishes (another instance's
// publishes lost: Redis down, or a publish that failed while Redis is up): the poll finds the
// streams behind and their subscribers receive every event, in order, once, without a next
// event; the publishes arriving late after all change nothing.
func TestPollDeliversWhatPubSubDidNot(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("needs redis-server")
	}
	for _, tc := range []struct {
		name      string
		redisDown bool
	}{
		{"redis down", true},
		{"publishes lost, redis up", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			addr, stop, err := devstack.StartRedisServer(t.Context(), dir, 0)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = stop() })
			store := newMemStore()
			store.conversation(1, 10)
			h := newTestHub(t, testenv.RedisClient(t, "redis://"+addr+"/0"), store, func(c *Config) {
				c.PollInterval, c.PollGrace, c.HealthInterval = 50*time.Millisecond, 100*time.Millisecond, 200*time.Millisecond
			})
			ctx := t.Context()
			messages := subscribe(t, h, ctx, 10, 1, nil)
			sidebar, err := h.SubscribeViewer(ctx, 10, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			h.Publish(ctx, store.commit(1, "before"))
			checkRun(t, messages.seqs(t, 1, 5*time.Second), 1, 1)
			next(t, sidebar, 1)
			if tc.redisDown {
				if err := stop(); err != nil {
					t.Fatal(err)
				}
			}

			var late []chat.Event
			for i := range 3 {
				late = append(late, store.commit(1, "unpublished "+strconv.Itoa(i)))
			}
			read := store.read(1, 10, 4)
			checkRun(t, messages.seqs(t, 3, 10*time.Second), 2, 4)
			got, _ := next(t, sidebar, 4)
			slices.SortFunc(got, func(a, b viewerEvent) int { return strings.Compare(a.Kind, b.Kind) })
			want := []viewerEvent{{"activity", 1}, {"activity", 1}, {"activity", 1}, {"read", 1}}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("sidebar (-want +got):\n%s", diff)
			}
			if got := h.metric("threadline_live_poll_deliveries_total"); got != 7 {
				t.Errorf("poll deliveries %v, want 7 (3 messages, 3 sidebar activities, 1 read)", got)
			}
			if got := h.metric("threadline_live_polls_total"); got < 1 {
				t.Errorf("polls %v", got)
			}

			// The publishes turn up after all: nothing twice.
			for _, ev := range late {
				h.Publish(ctx, ev)
			}
			h.PublishUser(ctx, read)
			messages.quiet(t)
			quietViewer(t, sidebar)
			h.Publish(ctx, store.commit(1, "after"))
			checkRun(t, messages.seqs(t, 1, 5*time.Second), 5, 5)
		})
	}
}
