// Package streaming serves GraphQL over long-lived connections: WebSocket, with the
// graphql-transport-ws subprotocol and the legacy graphql-ws one, for queries, mutations and
// subscriptions on one connection; and Server-Sent Events, as the graphql-sse protocol's
// distinct connections mode has it, one operation per request (eventstream.go).
//
// # Every operation is a request
//
// A connection is not a request: each operation that arrives on it is admitted as an HTTP
// request to /query would be, by the same rules (Config), in one place (runner.run) for both
// transports:
//
//   - it counts against the rate limit of its viewer, or of its client address when anonymous
//     (RateLimit), before it is parsed;
//   - the executor's document gate and cost limit pass it or refuse it, and the same metrics
//     count it;
//   - a query or mutation takes a slot of the admission limit (Admit) while it runs, and has
//     the request deadline (OperationTimeout);
//   - a WebSocket connection runs at most MaxInFlight queries and mutations and
//     MaxSubscriptions subscriptions at once; one more is refused (an event stream carries one
//     operation);
//   - nothing runs on an expired token: an operation that starts after its token's expiry is
//     refused, and a connection or stream open at that moment is ended (WebSocket: close 4403;
//     event stream: an UNAUTHENTICATED error, then complete).
//
// A refused operation gets its public code (RATE_LIMITED, SERVICE_UNAVAILABLE, UNAUTHENTICATED):
// over WebSocket an `error` message and no `complete`, as graphql-transport-ws has it for an
// operation that did not execute; over an event stream the HTTP status of the same refusal of a
// plain request (429, 503, 401), since nothing has been streamed yet.
//
// # Bounded
//
// Messages from a client are limited in size (ReadLimit); every write has a deadline
// (WriteTimeout), so a client that never reads costs a blocked write for at most that long and
// then its connection; each user and each client address may hold a bounded number of
// connections (MaxConnsPerUser, MaxConnsPerAddr), WebSocket connections and event streams
// counted together. A shutdown sends every connection away (TrackConn): WebSocket closes with
// 1001, an event stream ends without `complete`, and clients reconnect and resume.
package streaming

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/defaults"
)

// Config is what the streaming transports share with the HTTP ones (authentication, rate
// limits, admission and deadlines) and with each other (write deadlines, caps on connections,
// shutdown).
type Config struct {
	// Authenticate returns ctx with the viewer an Authorization value ("Bearer <JWT>") names;
	// a value that does not verify leaves ctx without a viewer.
	Authenticate func(ctx context.Context, authorization string) context.Context
	// Viewer returns the viewer of ctx and when its token expires (zero: never), or ok=false
	// when ctx has none.
	Viewer func(ctx context.Context) (id int64, expires time.Time, ok bool)
	// RateLimit charges one request to the client of ctx: its viewer, or addr (the client's
	// address, without port) when it has none. A non-nil error is the public refusal
	// (RATE_LIMITED). Nil: no rate limit.
	RateLimit func(ctx context.Context, addr string) error
	// Admit takes a slot of the admission limit for a query or mutation; release gives it back.
	// A non-nil error is the public refusal (SERVICE_UNAVAILABLE). Nil: no admission limit.
	Admit func(ctx context.Context) (release func(), err error)
	// OperationTimeout is the deadline of each query and mutation (the request deadline).
	OperationTimeout time.Duration
	// MaxSubscriptions and MaxInFlight cap the subscriptions, and the queries and mutations,
	// running at once on one WebSocket connection.
	MaxSubscriptions, MaxInFlight int
	// Connected, if set, is told that a connection has authenticated its viewer, before the
	// client hears so, and returns what to call once the connection has ended (presence: a
	// user with an open connection is online). Nil: nobody is told.
	Connected func(ctx context.Context, viewerID int64) (disconnected func())
	// WriteTimeout bounds each write to a client: one that does not read loses its connection
	// (or its event stream) after this.
	WriteTimeout time.Duration
	// MaxConnsPerUser and MaxConnsPerAddr cap the connections one user, and one client address,
	// hold at once on this instance, WebSocket connections and event streams together (0: no
	// cap).
	MaxConnsPerUser, MaxConnsPerAddr int
	// TrackConn registers a connection that a shutdown must send away (live.Hub.TrackConn):
	// goAway is called once when the shutdown begins; ok=false refuses the connection. Nil: none
	// is tracked.
	TrackConn func(goAway func()) (untrack func(), ok bool)
	// Log receives what clients are not told.
	Log Logger
}

