// Command threadline is a GraphQL server for chat conversation history.
//
//	threadline [serve]        serve GraphQL on ADDR (default)
//	threadline migrate        apply database migrations over DATABASE_DIRECT_URL
//	threadline seed [-large]  seed the demo data set (once) or the large load-test set
//	threadline token -user N  print a signed development JWT for user N
//
// Configuration is environment variables only, read here and nowhere else; .env.example lists
// them with their defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/internal/apq"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/httpapi"
	"github.com/threadline/threadline/internal/live"
	"github.com/threadline/threadline/internal/metrics"
	"github.com/threadline/threadline/internal/playground"
	"github.com/threadline/threadline/internal/ratelimit"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/respcache"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "threadline:", err)
		os.Exit(1)
	}
}

// run is the whole program; main only gives it the process's arguments, environment and output.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	switch cmd {
	case "serve":
		tuneGC(getenv, log)
		redisclient.SetLogger(log)
		return serve(ctx, cfg, log, stdout)
	case "migrate":
		if err := requireURL("DATABASE_DIRECT_URL", cfg.DatabaseDirectURL); err != nil {
			return err
		}
		if err := db.Migrate(ctx, cfg.DatabaseDirectURL); err != nil {
			return err
		}
		v, err := db.MigrationVersion(ctx, cfg.DatabaseDirectURL)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "database at migration %d\n", v)
		return nil
	case "seed":
		return seed(ctx, cfg, args, stdout)
	case "token":
		return token(cfg, args, stdout)
	default:
		return fmt.Errorf("unknown command %q (want serve, migrate, seed or token)", cmd)
	}
}

// config is every setting of the server, read once from the environment.
type config struct {
	Env               string // "development" or "production"
	Addr              string
	DatabaseURL       string // through PgBouncer
	DatabaseDirectURL string // straight to PostgreSQL: migrations and seeding
	RedisURL          string
	JWTSecret         string
	JWTJWKSURL        string // an identity provider's JWKS: RS256/ES256 keys (auth.Config.JWKSURL)
	JWTIssuer         string // when set, every token's iss
	JWTAudience       string // when set, in every token's aud
	LogLevel          slog.Level
	LogFormat         string

	DBMaxConns        int32
	DBMinConns        int32
	DBMaxConnLifetime time.Duration
	DBMaxConnIdleTime time.Duration
	DBConnectTimeout  time.Duration

	LoaderWait     time.Duration
	LoaderMaxBatch int

	CacheEnabled         bool
	ResponseCacheEnabled bool
	ResponseCacheTTL     time.Duration
	CacheTTLFirstPage    time.Duration
	CacheTTL             time.Duration
	RedisTimeout         time.Duration
	RedisBreakerFailures uint32
	RedisBreakerOpen     time.Duration

	Introspection     bool
	MaxBodyBytes      int64
	RequestTimeout    time.Duration
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	ShutdownTimeout   time.Duration
	// ShutdownDrainDelay is how long, after SIGTERM, the server keeps serving with /readyz
	// answering 503 (and every response saying Connection: close), so that load balancers take
	// it out of rotation before its listener closes. Part of ShutdownTimeout, not added to it.
	ShutdownDrainDelay time.Duration

	// Query limits (graph.Limits), checked before any resolver runs.
	MaxQueryComplexity int
	MaxQueryDepth      int
	MaxAliases         int
	MaxFields          int
	MaxTokens          int

	// Rate limits per user (per IP address when anonymous), shared through Redis.
	RateLimitDisabled bool
	RateLimit         int // requests per second
	RateLimitBurst    int

	APQTTL time.Duration // automatic persisted queries live this long in Redis

	CORSAllowedOrigins []string // browser origins that may call /query; "*" in development only

	// Live updates over WebSocket.
	WSAllowedOrigins []string // browser origins allowed besides the server's own; "*" in development only
	WSInitTimeout    time.Duration
	WSPingInterval   time.Duration
	SubscriberBuffer int // events a subscriber may have waiting before it is cut off

	DemoUserID int64 // GraphiQL acts as this user in development

	// PprofAddr, when set, serves net/http/pprof on its own listener (never on the public one),
	// for profiling under load: PPROF_ADDR=127.0.0.1:6060.
	PprofAddr string
}

