package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/internal/apq"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/httpapi"
	"github.com/threadline/threadline/internal/ratelimit"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/respcache"
	"github.com/threadline/threadline/internal/testenv"
)

const testSecret = "graph-test-secret-0123456789"

// env is a GraphQL server over a fresh database, reached through PgBouncer, with every
// statement counted.
type env struct {
	t      testing.TB
	srv    *httptest.Server
	keys   *auth.Keys
	direct *pgxpool.Pool // fixtures and checks, straight to PostgreSQL
	dbase  testenv.Database

	mu         sync.Mutex
	statements []string
	stmtCtxs   []stmtCtx // per statement: what its context carried

	redisURL string // with cache: the test's Redis

	rdb             redis.UniversalClient // with cache: the test's Redis
	history         *cache.History
	respCache       *respcache.Cache
	redisRoundTrips testenv.RoundTripCounter
}

type envOptions struct {
	maxConns int32
	// cache puts the Redis history cache (on a Redis of the test's own) in front of the store.
	cache bool
	// respCache adds the response cache (implies cache).
	respCache bool
	// loaderWait is the dataloaders' batching window (default: the loader package's).
	loaderWait time.Duration
	// redisURL is the Redis the cache (and APQ, rate limits) use instead of a fresh one (implies
	// cache): envs on one Redis are instances sharing it.
	redisURL string
	// rateLimit turns the Redis rate limiter on: this many requests per second, as a burst too.
	rateLimit int
	// apq turns automatic persisted queries on (implies cache).
	apq bool
	// requestTimeout is each request's deadline (httpapi's REQUEST_TIMEOUT); 0: none.
	requestTimeout time.Duration
	// limits are the query limits (zero: the defaults).
	limits graph.Limits
	// corsOrigins mounts the CORS middleware with these origins.
	corsOrigins []string
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
	e := &env{t: t, dbase: testenv.NewDatabase(t)}
	e.direct = dbtest.Open(t, e.dbase.DirectURL)
	pool, err := db.OpenPool(context.Background(), e.dbase.PooledURL, db.PoolConfig{
		MaxConns: o.maxConns,
		// No liveness pings: PgBouncer would count them, the tracer cannot see them, and
		// TestPgBouncerCarriesEveryStatement compares the two counts.
		ShouldPing: func(context.Context, pgxpool.ShouldPingParams) bool { return false },
		Tracer: &db.Tracer{Observe: func(ctx context.Context, name string, _ time.Duration, _ error) {
			e.mu.Lock()
			e.statements = append(e.statements, name)
			e.stmtCtxs = append(e.stmtCtxs, ctxInfo(ctx))
			e.mu.Unlock()
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	var store chat.Store = db.NewStore(pool)
	var history *cache.History
	if o.respCache || o.apq || o.redisURL != "" || o.rateLimit > 0 {
		o.cache = true
	}
	var breaker *redisclient.Breaker
	if o.cache {
		if e.redisURL = o.redisURL; e.redisURL == "" {
			e.redisURL = testenv.NewRedis(t)
		}
		e.rdb, err = redisclient.Open(e.redisURL, redisclient.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.rdb.Close() })
		e.rdb.AddHook(&e.redisRoundTrips)
		breaker = redisclient.NewBreaker(redisclient.BreakerConfig{OpenTimeout: 300 * time.Millisecond})
		history = cache.NewHistory(store, e.rdb, breaker, cache.Config{})
		t.Cleanup(history.Close)
		store = history
		e.history = history
		if o.respCache {
			e.respCache = respcache.New(e.rdb, breaker, respcache.Config{Bypass: history.HasPending})
		}
	}
	service := chat.NewService(store)
	if history != nil {
		service.OnMessageSent(func(ctx context.Context, m chat.Message) { history.Invalidate(ctx, m.ConversationID) })
	}
	if e.respCache != nil {
		service.OnConversationCreated(func(ctx context.Context, _ chat.Conversation, members []int64) {
			e.respCache.InvalidateViewers(ctx, members)
		})
	}
	e.keys, err = auth.NewKeys(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hcfg := graph.HandlerConfig{
		Chat:          service,
		ResponseCache: e.respCache,
		Loaders:       loader.NewFactory(store, loader.Config{Wait: o.loaderWait}),
		Log:           log,
		Limits:        o.limits,
	}
	if o.apq {
		hcfg.PersistedQueries = apq.New(e.rdb, breaker, time.Minute)
	}
	gql := graph.NewHandler(hcfg)
	acfg := httpapi.Config{Log: log, GraphQL: gql, Authenticate: e.keys.Middleware, MaxBodyBytes: 64 << 10, RequestTimeout: o.requestTimeout}
	if o.rateLimit > 0 {
		acfg.RateLimit = ratelimit.Middleware(ratelimit.Config{Redis: e.rdb, Breaker: breaker, Rate: o.rateLimit, Burst: o.rateLimit})
	}
	if o.corsOrigins != nil {
		acfg.CORS = httpapi.CORS(o.corsOrigins)
	}
	h := httpapi.NewHandler(acfg, httpapi.NewReadiness(nil, time.Second))
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) token(userID int64) string {
	tok, err := e.keys.Sign(userID, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
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
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := e.srv.Client().Do(req)
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
