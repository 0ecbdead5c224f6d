package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
)

// sseSubscriber opens an event stream of messageAdded on conv, on the instance, as userID: a
// POST with the token in the Authorization header, or a GET with it in access_token, as a
// browser's EventSource sends it.
func (s *liveStack) sseSubscriber(in *instance, method string, userID, conv int64, afterSeq *int64) *apptest.SSE {
	s.t.Helper()
	o := apptest.SSEOptions{Method: method}
	if method == http.MethodGet {
		o.AccessToken = s.token(userID)
	} else {
		o.Authorization = "Bearer " + s.token(userID)
	}
	sse, err := apptest.OpenSSE(s.t, in.srv.URL+"/query", apptest.MessageAddedQuery, subVars(conv, afterSeq), o)
	if err != nil {
		s.t.Fatal(err)
	}
	if sse.Refusal != nil {
		s.t.Fatalf("event stream refused: %d %s", sse.Status, sse.Refusal.Body)
	}
	return sse
}

// Over Server-Sent Events as over WebSocket: a subscriber on instance B receives what is sent
// through instance A, past the HTTP server's read and write timeouts; it drops its stream,
// resubscribes with afterSeq = the last seq it saw (on the other instance) and receives exactly
// what it missed, each once, then what follows live. Both ways of asking: POST with an
// Authorization header (graphql-sse), GET with access_token (EventSource).
func TestEventStreamResumesAcrossInstances(t *testing.T) {
	t.Parallel()
	s := newLiveStack(t)
	users := dbtest.Users(t, s.direct, "Alice", "Bob")
	a, b := s.instance(), s.instance()

	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			conv := dbtest.Conversation(t, s.direct, "General "+method, users...)
			first := s.sseSubscriber(b, method, users[1], conv, nil)
			for _, h := range []struct{ name, want string }{
				{"Content-Type", "text/event-stream; charset=utf-8"}, {"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"},
			} {
				if got := first.Header.Get(h.name); got != h.want {
					t.Errorf("%s: %q, want %q", h.name, got, h.want)
				}
			}
			waitSubscriptions(t, b, 1)
			// Past the HTTP server's read and write timeouts: the stream lives on.
			time.Sleep(serverTimeout + 300*time.Millisecond)
			// Each send has a client id (its body): one whose answer the write timeout cuts on a
			// loaded machine is sent again (sendErr), and counts once.
			for i := range 10 {
				s.send(a, users[0], conv, fmt.Sprint("m", i), fmt.Sprint("m", i))
			}
			seen := first.Messages(t, 10, 10*time.Second)
			apptest.CheckSeqs(t, "before the drop", apptest.Seqs(seen), 1, 10)
			if got := seen[0]; got.Body != "m0" || got.Sender.Name != "Alice" || got.ConversationID != apptest.ID(conv) {
				t.Fatalf("first message: %+v", got)
			}
			first.Close() // dropped: what was in flight is lost
			waitSubscriptions(t, b, 0)

			for i := range 15 {
				s.send(a, users[0], conv, fmt.Sprint("n", i), fmt.Sprint("n", i))
			}
			again := s.sseSubscriber(a, method, users[1], conv, i64(10))
			apptest.CheckSeqs(t, "after resuming", apptest.Seqs(again.Messages(t, 15, 10*time.Second)), 11, 25)
			s.send(b, users[0], conv, "live again", "live again")
			apptest.CheckSeqs(t, "live after the replay", apptest.Seqs(again.Messages(t, 1, 10*time.Second)), 26, 26)
			quietStream(t, again, 300*time.Millisecond)
			again.Close()
			waitSubscriptions(t, a, 0)
		})
	}
}