func (c config) development() bool { return c.Env == "development" }

// developmentSecret signs tokens in development when JWT_SECRET is unset. Never in production.
const developmentSecret = "threadline-development-secret-do-not-use-in-production"

func loadConfig(getenv func(string) string) (config, error) {
	e := envReader{getenv: getenv}
	c := config{
		Env:                e.str("APP_ENV", "production"),
		Addr:               e.str("ADDR", ":8080"),
		DatabaseURL:        e.str("DATABASE_URL", ""),
		DatabaseDirectURL:  e.str("DATABASE_DIRECT_URL", ""),
		RedisURL:           e.str("REDIS_URL", ""),
		JWTSecret:          e.str("JWT_SECRET", ""),
		JWTJWKSURL:         e.str("JWT_JWKS_URL", ""),
		JWTIssuer:          e.str("JWT_ISSUER", ""),
		JWTAudience:        e.str("JWT_AUDIENCE", ""),
		LogFormat:          e.str("LOG_FORMAT", "json"),
		DBMaxConns:         int32(e.int("DB_MAX_CONNS", 32)),
		DBMinConns:         int32(e.int("DB_MIN_CONNS", 2)),
		DBMaxConnLifetime:  e.duration("DB_MAX_CONN_LIFETIME", 30*time.Minute),
		DBMaxConnIdleTime:  e.duration("DB_MAX_CONN_IDLE_TIME", 5*time.Minute),
		DBConnectTimeout:   e.duration("DB_CONNECT_TIMEOUT", 5*time.Second),
		LoaderWait:         e.duration("LOADER_WAIT", loader.DefaultWait),
		LoaderMaxBatch:     e.int("LOADER_MAX_BATCH", loader.DefaultMaxBatch),
		CacheEnabled:       e.bool("CACHE_ENABLED", true),
		ResponseCacheTTL:   e.duration("RESPONSE_CACHE_TTL", 60*time.Second),
		CacheTTLFirstPage:  e.duration("CACHE_TTL_FIRST_PAGE", 30*time.Second),
		CacheTTL:           e.duration("CACHE_TTL", 60*time.Second),
		RedisTimeout:       e.duration("REDIS_TIMEOUT", 100*time.Millisecond),
		RedisBreakerOpen:   e.duration("REDIS_BREAKER_OPEN", 2*time.Second),
		MaxBodyBytes:       int64(e.int("MAX_BODY_BYTES", 64<<10)),
		RequestTimeout:     e.duration("REQUEST_TIMEOUT", 10*time.Second),
		ReadHeaderTimeout:  e.duration("HTTP_READ_HEADER_TIMEOUT", 5*time.Second),
		ReadTimeout:        e.duration("HTTP_READ_TIMEOUT", 15*time.Second),
		WriteTimeout:       e.duration("HTTP_WRITE_TIMEOUT", 30*time.Second),
		IdleTimeout:        e.duration("HTTP_IDLE_TIMEOUT", 120*time.Second),
		ShutdownTimeout:    e.duration("SHUTDOWN_TIMEOUT", 20*time.Second),
		ShutdownDrainDelay: e.duration("SHUTDOWN_DRAIN_DELAY", 0),
		DemoUserID:         int64(e.int("DEMO_USER_ID", 1)),
		MaxQueryComplexity: e.int("MAX_QUERY_COMPLEXITY", graph.DefaultMaxComplexity),
		MaxQueryDepth:      e.int("MAX_QUERY_DEPTH", graph.DefaultMaxDepth),
		MaxAliases:         e.int("MAX_ALIASES", graph.DefaultMaxAliases),
		MaxFields:          e.int("MAX_FIELDS", graph.DefaultMaxFields),
		MaxTokens:          e.int("MAX_TOKENS", graph.DefaultMaxTokens),
		RateLimitDisabled:  e.bool("RATE_LIMIT_DISABLED", false),
		RateLimit:          e.int("RATE_LIMIT", ratelimit.DefaultRate),
		RateLimitBurst:     e.int("RATE_LIMIT_BURST", ratelimit.DefaultBurst),
		APQTTL:             e.duration("APQ_TTL", apq.DefaultTTL),
		PprofAddr:          e.str("PPROF_ADDR", ""),
	}
	if c.Env != "development" && c.Env != "production" {
		e.fail("APP_ENV", "must be development or production")
	}
	if c.ShutdownDrainDelay > 0 && c.ShutdownDrainDelay >= c.ShutdownTimeout {
		e.fail("SHUTDOWN_DRAIN_DELAY", "must be shorter than SHUTDOWN_TIMEOUT, which it is part of")
	}
	c.Introspection = e.bool("GRAPHQL_INTROSPECTION", c.development())
	c.WSAllowedOrigins = e.origins("WS_ALLOWED_ORIGINS", c.development())
	// CORS allows the WebSocket origins unless it has a list of its own.
	if c.CORSAllowedOrigins = e.origins("CORS_ALLOWED_ORIGINS", c.development()); c.CORSAllowedOrigins == nil {
		c.CORSAllowedOrigins = c.WSAllowedOrigins
	}
	for _, k := range []struct {
		key string
		v   int
	}{{"RATE_LIMIT", c.RateLimit}, {"RATE_LIMIT_BURST", c.RateLimitBurst}, {"MAX_QUERY_COMPLEXITY", c.MaxQueryComplexity}, {"MAX_QUERY_DEPTH", c.MaxQueryDepth}, {"MAX_ALIASES", c.MaxAliases}, {"MAX_FIELDS", c.MaxFields}, {"MAX_TOKENS", c.MaxTokens}} {
		if k.v < 1 {
			e.fail(k.key, "must be at least 1")
		}
	}
	c.WSInitTimeout = e.duration("WS_INIT_TIMEOUT", graph.DefaultWebSocketInitTimeout)
	c.WSPingInterval = e.duration("WS_PING_INTERVAL", graph.DefaultWebSocketPingInterval)
	if c.SubscriberBuffer = e.int("SUBSCRIBER_BUFFER", live.DefaultBuffer); c.SubscriberBuffer < 1 {
		e.fail("SUBSCRIBER_BUFFER", "must be at least 1")
	}
	c.RedisBreakerFailures = uint32(e.int("REDIS_BREAKER_FAILURES", 5))
	// The response cache records history-cache generations: it needs the history cache.
	c.ResponseCacheEnabled = e.bool("RESPONSE_CACHE_ENABLED", c.CacheEnabled) && c.CacheEnabled
	switch lvl := strings.ToLower(e.str("LOG_LEVEL", "info")); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		e.fail("LOG_LEVEL", "must be debug, info, warn or error")
	}
	if c.LogFormat != "json" && c.LogFormat != "text" {
		e.fail("LOG_FORMAT", "must be json or text")
	}
	if c.JWTSecret == "" && c.development() {
		c.JWTSecret = developmentSecret
	}
	return c, e.err
}

