package typing

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// memMembers stands for PostgreSQL's conversation_members: the member sets the service fills
// from, and how many times it read them.
type memMembers struct {
	mu      sync.Mutex
	members map[int64][]chat.Membership
	reads   atomic.Int64 // conversations read
}

func newMembers() *memMembers { return &memMembers{members: map[int64][]chat.Membership{}} }

func (m *memMembers) set(conv int64, users ...chat.User) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ms := make([]chat.Membership, len(users))
	for i, u := range users {
		ms[i] = chat.Membership{User: u, Role: chat.RoleMember}
	}
	m.members[conv] = ms
}

func (m *memMembers) read(_ context.Context, convs []int64) ([][]chat.Membership, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads.Add(int64(len(convs)))
	out := make([][]chat.Membership, len(convs))
	for i, c := range convs {
		out[i] = append([]chat.Membership(nil), m.members[c]...)
	}
	return out, nil
}

// aliceAndBob returns a service tuned by tune over a Redis of the test's own, where
// conversation 10 has the members Alice and Bob, with its Redis client and its members.
func aliceAndBob(t testing.TB, tune ...func(*Config)) (testService, *redis.Client, *memMembers) {
	t.Helper()
	members := newMembers()
	members.set(10, alice, bob)
	rdb := testenv.RedisClient(t, testenv.NewRedis(t))
	return newService(t, rdb, members, tune...), rdb, members
}

type testService struct {
	*Service
	reg *prometheus.Registry
}

func newService(t testing.TB, rdb redis.UniversalClient, members *memMembers, tune ...func(*Config)) testService {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Redis: rdb, Breaker: redisclient.NewBreaker(redisclient.BreakerConfig{CallTimeout: time.Second}),
		Members: members.read, Registerer: reg, HealthInterval: time.Second,
	}
	for _, f := range tune {
		f(&cfg)
	}
	s := New(cfg)
	t.Cleanup(s.Close)
	return testService{Service: s, reg: reg}
}

func (s testService) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			if g := mf.GetMetric()[0].GetGauge(); g != nil {
				return g.GetValue()
			}
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// wantMetric fails the test unless the gauge or counter name is want.
func (s testService) wantMetric(t testing.TB, name string, want float64) {
	t.Helper()
	if got := s.metric(t, name); got != want {
		t.Fatalf("%s = %v, want %v", name, got, want)
	}
}

// sub is a running subscription and what ended it.
type sub struct {
	ch    <-chan *chat.TypingEvent
	ended chan error
}

func subscribe(t testing.TB, s testService, ctx context.Context, viewer, conv int64) sub {
	t.Helper()
	ended := make(chan error, 1)
	ch, err := s.Subscribe(ctx, viewer, conv, func(err error) { ended <- err })
	if err != nil {
		t.Fatalf("subscribe %d to %d: %v", viewer, conv, err)
	}
	return sub{ch: ch, ended: ended}
}

// event is a TypingEvent as the tests compare it.
type event struct {
	User   int64
	Name   string
	Typing bool
}

func (s sub) next(t testing.TB, timeout time.Duration) event {
	t.Helper()
	select {
	case ev, ok := <-s.ch:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return event{ev.User.ID, ev.User.Name, ev.Typing}
	case <-time.After(timeout):
		t.Fatalf("no typing event within %s", timeout)
	}
	return event{}
}

// quiet checks that nothing arrives for d.
func (s sub) quiet(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case ev, ok := <-s.ch:
		t.Fatalf("unexpected %+v (open %v)", ev, ok)
	case <-time.After(d):
	}
}

// endedWith waits for the subscription to end and returns why.
func (s sub) endedWith(t testing.TB, timeout time.Duration) error {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.ch:
			if !ok {
				return <-s.ended
			}
			t.Fatalf("received %+v, want the subscription to end", ev)
		case <-deadline:
			t.Fatalf("the subscription did not end within %s", timeout)
		}
	}
}

var (
	alice = chat.User{ID: 1, Name: "Alice"}
	bob   = chat.User{ID: 2, Name: "Bob"}
	carol = chat.User{ID: 3, Name: "Carol"}
)

