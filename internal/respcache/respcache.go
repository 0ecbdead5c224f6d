// Package respcache answers repeated GraphQL queries with the response bytes stored the first
// time, skipping execution, and never serves a response once anything it read has changed.
//
// # Exactness
//
// While a query executes, every resolver that runs declares what its result depends on
// (Depend, DependViewer) or that it depends on nothing that changes (Static). A dependency is a
// Redis key holding a token and the token's value when the data was read: a conversation's
// history generation (msg:gen:{<conv>}, read in the same round trip as the page, moved by every
// event of the conversation: a message sent, edited or deleted, a reaction, a rename, a member
// added or removed), or the viewer's membership token (msg:viewer:{u<id>}, read before
// execution, moved for each member whose set of conversations changes). The response is stored only if it has no errors
// and every resolver that ran declared something. A stored response is served only if every
// recorded token still has its recorded value, checked by one Lua script in the same round trip
// that fetches the bytes; tokens are random, so a deleted or evicted token never matches again.
//
// The key covers the viewer, the operation document, the operation name and the variables, so a
// response stored for one user is never served to another.
//
// # Limits
//
// Only queries are cached, never mutations or subscriptions. The conversation list, and a
// message search over all the viewer's conversations, are not stored: they depend on every
// conversation of the viewer (a search of one conversation is). With a Redis Cluster the
// response cache is off (its dependencies live in other slots than the response): queries
// execute, still helped by the history cache. While the history cache has a failed token bump to
// retry, responses are neither served nor stored. Redis trouble never fails a query: it executes.
package respcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/admission"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
)

// Defaults of Config.
const (
	DefaultTTL            = 60 * time.Second
	DefaultViewerTokenTTL = 24 * time.Hour
)

