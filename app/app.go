// Package app assembles Threadline from its parts: the PostgreSQL store behind PgBouncer, the
// Redis history and response caches, live delivery, typing and presence (Redis only), the
// GraphQL handler and the HTTP routes.
// server.go builds the application with New and runs its listeners; tests build the very same
// application (package app/apptest), so what they exercise is the production wiring.
//
// The package sits above every other package of the server: it imports graph, db and internal/*,
// and nothing but server.go and tests imports it.
//
// # After a commit
//
// Every write runs the same steps after its commit and before it answers, in this order (New,
// afterCommit):
//
//  1. the history cache moves the conversation to a new generation (with the history cache
//     off, typing moves it when the members changed: its member sets are read under it);
//  2. live delivery publishes the change to subscribers, here and on other instances;
//  3. the response cache moves the membership tokens of users whose conversations changed.
//
// The order is what makes reads after a write exact: a subscriber that receives a message and
// then reads the history must find the cache already past it, so the generation moves before
// the publish. TestAfterCommitOrder fails if the order changes.
//
// While Redis is known to be failing (its circuit breaker is not closed, or the last call
// failed), a mutation waits for these steps at most PostCommitWait (POST_COMMIT_WAIT): with
// Redis down or hanging they would cost it a Redis deadline each. Past the wait it answers, and
// the steps go on in the background, in the same order. Before it answers, each cache whose
// step has not returned marks what it was moving as pending (chat.Hook.Late): this instance then
// reads that conversation from PostgreSQL and bypasses the response cache until a retry lands,
// exactly as after a failed move, so a read on this instance that follows the answer sees the
// write (other instances may serve what they cached before it until the retry lands or the
// entry's TTL ends, as after a failed move). Subscribers of this instance get the change when
// the live step runs; those of other instances through Redis, or else through their poll of
// PostgreSQL (package live). With Redis answering, a mutation waits for every step: each
// instance's caches must have moved before it answers for a read on any instance to see the
// write.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/streaming"
	"github.com/threadline/threadline/internal/admission"
	"github.com/threadline/threadline/internal/apq"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/httpapi"
	"github.com/threadline/threadline/internal/live"
	"github.com/threadline/threadline/internal/localcache"
	"github.com/threadline/threadline/internal/metrics"
	"github.com/threadline/threadline/internal/playground"
	"github.com/threadline/threadline/internal/presence"
	"github.com/threadline/threadline/internal/ratelimit"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/respcache"
	"github.com/threadline/threadline/internal/typing"
	"github.com/threadline/threadline/internal/webapp"
)

// Options are what a caller adds to the production wiring. The zero value is what `serve` uses
// but for the logger.
type Options struct {
	// Log receives the server's logs; nil discards them.
	Log *slog.Logger
	// Registry receives every metric of the application; nil: a new one, with the Go runtime
	// and process collectors.
	Registry *prometheus.Registry
	// ObserveStatement, if set, sees every SQL statement besides the metrics (tests count them).
	ObserveStatement db.StatementObserver
	// RedisHook, if set, is added to the Redis client (tests count round trips).
	RedisHook redis.Hook
	// PoolShouldPing replaces pgx's decision to ping a connection before use (tests turn the
	// pings off, so that PgBouncer's statement count equals the server's).
	PoolShouldPing func(context.Context, pgxpool.ShouldPingParams) bool
}

// App is the assembled server.
type App struct {
	// Handler serves the public routes (internal/httpapi/routes.go): GraphQL, GraphiQL,
	// liveness and readiness, and in development the operations endpoints too.
	Handler http.Handler
	// Ops serves the operations endpoints: /metrics, /health/cache, /debug/pprof/. In production
	// they are served on a listener of their own (OPS_ADDR) and nowhere else.
	Ops http.Handler
	// Registry holds every metric of the application, served at /metrics.
	Registry *prometheus.Registry
	// Chat is the domain service the resolvers call.
	Chat *chat.Service
	// Keys signs and verifies tokens.
	Keys *auth.Keys
	// Redis is the client every Redis user of the application shares.
	Redis redis.UniversalClient

	cfg     Config
	log     *slog.Logger
	ready   *httpapi.Readiness
	deps    []dependency // PostgreSQL and Redis: readiness and the start-up log
	hub     *live.Hub
	hooks   []chat.Hook
	closers []func() // run by Close, last first
}