// conversationEvents resumes over an event stream as over WebSocket: afterEventSeq = the last
// eventSeq seen gives every later event once, in order.
func TestEventStreamConversationEventsResume(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	a, b := s.instance(), s.instance()
	c := apptest.ID(conv)
	last := func() int64 {
		var out struct{ Conversation struct{ LastEventSeq int64 } }
		b.srv.Client(users[1]).Query(t, `query($id: ID!) { conversation(id: $id) { lastEventSeq } }`, vars{"id": c}, &out)
		return out.Conversation.LastEventSeq
	}
	events := func(sse *apptest.SSE, n int) []eventView {
		t.Helper()
		var out []eventView
		for len(out) < n {
			ev, ok := sse.Next(t, 10*time.Second)
			if !ok {
				t.Fatalf("the stream ended after %d of %d events", len(out), n)
			}
			var p eventsNext
			if err := json.Unmarshal(ev.Data, &p); ev.Event != "next" || err != nil || p.Data == nil || p.Data.ConversationEvents == nil || len(p.Errors) > 0 {
				t.Fatalf("after %d events: %s %s", len(out), ev.Event, ev.Data)
			}
			out = append(out, *p.Data.ConversationEvents)
		}
		return out
	}
	checkSeqs := func(who string, got []eventView, from, to int64) {
		t.Helper()
		seqs := make([]int64, len(got))
		for i, e := range got {
			seqs[i] = e.EventSeq
		}
		apptest.CheckSeqs(t, who, seqs, from, to)
	}

	start := last()
	first := b.srv.Stream(t, users[1], eventsSub, vars{"c": c, "after": start}, apptest.SSEOptions{})
	waitSubscriptions(t, b, 1)
	// Client ids, as in TestEventStreamResumesAcrossInstances.
	for i := range 5 {
		s.send(a, users[0], conv, fmt.Sprint("m", i), fmt.Sprint("m", i))
	}
	seen := events(first, 5)
	checkSeqs("before the drop", seen, start+1, start+5)
	if seen[0].Typename != "MessageAddedEvent" || seen[0].Actor.ID != apptest.ID(users[0]) {
		t.Fatalf("first event: %+v", seen[0])
	}
	first.Close()
	for i := range 7 {
		s.send(a, users[0], conv, fmt.Sprint("n", i), fmt.Sprint("n", i))
	}
	again := a.srv.Stream(t, users[1], eventsSub, vars{"c": c, "after": start + 5}, apptest.SSEOptions{Method: http.MethodGet})
	checkSeqs("after resuming", events(again, 7), start+6, start+12)
	if end := last(); end != start+12 {
		t.Fatalf("lastEventSeq %d, want %d", end, start+12)
	}
	quietStream(t, again, 300*time.Millisecond)
}

// waitSubscriptions waits until the instance runs n subscriptions.
func waitSubscriptions(t testing.TB, in *instance, n float64) {
	t.Helper()
	for range 500 {
		if in.metric(t, "threadline_subscriptions_active") == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v subscriptions active, want %v", in.metric(t, "threadline_subscriptions_active"), n)
}

// quietStream checks that no event arrives for a moment.
func quietStream(t testing.TB, sse *apptest.SSE, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-sse.Done():
		t.Fatal("the stream ended")
	}
	if ev, ok := sse.TryNext(); ok {
		t.Fatalf("unexpected %s %s", ev.Event, ev.Data)
	}
}

// sseCase is one request for an event stream and what it must get: a stream of one next
// (with data, or an error with code) and complete; or a plain answer with status and the code
// of its one error.
type sseCase struct {
	name   string
	user   int64 // 0: anonymous
	query  string
	vars   vars
	o      apptest.SSEOptions
	edit   func(*http.Request) // changes the request before it is sent
	status int                 // 200: a stream
	code   string              // the code of the one error ("" for none)
	data   string              // the data of a stream's one next, exactly ("" not checked)
	header map[string]string   // response headers
}

