package streaming

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/httptransport"
)

// GraphQL over Server-Sent Events, as the graphql-sse protocol has it in its distinct
// connections mode (github.com/enisdenjo/graphql-sse, PROTOCOL.md): one operation per request,
// a GET with the request in the URL or a POST with a JSON body, whose Accept header asks for
// text/event-stream. The response is the operation's event stream:
//
//	event: next
//	data: {"data":{"messageAdded":{…}}}
//
//	event: complete
//	data:
//
// # Before the stream, and in it
//
// A request that is not a GraphQL request the server takes (a bad body, no query, another
// Content-Type, a body too large, a mutation in a GET) is answered as GraphQL over HTTP answers
// it, with a JSON body and 400, 405, 413 or 415. So is an operation refused by a limit of the
// server before it ran, with the status a plain request refused for the same reason gets: 429
// for the rate limit and for too many connections of the user or the address, 503 for the
// admission limit and during a shutdown, 401 for a token expired (all with Retry-After where a
// retry may succeed). Once the operation is admitted and dispatched the response is the stream
// (200): results are `next` events and the end a `complete` event. What the executor refuses
// before execution (parse and validation errors, a limit of the document gate, the cost limit,
// an unknown persisted query) comes as one `next` with the errors, then `complete`, as the
// protocol requires of validation errors: EventSource would tell a page nothing of a 400.
//
// A subscription whose stream fails (a subscriber cut off for falling behind: RATE_LIMITED with
// afterSeq) ends with a last `next` carrying the error, then `complete`; so does a stream whose
// token expires (UNAUTHENTICATED). A shutdown ends every stream without `complete`: clients
// (graphql-sse, EventSource) take that for a dropped connection, reconnect, and resume with
// afterSeq. A client ends a subscription by closing the request.
//
// # Bounded
//
// An event stream counts as one connection of its user and of its client address, against the
// caps that WebSocket connections count against too (Config.MaxConnsPerUser,
// MaxConnsPerAddr), and as one subscription. It is charged to the rate limit as soon as its
// token is known, before its body is read, and its operation is admitted by the runner like one
// over WebSocket (admission, deadline), so the HTTP middleware that does this for plain
// requests leaves event streams alone (IsEventStream). Every write has WriteTimeout: a
// client that does not read loses its stream. An idle stream gets a comment (":") every
// KeepAlive, so that proxies do not close it and a client that vanished is found out. The
// stream outlives the server's timeouts: net/http clears the read deadline once the request has
// been read, and the stream sets a write deadline before each write. Its connection is not
// reused after it (Connection: close), since its last deadline was the stream's.
//
// # Authentication
//
// As on every transport: an Authorization header with a bearer token. Browsers' EventSource
// cannot send one, so a GET event stream may carry the token in the URL parameter access_token
// instead (httptransport.AccessTokenParam): only a GET, only one, and not beside an
// Authorization header; it is taken out of the request's URL before anything else reads it.

// EventStreamConfig configures GraphQL over Server-Sent Events, beside the Config it shares
// with WebSocket.
type EventStreamConfig struct {
	// KeepAlive is how often a stream gets a comment line, whatever else it carries.
	KeepAlive time.Duration
}

// DefaultKeepAlive is the default of EventStreamConfig.KeepAlive: well within the idle timeouts
// of common proxies and load balancers (60 s), as often as the WebSocket ping.
const DefaultKeepAlive = 15 * time.Second

// EventStream is the gqlgen transport for GraphQL over Server-Sent Events on /query. Add it
// before the GET and POST transports, which would serve its requests as JSON.
type EventStream struct {
	*shared
	es EventStreamConfig
}

var _ graphql.Transport = (*EventStream)(nil)

func newEventStream(sh *shared, es EventStreamConfig) *EventStream {
	if es.KeepAlive <= 0 {
		es.KeepAlive = DefaultKeepAlive
	}
	return &EventStream{shared: sh, es: es}
}

// IsEventStream reports whether r asks for GraphQL over Server-Sent Events: a GET or a POST,
// not a WebSocket upgrade, whose Accept header asks for text/event-stream
// (httptransport.AcceptsEventStream). The transport admits its operation itself: the HTTP
// middleware of rate limit, admission and request deadline lets such a request through.
func IsEventStream(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodPost) && r.Header.Get("Upgrade") == "" &&
		httptransport.AcceptsEventStream(r.Header.Values("Accept"))
}

// Supports reports whether r asks for an event stream (IsEventStream).
func (t *EventStream) Supports(r *http.Request) bool { return IsEventStream(r) }

// Why a stream's context ended, when the transport ended it.
var (
	errGoingAway   = errors.New("the server is shutting down")
	errExpired     = errors.New("the token expired")
	errWriteFailed = errors.New("a write to the client failed")
)

