package live

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// memStore is an in-memory Store: conversations of members, and their events numbered 1, 2, 3, …
// (messages numbered 1, 2, 3, … among them).
type memStore struct {
	mu      sync.Mutex
	members map[int64]map[int64]bool
	msgs    map[int64][]chat.Message
	events  map[int64][]chat.Event
	users   map[int64][]chat.UserEvent
	pruned  map[int64]int64 // user events up to this event_seq are no longer kept
	nextID  int64
	reads   atomic.Int64 // MessagesAfter and EventsAfter calls
	polls   atomic.Int64 // StreamHeads calls
}

func newMemStore() *memStore {
	return &memStore{members: map[int64]map[int64]bool{}, msgs: map[int64][]chat.Message{}, events: map[int64][]chat.Event{}, users: map[int64][]chat.UserEvent{}, pruned: map[int64]int64{}}
}

// storeOf returns a memStore holding conversation 1, of members, and nothing else.
func storeOf(members ...int64) *memStore {
	s := newMemStore()
	s.conversation(1, members...)
	return s
}

func (s *memStore) conversation(conv int64, members ...int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.members[conv] = map[int64]bool{}
	for _, m := range members {
		s.members[conv][m] = true
	}
}

// commit stores a message at the conversation's next seq, with its event, and returns the event.
func (s *memStore) commit(conv int64, body string) *chat.MessageAdded {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.nextID++
	m := chat.Message{
		ID: s.nextID, ConversationID: conv, Seq: int64(len(s.msgs[conv]) + 1), SenderID: 1,
		SenderName: "Alice", Body: body, CreatedAt: time.Now().UTC().Truncate(time.Microsecond), Version: 1,
	}
	s.msgs[conv] = append(s.msgs[conv], m)
	ev := &chat.MessageAdded{EventHeader: s.header(conv), Message: &m}
	s.events[conv] = append(s.events[conv], ev)
	return ev
}

// remove removes a member, with its event and the user's UserLeft, and returns the events.
func (s *memStore) remove(conv, user int64) *chat.MemberRemoved {
	ev, _ := s.removeUser(conv, user)
	return ev
}

func (s *memStore) removeUser(conv, user int64) (*chat.MemberRemoved, *chat.UserEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.members[conv], user)
	ev := &chat.MemberRemoved{EventHeader: s.header(conv), User: chat.User{ID: user, Name: "Bob"}}
	s.events[conv] = append(s.events[conv], ev)
	return ev, s.userEvent(user, chat.UserEvent{Kind: chat.UserLeft, ConversationID: conv, ConversationEventSeq: ev.EventSeq})
}

// add makes user a member, with the MembersAdded event and the user's UserJoined.
func (s *memStore) add(conv, user int64) (*chat.MembersAdded, *chat.UserEvent) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.members[conv] == nil {
		s.members[conv] = map[int64]bool{}
	}
	s.members[conv][user] = true
	ev := &chat.MembersAdded{EventHeader: s.header(conv), Users: []chat.User{{ID: user, Name: "Bob"}}}
	s.events[conv] = append(s.events[conv], ev)
	return ev, s.userEvent(user, chat.UserEvent{Kind: chat.UserJoined, ConversationID: conv, ConversationEventSeq: ev.EventSeq})
}

// read stores the user's UserRead.
func (s *memStore) read(conv, user, seq int64) *chat.UserEvent {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.userEvent(user, chat.UserEvent{Kind: chat.UserRead, ConversationID: conv, ReadSeq: seq})
}

// react stores a reaction event (which a sidebar stream passes over silently).
func (s *memStore) react(conv int64) *chat.ReactionChanged {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.msgs[conv][len(s.msgs[conv])-1]
	ev := &chat.ReactionChanged{EventHeader: s.header(conv), Message: &m, Emoji: "👍", Added: true}
	s.events[conv] = append(s.events[conv], ev)
	return ev
}

func (s *memStore) userEvent(user int64, ev chat.UserEvent) *chat.UserEvent {
	ev.UserID, ev.EventSeq, ev.At = user, int64(len(s.users[user])+1), time.Now().UTC()
	s.users[user] = append(s.users[user], ev)
	return &ev
}

