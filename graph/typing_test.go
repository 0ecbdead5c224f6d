package graph_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/testenv"
)

const (
	setTypingMut   = `mutation($c: ID!, $t: Boolean!) { setTyping(conversationId: $c, typing: $t) }`
	typingSub      = `subscription($c: ID!) { typing(conversationId: $c) { user { id name } typing } }`
	typingQuery    = `query($c: ID!) { conversation(id: $c) { typing { id name } } }`
	cachedConvRead = `query($c: ID!) { conversation(id: $c) { title messages(limit: 5) { items { id body } } } }`
)

// typingEvent is a TypingEvent as the tests compare it.
type typingEvent struct {
	User   string
	Name   string
	Typing bool
}

// nextTyping reads the next message of subscription id, which must be a typing event.
func nextTyping(t testing.TB, ws *apptest.WS, id string, timeout time.Duration) typingEvent {
	t.Helper()
	m, _ := ws.Next(timeout)
	if m.Type != "next" || m.ID != id {
		t.Fatalf("got %s (id %q) %s, want a typing event of %q", m.Type, m.ID, m.Payload, id)
	}
	var p struct {
		Data struct {
			Typing struct {
				User   struct{ ID, Name string }
				Typing bool
			}
		}
		Errors []apptest.Error
	}
	if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
		t.Fatalf("typing payload %s (%v)", m.Payload, err)
	}
	return typingEvent{p.Data.Typing.User.ID, p.Data.Typing.User.Name, p.Data.Typing.Typing}
}

// setTypingAs runs setTyping on ep as user, which must answer true.
func setTypingAs(t testing.TB, ep *apptest.Endpoint, user int64, conv string, typing bool) {
	t.Helper()
	var out struct{ SetTyping bool }
	ep.Client(user).Query(t, setTypingMut, vars{"c": conv, "t": typing}, &out)
	if !out.SetTyping {
		t.Fatalf("setTyping(%s, %v) as %d answered false", conv, typing, user)
	}
}

// typingNow reads Conversation.typing on ep as user.
func typingNow(t testing.TB, ep *apptest.Endpoint, user int64, conv string) []string {
	t.Helper()
	var out struct {
		Conversation struct{ Typing []struct{ ID, Name string } }
	}
	ep.Client(user).Query(t, typingQuery, vars{"c": conv}, &out)
	names := []string{}
	for _, u := range out.Conversation.Typing {
		names = append(names, u.Name)
	}
	return names
}