// Do serves one event stream, for as long as its operation lasts.
func (t *EventStream) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	r, rerr := t.takeAccessToken(r)
	if rerr != nil {
		httptransport.Fail(w, r, exec, rerr.Status, rerr.Message)
		return
	}
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	out := &eventSink{w: w, rc: http.NewResponseController(w), timeout: t.cfg.WriteTimeout, cancel: cancel}
	addr := clientAddr(r)
	run := &runner{cfg: &t.cfg, exec: exec, addr: addr}
	// Charged before its body is read, as the HTTP middleware charges a request: requests that
	// turn out not to be GraphQL requests count too.
	if refusal := run.charge(ctx); refusal != nil {
		_ = out.refuse(statusOf(refusal), refusal)
		return
	}
	var params *graphql.RawParams
	if r.Method == http.MethodGet {
		params, rerr = httptransport.ReadGET(r)
	} else {
		params, rerr = httptransport.ReadPOST(r)
	}
	if rerr != nil {
		httptransport.Fail(w, r, exec, rerr.Status, rerr.Message)
		return
	}

	if !t.addrs.take(addr, t.cfg.MaxConnsPerAddr) {
		_ = out.refuse(http.StatusTooManyRequests, publicError("RATE_LIMITED", "too many connections from this address", map[string]any{"retryAfter": connRetryAfter}))
		return
	}
	defer t.addrs.give(addr)
	if id, _, ok := t.cfg.Viewer(ctx); ok {
		user := strconv.FormatInt(id, 10)
		if !t.users.take(user, t.cfg.MaxConnsPerUser) {
			_ = out.refuse(http.StatusTooManyRequests, publicError("RATE_LIMITED", "too many connections for this user", map[string]any{"retryAfter": connRetryAfter}))
			return
		}
		defer t.users.give(user)
		if f := t.cfg.Connected; f != nil { // an open stream keeps its viewer online
			defer f(ctx, id)()
		}
	}
	untrack, ok := t.trackConn(func() { cancel(errGoingAway) })
	if !ok {
		_ = out.refuse(http.StatusServiceUnavailable, shuttingDown())
		return
	}
	defer untrack()
	if _, expires, ok := t.cfg.Viewer(ctx); ok && !expires.IsZero() {
		stop := time.AfterFunc(time.Until(expires), func() { cancel(errExpired) })
		defer stop.Stop()
	}

	stopKeepAlive := t.keepAlive(ctx, out)
	run.run(ctx, operation{params: params, out: out, hold: &slot{}, safe: r.Method == http.MethodGet, charged: true})
	stopKeepAlive()
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errExpired):
		_ = out.refuse(http.StatusUnauthorized, errTokenExpired())
	case errors.Is(cause, errGoingAway):
		out.goneAway()
	case errors.Is(cause, errWriteFailed):
		t.cfg.Log.DebugContext(ctx, "event stream: a write to the client failed; the stream is closed")
	}
}

// connRetryAfter is when a client refused for too many connections may try again, in seconds.
const connRetryAfter = 10

func shuttingDown() *gqlerror.Error {
	return publicError("SERVICE_UNAVAILABLE", "the server is shutting down: retry", map[string]any{"retryAfter": 1})
}

// takeAccessToken takes the access_token parameter out of the URL of r, so that nothing
// downstream reads it, and returns r with the viewer it names in its context. Only a GET may
// carry one, once, and not beside an Authorization header.
func (t *EventStream) takeAccessToken(r *http.Request) (*http.Request, *httptransport.RequestError) {
	if r.URL.RawQuery == "" {
		return r, nil
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	tokens, found := q[httptransport.AccessTokenParam]
	if err != nil || !found {
		return r, nil // a malformed query string is ReadGET's to refuse
	}
	q.Del(httptransport.AccessTokenParam)
	u := *r.URL
	u.RawQuery = q.Encode()
	r = r.WithContext(r.Context())
	r.URL, r.RequestURI = &u, u.RequestURI()
	switch {
	case r.Method != http.MethodGet:
		return r, &httptransport.RequestError{Status: http.StatusBadRequest, Message: httptransport.AccessTokenRefusal}
	case len(tokens) != 1 || tokens[0] == "":
		return r, &httptransport.RequestError{Status: http.StatusBadRequest, Message: "access_token must be given once, not empty"}
	case r.Header.Get("Authorization") != "":
		return r, &httptransport.RequestError{Status: http.StatusBadRequest, Message: "send the token in the Authorization header or in access_token, not both"}
	}
	if t.cfg.Authenticate != nil {
		r = r.WithContext(t.cfg.Authenticate(r.Context(), "Bearer "+tokens[0]))
	}
	return r, nil
}

// keepAlive writes a comment to the stream every KeepAlive until ctx ends or stop is called;
// stop returns once it writes no more.
func (t *EventStream) keepAlive(ctx context.Context, out *eventSink) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(t.es.KeepAlive)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-done:
				return
			case <-tick.C:
			}
			if out.ping() != nil {
				return
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// eventSink writes one operation's results as an event stream. Until the operation is running
// the response is not committed: a refusal is a plain HTTP answer.
type eventSink struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	cancel  context.CancelCauseFunc

	mu       sync.Mutex
	started  bool   // the response is the event stream: its header has been sent
	finished bool   // the operation's end has been written (or refused): nothing more is
	broken   bool   // a write failed
	body, ev []byte // buffers of the last event: its response, and the event
}