// New builds the application from cfg. It connects to nothing yet: the first request (or
// readiness check) opens the connections, so a server starts while its dependencies come up.
// Call Close when done.
func New(ctx context.Context, cfg Config, opts Options) (a *App, err error) {
	for _, req := range []struct{ key, v string }{{"DATABASE_URL", cfg.DatabaseURL}, {"REDIS_URL", cfg.RedisURL}} {
		if req.v == "" {
			return nil, fmt.Errorf("config: %s is required", req.key)
		}
	}
	if cfg.JWTSecret == "" && cfg.JWTJWKSURL == "" {
		return nil, errors.New("config: JWT_SECRET or JWT_JWKS_URL is required")
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	a = &App{Registry: reg, cfg: cfg, log: log}
	// An error return sets a to nil: close what was opened through a copy.
	built := a
	defer func() {
		if err != nil {
			built.Close()
		}
	}()
	if a.Keys, err = auth.New(cfg.AuthConfig(log)); err != nil {
		return nil, err
	}
	appMetrics := metrics.New(reg, metrics.Options{})

	observe := appMetrics.ObserveStatement
	if extra := opts.ObserveStatement; extra != nil {
		observe = func(ctx context.Context, name string, took time.Duration, err error) {
			appMetrics.ObserveStatement(ctx, name, took, err)
			extra(ctx, name, took, err)
		}
	}
	poolConfig := db.PoolConfig{
		MaxConns: cfg.DBMaxConns, MinConns: cfg.DBMinConns, MaxConnLifetime: cfg.DBMaxConnLifetime,
		MaxConnIdleTime: cfg.DBMaxConnIdleTime, ConnectTimeout: cfg.DBConnectTimeout,
		Tracer: &db.Tracer{Observe: observe}, ShouldPing: opts.PoolShouldPing,
	}
	pool, err := db.OpenPool(ctx, cfg.DatabaseURL, poolConfig)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, pool.Close)
	dbStore := db.NewStore(pool)
	if cfg.DatabaseReplicaURL != "" {
		replicaPool, err := db.OpenPool(ctx, cfg.DatabaseReplicaURL, poolConfig)
		if err != nil {
			return nil, fmt.Errorf("DATABASE_REPLICA_URL: %w", err)
		}
		a.closers = append(a.closers, replicaPool.Close)
		dbStore = db.NewStoreWithReplica(pool, replicaPool, db.ReplicaConfig{Log: log, Registerer: reg})
	}
	reg.MustRegister(metrics.NewPoolCollector(func() metrics.PoolStats { return pool.Stat() }))

	if a.Redis, err = redisclient.Open(cfg.RedisURL, redisclient.Options{TLS: cfg.RedisTLS}); err != nil {
		return nil, err
	}
	a.closers = append(a.closers, func() { _ = a.Redis.Close() })
	if opts.RedisHook != nil {
		a.Redis.AddHook(opts.RedisHook)
	}
	breaker := redisclient.NewBreaker(redisclient.BreakerConfig{
		FailureThreshold: cfg.RedisBreakerFailures, OpenTimeout: cfg.RedisBreakerOpen,
		CallTimeout: cfg.RedisTimeout, Log: log, Registerer: reg,
	})

	// One budget of slow-path reads after Redis timeouts, for both caches (see cache.Config).
	fallbacks := admission.NewBudget(float64(cfg.CacheFallbackRate), cfg.CacheFallbackRate)
	var store chat.Store = dbStore
	var history *cache.Store
	if cfg.CacheEnabled {
		historyConfig := cache.Config{
			TTLFirstPage: cfg.CacheTTLFirstPage, TTL: cfg.CacheTTL, Fallbacks: fallbacks, Log: log, Registerer: reg,
			ConversationTokens: cfg.ResponseCacheEnabled,
		}
		if cfg.DatabaseReplicaURL != "" {
			historyConfig.Position = dbStore.WALPosition
		}
		history = cache.NewStore(dbStore, a.Redis, breaker, historyConfig)
		a.closers = append(a.closers, history.Close)
		store = history
	}
	var respCache *respcache.Cache
	if cfg.CacheEnabled && cfg.ResponseCacheEnabled {
		// The in-process tier: only for a standalone Redis (its tracking and barrier cover one
		// Redis, not a cluster's nodes: see package respcache), and only while the circuit
		// breaker is closed.
		var local *localcache.Tier
		if standalone, ok := a.Redis.(*redis.Client); ok {
			local = localcache.New(standalone.Options(), localcache.Config{
				Bytes: cfg.LocalCacheBytes, Prefixes: respcache.TokenPrefixes(), BarrierTimeout: cfg.RedisTimeout,
				Healthy: func() bool { return breaker.State() == "closed" }, Log: log, Registerer: reg,
			})
			if local != nil {
				a.closers = append(a.closers, local.Close)
			}
		}
		respCache = respcache.New(a.Redis, breaker, respcache.Config{
			TTL: cfg.ResponseCacheTTL, Bypass: history.HasPending, Fallbacks: fallbacks, Local: local,
			Salt: graph.ResponseCacheSalt(cfg.Limits, cfg.Introspection, cfg.TrustedDocumentsOnly, nil),
			Log:  log, Registerer: reg,
		})
		a.closers = append(a.closers, respCache.Close)
	}
	// Live delivery reads PostgreSQL itself (dbStore, not the cache) for replays and gap fills;
	// with a replica, at the position of the conversation's token.
	var replays live.Store = dbStore
	if cfg.DatabaseReplicaURL != "" && history != nil {
		replays = replayStore{dbStore, history}
	}
	pollInterval := cfg.LivePollInterval
	if pollInterval <= 0 {
		pollInterval = -1 // off
	}
	a.hub = live.NewHub(live.Config{
		Redis: a.Redis, Breaker: breaker, Store: replays, Log: log, Registerer: reg, Buffer: cfg.SubscriberBuffer,
		PollInterval: pollInterval,
	})
	a.closers = append(a.closers, func() {
		// After a graceful shutdown (GoAway) it has nothing left to do.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = a.hub.Close(ctx)
	})

	// Typing and presence live in Redis only. Member sets are read straight from PostgreSQL
	// on a miss, under the history cache's generation (package typing).
	typists := typing.New(typing.Config{
		Redis: a.Redis, Breaker: breaker, Members: dbStore.MembershipsByConversations, Log: log, Registerer: reg,
	})
	a.closers = append(a.closers, typists.Close)
	tracker := presence.New(presence.Config{Redis: a.Redis, Breaker: breaker, TTL: cfg.PresenceTTL, Log: log, Registerer: reg})
	a.closers = append(a.closers, tracker.Close)

	a.hooks = afterCommit(history, a.hub, respCache, typists)
	a.Chat = chat.NewServiceConfig(store, chat.ServiceConfig{
		Hooks: a.hooks, Wait: cfg.PostCommitWait, Bounded: breaker.Failing, Observe: appMetrics.ObservePostCommit,
	})

	var admit *admission.Limiter
	if cfg.AdmissionEnabled {
		admit = admission.New(admission.Config{MaxLimit: cfg.AdmissionMaxLimit, MaxWait: cfg.AdmissionMaxWait, Registerer: reg})
	}
	var limiter, creations *ratelimit.Limiter
	if !cfg.RateLimitDisabled {
		limiter = ratelimit.New(ratelimit.Config{
			Redis: a.Redis, Breaker: breaker, Rate: cfg.RateLimit, Burst: cfg.RateLimitBurst,
			Limited: appMetrics.RateLimited(), FailOpen: appMetrics.RateLimitFailOpen(),
		})
		creations = ratelimit.New(ratelimit.Config{
			Redis: a.Redis, Breaker: breaker, Name: "create", Rate: cfg.CreateConversationRate,
			Burst: cfg.CreateConversationBurst, Period: time.Minute,
			Limited: appMetrics.RateLimited(), FailOpen: appMetrics.RateLimitFailOpen(),
		})
	}
	loaders := loader.NewFactory(store, loader.Config{
		Wait: cfg.LoaderWait, MaxBatch: cfg.LoaderMaxBatch, OnBatch: appMetrics.ObserveBatch,
		Online: tracker.Online, Typing: typists.Typing,
	})
	gql := graph.NewHandler(graph.HandlerConfig{
		Chat:             a.Chat,
		Loaders:          loaders,
		Log:              log,
		Introspection:    cfg.Introspection,
		RequestID:        httpapi.RequestID,
		Metrics:          appMetrics.GraphQL(),
		ObserveOperation: appMetrics.ObserveOperation,
		Live:             a.hub,
		Typing:           typists,
		Streaming: streaming.Config{
			Authenticate:     a.Keys.Authenticate,
			Viewer:           viewer,
			RateLimit:        chargeOperation(limiter),
			Admit:            admitOperation(admit),
			OperationTimeout: cfg.RequestTimeout,
			MaxSubscriptions: cfg.WSMaxSubscriptions,
			MaxInFlight:      cfg.WSMaxInFlight,
			WriteTimeout:     cfg.WSWriteTimeout,
			MaxConnsPerUser:  cfg.WSMaxConnsPerUser,
			MaxConnsPerAddr:  cfg.WSMaxConnsPerAddr,
			TrackConn:        a.hub.TrackConn,
			Connected:        tracker.Connected,
			Log:              log,
		},
		WebSocket: streaming.WebSocketConfig{
			AllowedOrigins: cfg.WSAllowedOrigins, InitTimeout: cfg.WSInitTimeout, PingInterval: cfg.WSPingInterval,
			ReadLimit: cfg.MaxBodyBytes,
		},
		EventStream:         streaming.EventStreamConfig{KeepAlive: cfg.SSEKeepAlive},
		Mutations:           graph.MutationLimits{Max: cfg.MaxMutations, Charge: charge(limiter), Create: charge(creations)},
		ResponseCache:       respCache,
		Classify:            db.Unavailable,
		Limits:              cfg.Limits,
		FieldSuggestions:    cfg.Development(),
		PersistedQueries:    apq.New(a.Redis, breaker, cfg.APQTTL),
		PersistedQueryBytes: cfg.APQMaxBytes,
		TrustedOnly:         cfg.TrustedDocumentsOnly,
		DocumentCache:       cfg.DocumentCache,
	})
	var rateLimit func(http.Handler) http.Handler
	if limiter != nil {
		rateLimit = limiter.Middleware
	}
	var cors func(http.Handler) http.Handler
	if len(cfg.CORSAllowedOrigins) > 0 {
		cors = httpapi.CORS(cfg.CORSAllowedOrigins)
	}
	pgCfg := playground.Config{Endpoint: "/query", Title: "Threadline", DefaultQuery: PlaygroundQuery}
	if cfg.Development() && cfg.JWTSecret != "" {
		tok, err := a.Keys.Sign(cfg.DemoUserID, 30*24*time.Hour)
		if err != nil {
			return nil, err
		}
		pgCfg.DefaultHeaders = fmt.Sprintf(`{"Authorization": "Bearer %s"}`, tok)
	}
	var webApp http.Handler
	if cfg.ServesWebApp() {
		wc := webapp.Config{Endpoint: "/query", DemoUserID: cfg.DemoUserID}
		if cfg.Development() && cfg.JWTSecret != "" {
			// As GraphiQL's token above: signed with the development secret, never in production.
			wc.DevToken = func(userID int64) (string, error) { return a.Keys.Sign(userID, 24*time.Hour) }
		}
		webApp = webapp.Handler(wc)
	}
	a.deps = []dependency{postgresDependency(pool, dbStore.Ping), redisDependency(a.Redis)}
	a.ready = httpapi.NewReadiness([]httpapi.Check{a.deps[0].check(), a.deps[1].check()}, 2*time.Second)
	a.Ops = httpapi.NewOpsHandler(httpapi.OpsConfig{
		Metrics:     promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		CacheHealth: &httpapi.CacheHealth{History: history, Response: respCache, Redis: a.Redis, Breaker: breaker},
	})
	var opsOnMain http.Handler
	if cfg.Development() {
		opsOnMain = a.Ops
	}
	a.Handler = httpapi.NewHandler(httpapi.Config{
		Log:            log,
		GraphQL:        gql,
		Playground:     playground.Handler(pgCfg),
		App:            webApp,
		Ops:            opsOnMain,
		Authenticate:   func(next http.Handler) http.Handler { return a.Keys.Middleware(tracker.Middleware(next)) },
		RateLimit:      rateLimit,
		Admission:      admission.Middleware(admit),
		PerOperation:   streaming.IsEventStream,
		CORS:           cors,
		MaxBodyBytes:   cfg.MaxBodyBytes,
		RequestTimeout: cfg.RequestTimeout,
		Instrument:     appMetrics.HTTP,
	}, a.ready)
	return a, nil
}