// scrapeMetric reads an unlabelled metric from an endpoint's /metrics (a real process's).
func scrapeMetric(t testing.TB, ep *apptest.Endpoint, name string) float64 {
	t.Helper()
	status, body := ep.GetOps("/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", sc.Text(), err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func waitScraped(t testing.TB, ep *apptest.Endpoint, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for scrapeMetric(t, ep, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, scrapeMetric(t, ep, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// percentile of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

// TestTypingAcrossInstances is the acceptance of typing indicators against two real server
// processes sharing PostgreSQL (through PgBouncer) and Redis:
//
//   - setTyping on A reaches a typing subscriber on B (the latency is logged, not asserted);
//   - a repeated setTyping(true) sends nothing more, setTyping(false) ends typing at once;
//   - once the member set is warm, setTyping calls on both instances and typing subscriptions
//     (subscribing, and every event) cost no SQL statement at all, by PgBouncer's count of
//     every query it relayed for the database; Conversation.typing costs none beyond the one
//     its conversation(id:) root always costs;
//   - typing moves neither the history cache's generation nor the response cache's tokens: a
//     stored response is still served;
//   - with the real 6 s: renewing every 2 s keeps a user typing, and a user who stops calling
//     is gone from Conversation.typing, with a typing:false event, about 6 s after the last
//     call.
func TestTypingAcrossInstances(t *testing.T) {
	t.Parallel()
	stack := testenv.Stack(t)
	d, direct := dbtest.NewDatabase(t)
	redisURL := testenv.NewRedis(t)
	u := dbtest.Users(t, direct, "Alice", "Bob", "Carol")
	alice, bob := u[0], u[1]
	conv := dbtest.Conversation(t, direct, "Typing", alice, bob)
	dbtest.Messages(t, direct, conv, []int64{alice, bob}, 10)
	c := apptest.ID(conv)
	start := func() *apptest.Process {
		env := apptest.Env(t, d, redisURL)
		env["RATE_LIMIT_DISABLED"] = "true" // the rate limit of setTyping is tested on its own
		env["DB_MIN_CONNS"] = "0"
		return apptest.StartProcess(t, env)
	}
	a, b := start(), start()
	ropts, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropts)
	t.Cleanup(func() { rdb.Close() })

	// Bob watches on B.
	watch := b.Dial(t, bob)
	watch.Subscribe("t", typingSub, vars{"c": c})
	waitScraped(t, &b.Endpoint, "threadline_typing_subscriptions_active", 1)

	// Alice on A, Bob's subscription on B: every change arrives, once.
	var latencies []time.Duration
	for i := range 40 {
		typing := i%2 == 0
		sent := time.Now()
		setTypingAs(t, &a.Endpoint, alice, c, typing)
		got := nextTyping(t, watch, "t", 10*time.Second)
		latencies = append(latencies, time.Since(sent))
		if diff := cmp.Diff(typingEvent{apptest.ID(alice), "Alice", typing}, got); diff != "" {
			t.Fatalf("change %d (-want +got):\n%s", i, diff)
		}
	}
	slices.Sort(latencies)
	t.Logf("setTyping on A (HTTP request sent) to the event on B's WebSocket, %d changes: p50 %v, p90 %v, max %v",
		len(latencies), percentile(latencies, 0.5), percentile(latencies, 0.9), latencies[len(latencies)-1])

	// A response for the cache to keep, and the counters the series must not move.
	for range 2 {
		a.Client(alice).Query(t, cachedConvRead, vars{"c": c}, nil)
	}
	respHits := func() int64 { return responseCacheHits(t, &a.Endpoint) }
	hits := respHits()
	gen, err := rdb.Get(t.Context(), cache.GenerationKey(conv)).Result()
	if err != nil {
		t.Fatal(err)
	}
	// PgBouncer counts, per database, every exchange it relays, as the server sends it
	// (TestPgBouncerCarriesEveryStatement: its count equals the server's own statements,
	// transaction control included, less those sent in one exchange with another), and the
	// servers reach PostgreSQL only through it.
	// pg_stat_database's xact_commit would not do: it counts transactions, not statements, and
	// each backend adds its counts only when it flushes them, at most once a second and up to
	// 10 s late when idle; pg_stat_force_next_flush() flushes only the backend that calls it,
	// not PgBouncer's server connections, so a series that did run SQL could read as "nothing
	// moved".
	queries := func() int64 { return pgbouncerQueries(t, stack.PgBouncerAdminURL, d.Name) }
	before := queries()

	// The series, on both instances: each change is one event, each repeat none.
	series := []struct {
		srv    *apptest.Process
		user   int64
		typing bool
		event  bool
	}{
		{a, alice, true, true}, {b, alice, true, false}, {a, alice, true, false},
		{b, bob, true, true}, {a, bob, true, false},
		{b, alice, false, true}, {a, alice, false, false},
		{a, bob, false, true}, {b, bob, false, false},
	}
	var want, got []typingEvent
	for round := range 3 {
		for _, s := range series {
			setTypingAs(t, &s.srv.Endpoint, s.user, c, s.typing)
			if s.event {
				name := map[int64]string{alice: "Alice", bob: "Bob"}[s.user]
				want = append(want, typingEvent{apptest.ID(s.user), name, s.typing})
				got = append(got, nextTyping(t, watch, "t", 10*time.Second))
			}
		}
		// A subscriber joining on A while Bob types starts with him.
		setTypingAs(t, &b.Endpoint, bob, c, true)
		got = append(got, nextTyping(t, watch, "t", 10*time.Second))
		want = append(want, typingEvent{apptest.ID(bob), "Bob", true})
		joiner := a.Dial(t, alice)
		joiner.Subscribe("j", typingSub, vars{"c": c})
		if diff := cmp.Diff(typingEvent{apptest.ID(bob), "Bob", true}, nextTyping(t, joiner, "j", 10*time.Second)); diff != "" {
			t.Fatalf("round %d: a new subscriber's first event (-want +got):\n%s", round, diff)
		}
		joiner.Complete("j")
		setTypingAs(t, &a.Endpoint, bob, c, false)
		got = append(got, nextTyping(t, watch, "t", 10*time.Second))
		want = append(want, typingEvent{apptest.ID(bob), "Bob", false})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("Bob's stream (-want +got):\n%s", diff)
	}
	if n := queries() - before; n != 0 {
		t.Fatalf("PgBouncer relayed %d queries during the warm series, want 0", n)
	}
	if now, _ := rdb.Get(t.Context(), cache.GenerationKey(conv)).Result(); now != gen {
		t.Fatalf("typing moved the history generation from %q to %q", gen, now)
	}
	a.Client(alice).Query(t, cachedConvRead, vars{"c": c}, nil)
	if h := respHits(); h != hits+1 {
		t.Fatalf("response cache hits %d, want %d: the stored response was not served after typing", h, hits+1)
	}

	// Conversation.typing: one statement per read, the conversation(id:) root's membership read
	// (TestConversationTypingRunsNoSQL names it); typing itself reads Redis only.
	setTypingAs(t, &a.Endpoint, alice, c, true)
	if diff := cmp.Diff(typingEvent{apptest.ID(alice), "Alice", true}, nextTyping(t, watch, "t", 10*time.Second)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	before = queries()
	const reads = 10
	for i := range reads {
		ep := []*apptest.Endpoint{&a.Endpoint, &b.Endpoint}[i%2]
		if diff := cmp.Diff([]string{"Alice"}, typingNow(t, ep, bob, c)); diff != "" {
			t.Fatalf("read %d (-want +got):\n%s", i, diff)
		}
	}
	if n := queries() - before; n != reads {
		t.Fatalf("PgBouncer relayed %d queries for %d reads of Conversation.typing, want %d", n, reads, reads)
	}

	// The real 6 s. Alice renews every 2 s for 8 s: she stays typing (no event at all). Then she
	// stops calling: typing:false comes about 6 s after her last call.
	var last time.Time
	for range 5 {
		setTypingAs(t, &b.Endpoint, alice, c, true)
		last = time.Now()
		if m, ok := watch.TryNext(); ok {
			t.Fatalf("while renewing: %s %s", m.Type, m.Payload)
		}
		time.Sleep(2 * time.Second)
	}
	if diff := cmp.Diff([]string{"Alice"}, typingNow(t, &a.Endpoint, bob, c)); diff != "" {
		t.Fatalf("still typing (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(typingEvent{apptest.ID(alice), "Alice", false}, nextTyping(t, watch, "t", 20*time.Second)); diff != "" {
		t.Fatalf("expiry (-want +got):\n%s", diff)
	}
	t.Logf("typing:false arrived %v after the last setTyping(true)", time.Since(last).Round(time.Millisecond))
	if got := typingNow(t, &a.Endpoint, bob, c); len(got) != 0 {
		t.Fatalf("still typing after the expiry event: %v", got)
	}
}

// TestConversationTypingRunsNoSQL names the statements: with the member set warm, setTyping runs
// none, and a conversation(id:) { typing } read runs only the root's membership read, as
// conversation(id:) { title } does.
func TestConversationTypingRunsNoSQL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	u := dbtest.Users(t, e.direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, e.direct, "c", u...)
	c := apptest.ID(conv)
	setTypingAs(t, &e.srv.Endpoint, u[0], c, true) // warms the member set
	e.resetStatements()
	for i := range 10 {
		setTypingAs(t, &e.srv.Endpoint, u[i%2], c, i%3 != 0)
	}
	if s := e.statementsSeen(); len(s) != 0 {
		t.Fatalf("setTyping with a warm member set ran %v", s)
	}
	setTypingAs(t, &e.srv.Endpoint, u[0], c, false)
	setTypingAs(t, &e.srv.Endpoint, u[1], c, true)
	e.resetStatements()
	if diff := cmp.Diff([]string{"Bob"}, typingNow(t, &e.srv.Endpoint, u[0], c)); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"ConversationsByIDForMember"}, e.statementsSeen()); diff != "" {
		t.Fatalf("statements of a typing read (-want +got):\n%s", diff)
	}
}

// A non-member is told what a stranger to a missing conversation is told, gets no typing
// subscription, and what they tried is seen by nobody.
func TestTypingNonMember(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob", "Mallory")
	alice, bob, mallory := u[0], u[1], u[2]
	conv := dbtest.Conversation(t, srv.Direct, "private", alice, bob)
	c := apptest.ID(conv)
	watch := srv.Dial(t, bob)
	watch.Subscribe("t", typingSub, vars{"c": c})
	waitMetric(t, srv, "threadline_typing_subscriptions_active", 1)

	answer := func(user int64, conv string) string {
		res := srv.Client(user).Must(t, setTypingMut, vars{"c": conv, "t": true})
		return string(res.Body)
	}
	missing := answer(mallory, apptest.ID(conv+1000))
	for _, tc := range []struct {
		name string
		got  string
	}{
		{"non-member", answer(mallory, c)},
		{"non-member again", answer(mallory, c)},
		{"member of nothing, missing", answer(alice, apptest.ID(conv+1000))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(missing, tc.got); diff != "" {
				t.Fatalf("answer differs from a missing conversation's (-missing +got):\n%s", diff)
			}
		})
	}
	if !strings.Contains(missing, `"NOT_FOUND"`) || !strings.Contains(missing, `"data":null`) {
		t.Fatalf("answer %s, want NOT_FOUND and no data", missing)
	}
	res := srv.Client(0).Must(t, setTypingMut, vars{"c": c, "t": true})
	if diff := cmp.Diff([]string{"UNAUTHENTICATED"}, res.Codes()); diff != "" {
		t.Fatalf("anonymous (-want +got):\n%s", diff)
	}

	// The subscription: refused alike (a result with the error and no data, then complete),
	// and nothing else is sent.
	subAnswer := func(conv string) string {
		ws := srv.Dial(t, mallory)
		ws.Subscribe("x", typingSub, vars{"c": conv})
		m, _ := ws.Next(10 * time.Second)
		if end, _ := ws.Next(10 * time.Second); end.Type != "complete" {
			t.Fatalf("after the refusal: %s %s", end.Type, end.Payload)
		}
		return m.Type + " " + string(m.Payload)
	}
	if got, want := subAnswer(c), subAnswer(apptest.ID(conv+1000)); got != want || !strings.Contains(got, `"NOT_FOUND"`) || !strings.Contains(got, `"data":null`) {
		t.Fatalf("subscription refusal %s, missing conversation's %s", got, want)
	}
	var read struct {
		Conversation *struct{ Typing []struct{ ID string } }
	}
	srv.Client(mallory).Query(t, typingQuery, vars{"c": c}, &read)
	if read.Conversation != nil {
		t.Fatalf("a non-member read %+v", read.Conversation)
	}
	watch.Quiet(300 * time.Millisecond)
	if got := typingNow(t, &srv.Endpoint, alice, c); len(got) != 0 {
		t.Fatalf("typing after a non-member's attempt: %v", got)
	}
}

// The typing subscription counts against a connection's subscriptions like any other.
func TestTypingSubscriptionCap(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.WSMaxSubscriptions = 2 }})
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	c := apptest.ID(dbtest.Conversation(t, srv.Direct, "c", u...))
	ws := srv.Dial(t, u[0])
	ws.Subscribe("1", typingSub, vars{"c": c})
	ws.Subscribe("2", `subscription($c: ID!) { messageAdded(conversationId: $c) { seq } }`, vars{"c": c})
	waitMetric(t, srv, "threadline_typing_subscriptions_active", 1)
	waitMetric(t, srv, "threadline_subscriptions_active", 1)
	ws.Subscribe("3", typingSub, vars{"c": c})
	m, _ := ws.Next(10 * time.Second)
	if m.Type != "error" || m.ID != "3" || !strings.Contains(string(m.Payload), "RATE_LIMITED") {
		t.Fatalf("third subscription: %s (id %q) %s, want RATE_LIMITED", m.Type, m.ID, m.Payload)
	}
	ws.Complete("1")
	waitMetric(t, srv, "threadline_typing_subscriptions_active", 0)
	ws.Subscribe("4", typingSub, vars{"c": c})
	waitMetric(t, srv, "threadline_typing_subscriptions_active", 1)
}

