package graph

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/live"
)

// WebSocketConfig configures GraphQL over WebSocket on /query: the graphql-transport-ws
// subprotocol and the legacy graphql-ws one (chosen when a client names neither).
type WebSocketConfig struct {
	// AllowedOrigins lists the browser origins ("https://app.example.com") that may open a
	// connection besides the server's own; "*" allows any. A request without an Origin header
	// (not a browser) is always allowed: it carries its token in connection_init, not in a cookie.
	AllowedOrigins []string
	// InitTimeout is how long a client has to send connection_init. Default 10s.
	InitTimeout time.Duration
	// PingInterval is how often the server pings (graphql-transport-ws) or sends keep-alives
	// (graphql-ws). A graphql-transport-ws client that does not answer within two intervals is
	// disconnected. Default 15s.
	PingInterval time.Duration
	// ReadLimit is the largest message accepted from a client, in bytes. Default 64 KiB.
	ReadLimit int64
	// MaxSubscriptions caps the messageAdded subscriptions running at once on one connection;
	// one more is refused with RATE_LIMITED. Default 100.
	MaxSubscriptions int
}

// Defaults for WebSocketConfig.
const (
	DefaultWebSocketInitTimeout  = 10 * time.Second
	DefaultWebSocketPingInterval = 15 * time.Second
	DefaultWebSocketReadLimit    = 64 << 10
	DefaultMaxSubscriptions      = 100
)

// Close codes of graphql-transport-ws and RFC 6455 that the server sends.
const (
	closeUnauthorized = 4401 // graphql-transport-ws: Unauthorized
	closeGoingAway    = 1001 // RFC 6455: the server is going away
	closeProtocol     = 1002 // RFC 6455: protocol error
)

// websocketTransport is gqlgen's transport.Websocket with what a public server needs around it:
// the Origin check, the viewer from connection_init, and a going-away close on shutdown.
type websocketTransport struct {
	ws      transport.Websocket
	origins originPolicy
	live    *live.Hub
	maxSubs int32
}

func newWebsocketTransport(cfg HandlerConfig) *websocketTransport {
	c := cfg.WebSocket
	if c.InitTimeout <= 0 {
		c.InitTimeout = DefaultWebSocketInitTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultWebSocketPingInterval
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = DefaultWebSocketReadLimit
	}
	if c.MaxSubscriptions <= 0 {
		c.MaxSubscriptions = DefaultMaxSubscriptions
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	readLimit := c.ReadLimit
	return &websocketTransport{
		ws: transport.Websocket{
			Implementation:        websocketImplementation{},
			InitFunc:              websocketInit(cfg.Keys),
			InitTimeout:           c.InitTimeout,
			KeepAlivePingInterval: c.PingInterval, // graphql-ws: "ka" messages
			PingPongInterval:      c.PingInterval, // graphql-transport-ws: ping, and a pong is due
			PayloadReadLimit:      &readLimit,
			ErrorFunc: func(ctx context.Context, err error) {
				if !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
					log.DebugContext(ctx, "websocket error", "err", err)
				}
			},
		},
		origins: newOriginPolicy(c.AllowedOrigins),
		live:    cfg.Live,
		maxSubs: int32(c.MaxSubscriptions),
	}
}

// Supports reports whether r asks for a protocol upgrade.
func (t *websocketTransport) Supports(r *http.Request) bool { return t.ws.Supports(r) }

// Do serves one WebSocket connection, for as long as it lasts.
func (t *websocketTransport) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	if !t.origins.allows(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c := &wsConn{maxSubs: t.maxSubs}
	if t.live != nil {
		// On shutdown the connection's context ends, gqlgen closes the socket, and the close
		// code becomes 1001: clients reconnect elsewhere and resume with afterSeq.
		untrack, ok := t.live.TrackConn(func() { c.goingAway.Store(true); cancel() })
		if !ok {
			http.Error(w, "server shutting down", http.StatusServiceUnavailable)
			return
		}
		defer untrack()
	}
	// http.Server's read and write timeouts do not apply: net/http clears the connection's
	// deadlines when it is hijacked, and the tests check that a subscription outlives them.
	t.ws.Do(w, r.WithContext(context.WithValue(ctx, wsConnKey{}, c)), exec)
	// gqlgen returns without closing on a few malformed connection_init messages.
	c.closeIfOpen()
}

type wsConnKey struct{}

