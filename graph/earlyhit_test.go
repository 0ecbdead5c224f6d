package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
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
	"github.com/threadline/threadline/graph/client"
	"github.com/threadline/threadline/graph/document"
	"github.com/threadline/threadline/internal/respcache"
	"github.com/threadline/threadline/internal/testenv"
)

// earlyQuery is a page with a named operation and variables, as clients send it.
const earlyQuery = `query Early($id: ID!, $limit: Int) { conversation(id: $id) { title messages(limit: $limit) { items { seq body sender { name } } hasMore } } }`

// httpAnswer is what a client receives.
type httpAnswer struct {
	status int
	header http.Header
	body   []byte
}

func sendRaw(t testing.TB, req *http.Request) httpAnswer {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return httpAnswer{status: res.StatusCode, header: res.Header, body: body}
}

// comparable drops the headers that differ between any two answers: the date, and the request
// id (present in both, checked apart).
func (a httpAnswer) comparable() http.Header {
	h := a.header.Clone()
	h.Del("Date")
	h.Del("X-Request-Id")
	return h
}

func postRequest(t testing.TB, url, authz string, body any, header http.Header) *http.Request {
	t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, url+"/query", bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return req
}

func getRequest(t testing.TB, base, authz string, params map[string]any, header http.Header) *http.Request {
	t.Helper()
	q := url.Values{}
	for k, v := range params {
		if s, ok := v.(string); ok {
			q.Set(k, s)
			continue
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		q.Set(k, string(b))
	}
	req, err := http.NewRequest(http.MethodGet, base+"/query?"+q.Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return req
}

// earlyHitsAfter runs fn and returns how many hits were answered before the executor.
func (e *env) earlyHitsAfter(fn func()) int64 {
	before := e.responseCacheStats().EarlyHits
	fn()
	return e.responseCacheStats().EarlyHits - before
}

// operationsCounted returns threadline_graphql_operations_total for an operation name and type.
func operationsCounted(t testing.TB, srv *apptest.Server, name, typ string) float64 {
	t.Helper()
	if m := findMetric(t, srv, "threadline_graphql_operations_total", map[string]string{"operation": name, "type": typ}); m != nil {
		return m.GetCounter().GetValue()
	}
	return 0
}

// TestEarlyHitAnswersAsExecuted: a hit answered before gqlgen sends what the executed request
// sent, byte for byte, with the same status and headers, for every way of asking: POST and GET,
// each media type, a trusted document by its hash, one operation of several. It is counted as
// an operation, like an executed one.
func TestEarlyHitAnswersAsExecuted(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	f := newFixture(t, e, 12)
	authz := "Bearer " + e.token(f.alice)
	gqlJSON := http.Header{"Accept": {"application/graphql-response+json"}}
	pageHash := document.SHA256(client.MessagesPage_Operation)
	if _, ok := document.Trusted()[pageHash]; !ok {
		t.Fatal("MessagesPage is not in the trusted-document manifest")
	}
	twoOps := `query First($id: ID!) { conversation(id: $id) { id } } ` + earlyQuery

	shapes := []struct {
		name      string
		operation string
		request   func(limit int) *http.Request
	}{
		{"POST", "Early", func(l int) *http.Request {
			return postRequest(t, e.URL, authz, map[string]any{"query": earlyQuery, "variables": map[string]any{"id": f.conv, "limit": l}}, nil)
		}},
		{"POST, graphql-response+json", "Early", func(l int) *http.Request {
			return postRequest(t, e.URL, authz, map[string]any{"query": earlyQuery, "variables": map[string]any{"id": f.conv, "limit": l}}, gqlJSON)
		}},
		{"GET", "Early", func(l int) *http.Request {
			return getRequest(t, e.URL, authz, map[string]any{"query": earlyQuery, "variables": map[string]any{"id": f.conv, "limit": l}}, nil)
		}},
		{"GET, graphql-response+json", "Early", func(l int) *http.Request {
			return getRequest(t, e.URL, authz, map[string]any{"query": earlyQuery, "variables": map[string]any{"id": f.conv, "limit": l}}, gqlJSON)
		}},
		{"POST, a trusted document by its hash", "MessagesPage", func(l int) *http.Request {
			return postRequest(t, e.URL, authz, map[string]any{
				"operationName": "MessagesPage", "variables": map[string]any{"conversationId": f.conv, "limit": l, "offset": 0},
				"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": pageHash}},
			}, nil)
		}},
		{"POST, one operation of several", "Early", func(l int) *http.Request {
			return postRequest(t, e.URL, authz, map[string]any{"query": twoOps, "operationName": "Early", "variables": map[string]any{"id": f.conv, "limit": l}}, nil)
		}},
	}
	for i, s := range shapes {
		t.Run(s.name, func(t *testing.T) {
			limit := 3 + i // a response of its own: the first request executes
			var executed httpAnswer
			if n := e.earlyHitsAfter(func() { executed = sendRaw(t, s.request(limit)) }); n != 0 {
				t.Fatal("the first request was answered from the cache")
			}
			if executed.status != http.StatusOK || !bytes.HasPrefix(executed.body, []byte(`{"data":{"conversation":{`)) {
				t.Fatalf("executed: %d %s", executed.status, executed.body)
			}
			for try := 0; ; try++ {
				if try == 50 {
					t.Fatalf("never answered before the executor: %+v", e.responseCacheStats())
				}
				counted := operationsCounted(t, e.srv, s.operation, "query")
				var early httpAnswer
				if e.earlyHitsAfter(func() { early = sendRaw(t, s.request(limit)) }) == 0 {
					time.Sleep(5 * time.Millisecond) // the response is stored in the background
					continue
				}
				if early.status != executed.status || !bytes.Equal(early.body, executed.body) {
					t.Fatalf("early hit: %d %s\nexecuted: %d %s", early.status, early.body, executed.status, executed.body)
				}
				if diff := cmp.Diff(executed.comparable(), early.comparable()); diff != "" {
					t.Fatalf("headers (-executed +early):\n%s", diff)
				}
				if early.header.Get("X-Request-Id") == "" {
					t.Fatal("no X-Request-Id")
				}
				if got := operationsCounted(t, e.srv, s.operation, "query") - counted; got != 1 {
					t.Fatalf("the early hit counted as %v operations %s, want 1", got, s.operation)
				}
				return
			}
		})
	}
}