func (s *memStore) UserEventsAfter(_ context.Context, user, afterSeq int64, limit int) ([]chat.UserEvent, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return after(s.users[user], max(afterSeq, s.pruned[user]), limit), nil
}

func (s *memStore) UserStreamStart(_ context.Context, user int64) (last, firstKept int64, convs map[int64]int64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	convs = map[int64]int64{}
	for c, members := range s.members {
		if members[user] {
			convs[c] = int64(len(s.events[c]))
		}
	}
	if n := int64(len(s.users[user])); n > s.pruned[user] {
		firstKept = s.pruned[user] + 1
	}
	return int64(len(s.users[user])), firstKept, convs, nil
}

func (s *memStore) StreamHeads(_ context.Context, convs, users []int64) (map[int64]int64, map[int64]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.polls.Add(1)
	ch, uh := map[int64]int64{}, map[int64]int64{}
	for _, c := range convs {
		if _, ok := s.members[c]; ok {
			ch[c] = int64(len(s.events[c]))
		}
	}
	for _, u := range users {
		uh[u] = int64(len(s.users[u]))
	}
	return ch, uh, nil
}

func (s *memStore) header(conv int64) chat.EventHeader {
	return chat.EventHeader{EventSeq: int64(len(s.events[conv]) + 1), ConversationID: conv, Actor: chat.User{ID: 1, Name: "Alice"}, At: time.Now().UTC()}
}

func (s *memStore) ConversationsByIDForMember(_ context.Context, userID int64, ids []int64) ([]*chat.Conversation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*chat.Conversation, len(ids))
	for i, id := range ids {
		if s.members[id][userID] {
			out[i] = &chat.Conversation{ID: id, Title: "c", LastSeq: int64(len(s.msgs[id])), LastEventSeq: int64(len(s.events[id]))}
		}
	}
	return out, nil
}

func (s *memStore) MessagesAfter(_ context.Context, conv, afterSeq int64, limit int) ([]chat.Message, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return after(s.msgs[conv], afterSeq, limit), nil
}

func (s *memStore) EventsAfter(_ context.Context, conv, afterSeq int64, limit int) ([]chat.Event, error) {
	s.reads.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	return after(s.events[conv], afterSeq, limit), nil
}

// after returns up to limit items of a list numbered 1, 2, 3, … after number n.
func after[T any](all []T, n int64, limit int) []T {
	if n >= int64(len(all)) {
		return nil
	}
	page := all[n:]
	if len(page) > limit {
		page = page[:limit]
	}
	return append([]T(nil), page...)
}

type testHub struct {
	*Hub
	reg *prometheus.Registry
}

func newTestHub(t testing.TB, rdb redis.UniversalClient, store Store, tune ...func(*Config)) testHub {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{Redis: rdb, Store: store, Registerer: reg, ReadyTimeout: 2 * time.Second, HealthInterval: time.Second}
	for _, f := range tune {
		f(&cfg)
	}
	h := NewHub(cfg)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return testHub{Hub: h, reg: reg}
}

// hubPair returns two hubs over the Redis at url, each with a client of its own, as two server
// instances hold them: what one publishes reaches the other's subscribers through Redis. tune
// configures both.
func hubPair(t testing.TB, url string, store Store, tune ...func(*Config)) (a, b testHub) {
	t.Helper()
	return newTestHub(t, testenv.RedisClient(t, url), store, tune...), newTestHub(t, testenv.RedisClient(t, url), store, tune...)
}