// Config tunes the response cache.
type Config struct {
	TTL time.Duration // how long a stored response lives; default DefaultTTL
	// ViewerTokenTTL is the lifetime of a viewer's membership token; default DefaultViewerTokenTTL.
	ViewerTokenTTL time.Duration
	// Bypass, when it returns true, makes queries execute without the cache (used while the
	// history cache has a failed invalidation to retry).
	Bypass func() bool
	// Fallbacks bounds the queries that execute because a lookup failed while the circuit
	// breaker was closed (a Redis timeout, usually an overloaded machine): past it they are
	// refused with SERVICE_UNAVAILABLE rather than executed. Nil: no bound.
	Fallbacks  *admission.Budget
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// Cache is the response cache, a gqlgen extension: add it with handler.Server.Use after
// anything that must see every operation (metrics) and before the per-operation loaders, so
// that a hit runs nothing else.
type Cache struct {
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	cfg     Config
	log     *slog.Logger
	stats   struct{ hits, misses, uncacheable, stale, errors atomic.Int64 }
	metrics metrics
	storing chan struct{} // bounds the background stores in flight
}

var (
	_ graphql.HandlerExtension     = (*Cache)(nil)
	_ graphql.OperationInterceptor = (*Cache)(nil)
	_ graphql.FieldInterceptor     = (*Cache)(nil)
)

// New returns a response cache over rdb, or nil when rdb is a Redis Cluster (see the package
// doc). A nil *Cache is not to be added to the handler.
func New(rdb redis.UniversalClient, breaker *redisclient.Breaker, cfg Config) *Cache {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.ViewerTokenTTL == 0 {
		cfg.ViewerTokenTTL = DefaultViewerTokenTTL
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if _, cluster := rdb.(*redis.ClusterClient); cluster {
		cfg.Log.Info("response cache off: REDIS_URL names a Redis Cluster")
		return nil
	}
	return &Cache{rdb: rdb, breaker: breaker, cfg: cfg, log: cfg.Log, metrics: newMetrics(cfg.Registerer), storing: make(chan struct{}, 64)}
}

func (c *Cache) ExtensionName() string                   { return "ResponseCache" }
func (c *Cache) Validate(graphql.ExecutableSchema) error { return nil }
func viewerTokenKey(viewer int64) string {
	return "msg:viewer:{u" + strconv.FormatInt(viewer, 10) + "}"
}
func responseKey(viewer int64, hash string) string {
	return "resp:{u" + strconv.FormatInt(viewer, 10) + "}:" + hash
}
func newToken() string {
	return strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
}
func (c *Cache) countHit()   { c.stats.hits.Add(1); c.metrics.hits.Inc() }
func (c *Cache) countMiss()  { c.stats.misses.Add(1); c.metrics.misses.Inc() }
func (c *Cache) countError() { c.stats.errors.Add(1); c.metrics.errors.Inc() }

// lookupScript returns the viewer's membership token (creating it with ARGV[1] if missing) and
// the stored response's data if every dependency recorded with it is current. A stored value is
// "<n>\n" then n "<key>\n<token>\n" pairs, then the data. Replies: {token, data} on a hit,
// {token, false} on a miss, {token, false, 1} when the stored response is stale.
var lookupScript = redis.NewScript(`
local tok = redis.call('GET', KEYS[2])
if not tok then
  tok = ARGV[1]
  redis.call('SET', KEYS[2], tok, 'EX', ARGV[2])
end
local v = redis.call('GET', KEYS[1])
if not v then return {tok, false} end
local nl = string.find(v, '\n', 1, true)
local n = tonumber(string.sub(v, 1, nl - 1))
local pos = nl + 1
for i = 1, n do
  local e1 = string.find(v, '\n', pos, true)
  local k = string.sub(v, pos, e1 - 1)
  local e2 = string.find(v, '\n', e1 + 1, true)
  local t = string.sub(v, e1 + 1, e2 - 1)
  pos = e2 + 1
  if redis.call('GET', k) ~= t then return {tok, false, 1} end
end
return {tok, string.sub(v, pos)}
`)

// InterceptOperation serves a query from the cache or executes it and stores the response.
func (c *Cache) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query || (c.cfg.Bypass != nil && c.cfg.Bypass()) {
		return next(ctx)
	}
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return next(ctx)
	}
	key, err := operationKey(viewer, opCtx)
	if err != nil {
		return next(ctx)
	}
	viewerToken, data, stale, err := c.lookup(ctx, viewer, key)
	if err != nil {
		if !errors.Is(err, redisclient.ErrOpen) {
			c.countError()
			c.log.WarnContext(ctx, "response cache lookup failed", "err", err)
			if c.cfg.Fallbacks != nil && !c.cfg.Fallbacks.Allow() {
				c.metrics.fallbacksRefused.Inc()
				return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
					Message: "server overloaded: retry shortly", Extensions: map[string]any{"code": string(apperr.ServiceUnavailable)},
				}}})
			}
		}
		return next(ctx)
	}
	if data != nil {
		c.countHit()
		served := false
		return func(context.Context) *graphql.Response {
			if served {
				return nil
			}
			served = true
			return &graphql.Response{Data: data}
		}
	}
	if stale {
		c.stats.stale.Add(1)
		c.metrics.stale.Inc()
	}
	c.countMiss()
	col := &collector{viewer: viewer, viewerToken: viewerToken, deps: make(map[string]string, 4)}
	ctx = context.WithValue(ctx, collectorKey{}, col)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		if resp == nil {
			return nil
		}
		if len(resp.Errors) > 0 || col.isUncacheable() || len(resp.Data) == 0 {
			c.stats.uncacheable.Add(1)
			c.metrics.uncacheable.Inc()
			return resp
		}
		c.storeAsync(ctx, key, col, resp.Data)
		return resp
	}
}

// operationKey hashes what makes two requests the same: viewer, document, operation name and
// variables (json.Marshal sorts map keys, so equal variables encode equally).
func operationKey(viewer int64, opCtx *graphql.OperationContext) (string, error) {
	vars, err := json.Marshal(opCtx.Variables)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	var b [8]byte
	h.Write(strconv.AppendInt(b[:0], viewer, 10))
	h.Write([]byte{0})
	h.Write([]byte(opCtx.RawQuery))
	h.Write([]byte{0})
	h.Write([]byte(opCtx.OperationName))
	h.Write([]byte{0})
	h.Write(vars)
	var sum [sha256.Size]byte
	return responseKey(viewer, hex.EncodeToString(h.Sum(sum[:0])[:20])), nil
}

