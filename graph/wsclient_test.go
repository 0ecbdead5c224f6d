package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// wsClient is a small GraphQL-over-WebSocket client for tests: graphql-transport-ws (or the
// legacy graphql-ws), written from the protocols' descriptions rather than with gqlgen's client,
// so the tests see the wire as a browser library would.
type wsClient struct {
	t     testing.TB
	conn  *websocket.Conn
	proto string

	in        chan wsMsg
	done      chan struct{} // closed when the reader stops; closeErr is set then
	closeErr  error
	startOnce sync.Once
}

type wsMsg struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type dialOptions struct {
	proto  string // default graphql-transport-ws
	header http.Header
}

// dialWS opens a connection; it returns the HTTP response when the upgrade is refused.
func dialWS(t testing.TB, url string, o dialOptions) (*wsClient, *http.Response, error) {
	t.Helper()
	if o.proto == "" {
		o.proto = "graphql-transport-ws"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{o.proto}, HTTPHeader: o.header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{t: t, conn: conn, proto: o.proto, in: make(chan wsMsg, 100000), done: make(chan struct{})}
	t.Cleanup(func() { conn.CloseNow() })
	return c, resp, nil
}

func (c *wsClient) send(m wsMsg) {
	c.t.Helper()
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, b); err != nil {
		c.t.Fatalf("websocket write: %v", err)
	}
}

// connect sends connection_init with payload and waits for connection_ack. It returns the
// close error instead when the server refuses.
func (c *wsClient) connect(payload map[string]any) error {
	c.t.Helper()
	raw, _ := json.Marshal(payload)
	c.send(wsMsg{Type: "connection_init", Payload: raw})
	for {
		m, err := c.readNow(10 * time.Second)
		if err != nil {
			return err
		}
		switch m.Type {
		case "connection_ack":
			return nil
		case "ka", "ping", "pong":
		case "connection_error": // graphql-ws refuses with this, then closes
			_, err := c.readNow(10 * time.Second)
			return fmt.Errorf("connection_error %s; then %w", m.Payload, err)
		default:
			return fmt.Errorf("unexpected %s before connection_ack", m.Type)
		}
	}
}

// readNow reads one message on the caller's goroutine (before listen).
func (c *wsClient) readNow(timeout time.Duration) (wsMsg, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return wsMsg{}, err
	}
	var m wsMsg
	if err := json.Unmarshal(b, &m); err != nil {
		return wsMsg{}, fmt.Errorf("decode %s: %w", b, err)
	}
	return m, nil
}

// listen starts reading in the background, answering pings. A client that never calls it
// never reads its socket.
func (c *wsClient) listen() {
	c.startOnce.Do(func() {
		go func() {
			defer close(c.done)
			for {
				_, b, err := c.conn.Read(context.Background())
				if err != nil {
					c.closeErr = err
					return
				}
				var m wsMsg
				if err := json.Unmarshal(b, &m); err != nil {
					c.closeErr = fmt.Errorf("decode %s: %w", b, err)
					return
				}
				switch m.Type {
				case "ping":
					pong, _ := json.Marshal(wsMsg{Type: "pong"})
					_ = c.conn.Write(context.Background(), websocket.MessageText, pong)
				case "pong", "ka":
				default:
					c.in <- m
				}
			}
		}()
	})
}

func (c *wsClient) subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	raw, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if c.proto == "graphql-ws" {
		typ = "start"
	}
	c.send(wsMsg{Type: typ, ID: id, Payload: raw})
}

// recv returns the next message, or ok=false when the connection closed; it fails the test on
// timeout.
func (c *wsClient) recv(timeout time.Duration) (m wsMsg, ok bool) {
	c.t.Helper()
	c.listen()
	select {
	case m := <-c.in:
		return m, true
	default:
	}
	select {
	case m := <-c.in:
		return m, true
	case <-c.done:
		select {
		case m := <-c.in:
			return m, true
		default:
			return wsMsg{}, false
		}
	case <-time.After(timeout):
		c.t.Fatalf("no websocket message within %s", timeout)
		return wsMsg{}, false
	}
}