func (h testHub) metric(name string) float64 {
	mfs, _ := h.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

type sub struct {
	ch    <-chan *chat.Message
	ended chan error // the onEnd reason, if any
}

func subscribe(t testing.TB, h testHub, ctx context.Context, viewer, conv int64, afterSeq *int64) sub {
	t.Helper()
	ended := make(chan error, 1)
	ch, err := h.SubscribeMessages(ctx, viewer, conv, afterSeq, func(err error) {
		if err != nil {
			ended <- err
		}
	})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sub{ch: ch, ended: ended}
}

// seqs reads n messages and returns their seqs; it fails the test on timeout or early close.
func (s sub) seqs(t testing.TB, n int, timeout time.Duration) []int64 {
	t.Helper()
	out := make([]int64, 0, n)
	deadline := time.After(timeout)
	for len(out) < n {
		select {
		case m, ok := <-s.ch:
			if !ok {
				var reason error
				select {
				case reason = <-s.ended:
				default:
				}
				t.Fatalf("subscription ended after %d of %d messages: %v", len(out), n, reason)
			}
			out = append(out, m.Seq)
		case <-deadline:
			t.Fatalf("timed out after %d of %d messages (last %v)", len(out), n, tail(out))
		}
	}
	return out
}

// collect reads until seq 1000 or the timeout, for use off the test's goroutine.
func (s sub) collect(timeout time.Duration) []int64 {
	var out []int64
	deadline := time.After(timeout)
	for {
		select {
		case m, ok := <-s.ch:
			if !ok {
				return out
			}
			out = append(out, m.Seq)
			if m.Seq == 1000 {
				return out
			}
		case <-deadline:
			return out
		}
	}
}

func tail(s []int64) []int64 {
	if len(s) > 5 {
		return s[len(s)-5:]
	}
	return s
}

func checkRun(t testing.TB, got []int64, from, to int64) {
	t.Helper()
	if int64(len(got)) != to-from+1 {
		t.Fatalf("got %d messages, want seq %d..%d", len(got), from, to)
	}
	for i, s := range got {
		if s != from+int64(i) {
			t.Fatalf("message %d has seq %d, want %d (every seq once, in order)", i, s, from+int64(i))
		}
	}
}

// quiet checks that nothing more arrives for a moment.
func (s sub) quiet(t testing.TB) {
	t.Helper()
	select {
	case m, ok := <-s.ch:
		if ok {
			t.Fatalf("unexpected message seq %d", m.Seq)
		}
	case <-time.After(150 * time.Millisecond):
	}
}

func ptr(v int64) *int64 { return &v }

func TestDeliveryAcrossHubsInOrderOnce(t *testing.T) {
	t.Parallel()
	store := storeOf(10, 20)
	a, b := hubPair(t, testenv.NewRedis(t), store)
	ctx := t.Context()

	onA := subscribe(t, a, ctx, 10, 1, nil) // gets each event directly and again from Redis
	onB := subscribe(t, b, ctx, 20, 1, nil)
	for i := range 50 {
		a.Publish(ctx, store.commit(1, fmt.Sprint("m", i)))
	}
	checkRun(t, onA.seqs(t, 50, 10*time.Second), 1, 50)
	checkRun(t, onB.seqs(t, 50, 10*time.Second), 1, 50)
	onA.quiet(t)
	onB.quiet(t)
	if n := store.reads.Load(); n != 0 {
		t.Errorf("%d PostgreSQL reads; live delivery should need none", n)
	}
	if got := a.metric("threadline_pubsub_publishes_total"); got != 50 {
		t.Errorf("publishes %v, want 50", got)
	}
	if got := b.metric("threadline_subscriptions_active"); got != 1 {
		t.Errorf("active subscriptions on b: %v, want 1", got)
	}
	// The whole message travels: delivering it needs no SQL.
	a.Publish(ctx, store.commit(1, "last"))
	m := <-onB.ch
	if m.Body != "last" || m.SenderName != "Alice" || m.ID == 0 || m.CreatedAt.IsZero() || m.ConversationID != 1 {
		t.Fatalf("message as delivered on b: %+v", m)
	}
}

func TestMembershipAndArguments(t *testing.T) {
	t.Parallel()
	store := storeOf(10)
	h := newTestHub(t, testenv.RedisClient(t, testenv.NewRedis(t)), store)
	store.commit(1, "one")
	for _, c := range []struct {
		viewer, conv int64
		after        *int64
		code         apperr.Code
	}{
		{20, 1, nil, apperr.NotFound},         // not a member
		{10, 2, nil, apperr.NotFound},         // no such conversation
		{10, 1, ptr(-1), apperr.BadUserInput}, // negative afterSeq
		{10, 1, ptr(2), apperr.BadUserInput},  // past the last seq (1)
	} {
		_, err := h.SubscribeMessages(t.Context(), c.viewer, c.conv, c.after, nil)
		if codeOf(err) != c.code {
			t.Errorf("viewer %d conversation %d: %v, want %s", c.viewer, c.conv, err, c.code)
		}
	}
	if got := h.metric("threadline_subscriptions_active"); got != 0 {
		t.Errorf("active %v after refusals", got)
	}
	s := subscribe(t, h, t.Context(), 10, 1, ptr(1)) // up to date: nothing to replay
	s.quiet(t)
}

func TestGapIsFilledFromTheStore(t *testing.T) {
	t.Parallel()
	store := storeOf(10)
	a, b := hubPair(t, testenv.NewRedis(t), store)
	ctx := t.Context()
	s1 := subscribe(t, b, ctx, 10, 1, nil)
	s2 := subscribe(t, b, ctx, 10, 1, nil)

	// Seq 1 and 2 commit but their publishes are lost; seq 3 arrives.
	store.commit(1, "lost 1")
	store.commit(1, "lost 2")
	a.Publish(ctx, store.commit(1, "three"))
	checkRun(t, s1.seqs(t, 3, 5*time.Second), 1, 3)
	checkRun(t, s2.seqs(t, 3, 5*time.Second), 1, 3)
	if got := b.metric("threadline_subscription_gap_fills_total"); got != 2 {
		t.Errorf("gap fills %v, want 2 (one per subscriber)", got)
	}
	if got := store.reads.Load(); got > 2 {
		t.Errorf("%d reads for the gap", got)
	}
	// Out of order: 5 before 4. 4 is read from the store, then the late 4 is dropped.
	m4, m5 := store.commit(1, "four"), store.commit(1, "five")
	a.Publish(ctx, m5)
	a.Publish(ctx, m4)
	checkRun(t, s1.seqs(t, 2, 5*time.Second), 4, 5)
	s1.quiet(t)
}

func TestReplayThenLiveWithoutSeam(t *testing.T) {
	t.Parallel()
	store := storeOf(10)
	for i := range 500 {
		store.commit(1, fmt.Sprint("old ", i))
	}
	a, b := hubPair(t, testenv.NewRedis(t), store, func(c *Config) { c.PageSize = 37 })
	ctx := t.Context()
	// A subscriber keeps b's channel subscribed; the others join while messages flow.
	anchor := subscribe(t, b, ctx, 10, 1, nil)

	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range 500 {
			a.Publish(ctx, store.commit(1, fmt.Sprint("new ", i)))
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond)
			}
		}
	})
	var subs []sub
	for _, after := range []int64{0, 123, 499} {
		subs = append(subs, subscribe(t, b, ctx, 10, 1, ptr(after)))
		time.Sleep(5 * time.Millisecond)
	}
	// Read them all at once: one that is not read falls behind and is cut off.
	got := make([][]int64, 4)
	for i, s := range append(subs, anchor) {
		wg.Go(func() { got[i] = s.collect(20 * time.Second) })
	}
	wg.Wait()
	checkRun(t, got[0], 1, 1000)
	checkRun(t, got[1], 124, 1000)
	checkRun(t, got[2], 500, 1000)
	checkRun(t, got[3], 501, 1000)
	for _, s := range subs {
		s.quiet(t)
	}
}