func (c *Cache) lookup(ctx context.Context, viewer int64, key string) (viewerToken string, data []byte, stale bool, err error) {
	err = c.breaker.Do(ctx, func(ctx context.Context) error {
		vals, err := lookupScript.Run(ctx, c.rdb, []string{key, viewerTokenKey(viewer)},
			newToken(), int(c.cfg.ViewerTokenTTL/time.Second)).Slice()
		if err != nil {
			return err
		}
		if len(vals) < 2 {
			return errors.New("response cache: unexpected script reply")
		}
		tok, ok := vals[0].(string)
		if !ok {
			return errors.New("response cache: unexpected token reply")
		}
		viewerToken = tok
		if s, ok := vals[1].(string); ok {
			data = []byte(s)
		}
		stale = len(vals) > 2
		return nil
	})
	return viewerToken, data, stale, err
}

// storeAsync stores a response in the background: the client does not wait for it.
func (c *Cache) storeAsync(ctx context.Context, key string, col *collector, data []byte) {
	value := col.encode(data)
	select {
	case c.storing <- struct{}{}:
	default:
		return // too many stores in flight: skip this one
	}
	go func() {
		defer func() { <-c.storing }()
		err := c.breaker.Do(context.WithoutCancel(ctx), func(ctx context.Context) error {
			return c.rdb.Set(ctx, key, value, c.cfg.TTL).Err()
		})
		if err != nil && !errors.Is(err, redisclient.ErrOpen) {
			c.countError()
			c.log.Warn("response cache store failed", "err", err)
		}
	}()
}

// AfterCommit is the response cache's chat.Hook: users whose set of conversations changed get
// new membership tokens (InvalidateViewers).
func (c *Cache) AfterCommit(ctx context.Context, ch chat.Change) {
	if len(ch.MembersChanged) > 0 {
		c.InvalidateViewers(ctx, ch.MembersChanged)
	}
}

