package app

import (
	"log/slog"
	"time"

	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/graph/document"
	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/streaming"
	"github.com/threadline/threadline/internal/admission"
	"github.com/threadline/threadline/internal/apq"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/live"
	"github.com/threadline/threadline/internal/localcache"
	"github.com/threadline/threadline/internal/presence"
	"github.com/threadline/threadline/internal/ratelimit"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/respcache"
)

// Config is every setting of the server. Defaults gives each its default value; server.go fills
// it from the environment (the only place that reads it), and tests from Defaults.
type Config struct {
	Env               string // "development" or "production"
	Addr              string
	DatabaseURL       string // through PgBouncer
	DatabaseDirectURL string // straight to PostgreSQL: migrations and seeding
	// DatabaseReplicaURL, when set, reaches a streaming replica of DatabaseURL's PostgreSQL
	// (through PgBouncer), for the reads it may serve (db.NewStoreWithReplica).
	DatabaseReplicaURL string
	RedisURL           string
	RedisTLS           redisclient.TLSFiles // a private CA and a client certificate for rediss://
	JWTSecret          string               // HS256 tokens
	JWTJWKSURL         string               // an identity provider's JWKS: RS256/ES256 keys (auth.Config.JWKSURL)
	JWTIssuer          string               // when set, every token's iss
	JWTAudience        string               // when set, in every token's aud
	LogLevel           slog.Level
	LogFormat          string

	DBMaxConns        int32
	DBMinConns        int32
	DBMaxConnLifetime time.Duration
	DBMaxConnIdleTime time.Duration
	DBConnectTimeout  time.Duration

	LoaderWait     time.Duration
	LoaderMaxBatch int

	CacheEnabled         bool
	ResponseCacheEnabled bool // needs CacheEnabled: responses record history-cache generations
	ResponseCacheTTL     time.Duration
	// LocalCacheBytes bounds the response cache's in-process tier (internal/localcache), in
	// estimated bytes; 0 turns the tier off (every lookup goes to Redis).
	LocalCacheBytes      int64
	CacheTTLFirstPage    time.Duration
	CacheTTL             time.Duration
	RedisTimeout         time.Duration
	RedisBreakerFailures uint32
	RedisBreakerOpen     time.Duration
	// PostCommitWait bounds, while Redis is known to be failing, how long a mutation waits after
	// its commit for its post-commit steps (cache token moves, the Pub/Sub publish); past it the
	// mutation answers and they go on in the background (chat.ServiceConfig.Wait). 0: wait for
	// them all.
	PostCommitWait time.Duration
	// LivePollInterval is how often each instance reads from PostgreSQL the newest event of
	// every stream its subscribers follow, to deliver what Redis Pub/Sub did not
	// (live.Config.PollInterval); 0 turns the poll off.
	LivePollInterval time.Duration

	Introspection bool
	MaxBodyBytes  int64
	// MaxHeaderBytes bounds a request's header and request line, its URL included: a GET's
	// document and variables travel there (http.Server answers 431 beyond it).
	MaxHeaderBytes    int
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

	// Limits bound each GraphQL operation (graph.Limits), checked before any resolver runs.
	Limits graph.Limits

	// Rate limits per user (per IP address when anonymous), shared through Redis. Each HTTP
	// request, each operation over a WebSocket and each mutation field past the first costs one.
	RateLimitDisabled bool
	RateLimit         int // requests per second
	RateLimitBurst    int
	// CreateConversationRate and CreateConversationBurst are the conversations one user may
	// create per minute, and at once.
	CreateConversationRate, CreateConversationBurst int
	// MaxMutations is the most mutation fields in one operation (MAX_MUTATIONS_PER_OPERATION).
	MaxMutations int

	// Load shedding (internal/admission): an adaptive limit on the GraphQL operations executing
	// at once; the excess waits at most AdmissionMaxWait, then gets 503 with Retry-After.
	AdmissionEnabled  bool
	AdmissionMaxLimit int
	AdmissionMaxWait  time.Duration
	// CacheFallbackRate bounds, per second, the reads that a Redis call that failed while the
	// circuit breaker was closed (a timeout, say) sends to the slow path (execution,
	// PostgreSQL); past it they are refused with SERVICE_UNAVAILABLE. With the breaker open
	// (Redis down) reads go to PostgreSQL, bounded by the admission limit.
	CacheFallbackRate int

	APQTTL      time.Duration // automatic persisted queries live this long in Redis
	APQMaxBytes int           // the longest document registered as an automatic persisted query
	// TrustedDocumentsOnly runs only the documents of the trusted-document manifest
	// (graph/document/trusted.json: the operations of this repository's clients), refusing
	// every other before it is parsed.
	TrustedDocumentsOnly bool
	// DocumentCache bounds the cache of parsed and validated documents, in estimated bytes and
	// in entries.
	DocumentCache document.CacheConfig

	CORSAllowedOrigins []string // browser origins that may call /query; "*" in development only

	// GraphQL over WebSocket.
	WSAllowedOrigins []string // browser origins allowed besides the server's own; "*" in development only
	WSInitTimeout    time.Duration
	WSPingInterval   time.Duration
	WSWriteTimeout   time.Duration // a write to a client that does not read closes it after this
	// WSMaxSubscriptions and WSMaxInFlight cap the subscriptions, and the queries and
	// mutations, running at once on one connection.
	WSMaxSubscriptions, WSMaxInFlight int
	// WSMaxConnsPerUser and WSMaxConnsPerAddr cap the connections of one user, and of one client
	// address, on one instance.
	WSMaxConnsPerUser, WSMaxConnsPerAddr int
	SubscriberBuffer                     int // events a subscriber may have waiting before it is cut off

	// PresenceTTL is how long a user stays online after their last request or connection
	// refresh (package presence). The schema promises 60 s (User.online), so it is not read from
	// the environment: tests shorten it.
	PresenceTTL time.Duration

	// SSEKeepAlive is how often an event stream (GraphQL over Server-Sent Events) gets a
	// keep-alive comment. The WebSocket settings above bound event streams too: WSWriteTimeout
	// each write, WSMaxConnsPerUser and WSMaxConnsPerAddr the connections of a user and of an
	// address, WebSocket connections and event streams together.
	SSEKeepAlive time.Duration

	DemoUserID int64 // GraphiQL acts as this user in development

	// WebAppEnabled serves the reference chat web app at /app in production too; in development
	// it is always served (package webapp).
	WebAppEnabled bool

	// OpsAddr is the listener of the operations endpoints (/metrics, /health/cache, pprof):
	// private, never the public one. In development they are on Addr too, and OpsAddr is
	// optional. Empty: no operations listener.
	OpsAddr string
}