func TestSlowSubscriberIsCutOffOthersAreNot(t *testing.T) {
	t.Parallel()
	store := storeOf(10)
	h := newTestHub(t, testenv.RedisClient(t, testenv.NewRedis(t)), store, func(c *Config) { c.Buffer = 8 })
	ctx := t.Context()
	slow := subscribe(t, h, ctx, 10, 1, nil)
	fast := subscribe(t, h, ctx, 10, 1, nil)

	var got []int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for m := range fast.ch {
			got = append(got, m.Seq)
			if len(got) == 200 {
				return
			}
		}
	})
	// The slow one takes three messages, then stops reading.
	begin := time.Now()
	for i := range 200 {
		h.Publish(ctx, store.commit(1, fmt.Sprint(i)))
		if i == 2 {
			checkRun(t, slow.seqs(t, 3, 5*time.Second), 1, 3)
		}
		if i%8 == 0 {
			time.Sleep(time.Millisecond) // let the fast one keep up: it must not be cut off
		}
	}
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("publishing 200 messages took %s: the publisher waited for someone", d)
	}
	wg.Wait()
	checkRun(t, got, 1, 200)

	var err error
	select {
	case err = <-slow.ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow subscriber was not cut off")
	}
	var resume *ResumeError
	if !errors.As(err, &resume) || resume.After != 3 || resume.ConversationID != 1 {
		t.Fatalf("slow subscriber ended with %v, want a resume error after seq 3", err)
	}
	if _, ok := <-slow.ch; ok {
		t.Fatal("the slow subscriber's channel delivered after the cut-off")
	}
	if got := h.metric("threadline_subscription_cutoffs_total"); got != 1 {
		t.Errorf("cutoffs %v, want 1", got)
	}
	// Resuming where it stopped gives exactly the rest.
	again := subscribe(t, h, ctx, 10, 1, ptr(resume.After))
	checkRun(t, again.seqs(t, 197, 5*time.Second), 4, 200)
}

