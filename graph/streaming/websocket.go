package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/httptransport"
	"github.com/threadline/threadline/internal/defaults"
)

// The subprotocols: graphql-transport-ws (the graphql-ws library's protocol) and the legacy
// graphql-ws (subscriptions-transport-ws), which a client that names neither gets.
const (
	ProtocolTransportWS = "graphql-transport-ws"
	ProtocolLegacyWS    = "graphql-ws"
)

// Close codes the server sends (graphql-transport-ws's, and RFC 6455's).
const (
	CloseNormal           = 1000
	CloseGoingAway        = 1001 // the server is shutting down: reconnect elsewhere, resume with afterSeq
	CloseBadRequest       = 4400 // a message the protocol does not allow
	CloseUnauthorized     = 4401 // no valid token in connection_init, or subscribe before it
	CloseForbidden        = 4403 // the token expired: reconnect with a new one
	CloseInitTimeout      = 4408 // no connection_init in time
	CloseDuplicateID      = 4409 // a subscribe whose id is running already
	CloseTooManyInit      = 4429 // a second connection_init, or too many connections for the user
	closeMissedPongReason = "no pong within two ping intervals"
)

// WebSocketConfig configures GraphQL over WebSocket, beside the Config it shares with the
// event stream.
type WebSocketConfig struct {
	// AllowedOrigins lists the browser origins ("https://app.example.com") that may connect
	// besides the server's own; "*" allows any. A request without an Origin header (not a
	// browser) is always allowed: it carries its token in connection_init, not in a cookie.
	AllowedOrigins []string
	// InitTimeout is how long a client has to send connection_init.
	InitTimeout time.Duration
	// PingInterval is how often the server pings (graphql-transport-ws: a client that has not
	// answered within two intervals is closed) or sends keep-alives (graphql-ws).
	PingInterval time.Duration
	// ReadLimit is the largest message accepted from a client, in bytes.
	ReadLimit int64
}

// Defaults of WebSocketConfig.
const (
	DefaultInitTimeout  = 10 * time.Second
	DefaultPingInterval = 15 * time.Second
	DefaultReadLimit    = 64 << 10
)

// WebSocket is the gqlgen transport for GraphQL over WebSocket on /query.
type WebSocket struct {
	*shared
	ws      WebSocketConfig
	origins originPolicy
}

// newWebSocket returns the transport; zero fields of ws take the defaults.
func newWebSocket(sh *shared, ws WebSocketConfig) *WebSocket {
	ws.InitTimeout = defaults.Positive(ws.InitTimeout, DefaultInitTimeout)
	ws.PingInterval = defaults.Positive(ws.PingInterval, DefaultPingInterval)
	ws.ReadLimit = defaults.Positive(ws.ReadLimit, DefaultReadLimit)
	return &WebSocket{shared: sh, ws: ws, origins: newOriginPolicy(ws.AllowedOrigins)}
}

var _ graphql.Transport = (*WebSocket)(nil)

// Supports reports whether r asks for a WebSocket upgrade.
func (t *WebSocket) Supports(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") && headerHas(r.Header, "Connection", "upgrade")
}

// Do serves one connection, for as long as it lasts.
func (t *WebSocket) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.origins.allows(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	addr := clientAddr(r)
	if !t.addrs.take(addr, t.cfg.MaxConnsPerAddr) {
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many connections from this address", http.StatusTooManyRequests)
		return
	}
	defer t.addrs.give(addr)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &wsConn{t: t, exec: exec, addr: addr, cancel: cancel, ops: map[string]*wsOp{}}
	untrack, ok := t.trackConn(c.goingAway)
	if !ok {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	defer untrack()
	conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols:       []string{ProtocolTransportWS, ProtocolLegacyWS},
		InsecureSkipVerify: true, // the Origin was checked above
	})
	if err != nil {
		return // Accept has answered the request
	}
	conn.SetReadLimit(t.ws.ReadLimit)
	proto := conn.Subprotocol()
	if proto == "" {
		proto = ProtocolLegacyWS
	}
	// A shutdown may have begun since the connection was tracked: goingAway runs on another
	// goroutine, and finds the connection under c.mu.
	c.mu.Lock()
	c.conn, c.proto = conn, proto
	away := c.away
	c.mu.Unlock()
	if away {
		c.close(CloseGoingAway, "server shutting down")
		return
	}
	if h := r.Header.Get("Authorization"); h != "" && t.cfg.Authenticate != nil {
		ctx = t.cfg.Authenticate(ctx, h)
	}
	c.serve(ctx)
}

