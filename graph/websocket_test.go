package graph_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	dto "github.com/prometheus/client_model/go"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// A WebSocket connection is not one request: each operation on it is charged to the viewer's
// rate limit as an HTTP request is, so 400 queries on one connection are limited as 400 HTTP
// requests are, and 300 sendMessage on one connection commit no more than the budget allows.
func TestWebSocketOperationsAreRateLimited(t *testing.T) {
	t.Parallel()
	const rate, burst = 5, 10
	srv, users, conv := startRateLimited(t, rate, burst)

	began := time.Now()
	httpOK := 0
	for range 400 {
		if res := srv.Client(users[1]).Must(t, `{ me { id } }`, nil); res.OK() {
			httpOK++
		} else if res.Status != http.StatusTooManyRequests {
			t.Fatalf("HTTP: %d %s", res.Status, res.Body)
		}
	}
	budget := burst + int(time.Since(began).Seconds()*rate) + 1
	if httpOK > budget {
		t.Fatalf("HTTP: %d of 400 queries answered, budget %d", httpOK, budget)
	}

	for _, tc := range []struct {
		name, query string
		user        int64
		n           int
	}{
		{"queries", `{ me { id } }`, users[0], 400},
		{"sends", `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "flood"}) { seq } }`, users[2], 300},
	} {
		ws := srv.Dial(t, tc.user)
		began := time.Now()
		for i := range tc.n {
			ws.Subscribe(apptest.ID(int64(i)), tc.query, map[string]any{"c": apptest.ID(conv)})
		}
		answered, limited := 0, 0
		for answered+limited < tc.n {
			m, ok := ws.Next(10 * time.Second)
			if !ok {
				t.Fatalf("%s: connection closed after %d answers: %v", tc.name, answered+limited, ws.Err())
			}
			switch m.Type {
			case "next":
				if strings.Contains(string(m.Payload), `"errors"`) {
					t.Fatalf("%s: %s", tc.name, m.Payload)
				}
				answered++
			case "error":
				// Refused by the rate limit, or, when the machine is slow to answer those it
				// admitted, by the cap on operations in flight: both are RATE_LIMITED.
				p := string(m.Payload)
				if !strings.Contains(p, `"RATE_LIMITED"`) || !strings.Contains(p, `"retryAfter"`) && !strings.Contains(p, "in flight") {
					t.Fatalf("%s: refused with %s", tc.name, m.Payload)
				}
				limited++
			}
		}
		// A request served while Redis could not answer in time (a loaded machine) is let
		// through and counted: the limiter fails open.
		failedOpen := int(metricValue(t, srv, "threadline_rate_limit_fail_open_total"))
		budget := burst + int(time.Since(began).Seconds()*rate) + 1 + failedOpen
		if answered > budget {
			t.Errorf("%s: %d of %d operations ran on one connection, budget %d (%d failed open)", tc.name, answered, tc.n, budget, failedOpen)
		}
		t.Logf("%s: %d ran, %d rate limited (HTTP: %d of 400)", tc.name, answered, limited, httpOK)
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages WHERE body = 'flood'"); n > budget+int(metricValue(t, srv, "threadline_rate_limit_fail_open_total")) {
		t.Errorf("%d flood messages committed, budget %d", n, budget)
	}
}

// Queries and mutations over a WebSocket have the request deadline: a send stuck behind a lock
// is cancelled at REQUEST_TIMEOUT and commits nothing, and the connection stays usable.
func TestWebSocketOperationDeadline(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{Configure: func(c *app.Config) { c.RequestTimeout = 300 * time.Millisecond }})

	tx, err := srv.Direct.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv); err != nil {
		t.Fatal(err)
	}
	ws := srv.Dial(t, users[0])
	began := time.Now()
	ws.Subscribe("stuck", `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "stuck"}) { seq } }`, map[string]any{"c": apptest.ID(conv)})
	m, _ := ws.Next(10 * time.Second)
	took := time.Since(began)
	if m.Type != "next" || !strings.Contains(string(m.Payload), `"errors"`) {
		t.Fatalf("a send behind a lock: %s %s", m.Type, m.Payload)
	}
	if took > 5*time.Second {
		t.Fatalf("the send answered after %s, with a 300ms deadline", took)
	}
	if m, _ := ws.Next(5 * time.Second); m.Type != "complete" || m.ID != "stuck" {
		t.Fatalf("after the error: %s %s", m.Type, m.Payload)
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := dbtest.Count(t, srv.Direct, "SELECT count(*) FROM messages WHERE body = 'stuck'"); n != 0 {
		t.Fatalf("the cancelled send committed %d messages", n)
	}
	ws.Subscribe("after", `{ me { id } }`, nil)
	if m, _ := ws.Next(5 * time.Second); m.Type != "next" || m.ID != "after" {
		t.Fatalf("a query after the deadline: %s %s", m.Type, m.Payload)
	}
}