// InvalidateViewers moves the membership tokens of users whose set of conversations changed.
func (c *Cache) InvalidateViewers(ctx context.Context, userIDs []int64) {
	err := c.breaker.Do(context.WithoutCancel(ctx), func(ctx context.Context) error {
		pipe := c.rdb.Pipeline()
		for _, u := range userIDs {
			pipe.Set(ctx, viewerTokenKey(u), newToken(), c.cfg.ViewerTokenTTL)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		c.metrics.invalidationFailures.Inc()
		c.log.WarnContext(ctx, "response cache: membership invalidation failed; stored responses of these users may be stale until their TTL",
			"users", userIDs, "err", err)
	}
}

// collector gathers an executing operation's dependencies.
type collector struct {
	viewer      int64
	viewerToken string
	mu          sync.Mutex
	deps        map[string]string
	uncacheable bool
}

type collectorKey struct{}

func (col *collector) add(key, token string) {
	col.mu.Lock()
	if token == "" {
		col.uncacheable = true
	} else if prev, ok := col.deps[key]; ok && prev != token {
		col.uncacheable = true // read under two generations: not one consistent state
	} else {
		col.deps[key] = token
	}
	col.mu.Unlock()
}

func (col *collector) isUncacheable() bool {
	col.mu.Lock()
	defer col.mu.Unlock()
	return col.uncacheable
}

func (col *collector) encode(data []byte) []byte {
	col.mu.Lock()
	defer col.mu.Unlock()
	out := strconv.AppendInt(make([]byte, 0, len(data)+64*len(col.deps)+8), int64(len(col.deps)), 10)
	out = append(out, '\n')
	for k, t := range col.deps {
		out = append(out, k...)
		out = append(out, '\n')
		out = append(out, t...)
		out = append(out, '\n')
	}
	return append(out, data...)
}

// fieldMark records whether the resolver of one field declared its dependencies.
type fieldMark struct{ declared atomic.Bool }

type fieldMarkKey struct{}

// InterceptField checks that every resolver that runs during a cached query declares its
// dependencies; one that does not makes the response uncacheable.
func (c *Cache) InterceptField(ctx context.Context, next graphql.Resolver) (any, error) {
	col, ok := ctx.Value(collectorKey{}).(*collector)
	if !ok {
		return next(ctx)
	}
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || !fc.IsResolver {
		return next(ctx)
	}
	mark := &fieldMark{}
	res, err := next(context.WithValue(ctx, fieldMarkKey{}, mark))
	if !mark.declared.Load() {
		col.mu.Lock()
		col.uncacheable = true
		col.mu.Unlock()
	}
	return res, err
}

func declare(ctx context.Context) *collector {
	if m, ok := ctx.Value(fieldMarkKey{}).(*fieldMark); ok {
		m.declared.Store(true)
	}
	col, _ := ctx.Value(collectorKey{}).(*collector)
	return col
}

// Depend declares that the current field's result was read under tok. A zero token (the data
// was not read under a token) makes the response uncacheable.
func Depend(ctx context.Context, tok chat.Token) {
	if col := declare(ctx); col != nil {
		col.add(tok.Key, tok.Value)
	}
}

// DependViewer declares that the current field's result depends on which conversations the
// viewer is a member of.
func DependViewer(ctx context.Context) {
	if col := declare(ctx); col != nil {
		col.add(viewerTokenKey(col.viewer), col.viewerToken)
	}
}

// Static declares that the current field's result depends on nothing that ever changes.
func Static(ctx context.Context) { declare(ctx) }

// Uncacheable declares that the current field's result must not be stored.
func Uncacheable(ctx context.Context) {
	if col := declare(ctx); col != nil {
		col.mu.Lock()
		col.uncacheable = true
		col.mu.Unlock()
	}
}

// Stats is the response cache's part of /health/cache.
type Stats struct {
	Hits          int64   `json:"hits"`
	Misses        int64   `json:"misses"`
	Uncacheable   int64   `json:"uncacheable"`
	StaleRejected int64   `json:"staleRejected"`
	Errors        int64   `json:"errors"`
	HitRatio      float64 `json:"hitRatio"`
}

// Stats returns the counters since start.
func (c *Cache) Stats() Stats {
	s := Stats{Hits: c.stats.hits.Load(), Misses: c.stats.misses.Load(), Uncacheable: c.stats.uncacheable.Load(),
		StaleRejected: c.stats.stale.Load(), Errors: c.stats.errors.Load()}
	if total := s.Hits + s.Misses; total > 0 {
		s.HitRatio = float64(s.Hits) / float64(total)
	}
	return s
}

type metrics struct {
	hits, misses, errors, uncacheable, stale, invalidationFailures, fallbacksRefused prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	labels := prometheus.Labels{"cache": "response"}
	m := metrics{
		hits:        prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_hits_total", Help: "Cache lookups answered from Redis.", ConstLabels: labels}),
		misses:      prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_misses_total", Help: "Cache lookups not found in Redis.", ConstLabels: labels}),
		errors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_errors_total", Help: "Failed Redis cache operations (the read went to PostgreSQL).", ConstLabels: labels}),
		uncacheable: prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_response_cache_uncacheable_total", Help: "Executed query responses not stored: errors, or a resolver that declared no dependency."}),
		stale:       prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_response_cache_stale_rejected_total", Help: "Stored responses refused because a dependency had changed."}),
		invalidationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_response_cache_invalidation_failures_total", Help: "Membership-token bumps after createConversation that failed.",
		}),
		fallbacksRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_cache_fallbacks_refused_total", ConstLabels: labels,
			Help: "Reads refused with SERVICE_UNAVAILABLE because a Redis timeout would have sent them to the slow path past the fallback budget.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.errors, m.uncacheable, m.stale, m.invalidationFailures, m.fallbacksRefused)
	}
	return m
}