// wsConn is one connection.
type wsConn struct {
	t      *WebSocket
	exec   graphql.GraphExecutor
	addr   string // the client's address, without port
	conn   *websocket.Conn
	proto  string
	cancel context.CancelFunc
	runner *runner
	left   func() // from Config.Connected; serve's goroutine only

	// wmu serialises writes; what follows is its own.
	wmu sync.Mutex
	// wbuf is the frame being written, kept between writes (up to maxKeptFrame bytes).
	wbuf []byte
	// wtimer enforces WriteTimeout on the write under way (see send).
	wtimer *time.Timer

	mu      sync.Mutex
	ops     map[string]*wsOp // running operations by id
	pongAt  time.Time
	away    bool // shutting down: every close becomes 1001
	closing bool
	wg      sync.WaitGroup
}

type wsMessage struct {
	Type    string          `json:"type"`
	ID      string          `json:"id,omitempty"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

func (c *wsConn) legacy() bool { return c.proto == ProtocolLegacyWS }

// serve runs the connection: connection_init first, then operations until either side closes.
func (c *wsConn) serve(ctx context.Context) {
	defer c.wg.Wait() // operations end (their context is cancelled below) before the handler returns
	defer c.cancel()
	ctx, user, ok := c.init(ctx)
	if !ok {
		return
	}
	defer c.t.users.give(user)
	defer c.disconnected()
	c.runner = &runner{cfg: &c.t.cfg, exec: c.exec, addr: c.addr}
	c.mu.Lock()
	c.pongAt = time.Now()
	c.mu.Unlock()
	go c.keepAlive(ctx)
	if _, expires, ok := c.t.cfg.Viewer(ctx); ok && !expires.IsZero() {
		stop := time.AfterFunc(time.Until(expires), func() {
			c.close(CloseForbidden, "Forbidden: the token expired, reconnect with a new one")
		})
		defer stop.Stop()
	}
	for {
		m, err := c.read()
		if err != nil {
			c.closeAfterReadError(ctx, err)
			return
		}
		if !c.handle(ctx, m) {
			return
		}
	}
}

// init waits for connection_init and authenticates the connection. It returns the context
// carrying the viewer, and the key the connection counts under for its user.
func (c *wsConn) init(ctx context.Context) (context.Context, string, bool) {
	timer := time.AfterFunc(c.t.ws.InitTimeout, func() { c.close(CloseInitTimeout, "Connection initialisation timeout") })
	m, err := c.read()
	if !timer.Stop() {
		return ctx, "", false // closed for the timeout
	}
	switch {
	case err != nil:
		c.closeAfterReadError(ctx, err)
		return ctx, "", false
	case c.legacy() && m.Type == "connection_terminate":
		c.close(CloseNormal, "")
		return ctx, "", false
	case m.Type != "connection_init":
		c.close(CloseUnauthorized, "Unauthorized")
		return ctx, "", false
	}
	var payload map[string]any
	if len(m.Payload) > 0 && string(m.Payload) != "null" {
		if err := json.Unmarshal(m.Payload, &payload); err != nil {
			c.close(CloseBadRequest, "connection_init payload must be an object")
			return ctx, "", false
		}
	}
	for k, v := range payload {
		if strings.EqualFold(k, "Authorization") {
			header, isString := v.(string)
			if !isString || c.t.cfg.Authenticate == nil {
				return ctx, "", c.refuse()
			}
			ctx = c.t.cfg.Authenticate(ctx, header)
		}
	}
	id, expires, ok := c.t.cfg.Viewer(ctx)
	if !ok || (!expires.IsZero() && !time.Now().Before(expires)) {
		return ctx, "", c.refuse()
	}
	user := strconv.FormatInt(id, 10)
	if !c.t.users.take(user, c.t.cfg.MaxConnsPerUser) {
		c.close(CloseTooManyInit, "too many connections for this user")
		return ctx, "", false
	}
	if f := c.t.cfg.Connected; f != nil {
		c.left = f(ctx, id)
	}
	if c.write(wsMessage{Type: "connection_ack"}) != nil {
		c.t.users.give(user)
		c.disconnected()
		return ctx, "", false
	}
	return ctx, user, true
}

// disconnected tells Config.Connected's caller that the connection has ended.
func (c *wsConn) disconnected() {
	if c.left != nil {
		c.left()
		c.left = nil
	}
}

// refuse closes an unauthenticated connection; graphql-ws first says connection_error.
func (c *wsConn) refuse() bool {
	if c.legacy() {
		b, _ := json.Marshal(map[string]string{"message": "unauthorized: connection_init must carry a valid Authorization bearer token"})
		_ = c.write(wsMessage{Type: "connection_error", Payload: b})
	}
	c.close(CloseUnauthorized, "Unauthorized")
	return false
}

// handle serves one message after connection_ack; false ends the connection.
func (c *wsConn) handle(ctx context.Context, m wsMessage) bool {
	switch {
	case m.Type == "ping" && !c.legacy():
		return c.write(wsMessage{Type: "pong", Payload: m.Payload}) == nil
	case m.Type == "pong" && !c.legacy():
		c.mu.Lock()
		c.pongAt = time.Now()
		c.mu.Unlock()
		return true
	case m.Type == "subscribe" && !c.legacy(), m.Type == "start" && c.legacy():
		return c.start(ctx, m)
	case m.Type == "complete" && !c.legacy(), m.Type == "stop" && c.legacy():
		c.mu.Lock()
		if op, ok := c.ops[m.ID]; ok {
			op.cancel()
			op.slot.free()
			delete(c.ops, m.ID)
		}
		c.mu.Unlock()
		return true
	case m.Type == "connection_init":
		c.close(CloseTooManyInit, "Too many initialisation requests")
		return false
	case m.Type == "connection_terminate" && c.legacy():
		c.close(CloseNormal, "")
		return false
	}
	c.close(CloseBadRequest, "unexpected message type")
	return false
}

// start runs a subscribe (start) message's operation on a goroutine of its own.
func (c *wsConn) start(ctx context.Context, m wsMessage) bool {
	if m.ID == "" || len(m.ID) > 128 {
		c.close(CloseBadRequest, "subscribe needs an id of at most 128 characters")
		return false
	}
	params, err := decodeParams(m.Payload)
	if err != nil {
		c.close(CloseBadRequest, "invalid subscribe payload")
		return false
	}
	if !httptransport.ValidText(m.Payload) {
		_ = newWSSink(c, m.ID).fail(gqlerror.List{publicError("BAD_USER_INPUT", "the operation must be UTF-8 text, without lone UTF-16 surrogates", nil)})
		return true
	}
	params.Headers = http.Header{}
	c.mu.Lock()
	if _, dup := c.ops[m.ID]; dup {
		c.mu.Unlock()
		c.close(CloseDuplicateID, "Subscriber for "+m.ID+" already exists")
		return false
	}
	opCtx, cancel := context.WithCancel(ctx)
	op := &wsOp{cancel: cancel, slot: &slot{}}
	c.ops[m.ID] = op
	c.wg.Add(1)
	c.mu.Unlock()
	out := newWSSink(c, m.ID)
	go func() {
		defer c.wg.Done()
		defer func() {
			c.mu.Lock()
			if c.ops[m.ID] == op { // not already completed by the client (and the id reused)
				delete(c.ops, m.ID)
			}
			c.mu.Unlock()
			cancel()
		}()
		c.runner.run(opCtx, operation{params: params, out: out, hold: op.slot})
	}()
	return true
}

// wsOp is a running operation.
type wsOp struct {
	cancel context.CancelFunc
	slot   *slot
}

// wsSink sends one operation's results. Every refusal, and a stream's failure, is the
// operation's `error` message.
type wsSink struct {
	c  *wsConn
	id string
	// nextPrefix opens the operation's next (graphql-ws: data) message up to its payload's
	// data: `{"type":"next","id":"<id>","payload":{"data":`, as encoding/json writes it.
	nextPrefix []byte
}

func newWSSink(c *wsConn, id string) *wsSink {
	typ := "next"
	if c.legacy() {
		typ = "data"
	}
	quoted, _ := json.Marshal(id) // a string always encodes
	prefix := make([]byte, 0, len(`{"type":"","id":,"payload":{"data":`)+len(typ)+len(quoted))
	prefix = append(prefix, `{"type":"`...)
	prefix = append(prefix, typ...)
	prefix = append(prefix, `","id":`...)
	prefix = append(prefix, quoted...)
	prefix = append(prefix, `,"payload":{"data":`...)
	return &wsSink{c: c, id: id, nextPrefix: prefix}
}

var _ sink = (*wsSink)(nil)

func (s *wsSink) refuse(_ int, err *gqlerror.Error) error { return s.fail(gqlerror.List{err}) }
func (s *wsSink) reject(resp *graphql.Response) error     { return s.fail(resp.Errors) }
func (s *wsSink) end(err *gqlerror.Error) error           { return s.fail(gqlerror.List{err}) }
func (s *wsSink) running() error                          { return nil }

// next sends one result. A result that carries data alone (every event of a subscription
// whose execution raised no error) is framed without encoding/json, into the connection's
// kept buffer: nextPrefix, the data with encoding/json's HTML escaping, and `}}`. The bytes
// are those json.Marshal of the wsMessage would write: the data is what the executor's
// marshallers wrote, compact JSON, on which json.Marshal of a json.RawMessage changes nothing
// but that escaping (websocket_internal_test.go compares the two). Any other result is
// encoded by encoding/json.
func (s *wsSink) next(resp *graphql.Response) error {
	if len(resp.Errors) == 0 && len(resp.Data) > 0 && resp.Label == "" && len(resp.Path) == 0 && resp.HasNext == nil && len(resp.Extensions) == 0 {
		return s.c.sendData(s.nextPrefix, resp.Data, false)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	typ := "next"
	if s.c.legacy() {
		typ = "data"
	}
	return s.c.write(wsMessage{Type: typ, ID: s.id, Payload: b})
}

// nextDirect sends a result with data alone: the message next sends for d.Data, framed from
// d.Escaped without escaping again when it has been made.
func (s *wsSink) nextDirect(d DirectData) error {
	if d.Escaped != nil {
		return s.c.sendData(s.nextPrefix, d.Escaped, true)
	}
	return s.c.sendData(s.nextPrefix, d.Data, false)
}

// appendNextFrame appends the message sendData writes: prefix, data HTML-escaped
// (AppendEscaped), and the closing `}}` of the payload and the message.
func appendNextFrame(dst, prefix, data []byte) []byte {
	dst = AppendEscaped(append(dst, prefix...), data)
	return append(dst, '}', '}')
}

// appendEscapedNextFrame is appendNextFrame for data escaped already: the same bytes for
// AppendEscaped(nil, data) as appendNextFrame writes for data.
func appendEscapedNextFrame(dst, prefix, escaped []byte) []byte {
	dst = append(append(dst, prefix...), escaped...)
	return append(dst, '}', '}')
}

// AppendEscaped appends JSON text data to dst, HTML-escaped as encoding/json escapes it
// ('<', '>', '&', U+2028 and U+2029 as \u escapes; in valid JSON they occur only inside
// strings, where the escape means the same character). What it writes contains none of
// them, so escaping it again changes nothing. The data of a result sent without the executor
// to many subscribers is escaped once (DirectData.Escaped).
func AppendEscaped(dst, data []byte) []byte {
	start := 0
	for i, c := range data {
		if c == '<' || c == '>' || c == '&' {
			dst = append(dst, data[start:i]...)
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			start = i + 1
		}
		if c == 0xE2 && i+2 < len(data) && data[i+1] == 0x80 && data[i+2]&^1 == 0xA8 {
			dst = append(dst, data[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[data[i+2]&0xF])
			start = i + 3
		}
	}
	return append(dst, data[start:]...)
}

const hexDigits = "0123456789abcdef"

func (s *wsSink) fail(errs gqlerror.List) error {
	b, err := json.Marshal(errs)
	if err != nil {
		return err
	}
	if s.c.legacy() && len(errs) > 0 {
		// subscriptions-transport-ws sends one error object.
		if b, err = json.Marshal(errs[0]); err != nil {
			return err
		}
	}
	return s.c.write(wsMessage{Type: "error", ID: s.id, Payload: b})
}

func (s *wsSink) complete() error {
	return s.c.write(wsMessage{Type: "complete", ID: s.id})
}

// read returns the next message from the client. It ends when the connection closes: its
// context is not the connection's, since coder/websocket drops the connection without a close
// frame when a read's context ends, and the connection's ending deserves a close code.
func (c *wsConn) read() (wsMessage, error) {
	typ, b, err := c.conn.Read(context.Background())
	if err != nil {
		return wsMessage{}, err
	}
	var m wsMessage
	if typ != websocket.MessageText || json.Unmarshal(b, &m) != nil || m.Type == "" {
		return wsMessage{}, errBadMessage
	}
	return m, nil
}

var errBadMessage = errors.New("not a protocol message")

// write sends one message, within WriteTimeout: a client that does not read is closed.
func (c *wsConn) write(m wsMessage) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendLocked(b)
}

// sendData sends the message appendNextFrame makes of prefix and data (appendEscapedNextFrame
// when data is escaped already), built in the connection's kept buffer.
func (c *wsConn) sendData(prefix, data []byte, escaped bool) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if escaped {
		c.wbuf = appendEscapedNextFrame(c.wbuf[:0], prefix, data)
	} else {
		c.wbuf = appendNextFrame(c.wbuf[:0], prefix, data)
	}
	err := c.sendLocked(c.wbuf)
	if cap(c.wbuf) > maxKeptFrame {
		c.wbuf = nil
	}
	return err
}

// maxKeptFrame bounds the buffer a connection keeps between messages.
const maxKeptFrame = 64 << 10

// sendLocked writes b as one text message within WriteTimeout; a write that fails or does not
// end in time closes the connection. The deadline is the connection's one timer, armed for the
// write and stopped after it (a write runs under wmu, so one at a time): coder/websocket is
// given no context deadline, which would cost a context, its timer and a context.AfterFunc
// registration per message. When the timer fires, CloseNow closes the socket, which ends the
// blocked write with an error, as coder/websocket itself does when a write's context ends.
// c.wmu is held.
func (c *wsConn) sendLocked(b []byte) error {
	if c.wtimer == nil {
		c.wtimer = time.AfterFunc(c.t.cfg.WriteTimeout, c.writeTimedOut)
	} else {
		c.wtimer.Reset(c.t.cfg.WriteTimeout)
	}
	err := c.conn.Write(context.Background(), websocket.MessageText, b)
	c.wtimer.Stop()
	if err != nil {
		c.cancel()
		_ = c.conn.CloseNow()
		return err
	}
	return nil
}

// writeTimedOut ends a connection whose write did not end within WriteTimeout.
func (c *wsConn) writeTimedOut() {
	c.cancel()
	_ = c.conn.CloseNow()
}

// close ends the connection with code (1001 instead while the server shuts down). Before the
// upgrade has completed there is nothing to close: Do closes the connection once it has one.
func (c *wsConn) close(code int, reason string) {
	c.mu.Lock()
	conn := c.conn
	if c.closing || conn == nil {
		c.mu.Unlock()
		return
	}
	c.closing = true
	if c.away {
		code, reason = CloseGoingAway, "server shutting down"
	}
	c.mu.Unlock()
	c.cancel()
	// Close waits for the client's close frame; it is bounded by coder/websocket's own timeout.
	_ = conn.Close(websocket.StatusCode(code), reason)
}

// goingAway is called when the server begins to shut down: the connection closes with 1001.
func (c *wsConn) goingAway() {
	c.mu.Lock()
	c.away = true
	c.mu.Unlock()
	go c.close(CloseGoingAway, "server shutting down")
}

// closeAfterReadError closes the connection after a failed read, with the code it deserves.
func (c *wsConn) closeAfterReadError(ctx context.Context, err error) {
	switch {
	case errors.Is(err, errBadMessage):
		c.close(CloseBadRequest, "invalid message")
	case websocket.CloseStatus(err) != -1, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		_ = c.conn.CloseNow() // the client closed
	case ctx.Err() != nil:
		c.close(CloseGoingAway, "server shutting down") // the connection's context ended
	default:
		var tooBig *websocket.CloseError
		if errors.As(err, &tooBig) {
			_ = c.conn.CloseNow()
			return
		}
		if strings.Contains(err.Error(), "read limited") {
			c.close(int(websocket.StatusMessageTooBig), "message too big")
			return
		}
		c.t.cfg.Log.DebugContext(ctx, "websocket read failed", "err", err)
		_ = c.conn.CloseNow()
	}
}

// keepAlive pings (graphql-transport-ws) or sends keep-alives (graphql-ws) every PingInterval,
// and closes a graphql-transport-ws client that has not answered a ping within two intervals.
func (c *wsConn) keepAlive(ctx context.Context) {
	tick := time.NewTicker(c.t.ws.PingInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if c.legacy() {
			if c.write(wsMessage{Type: "ka"}) != nil {
				return
			}
			continue
		}
		c.mu.Lock()
		silent := time.Since(c.pongAt)
		c.mu.Unlock()
		if silent > 2*c.t.ws.PingInterval {
			c.close(CloseGoingAway, closeMissedPongReason)
			return
		}
		if c.write(wsMessage{Type: "ping"}) != nil {
			return
		}
	}
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// originPolicy decides which browser origins may open a connection.
type originPolicy struct {
	any     bool
	allowed map[string]bool // "scheme://host[:port]", lower case
}

func newOriginPolicy(origins []string) originPolicy {
	p := originPolicy{allowed: map[string]bool{}}
	for _, o := range origins {
		o = strings.TrimSuffix(strings.ToLower(strings.TrimSpace(o)), "/")
		switch o {
		case "":
		case "*":
			p.any = true
		default:
			p.allowed[o] = true
		}
	}
	return p
}

func (p originPolicy) allows(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || p.any {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true // same origin
	}
	return p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)]
}
