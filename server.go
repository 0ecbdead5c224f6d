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
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/command"
	"github.com/threadline/threadline/internal/envconfig"
	"github.com/threadline/threadline/internal/redisclient"
)

func main() {
	os.Exit(command.Main("threadline", run))
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

// loadConfig reads the configuration from the environment: each variable overrides the
// default app.Defaults gives it.
func loadConfig(getenv func(string) string) (app.Config, error) {
	e := envconfig.New(getenv)
	c := app.Defaults()
	c.Env = e.String("APP_ENV", c.Env)
	if c.Env != "development" && c.Env != "production" {
		e.Fail("APP_ENV", "must be development or production")
	}
	if c.Development() {
		// The development secret is public: listen on loopback only, and keep the operations
		// endpoints on the main listener.
		c.Addr, c.OpsAddr = "127.0.0.1:8080", ""
	}
	c.Addr = e.String("ADDR", c.Addr)
	c.OpsAddr = e.String("OPS_ADDR", c.OpsAddr)
	c.DatabaseURL = e.String("DATABASE_URL", "")
	c.DatabaseDirectURL = e.String("DATABASE_DIRECT_URL", "")
	c.DatabaseReplicaURL = e.String("DATABASE_REPLICA_URL", "")
	c.RedisURL = e.String("REDIS_URL", "")
	c.RedisTLS.CAFile = e.String("REDIS_TLS_CA_FILE", "")
	c.RedisTLS.CertFile = e.String("REDIS_TLS_CERT_FILE", "")
	c.RedisTLS.KeyFile = e.String("REDIS_TLS_KEY_FILE", "")
	c.JWTSecret = e.String("JWT_SECRET", "")
	if c.JWTSecret == "" && c.Development() {
		c.JWTSecret = app.DevelopmentSecret
	}
	c.JWTJWKSURL = e.String("JWT_JWKS_URL", "")
	c.JWTIssuer = e.String("JWT_ISSUER", "")
	c.JWTAudience = e.String("JWT_AUDIENCE", "")
	c.LogLevel = e.LogLevel("LOG_LEVEL")
	if c.LogFormat = e.String("LOG_FORMAT", c.LogFormat); c.LogFormat != "json" && c.LogFormat != "text" {
		e.Fail("LOG_FORMAT", "must be json or text")
	}
	c.DemoUserID = int64(e.Int("DEMO_USER_ID", int(c.DemoUserID)))
	c.WebAppEnabled = e.Bool("WEB_APP_ENABLED", c.WebAppEnabled)
	c.Introspection = e.Bool("GRAPHQL_INTROSPECTION", c.Development())
	c.WSAllowedOrigins = e.Origins("WS_ALLOWED_ORIGINS", c.Development())
	// CORS allows the WebSocket origins unless it has a list of its own.
	if c.CORSAllowedOrigins = e.Origins("CORS_ALLOWED_ORIGINS", c.Development()); c.CORSAllowedOrigins == nil {
		c.CORSAllowedOrigins = c.WSAllowedOrigins
	}
	readPools(e, &c)
	readHTTP(e, &c)
	readLimits(e, &c)
	return c, e.Err()
}

// readPools reads the settings of the pgx pool, the loaders, the caches and Redis.
func readPools(e *envconfig.Reader, c *app.Config) {
	c.DBMaxConns = int32(e.Int("DB_MAX_CONNS", int(c.DBMaxConns)))
	c.DBMinConns = int32(e.Int("DB_MIN_CONNS", int(c.DBMinConns)))
	c.DBMaxConnLifetime = e.Duration("DB_MAX_CONN_LIFETIME", c.DBMaxConnLifetime)
	c.DBMaxConnIdleTime = e.Duration("DB_MAX_CONN_IDLE_TIME", c.DBMaxConnIdleTime)
	c.DBConnectTimeout = e.Duration("DB_CONNECT_TIMEOUT", c.DBConnectTimeout)
	c.LoaderWait = e.Duration("LOADER_WAIT", c.LoaderWait)
	c.LoaderMaxBatch = e.Int("LOADER_MAX_BATCH", c.LoaderMaxBatch)
	c.CacheEnabled = e.Bool("CACHE_ENABLED", c.CacheEnabled)
	// The response cache records history-cache generations: it needs the history cache.
	c.ResponseCacheEnabled = e.Bool("RESPONSE_CACHE_ENABLED", c.CacheEnabled) && c.CacheEnabled
	c.ResponseCacheTTL = e.Duration("RESPONSE_CACHE_TTL", c.ResponseCacheTTL)
	c.LocalCacheBytes = int64(e.Int("LOCAL_CACHE_BYTES", int(c.LocalCacheBytes)))
	c.CacheTTLFirstPage = e.Duration("CACHE_TTL_FIRST_PAGE", c.CacheTTLFirstPage)
	c.CacheTTL = e.Duration("CACHE_TTL", c.CacheTTL)
	c.CacheFallbackRate = e.Positive("CACHE_FALLBACK_RATE", c.CacheFallbackRate)
	c.DocumentCache.Bytes = int64(e.Positive("DOCUMENT_CACHE_BYTES", int(c.DocumentCache.Bytes)))
	c.DocumentCache.Entries = e.Positive("DOCUMENT_CACHE_ENTRIES", c.DocumentCache.Entries)
	c.RedisTimeout = e.Duration("REDIS_TIMEOUT", c.RedisTimeout)
	c.RedisBreakerFailures = uint32(e.Int("REDIS_BREAKER_FAILURES", int(c.RedisBreakerFailures)))
	c.RedisBreakerOpen = e.Duration("REDIS_BREAKER_OPEN", c.RedisBreakerOpen)
	c.PostCommitWait = e.Duration("POST_COMMIT_WAIT", c.PostCommitWait)
	c.LivePollInterval = e.Duration("LIVE_POLL_INTERVAL", c.LivePollInterval)
	c.SubscriberBuffer = e.Positive("SUBSCRIBER_BUFFER", c.SubscriberBuffer)
}

// readHTTP reads the settings of the listeners and connections.
func readHTTP(e *envconfig.Reader, c *app.Config) {
	c.MaxBodyBytes = int64(e.Int("MAX_BODY_BYTES", int(c.MaxBodyBytes)))
	c.MaxHeaderBytes = e.Positive("MAX_HEADER_BYTES", c.MaxHeaderBytes)
	c.RequestTimeout = e.Duration("REQUEST_TIMEOUT", c.RequestTimeout)
	c.ReadHeaderTimeout = e.Duration("HTTP_READ_HEADER_TIMEOUT", c.ReadHeaderTimeout)
	c.ReadTimeout = e.Duration("HTTP_READ_TIMEOUT", c.ReadTimeout)
	c.WriteTimeout = e.Duration("HTTP_WRITE_TIMEOUT", c.WriteTimeout)
	c.IdleTimeout = e.Duration("HTTP_IDLE_TIMEOUT", c.IdleTimeout)
	c.ShutdownTimeout = e.Duration("SHUTDOWN_TIMEOUT", c.ShutdownTimeout)
	c.ShutdownDrainDelay = e.Duration("SHUTDOWN_DRAIN_DELAY", c.ShutdownDrainDelay)
	if c.ShutdownDrainDelay > 0 && c.ShutdownDrainDelay >= c.ShutdownTimeout {
		e.Fail("SHUTDOWN_DRAIN_DELAY", "must be shorter than SHUTDOWN_TIMEOUT, which it is part of")
	}
	c.WSInitTimeout = e.Duration("WS_INIT_TIMEOUT", c.WSInitTimeout)
	c.WSPingInterval = e.Duration("WS_PING_INTERVAL", c.WSPingInterval)
	c.WSWriteTimeout = e.Duration("WS_WRITE_TIMEOUT", c.WSWriteTimeout)
	c.WSMaxSubscriptions = e.Positive("WS_MAX_SUBSCRIPTIONS", c.WSMaxSubscriptions)
	c.WSMaxInFlight = e.Positive("WS_MAX_IN_FLIGHT", c.WSMaxInFlight)
	c.WSMaxConnsPerUser = e.Positive("WS_MAX_CONNS_PER_USER", c.WSMaxConnsPerUser)
	c.WSMaxConnsPerAddr = e.Positive("WS_MAX_CONNS_PER_ADDR", c.WSMaxConnsPerAddr)
	c.SSEKeepAlive = e.Duration("SSE_KEEPALIVE_INTERVAL", c.SSEKeepAlive)
}

// readLimits reads the limits of documents, operations, rates and load.
func readLimits(e *envconfig.Reader, c *app.Config) {
	c.Limits.Complexity = e.Positive("MAX_QUERY_COMPLEXITY", c.Limits.Complexity)
	c.Limits.Depth = e.Positive("MAX_QUERY_DEPTH", c.Limits.Depth)
	c.Limits.Aliases = e.Positive("MAX_ALIASES", c.Limits.Aliases)
	c.Limits.Fields = e.Positive("MAX_FIELDS", c.Limits.Fields)
	c.Limits.Tokens = e.Positive("MAX_TOKENS", c.Limits.Tokens)
	c.Limits.DocumentBytes = e.Positive("MAX_DOCUMENT_BYTES", c.Limits.DocumentBytes)
	c.Limits.SameName = e.Positive("MAX_SAME_NAME", c.Limits.SameName)
	c.Limits.Operations = e.Positive("MAX_OPERATIONS", c.Limits.Operations)
	c.Limits.FragmentDefinitions = e.Positive("MAX_FRAGMENTS", c.Limits.FragmentDefinitions)
	c.Limits.FragmentSpreads = e.Positive("MAX_FRAGMENT_SPREADS", c.Limits.FragmentSpreads)
	c.Limits.Directives = e.Positive("MAX_DIRECTIVES", c.Limits.Directives)
	c.Limits.Variables = e.Positive("MAX_VARIABLES", c.Limits.Variables)
	c.TrustedDocumentsOnly = e.Bool("TRUSTED_DOCUMENTS_ONLY", c.TrustedDocumentsOnly)
	c.APQTTL = e.Duration("APQ_TTL", c.APQTTL)
	c.APQMaxBytes = e.Positive("APQ_MAX_BYTES", c.APQMaxBytes)
	c.MaxMutations = e.Positive("MAX_MUTATIONS_PER_OPERATION", c.MaxMutations)
	c.RateLimitDisabled = e.Bool("RATE_LIMIT_DISABLED", c.RateLimitDisabled)
	c.RateLimit = e.Positive("RATE_LIMIT", c.RateLimit)
	c.RateLimitBurst = e.Positive("RATE_LIMIT_BURST", c.RateLimitBurst)
	c.CreateConversationRate = e.Positive("CREATE_CONVERSATION_RATE", c.CreateConversationRate)
	c.CreateConversationBurst = e.Positive("CREATE_CONVERSATION_BURST", c.CreateConversationBurst)
	c.AdmissionEnabled = e.Bool("ADMISSION_ENABLED", c.AdmissionEnabled)
	c.AdmissionMaxLimit = e.Positive("ADMISSION_MAX_LIMIT", c.AdmissionMaxLimit)
	c.AdmissionMaxWait = e.Duration("ADMISSION_MAX_WAIT", c.AdmissionMaxWait)
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

func newLogger(cfg app.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func serve(ctx context.Context, cfg app.Config, log *slog.Logger, stdout io.Writer) error {
	application, err := app.New(ctx, cfg, app.Options{Log: log})
	if err != nil {
		return err
	}
	defer application.Close()
	// Each dependency's first connection, or why it failed, in the log; stopped before the
	// application closes, so that a closed pool is not reported as a failed connection.
	logCtx, stopLog := context.WithCancel(ctx)
	logged := make(chan struct{})
	go func() { defer close(logged); application.LogConnections(logCtx) }()
	defer func() { stopLog(); <-logged }()
	srv := &http.Server{
		Handler:           closeWhenStopping(ctx, application.Handler),
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
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
	if cfg.OpsAddr != "" {
		stopOps, err := serveOps(cfg.OpsAddr, application.Ops, log)
		if err != nil {
			ln.Close()
			return err
		}
		defer stopOps()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	if err := shutdown(cfg, log, application, srv); err != nil {
		return err
	}
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// shutdown stops serving, all of it within SHUTDOWN_TIMEOUT: readiness fails first so that load
// balancers stop routing here, and for SHUTDOWN_DRAIN_DELAY the server keeps serving (every
// response now closes its connection, see closeWhenStopping); then subscribers are sent away,
// the listener closes and in-flight requests finish.
func shutdown(cfg app.Config, log *slog.Logger, application *app.App, srv *http.Server) error {
	log.Info("shutting down", "deadline", cfg.ShutdownTimeout.String(), "drain", cfg.ShutdownDrainDelay.String())
	application.Drain()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if cfg.ShutdownDrainDelay > 0 {
		select {
		case <-time.After(cfg.ShutdownDrainDelay):
		case <-ctx.Done():
		}
	}
	// WebSocket connections are hijacked: Shutdown neither closes nor waits for them. Send them
	// away first, with 1001 going away, so that clients reconnect elsewhere and resume with
	// afterSeq. Messages sent by requests still in flight are still published for others.
	if err := application.GoAway(ctx); err != nil {
		log.Warn("closing live subscriptions", "err", err)
	}
	if err := srv.Shutdown(ctx); err != nil {
		// The deadline passed with requests still running: close their connections, which
		// cancels their contexts and so their SQL and Redis calls, so that closing the pool
		// (which waits for connections in use) returns at once.
		srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
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

// serveOps serves the operations endpoints (/metrics, /health/cache, pprof) on addr, a
// listener of their own: bind it to loopback or a private network.
func serveOps(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("operations listener: listen on %s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = srv.Serve(ln) }()
	log.Info("operations endpoints serving", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

func seed(ctx context.Context, cfg app.Config, args []string, stdout io.Writer) error {
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

func token(cfg app.Config, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	user := fs.Int64("user", 0, "user id (required)")
	ttl := fs.Duration("ttl", 24*time.Hour, "token lifetime")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *user < 1 {
		return errors.New("token: -user must be a positive user id")
	}
	if cfg.JWTSecret == "" {
		cfg.JWTSecret = app.DevelopmentSecret // a development token for a local stack
	}
	keys, err := auth.New(auth.Config{Secret: cfg.JWTSecret, Issuer: cfg.JWTIssuer, Audience: cfg.JWTAudience})
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