func TestLastSubscriberLeavingDropsTheRedisSubscription(t *testing.T) {
	t.Parallel()
	url := testenv.NewRedis(t)
	store := storeOf(10)
	store.conversation(2, 10)
	rdb := testenv.RedisClient(t, url)
	h := newTestHub(t, rdb, store)
	numsub := func(conv int64) int64 {
		n, err := rdb.PubSubNumSub(context.Background(), channelName(conv)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[channelName(conv)]
	}
	eventually := func(what string, f func() bool) {
		t.Helper()
		for range 200 {
			if f() {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatalf("never: %s", what)
	}
	ctx1, stop1 := context.WithCancel(t.Context())
	ctx2, stop2 := context.WithCancel(t.Context())
	ctx3, stop3 := context.WithCancel(t.Context())
	subscribe(t, h, ctx1, 10, 1, nil)
	subscribe(t, h, ctx2, 10, 1, nil)
	subscribe(t, h, ctx3, 10, 2, nil)
	if numsub(1) != 1 || numsub(2) != 1 {
		t.Fatalf("redis subscriptions: %d and %d, want one per conversation", numsub(1), numsub(2))
	}
	list, err := rdb.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatal(err)
	}
	clients := 0
	for _, line := range strings.Split(list, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "sub=") && f != "sub=0" {
				clients++
			}
		}
	}
	if clients != 1 {
		t.Errorf("%d subscribed connections, want one for every conversation", clients)
	}
	stop1()
	time.Sleep(100 * time.Millisecond)
	if numsub(1) != 1 {
		t.Fatal("conversation 1 lost its subscription while a subscriber remained")
	}
	stop2()
	eventually("conversation 1 unsubscribed", func() bool { return numsub(1) == 0 })
	if numsub(2) != 1 {
		t.Fatal("conversation 2 lost its subscription")
	}
	stop3()
	eventually("conversation 2 unsubscribed", func() bool { return numsub(2) == 0 })
	eventually("no topics or shards left", func() bool {
		h.mu.RLock()
		defer h.mu.RUnlock()
		return len(h.topics) == 0 && len(h.shards) == 0
	})
	// And back: a new subscriber subscribes again, and receives.
	s := subscribe(t, h, t.Context(), 10, 1, nil)
	h.Publish(t.Context(), store.commit(1, "again"))
	checkRun(t, s.seqs(t, 1, 5*time.Second), 1, 1)
}