// check sends the request of c to srv and checks what it gets.
func (c sseCase) check(t *testing.T, srv *apptest.Server) {
	t.Helper()
	if c.o.AccessToken == "" && c.o.Authorization == "" && c.user != 0 {
		c.o.Authorization = "Bearer " + srv.Token(c.user)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, err := apptest.StreamRequest(ctx, srv.URL+"/query", c.query, c.vars, c.o)
	if err != nil {
		t.Fatal(err)
	}
	if c.edit != nil {
		c.edit(req)
	}
	sse, err := apptest.OpenSSERequest(t, req, cancel, false)
	if err != nil {
		t.Fatal(err)
	}
	if sse.Status != c.status {
		t.Fatalf("status %d, want %d (%v)", sse.Status, c.status, sse.Refusal)
	}
	for k, v := range c.header {
		if got := sse.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if c.status != http.StatusOK {
		if got := sse.Refusal.Codes(); len(got) != 1 || got[0] != c.code {
			t.Fatalf("refused with %s, want one %s", sse.Refusal.Body, c.code)
		}
		return
	}
	events := sse.Ended(t, 10*time.Second)
	if len(events) != 2 || events[0].Event != "next" || events[1].Event != "complete" || len(events[1].Data) != 0 {
		t.Fatalf("events %+v, want next and complete", events)
	}
	res, err := events[0].Result()
	if err != nil {
		t.Fatalf("next %s: %v", events[0].Data, err)
	}
	if got := strings.Join(res.Codes(), " "); got != c.code {
		t.Fatalf("next %s: codes %q, want %q", events[0].Data, got, c.code)
	}
	if c.data != "" && string(res.Data) != c.data {
		t.Fatalf("next data %s, want %s", res.Data, c.data)
	}
}

// The graphql-sse protocol on /query: queries, mutations and subscriptions as one next and
// complete (or a stream of next), what is refused before the stream as GraphQL over HTTP
// answers it, what the executor refuses as a next with the errors, and the rules of
// access_token.
func TestEventStreamProtocol(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, apptest.Options{})
	users := dbtest.Users(t, srv.Direct, "Alice", "Bob", "Mallory")
	alice, mallory := users[0], users[2]
	conv := dbtest.Conversation(t, srv.Direct, "General", users[0], users[1])
	c := apptest.ID(conv)
	get := apptest.SSEOptions{Method: http.MethodGet}
	send := `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq body } }`
	streamHeader := map[string]string{"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
	jsonHeader := map[string]string{"Content-Type": "application/json; charset=utf-8"}
	otherToken := otherSecretToken(t, alice)

	for _, tc := range []sseCase{
		{name: "query, POST", user: alice, query: `{ me { name } }`, status: 200, data: `{"me":{"name":"Alice"}}`, header: streamHeader},
		{name: "query, GET with Authorization", user: alice, query: `{ me { name } }`, o: get, status: 200, data: `{"me":{"name":"Alice"}}`},
		{name: "query, GET with access_token", query: `{ me { name } }`, o: apptest.SSEOptions{Method: http.MethodGet, AccessToken: srv.Token(alice)}, status: 200, data: `{"me":{"name":"Alice"}}`},
		{name: "query, anonymous", query: `{ __typename }`, status: 200, data: `{"__typename":"Query"}`},
		{name: "mutation, POST", user: alice, query: send, vars: vars{"c": c, "b": "over SSE"}, status: 200, data: `{"sendMessage":{"seq":1,"body":"over SSE"}}`},
		{name: "mutation, GET", user: alice, query: send, vars: vars{"c": c, "b": "never"}, o: get, status: 405, code: "BAD_USER_INPUT", header: map[string]string{"Allow": "POST"}},
		{name: "parse error", user: alice, query: `{ me { name }`, status: 200, code: "BAD_USER_INPUT"},
		{name: "validation error", user: alice, query: `{ nope }`, status: 200, code: "BAD_USER_INPUT"},
		{name: "bad variables", user: alice, query: apptest.MessageAddedQuery, vars: vars{"c": []int{1}}, status: 200, code: "BAD_USER_INPUT"},
		{name: "anonymous subscription", query: apptest.MessageAddedQuery, vars: vars{"c": c}, status: 200, code: "UNAUTHENTICATED"},
		{name: "token of another issuer", query: apptest.MessageAddedQuery, vars: vars{"c": c}, o: apptest.SSEOptions{Method: http.MethodGet, AccessToken: otherToken}, status: 200, code: "UNAUTHENTICATED"},
		{name: "non-member", user: mallory, query: apptest.MessageAddedQuery, vars: vars{"c": c}, status: 200, code: "NOT_FOUND"},
		{name: "missing conversation", user: mallory, query: apptest.MessageAddedQuery, vars: vars{"c": apptest.ID(conv + 1000)}, status: 200, code: "NOT_FOUND"},
		{name: "afterSeq past the end", user: alice, query: apptest.MessageAddedQuery, vars: vars{"c": c, "after": 1000}, status: 200, code: "BAD_USER_INPUT"},
		{name: "no query", user: alice, edit: setBody(`{"variables":{}}`), status: 400, code: "BAD_USER_INPUT", header: jsonHeader},
		{name: "not JSON", user: alice, edit: setBody(`{"query":`), status: 400, code: "BAD_USER_INPUT"},
		{name: "invalid UTF-8", user: alice, edit: setBody("{\"query\":\"{ me { name } }\",\"variables\":{\"b\":\"\xff\"}}"), status: 400, code: "BAD_USER_INPUT"},
		{name: "another Content-Type", user: alice, query: `{ me { name } }`, edit: func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, status: 415, code: "BAD_USER_INPUT"},
		{name: "access_token on a POST", query: `{ me { name } }`, o: apptest.SSEOptions{AccessToken: srv.Token(alice)}, status: 400, code: "BAD_USER_INPUT"},
		{name: "access_token and Authorization", query: `{ me { name } }`, o: apptest.SSEOptions{Method: http.MethodGet, AccessToken: srv.Token(alice), Authorization: "Bearer " + srv.Token(alice)}, status: 400, code: "BAD_USER_INPUT"},
		{name: "access_token twice", query: `{ me { name } }`, o: apptest.SSEOptions{Method: http.MethodGet, AccessToken: srv.Token(alice)},
			edit: func(r *http.Request) { r.URL.RawQuery += "&access_token=" + srv.Token(alice) }, status: 400, code: "BAD_USER_INPUT"},
		{name: "access_token on a JSON GET", query: `{ me { name } }`, o: apptest.SSEOptions{Method: http.MethodGet, AccessToken: srv.Token(alice)},
			edit: func(r *http.Request) { r.Header.Set("Accept", "application/json") }, status: 400, code: "BAD_USER_INPUT", header: jsonHeader},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(t, srv) })
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages"); n != 1 {
		t.Fatalf("%d messages stored, want the one sent with POST", n)
	}

	// A subscription is a stream of next events; the client ends it by closing the request.
	t.Run("subscription", func(t *testing.T) {
		sse := srv.Stream(t, alice, apptest.MessageAddedQuery, vars{"c": c, "after": 0}, apptest.SSEOptions{Method: http.MethodGet})
		apptest.CheckSeqs(t, "replay", apptest.Seqs(sse.Messages(t, 1, 5*time.Second)), 1, 1)
		srv.Client(users[1]).Query(t, send, vars{"c": c, "b": "live"}, nil)
		if got := sse.Messages(t, 1, 5*time.Second); got[0].Seq != 2 || got[0].Body != "live" || got[0].Sender.Name != "Bob" {
			t.Fatalf("live: %+v", got)
		}
		sse.Close()
		waitMetric(t, srv, "threadline_subscriptions_active", 0)
	})

	// Only an explicit text/event-stream selects the stream.
	t.Run("Accept", func(t *testing.T) {
		for accept, stream := range map[string]bool{
			"text/event-stream":                         true,
			"text/event-stream, application/json;q=0.9": true,
			"application/json, text/event-stream":       true,
			"application/json, text/event-stream;q=0.5": false,
			"text/event-stream;q=0":                     false,
			"*/*":                                       false,
			"application/graphql-response+json":         false,
		} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/query", strings.NewReader(`{"query":"{ me { name } }"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", accept)
			req.Header.Set("Authorization", "Bearer "+srv.Token(alice))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream"); got != stream {
				t.Errorf("Accept %q: Content-Type %q", accept, resp.Header.Get("Content-Type"))
			}
		}
	})
}

