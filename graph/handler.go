package graph

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/vektah/gqlparser/v2/ast"
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
	// added after Metrics and before the loaders, so that a hit runs nothing else. May be nil.
	ResponseCache *respcache.Cache
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

// NewHandler returns the GraphQL handler for /query, built with handler.New and only the
// transports and extensions chosen here.
func NewHandler(cfg HandlerConfig) *handler.Server {
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
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		if graphql.HasOperationContext(ctx) && isSubscription(graphql.GetOperationContext(ctx)) {
			viewer, _ := auth.Viewer(ctx)
			ctx = loader.With(ctx, cfg.Loaders.New(viewer))
		}
		return next(ctx)
	})
	srv.SetErrorPresenter(errorPresenter(cfg.Log, cfg.RequestID, cfg.Classify))
	srv.SetRecoverFunc(recoverFunc(cfg.Log, cfg.RequestID))
	return srv
}

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