// TestRedisOutageIsCaughtUp runs a Redis that goes away and comes back: local subscribers of
// the sending hub keep receiving throughout, and subscribers of the other hub catch up on what
// was published during the outage as soon as their subscription is re-established, without
// waiting for a next message.
func TestRedisOutageIsCaughtUp(t *testing.T) {
	t.Parallel()
	rds := testenv.StartRedis(t)

	store := storeOf(10)
	fast := func(c *Config) { c.HealthInterval = 200 * time.Millisecond; c.ReadyTimeout = 300 * time.Millisecond }
	a, b := hubPair(t, rds.URL(), store, fast)
	ctx := t.Context()
	onA := subscribe(t, a, ctx, 10, 1, nil)
	onB := subscribe(t, b, ctx, 10, 1, nil)
	a.Publish(ctx, store.commit(1, "before"))
	checkRun(t, onA.seqs(t, 1, 5*time.Second), 1, 1)
	checkRun(t, onB.seqs(t, 1, 5*time.Second), 1, 1)

	rds.Stop(t)
	a.Publish(ctx, store.commit(1, "during 1"))
	a.Publish(ctx, store.commit(1, "during 2"))
	checkRun(t, onA.seqs(t, 2, 5*time.Second), 2, 3) // served directly
	if got := a.metric("threadline_pubsub_publish_failures_total"); got != 2 {
		t.Errorf("publish failures %v, want 2", got)
	}
	// A subscriber joining during the outage starts anyway (unconfirmed), from last_seq.
	late := subscribe(t, b, ctx, 10, 1, nil)

	rds.Restart(t)
	// No new message: b's subscriber catches up because its subscription was re-established.
	checkRun(t, onB.seqs(t, 2, 15*time.Second), 2, 3)
	// And live delivery works again, for both.
	a.Publish(ctx, store.commit(1, "after"))
	checkRun(t, onB.seqs(t, 1, 10*time.Second), 4, 4)
	checkRun(t, late.seqs(t, 1, 10*time.Second), 4, 4)
	checkRun(t, onA.seqs(t, 1, 10*time.Second), 4, 4)
}

func TestShardedPubSubOnRedisCluster(t *testing.T) {
	t.Parallel()
	clients := testenv.NewRedisClusterClients(t, 2)
	store := newMemStore()
	const convs = 12
	for c := int64(1); c <= convs; c++ {
		store.conversation(c, 10)
	}
	a := newTestHub(t, clients[0], store)
	b := newTestHub(t, clients[1], store)
	if !b.sharded {
		t.Fatal("a cluster client must use sharded pub/sub")
	}
	ctx := t.Context()
	subs := map[int64]sub{}
	for c := int64(1); c <= convs; c++ {
		subs[c] = subscribe(t, b, ctx, 10, c, nil)
	}
	for range 3 {
		for c := int64(1); c <= convs; c++ {
			a.Publish(ctx, store.commit(c, "x"))
		}
	}
	for c := int64(1); c <= convs; c++ {
		checkRun(t, subs[c].seqs(t, 3, 10*time.Second), 1, 3)
	}
	// Each channel is a shard channel with exactly one subscriber, on its slot's node.
	channels := make([]string, 0, convs)
	for c := int64(1); c <= convs; c++ {
		channels = append(channels, channelName(c))
	}
	testenv.WantOneShardSubscriber(t, clients[1], channels...)
	if got := a.metric("threadline_pubsub_publish_failures_total"); got != 0 {
		t.Errorf("publish failures %v", got)
	}
}