func TestSetAndRead(t *testing.T) {
	t.Parallel()
	members := newMembers()
	members.set(10, alice, bob)
	members.set(11, alice)
	rdb := testenv.RedisClient(t, testenv.NewRedis(t))
	s := newService(t, rdb, members)
	ctx := t.Context()

	for _, tc := range []struct {
		name       string
		user, conv int64
		typing     bool
		want       error
	}{
		{"member starts", alice.ID, 10, true, nil},
		{"other member starts", bob.ID, 10, true, nil},
		{"again", alice.ID, 10, true, nil},
		{"non-member", carol.ID, 10, true, apperr.ErrNotFound},
		{"non-member stops", carol.ID, 10, false, apperr.ErrNotFound},
		{"missing conversation", alice.ID, 99, true, apperr.ErrNotFound},
		{"in another conversation", alice.ID, 11, true, nil},
		{"stops", bob.ID, 10, false, nil},
		{"stops while not typing", bob.ID, 10, false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Set(ctx, tc.user, tc.conv, tc.typing); !errors.Is(err, tc.want) {
				t.Fatalf("Set: %v, want %v", err, tc.want)
			}
		})
	}
	got, err := s.Typing(ctx, []int64{10, 11, 99, 12})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]chat.User{{alice}, {alice}, {}, {}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("typing (-want +got):\n%s", diff)
	}
	// Three conversations filled once each (99 and 12 have no members), then never again.
	if n := members.reads.Load(); n != 4 {
		t.Fatalf("%d member reads, want 4", n)
	}
	for range 10 {
		if err := s.Set(ctx, alice.ID, 10, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Typing(ctx, []int64{10, 11}); err != nil {
			t.Fatal(err)
		}
	}
	if n := members.reads.Load(); n != 4 {
		t.Fatalf("%d member reads after warm calls, want still 4", n)
	}
	// Nothing of typing touched the conversations' generations.
	gen, err := rdb.Get(ctx, cache.GenerationKey(10)).Result()
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_ = s.Set(ctx, alice.ID, 10, false)
		_ = s.Set(ctx, alice.ID, 10, true)
	}
	if now, _ := rdb.Get(ctx, cache.GenerationKey(10)).Result(); now != gen {
		t.Fatalf("generation moved from %q to %q", gen, now)
	}
	s.wantMetric(t, "threadline_typing_changes_total", 2+1+1+6) // changes published
}

// A member set is read under the conversation's generation: once the generation moves (a
// membership change commits, then the history cache moves it), the next call reads the new set.
func TestMembersFollowTheGeneration(t *testing.T) {
	t.Parallel()
	s, rdb, members := aliceAndBob(t)
	ctx := t.Context()
	if err := s.Set(ctx, bob.ID, 10, true); err != nil {
		t.Fatal(err)
	}
	// Bob is removed, Carol added: the commit, then the generation moves.
	members.set(10, alice, carol)
	if err := s.Set(ctx, bob.ID, 10, true); err != nil {
		t.Fatalf("before the generation moved, the old set holds: %v", err)
	}
	if err := rdb.Set(ctx, cache.GenerationKey(10), "moved", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, bob.ID, 10, true); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("removed member: %v, want NOT_FOUND", err)
	}
	if err := s.Set(ctx, carol.ID, 10, true); err != nil {
		t.Fatalf("added member: %v", err)
	}
	// Bob's entry is still in the sorted set, but he is no member: nobody sees him.
	got, err := s.Typing(ctx, []int64{10})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([][]chat.User{{carol}}, got); diff != "" {
		t.Fatalf("typing (-want +got):\n%s", diff)
	}
	// With the history cache off, AfterCommit moves the generation on membership changes only.
	members.set(10, alice)
	s.AfterCommit(ctx, chat.Change{ConversationID: 10, Event: &chat.MessageAdded{}})
	if err := s.Set(ctx, carol.ID, 10, true); err != nil {
		t.Fatalf("a message does not move the member generation: %v", err)
	}
	s.AfterCommit(ctx, chat.Change{ConversationID: 10, Event: &chat.MemberRemoved{}, MembersChanged: []int64{carol.ID}})
	if err := s.Set(ctx, carol.ID, 10, true); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("after a membership change: %v, want NOT_FOUND", err)
	}
}