// envReader reads typed settings, collecting the first error.
type envReader struct {
	getenv func(string) string
	err    error
}

func (e *envReader) fail(key, msg string) {
	if e.err == nil {
		e.err = fmt.Errorf("config: %s %s", key, msg)
	}
}

func (e *envReader) str(key, def string) string {
	if v := strings.TrimSpace(e.getenv(key)); v != "" {
		return v
	}
	return def
}

func (e *envReader) int(key string, def int) int {
	v := e.str(key, "")
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		e.fail(key, "must be a non-negative integer")
	}
	return n
}

func (e *envReader) duration(key string, def time.Duration) time.Duration {
	v := e.str(key, "")
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		e.fail(key, "must be a duration such as 250us, 5s or 1m")
	}
	return d
}

func (e *envReader) bool(key string, def bool) bool {
	v := e.str(key, "")
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		e.fail(key, "must be true or false")
	}
	return b
}

// origins reads a comma-separated list of browser origins (scheme://host[:port]); "*" allows
// any origin and is accepted in development only.
func (e *envReader) origins(key string, development bool) []string {
	var out []string
	for _, o := range strings.Split(e.str(key, ""), ",") {
		o = strings.TrimSuffix(strings.TrimSpace(o), "/")
		switch {
		case o == "":
			continue
		case o == "*":
			if !development {
				e.fail(key, `may be "*" only with APP_ENV=development`)
			}
		default:
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
				e.fail(key, "must list origins such as https://app.example.com, separated by commas")
			}
		}
		out = append(out, o)
	}
	return out
}