func TestCloseSendsConnectionsAwayAndEndsSubscriptions(t *testing.T) {
	t.Parallel()
	store := storeOf(10)
	h := NewHub(Config{Redis: testenv.RedisClient(t, testenv.NewRedis(t)), Store: store})
	s := subscribe(t, testHub{Hub: h}, t.Context(), 10, 1, nil)

	var wentAway atomic.Bool
	var untrack func()
	untrack, ok := h.TrackConn(func() {
		wentAway.Store(true)
		go func() { time.Sleep(20 * time.Millisecond); untrack() }()
	})
	if !ok {
		t.Fatal("TrackConn refused before Close")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if !wentAway.Load() {
		t.Fatal("the connection was not sent away")
	}
	if _, open := <-s.ch; open {
		t.Fatal("subscription still open after Close")
	}
	select {
	case err := <-s.ended:
		t.Fatalf("a subscription ended by Close reported %v", err)
	default:
	}
	if _, ok := h.TrackConn(func() {}); ok {
		t.Fatal("TrackConn accepted a connection after Close")
	}
	if _, err := h.SubscribeMessages(t.Context(), 10, 1, nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	h.Publish(t.Context(), store.commit(1, "after close")) // still publishes; must not panic
	if err := h.Close(ctx); err != nil {
		t.Fatal(err)
	}
}

// Every kind of event survives its trip through Redis's payload, and malformed payloads are
// refused.
func TestEventRoundTrip(t *testing.T) {
	cid := "c-1"
	at := time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)
	edited := at.Add(time.Minute)
	m := &chat.Message{ID: 7, ConversationID: 3, Seq: 9, SenderID: 2, SenderName: "Bob", Body: "hi \"there\"",
		CreatedAt: at, ClientMessageID: &cid, EditedAt: &edited, Version: 2,
		Reactions: []chat.Reaction{{MessageID: 7, Emoji: "👍", Count: 2}}}
	h := chat.EventHeader{EventSeq: 11, ConversationID: 3, Actor: chat.User{ID: 2, Name: "Bob"}, At: at}
	for _, ev := range []chat.Event{
		&chat.MessageAdded{EventHeader: h, Message: m},
		&chat.MessageEdited{EventHeader: h, Message: m},
		&chat.MessageDeleted{EventHeader: h, Message: m},
		&chat.ReactionChanged{EventHeader: h, Message: m, Emoji: "🎉", Added: true},
		&chat.MembersAdded{EventHeader: h, Users: []chat.User{{ID: 4, Name: "Dan"}, {ID: 5, Name: "Eve"}}},
		&chat.MemberRemoved{EventHeader: h, User: chat.User{ID: 4, Name: "Dan"}},
		&chat.ConversationRenamed{EventHeader: h, Title: "New title"},
	} {
		b, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEvent(string(b))
		if err != nil {
			t.Fatalf("%T: %v", ev, err)
		}
		if diff := cmp.Diff(ev, got); diff != "" {
			t.Errorf("%T round trip (-want +got):\n%s", ev, diff)
		}
	}
	for _, bad := range []string{`nope`, `{}`, `{"kind":"message_added","eventSeq":1,"conversationId":1}`,
		`{"kind":"what","eventSeq":1,"conversationId":1}`, `{"kind":"member_removed","eventSeq":1,"conversationId":1}`} {
		if _, err := decodeEvent(bad); err == nil {
			t.Errorf("decoded %s", bad)
		}
	}
}

func TestChannelNamesAndSlots(t *testing.T) {
	if c := channelName(42); c != "msg:events:{42}" {
		t.Fatal(c)
	}
	if c := (stream{user: true, id: 7}).channel(); c != "msg:user:{u7}" {
		t.Fatal(c)
	}
	for _, c := range []struct {
		channel string
		want    stream
		ok      bool
	}{
		{"msg:events:{42}", stream{id: 42}, true}, {"msg:user:{u7}", stream{user: true, id: 7}, true},
		{"msg:events:{}", stream{}, false}, {"msg:events:{x}", stream{}, false}, {"msg:user:{7}", stream{}, false},
		{"msg:events:{-1}", stream{id: -1}, false}, {"other", stream{}, false},
	} {
		if got, ok := streamOf(c.channel); ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: %+v %v", c.channel, got, ok)
		}
	}
	if redisclient.Slot(channelName(42)) != redisclient.Slot("42") {
		t.Error("the channel's slot is not its conversation's hash tag")
	}
	if redisclient.Slot((stream{user: true, id: 7}).channel()) != redisclient.Slot("msg:viewer:{u7}") {
		t.Error("a user's channel is not in the slot of the user's other keys")
	}
}