// TestEarlyHitHonoursTheLimits: before gqlgen, every limit still holds: the rate limit charges
// a hit as any request, a GET never answers a mutation, anonymous requests are never answered
// from the cache, a body over the limit is refused, and with trusted documents only, a
// document outside the manifest is refused even when another instance on the same Redis has
// its response stored.
func TestEarlyHitHonoursTheLimits(t *testing.T) {
	t.Parallel()

	t.Run("rate limit", func(t *testing.T) {
		t.Parallel()
		const burst = 4
		e := newEnv(t, envOptions{respCache: true, rateLimit: burst})
		f := newFixture(t, e, 3)
		authz := "Bearer " + e.token(f.alice)
		vars := map[string]any{"id": f.conv, "limit": 2}
		e.cachedRead(f.alice, earlyQuery, vars)
		time.Sleep(1100 * time.Millisecond) // the budget refills
		var statuses []int
		var remaining []string
		early := e.earlyHitsAfter(func() {
			for range burst + 1 {
				a := sendRaw(t, postRequest(t, e.URL, authz, map[string]any{"query": earlyQuery, "variables": vars}, nil))
				statuses = append(statuses, a.status)
				remaining = append(remaining, a.header.Get("X-RateLimit-Remaining"))
			}
		})
		want := []int{200, 200, 200, 200, 429}
		if !slices.Equal(statuses, want) || early == 0 || early > burst {
			t.Fatalf("statuses %v (X-RateLimit-Remaining %q), %d answered before the executor", statuses, remaining, early)
		}
		for _, r := range remaining[:burst] {
			if _, err := strconv.Atoi(r); err != nil {
				t.Fatalf("X-RateLimit-Remaining %q", remaining)
			}
		}
	})

	t.Run("GET, body, anonymous", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{respCache: true})
		f := newFixture(t, e, 3)
		authz := "Bearer " + e.token(f.alice)
		mixed := `query Read($c: ID!) { conversation(id: $c) { title } } mutation Write($c: ID!) { sendMessage(input: {conversationId: $c, body: "over GET"}) { seq } }`
		read := map[string]any{"query": mixed, "operationName": "Read", "variables": map[string]any{"c": f.conv}}
		for try := 0; ; try++ { // the query of the document is answered from the cache
			if try == 50 {
				t.Fatal("the query was never answered before the executor")
			}
			if e.earlyHitsAfter(func() {
				if a := sendRaw(t, getRequest(t, e.URL, authz, read, nil)); a.status != http.StatusOK {
					t.Fatalf("GET Read: %d %s", a.status, a.body)
				}
			}) == 1 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		write := map[string]any{"query": mixed, "operationName": "Write", "variables": map[string]any{"c": f.conv}}
		for _, w := range []map[string]any{write, {"query": `mutation { sendMessage(input: {conversationId: "1", body: "x"}) { seq } }`}} {
			a := sendRaw(t, getRequest(t, e.URL, authz, w, nil))
			if a.status != http.StatusMethodNotAllowed || a.header.Get("Allow") != "POST" {
				t.Fatalf("a mutation over GET: %d Allow %q %s", a.status, a.header.Get("Allow"), a.body)
			}
		}
		var n int
		if err := e.direct.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE body = 'over GET'`).Scan(&n); err != nil || n != 0 {
			t.Fatalf("%d messages sent over GET (%v)", n, err)
		}

		// Anonymous: never from the cache, whatever is stored.
		if n := e.earlyHitsAfter(func() { sendRaw(t, getRequest(t, e.URL, "", read, nil)) }); n != 0 {
			t.Fatal("an anonymous request was answered from the cache")
		}

		// A body over MAX_BODY_BYTES without a Content-Length: cut off while it is read, 413.
		padded := map[string]any{"query": earlyQuery, "variables": map[string]any{"id": f.conv, "limit": 2, "pad": strings.Repeat("x", 70<<10)}}
		raw, _ := json.Marshal(padded)
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/query", io.MultiReader(bytes.NewReader(raw))) // no length: chunked
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", authz)
		if a := sendRaw(t, req); a.status != http.StatusRequestEntityTooLarge {
			t.Fatalf("a body over the limit: %d %s", a.status, a.body)
		}
	})

	t.Run("trusted documents only", func(t *testing.T) {
		t.Parallel()
		// Three instances of one deployment: open and twin run any document, strict only the
		// manifest's.
		configure := func(trustedOnly bool) func(*app.Config) {
			return func(c *app.Config) {
				c.CacheEnabled, c.ResponseCacheEnabled = true, true
				c.AdmissionEnabled = false
				c.TrustedDocumentsOnly = trustedOnly
			}
		}
		open := apptest.Start(t, apptest.Options{Configure: configure(false)})
		twin := apptest.Start(t, apptest.Options{Database: &open.Database, RedisURL: open.Config.RedisURL, Configure: configure(false)})
		strict := apptest.Start(t, apptest.Options{Database: &open.Database, RedisURL: open.Config.RedisURL, Configure: configure(true)})
		u := dbtest.Users(t, open.Direct, "Alice", "Bob")
		conv := dbtest.Conversation(t, open.Direct, "General", u...)
		dbtest.Messages(t, open.Direct, conv, u, 3)
		vars := map[string]any{"id": conv, "limit": 2}

		// open answers the untrusted document, then from the cache before the executor.
		hitOn(t, open, u[0], earlyQuery, vars)
		// twin admits what open admits: it serves open's stored response (through the executor
		// the first time: its document gate has not seen the document yet).
		before := responseStats(t, twin).Hits
		twin.Client(u[0]).Query(t, earlyQuery, vars, nil)
		if got := responseStats(t, twin).Hits - before; got != 1 {
			t.Fatalf("an instance with the same rules did not serve the stored response: %d hits", got)
		}
		// strict refuses it, stored or not.
		var res apptest.Response
		if n := earlyHitsOn(t, strict, func() { res = strict.Client(u[0]).Must(t, earlyQuery, vars) }); n != 0 ||
			!slices.Equal(res.Codes(), []string{"BAD_USER_INPUT"}) || !strings.Contains(res.Errors[0].Message, "trusted") {
			t.Fatalf("an untrusted document on the strict instance: %d early hits, %+v", n, res.Errors)
		}
		// ... and answers a trusted one, then from the cache before the executor.
		hitOn(t, strict, u[0], client.MessagesPage_Operation, map[string]any{"conversationId": conv, "limit": 2, "offset": 0})
	})
}

func earlyHitsOn(t testing.TB, srv *apptest.Server, fn func()) int64 {
	t.Helper()
	before := responseStats(t, srv).EarlyHits
	fn()
	return responseStats(t, srv).EarlyHits - before
}

// hitOn runs query as user on srv until it is answered before the executor.
func hitOn(t testing.TB, srv *apptest.Server, user int64, query string, vars map[string]any) {
	t.Helper()
	c := srv.Client(user)
	for range 50 {
		if earlyHitsOn(t, srv, func() { c.Query(t, query, vars, nil) }) == 1 {
			return
		}
		time.Sleep(5 * time.Millisecond) // the response is stored in the background
	}
	t.Fatalf("never answered before the executor: %+v", responseStats(t, srv))
}

// TestLocalTierReadYourWritesAcrossInstances is the response cache's race test across two
// instances with the in-process tier on: messages are sent through either instance while
// readers read the conversation's newest page through either; a read that starts after a
// send's answer must contain that message, whichever instance served either — also when the
// reading instance answers from memory, without Redis. 0 stale reads in 10,000.
func TestLocalTierReadYourWritesAcrossInstances(t *testing.T) {
	t.Parallel()
	sa, sb := readYourWritesRace(t, newDeployment(t))
	for name, s := range map[string]respcache.Stats{"A": sa, "B": sb} {
		if s.LocalHits == 0 || s.EarlyHits == 0 || s.Local == nil || s.Local.Invalidations == 0 {
			t.Errorf("instance %s: the race exercised too little of the in-process tier: %+v %+v", name, s, s.Local)
		}
	}
}

// readYourWritesRace runs the race of TestLocalTierReadYourWritesAcrossInstances on d: it fails
// the test on any stale read, and returns the response-cache counters of both instances.
func readYourWritesRace(t *testing.T, d *deployment) (sa, sb respcache.Stats) {
	t.Helper()
	u := dbtest.Users(t, d.direct, "Alice", "Bob")
	alice, bob := u[0], u[1]
	conv := dbtest.Conversation(t, d.direct, "Race", alice, bob)
	dbtest.Messages(t, d.direct, conv, u, 5)
	client := concurrentClients(t)
	servers := []*apptest.Server{d.a, d.b}
	q := `query Top($id: ID!) { conversation(id: $id) { messages(limit: 3) { items { seq } } } }`
	vars := map[string]any{"id": conv}

	sent := 0
	reads := raceReadYourWrites(t, 4, 5, func(i int) (int64, error) { // through both instances in turn
		var out struct{ SendMessage struct{ Seq int64 } }
		err := mutate(client(servers[i%2], bob), `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
			map[string]any{"c": conv, "b": fmt.Sprint("w", i)}, &out)
		time.Sleep(time.Duration(i%4) * time.Millisecond) // bursts of reads between sends, served from memory
		sent = i + 1
		return out.SendMessage.Seq, err
	}, func(_, i int) (int64, error) {
		res, err := client(servers[(i/3)%2], alice).Do(context.Background(), q, vars)
		if err == nil && !res.OK() {
			err = fmt.Errorf("status %d, errors %+v %s", res.Status, res.Errors, res.Data)
		}
		if err != nil {
			return 0, err
		}
		return newestSeq(res.Data)
	})
	sa, sb = responseStats(t, d.a), responseStats(t, d.b)
	t.Logf("%d reads, %d sends; A %+v %+v; B %+v %+v", reads, sent, sa, sa.Local, sb, sb.Local)
	return sa, sb
}