// Defaults of Config.
const (
	DefaultWriteTimeout     = 10 * time.Second
	DefaultMaxSubscriptions = 100
	DefaultMaxInFlight      = 16
	DefaultMaxConnsPerUser  = 50
	DefaultMaxConnsPerAddr  = 500
)

// withDefaults returns cfg with every zero field that has a default at its default.
func (cfg Config) withDefaults() Config {
	cfg.WriteTimeout = defaults.Positive(cfg.WriteTimeout, DefaultWriteTimeout)
	cfg.MaxSubscriptions = defaults.Positive(cfg.MaxSubscriptions, DefaultMaxSubscriptions)
	cfg.MaxInFlight = defaults.Positive(cfg.MaxInFlight, DefaultMaxInFlight)
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// New returns the streaming transports of one server: GraphQL over WebSocket and over
// Server-Sent Events. They share cfg and one count of the connections of each user and each
// client address; zero fields take the defaults.
func New(cfg Config, ws WebSocketConfig, es EventStreamConfig) (*WebSocket, *EventStream) {
	sh := &shared{cfg: cfg.withDefaults(), users: newCounter(), addrs: newCounter()}
	return newWebSocket(sh, ws), newEventStream(sh, es)
}

// shared is what the transports of one server share.
type shared struct {
	cfg          Config
	users, addrs *counter // connections by user id, and by client address
}

// trackConn registers a connection with cfg.TrackConn, if any.
func (s *shared) trackConn(goAway func()) (untrack func(), ok bool) {
	if s.cfg.TrackConn == nil {
		return func() {}, true
	}
	return s.cfg.TrackConn(goAway)
}

// Logger is the part of slog.Logger the transports use.
type Logger interface {
	DebugContext(ctx context.Context, msg string, args ...any)
	WarnContext(ctx context.Context, msg string, args ...any)
}

// publicError is a refusal sent to a client.
func publicError(code, msg string, ext map[string]any) *gqlerror.Error {
	e := &gqlerror.Error{Message: msg, Extensions: map[string]any{"code": code}}
	for k, v := range ext {
		e.Extensions[k] = v
	}
	return e
}

// asPublic turns an error of a hook into the error sent to the client: a *gqlerror.Error as it
// is, anything else as INTERNAL_SERVER_ERROR.
func asPublic(err error) *gqlerror.Error {
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		return ge
	}
	return publicError("INTERNAL_SERVER_ERROR", "internal error", nil)
}

// statusOf is the HTTP status of a plain request refused with err's code.
func statusOf(err *gqlerror.Error) int {
	code, _ := err.Extensions["code"].(string)
	switch code {
	case "RATE_LIMITED":
		return http.StatusTooManyRequests
	case "SERVICE_UNAVAILABLE":
		return http.StatusServiceUnavailable
	case "UNAUTHENTICATED":
		return http.StatusUnauthorized
	case "INTERNAL_SERVER_ERROR":
		return http.StatusInternalServerError
	}
	return http.StatusBadRequest
}

// errTokenExpired is the refusal of an operation whose token has expired, and the end of a
// stream open when it expires.
func errTokenExpired() *gqlerror.Error {
	return publicError("UNAUTHENTICATED", "the token has expired: reconnect with a new one", nil)
}

// sink is where an operation's results go: a connection's messages for one operation id, or an
// event stream. Each method reports a failed write; the operation then stops.
type sink interface {
	// refuse ends an operation refused before it ran, by a limit of the server, with one public
	// error and the HTTP status a plain request refused for the same reason gets.
	refuse(status int, err *gqlerror.Error) error
	// reject ends an operation the executor refused before it ran: its document or variables
	// (parse and validation errors, a limit of the document gate or the cost limit, an unknown
	// persisted query). resp holds the errors.
	reject(resp *graphql.Response) error
	// running says the operation has been admitted and dispatched: what follows are results.
	running() error
	// next sends one result.
	next(resp *graphql.Response) error
	// nextDirect sends one result with data alone (Direct): the same bytes next sends for a
	// response with d.Data.
	nextDirect(d DirectData) error
	// end ends a subscription whose stream failed (EndWith) instead of completing it.
	end(err *gqlerror.Error) error
	// complete ends the operation normally.
	complete() error
}