func requireURL(key, v string) error {
	if v == "" {
		return fmt.Errorf("config: %s is required", key)
	}
	return nil
}

// defaultGOGC is the GC target used when GOGC is not set. The live heap of a serving instance is
// a few megabytes, so at Go's default of 100 the collector runs dozens of times a second under
// load; 400 trades a few more megabytes of heap for a quarter of the collections (measured in
// BenchmarkServerCPU: about 15% less CPU per executed page). GOGC and GOMEMLIMIT, the Go
// runtime's own variables, override it; set GOMEMLIMIT in memory-limited containers.
const defaultGOGC = 400

func tuneGC(getenv func(string) string, log *slog.Logger) {
	gogc := getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(defaultGOGC)
		gogc = strconv.Itoa(defaultGOGC)
	}
	log.Info("garbage collector", "GOGC", gogc, "GOMEMLIMIT", getenv("GOMEMLIMIT"))
}

func newLogger(cfg config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, cfg config, log *slog.Logger, stdout io.Writer) error {
	for _, req := range []struct{ key, v string }{{"DATABASE_URL", cfg.DatabaseURL}, {"REDIS_URL", cfg.RedisURL}, {"JWT_SECRET", cfg.JWTSecret}} {
		if err := requireURL(req.key, req.v); err != nil {
			return err
		}
	}
	keys, err := auth.NewKeys(cfg.JWTSecret)
	if err != nil {
		return err
	}
	// One registry for every metric of the process, served at /metrics. Packages register
	// their own metrics on it (they take a prometheus.Registerer), so tests can use their own.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	appMetrics := metrics.New(reg, metrics.Options{})

	pool, err := db.OpenPool(ctx, cfg.DatabaseURL, db.PoolConfig{
		MaxConns: cfg.DBMaxConns, MinConns: cfg.DBMinConns, MaxConnLifetime: cfg.DBMaxConnLifetime,
		MaxConnIdleTime: cfg.DBMaxConnIdleTime, ConnectTimeout: cfg.DBConnectTimeout,
		Tracer: &db.Tracer{Observe: appMetrics.ObserveStatement},
	})
	if err != nil {
		return err
	}
	defer pool.Close()
	reg.MustRegister(metrics.NewPoolCollector(func() metrics.PoolStats { return pool.Stat() }))
	rdb, err := redisclient.Open(cfg.RedisURL, redisclient.Options{})
	if err != nil {
		return err
	}
	defer rdb.Close()
	breaker := redisclient.NewBreaker(redisclient.BreakerConfig{
		FailureThreshold: cfg.RedisBreakerFailures, OpenTimeout: cfg.RedisBreakerOpen,
		CallTimeout: cfg.RedisTimeout, Log: log, Registerer: reg,
	})

	dbStore := db.NewStore(pool)
	var store chat.Store = dbStore
	var history *cache.History
	if cfg.CacheEnabled {
		history = cache.NewHistory(dbStore, rdb, breaker, cache.Config{
			TTLFirstPage: cfg.CacheTTLFirstPage, TTL: cfg.CacheTTL, Log: log, Registerer: reg,
		})
		defer history.Close()
		store = history
	}
	service := chat.NewService(store)
	if history != nil {
		// After a commit: first the history cache moves to a new generation, then (registered
		// after this) the message is published to live subscribers.
		service.OnMessageSent(func(ctx context.Context, m chat.Message) { history.Invalidate(ctx, m.ConversationID) })
	}
	// Live updates: each committed message is handed to this instance's subscribers and
	// published on Redis for the others'. It reads PostgreSQL itself (dbStore, not the cache)
	// for replays and gap fills.
	hub := live.NewHub(live.Config{Redis: rdb, Store: dbStore, Log: log, Registerer: reg, Buffer: cfg.SubscriberBuffer})
	defer func() { // on early returns; after a graceful shutdown it has nothing left to do
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hub.Close(ctx)
	}()
	service.OnMessageSent(hub.Publish)
	var respCache *respcache.Cache
	if cfg.ResponseCacheEnabled {
		respCache = respcache.New(rdb, breaker, respcache.Config{
			TTL: cfg.ResponseCacheTTL, Bypass: history.HasPending, Log: log, Registerer: reg,
		})
	}
	if respCache != nil {
		// A new conversation changes what its members may see.
		service.OnConversationCreated(func(ctx context.Context, _ chat.Conversation, members []int64) {
			respCache.InvalidateViewers(ctx, members)
		})
	}
	gql := graph.NewHandler(graph.HandlerConfig{
		Chat:          service,
		Loaders:       loader.NewFactory(store, loader.Config{Wait: cfg.LoaderWait, MaxBatch: cfg.LoaderMaxBatch, OnBatch: appMetrics.ObserveBatch}),
		Log:           log,
		Introspection: cfg.Introspection,
		RequestID:     httpapi.RequestID,
		Metrics:       appMetrics.GraphQL(),
		Live:          hub,
		Keys:          keys,
		WebSocket: graph.WebSocketConfig{
			AllowedOrigins: cfg.WSAllowedOrigins, InitTimeout: cfg.WSInitTimeout,
			PingInterval: cfg.WSPingInterval, ReadLimit: cfg.MaxBodyBytes,
		},
		ResponseCache: respCache,
		Limits: graph.Limits{
			Complexity: cfg.MaxQueryComplexity, Depth: cfg.MaxQueryDepth, Aliases: cfg.MaxAliases,
			Fields: cfg.MaxFields, Tokens: cfg.MaxTokens,
		},
		FieldSuggestions: cfg.development(),
		PersistedQueries: apq.New(rdb, breaker, cfg.APQTTL),
	})
	var rateLimit func(http.Handler) http.Handler
	if !cfg.RateLimitDisabled {
		rateLimit = ratelimit.Middleware(ratelimit.Config{
			Redis: rdb, Breaker: breaker, Rate: cfg.RateLimit, Burst: cfg.RateLimitBurst,
			Limited: appMetrics.RateLimited(), FailOpen: appMetrics.RateLimitFailOpen(),
		})
	}
	var cors func(http.Handler) http.Handler
	if len(cfg.CORSAllowedOrigins) > 0 {
		cors = httpapi.CORS(cfg.CORSAllowedOrigins)
	}
	pgCfg := playground.Config{Endpoint: "/query", Title: "Threadline", DefaultQuery: playgroundQuery}
	if cfg.development() {
		tok, err := keys.Sign(cfg.DemoUserID, 30*24*time.Hour)
		if err != nil {
			return err
		}
		pgCfg.DefaultHeaders = fmt.Sprintf(`{"Authorization": "Bearer %s"}`, tok)
	}
	ready := httpapi.NewReadiness([]httpapi.Check{
		{Name: "postgres", Ping: dbStore.Ping},
		{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }},
	}, 2*time.Second)
	root := httpapi.NewHandler(httpapi.Config{
		Log:            log,
		GraphQL:        gql,
		Playground:     playground.Handler(pgCfg),
		Metrics:        promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		CacheHealth:    &cache.Health{History: history, Response: respCache, Redis: rdb, Breaker: breaker},
		Authenticate:   keys.Middleware,
		RateLimit:      rateLimit,
		CORS:           cors,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		RequestTimeout: cfg.RequestTimeout,
		Instrument:     appMetrics.HTTP,
	}, ready)

	srv := &http.Server{
		Handler:           closeWhenStopping(ctx, root),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		ReadTimeout:       cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	fmt.Fprintf(stdout, "threadline: serving on http://%s (GraphiQL at /, GraphQL at /query)\n", ln.Addr())
	log.Info("serving", "addr", ln.Addr().String(), "env", cfg.Env)

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(cfg.PprofAddr, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopPprof()
	}

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	// Shut down, all of it within SHUTDOWN_TIMEOUT: readiness fails first so that load
	// balancers stop routing here, and for SHUTDOWN_DRAIN_DELAY the server keeps serving (every
	// response now closes its connection, see closeWhenStopping); then subscribers are sent
	// away, the listener closes and in-flight requests finish.
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout.String(), "drain", cfg.ShutdownDrainDelay.String())
	ready.Drain()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if cfg.ShutdownDrainDelay > 0 {
		select {
		case <-time.After(cfg.ShutdownDrainDelay):
		case <-shutdownCtx.Done():
		}
	}
	// WebSocket connections are hijacked: Shutdown neither closes nor waits for them. Send them
	// away first, with 1001 going away, so that clients reconnect elsewhere and resume with
	// afterSeq. Messages sent by requests still in flight are still published for others.
	if err := hub.Close(shutdownCtx); err != nil {
		log.Warn("closing live subscriptions", "err", err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		// The deadline passed with requests still running: close their connections, which
		// cancels their contexts and so their SQL and Redis calls, so that the deferred
		// pool.Close (which waits for connections in use) returns at once.
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// closeWhenStopping makes every response close its connection once ctx (the server's life) is
// done: during the drain delay clients still get answers, but no keep-alive connection stays
// open for the moment the listener closes, when a request written on an idle connection could
// be lost. WebSocket upgrades are left alone.
func closeWhenStopping(ctx context.Context, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ctx.Err() != nil && r.Header.Get("Upgrade") == "" {
			w.Header().Set("Connection", "close")
		}
		h.ServeHTTP(w, r)
	})
}

