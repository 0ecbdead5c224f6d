package graph

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/document"
	"github.com/threadline/threadline/graph/httptransport"
	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/streaming"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/live"
	"github.com/threadline/threadline/internal/respcache"
	"github.com/threadline/threadline/internal/typing"
)

// HandlerConfig configures the GraphQL handler.
type HandlerConfig struct {
	Chat    *chat.Service
	Loaders *loader.Factory
	Log     *slog.Logger
	// Introspection enables __schema and __type queries.
	Introspection bool
	// RequestID returns the id of the request in ctx, for error logs. May be nil.
	RequestID func(ctx context.Context) string
	// Metrics counts and times operations and counts errors (internal/metrics). It is added
	// before every other extension, so that it times them too. May be nil.
	Metrics graphql.HandlerExtension
	// ResponseCache answers repeated queries with stored responses (internal/respcache). It is
	// added after Metrics and before the loaders, so that a hit runs nothing else; over HTTP a
	// hit is answered before gqlgen runs (Handler.ServeHTTP). Its Config.Salt must be
	// ResponseCacheSalt of this configuration. May be nil.
	ResponseCache *respcache.Cache
	// ObserveOperation counts and times an operation answered before the executor (a
	// response-cache hit over HTTP), as Metrics counts those it sees. May be nil.
	ObserveOperation func(name, typ string, took time.Duration)
	// Live serves messageAdded subscriptions; nil: they answer INTERNAL_SERVER_ERROR.
	Live *live.Hub
	// Typing serves setTyping and typing subscriptions (Conversation.typing and User.online
	// read through the loaders); nil: they answer INTERNAL_SERVER_ERROR.
	Typing *typing.Service
	// Streaming is what GraphQL over WebSocket and over Server-Sent Events share: the same
	// authentication, rate limit, admission and deadline as HTTP requests, per operation; write
	// deadlines; caps on the connections of a user and of an address; shutdown.
	Streaming streaming.Config
	// WebSocket configures GraphQL over WebSocket (graphql-transport-ws and graphql-ws).
	WebSocket streaming.WebSocketConfig
	// EventStream configures GraphQL over Server-Sent Events (graphql-sse, distinct
	// connections).
	EventStream streaming.EventStreamConfig
	// Mutations bound the writes of one operation.
	Mutations MutationLimits
	// Limits bound the cost of an operation and the size and shape of a document
	// (graph/limits.go, graph/document); zero fields take the defaults.
	Limits Limits
	// FieldSuggestions lets validation errors suggest names ("Did you mean …?"), which tells
	// a stranger the schema: development only.
	FieldSuggestions bool
	// Classify maps an error that is not public by itself to a public one when it means
	// something a client can act on (db.Unavailable: no connection in time, retry); nil for
	// the others, which are internal. May be nil.
	Classify func(error) *apperr.Error
	// PersistedQueries stores automatic persisted queries (internal/apq). Nil: APQ off.
	PersistedQueries graphql.Cache[string]
	// PersistedQueryBytes is the longest document PersistedQueries takes; zero:
	// document.DefaultPersistedQueryBytes.
	PersistedQueryBytes int
	// TrustedDocuments is the trusted-document manifest, which answers persisted-query hashes
	// first; nil: document.Trusted(), this repository's clients.
	TrustedDocuments document.Manifest
	// TrustedOnly runs only the documents of TrustedDocuments.
	TrustedOnly bool
	// DocumentCache bounds the cache of validated documents; zero fields take the defaults.
	DocumentCache document.CacheConfig
}

// Handler serves /query: gqlgen's server (built with handler.New and only the transports and
// extensions chosen here), and in front of it the response cache's hits over HTTP.
type Handler struct {
	srv     *handler.Server
	gate    *document.Gate
	cache   *respcache.Cache
	observe func(name, typ string, took time.Duration)
}