// setBody replaces a request's body.
func setBody(body string) func(*http.Request) {
	return func(r *http.Request) {
		r.Method = http.MethodPost
		r.Header.Set("Content-Type", "application/json")
		r.Body = io.NopCloser(strings.NewReader(body))
		r.ContentLength = int64(len(body))
		r.URL.RawQuery = ""
	}
}

// Every limit of the document gate holds over an event stream: a document over a limit, too
// costly, unknown as a persisted query or not trusted is answered in the stream with its code
// before anything runs (no SQL), as the protocol has validation errors answered; a body over
// the limit is a 413.
func TestEventStreamDocumentLimits(t *testing.T) {
	t.Parallel()
	var statements atomic.Int64
	observe := func(context.Context, string, time.Duration, error) { statements.Add(1) }
	srv, users, conv := startConv(t, apptest.Options{App: app.Options{ObserveStatement: observe}})
	trusted := apptest.Start(t, apptest.Options{Database: &srv.Database, Configure: func(c *app.Config) { c.TrustedDocumentsOnly = true }})
	srv.Client(users[1]).Query(t, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "one"}) { seq } }`, vars{"c": apptest.ID(conv)}, nil)
	get := apptest.SSEOptions{Method: http.MethodGet}
	persisted := func(hash string) apptest.SSEOptions {
		return apptest.SSEOptions{Method: http.MethodGet, Extensions: map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}}
	}
	nested := func(n int) string { return strings.Repeat("{ a ", n) + strings.Repeat("} ", n) }
	repeat := func(n int, s string) string { return strings.Repeat(s, n) }

	for _, tc := range []sseCase{
		{name: "depth", query: nested(25), status: 200, code: "BAD_USER_INPUT"},
		{name: "aliases", query: "{ " + aliases(101) + " }", status: 200, code: "BAD_USER_INPUT"},
		{name: "fields", query: `{ me { ` + repeat(1001, "id ") + `} }`, status: 200, code: "BAD_USER_INPUT"},
		{name: "tokens", query: `{ me { ` + repeat(12000, "id ") + `} }`, o: get, status: 200, code: "BAD_USER_INPUT"},
		{name: "document size, GET", query: `{ me { id } } #` + repeat(70<<10, "x"), o: get, status: 200, code: "BAD_USER_INPUT"},
		{name: "body size, POST", query: `{ me { id } } #` + repeat(70<<10, "x"), status: 413, code: "BAD_USER_INPUT"},
		{name: "cost", query: `{ conversations(first: 100) { edges { node { messages(limit: 100) { items { id body } } } } } }`, status: 200, code: "COMPLEXITY_LIMIT_EXCEEDED"},
		{name: "introspection", query: `{ __schema { types { name } } }`, status: 200, code: "BAD_USER_INPUT"},
		{name: "unknown persisted query", o: persisted(strings.Repeat("ab", 32)), status: 200, code: "PERSISTED_QUERY_NOT_FOUND"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.user = users[0]
			before := statements.Load()
			tc.check(t, srv)
			if n := statements.Load() - before; n != 0 {
				t.Fatalf("%d SQL statements for a refused operation", n)
			}
		})
	}

	// With trusted documents only, anything else is refused before it is parsed; a trusted
	// subscription runs by its hash alone, over GET as an EventSource sends it.
	t.Run("trusted documents only", func(t *testing.T) {
		sseCase{user: users[0], query: apptest.MessageAddedQuery, vars: vars{"c": apptest.ID(conv)}, status: 200, code: "BAD_USER_INPUT"}.check(t, trusted)
		const messageAdded = "4068c1f25b6ab1b6a4bdd1e1d43d332aca4c492daef12d9a67ce803749f8ec7d" // graph/client/operations: MessageAdded
		sse := trusted.Stream(t, users[0], "", vars{"conversationId": apptest.ID(conv), "afterSeq": 0}, persisted(messageAdded))
		ev, _ := sse.Next(t, 5*time.Second)
		if res, err := ev.Result(); err != nil || !strings.Contains(string(res.Data), `"body":"one"`) {
			t.Fatalf("trusted subscription: %s %s", ev.Event, ev.Data)
		}
	})
}

