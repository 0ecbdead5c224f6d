// Package httpapi is Threadline's HTTP surface: every route in one place (routes.go), the
// middleware (middleware.go), and the health endpoints (health.go).
package httpapi

import (
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"
)

// Config holds what the routes serve.
type Config struct {
	Log *slog.Logger
	// GraphQL serves /query.
	GraphQL http.Handler
	// Playground serves / and its assets. Nil: / answers 404.
	Playground http.Handler
	// App serves the web app at /app and its assets under /app/ (package webapp). Nil: not
	// mounted.
	App http.Handler
	// Ops serves the operations endpoints (NewOpsHandler) on this listener too: in development
	// only; in production they have a listener of their own (OPS_ADDR). Nil: not mounted.
	Ops http.Handler
	// Authenticate wraps the GraphQL handler to put the viewer in the request's context.
	Authenticate func(http.Handler) http.Handler
	// RateLimit wraps the GraphQL handler inside Authenticate, so that it sees the viewer
	// (internal/ratelimit). Nil: no limit.
	RateLimit func(http.Handler) http.Handler
	// Admission wraps the GraphQL handler innermost (internal/admission): inside the request
	// deadline, so that an operation that ran out of time is seen as dropped, and inside the
	// rate limit, so that one client's flood is refused with 429 before it takes the slots of
	// others. Nil: no admission limit.
	Admission func(http.Handler) http.Handler
	// PerOperation reports whether a request to /query is served by a transport that applies
	// the rate limit, admission and deadline to its operation itself (GraphQL over Server-Sent
	// Events, whose operation may outlive any request deadline): RateLimit, Admission and
	// RequestTimeout leave it alone. Nil: none is.
	PerOperation func(*http.Request) bool
	// CORS wraps /query outermost, so that preflight requests are answered before anything
	// else runs (see cors.go). Nil: no CORS headers (browsers allow the same origin only).
	CORS func(http.Handler) http.Handler
	// Checks are the readiness checks of /readyz, each a dependency that must answer.
	Checks []Check
	// MaxBodyBytes limits a request body; larger ones get 413.
	MaxBodyBytes int64
	// RequestTimeout is the deadline given to each GraphQL request (0: none). It reaches SQL and
	// Redis calls through the context.
	RequestTimeout time.Duration
	// Instrument wraps the router itself (metrics by route: the matched pattern is on the
	// request once the router has served it). Nil: none.
	Instrument func(http.Handler) http.Handler
}

// OpsConfig holds what the operations endpoints serve.
type OpsConfig struct {
	Metrics     http.Handler // /metrics (Prometheus)
	CacheHealth http.Handler // /health/cache
}

// opsPaths are the routes of NewOpsHandler.
var opsPaths = []string{"GET /metrics", "GET /health/cache", "/debug/pprof/"}

// NewOpsHandler returns the operations endpoints: /metrics, /health/cache and net/http/pprof
// under /debug/pprof/. They tell a stranger how the server is doing and let anyone profile it:
// serve them on a private listener (OPS_ADDR), never on the public one in production.
func NewOpsHandler(cfg OpsConfig) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(opsPaths[0], cfg.Metrics)
	mux.Handle(opsPaths[1], cfg.CacheHealth)
	mux.HandleFunc(opsPaths[2], pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// NewHandler returns the server's root handler.
func NewHandler(cfg Config, ready *Readiness) http.Handler {
	mux := http.NewServeMux()

	gql := cfg.GraphQL
	if cfg.Admission != nil {
		gql = cfg.Admission(gql)
	}
	if cfg.RateLimit != nil {
		gql = cfg.RateLimit(gql)
	}
	perOperation := cfg.PerOperation
	if perOperation == nil {
		perOperation = func(*http.Request) bool { return false }
	}
	if perRequest := gql; cfg.Admission != nil || cfg.RateLimit != nil {
		gql = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if perOperation(r) {
				cfg.GraphQL.ServeHTTP(w, r)
				return
			}
			perRequest.ServeHTTP(w, r)
		})
	}
	if cfg.Authenticate != nil {
		gql = cfg.Authenticate(gql)
	}
	gql = limitBody(cfg.MaxBodyBytes, withTimeout(cfg.RequestTimeout, perOperation, gql))
	if cfg.CORS != nil {
		gql = cfg.CORS(gql)
	}
	mux.Handle("/query", gql)

	mux.HandleFunc("GET /healthz", healthz)
	mux.Handle("GET /readyz", ready)
	if cfg.Ops != nil {
		for _, p := range opsPaths {
			mux.Handle(p, cfg.Ops)
		}
	}
	if cfg.App != nil {
		mux.Handle("/app", cfg.App)
		mux.Handle("/app/", cfg.App)
	}
	if cfg.Playground != nil {
		mux.Handle("/", cfg.Playground)
	}
	var root http.Handler = mux
	if cfg.Instrument != nil {
		root = cfg.Instrument(mux)
	}
	return requestID(recoverPanics(cfg.Log, root))
}