// NewHandler returns the GraphQL handler for /query.
func NewHandler(cfg HandlerConfig) *Handler {
	limits := cfg.Limits.WithDefaults()
	// The schema served lacks @defer (and @stream): responses are sent whole, and
	// introspection shows the directives of schema.graphql.
	schema := document.WithoutIncrementalDelivery(NewExecutableSchema(Config{}).Schema())
	srv := handler.New(NewExecutableSchema(Config{
		Schema: schema, Resolvers: &Resolver{Chat: cfg.Chat, Live: cfg.Live, Typists: cfg.Typing}, Complexity: complexityRoot(),
	}))
	trusted := cfg.TrustedDocuments
	if trusted == nil {
		trusted = document.Trusted()
	}
	// Every document passes the gate before gqlgen sees it: persisted and trusted documents,
	// size, parsing, limits, validation. gqlgen finds what it admitted in the query cache and
	// never parses or validates a document itself (graph/document).
	gate, err := document.New(document.Config{
		Schema: schema, Limits: limits.document(), Introspection: cfg.Introspection,
		FieldSuggestions: cfg.FieldSuggestions, Trusted: trusted, TrustedOnly: cfg.TrustedOnly,
		PersistedQueries: cfg.PersistedQueries, PersistedQueryBytes: cfg.PersistedQueryBytes,
		Cache: cfg.DocumentCache,
	})
	if err != nil {
		panic(err) // only a nil schema fails
	}
	// Subscriptions, and any other operation, over WebSocket and over Server-Sent Events
	// (graph/streaming). The event stream goes first: its requests are GETs and POSTs too.
	ws, events := streaming.New(cfg.Streaming, cfg.WebSocket, cfg.EventStream)
	srv.AddTransport(events)
	// GraphQL over HTTP as its specification says: media types, status codes, no GET mutations.
	srv.AddTransport(httptransport.GET{})
	srv.AddTransport(httptransport.POST{})
	srv.AddTransport(httptransport.Methods{}) // OPTIONS, and 405 for other methods
	srv.AddTransport(ws)
	srv.SetQueryCache(gate.QueryCache())
	srv.SetParserTokenLimit(limits.Tokens) // unused while the gate admits every document
	srv.SetDisableSuggestion(!cfg.FieldSuggestions)
	if cfg.Metrics != nil {
		srv.Use(cfg.Metrics)
	}
	srv.Use(mutationLimits{cfg.Mutations})
	// Before the response cache and the resolvers: a refused operation runs nothing.
	srv.Use(gate)
	srv.Use(extension.FixedComplexityLimit(limits.Complexity))
	if cfg.ResponseCache != nil {
		srv.Use(cfg.ResponseCache)
	}
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	}
	srv.AroundOperations(func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		viewer, _ := auth.Viewer(ctx)
		ctx = loader.With(ctx, cfg.Loaders.New(viewer))
		loader.PrefetchOperation(ctx)
		return next(ctx)
	})
	// Each event of a subscription is resolved with loaders of its own: what an earlier event
	// loaded (a conversation's last message, the viewer's reactions) may have changed since.
	// They are built when a resolver first needs them: an event whose shared result another
	// subscriber made (fanout.go) builds none.
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		if graphql.HasOperationContext(ctx) && isSubscription(graphql.GetOperationContext(ctx)) {
			viewer, _ := auth.Viewer(ctx)
			ctx = cfg.Loaders.WithLazy(ctx, viewer)
		}
		return next(ctx)
	})
	srv.SetErrorPresenter(errorPresenter(cfg.Log, cfg.RequestID, cfg.Classify))
	srv.SetRecoverFunc(recoverFunc(cfg.Log, cfg.RequestID))
	return &Handler{srv: srv, gate: gate, cache: cfg.ResponseCache, observe: cfg.ObserveOperation}
}