// setTyping costs graph.SetTypingCost requests: a flood is refused at once with RATE_LIMITED,
// and a client that calls every 2 s, as a typing client does, is never refused, even right
// after a flood spent its budget.
func TestSetTypingRateLimit(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.RateLimitDisabled = false }})
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	c := apptest.ID(dbtest.Conversation(t, srv.Direct, "c", u...))
	cl := srv.Client(u[0])
	accepted, refused := 0, 0
	for i := range 3 * srv.Config.RateLimitBurst / graph.SetTypingCost {
		res := cl.Must(t, setTypingMut, vars{"c": c, "t": i%2 == 0})
		switch {
		case res.OK():
			accepted++
		case slices.Equal(res.Codes(), []string{"RATE_LIMITED"}):
			refused++
		default:
			t.Fatalf("call %d: %d %+v", i, res.Status, res.Errors)
		}
	}
	t.Logf("flood of %d calls: %d accepted, %d refused", accepted+refused, accepted, refused)
	if refused == 0 || accepted > srv.Config.RateLimitBurst/graph.SetTypingCost+2 {
		t.Fatalf("flood: %d accepted, %d refused; want at most about the burst's worth (%d) accepted",
			accepted, refused, srv.Config.RateLimitBurst/graph.SetTypingCost)
	}
	// Continuous typing: a call every 2 s earns back 2 s × RATE_LIMIT requests, more than a call
	// costs.
	if 2*srv.Config.RateLimit < graph.SetTypingCost {
		t.Fatalf("RATE_LIMIT %d cannot pay a setTyping every 2 s", srv.Config.RateLimit)
	}
	for range 3 {
		time.Sleep(2 * time.Second)
		if res := cl.Must(t, setTypingMut, vars{"c": c, "t": true}); !res.OK() {
			t.Fatalf("typing every 2 s refused: %d %+v", res.Status, res.Errors)
		}
	}
}