// AuthConfig is the configuration of token verification (and of signing, with the secret).
func (c Config) AuthConfig(log *slog.Logger) auth.Config {
	return auth.Config{Secret: c.JWTSecret, JWKSURL: c.JWTJWKSURL, Issuer: c.JWTIssuer, Audience: c.JWTAudience, Log: log}
}

// Development reports whether the server runs in development mode.
func (c Config) Development() bool { return c.Env == "development" }

// ServesWebApp reports whether /app serves the web app: always in development, in production
// when WEB_APP_ENABLED is set.
func (c Config) ServesWebApp() bool { return c.Development() || c.WebAppEnabled }

// DefaultPostCommitWait is Config.PostCommitWait by default: far above what the post-commit steps
// take with Redis answering (well under a millisecond), far below what they may take without it
// (a Redis call's deadline, REDIS_TIMEOUT, for each).
const DefaultPostCommitWait = 30 * time.Millisecond

// DefaultOpsAddr is the operations listener in production: loopback, so that only the machine
// (or its Prometheus sidecar) reaches it; set OPS_ADDR=:9464 where Prometheus scrapes from
// elsewhere, on a network clients cannot reach.
const DefaultOpsAddr = "127.0.0.1:9464"

// DevelopmentSecret signs tokens in development when JWT_SECRET is unset. Never in production.
const DevelopmentSecret = "threadline-development-secret-do-not-use-in-production"

// Defaults returns the default configuration: production mode, and every knob at the default
// its package declares.
func Defaults() Config {
	return Config{
		Env:                     "production",
		Addr:                    ":8080",
		OpsAddr:                 DefaultOpsAddr,
		LogLevel:                slog.LevelInfo,
		LogFormat:               "json",
		DBMaxConns:              32,
		DBMinConns:              2,
		DBMaxConnLifetime:       30 * time.Minute,
		DBMaxConnIdleTime:       5 * time.Minute,
		DBConnectTimeout:        5 * time.Second,
		LoaderWait:              loader.DefaultWait,
		LoaderMaxBatch:          loader.DefaultMaxBatch,
		CacheEnabled:            true,
		ResponseCacheEnabled:    true,
		ResponseCacheTTL:        respcache.DefaultTTL,
		LocalCacheBytes:         localcache.DefaultBytes,
		CacheTTLFirstPage:       cache.DefaultTTLFirstPage,
		CacheTTL:                cache.DefaultTTL,
		RedisTimeout:            redisclient.DefaultCallTimeout,
		RedisBreakerFailures:    redisclient.DefaultFailureThreshold,
		RedisBreakerOpen:        redisclient.DefaultOpenTimeout,
		PostCommitWait:          DefaultPostCommitWait,
		LivePollInterval:        live.DefaultPollInterval,
		MaxBodyBytes:            64 << 10,
		MaxHeaderBytes:          128 << 10,
		RequestTimeout:          10 * time.Second,
		ReadHeaderTimeout:       5 * time.Second,
		ReadTimeout:             15 * time.Second,
		WriteTimeout:            30 * time.Second,
		IdleTimeout:             120 * time.Second,
		ShutdownTimeout:         20 * time.Second,
		Limits:                  graph.DefaultLimits(),
		RateLimit:               ratelimit.DefaultRate,
		RateLimitBurst:          ratelimit.DefaultBurst,
		APQTTL:                  apq.DefaultTTL,
		APQMaxBytes:             document.DefaultPersistedQueryBytes,
		DocumentCache:           document.CacheConfig{Bytes: document.DefaultCacheBytes, Entries: document.DefaultCacheEntries},
		WSInitTimeout:           streaming.DefaultInitTimeout,
		WSPingInterval:          streaming.DefaultPingInterval,
		WSWriteTimeout:          streaming.DefaultWriteTimeout,
		WSMaxSubscriptions:      streaming.DefaultMaxSubscriptions,
		WSMaxInFlight:           streaming.DefaultMaxInFlight,
		WSMaxConnsPerUser:       streaming.DefaultMaxConnsPerUser,
		WSMaxConnsPerAddr:       streaming.DefaultMaxConnsPerAddr,
		MaxMutations:            graph.DefaultMaxMutations,
		AdmissionEnabled:        true,
		AdmissionMaxLimit:       admission.DefaultMaxLimit,
		AdmissionMaxWait:        admission.DefaultMaxWait,
		CacheFallbackRate:       cache.DefaultFallbackRate,
		CreateConversationRate:  ratelimit.DefaultCreateRate,
		CreateConversationBurst: ratelimit.DefaultCreateBurst,
		SubscriberBuffer:        live.DefaultBuffer,
		PresenceTTL:             presence.DefaultTTL,
		SSEKeepAlive:            streaming.DefaultKeepAlive,
		DemoUserID:              1,
	}
}