// ServeHTTP answers a query over HTTP whose response the response cache holds without running
// gqlgen — no operation context, complexity walk or executor — and hands every other request
// to gqlgen (see serveStored).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cache != nil {
		var served bool
		if served, r = h.serveStored(w, r); served {
			return
		}
	}
	h.srv.ServeHTTP(w, r)
}

// serveStored answers r from the response cache if it can, and otherwise returns the request to
// hand to gqlgen: r as it was if it was not decoded, else r carrying what it decoded to
// (httptransport.WithDecoded) and the lookup made if there was one.
//
// Everything outside this handler has run as for any request: request id, CORS, body limit,
// deadline, authentication, presence, rate limit and admission (a hit takes an admission slot,
// as it did in the executor). What the executor would check is checked here, or the request
// goes to gqlgen, which checks it: the request is a GET or POST that GraphQL over HTTP serves
// (not an event stream, not a WebSocket upgrade) and decodes as httptransport.ReadGET and
// ReadPOST decode it; it has a viewer (anonymous requests are never cached); the document gate
// admitted its document before and says so without Redis (document.Gate.Admitted: size,
// parsing, limits, validation, introspection, trusted documents only); the operation it names is
// a query (so a GET never answers a mutation: it goes to gqlgen and gets 405); the cost limit,
// which depends on the variables, is part of the response key (ResponseCacheSalt): a response
// stored under the key was admitted under the same rules. The response is written as
// httptransport.WriteResponse writes an executed one with data and no errors: status 200, the
// media type negotiated from Accept, Content-Length, Vary: Accept, and the body
// {"data": ...}, byte for byte. The operation is counted as the metrics extension counts it.
func (h *Handler) serveStored(w http.ResponseWriter, r *http.Request) (bool, *http.Request) {
	start := time.Now()
	if (r.Method != http.MethodGet && r.Method != http.MethodPost) || r.Header.Get("Upgrade") != "" || streaming.IsEventStream(r) {
		return false, r
	}
	viewer, err := auth.Viewer(r.Context())
	if err != nil || h.cache.Bypassed() {
		return false, r
	}
	var params *graphql.RawParams
	var rerr *httptransport.RequestError
	if r.Method == http.MethodPost {
		params, rerr = httptransport.ReadPOST(r)
	} else {
		params, rerr = httptransport.ReadGET(r)
	}
	// From here on, a miss hands the decoded request on (httptransport.WithDecoded): the
	// transport serves what was decoded here, and never reads the body, which has been read.
	miss := func(r *http.Request) (bool, *http.Request) {
		return false, httptransport.WithDecoded(r, params, rerr)
	}
	if rerr != nil {
		return miss(r)
	}
	query, doc, ok := h.gate.Admitted(params)
	if !ok {
		return miss(r)
	}
	op := doc.Operations.ForName(params.OperationName)
	if op == nil || op.Operation != ast.Query {
		return miss(r)
	}
	key, ok := h.cache.Key(viewer, query, params.OperationName, params.Variables)
	if !ok {
		return miss(r)
	}
	body, ctx := h.cache.Lookup(r.Context(), viewer, key)
	if body == nil {
		return miss(r.WithContext(ctx))
	}
	httptransport.WriteEncoded(w, httptransport.Negotiate(r.Header.Values("Accept")), http.StatusOK, body)
	if h.observe != nil {
		name := params.OperationName
		if name == "" {
			name = op.Name
		}
		h.observe(name, string(ast.Query), time.Since(start))
	}
	return true, r
}