// viewer reads the viewer of ctx and its token's expiry, for the streaming transports.
func viewer(ctx context.Context) (int64, time.Time, bool) {
	id, err := auth.Viewer(ctx)
	if err != nil {
		return 0, time.Time{}, false
	}
	exp, _ := auth.Expiry(ctx)
	return id, exp, true
}

// charge returns l's charge of n requests to the viewer; nil when there is no limit.
func charge(l *ratelimit.Limiter) func(ctx context.Context, n int) error {
	if l == nil {
		return nil
	}
	return l.ChargeViewer
}

// chargeOperation charges one request for an operation over a WebSocket or an event stream,
// to its viewer or, when anonymous, to its client address, as the HTTP middleware charges a
// request.
func chargeOperation(l *ratelimit.Limiter) func(ctx context.Context, addr string) error {
	if l == nil {
		return nil
	}
	return func(ctx context.Context, addr string) error { return l.ChargeClient(ctx, addr, 1) }
}

// admitOperation admits a query or mutation that came over a WebSocket or an event stream
// through l, as the HTTP middleware admits a request; nil when there is no admission limit.
func admitOperation(l *admission.Limiter) func(ctx context.Context) (func(), error) {
	if l == nil {
		return nil
	}
	return func(ctx context.Context) (func(), error) {
		release, err := l.Acquire(ctx)
		if err != nil {
			var ref *admission.Refusal
			if errors.As(err, &ref) {
				return nil, &gqlerror.Error{Message: ref.Error(), Extensions: ref.Extensions()}
			}
			return nil, err
		}
		return func() { release(admission.OutcomeOf(ctx)) }, nil
	}
}