// A token that expires while its connection is open ends the connection with 4403: nothing
// more is delivered on it, and no operation runs on it.
func TestWebSocketTokenExpiry(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{})

	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		ws := dialProto(t, srv, proto, apptest.Token(t, apptest.Secret, users[1], 2*time.Second))
		ws.Subscribe("live", apptest.MessageAddedQuery, map[string]any{"c": apptest.ID(conv)})
		time.Sleep(300 * time.Millisecond) // the subscription has started
		srv.Client(users[0]).Query(t, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "before"}) { seq } }`, map[string]any{"c": apptest.ID(conv)}, nil)
		if got := ws.Messages("live", 1, 5*time.Second); got[0].Body != "before" {
			t.Fatalf("%s: before expiry: %+v", proto, got)
		}
		code, reason := ws.CloseStatus(10 * time.Second)
		if code != 4403 {
			t.Fatalf("%s: closed with %d %q at expiry, want 4403", proto, code, reason)
		}
		srv.Client(users[0]).Query(t, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "after"}) { seq } }`, map[string]any{"c": apptest.ID(conv)}, nil)
		if m, ok := ws.TryNext(); ok {
			t.Fatalf("%s: after expiry the client got %s %s", proto, m.Type, m.Payload)
		}
	}
}

// startRateLimited starts a server whose rate limit is on (rate a second, burst) with the users
// Alice, Bob and Carol in one conversation, so that each user draws on a budget of its own.
func startRateLimited(t testing.TB, rate, burst int) (srv *apptest.Server, users []int64, conv int64) {
	t.Helper()
	return startConv(t, apptest.Options{Configure: func(c *app.Config) {
		c.RateLimitDisabled, c.RateLimit, c.RateLimitBurst = false, rate, burst
	}}, "Alice", "Bob", "Carol")
}

// startConv starts a server with o and the users names (Alice and Bob when none) in one
// conversation, General.
func startConv(t testing.TB, o apptest.Options, names ...string) (srv *apptest.Server, users []int64, conv int64) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"Alice", "Bob"}
	}
	srv = apptest.Start(t, o)
	users = dbtest.Users(t, srv.Direct, names...)
	return srv, users, dbtest.Conversation(t, srv.Direct, "General", users...)
}

// dialProto opens a connection to srv in protocol proto and completes connection_init with
// token, failing the test otherwise.
func dialProto(t testing.TB, srv *apptest.Server, proto, token string) *apptest.WS {
	t.Helper()
	ws, _, err := apptest.DialWS(t, srv.WebSocketURL(), apptest.DialOptions{Protocol: proto})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Init(map[string]any{"Authorization": "Bearer " + token}); err != nil {
		t.Fatal(err)
	}
	return ws
}

// graphql-transport-ws: a subscribe whose id is running already closes the connection with
// 4409, so no subscription can outlive the complete meant for it; graphql-ws does the same.
func TestWebSocketDuplicateIDs(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{})
	for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
		ws := dialProto(t, srv, proto, srv.Token(users[1]))
		ws.Subscribe("same", apptest.MessageAddedQuery, map[string]any{"c": apptest.ID(conv)})
		ws.Subscribe("same", apptest.MessageAddedQuery, map[string]any{"c": apptest.ID(conv)})
		if code, reason := ws.CloseStatus(5 * time.Second); code != 4409 {
			t.Fatalf("%s: closed with %d %q, want 4409", proto, code, reason)
		}
	}
	// After the close, nothing of the conversation reaches anyone on that connection: the
	// subscriptions ended with it.
	if n := metricValue(t, srv, "threadline_subscriptions_active"); n != 0 {
		t.Fatalf("%v subscriptions still active", n)
	}
}