// ResponseCacheSalt names the rules under which a handler admits an operation: the schema it
// serves, the limits of the document gate and the cost limit (limits), introspection, and
// trusted documents only with the manifest (trusted; nil: document.Trusted()). The response
// cache mixes it into its keys (respcache.Config.Salt), so that instances that admit
// differently — during a rolling deploy — never serve each other's stored responses, and a
// hit answered before the executor (Handler.serveStored), which skips the cost limit, is one
// that passed it.
func ResponseCacheSalt(limits Limits, introspection, trustedOnly bool, trusted document.Manifest) string {
	h := sha256.New()
	h.Write([]byte(servedSchemaSDL()))
	fmt.Fprintf(h, "\x00%+v\x00introspection=%v\x00trustedOnly=%v\x00", limits.WithDefaults(), introspection, trustedOnly)
	if trustedOnly {
		if trusted == nil {
			trusted = document.Trusted()
		}
		hashes := make([]string, 0, len(trusted))
		for k := range trusted {
			hashes = append(hashes, k)
		}
		slices.Sort(hashes)
		for _, k := range hashes {
			h.Write([]byte(k))
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// servedSchemaSDL is the schema NewHandler serves, printed.
var servedSchemaSDL = sync.OnceValue(func() string {
	var b bytes.Buffer
	formatter.NewFormatter(&b).FormatSchema(document.WithoutIncrementalDelivery(NewExecutableSchema(Config{}).Schema()))
	return b.String()
})

// errorPresenter maps every error to a public code. Errors of ours (apperr) keep their code and
// message; errors of the GraphQL parser and validator, whose text speaks of the request only,
// keep their message and become BAD_USER_INPUT (or keep a public code gqlgen set, such as
// COMPLEXITY_LIMIT_EXCEEDED); everything else is logged in full and reaches the client as
// "internal error". Every refusal of the document gate (graph/document) is a client error of
// this kind: BAD_USER_INPUT or PERSISTED_QUERY_NOT_FOUND, never logged as internal.
func errorPresenter(log *slog.Logger, requestID func(context.Context) string, classify func(error) *apperr.Error) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		presented := graphql.DefaultErrorPresenter(ctx, err)
		pub := apperr.Public(err)
		if pub == nil && classify != nil {
			if pub = classify(err); pub != nil {
				log.WarnContext(ctx, "graphql field unavailable", "request_id", reqID(ctx, requestID), "path", presented.Path.String(), "err", err)
			}
		}
		if pub != nil {
			return &gqlerror.Error{
				Message: pub.Message, Path: presented.Path, Locations: presented.Locations,
				Extensions: map[string]any{"code": string(pub.Code)},
			}
		}
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			return &gqlerror.Error{
				Message: gqlErr.Message, Path: gqlErr.Path, Locations: gqlErr.Locations,
				Extensions: map[string]any{"code": string(publicRequestCode(gqlErr))},
			}
		}
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			log.WarnContext(ctx, "graphql field aborted", "request_id", reqID(ctx, requestID), "path", presented.Path.String(), "err", err)
		} else {
			log.ErrorContext(ctx, "graphql internal error", "request_id", reqID(ctx, requestID), "path", presented.Path.String(), "err", err)
		}
		return &gqlerror.Error{
			Message: "internal error", Path: presented.Path, Locations: presented.Locations,
			Extensions: map[string]any{"code": string(apperr.Internal)},
		}
	}
}

// publicRequestCode chooses the code of an error raised by gqlgen or gqlparser about the request.
func publicRequestCode(err *gqlerror.Error) apperr.Code {
	if code, ok := err.Extensions["code"].(string); ok {
		switch c := apperr.Code(code); c {
		case apperr.ComplexityLimitExceeded, apperr.PersistedQueryNotFound, apperr.RateLimited, apperr.Unauthenticated:
			return c
		}
	}
	return apperr.BadUserInput
}

func recoverFunc(log *slog.Logger, requestID func(context.Context) string) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.ErrorContext(ctx, "graphql panic", "request_id", reqID(ctx, requestID), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		return errors.New("panic in resolver")
	}
}

func reqID(ctx context.Context, f func(context.Context) string) string {
	if f == nil {
		return ""
	}
	return f(ctx)
}

// isSubscription reports whether the operation is a subscription (a refused document has none).
func isSubscription(op *graphql.OperationContext) bool {
	return op.Operation != nil && op.Operation.Operation == ast.Subscription
}