func aliases(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "a%d: __typename ", i)
	}
	return b.String()
}

// The rate limit charges each event stream as a request, to its viewer or, anonymous, to its
// address, before its body is read; beyond it, 429 with Retry-After before the stream begins.
func TestEventStreamRateLimit(t *testing.T) {
	t.Parallel()
	const rate, burst = 1, 5
	srv, users, conv := startRateLimited(t, rate, burst)

	// Each case draws on a budget of its own: a user of its own, or the address (anonymous).
	for _, tc := range []struct {
		name  string
		user  int64
		query string
		vars  vars
		edit  func(*http.Request)
		ok    int // the status of a request within the budget
	}{
		{"queries", users[0], `{ me { id } }`, nil, nil, http.StatusOK},
		{"subscriptions", users[1], apptest.MessageAddedQuery, vars{"c": apptest.ID(conv)}, nil, http.StatusOK},
		{"anonymous", 0, `{ __typename }`, nil, nil, http.StatusOK},
		{"not GraphQL requests", users[2], "", nil, setBody(`{"query":`), http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := apptest.SSEOptions{Method: http.MethodGet}
			if tc.user != 0 {
				o.Authorization = "Bearer " + srv.Token(tc.user)
			}
			began := time.Now()
			served, limited := 0, 0
			for range 20 {
				ctx, cancel := context.WithCancel(context.Background())
				req, err := apptest.StreamRequest(ctx, srv.URL+"/query", tc.query, tc.vars, o)
				if err != nil {
					t.Fatal(err)
				}
				if tc.edit != nil {
					tc.edit(req)
				}
				sse, err := apptest.OpenSSERequest(t, req, cancel, false)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case sse.Status == tc.ok:
					served++
					sse.Close()
				case sse.Status == http.StatusTooManyRequests:
					limited++
					if codes := sse.Refusal.Codes(); len(codes) != 1 || codes[0] != "RATE_LIMITED" || sse.Header.Get("Retry-After") == "" ||
						sse.Refusal.Errors[0].Extensions["retryAfter"] == nil {
						t.Fatalf("refused with %v %s", sse.Header, sse.Refusal.Body)
					}
				default:
					t.Fatalf("status %d", sse.Status)
				}
			}
			if budget := burst + int(time.Since(began).Seconds()*rate) + 1; served > budget || served < burst || limited == 0 {
				t.Fatalf("%d of 20 streams served, %d limited, budget %d", served, limited, budget)
			}
		})
	}
}

