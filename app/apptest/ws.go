package apptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// WS is a small GraphQL-over-WebSocket client for tests: graphql-transport-ws (or the legacy
// graphql-ws), written from the protocols' descriptions rather than with gqlgen's client, so the
// tests see the wire as a browser library would.
type WS struct {
	t     testing.TB
	conn  *websocket.Conn
	proto string

	in        inbox[WSMessage] // the reader sets closeErr before it closes in.done
	closeErr  error
	startOnce sync.Once
}

type WSMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

type DialOptions struct {
	Protocol string // default graphql-transport-ws
	Header   http.Header
}

// DialWS opens a connection; it returns the HTTP response when the upgrade is refused.
func DialWS(t testing.TB, url string, o DialOptions) (*WS, *http.Response, error) {
	t.Helper()
	if o.Protocol == "" {
		o.Protocol = "graphql-transport-ws"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{o.Protocol}, HTTPHeader: o.Header})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	c := &WS{t: t, conn: conn, proto: o.Protocol, in: newInbox[WSMessage]()}
	t.Cleanup(func() { conn.CloseNow() })
	return c, resp, nil
}

// Send writes m, failing the test if it cannot.
func (c *WS) Send(m WSMessage) {
	c.t.Helper()
	if err := c.send(m); err != nil {
		c.t.Fatalf("websocket write: %v", err)
	}
}

func (c *WS) send(m WSMessage) error {
	b, _ := json.Marshal(m)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return c.conn.Write(ctx, websocket.MessageText, b)
}

// Init sends connection_init with payload and waits for connection_ack. It returns the
// close error instead when the server refuses.
func (c *WS) Init(payload map[string]any) error {
	c.t.Helper()
	raw, _ := json.Marshal(payload)
	if err := c.send(WSMessage{Type: "connection_init", Payload: raw}); err != nil {
		return err
	}
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
func (c *WS) readNow(timeout time.Duration) (WSMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	if err != nil {
		return WSMessage{}, err
	}
	var m WSMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return WSMessage{}, fmt.Errorf("decode %s: %w", b, err)
	}
	return m, nil
}

// Listen starts reading in the background, answering pings. A client that never calls it
// never reads its socket.
func (c *WS) Listen() {
	c.startOnce.Do(func() {
		go func() {
			defer close(c.in.done)
			for {
				_, b, err := c.conn.Read(context.Background())
				if err != nil {
					c.closeErr = err
					return
				}
				var m WSMessage
				if err := json.Unmarshal(b, &m); err != nil {
					c.closeErr = fmt.Errorf("decode %s: %w", b, err)
					return
				}
				switch m.Type {
				case "ping":
					pong, _ := json.Marshal(WSMessage{Type: "pong"})
					_ = c.conn.Write(context.Background(), websocket.MessageText, pong)
				case "pong", "ka":
				default:
					c.in.in <- m
				}
			}
		}()
	})
}

// Subscribe starts subscription id of query (graphql-transport-ws subscribe, graphql-ws start).
func (c *WS) Subscribe(id, query string, vars map[string]any) {
	c.t.Helper()
	c.Send(c.subscribeMessage(id, query, vars))
}

func (c *WS) subscribeMessage(id, query string, vars map[string]any) WSMessage {
	raw, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	typ := "subscribe"
	if c.proto == "graphql-ws" {
		typ = "start"
	}
	return WSMessage{Type: typ, ID: id, Payload: raw}
}

// Read returns the next message, or the error the connection ended with once it has ended
// (websocket.CloseStatus reads its code), or ctx's error. Unlike Next it never fails the test,
// so it may run off the test's goroutine.
func (c *WS) Read(ctx context.Context) (WSMessage, error) {
	c.Listen()
	return c.in.read(ctx, func() error { return c.closeErr })
}

// Next returns the next message, or ok=false when the connection closed; it fails the test on
// timeout.
func (c *WS) Next(timeout time.Duration) (m WSMessage, ok bool) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m, err := c.Read(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		c.t.Fatalf("no websocket message within %s", timeout)
	}
	return m, err == nil
}

// TryNext returns a message already received, if there is one.
func (c *WS) TryNext() (WSMessage, bool) { return c.in.tryNext() }

// Quiet checks that no message arrives for a moment.
func (c *WS) Quiet(d time.Duration) {
	c.t.Helper()
	c.Listen()
	select {
	case m := <-c.in.in:
		c.t.Fatalf("unexpected %s %s", m.Type, m.Payload)
	case <-time.After(d):
	}
}

// CloseStatus waits until the server closes the connection and returns the close code.
func (c *WS) CloseStatus(timeout time.Duration) (websocket.StatusCode, string) {
	c.t.Helper()
	c.Listen()
	c.in.waitEnd(c.t, timeout, "the connection")
	var ce websocket.CloseError
	if errors.As(c.closeErr, &ce) {
		return ce.Code, ce.Reason
	}
	return websocket.CloseStatus(c.closeErr), fmt.Sprint(c.closeErr)
}

