package graph_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// liveStack is one PostgreSQL database (reached through PgBouncer) and one Redis, shared by the
// server instances a test starts on it, as in production.
type liveStack struct {
	t        *testing.T
	dbase    testenv.Database
	direct   *pgxpool.Pool
	redisURL string
}

func newLiveStack(t *testing.T) *liveStack {
	t.Helper()
	s := &liveStack{t: t, dbase: testenv.NewDatabase(t), redisURL: testenv.NewRedis(t)}
	s.direct = dbtest.Open(t, s.dbase.DirectURL)
	return s
}

// newLiveConv starts a live stack with the users Alice and Bob and their conversation.
func newLiveConv(t *testing.T) (s *liveStack, users []int64, conv int64) {
	s = newLiveStack(t)
	users = dbtest.Users(t, s.direct, "Alice", "Bob")
	return s, users, dbtest.Conversation(t, s.direct, "General", users...)
}

func (s *liveStack) token(userID int64) string {
	return apptest.Token(s.t, apptest.Secret, userID, time.Hour)
}

// instance is one server of the deployment, with short HTTP read and write timeouts (a
// WebSocket connection must outlive them).
type instance struct {
	srv *apptest.Server
	url string // ws://…/query
}

const serverTimeout = time.Second

// instance starts one more server of the deployment, without its caches, configured further by
// tune.
func (s *liveStack) instance(tune ...func(*app.Config)) *instance {
	s.t.Helper()
	srv := apptest.Start(s.t, apptest.Options{
		Database: &s.dbase, RedisURL: s.redisURL,
		Configure: func(c *app.Config) {
			c.CacheEnabled, c.ResponseCacheEnabled = false, false
			c.ReadTimeout, c.WriteTimeout = serverTimeout, serverTimeout
			for _, f := range tune {
				f(c)
			}
		},
	})
	return &instance{srv: srv, url: srv.WebSocketURL()}
}

func (in *instance) metric(t testing.TB, name string) float64 {
	t.Helper()
	return metricValue(t, in.srv, name)
}

// send posts sendMessage to the instance as userID.
func (s *liveStack) send(in *instance, userID, conv int64, body, clientID string) {
	s.t.Helper()
	if err := s.sendErr(in, userID, conv, body, clientID); err != nil {
		s.t.Fatal(err)
	}
}

