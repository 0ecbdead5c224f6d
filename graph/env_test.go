package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/internal/httpapi"
	"github.com/threadline/threadline/internal/respcache"
	"github.com/threadline/threadline/internal/testenv"
)

// env is a GraphQL server over a fresh database, reached through PgBouncer, with every
// statement counted: the production wiring (package app) started by app/apptest.
type env struct {
	t      testing.TB
	srv    *apptest.Server
	URL    string        // the server's base URL
	direct *pgxpool.Pool // fixtures and checks, straight to PostgreSQL
	dbase  testenv.Database

	mu         sync.Mutex
	statements []string
	stmtCtxs   []stmtCtx // per statement: what its context carried

	redisURL        string // the server's Redis (the test's own)
	rdb             redis.UniversalClient
	redisRoundTrips testenv.RoundTripCounter
}

type envOptions struct {
	maxConns int32
	// cache puts the Redis history cache in front of the store.
	cache bool
	// respCache adds the response cache (implies cache).
	respCache bool
	// loaderWait is the dataloaders' batching window (default: the loader package's).
	loaderWait time.Duration
	// redisURL is a Redis to share with another env (instances of one deployment).
	redisURL string
	// rateLimit turns the Redis rate limiter on: this many requests per second, as a burst too.
	rateLimit int
	// requestTimeout is each request's deadline (REQUEST_TIMEOUT); 0: none.
	requestTimeout time.Duration
	// limits are the query limits (zero: the defaults).
	limits graph.Limits
	// corsOrigins are the browser origins that may call /query.
	corsOrigins []string
	// redisHook is added to the server's Redis client.
	redisHook redis.Hook
	// trustedOnly runs only the trusted documents (TRUSTED_DOCUMENTS_ONLY).
	trustedOnly bool
}

// stmtCtx is what a statement's context carried: the request's id and the time to its deadline
// (-1 without one).
type stmtCtx struct {
	requestID string
	left      time.Duration
}

func ctxInfo(ctx context.Context) stmtCtx {
	info := stmtCtx{requestID: httpapi.RequestID(ctx), left: -1}
	if d, ok := ctx.Deadline(); ok {
		info.left = time.Until(d)
	}
	return info
}

func newEnv(t testing.TB, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.maxConns == 0 {
		o.maxConns = 8
	}
	if o.respCache {
		o.cache = true
	}
	e := &env{t: t, redisURL: o.redisURL}
	if e.redisURL == "" {
		e.redisURL = testenv.NewRedis(t)
	}
	hooks := redisHooks{&e.redisRoundTrips}
	if o.redisHook != nil {
		hooks = append(hooks, o.redisHook)
	}
	e.srv = apptest.Start(t, apptest.Options{
		RedisURL: e.redisURL,
		Configure: func(c *app.Config) {
			c.DBMaxConns = o.maxConns
			c.AdmissionEnabled = false // load shedding is tested on its own (TestOverload)
			c.CacheEnabled, c.ResponseCacheEnabled = o.cache, o.respCache
			c.LoaderWait = o.loaderWait
			c.RequestTimeout = o.requestTimeout
			c.Limits = o.limits.WithDefaults()
			c.CORSAllowedOrigins = o.corsOrigins
			c.TrustedDocumentsOnly = o.trustedOnly
			if o.rateLimit > 0 {
				c.RateLimitDisabled, c.RateLimit, c.RateLimitBurst = false, o.rateLimit, o.rateLimit
			}
		},
		App: app.Options{
			// No liveness pings: PgBouncer would count them, the tracer cannot see them, and
			// TestPgBouncerCarriesEveryStatement compares the two counts.
			PoolShouldPing: func(context.Context, pgxpool.ShouldPingParams) bool { return false },
			ObserveStatement: func(ctx context.Context, name string, _ time.Duration, _ error) {
				e.mu.Lock()
				e.statements = append(e.statements, name)
				e.stmtCtxs = append(e.stmtCtxs, ctxInfo(ctx))
				e.mu.Unlock()
			},
			RedisHook: hooks,
		},
	})
	e.URL, e.direct, e.dbase = e.srv.URL, e.srv.Direct, e.srv.Database
	e.rdb = e.srv.App.Redis
	return e
}

// redisHooks chains hooks into one.
type redisHooks []redis.Hook

func (hs redisHooks) DialHook(next redis.DialHook) redis.DialHook {
	for i := len(hs) - 1; i >= 0; i-- {
		next = hs[i].DialHook(next)
	}
	return next
}

func (hs redisHooks) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	for i := len(hs) - 1; i >= 0; i-- {
		next = hs[i].ProcessHook(next)
	}
	return next
}

func (hs redisHooks) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	for i := len(hs) - 1; i >= 0; i-- {
		next = hs[i].ProcessPipelineHook(next)
	}
	return next
}

func (e *env) token(userID int64) string { return e.srv.Token(userID) }

// responseCacheStats reads the response cache's counters from /health/cache.
func (e *env) responseCacheStats() respcache.Stats {
	e.t.Helper()
	_, body := e.srv.GetOps("/health/cache")
	var h struct {
		ResponseCache *respcache.Stats `json:"responseCache"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.ResponseCache == nil {
		e.t.Fatalf("/health/cache: %s (%v)", body, err)
	}
	return *h.ResponseCache
}

// resetStatements forgets the statements counted so far.
func (e *env) resetStatements() {
	e.mu.Lock()
	e.statements, e.stmtCtxs = nil, nil
	e.mu.Unlock()
}

func (e *env) statementsSeen() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.statements...)
}

type gqlError struct {
	Message    string         `json:"message"`
	Path       []any          `json:"path"`
	Extensions map[string]any `json:"extensions"`
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []gqlError      `json:"errors"`
}

func (r gqlResponse) codes() []string {
	var out []string
	for _, e := range r.Errors {
		code, _ := e.Extensions["code"].(string)
		out = append(out, code)
	}
	return out
}

// do posts a GraphQL request with the given Authorization header value ("" for none).
func (e *env) do(authz, query string, vars map[string]any) gqlResponse {
	e.t.Helper()
	resp, err := e.doErr(authz, query, vars)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp
}

func (e *env) doErr(authz, query string, vars map[string]any) (gqlResponse, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return gqlResponse{}, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return gqlResponse{}, err
	}
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		return gqlResponse{}, &badResponse{status: res.StatusCode, body: string(raw)}
	}
	return out, nil
}

type badResponse struct {
	status int
	body   string
}

func (b *badResponse) Error() string {
	return "bad response " + http.StatusText(b.status) + ": " + b.body
}

// as is do for a viewer, failing the test on any GraphQL error, and decoding data into out.
func (e *env) as(userID int64, query string, vars map[string]any, out any) {
	e.t.Helper()
	resp := e.do("Bearer "+e.token(userID), query, vars)
	if len(resp.Errors) > 0 {
		e.t.Fatalf("unexpected errors: %+v", resp.Errors)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Data, out); err != nil {
			e.t.Fatalf("decode %s: %v", resp.Data, err)
		}
	}
}

// leaksInternals reports whether an error message speaks of SQL, Redis or Go internals.
func leaksInternals(msg string) bool {
	lower := strings.ToLower(msg)
	for _, s := range []string{"sql", "pg", "redis", "pgx", "runtime", "panic", "goroutine", "constraint", "relation", ".go"} {
		if strings.Contains(lower, s) {
			return true
		}
	}
	return false
}
