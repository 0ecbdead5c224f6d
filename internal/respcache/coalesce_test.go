package respcache

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/localcache"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/testenv"
)

// coalesceFixture is a response cache with an in-process tier over a Redis of the test's own,
// whose lookups report on waiting when they begin to wait for a lead.
type coalesceFixture struct {
	rdb     *redis.Client
	breaker *redisclient.Breaker
	c       *Cache
	waiting chan struct{}
	waits   atomic.Int64
}

func newCoalesceFixture(t *testing.T) *coalesceFixture {
	t.Helper()
	url := testenv.NewRedis(t)
	u, err := redisclient.Open(url, redisclient.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = u.Close() })
	rdb, ok := u.(*redis.Client)
	if !ok {
		t.Fatalf("redisclient.Open(%s) is a %T, want a standalone client", url, u)
	}
	tier := localcache.New(rdb.Options(), localcache.Config{Bytes: 1 << 20, Prefixes: TokenPrefixes()})
	t.Cleanup(tier.Close)
	deadline := time.Now().Add(10 * time.Second)
	for !tier.Active() {
		if time.Now().After(deadline) {
			t.Fatal("tracking not established after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f := &coalesceFixture{rdb: rdb, breaker: redisclient.NewBreaker(redisclient.BreakerConfig{}), waiting: make(chan struct{}, 16)}
	f.c = New(rdb, f.breaker, Config{Local: tier})
	t.Cleanup(f.c.Close)
	f.c.onWait = func() {
		f.waits.Add(1)
		f.waiting <- struct{}{}
	}
	return f
}

const coalesceGen = "msg:gen:{7}"

// firstLead sets the fixture up (generation g1) and returns the key of viewer 1's query and its
// first lookup: a miss that leads.
func (f *coalesceFixture) firstLead(t *testing.T) (string, *result) {
	t.Helper()
	f.setUp(t, "g1")
	key, _ := f.c.Key(1, "query { conversation(id: 7) { id title } }", "", nil)
	res := f.c.lookup(context.Background(), 1, key)
	if res.hit != nil || res.lead == nil || res.err != nil {
		t.Fatalf("first lookup: hit %v, lead %v, err %v; want a miss that leads", res.hit != nil, res.lead != nil, res.err)
	}
	return key, res
}

// setUp sets the generation to gen and creates the tokens of viewers 1 and 2, then waits for a
// barrier: the invalidations of these writes are applied before the test's lookups take their
// snapshots, and refuse none of their fills.
func (f *coalesceFixture) setUp(t *testing.T, gen string) {
	t.Helper()
	ctx := context.Background()
	if err := f.rdb.Set(ctx, coalesceGen, gen, 0).Err(); err != nil {
		t.Fatal(err)
	}
	for _, viewer := range []int64{1, 2} {
		for _, k := range []string{viewerTokenKey(viewer), listTokenKey(viewer)} {
			if err := f.rdb.Set(ctx, k, "v"+k, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := f.c.local.Barrier(ctx); err != nil {
		t.Fatal(err)
	}
}

// execute is what an execution of the page of conversation 7 under the miss res declares: the
// viewer's membership token and the generation, read now from Redis (after the lookup's
// snapshot, as a resolver reads it), and the data.
func (f *coalesceFixture) execute(t *testing.T, res *result) (*collector, *graphql.Response) {
	t.Helper()
	gen, err := f.rdb.Get(context.Background(), coalesceGen).Result()
	if err != nil {
		t.Fatal(err)
	}
	col := &collector{viewer: 1, viewerToken: res.tokens.viewer, listToken: res.tokens.list, deps: map[string]string{}}
	col.add(viewerTokenKey(1), res.tokens.viewer)
	col.add(coalesceGen, gen)
	return col, &graphql.Response{Data: json.RawMessage(`{"conversation":{"id":"7","title":"` + gen + `"}}`)}
}

// awaitWaiting returns once a lookup has begun to wait for a lead.
func (f *coalesceFixture) awaitWaiting(t *testing.T) {
	t.Helper()
	select {
	case <-f.waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("no lookup waited for the lead in 10s")
	}
}

// lookupAsync starts a lookup of key for viewer and returns where its result arrives.
func (f *coalesceFixture) lookupAsync(ctx context.Context, viewer int64, key string) <-chan *result {
	out := make(chan *result, 1)
	go func() { out <- f.c.lookup(ctx, viewer, key) }()
	return out
}

// storedInRedis waits until the response stored in the background for key has landed.
func (f *coalesceFixture) storedInRedis(t *testing.T, key string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for f.rdb.Exists(context.Background(), key).Val() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s not stored after 10s", key)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestConcurrentMissWaitsForTheLeader: a lookup of a key whose execution is in progress in the
// process waits for it and serves its response from the tier, byte for byte what a Redis hit on
// the stored response serves, without executing.
func TestConcurrentMissWaitsForTheLeader(t *testing.T) {
	t.Parallel()
	f := newCoalesceFixture(t)
	ctx := context.Background()
	key, leader := f.firstLead(t)
	waiter := f.lookupAsync(ctx, 1, key)
	f.awaitWaiting(t)
	col, resp := f.execute(t, leader)
	f.c.executed(ctx, leader, col, resp)

	got := <-waiter
	if got.hit == nil || got.lead != nil {
		t.Fatalf("waiting lookup: hit %v, lead %v; want a hit", got.hit != nil, got.lead != nil)
	}
	want := `{"data":{"conversation":{"id":"7","title":"g1"}}}`
	if diff := cmp.Diff(want, string(got.hit.body)); diff != "" {
		t.Errorf("waiter's body (-want +got):\n%s", diff)
	}
	// The path it replaces: the stored response fetched back from Redis.
	f.storedInRedis(t, key)
	plain := New(f.rdb, f.breaker, Config{})
	t.Cleanup(plain.Close)
	fromRedis := plain.lookup(ctx, 1, key)
	if fromRedis.hit == nil {
		t.Fatal("no Redis hit on the stored response")
	}
	if diff := cmp.Diff(string(fromRedis.hit.body), string(got.hit.body)); diff != "" {
		t.Errorf("waiter's body against a Redis hit's (-redis +waiter):\n%s", diff)
	}
	if diff := cmp.Diff(string(fromRedis.hit.data()), string(got.hit.data())); diff != "" {
		t.Errorf("waiter's data against a Redis hit's (-redis +waiter):\n%s", diff)
	}
	if s := f.c.Stats(); s.Coalesced != 1 || s.Misses != 1 || s.Hits != 1 {
		t.Errorf("stats: %d coalesced, %d misses, %d hits; want 1, 1, 1", s.Coalesced, s.Misses, s.Hits)
	}
	// A later lookup is a tier hit on the leader's response, with no wait.
	if later := f.c.lookup(ctx, 1, key); later.hit == nil {
		t.Error("a lookup after the lead missed")
	}
	if n := f.waits.Load(); n != 1 {
		t.Errorf("%d waits, want 1", n)
	}
}

// TestWaiterRefusesALeaderPastAWrite: a write that completed after the leader read its data and
// before a waiter began moves a token the leader's response depends on; the waiter does not
// serve that response, and executes (it leads, since the first lead ended).
func TestWaiterRefusesALeaderPastAWrite(t *testing.T) {
	t.Parallel()
	f := newCoalesceFixture(t)
	ctx := context.Background()
	key, leader := f.firstLead(t)
	col, resp := f.execute(t, leader)
	if err := f.rdb.Set(ctx, coalesceGen, "g2", 0).Err(); err != nil { // the write, completed
		t.Fatal(err)
	}
	waiter := f.lookupAsync(ctx, 1, key)
	f.awaitWaiting(t)
	f.c.executed(ctx, leader, col, resp)

	got := <-waiter
	if got.hit != nil {
		t.Fatalf("the waiter served %s, read before a write that completed before it began", got.hit.body)
	}
	if got.lead == nil {
		t.Error("the waiter's miss does not lead")
	}
	got.lead.end()
	if s := f.c.Stats(); s.Coalesced != 0 {
		t.Errorf("%d coalesced, want 0", s.Coalesced)
	}
}

// TestWaitersOfAnUnstoredResponseExecute: when the leader's response is not stored (errors, a
// resolver that declared nothing, no response at all), or its request ends without one, a
// waiter gets nothing from it and executes. Another viewer's lookup of the same document never
// waits for the leader: its key is another.
func TestWaitersOfAnUnstoredResponseExecute(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		end  func(f *coalesceFixture, leader *result, cancel context.CancelFunc)
	}{
		{"errors", func(f *coalesceFixture, leader *result, _ context.CancelFunc) {
			col, resp := f.execute(t, leader)
			resp.Errors = gqlerror.List{{Message: "internal error"}}
			f.c.executed(context.Background(), leader, col, resp)
		}},
		{"uncacheable", func(f *coalesceFixture, leader *result, _ context.CancelFunc) {
			col, resp := f.execute(t, leader)
			col.uncacheable = true
			f.c.executed(context.Background(), leader, col, resp)
		}},
		{"no response", func(f *coalesceFixture, leader *result, _ context.CancelFunc) {
			col, _ := f.execute(t, leader)
			f.c.executed(context.Background(), leader, col, nil)
		}},
		{"request ended", func(_ *coalesceFixture, _ *result, cancel context.CancelFunc) { cancel() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newCoalesceFixture(t)
			ctx := context.Background()
			f.setUp(t, "g1")
			const doc = "query { conversation(id: 7) { id title } }"
			key, _ := f.c.Key(1, doc, "", nil)

			leaderCtx, cancel := context.WithCancel(ctx)
			defer cancel()
			leader := f.c.lookup(leaderCtx, 1, key)
			if leader.lead == nil {
				t.Fatal("first lookup does not lead")
			}
			other, _ := f.c.Key(2, doc, "", nil)
			if res := f.c.lookup(ctx, 2, other); res.hit != nil || res.lead == nil {
				t.Errorf("another viewer's lookup: hit %v, lead %v; want a miss that leads its own key", res.hit != nil, res.lead != nil)
			} else {
				res.lead.end()
			}
			if n := f.waits.Load(); n != 0 {
				t.Fatalf("another viewer's lookup waited (%d waits)", n)
			}
			waiter := f.lookupAsync(ctx, 1, key)
			f.awaitWaiting(t)
			tc.end(f, leader, cancel)
			got := <-waiter
			if got.hit != nil {
				t.Fatalf("the waiter served %s", got.hit.body)
			}
			if got.lead == nil {
				t.Error("the waiter's miss does not lead")
			}
			got.lead.end()
			if s := f.c.Stats(); s.Coalesced != 0 || s.Hits != 0 {
				t.Errorf("stats: %d coalesced, %d hits; want 0, 0", s.Coalesced, s.Hits)
			}
		})
	}
}

// TestWaitersLeadTheNextExecution: when a lead leaves nothing in the tier, one of its waiters
// leads the next execution and the others wait for that one, and are served its response.
func TestWaitersLeadTheNextExecution(t *testing.T) {
	t.Parallel()
	f := newCoalesceFixture(t)
	ctx := context.Background()
	key, first := f.firstLead(t)
	a, b := f.lookupAsync(ctx, 1, key), f.lookupAsync(ctx, 1, key)
	f.awaitWaiting(t)
	f.awaitWaiting(t)
	col, resp := f.execute(t, first)
	col.uncacheable = true
	f.c.executed(ctx, first, col, resp)

	var next <-chan *result
	var second *result
	select {
	case second = <-a:
		next = b
	case second = <-b:
		next = a
	}
	if second.hit != nil || second.lead == nil {
		t.Fatalf("first waiter back: hit %v, lead %v; want a miss that leads", second.hit != nil, second.lead != nil)
	}
	f.awaitWaiting(t) // the other waits for it
	col, resp = f.execute(t, second)
	f.c.executed(ctx, second, col, resp)
	got := <-next
	if got.hit == nil {
		t.Fatal("the other waiter missed")
	}
	if diff := cmp.Diff(`{"data":{"conversation":{"id":"7","title":"g1"}}}`, string(got.hit.body)); diff != "" {
		t.Errorf("body (-want +got):\n%s", diff)
	}
	if s := f.c.Stats(); s.Coalesced != 1 || s.Misses != 2 {
		t.Errorf("stats: %d coalesced, %d misses; want 1, 2", s.Coalesced, s.Misses)
	}
}

// TestEarlyLeadEndsWhenTheExecutorDoesNotUseIt: a miss found before the executor (Lookup) leads
// its key; when the executor will not keep a response under that key (it computes another key,
// or does not serve the operation from the cache), the lead ends before the execution, and a
// lookup waiting for it goes on then, not when the request ends.
func TestEarlyLeadEndsWhenTheExecutorDoesNotUseIt(t *testing.T) {
	t.Parallel()
	const doc = "query { conversation(id: 7) { id title } }"
	for _, tc := range []struct {
		name string
		req  *request // what the executor sees; nil: no request extension (the cache does not serve it)
	}{
		{"another key", &request{query: doc, variables: map[string]any{"x": 1}}},
		{"not served from the cache", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newCoalesceFixture(t)
			f.setUp(t, "g1")
			key, _ := f.c.Key(1, doc, "", nil)
			reqCtx, cancel := context.WithCancel(auth.WithViewer(context.Background(), 1))
			defer cancel() // the request's end, which would end the lead at the latest
			body, ctx := f.c.Lookup(reqCtx, 1, key)
			early := f.c.leading(key)
			if body != nil || early == nil {
				t.Fatalf("early lookup: body %q, leading %v; want a miss that leads", body, early != nil)
			}
			waiter := f.lookupAsync(context.Background(), 1, key)
			f.awaitWaiting(t)

			opCtx := &graphql.OperationContext{Operation: &ast.OperationDefinition{Operation: ast.Query}}
			if tc.req != nil {
				opCtx.Stats.SetExtension(extensionName, tc.req)
			}
			// The early lead's own channel, not the key's current lead: the waiter, woken by
			// the lead's end, misses again and may lead the key itself by then.
			var leadDuringExecution bool
			f.c.InterceptOperation(graphql.WithOperationContext(ctx, opCtx), func(context.Context) graphql.ResponseHandler {
				select {
				case <-early.done:
				default:
					leadDuringExecution = true
				}
				return func(context.Context) *graphql.Response { return nil }
			})
			if leadDuringExecution {
				t.Error("the early lookup's lead was still in place while the request executed")
			}
			select {
			case got := <-waiter:
				if got.hit != nil {
					t.Errorf("the waiter served %s", got.hit.body)
				}
				got.lead.end()
			case <-time.After(10 * time.Second):
				t.Fatal("the waiter still waits for the early lookup's lead")
			}
		})
	}
}