// quiet checks that no message arrives for a moment.
func (c *wsClient) quiet(d time.Duration) {
	c.t.Helper()
	c.listen()
	select {
	case m := <-c.in:
		c.t.Fatalf("unexpected %s %s", m.Type, m.Payload)
	case <-time.After(d):
	}
}

// closeStatus waits until the server closes the connection and returns the close code.
func (c *wsClient) closeStatus(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	c.listen()
	select {
	case <-c.done:
	case <-time.After(timeout):
		c.t.Fatalf("connection still open after %s", timeout)
	}
	var ce websocket.CloseError
	if errors.As(c.closeErr, &ce) {
		return ce.Code, ce.Reason
	}
	return websocket.CloseStatus(c.closeErr), fmt.Sprint(c.closeErr)
}

// liveMessage is messageAdded as the subscription query selects it.
type liveMessage struct {
	ID              string  `json:"id"`
	Seq             int64   `json:"seq"`
	ConversationID  string  `json:"conversationId"`
	Body            string  `json:"body"`
	CreatedAt       string  `json:"createdAt"`
	ClientMessageID *string `json:"clientMessageId"`
	Sender          struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"sender"`
}

const messageAddedQuery = `subscription($c: ID!, $after: Int) {
  messageAdded(conversationId: $c, afterSeq: $after) { id seq conversationId body createdAt clientMessageId sender { id name } }
}`

// payload of a next (data) message.
type nextPayload struct {
	Data *struct {
		MessageAdded *liveMessage `json:"messageAdded"`
	} `json:"data"`
	Errors []gqlError `json:"errors"`
}

// messages reads n messageAdded results of subscription id.
func (c *wsClient) messages(id string, n int, timeout time.Duration) []liveMessage {
	c.t.Helper()
	out, err := c.collect(id, n, timeout, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// collect reads messageAdded results of subscription id until it has n, or until one has body
// until (when not ""). Unlike messages it may run off the test's goroutine.
func (c *wsClient) collect(id string, n int, timeout time.Duration, until string) ([]liveMessage, error) {
	c.listen()
	out := make([]liveMessage, 0, n)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for len(out) < n {
		var m wsMsg
		select {
		case m = <-c.in:
		case <-c.done:
			select {
			case m = <-c.in:
			default:
				return out, fmt.Errorf("connection closed after %d of %d messages: %v", len(out), n, c.closeErr)
			}
		case <-deadline.C:
			return out, fmt.Errorf("timed out after %d of %d messages", len(out), n)
		}
		if m.ID != id || (m.Type != "next" && m.Type != "data") {
			return out, fmt.Errorf("after %d of %d messages: unexpected %s (id %q) %s", len(out), n, m.Type, m.ID, m.Payload)
		}
		var p nextPayload
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data == nil || p.Data.MessageAdded == nil || len(p.Errors) > 0 {
			return out, fmt.Errorf("next payload %s (%v)", m.Payload, err)
		}
		out = append(out, *p.Data.MessageAdded)
		if until != "" && p.Data.MessageAdded.Body == until {
			break
		}
	}
	return out, nil
}

func seqsOf(ms []liveMessage) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// checkSeqs checks that got is exactly from..to, in order.
func checkSeqs(t testing.TB, who string, got []int64, from, to int64) {
	t.Helper()
	if int64(len(got)) != to-from+1 {
		seen := map[int64]int{}
		for _, s := range got {
			seen[s]++
		}
		var missing, twice []int64
		for s := from; s <= to; s++ {
			if seen[s] == 0 {
				missing = append(missing, s)
			} else if seen[s] > 1 {
				twice = append(twice, s)
			}
		}
		t.Fatalf("%s: %d messages, want seq %d..%d; missing %v, repeated %v", who, len(got), from, to, head(missing), head(twice))
	}
	for i, s := range got {
		if s != from+int64(i) {
			t.Fatalf("%s: message %d has seq %d, want %d: every seq once, in order", who, i, s, from+int64(i))
		}
	}
}

func head(s []int64) []int64 {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func wsURL(httpURL string) string { return "ws" + strings.TrimPrefix(httpURL, "http") + "/query" }