// endKey carries an operation's end recorder in its context.
type endKey struct{}

type endRecorder struct {
	mu  sync.Mutex
	err *gqlerror.Error
}

// EndWith records why a subscription's stream ended early; the transport sends it instead of
// a plain completion (WebSocket: as the operation's `error` message; event stream: as a last
// `next` with the error, then `complete`). Resolvers call it just before they close their
// channel. Outside a streaming transport it does nothing.
func EndWith(ctx context.Context, err *gqlerror.Error) {
	if r, ok := ctx.Value(endKey{}).(*endRecorder); ok {
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
	}
}

// DirectData is the data of a result sent without the executor (Direct).
type DirectData struct {
	// Data is the whole of the result's data, as the executor would have written it for the
	// same event.
	Data []byte
	// Escaped is Data HTML-escaped as AppendEscaped escapes it, made once by whoever shares
	// the result among many subscribers, or nil. A transport that escapes data (WebSocket:
	// as encoding/json does) sends it as it is, without scanning Data again; one that sends
	// data verbatim (the event stream) sends Data.
	Escaped []byte
}

// directKey carries a subscription's direct slot in its context while its resolver runs.
type directKey struct{}

// direct is where a subscription's resolver leaves its direct delivery (Direct).
type direct struct {
	next func(ctx context.Context) (data DirectData, ok bool)
}

// Direct lets the subscription whose resolver runs in ctx deliver results without the
// executor: before asking the executor for each next result, the transport calls next. When
// next returns ok, data is the result's data (DirectData), and the transport sends it as a
// result with data alone; data is read before next is called again, and not kept. Otherwise
// next has left the event (if any) to the executor, which the transport asks at once: next
// declines to say how the stream ended, or that ctx is done.
//
// The rules of the operation are the transport's, whichever path a result takes: it was
// admitted before its resolver ran, the connection's token expiry and write deadline apply to
// every write, and results are sent one after another on the operation's own goroutine, in
// the order next and the executor produce them. Only results without errors may be sent
// directly: the executor presents errors. Direct reports whether it was installed (false
// outside a streaming transport's subscription, or after one was installed already).
func Direct(ctx context.Context, next func(ctx context.Context) (data DirectData, ok bool)) bool {
	d, _ := ctx.Value(directKey{}).(*direct)
	if d == nil || d.next != nil {
		return false
	}
	d.next = next
	return true
}

// runner executes the operations of one connection (or event stream) under Config's rules.
type runner struct {
	cfg  *Config
	exec graphql.GraphExecutor
	addr string // the client's address: the rate limit's key when the viewer is anonymous

	mu       sync.Mutex
	subs     int // subscriptions running
	inFlight int // queries and mutations running
}

// operation is one operation for the runner.
type operation struct {
	params *graphql.RawParams
	out    sink
	hold   *slot
	// safe: the operation came in a GET request, which may not carry a mutation (GET is a
	// safe method: GraphQL over HTTP answers a mutation in it with 405).
	safe bool
	// charged: the transport has charged the operation to the rate limit already (charge).
	charged bool
}

// slot is an operation's hold on a per-connection cap. It is given back once, when the
// operation ends or as soon as the client stops it (a client that completes a subscription
// may start another at once, before the first has wound down).
type slot struct {
	mu       sync.Mutex
	release  func()
	released bool
}

// hold records the release of a slot taken; if the slot was freed already, it is released now.
func (s *slot) hold(release func()) {
	s.mu.Lock()
	if s.released {
		s.mu.Unlock()
		release()
		return
	}
	s.release = release
	s.mu.Unlock()
}

// free gives the slot back (once).
func (s *slot) free() {
	s.mu.Lock()
	release := s.release
	s.release, s.released = nil, true
	s.mu.Unlock()
	if release != nil {
		release()
	}
}