// servePprof serves net/http/pprof on addr, a listener of its own: the profiling endpoints are
// never on the public mux. Bind it to loopback or a private network.
func servePprof(addr string, log *slog.Logger) (stop func(), err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Warn("pprof serving", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

const playgroundQuery = `# Threadline: the demo user's latest conversations and a page of history.
query LatestConversations {
  me { id name }
  conversations(first: 5) {
    edges {
      node {
        id
        title
        messages(limit: 10, offset: 0) {
          items { seq body createdAt sender { name } }
          hasMore
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
`

func seed(ctx context.Context, cfg config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	large := fs.Bool("large", false, "add the load-test data set (1000 conversations x 200 messages)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := requireURL("DATABASE_DIRECT_URL", cfg.DatabaseDirectURL); err != nil {
		return err
	}
	size := db.DemoSeed
	if *large {
		size = db.LargeSeed
	} else {
		empty, err := db.IsEmpty(ctx, cfg.DatabaseDirectURL)
		if err != nil {
			return err
		}
		if !empty {
			fmt.Fprintln(stdout, "seed: the database already has data; demo seed skipped")
			return nil
		}
	}
	rep, err := db.Seed(ctx, cfg.DatabaseDirectURL, size, uint64(time.Now().UnixNano()))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "seed: added %d users, %d conversations, %d messages in %s\n",
		rep.Users, rep.Conversations, rep.Messages, rep.Took.Round(time.Millisecond))
	return nil
}

func token(cfg config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.Int64("user", 0, "user id (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user < 1 {
		return errors.New("token: -user must be a positive user id")
	}
	secret := cfg.JWTSecret
	if secret == "" {
		secret = developmentSecret // a development token for a local stack
	}
	keys, err := auth.NewKeys(secret)
	if err != nil {
		return err
	}
	tok, err := keys.Sign(*user, *ttl)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tok)
	return nil
}