// An event stream is a connection of its user and of its address, counted with WebSocket
// connections against the same caps; a stream that ends gives its place back.
func TestEventStreamConnectionCaps(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.WSMaxConnsPerUser, c.WSMaxConnsPerAddr = 2, 5
	}})
	users := dbtest.Users(t, srv.Direct, "Alice", "Bob", "Carol")
	conv := dbtest.Conversation(t, srv.Direct, "General", users...)
	sub := func(user int64) *apptest.SSE {
		return srv.Stream(t, user, apptest.MessageAddedQuery, vars{"c": apptest.ID(conv)}, apptest.SSEOptions{})
	}
	refused := func(sse *apptest.SSE, msg string) {
		t.Helper()
		if sse.Status != http.StatusTooManyRequests || sse.Header.Get("Retry-After") == "" ||
			len(sse.Refusal.Errors) != 1 || sse.Refusal.Errors[0].Code() != "RATE_LIMITED" || !strings.Contains(sse.Refusal.Errors[0].Message, msg) {
			t.Fatalf("status %d %v, want 429 RATE_LIMITED %q", sse.Status, sse.Refusal, msg)
		}
	}

	// Alice: one stream and one WebSocket connection; a third of either is refused.
	first := sub(users[0])
	srv.Dial(t, users[0])
	refused(sub(users[0]), "too many connections for this user")
	if _, err := apptest.DialSubscribe(t, srv.WebSocketURL(), "Bearer "+srv.Token(users[0]), "1", apptest.MessageAddedQuery, nil); websocket.CloseStatus(err) != 4429 {
		t.Fatalf("a WebSocket past the cap: %v, want close 4429", err)
	}
	first.Close()
	waitMetric(t, srv, "threadline_subscriptions_active", 0)
	second := sub(users[0])
	if second.Status != http.StatusOK {
		t.Fatalf("a stream after one ended: %d %v", second.Status, second.Refusal)
	}
	// The address holds Alice's two; Bob's two and Carol's one fill it; the next is refused,
	// anonymous or not.
	sub(users[1])
	sub(users[1])
	sub(users[2])
	refused(sub(users[2]), "too many connections from this address")
	refused(srv.Stream(t, 0, `{ __typename }`, nil, apptest.SSEOptions{}), "too many connections from this address")
}

// Queries and mutations over an event stream take a slot of the admission limit, as HTTP
// requests do: with every slot taken they are refused with 503 and Retry-After, and a
// subscription, which holds no slot while it streams, still starts.
func TestEventStreamAdmission(t *testing.T) {
	t.Parallel()
	const limit = 8 // the least admission limit
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.AdmissionMaxLimit, c.DBMaxConns = limit, 2*limit
	}})
	users := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	locked := dbtest.Conversation(t, srv.Direct, "Locked", users...)
	open := dbtest.Conversation(t, srv.Direct, "Open", users...)

	// Sends stuck behind a row lock hold every slot.
	tx, err := srv.Direct.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", locked); err != nil {
		t.Fatal(err)
	}
	var stuck sync.WaitGroup
	client := concurrentClients(t)
	for i := range limit {
		stuck.Go(func() {
			_ = mutate(client(srv, users[0]), `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
				vars{"c": apptest.ID(locked), "b": fmt.Sprint("stuck ", i)}, nil)
		})
	}
	waitMetric(t, srv, "threadline_admission_in_flight", limit)

	for _, method := range []string{http.MethodPost, http.MethodGet} {
		sse := srv.Stream(t, users[1], `{ me { name } }`, nil, apptest.SSEOptions{Method: method})
		if sse.Status != http.StatusServiceUnavailable || sse.Header.Get("Retry-After") == "" || len(sse.Refusal.Errors) != 1 ||
			sse.Refusal.Errors[0].Code() != "SERVICE_UNAVAILABLE" {
			t.Fatalf("%s query with every slot taken: %d %v %v", method, sse.Status, sse.Header, sse.Refusal)
		}
	}
	ws := srv.Dial(t, users[1])
	ws.Subscribe("q", `{ me { name } }`, nil)
	if m, _ := ws.Next(5 * time.Second); m.Type != "error" || !strings.Contains(string(m.Payload), "SERVICE_UNAVAILABLE") {
		t.Fatalf("WebSocket query with every slot taken: %s %s", m.Type, m.Payload)
	}
	live := srv.Stream(t, users[1], apptest.MessageAddedQuery, vars{"c": apptest.ID(open), "after": 0}, apptest.SSEOptions{})
	if live.Status != http.StatusOK {
		t.Fatalf("subscription with every slot taken: %d %v", live.Status, live.Refusal)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	stuck.Wait()
	sseCase{user: users[1], query: `{ me { name } }`, status: 200, data: `{"me":{"name":"Bob"}}`}.check(t, srv)
}

// A query or mutation over an event stream has the request deadline: a send stuck behind a
// lock is cancelled at REQUEST_TIMEOUT, its stream answers the error and completes, and nothing
// is committed.
func TestEventStreamOperationDeadline(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{Configure: func(c *app.Config) { c.RequestTimeout = 300 * time.Millisecond }})
	tx, err := srv.Direct.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.Background())
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv); err != nil {
		t.Fatal(err)
	}
	sse := srv.Stream(t, users[0], `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "stuck"}) { seq } }`, vars{"c": apptest.ID(conv)}, apptest.SSEOptions{})
	events := sse.Ended(t, 5*time.Second)
	if len(events) != 2 || events[1].Event != "complete" {
		t.Fatalf("events %+v, want next and complete", events)
	}
	if res, err := events[0].Result(); err != nil || len(res.Errors) == 0 {
		t.Fatalf("a send past its deadline: %s", events[0].Data)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The abandoned send's backend gets the lock now: count after it has finished, whichever
	// way it ends (a send that would commit by itself does so by then).
	deadline := time.Now().Add(10 * time.Second)
	for dbtest.Count(t, srv.Direct, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND backend_type = 'client backend'
		  AND pid <> pg_backend_pid() AND state <> 'idle'`) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned send's backend still runs after 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages WHERE body = 'stuck'"); n != 0 {
		t.Fatalf("the cancelled send committed %d messages", n)
	}
}