// TestLocalTierEmptiesWhenTrackingIsLost: when its tracking connection is killed (CLIENT
// KILL), and when Redis restarts, the in-process tier empties itself, establishes tracking
// again and answers from memory again; every read after a send shows it throughout.
func TestLocalTierEmptiesWhenTrackingIsLost(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skips under -short
	ctx := context.Background()
	rds := apptest.StartRedis(t)
	srv := apptest.Start(t, apptest.Options{RedisURL: rds.URL(), Configure: func(c *app.Config) {
		c.CacheEnabled, c.ResponseCacheEnabled = true, true
		c.AdmissionEnabled = false
		c.RedisBreakerOpen = 300 * time.Millisecond
	}})
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, srv.Direct, "General", u...)
	dbtest.Messages(t, srv.Direct, conv, u, 3)
	alice, bob := srv.Client(u[0]), srv.Client(u[1])
	q := `query Top($id: ID!) { conversation(id: $id) { messages(limit: 3) { items { seq } } } }`
	vars := map[string]any{"id": conv}
	var last int64 = 3

	// readTop reads the newest seq and fails the test if it is older than the last sent.
	readTop := func(when string) {
		t.Helper()
		var out struct {
			Conversation struct {
				Messages struct{ Items []struct{ Seq int64 } }
			}
		}
		alice.Query(t, q, vars, &out)
		if got := out.Conversation.Messages.Items[0].Seq; got != last {
			t.Fatalf("%s: the newest seq read is %d, want %d", when, got, last)
		}
	}
	send := func() {
		t.Helper()
		var out struct{ SendMessage struct{ Seq int64 } }
		bob.Query(t, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "x"}) { seq } }`, map[string]any{"c": conv}, &out)
		last = out.SendMessage.Seq
	}
	// fromMemory reads until a read is answered by the in-process tier.
	fromMemory := func(when string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			before := responseStats(t, srv).LocalHits
			readTop(when)
			if responseStats(t, srv).LocalHits > before {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no read answered from memory in 20s: %+v %+v", when, responseStats(t, srv), responseStats(t, srv).Local)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	flushes := func() int64 { return responseStats(t, srv).Local.Flushes }

	fromMemory("before")
	before := flushes() // read before the kill: the tier may notice it at once
	admin := redis.NewClient(&redis.Options{Addr: rds.Addr})
	defer func() { _ = admin.Close() }()
	list, err := admin.ClientList(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	var killed int
	for line := range strings.Lines(list) {
		if !strings.Contains(line, " name=threadline-localcache ") {
			continue
		}
		for field := range strings.FieldsSeq(line) {
			if id, ok := strings.CutPrefix(field, "id="); ok {
				if err := admin.Do(ctx, "CLIENT", "KILL", "ID", id).Err(); err != nil {
					t.Fatal(err)
				}
				killed++
			}
		}
	}
	if killed != 1 {
		t.Fatalf("killed %d tracking connections, want 1:\n%s", killed, list)
	}
	send()
	readTop("after CLIENT KILL and a send")
	fromMemory("after CLIENT KILL")
	if flushes() <= before {
		t.Fatalf("the tier did not empty after CLIENT KILL: %+v", responseStats(t, srv).Local)
	}

	// Redis restarts, empty: reads go to PostgreSQL meanwhile, and are right.
	before = flushes()
	rds.Stop(t)
	readTop("with Redis down")
	send()
	readTop("with Redis down, after a send")
	rds.Restart(t)
	fromMemory("after the restart")
	send()
	readTop("after the restart and a send")
	fromMemory("after the restart and a send")
	if flushes() <= before {
		t.Fatalf("the tier did not empty when Redis went away: %+v", responseStats(t, srv).Local)
	}
}