// Two instances share Redis: a change on one reaches the subscribers of the other, once per
// change however often it is repeated, and expiry stops a typist who stops calling.
func TestSubscribersAcrossInstances(t *testing.T) {
	t.Parallel()
	members := newMembers()
	members.set(10, alice, bob, carol)
	url := testenv.NewRedis(t)
	ttl := 2 * time.Second
	short := func(c *Config) { c.TTL = ttl }
	a := newService(t, testenv.RedisClient(t, url), members, short)
	b := newService(t, testenv.RedisClient(t, url), members, short)
	ctx := t.Context()

	// Carol is typing when Bob subscribes: his stream starts with her.
	if err := a.Set(ctx, carol.ID, 10, true); err != nil {
		t.Fatal(err)
	}
	onB := subscribe(t, b, ctx, bob.ID, 10)
	if diff := cmp.Diff(event{3, "Carol", true}, onB.next(t, 5*time.Second)); diff != "" {
		t.Fatalf("first event (-want +got):\n%s", diff)
	}
	if err := a.Set(ctx, carol.ID, 10, false); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(event{3, "Carol", false}, onB.next(t, 5*time.Second)); diff != "" {
		t.Fatalf("Carol stops (-want +got):\n%s", diff)
	}

	// Alice types for two TTLs, renewing every tenth of one: one start, no repeat, no stop.
	began := time.Now()
	for time.Since(began) < 2*ttl {
		if err := a.Set(ctx, alice.ID, 10, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(ttl / 10)
	}
	if diff := cmp.Diff(event{1, "Alice", true}, onB.next(t, time.Second)); diff != "" {
		t.Fatalf("Alice starts (-want +got):\n%s", diff)
	}
	onB.quiet(t, ttl/10)
	// Then she vanishes: she stops by herself, about a TTL after her last call.
	if diff := cmp.Diff(event{1, "Alice", false}, onB.next(t, 3*ttl)); diff != "" {
		t.Fatalf("Alice expires (-want +got):\n%s", diff)
	}
	b.wantMetric(t, "threadline_typing_subscriptions_active", 1)
	a.wantMetric(t, "threadline_typing_subscriptions_active", 0)
}

// A subscriber removed from the conversation is cut off with NOT_FOUND at the room's next read,
// before anything more is delivered to it; a non-member cannot subscribe.
func TestRemovedSubscriberIsCutOff(t *testing.T) {
	t.Parallel()
	s, rdb, members := aliceAndBob(t)
	ctx := t.Context()
	if _, err := s.Subscribe(ctx, carol.ID, 10, nil); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("non-member subscribes: %v, want NOT_FOUND", err)
	}
	if _, err := s.Subscribe(ctx, carol.ID, 99, nil); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("missing conversation: %v, want NOT_FOUND", err)
	}
	onBob := subscribe(t, s, ctx, bob.ID, 10)
	onAlice := subscribe(t, s, ctx, alice.ID, 10)
	members.set(10, alice)
	if err := rdb.Set(ctx, cache.GenerationKey(10), "moved", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(ctx, alice.ID, 10, true); err != nil {
		t.Fatal(err)
	}
	if err := onBob.endedWith(t, 5*time.Second); !errors.Is(err, apperr.ErrNotFound) {
		t.Fatalf("Bob's subscription ended with %v, want NOT_FOUND", err)
	}
	if diff := cmp.Diff(event{1, "Alice", true}, onAlice.next(t, 5*time.Second)); diff != "" {
		t.Fatalf("Alice (-want +got):\n%s", diff)
	}
}

