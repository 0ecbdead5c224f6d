// Package streaming serves GraphQL over long-lived connections: WebSocket, with the
// graphql-transport-ws subprotocol and the legacy graphql-ws one, for queries, mutations and
// subscriptions.
//
// # Every operation is a request
//
// A connection is not a request: each operation that arrives on it is admitted as an HTTP
// request to /query would be, by the same rules (Config):
//
//   - it counts against the viewer's rate limit (RateLimit), before it is parsed;
//   - a query or mutation takes a slot of the admission limit (Admit) while it runs, and has
//     the request deadline (OperationTimeout);
//   - a connection runs at most MaxInFlight queries and mutations and MaxSubscriptions
//     subscriptions at once; one more is refused;
//   - the executor applies the same cost limits, and the same metrics count it;
//   - nothing runs on an expired token: the connection closes with 4403 when the token that
//     authenticated it expires, and no operation starts after that moment.
//
// A refused operation gets an `error` message with a public code (RATE_LIMITED,
// SERVICE_UNAVAILABLE, UNAUTHENTICATED) and no `complete`, as graphql-transport-ws has it for an
// operation that did not execute.
//
// # Bounded
//
// Messages from a client are limited in size (ReadLimit); every write has a deadline
// (WriteTimeout), so a client that never reads costs a blocked write for at most that long and
// then its connection; each user and each client address may hold a bounded number of
// connections (MaxConnsPerUser, MaxConnsPerAddr).
package streaming

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// Config is what the streaming transports share with the HTTP ones: authentication, rate
// limits, admission and deadlines.
type Config struct {
	// Authenticate returns ctx with the viewer an Authorization value ("Bearer <JWT>") names;
	// a value that does not verify leaves ctx without a viewer.
	Authenticate func(ctx context.Context, authorization string) context.Context
	// Viewer returns the viewer of ctx and when its token expires (zero: never), or ok=false
	// when ctx has none.
	Viewer func(ctx context.Context) (id int64, expires time.Time, ok bool)
	// RateLimit charges one request to the client of ctx; a non-nil error is the public refusal
	// (RATE_LIMITED). Nil: no rate limit.
	RateLimit func(ctx context.Context) error
	// Admit takes a slot of the admission limit for a query or mutation; release gives it back.
	// A non-nil error is the public refusal (SERVICE_UNAVAILABLE). Nil: no admission limit.
	Admit func(ctx context.Context) (release func(), err error)
	// OperationTimeout is the deadline of each query and mutation (the request deadline).
	OperationTimeout time.Duration
	// MaxSubscriptions and MaxInFlight cap the subscriptions, and the queries and mutations,
	// running at once on one connection.
	MaxSubscriptions, MaxInFlight int
	// Connected, if set, is told that a connection has authenticated its viewer, before the
	// client hears so, and returns what to call once the connection has ended (presence: a
	// user with an open connection is online). Nil: nobody is told.
	Connected func(ctx context.Context, viewerID int64) (disconnected func())
	// Log receives what clients are not told.
	Log Logger
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

// sink is where an operation's results go: a connection's messages for one operation id.
type sink interface {
	// next sends one result.
	next(resp *graphql.Response) error
	// fail ends the operation with errors it did not execute past (an `error` message).
	fail(errs gqlerror.List) error
	// complete ends the operation normally.
	complete() error
}

// endKey carries an operation's end recorder in its context.
type endKey struct{}

type endRecorder struct {
	mu  sync.Mutex
	err *gqlerror.Error
}

// EndWith records why a subscription's stream ended early; the transport sends it as the
// operation's `error` message instead of `complete`. Resolvers call it just before they close
// their channel. Outside a streaming transport it does nothing.
func EndWith(ctx context.Context, err *gqlerror.Error) {
	if r, ok := ctx.Value(endKey{}).(*endRecorder); ok {
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
	}
}

// runner executes operations for one connection under Config's rules.
type runner struct {
	cfg  Config
	exec graphql.GraphExecutor

	mu       sync.Mutex
	subs     int // subscriptions running
	inFlight int // queries and mutations running
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

// run executes one operation and sends its results to out. It returns when the operation has
// ended (a subscription: when its stream ends or ctx is cancelled).
func (r *runner) run(ctx context.Context, params *graphql.RawParams, out sink, hold *slot) {
	if _, expires, ok := r.cfg.Viewer(ctx); ok && !expires.IsZero() && !time.Now().Before(expires) {
		_ = out.fail(gqlerror.List{publicError("UNAUTHENTICATED", "the token has expired: reconnect with a new one", nil)})
		return
	}
	if r.cfg.RateLimit != nil {
		if err := r.cfg.RateLimit(ctx); err != nil {
			_ = out.fail(gqlerror.List{asPublic(err)})
			return
		}
	}
	ctx = graphql.StartOperationTrace(ctx)
	opCtx, errs := r.exec.CreateOperationContext(ctx, params)
	if errs != nil {
		resp := r.exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs)
		_ = out.fail(resp.Errors)
		return
	}
	ctx = graphql.WithOperationContext(ctx, opCtx)
	subscription := opCtx.Operation.Operation == ast.Subscription
	release, refusal := r.take(subscription)
	if refusal != nil {
		_ = out.fail(gqlerror.List{refusal})
		return
	}
	hold.hold(release)
	defer hold.free()
	if !subscription {
		if r.cfg.Admit != nil {
			done, err := r.cfg.Admit(ctx)
			if err != nil {
				_ = out.fail(gqlerror.List{asPublic(err)})
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
	responses, ctx := r.exec.DispatchOperation(ctx, opCtx)
	for {
		resp := responses(ctx)
		if resp == nil {
			break
		}
		if err := out.next(resp); err != nil {
			return // the connection failed; it is closing
		}
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return // stopped by the client (complete) or the connection: nothing more to say
	}
	end.mu.Lock()
	endErr := end.err
	end.mu.Unlock()
	if endErr != nil {
		_ = out.fail(gqlerror.List{endErr})
		return
	}
	_ = out.complete()
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
	dec := json.NewDecoder(bytesReader(payload))
	dec.UseNumber()
	if err := dec.Decode(&p); err != nil {
		return nil, err
	}
	if p.Query == "" && p.Extensions["persistedQuery"] == nil {
		return nil, errors.New("no query")
	}
	return &p, nil
}