func (s *liveStack) sendErr(in *instance, userID, conv int64, body, clientID string) error {
	q := `mutation($in: SendMessageInput!) { sendMessage(input: $in) { seq } }`
	input := map[string]any{"conversationId": strconv.FormatInt(conv, 10), "body": body}
	if clientID != "" {
		input["clientMessageId"] = clientID
	}
	payload, _ := json.Marshal(map[string]any{"query": q, "variables": map[string]any{"in": input}})
	var res *http.Response
	for attempt := 1; ; attempt++ {
		req, _ := http.NewRequest(http.MethodPost, in.srv.URL+"/query", strings.NewReader(string(payload)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+s.token(userID))
		var err error
		if res, err = http.DefaultClient.Do(req); err == nil {
			break
		}
		// The instance's write timeout is a second (serverTimeout): on a loaded machine it can
		// cut a send's response after the send committed. A send with a client message id is
		// idempotent, so it is sent again, as a client would; the subscribers must still see
		// it once.
		if clientID == "" || attempt == 3 {
			return err
		}
	}
	defer res.Body.Close()
	var out gqlResponse
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil {
		return fmt.Errorf("sendMessage: status %d: %w", res.StatusCode, err)
	}
	if len(out.Errors) > 0 {
		return fmt.Errorf("sendMessage: %+v", out.Errors)
	}
	return nil
}

// subscriber connects as userID and subscribes to conv.
func (s *liveStack) subscriber(in *instance, userID, conv int64, afterSeq *int64) *apptest.WS {
	s.t.Helper()
	c, _, err := apptest.DialWS(s.t, in.url, apptest.DialOptions{})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Init(map[string]any{"Authorization": "Bearer " + s.token(userID)}); err != nil {
		s.t.Fatalf("connect: %v", err)
	}
	c.Subscribe("1", apptest.MessageAddedQuery, subVars(conv, afterSeq))
	return c
}

func subVars(conv int64, afterSeq *int64) map[string]any {
	vars := map[string]any{"c": strconv.FormatInt(conv, 10)}
	if afterSeq != nil {
		vars["after"] = *afterSeq
	}
	return vars
}

// waitSubscribed waits until n subscriptions run on the instance (subscribing is asynchronous
// on the wire: the server answers nothing until the first message).
func (in *instance) waitSubscribed(t testing.TB, n float64) {
	t.Helper()
	for range 500 {
		if in.metric(t, "threadline_subscriptions_active") >= n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v subscriptions active, want %v", in.metric(t, "threadline_subscriptions_active"), n)
}

func i64(v int64) *int64 { return &v }

// A subscriber on instance B receives a message sent through instance A.
func TestLiveMessageReachesAnotherInstance(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	a, b := s.instance(), s.instance()

	onB := s.subscriber(b, users[1], conv, nil)
	legacy, _, err := apptest.DialWS(t, b.url, apptest.DialOptions{Protocol: "graphql-ws"})
	if err != nil {
		t.Fatal(err)
	}
	if err := legacy.Init(map[string]any{"authorization": "Bearer " + s.token(users[1])}); err != nil {
		t.Fatal(err)
	}
	legacy.Subscribe("L", apptest.MessageAddedQuery, subVars(conv, nil))
	b.waitSubscribed(t, 2)
	// Past the HTTP server's read and write timeouts: the connection lives on.
	time.Sleep(serverTimeout + 300*time.Millisecond)

	s.send(a, users[0], conv, "hello from A", "c-1")
	for who, c := range map[string]*apptest.WS{"graphql-transport-ws": onB, "graphql-ws": legacy} {
		id := "1"
		if c == legacy {
			id = "L"
		}
		got := c.Messages(id, 1, 10*time.Second)[0]
		if got.Seq != 1 || got.Body != "hello from A" || got.Sender.Name != "Alice" || got.Sender.ID != strconv.FormatInt(users[0], 10) ||
			got.ConversationID != strconv.FormatInt(conv, 10) || got.ClientMessageID == nil || *got.ClientMessageID != "c-1" || got.CreatedAt == "" {
			t.Fatalf("%s: got %+v", who, got)
		}
	}
	if n := a.metric(t, "threadline_pubsub_publishes_total"); n != 1 {
		t.Errorf("A published %v times, want 1", n)
	}
	if n := b.metric(t, "threadline_subscription_deliveries_total"); n != 2 {
		t.Errorf("B delivered %v messages, want 2", n)
	}
	onB.Quiet(200 * time.Millisecond)
}

// 5 concurrent senders x 200 messages; 3 subscribers, one joining late with
// afterSeq 0, each receive seq 1..1000 exactly once, in order.
func TestConcurrentSendersEverySubscriberGetsEverySeqOnce(t *testing.T) {
	t.Parallel()
	s := newLiveStack(t)
	users := dbtest.Users(t, s.direct, "U1", "U2", "U3", "U4", "U5")
	conv := dbtest.Conversation(t, s.direct, "Busy", users...)
	a, b := s.instance(), s.instance()
	const senders, each = 5, 200
	const total = senders * each

	subs := []*apptest.WS{s.subscriber(a, users[0], conv, nil), s.subscriber(b, users[1], conv, nil)}
	a.waitSubscribed(t, 1)
	b.waitSubscribed(t, 1)

	got := make([][]int64, 3)
	readErrs := make([]error, 3)
	var readers sync.WaitGroup
	read := func(i int, c *apptest.WS) {
		readers.Go(func() {
			ms, err := c.Collect("1", total, 60*time.Second, "")
			got[i], readErrs[i] = apptest.Seqs(ms), err
		})
	}
	read(0, subs[0])
	read(1, subs[1])

	var sent sync.WaitGroup
	errs := make(chan error, senders)
	for i := range senders {
		sent.Go(func() {
			in := []*instance{a, b}[i%2]
			for j := range each {
				if err := s.sendErr(in, users[i], conv, fmt.Sprintf("from %d: %d", i, j), fmt.Sprintf("%d-%d", i, j)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	// The late one joins with afterSeq 0 once a good part has been sent.
	for range 1000 {
		if dbtest.Count(t, s.direct, "SELECT count(*) FROM messages WHERE conversation_id = $1", conv) >= 300 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	read(2, s.subscriber(b, users[2], conv, i64(0)))
	sent.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	readers.Wait()
	t.Logf("publish failures: a %v, b %v; gap fills: a %v, b %v", a.metric(t, "threadline_pubsub_publish_failures_total"), b.metric(t, "threadline_pubsub_publish_failures_total"),
		a.metric(t, "threadline_subscription_gap_fills_total"), b.metric(t, "threadline_subscription_gap_fills_total"))
	for i, g := range got {
		if readErrs[i] != nil {
			t.Errorf("subscriber %d: %v", i, readErrs[i])
		}
		apptest.CheckSeqs(t, fmt.Sprint("subscriber ", i), g, 1, total)
	}
}

// A subscriber dropped mid-stream reconnects with afterSeq = the last seq it saw
// and receives exactly what it missed.
func TestDroppedSubscriberResumesExactly(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	a, b := s.instance(), s.instance()

	first := s.subscriber(b, users[1], conv, nil)
	b.waitSubscribed(t, 1)
	// Client ids, as in TestEventStreamResumesAcrossInstances.
	for i := range 40 {
		s.send(a, users[0], conv, fmt.Sprint("m", i), fmt.Sprint("m", i))
	}
	seen := first.Messages("1", 25, 10*time.Second)
	apptest.CheckSeqs(t, "before the drop", apptest.Seqs(seen), 1, 25)
	last := seen[len(seen)-1].Seq
	first.Drop() // dropped, whatever was in flight is lost

	for i := range 60 {
		s.send(a, users[0], conv, fmt.Sprint("n", i), fmt.Sprint("n", i))
	}
	again := s.subscriber(b, users[1], conv, i64(last))
	apptest.CheckSeqs(t, "after resuming", apptest.Seqs(again.Messages("1", 100-int(last), 10*time.Second)), last+1, 100)
	s.send(a, users[0], conv, "live again", "live again")
	apptest.CheckSeqs(t, "live after the replay", apptest.Seqs(again.Messages("1", 1, 10*time.Second)), 101, 101)
	again.Quiet(200 * time.Millisecond)
}

// No token, a bad token and a non-member are refused with the right codes and
// receive nothing.
func TestSubscriptionRefusals(t *testing.T) {
	t.Parallel()
	s := newLiveStack(t)
	users := dbtest.Users(t, s.direct, "Alice", "Bob", "Mallory")
	alice, mallory := users[0], users[2]
	conv := dbtest.Conversation(t, s.direct, "Private", users[0], users[1])
	in := s.instance(func(c *app.Config) {
		c.WSAllowedOrigins, c.WSMaxSubscriptions = []string{"https://app.example.com"}, 2
	})
	expired := apptest.Token(t, apptest.Secret, alice, -time.Hour)

	for name, payload := range map[string]map[string]any{
		"no token":        {},
		"no payload":      nil,
		"bad token":       {"Authorization": "Bearer not.a.jwt"},
		"expired token":   {"Authorization": "Bearer " + expired},
		"not a bearer":    {"Authorization": "Basic YWxpY2U6cGFzcw=="},
		"not a string":    {"Authorization": 42},
		"another secret":  {"Authorization": "Bearer " + otherSecretToken(t, alice)},
		"alg none":        {"Authorization": "Bearer " + algNoneToken(alice)},
		"future nbf":      {"Authorization": "Bearer " + futureNbfToken(t, alice)},
		"token elsewhere": {"token": s.token(alice)},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
				c, _, err := apptest.DialWS(t, in.url, apptest.DialOptions{Protocol: proto})
				if err != nil {
					t.Fatal(err)
				}
				err = c.Init(payload)
				if err == nil {
					t.Fatalf("%s: connection_ack without a valid token", proto)
				}
				if code := websocket.CloseStatus(err); code != 4401 {
					t.Fatalf("%s: refused with %v, want close 4401", proto, err)
				}
				if proto == "graphql-ws" && !strings.Contains(err.Error(), "connection_error") {
					t.Fatalf("graphql-ws: refused without connection_error: %v", err)
				}
			}
		})
	}

	t.Run("key in any case, or the upgrade's header", func(t *testing.T) {
		t.Parallel()
		for _, key := range []string{"Authorization", "authorization", "AUTHORIZATION"} {
			c, _, err := apptest.DialWS(t, in.url, apptest.DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := c.Init(map[string]any{key: "Bearer " + s.token(alice)}); err != nil {
				t.Fatalf("%s: %v", key, err)
			}
		}
		c, _, err := apptest.DialWS(t, in.url, apptest.DialOptions{Header: http.Header{"Authorization": {"Bearer " + s.token(alice)}}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Init(nil); err != nil {
			t.Fatalf("header: %v", err)
		}
		// Queries work over the socket too.
		c.Subscribe("q", `{ me { name } }`, nil)
		if m, _ := c.Next(5 * time.Second); m.Type != "next" || !strings.Contains(string(m.Payload), `"Alice"`) {
			t.Fatalf("query over websocket: %s %s", m.Type, m.Payload)
		}
	})

	t.Run("too many subscriptions on one connection", func(t *testing.T) {
		t.Parallel()
		// The conversation holds one message by now ("secret", sent below).
		c := s.subscriber(in, alice, conv, nil) // subscription "1"
		c.Subscribe("2", apptest.MessageAddedQuery, subVars(conv, nil))
		c.Subscribe("3", apptest.MessageAddedQuery, subVars(conv, nil))
		// Each subscription starts on its own goroutine: any one of the three is refused, with
		// an error message (it did not execute) and no complete.
		m, _ := c.Next(5 * time.Second)
		refused := m.ID
		if m.Type != "error" || !strings.Contains(string(m.Payload), `"RATE_LIMITED"`) {
			t.Fatalf("third subscription: %s %s %s", m.ID, m.Type, m.Payload)
		}
		running := map[string]string{"1": "2", "2": "1", "3": "1"}[refused]
		c.Complete(running) // frees a slot; the server sends nothing more for it
		c.Subscribe("4", apptest.MessageAddedQuery, subVars(conv, i64(0)))
		if got := apptest.Seqs(c.Messages("4", 1, 5*time.Second)); got[0] != 1 {
			t.Fatalf("a subscription after one ended: %v", got)
		}
	})

	t.Run("origin", func(t *testing.T) {
		t.Parallel()
		for origin, want := range map[string]int{
			"https://evil.example.com": http.StatusForbidden,
			"null":                     http.StatusForbidden,
			"https://app.example.com":  http.StatusSwitchingProtocols,
			in.srv.URL:                 http.StatusSwitchingProtocols, // same origin
			"":                         http.StatusSwitchingProtocols, // not a browser
		} {
			h := http.Header{}
			if origin != "" {
				h.Set("Origin", origin)
			}
			_, resp, err := apptest.DialWS(t, in.url, apptest.DialOptions{Header: h})
			if resp == nil || resp.StatusCode != want {
				t.Errorf("origin %q: %v %v, want %d", origin, resp, err, want)
			}
		}
	})

	// A non-member, and a stranger to a missing conversation, are told the same; and receive
	// nothing of the conversation.
	nm := s.subscriber(in, mallory, conv, nil)
	missing := s.subscriber(in, mallory, conv+1000, nil)
	var answers []string
	for _, c := range []*apptest.WS{nm, missing} {
		m, _ := c.Next(5 * time.Second)
		var p apptest.NextPayload
		_ = json.Unmarshal(m.Payload, &p)
		if m.Type != "next" || len(p.Errors) != 1 || p.Errors[0].Extensions["code"] != "NOT_FOUND" || (p.Data != nil && p.Data.MessageAdded != nil) {
			t.Fatalf("non-member: %s %s", m.Type, m.Payload)
		}
		answers = append(answers, string(m.Payload))
		if m, _ := c.Next(5 * time.Second); m.Type != "complete" {
			t.Fatalf("after the error: %s %s", m.Type, m.Payload)
		}
	}
	if answers[0] != answers[1] {
		t.Fatalf("non-member and missing differ:\n%s\n%s", answers[0], answers[1])
	}
	for _, after := range []int64{-1, 1000} {
		bad := s.subscriber(in, alice, conv, i64(after))
		if m, _ := bad.Next(5 * time.Second); !strings.Contains(string(m.Payload), "BAD_USER_INPUT") {
			t.Fatalf("afterSeq %d: %s %s", after, m.Type, m.Payload)
		}
	}
	s.send(in, alice, conv, "secret", "")
	nm.Quiet(300 * time.Millisecond)
	missing.Quiet(10 * time.Millisecond)
	if n := in.metric(t, "threadline_subscriptions_active"); n != 0 {
		t.Errorf("%v subscriptions active", n)
	}
}

// otherSecretToken signs a token for userID with a key the server does not know.
func otherSecretToken(t testing.TB, userID int64) string {
	k, err := auth.NewKeys("another-secret-0123456789")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := k.Sign(userID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// A subscriber that never reads is cut off with the resume error, while a normal
// subscriber on the same conversation keeps receiving everything.
func TestSubscriberThatNeverReadsIsCutOff(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	// A long ping interval: the never-reading client would otherwise be dropped for not
	// answering pings before it is cut off.
	in := s.instance(func(c *app.Config) { c.SubscriberBuffer, c.WSPingInterval = 16, time.Minute })

	slow := s.subscriber(in, users[1], conv, nil) // never calls listen: its socket is not read
	normal := s.subscriber(in, users[1], conv, nil)
	in.waitSubscribed(t, 2)

	var got []apptest.LiveMessage
	var readErr error
	var reader sync.WaitGroup
	reader.Go(func() { got, readErr = normal.Collect("1", 10000, 60*time.Second, "end") })

	// Large messages fill the slow client's TCP buffers quickly; then its buffer on the
	// server overflows.
	body := strings.Repeat("x", 4000)
	send := func(body string) {
		t.Helper()
		if _, err := in.srv.App.Chat.SendMessage(context.Background(), users[0], chat.NewMessage{ConversationID: conv, Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	sent := 0
	for sent < 5000 && (sent%10 != 0 || in.metric(t, "threadline_subscription_cutoffs_total") == 0) {
		send(body)
		sent++
	}
	if in.metric(t, "threadline_subscription_cutoffs_total") != 1 {
		t.Fatalf("no cut-off after %d messages", sent)
	}
	for i := range 20 { // and a few more, which the normal subscriber gets too
		if i == 19 {
			send("end")
		} else {
			send("after")
		}
		sent++
	}
	reader.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	apptest.CheckSeqs(t, "normal subscriber", apptest.Seqs(got), 1, int64(sent))

	// Now the slow client reads: seq 1..K in order, then the error telling it where to resume.
	var k int64
	for {
		m, ok := slow.Next(30 * time.Second)
		if !ok {
			t.Fatalf("closed after seq %d: %v", k, slow.Err())
		}
		if m.Type == "next" {
			var p apptest.NextPayload
			if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data == nil || p.Data.MessageAdded.Seq != k+1 {
				t.Fatalf("after seq %d: %s", k, m.Payload)
			}
			k++
			continue
		}
		if m.Type != "error" {
			t.Fatalf("after seq %d: %s %s", k, m.Type, m.Payload)
		}
		var errs []gqlError
		if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) != 1 {
			t.Fatalf("error payload %s", m.Payload)
		}
		e := errs[0]
		if e.Extensions["code"] != "RATE_LIMITED" || e.Extensions["afterSeq"] != float64(k) || !strings.Contains(e.Message, "afterSeq") {
			t.Fatalf("cut off with %+v after seq %d", e, k)
		}
		break
	}
	t.Logf("cut off after seq %d of %d", k, sent)
	// Resubscribing with afterSeq gives exactly the rest, on the same connection.
	slow.Subscribe("2", apptest.MessageAddedQuery, subVars(conv, i64(k)))
	apptest.CheckSeqs(t, "resumed", apptest.Seqs(slow.Messages("2", sent-int(k), 30*time.Second)), k+1, int64(sent))
}

// Shutdown sends subscribers a going-away close (1001), without completing their
// subscriptions, and refuses new connections.
func TestShutdownClosesWithGoingAway(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	in := s.instance()
	c := s.subscriber(in, users[1], conv, nil)
	idle, _, err := apptest.DialWS(t, in.url, apptest.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := idle.Init(map[string]any{"Authorization": "Bearer " + s.token(users[0])}); err != nil {
		t.Fatal(err)
	}
	idle.Listen() // it reads, so it answers the close handshake at once
	in.waitSubscribed(t, 1)
	s.send(in, users[0], conv, "one", "")
	c.Messages("1", 1, 5*time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := in.srv.App.GoAway(ctx); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*apptest.WS{c, idle} {
		code, reason := cl.CloseStatus(5 * time.Second)
		if code != websocket.StatusGoingAway {
			t.Fatalf("closed with %v %q, want 1001 going away", code, reason)
		}
	}
	if m, ok := c.TryNext(); ok {
		t.Fatalf("the subscription got %s %s before the close", m.Type, m.Payload)
	}
	_, resp, err := apptest.DialWS(t, in.url, apptest.DialOptions{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("new connection during shutdown: %v %v", resp, err)
	}
	if n := in.metric(t, "threadline_subscriptions_active"); n != 0 {
		t.Errorf("%v subscriptions active after shutdown", n)
	}
}