// A subscriber that does not read is cut off once its buffer is full; nobody else waits.
func TestSlowSubscriberIsCutOff(t *testing.T) {
	t.Parallel()
	s, _, _ := aliceAndBob(t, func(c *Config) { c.Buffer = 2 })
	ctx := t.Context()
	slow := subscribe(t, s, ctx, bob.ID, 10)
	fast := subscribe(t, s, ctx, alice.ID, 10)
	var got []event
	for i := range 6 {
		if err := s.Set(ctx, alice.ID, 10, i%2 == 0); err != nil {
			t.Fatal(err)
		}
		got = append(got, fast.next(t, 5*time.Second))
	}
	want := []event{{1, "Alice", true}, {1, "Alice", false}, {1, "Alice", true}, {1, "Alice", false}, {1, "Alice", true}, {1, "Alice", false}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("fast subscriber (-want +got):\n%s", diff)
	}
	for range 2 { // what fitted in its buffer
		<-slow.ch
	}
	if err := slow.endedWith(t, 5*time.Second); !errors.Is(err, ErrTooSlow) {
		t.Fatalf("slow subscriber ended with %v, want ErrTooSlow", err)
	}
	s.wantMetric(t, "threadline_typing_cutoffs_total", 1)
}

// The last subscriber leaving drops the room and its Redis subscription; Close ends the rest.
func TestRoomsComeAndGo(t *testing.T) {
	t.Parallel()
	s, rdb, _ := aliceAndBob(t)
	ctx, cancel := context.WithCancel(t.Context())
	a := subscribe(t, s, ctx, alice.ID, 10)
	b := subscribe(t, s, ctx, bob.ID, 10)
	channels := func() int64 {
		n, err := rdb.PubSubNumSub(t.Context(), Channel(10)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n[Channel(10)]
	}
	if n := channels(); n != 1 {
		t.Fatalf("%d Redis subscriptions, want one for both subscribers", n)
	}
	cancel()
	for _, x := range []sub{a, b} {
		if err := x.endedWith(t, 5*time.Second); err != nil {
			t.Fatalf("ended with %v", err)
		}
	}
	waitFor(t, func() bool { return channels() == 0 && s.metric(t, "threadline_typing_subscriptions_active") == 0 })
	s.mu.Lock()
	rooms, shards := len(s.rooms), len(s.shards)
	s.mu.Unlock()
	if rooms != 0 || shards != 0 {
		t.Fatalf("%d rooms, %d shards left", rooms, shards)
	}

	c := subscribe(t, s, t.Context(), alice.ID, 10)
	s.Close()
	if err := c.endedWith(t, 5*time.Second); err != nil {
		t.Fatalf("ended by Close with %v", err)
	}
	if _, err := s.Subscribe(t.Context(), alice.ID, 10, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
	if err := s.Set(t.Context(), alice.ID, 10, true); err != nil {
		t.Fatalf("Set after Close: %v", err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// With Redis down, Set and Subscribe are refused with SERVICE_UNAVAILABLE, reads answer nobody,
// and open subscriptions still see typists stop; when Redis is back, so is everything.
func TestRedisDown(t *testing.T) {
	t.Parallel()
	rds := testenv.StartRedis(t)
	url := rds.URL()
	members := newMembers()
	members.set(10, alice, bob)
	fast := func(c *Config) {
		c.TTL, c.HealthInterval, c.ReadyTimeout = time.Second, 200*time.Millisecond, 300*time.Millisecond
	}
	s := newService(t, testenv.RedisClient(t, url), members, fast)
	ctx := t.Context()
	onBob := subscribe(t, s, ctx, bob.ID, 10)
	if err := s.Set(ctx, alice.ID, 10, true); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(event{1, "Alice", true}, onBob.next(t, 5*time.Second)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}

	rds.Stop(t)
	if err := s.Set(ctx, alice.ID, 10, true); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Set with Redis down: %v, want ErrUnavailable", err)
	}
	if pub := apperr.Public(ErrUnavailable); pub == nil || pub.Code != apperr.ServiceUnavailable {
		t.Fatalf("ErrUnavailable is %v", pub)
	}
	if _, err := s.Subscribe(ctx, alice.ID, 10, nil); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Subscribe with Redis down: %v, want ErrUnavailable", err)
	}
	got, err := s.Typing(ctx, []int64{10})
	if err != nil || len(got) != 1 || len(got[0]) != 0 {
		t.Fatalf("Typing with Redis down: %v, %v; want nobody", got, err)
	}
	// Alice's time runs out while Redis is away: Bob still sees her stop.
	if diff := cmp.Diff(event{1, "Alice", false}, onBob.next(t, 5*time.Second)); diff != "" {
		t.Fatalf("expiry during the outage (-want +got):\n%s", diff)
	}

	rds.Restart(t)
	// Alice keeps typing: once the breaker lets calls through again and the subscription is
	// re-established, Bob sees her.
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = s.Set(ctx, alice.ID, 10, true)
		select {
		case ev := <-onBob.ch:
			if diff := cmp.Diff(event{1, "Alice", true}, event{ev.User.ID, ev.User.Name, ev.Typing}); diff != "" {
				t.Fatalf("after the outage (-want +got):\n%s", diff)
			}
			return
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no typing event within 15s of Redis coming back")
		}
	}
}

// On a Redis Cluster, typing is published with SPUBLISH from the script and subscribed with
// SSUBSCRIBE, one connection per slot in use.
func TestShardedPubSubOnRedisCluster(t *testing.T) {
	t.Parallel()
	clients := testenv.NewRedisClusterClients(t, 2)
	members := newMembers()
	const convs = 8
	for c := int64(1); c <= convs; c++ {
		members.set(c, alice, bob)
	}
	a := newService(t, clients[0], members)
	b := newService(t, clients[1], members)
	if !b.sharded {
		t.Fatal("a cluster client must use sharded pub/sub")
	}
	ctx := t.Context()
	subs := map[int64]sub{}
	for c := int64(1); c <= convs; c++ {
		subs[c] = subscribe(t, b, ctx, bob.ID, c)
	}
	for c := int64(1); c <= convs; c++ {
		if err := a.Set(ctx, alice.ID, c, true); err != nil {
			t.Fatalf("conversation %d: %v", c, err)
		}
	}
	for c := int64(1); c <= convs; c++ {
		if diff := cmp.Diff(event{1, "Alice", true}, subs[c].next(t, 10*time.Second)); diff != "" {
			t.Fatalf("conversation %d (-want +got):\n%s", c, diff)
		}
	}
	got, err := a.Typing(ctx, []int64{1, 2, 3, 4, 5, 6, 7, 8})
	if err != nil {
		t.Fatal(err)
	}
	for i, users := range got {
		if diff := cmp.Diff([]chat.User{alice}, users); diff != "" {
			t.Fatalf("conversation %d (-want +got):\n%s", i+1, diff)
		}
	}
	// Each channel is a shard channel with exactly one subscriber, on its slot's node.
	channels := make([]string, 0, convs)
	for c := int64(1); c <= convs; c++ {
		channels = append(channels, Channel(c))
	}
	testenv.WantOneShardSubscriber(t, clients[1], channels...)
}

func TestChannelNames(t *testing.T) {
	for _, conv := range []int64{1, 42, 9007199254740993} {
		t.Run(fmt.Sprint(conv), func(t *testing.T) {
			got, ok := conversationOf(Channel(conv))
			if !ok || got != conv {
				t.Fatalf("conversationOf(%q) = %d, %v", Channel(conv), got, ok)
			}
			if a, b, c := redisclient.Slot(Channel(conv)), redisclient.Slot(Key(conv)), redisclient.Slot(MembersKey(conv, "g")); a != b || b != c || c != redisclient.Slot(cache.GenerationKey(conv)) {
				t.Fatalf("slots differ: channel %d, typing %d, members %d", a, b, c)
			}
		})
	}
	for _, bad := range []string{"msg:typing:events:{}", "msg:typing:events:{x}", "msg:events:{1}", "msg:typing:events:{1"} {
		if _, ok := conversationOf(bad); ok {
			t.Errorf("conversationOf(%q) accepted", bad)
		}
	}
}