// LiveMessage is messageAdded as the subscription query selects it.
type LiveMessage struct {
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

const MessageAddedQuery = `subscription($c: ID!, $after: Int) {
  messageAdded(conversationId: $c, afterSeq: $after) { id seq conversationId body createdAt clientMessageId sender { id name } }
}`

// NextPayload is the payload of a messageAdded next (data) message.
type NextPayload struct {
	Data *struct {
		MessageAdded *LiveMessage `json:"messageAdded"`
	} `json:"data"`
	Errors []Error `json:"errors"`
}

// Messages reads n messageAdded results of subscription id.
func (c *WS) Messages(id string, n int, timeout time.Duration) []LiveMessage {
	c.t.Helper()
	out, err := c.Collect(id, n, timeout, "")
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// Collect reads messageAdded results of subscription id until it has n, or until one has body
// until (when not ""). Unlike Messages it may run off the test's goroutine.
func (c *WS) Collect(id string, n int, timeout time.Duration, until string) ([]LiveMessage, error) {
	return collectAdded(n, timeout, until, "connection closed", func(ctx context.Context) (LiveMessage, error) {
		m, err := c.Read(ctx)
		if err != nil {
			return LiveMessage{}, err
		}
		if m.ID != id {
			return LiveMessage{}, decodeError{fmt.Errorf("unexpected %s (id %q) %s", m.Type, m.ID, m.Payload)}
		}
		added, err := m.MessageAdded()
		if err != nil {
			return LiveMessage{}, decodeError{err}
		}
		return added, nil
	})
}

// MessageAdded decodes a messageAdded result (a next, or graphql-ws data, message without
// errors).
func (m WSMessage) MessageAdded() (LiveMessage, error) {
	if m.Type != "next" && m.Type != "data" {
		return LiveMessage{}, fmt.Errorf("unexpected %s (id %q) %s", m.Type, m.ID, m.Payload)
	}
	var p NextPayload
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data == nil || p.Data.MessageAdded == nil || len(p.Errors) > 0 {
		return LiveMessage{}, fmt.Errorf("next payload %s (%v)", m.Payload, err)
	}
	return *p.Data.MessageAdded, nil
}

func Seqs(ms []LiveMessage) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}

// CheckSeqs checks that got is exactly from..to, in order.
func CheckSeqs(t testing.TB, who string, got []int64, from, to int64) {
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

// Drop closes the connection at once, without a close handshake (a client that vanished).
func (c *WS) Drop() { c.conn.CloseNow() }

// Err returns why the connection ended (nil while it is open).
func (c *WS) Err() error {
	select {
	case <-c.in.done:
		return c.closeErr
	default:
		return nil
	}
}

// Dial opens a graphql-transport-ws connection to the server as userID (0: anonymous) and
// completes connection_init; it fails the test if the server refuses.
func (e *Endpoint) Dial(t testing.TB, userID int64) *WS {
	t.Helper()
	authorization := ""
	if userID != 0 {
		authorization = "Bearer " + e.Token(userID)
	}
	c, err := connect(t, e.WebSocketURL(), authorization)
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	return c
}

// DialSubscribe opens a graphql-transport-ws connection to url (ws://…/query) with authorization
// ("" for none) in connection_init and starts subscription id of query. It reports failures as
// errors rather than failing the test, so that it may run off the test's goroutine (clients that
// resume on another server after a close). The connection closes when the test ends.
func DialSubscribe(t testing.TB, url, authorization, id, query string, vars map[string]any) (*WS, error) {
	c, err := connect(t, url, authorization)
	if err != nil {
		return nil, err
	}
	if err := c.send(c.subscribeMessage(id, query, vars)); err != nil {
		c.conn.CloseNow()
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return c, nil
}

func connect(t testing.TB, url, authorization string) (*WS, error) {
	c, _, err := DialWS(t, url, DialOptions{})
	if err != nil {
		return nil, fmt.Errorf("websocket: %w", err)
	}
	payload := map[string]any{}
	if authorization != "" {
		payload["Authorization"] = authorization
	}
	if err := c.Init(payload); err != nil {
		c.conn.CloseNow()
		return nil, fmt.Errorf("connection_init: %w", err)
	}
	return c, nil
}

// Complete ends subscription id (graphql-transport-ws complete, graphql-ws stop).
func (c *WS) Complete(id string) {
	c.t.Helper()
	typ := "complete"
	if c.proto == "graphql-ws" {
		typ = "stop"
	}
	c.Send(WSMessage{Type: typ, ID: id})
}