var _ sink = (*eventSink)(nil)

var errBroken = errors.New("event stream: broken")

// The bytes of the stream that never change: the comment that opens it and keeps it alive, and
// the complete event. An event carries a data line even when it has no data: EventSource
// dispatches no event without one.
var (
	keepAliveComment = []byte(":\n\n")
	completeEvent    = []byte("event: complete\ndata:\n\n")
)

func (s *eventSink) refuse(status int, err *gqlerror.Error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil
	}
	if s.started {
		return s.endWith(&graphql.Response{Errors: gqlerror.List{err}})
	}
	s.finished = true
	h := s.w.Header()
	if secs, ok := retryAfter(err); ok {
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	if status == http.StatusMethodNotAllowed {
		h.Set("Allow", http.MethodPost)
	}
	body, encErr := httptransport.AppendResponse(nil, &graphql.Response{Errors: gqlerror.List{err}})
	if encErr != nil {
		return encErr
	}
	httptransport.WriteEncoded(s.w, httptransport.JSON, status, body)
	return nil
}

func (s *eventSink) reject(resp *graphql.Response) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil
	}
	return s.endWith(resp)
}

func (s *eventSink) running() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.start()
}

func (s *eventSink) next(resp *graphql.Response) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return errBroken
	}
	return s.event("next", resp)
}

// nextDirect sends d.Data as next does a response with data alone: verbatim (an event stream
// does not escape data, so d.Escaped is not for it).
func (s *eventSink) nextDirect(d DirectData) error {
	return s.next(&graphql.Response{Data: d.Data})
}

func (s *eventSink) end(err *gqlerror.Error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil
	}
	return s.endWith(&graphql.Response{Errors: gqlerror.List{err}})
}

func (s *eventSink) complete() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.finished {
		return nil
	}
	if err := s.start(); err != nil {
		return err
	}
	s.finished = true
	return s.write(completeEvent)
}

// ping writes a keep-alive comment to a running stream; before the stream starts and after it
// ends it does nothing.
func (s *eventSink) ping() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.finished {
		return nil
	}
	return s.write(keepAliveComment)
}

// goneAway ends a stream the shutdown ended: a stream not yet started is refused with 503; a
// running one simply ends, without complete, so that its client reconnects.
func (s *eventSink) goneAway() {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	if !started {
		_ = s.refuse(http.StatusServiceUnavailable, shuttingDown())
	}
}

// endWith sends resp as the last next, then complete. s.mu is held.
func (s *eventSink) endWith(resp *graphql.Response) error {
	if err := s.event("next", resp); err != nil {
		return err
	}
	s.finished = true
	return s.write(completeEvent)
}

// start sends the header of the stream and its first comment. s.mu is held.
func (s *eventSink) start() error {
	if s.started {
		return nil
	}
	s.started = true
	h := s.w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no") // nginx: pass each event on at once
	h.Set("Connection", "close")
	h.Del("Content-Length")
	s.w.WriteHeader(http.StatusOK)
	return s.write(keepAliveComment)
}

// event writes one event carrying resp. s.mu is held.
func (s *eventSink) event(name string, resp *graphql.Response) error {
	if err := s.start(); err != nil {
		return err
	}
	body, err := httptransport.AppendResponse(s.body[:0], resp)
	if err != nil {
		return err
	}
	ev := appendEvent(s.ev[:0], name, body)
	err = s.write(ev)
	if cap(body)+cap(ev) <= maxKeptBuffer {
		s.body, s.ev = body, ev
	}
	return err
}

// maxKeptBuffer bounds the buffers a stream keeps between events.
const maxKeptBuffer = 64 << 10

// write sends b and flushes it, within the write deadline; a failure breaks the stream and ends
// its operation. s.mu is held.
func (s *eventSink) write(b []byte) error {
	if s.broken {
		return errBroken
	}
	_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	_, err := s.w.Write(b)
	if err == nil {
		err = s.rc.Flush()
	}
	if err != nil {
		s.broken = true
		s.cancel(errWriteFailed)
	}
	return err
}

// appendEvent appends an event named name with data to dst: one data line per line of data
// (compact JSON has none but the one, and a line break would end the field), then the blank
// line that dispatches the event.
func appendEvent(dst []byte, name string, data []byte) []byte {
	dst = append(dst, "event: "...)
	dst = append(dst, name...)
	dst = append(dst, '\n')
	for {
		line, rest, more := bytes.Cut(data, []byte{'\n'})
		dst = append(dst, "data: "...)
		dst = append(dst, bytes.TrimSuffix(line, []byte{'\r'})...)
		dst = append(dst, '\n')
		if !more {
			break
		}
		data = rest
	}
	return append(dst, '\n')
}

// retryAfter reads extensions.retryAfter, in seconds, of a refusal.
func retryAfter(err *gqlerror.Error) (int, bool) {
	switch v := err.Extensions["retryAfter"].(type) {
	case int:
		return v, true
	case int64:
		return int(v), true
	case float64:
		return int(v), true
	}
	return 0, false
}