// connOf returns the WebSocket connection an operation came in on; nil for other transports.
func connOf(ctx context.Context) *wsConn {
	c, _ := ctx.Value(wsConnKey{}).(*wsConn)
	return c
}

// websocketImplementation accepts connections with coder/websocket (gqlgen's default) and
// returns them wrapped in the connection's wsConn. The Origin was checked before.
type websocketImplementation struct{}

func (websocketImplementation) Accept(w http.ResponseWriter, r *http.Request, opts transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	impl := transport.CoderWebsocketImplementation{}
	impl.AcceptOptions.InsecureSkipVerify = true // websocketTransport.Do checked the Origin
	conn, err := impl.Accept(w, r, opts)
	if err != nil {
		return nil, err
	}
	c := connOf(r.Context())
	if c == nil {
		return conn, nil
	}
	c.set(conn)
	return c, nil
}

// wsConn wraps gqlgen's connection: during shutdown every close becomes 1001 going away. It
// also counts the connection's subscriptions.
type wsConn struct {
	goingAway atomic.Bool
	subs      atomic.Int32
	maxSubs   int32

	mu     sync.Mutex
	conn   transport.WebsocketConn
	closed bool
}

var (
	_ transport.WebsocketConn          = (*wsConn)(nil)
	_ transport.WebsocketReadLimiter   = (*wsConn)(nil)
	_ transport.WebsocketReadDeadliner = (*wsConn)(nil)
)

// acquire takes a subscription slot of the connection, if one is free.
func (c *wsConn) acquire() bool {
	if c.subs.Add(1) > c.maxSubs {
		c.subs.Add(-1)
		return false
	}
	return true
}

func (c *wsConn) release() { c.subs.Add(-1) }

func (c *wsConn) set(conn transport.WebsocketConn) {
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
}

func (c *wsConn) NextReader() (int, io.Reader, error) { return c.conn.NextReader() }
func (c *wsConn) WriteJSON(v any) error               { return c.conn.WriteJSON(v) }
func (c *wsConn) Subprotocol() string                 { return c.conn.Subprotocol() }

func (c *wsConn) WriteClose(code int, reason string) error {
	if c.goingAway.Load() {
		code, reason = closeGoingAway, "server shutting down"
	}
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.conn.WriteClose(code, reason)
}

func (c *wsConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	return c.conn.Close()
}

func (c *wsConn) SetReadLimit(limit int64) {
	if l, ok := c.conn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

func (c *wsConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.conn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}

func (c *wsConn) closeIfOpen() {
	c.mu.Lock()
	conn, closed := c.conn, c.closed
	c.mu.Unlock()
	if conn != nil && !closed {
		_ = c.WriteClose(closeProtocol, "invalid connection_init")
		_ = c.Close()
	}
}

// websocketInit authenticates a connection from connection_init: the payload's Authorization
// (the key in any case) carries "Bearer <JWT>", verified like the HTTP header. Without one, a
// viewer that the Authorization header of the upgrade request established is kept. A
// connection without a valid viewer is refused: graphql-transport-ws closes with 4401
// Unauthorized, graphql-ws sends connection_error and closes.
func websocketInit(keys *auth.Keys) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		if ctx.Err() != nil {
			return ctx, nil, errGoingAway // shutting down: closed with 1001 (see wsConn)
		}
		if v, ok := authorizationValue(payload); ok {
			header, isString := v.(string)
			if !isString || keys == nil {
				return refuse(ctx)
			}
			ctx = keys.Authenticate(ctx, header)
		}
		if _, err := auth.Viewer(ctx); err != nil {
			return refuse(ctx)
		}
		return ctx, nil, nil
	}
}

func refuse(ctx context.Context) (context.Context, *transport.InitPayload, error) {
	ctx = transport.AppendCloseReason(ctx, "Unauthorized")
	ctx = transport.WithWebsocketCloseCode(ctx, closeUnauthorized)
	return ctx, nil, errUnauthorized
}

var errGoingAway = errors.New("server shutting down")

// errUnauthorized is the connection_error message of a refused graphql-ws connection.
var errUnauthorized = errors.New("unauthorized: connection_init must carry a valid Authorization bearer token")

func authorizationValue(p transport.InitPayload) (any, bool) {
	for k, v := range p {
		if strings.EqualFold(k, "Authorization") {
			return v, true
		}
	}
	return nil, false
}

// originPolicy decides which browser origins may open a WebSocket connection.
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