// run admits, executes and limits one operation and sends its results to op.out. It returns
// when the operation has ended (a subscription: when its stream ends or ctx is cancelled, in
// which case it sends nothing more).
func (r *runner) run(ctx context.Context, op operation) {
	out := op.out
	if _, expires, ok := r.cfg.Viewer(ctx); ok && !expires.IsZero() && !time.Now().Before(expires) {
		_ = out.refuse(http.StatusUnauthorized, errTokenExpired())
		return
	}
	if !op.charged {
		if refusal := r.charge(ctx); refusal != nil {
			_ = out.refuse(statusOf(refusal), refusal)
			return
		}
	}
	ctx = graphql.StartOperationTrace(ctx)
	opCtx, errs := r.exec.CreateOperationContext(ctx, op.params)
	if errs != nil {
		_ = out.reject(r.exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return
	}
	if op.safe && opCtx.Operation.Operation == ast.Mutation {
		_ = out.refuse(http.StatusMethodNotAllowed, publicError("BAD_USER_INPUT", "GET requests allow queries and subscriptions only: send a mutation with POST", nil))
		return
	}
	ctx = graphql.WithOperationContext(ctx, opCtx)
	subscription := opCtx.Operation.Operation == ast.Subscription
	release, refusal := r.take(subscription)
	if refusal != nil {
		_ = out.refuse(http.StatusTooManyRequests, refusal)
		return
	}
	op.hold.hold(release)
	defer op.hold.free()
	if !subscription {
		if r.cfg.Admit != nil {
			done, err := r.cfg.Admit(ctx)
			if err != nil {
				pub := asPublic(err)
				_ = out.refuse(statusOf(pub), pub)
				return
			}
			defer done()
		}
		if r.cfg.OperationTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, r.cfg.OperationTimeout)
			defer cancel()
		}
	}
	end := &endRecorder{}
	ctx = context.WithValue(ctx, endKey{}, end)
	var d direct
	if subscription {
		ctx = context.WithValue(ctx, directKey{}, &d)
	}
	responses, ctx := r.exec.DispatchOperation(ctx, opCtx)
	if out.running() != nil {
		return // the connection failed; it is closing
	}
	for {
		if d.next != nil && ctx.Err() == nil {
			if data, ok := d.next(ctx); ok {
				if err := out.nextDirect(data); err != nil {
					return // the connection failed; it is closing
				}
				continue
			}
		}
		resp := responses(ctx)
		if resp == nil {
			break
		}
		if err := out.next(resp); err != nil {
			return // the connection failed; it is closing
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return // stopped by the client (complete), the connection or the transport: nothing more to say
	}
	end.mu.Lock()
	endErr := end.err
	end.mu.Unlock()
	if endErr != nil {
		_ = out.end(endErr)
		return
	}
	_ = out.complete()
}

// charge charges one operation to the rate limit of the client of ctx; a refusal is returned as
// the public error.
func (r *runner) charge(ctx context.Context) *gqlerror.Error {
	if r.cfg.RateLimit == nil {
		return nil
	}
	if err := r.cfg.RateLimit(ctx, r.addr); err != nil {
		return asPublic(err)
	}
	return nil
}

// take reserves a subscription or in-flight slot of the connection.
func (r *runner) take(subscription bool) (release func(), refusal *gqlerror.Error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if subscription {
		if r.cfg.MaxSubscriptions > 0 && r.subs >= r.cfg.MaxSubscriptions {
			return nil, publicError("RATE_LIMITED", "too many subscriptions on this connection", map[string]any{"limit": r.cfg.MaxSubscriptions})
		}
		r.subs++
		return func() { r.mu.Lock(); r.subs--; r.mu.Unlock() }, nil
	}
	if r.cfg.MaxInFlight > 0 && r.inFlight >= r.cfg.MaxInFlight {
		return nil, publicError("RATE_LIMITED", "too many operations in flight on this connection", map[string]any{"limit": r.cfg.MaxInFlight})
	}
	r.inFlight++
	return func() { r.mu.Lock(); r.inFlight--; r.mu.Unlock() }, nil
}

// decodeParams decodes the payload of a subscribe (start) message.
func decodeParams(payload json.RawMessage) (*graphql.RawParams, error) {
	var p graphql.RawParams
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, errors.New("no query")
	}
	return &p, nil
}

// counter counts connections per key, up to a cap.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (k *counter) take(key string, limit int) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if limit > 0 && k.n[key] >= limit {
		return false
	}
	k.n[key]++
	return true
}

func (k *counter) give(key string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.n[key]--; k.n[key] <= 0 {
		delete(k.n, key)
	}
}

// clientAddr is the connection's peer address without the port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