// A second connection_init closes with 4429; the connections of one user and of one address
// are capped.
func TestWebSocketConnectionCaps(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.WSMaxConnsPerUser, c.WSMaxConnsPerAddr = 2, 4
	}})
	users := dbtest.Users(t, srv.Direct, "Alice", "Bob")

	again := srv.Dial(t, users[0])
	again.Send(apptest.WSMessage{Type: "connection_init"})
	if code, _ := again.CloseStatus(5 * time.Second); code != 4429 {
		t.Fatalf("second connection_init: closed with %d, want 4429", code)
	}
	srv.Dial(t, users[1])
	srv.Dial(t, users[1])
	third, _, err := apptest.DialWS(t, srv.WebSocketURL(), apptest.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := third.Init(map[string]any{"Authorization": "Bearer " + srv.Token(users[1])}); websocket.CloseStatus(err) != 4429 {
		t.Fatalf("a user's third connection: %v, want close 4429", err)
	}
	// The address holds the two of Bob and may open two more; the fifth upgrade is refused. The
	// connections closed with 4429 hold their slots until the server's handler has returned, a
	// moment after the close reached the client: a refusal meanwhile is retried.
	for range 2 {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			_, resp, err := apptest.DialWS(t, srv.WebSocketURL(), apptest.DialOptions{})
			if err == nil {
				break
			}
			if resp == nil || resp.StatusCode != http.StatusTooManyRequests || time.Now().After(deadline) {
				t.Fatalf("an address's third or fourth connection: %v %v", resp, err)
			}
		}
	}
	if _, resp, err := apptest.DialWS(t, srv.WebSocketURL(), apptest.DialOptions{}); resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("an address's fifth connection: %v %v, want 429", resp, err)
	}
}

// A client that never reads cannot pin the server: its writes time out, the server closes the
// connection, and its subscription ends.
func TestWebSocketClientThatNeverReads(t *testing.T) {
	t.Parallel()
	srv, users, conv := startConv(t, apptest.Options{Configure: func(c *app.Config) {
		c.WSWriteTimeout, c.WSPingInterval, c.SubscriberBuffer = 300*time.Millisecond, time.Minute, 100000
	}})

	ctx := t.Context()
	conn, _, err := websocket.Dial(ctx, srv.WebSocketURL(), &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	write := func(v any) {
		b, _ := json.Marshal(v)
		if err := conn.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	write(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + srv.Token(users[1])}})
	if _, b, err := conn.Read(ctx); err != nil || !strings.Contains(string(b), "connection_ack") {
		t.Fatalf("ack: %s %v", b, err)
	}
	write(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{
		"query": apptest.MessageAddedQuery, "variables": map[string]any{"c": apptest.ID(conv)},
	}})
	waitMetric(t, srv, "threadline_subscriptions_active", 1)
	floodUntilUnsubscribed(t, srv, users[0], conv)
}

// floodUntilUnsubscribed sends large messages to conv as sender until srv has no active
// subscription left: a subscriber that reads nothing fills the socket buffers quickly and is
// cut off. It fails the test after 60 s.
func floodUntilUnsubscribed(t testing.TB, srv *apptest.Server, sender, conv int64) {
	t.Helper()
	body := strings.Repeat("x", 3900)
	client := srv.Client(sender)
	deadline := time.Now().Add(60 * time.Second)
	for metricValue(t, srv, "threadline_subscriptions_active") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription of a client that never reads is still active after 60 s")
		}
		for range 20 {
			client.Query(t, `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
				map[string]any{"c": apptest.ID(conv), "b": body}, nil)
		}
	}
}

func metricValue(t testing.TB, srv *apptest.Server, name string) float64 {
	t.Helper()
	m := findMetric(t, srv, name, nil)
	if m == nil {
		t.Fatalf("no metric %s", name)
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// findMetric returns the metric of the family name whose labels include labels, nil when there
// is none.
func findMetric(t testing.TB, srv *apptest.Server, name string, labels map[string]string) *dto.Metric {
	t.Helper()
	mfs, err := srv.App.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			have := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					have++
				}
			}
			if have == len(labels) {
				return m
			}
		}
	}
	return nil
}

func waitMetric(t testing.TB, srv *apptest.Server, name string, want float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for metricValue(t, srv, name) != want {
		select {
		case <-ctx.Done():
			t.Fatalf("%s = %v, want %v", name, metricValue(t, srv, name), want)
		case <-time.After(10 * time.Millisecond):
		}
	}
}