// afterCommit is the list of steps every write runs after its commit, in order (see the package
// doc for why the order matters). Disabled caches have no step.
func afterCommit(history *cache.Store, hub *live.Hub, respCache *respcache.Cache, typists *typing.Service) []chat.Hook {
	var hooks []chat.Hook
	if history != nil {
		hooks = append(hooks, chat.Hook{Name: "history cache", Run: history.AfterCommit, Late: history.Late})
	} else {
		// Without the history cache nothing else moves the generations typing's member sets
		// are read under: membership changes move them.
		hooks = append(hooks, chat.Hook{Name: "typing members", Run: typists.AfterCommit})
	}
	hooks = append(hooks, chat.Hook{Name: "live", Run: hub.AfterCommit})
	if respCache != nil {
		hooks = append(hooks, chat.Hook{Name: "response cache", Run: respCache.AfterCommit, Late: respCache.Late})
	}
	return hooks
}

// AfterCommit returns the names of the steps every write runs after its commit, in order.
func (a *App) AfterCommit() []string {
	names := make([]string, len(a.hooks))
	for i, h := range a.hooks {
		names[i] = h.Name
	}
	return names
}

// Drain makes /readyz answer 503 from now on: the first step of a graceful shutdown, so that
// load balancers stop sending new requests.
func (a *App) Drain() { a.ready.Drain() }

// GoAway closes every WebSocket connection with 1001 going away and ends every event stream
// without complete (clients reconnect elsewhere and resume with afterSeq), then ends the
// remaining subscriptions, waiting at most until ctx ends. http.Server.Shutdown neither closes
// nor waits for hijacked connections, and would wait for event streams until its deadline: call
// GoAway first.
func (a *App) GoAway(ctx context.Context) error {
	if err := a.hub.Close(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// Close releases the application's connections and background work.
func (a *App) Close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// PlaygroundQuery opens GraphiQL: the demo user's latest conversations and a page of history.
const PlaygroundQuery = `# Threadline: the demo user's latest conversations and a page of history.
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

// replayStore is live delivery's store with a replica: its message replays and gap fills
// (MessagesAfter) carry the WAL position of the conversation's history-cache token, read first,
// so that a replica that has replayed the writes they must show may serve them (package db).
type replayStore struct {
	*db.Store
	history *cache.Store
}

func (s replayStore) MessagesAfter(ctx context.Context, conversationID, afterSeq int64, limit int) ([]chat.Message, error) {
	return s.Store.MessagesAfter(s.history.WithReadPosition(ctx, conversationID), conversationID, afterSeq, limit)
}