// channelName is the Redis channel of a conversation's events.
func channelName(conversationID int64) string { return stream{id: conversationID}.channel() }

// codeOf is err's public code ("" when err is not public).
func codeOf(err error) apperr.Code {
	if pub := apperr.Public(err); pub != nil {
		return pub.Code
	}
	return ""
}

// An events stream with afterEventSeq replays the stored events after it, then continues live,
// with messages and other events interleaved in event_seq order, each once; a messages stream on
// the same conversation sees only the messages.
func TestEventStreamReplaysThenLive(t *testing.T) {
	t.Parallel()
	store := storeOf(10, 11)
	for i := range 150 {
		store.commit(1, fmt.Sprint("old ", i))
	}
	a, b := hubPair(t, testenv.NewRedis(t), store, func(c *Config) { c.PageSize = 40 })
	ctx := t.Context()
	events, err := b.SubscribeEvents(ctx, 10, 1, ptr(100), nil)
	if err != nil {
		t.Fatal(err)
	}
	messages := subscribe(t, b, ctx, 10, 1, nil)
	go func() {
		for i := range 100 {
			if i%10 == 9 { // a member leaves and the event stream carries it; nobody else is affected
				a.Publish(ctx, store.remove(1, 11))
				store.conversation(1, 10, 11)
				continue
			}
			a.Publish(ctx, store.commit(1, fmt.Sprint("new ", i)))
		}
	}()
	var seqs []int64
	removed := 0
	for len(seqs) < 150 {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("the events stream ended after event %v", tail(seqs))
			}
			seqs = append(seqs, ev.Header().EventSeq)
			if _, ok := ev.(*chat.MemberRemoved); ok {
				removed++
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("timed out after %d events (last %v)", len(seqs), tail(seqs))
		}
	}
	checkRun(t, seqs, 101, 250)
	if removed != 10 {
		t.Fatalf("%d MemberRemoved events, want 10", removed)
	}
	checkRun(t, messages.seqs(t, 90, 20*time.Second), 151, 240)
}

// A member removed from a conversation is a stranger to it from then on: an events stream first
// receives the MemberRemoved event about them, then ends with NOT_FOUND; a messages stream ends
// with NOT_FOUND; neither receives what follows. Other members' streams go on.
func TestRemovedMemberStreamsEnd(t *testing.T) {
	t.Parallel()
	store := storeOf(10, 11)
	a, b := hubPair(t, testenv.NewRedis(t), store)
	ctx := t.Context()
	endedEvents := make(chan error, 1)
	events, err := b.SubscribeEvents(ctx, 11, 1, nil, func(err error) { endedEvents <- err })
	if err != nil {
		t.Fatal(err)
	}
	removedMessages := subscribe(t, b, ctx, 11, 1, nil)
	staying := subscribe(t, b, ctx, 10, 1, nil)
	a.Publish(ctx, store.commit(1, "before"))
	a.Publish(ctx, store.remove(1, 11))
	a.Publish(ctx, store.commit(1, "after"))

	var got []string
	for ev := range events {
		got = append(got, fmt.Sprintf("%T", ev))
	}
	if want := []string{"*chat.MessageAdded", "*chat.MemberRemoved"}; !slices.Equal(got, want) {
		t.Fatalf("the removed member's events: %v, want %v", got, want)
	}
	if err := <-endedEvents; codeOf(err) != apperr.NotFound {
		t.Fatalf("events stream ended with %v, want NOT_FOUND", err)
	}
	if got := removedMessages.seqs(t, 1, 5*time.Second); got[0] != 1 {
		t.Fatalf("the removed member's messages: %v", got)
	}
	select {
	case m, ok := <-removedMessages.ch:
		if ok {
			t.Fatalf("the removed member received seq %d", m.Seq)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the removed member's messages stream did not end")
	}
	if err := <-removedMessages.ended; codeOf(err) != apperr.NotFound {
		t.Fatalf("messages stream ended with %v, want NOT_FOUND", err)
	}
	checkRun(t, staying.seqs(t, 2, 5*time.Second), 1, 2)
}