// User.online: after a request, and for as long as a WebSocket is open; offline a TTL after
// the last of them. A list of users is one batch (one Redis round trip).
func TestOnline(t *testing.T) {
	t.Parallel()
	const ttl = time.Second
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.PresenceTTL = ttl }})
	names := []string{"Alice", "Bob"}
	for i := range 48 {
		names = append(names, fmt.Sprint("member ", i))
	}
	u := dbtest.Users(t, srv.Direct, names...)
	alice, bob := u[0], u[1]
	c := apptest.ID(dbtest.Conversation(t, srv.Direct, "c", u...))
	bobOnline := func() bool {
		t.Helper()
		var out struct {
			Conversation struct {
				Members []struct {
					ID     string
					Online bool
				}
			}
		}
		srv.Client(alice).Query(t, `query($c: ID!) { conversation(id: $c) { members { id online } } }`, vars{"c": c}, &out)
		if len(out.Conversation.Members) != len(u) {
			t.Fatalf("%d members", len(out.Conversation.Members))
		}
		for _, m := range out.Conversation.Members {
			if m.ID == apptest.ID(bob) {
				return m.Online
			}
		}
		t.Fatal("Bob is not a member")
		return false
	}
	waitOffline := func(what string) time.Duration {
		t.Helper()
		began := time.Now()
		for bobOnline() {
			if time.Since(began) > 10*ttl {
				t.Fatalf("Bob still online %v after %s", time.Since(began), what)
			}
			time.Sleep(ttl / 10)
		}
		return time.Since(began)
	}
	if bobOnline() {
		t.Fatal("Bob online before doing anything")
	}
	batches := batchCount(t, srv, "online")
	bobOnline()
	if n := batchCount(t, srv, "online") - batches; n != 1 {
		t.Fatalf("50 members' online in %v batches, want 1", n)
	}

	srv.Client(bob).Query(t, `{ me { id } }`, nil, nil)
	if !bobOnline() {
		t.Fatal("Bob offline right after a request")
	}
	t.Logf("offline %v after the request's presence (TTL %v)", waitOffline("his last request"), ttl)

	ws := srv.Dial(t, bob)
	if !bobOnline() {
		t.Fatal("Bob offline with a WebSocket open")
	}
	for range 6 { // three TTLs, the connection silent
		time.Sleep(ttl / 2)
		if !bobOnline() {
			t.Fatal("Bob offline while his WebSocket is open")
		}
	}
	ws.Drop()
	t.Logf("offline %v after the WebSocket closed", waitOffline("his WebSocket closed"))

	var me struct{ Me struct{ Online bool } }
	srv.Client(bob).Query(t, `{ me { online } }`, nil, &me)
	if !me.Me.Online {
		t.Fatal("me { online } false: the request itself is a sign of life")
	}
}

// batchCount is how many dataloader batches the named loader ran.
func batchCount(t testing.TB, srv *apptest.Server, loader string) uint64 {
	t.Helper()
	if m := findMetric(t, srv, "threadline_dataloader_batch_size", map[string]string{"loader": loader}); m != nil {
		return m.GetHistogram().GetSampleCount()
	}
	return 0
}

// responseCacheHits reads the response cache's hits from an endpoint's /health/cache.
func responseCacheHits(t testing.TB, ep *apptest.Endpoint) int64 {
	t.Helper()
	_, body := ep.GetOps("/health/cache")
	var h struct {
		ResponseCache *struct{ Hits int64 } `json:"responseCache"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.ResponseCache == nil {
		t.Fatalf("/health/cache: %s (%v)", body, err)
	}
	return h.ResponseCache.Hits
}