// A token that expires while its stream is open ends the stream with UNAUTHENTICATED, as it
// closes a WebSocket: a last next with the error, then complete; nothing more is delivered.
func TestEventStreamTokenExpiry(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{})
	send := func(body string) {
		srv.Client(users[0]).Query(t, `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`, vars{"c": apptest.ID(conv), "b": body}, nil)
	}
	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			token := apptest.Token(t, apptest.Secret, users[1], 2*time.Second)
			o := apptest.SSEOptions{Method: method, Authorization: "Bearer " + token}
			if method == http.MethodGet {
				o = apptest.SSEOptions{Method: method, AccessToken: token}
			}
			sse := srv.Stream(t, 0, apptest.MessageAddedQuery, vars{"c": apptest.ID(conv)}, o)
			waitMetric(t, srv, "threadline_subscriptions_active", 1)
			send("before " + method)
			if got := sse.Messages(t, 1, 5*time.Second); got[0].Body != "before "+method {
				t.Fatalf("before expiry: %+v", got)
			}
			events := sse.Ended(t, 10*time.Second)
			if len(events) != 2 || events[1].Event != "complete" {
				t.Fatalf("at expiry: %+v, want next and complete", events)
			}
			res, err := events[0].Result()
			if err != nil || len(res.Errors) != 1 || res.Errors[0].Code() != "UNAUTHENTICATED" || len(res.Data) != 0 {
				t.Fatalf("at expiry: %s", events[0].Data)
			}
			waitMetric(t, srv, "threadline_subscriptions_active", 0)
			send("after " + method)
		})
	}
	// A stream asked for with an expired token is a stranger's: its subscription is refused.
	expired := apptest.Token(t, apptest.Secret, users[1], -time.Hour)
	sseCase{query: apptest.MessageAddedQuery, vars: vars{"c": apptest.ID(conv)}, o: apptest.SSEOptions{Method: http.MethodGet, AccessToken: expired},
		status: 200, code: "UNAUTHENTICATED"}.check(t, srv)
}

// A client that never reads its stream cannot pin the server: a write blocked past the write
// deadline ends the stream, its subscription, and its place under the caps.
func TestEventStreamClientThatNeverReads(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{Configure: func(c *app.Config) {
		c.WSWriteTimeout, c.SSEKeepAlive, c.SubscriberBuffer = 300*time.Millisecond, time.Minute, 100000
		c.WSMaxConnsPerUser = 1
	}})

	srv.Stream(t, users[1], apptest.MessageAddedQuery, vars{"c": apptest.ID(conv)}, apptest.SSEOptions{Defer: true})
	waitMetric(t, srv, "threadline_subscriptions_active", 1)
	if again := srv.Stream(t, users[1], `{ me { id } }`, nil, apptest.SSEOptions{}); again.Status != http.StatusTooManyRequests {
		t.Fatalf("a second stream of the user: %d", again.Status)
	}
	floodUntilUnsubscribed(t, srv, users[0], conv) // from here on the client reads nothing
	sseCase{user: users[1], query: `{ me { name } }`, status: 200, data: `{"me":{"name":"Bob"}}`}.check(t, srv)
}

// A subscriber that falls behind is cut off as over WebSocket, in the protocol's terms: after
// what it was sent, a last next with RATE_LIMITED and extensions.afterSeq, then complete; a new
// stream with that afterSeq gives exactly the rest.
func TestEventStreamSubscriberCutOff(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	in := s.instance(func(c *app.Config) { c.SubscriberBuffer = 16 })

	slow := in.srv.Stream(t, users[1], apptest.MessageAddedQuery, subVars(conv, nil), apptest.SSEOptions{Defer: true})
	waitSubscriptions(t, in, 1)
	body := strings.Repeat("x", 4000)
	sent := 0
	for sent < 5000 && (sent%10 != 0 || in.metric(t, "threadline_subscription_cutoffs_total") == 0) {
		if _, err := in.srv.App.Chat.SendMessage(context.Background(), users[0], chat.NewMessage{ConversationID: conv, Body: body}); err != nil {
			t.Fatal(err)
		}
		sent++
	}
	if in.metric(t, "threadline_subscription_cutoffs_total") != 1 {
		t.Fatalf("no cut-off after %d messages", sent)
	}
	var k int64
	for {
		ev, ok := slow.Next(t, 30*time.Second)
		if !ok {
			t.Fatalf("the stream ended after seq %d without the error", k)
		}
		res, err := ev.Result()
		if err != nil {
			t.Fatalf("after seq %d: %s %s", k, ev.Event, ev.Data)
		}
		if len(res.Errors) == 0 {
			if m, err := ev.MessageAdded(); err != nil || m.Seq != k+1 {
				t.Fatalf("after seq %d: %s", k, ev.Data)
			}
			k++
			continue
		}
		if e := res.Errors[0]; len(res.Errors) != 1 || e.Code() != "RATE_LIMITED" || e.Extensions["afterSeq"] != float64(k) || !strings.Contains(e.Message, "afterSeq") {
			t.Fatalf("cut off with %s after seq %d", ev.Data, k)
		}
		break
	}
	if ev, ok := slow.Next(t, 5*time.Second); !ok || ev.Event != "complete" {
		t.Fatalf("after the error: %+v", ev)
	}
	t.Logf("cut off after seq %d of %d", k, sent)
	again := in.srv.Stream(t, users[1], apptest.MessageAddedQuery, subVars(conv, i64(k)), apptest.SSEOptions{})
	apptest.CheckSeqs(t, "resumed", apptest.Seqs(again.Messages(t, sent-int(k), 30*time.Second)), k+1, int64(sent))
}

// An idle stream gets a comment every keep-alive interval (and one as it opens), which
// EventSource and graphql-sse skip.
func TestEventStreamKeepAlive(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{Configure: func(c *app.Config) { c.SSEKeepAlive = 50 * time.Millisecond }})
	sse := srv.Stream(t, users[1], apptest.MessageAddedQuery, vars{"c": apptest.ID(conv)}, apptest.SSEOptions{Method: http.MethodGet})
	deadline := time.Now().Add(10 * time.Second)
	for sse.KeepAlives() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d comments after 10 s", sse.KeepAlives())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ev, ok := sse.TryNext(); ok {
		t.Fatalf("an idle stream got %s %s", ev.Event, ev.Data)
	}
}

// Shutdown ends every stream without complete, so that clients reconnect (elsewhere) and
// resume with afterSeq, and refuses new ones with 503.
func TestEventStreamShutdown(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	in := s.instance()
	streams := []*apptest.SSE{
		s.sseSubscriber(in, http.MethodPost, users[1], conv, nil),
		s.sseSubscriber(in, http.MethodGet, users[1], conv, nil),
	}
	ws := s.subscriber(in, users[1], conv, nil)
	waitSubscriptions(t, in, 3)
	s.send(in, users[0], conv, "one", "")
	for _, sse := range streams {
		sse.Messages(t, 1, 5*time.Second)
	}
	ws.Messages("1", 1, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.srv.App.GoAway(ctx); err != nil {
		t.Fatal(err)
	}
	for i, sse := range streams {
		if events := sse.Ended(t, 5*time.Second); len(events) != 0 {
			t.Fatalf("stream %d ended with %+v, want no event", i, events)
		}
	}
	if code, _ := ws.CloseStatus(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("WebSocket closed with %v", code)
	}
	late := in.srv.Stream(t, users[1], apptest.MessageAddedQuery, subVars(conv, nil), apptest.SSEOptions{})
	if late.Status != http.StatusServiceUnavailable || late.Header.Get("Retry-After") == "" || len(late.Refusal.Errors) != 1 ||
		late.Refusal.Errors[0].Code() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("a stream during shutdown: %d %v", late.Status, late.Refusal)
	}
	if n := in.metric(t, "threadline_subscriptions_active"); n != 0 {
		t.Errorf("%v subscriptions active after shutdown", n)
	}
	// The server stops at once: nothing is left for http.Server.Shutdown to wait for.
	if err := in.srv.Stop(); err != nil {
		t.Fatal(err)
	}
}
