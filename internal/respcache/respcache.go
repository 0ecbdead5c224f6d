// Package respcache answers repeated GraphQL queries with the response bytes stored the first
// time, skipping execution, and never serves a response once anything it read has changed.
//
// # Exactness
//
// While a query executes, every resolver that runs declares what its result depends on
// (Depend, DependViewer, DependViewerList) or that it depends on nothing that changes (Static).
// A dependency is a Redis key holding a token and the token's value when the data was read:
//
//   - a conversation's history generation (msg:gen:{<conv>}, read in the same round trip as the
//     page, moved by every event of the conversation: a message sent, edited or deleted, a
//     reaction, a rename, a member added or removed);
//   - the viewer's membership token (msg:viewer:{u<id>}, read before execution, moved for each
//     member whose set of conversations changes);
//   - the viewer's list token (msg:list:{u<id>}, read with the membership token, moved for every
//     member of a conversation on each of its events, and for the viewer when they move a read
//     position): what a conversation list shows, in its order, with unread counts.
//
// The response is stored only if it has no errors and every resolver that ran declared
// something, with the tokens read before the data they cover: the viewer's by the lookup that
// missed, before execution; a generation with its page, in one script run (internal/cache). A
// token is moved after the change to its data commits and before the change is acknowledged, so
// a response that missed a change was stored under a token the change moves: a bump that comes
// after the read can only leave the response under the old token, never put it under the new
// one. A stored response is served only if every recorded token still has its recorded value;
// tokens are random, so a deleted or evicted token never matches again, and a token that still
// has its recorded value has not moved since the response was computed. On a standalone Redis
// one Lua script checks every token in the same round trip that fetches the bytes.
//
// The key (Key) covers the viewer, the operation document, the operation name, the variables as
// the client sent them and the rules that admitted the operation (Config.Salt), so a response
// stored for one user is never served to another, nor by an instance that would refuse the
// request.
//
// # On a Redis Cluster
//
// A response lives in its viewer's slot (resp:{u<id>}:…), with the viewer's membership and list
// tokens; the conversations' generations live in their own slots, which one script cannot read.
// (The response cannot live in its conversation's slot instead: the key is needed before
// execution, and what a response depends on is learnt only by executing it.) So a lookup takes
// two steps. First a script in the viewer's slot reads (creating where missing) the viewer's
// tokens and fetches the bytes with the tokens recorded with them; the viewer's tokens it read
// are compared with those recorded. Then the other recorded tokens are read, one MGET per slot
// (per hash tag), pipelined: one more round trip, to every node concerned at once. The response
// is served only if every token read equals the one recorded.
//
// This is as exact as the single script: every token is read after the lookup began (the
// second step after the first), so a change acknowledged before the lookup began had already
// moved its token, and a response recorded under the old token is refused; a token read equal
// to the one recorded had not moved from the moment the response was computed until it was
// read, after the lookup began, so the response shows every change acknowledged by then. The
// reads of the second step feed nothing that is stored: a miss executes under the viewer's
// tokens of the first step, read before execution, as on a standalone Redis.
//
// # The in-process tier
//
// With Config.Local (internal/localcache), a response found in Redis is kept in process with
// the tokens it depends on, read in the same script run (when they matched), and so are the
// viewer's tokens. A later lookup serves it without a Redis round trip when, after a barrier,
// the tier holds every token the response depends on with the value recorded. This is the
// Redis check made against copies that are exact: the tier keeps a token only if no
// invalidation of it came between the read and the keeping, drops it on every change Redis
// reports, and the barrier makes sure that every change completed in Redis before the lookup
// began has been reported and applied (see localcache's package doc). So a token the tier holds
// after the barrier is the value Redis held at some moment after the lookup began, and a
// response that passes is one the script would have passed then: a read that starts after a
// write's answer sees the write, whichever instance served either. A token the tier does not
// hold sends the lookup to Redis, as does any doubt (tracking lost, the barrier failed): the
// tier has emptied itself and answers nothing. The tier keeps a response no longer than Redis
// would (its remaining TTL), so that the staleness bound of a failed token bump (see
// internal/cache) is the same.
//
// # Concurrent misses
//
// With the tier, concurrent misses of one key in one process execute once. The first miss (its
// Redis lookup found nothing current) leads: it executes, and when the response is stored it
// also keeps it in the tier, with the tokens it depends on filled under the snapshot its lookup
// took before reading anything (localcache's Fill): every token of a response is read after
// that snapshot, by the lookup script (the viewer's) or during the execution (a generation with
// its page), so a token the tier keeps is one Redis held after it was read and no invalidation
// has reached the tier since. A lookup that finds a lead in progress for its key, before going
// to Redis or after Redis missed, waits for it to end and then looks in the tier again: after a
// barrier, and serving only what passes the check every tier hit passes. So what a waiter
// serves is exactly what a tier hit serves, the leader's response as if it had been stored in
// Redis and fetched back: it shows every change completed before the waiter began, or a token
// it depends on has moved and the waiter executes. A leader's response that is not stored
// (errors, uncacheable) or that the tier cannot check leaves nothing: one of its waiters that
// had missed in Redis leads the next execution and the others wait for that one, each at most
// maxWaits times before it executes on its own. A lead ends when its response is written, or
// at the latest when its request's context ends.
//
// The tier is off on a Redis Cluster (New ignores Config.Local there): its barrier vouches for
// the invalidations of one Redis, while a cluster's keys change on several nodes, each of which
// would need a tracking connection and a barrier of its own, kept up through failovers and
// slot migrations. Every lookup on a cluster goes to Redis.
//
// # Before the executor
//
// Lookup serves a hit over HTTP before gqlgen runs (graph.Handler): the request's key is
// computed from the request itself, and the response written as the executor would have
// written it. It is the same lookup, counted once, and a miss continues into the executor with
// the lookup's result, so that it is not made twice.
//
// # Limits
//
// Only queries are cached, never mutations or subscriptions. Read receipts (readStates) are
// not stored: they move with every member's reading. While the history cache has a failed
// token bump to retry, or this cache a failed membership- or list-token move (retried every
// second; a move that had not returned when its mutation answered counts as failed, see Late),
// responses are neither served nor stored by this instance: it never serves a response older
// than a change it acknowledged, and other instances may until the retry lands or the
// response's TTL ends. Redis trouble never fails a query: it executes.
package respcache

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
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
	"github.com/threadline/threadline/internal/localcache"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/tick"
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
	Fallbacks *admission.Budget
	// Local is the in-process tier (internal/localcache) that answers hits without a Redis
	// round trip: its tracked prefixes must be TokenPrefixes. Nil: every lookup goes to Redis.
	// Ignored on a Redis Cluster (see the package doc).
	Local *localcache.Tier
	// Salt is mixed into every response key: it names the rules under which the server admits
	// an operation (schema, limits, trusted documents only, introspection), so that a response
	// stored by an instance that admits more is never served by one that admits less
	// (graph.ResponseCacheSalt).
	Salt       string
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// TokenPrefixes are the prefixes of the tokens responses depend on (history generations,
// membership and list tokens): what an in-process tier (Config.Local) must track. A dependency
// under another prefix is valid too, but only Redis can check it.
func TokenPrefixes() []string { return []string{"msg:gen:", "msg:viewer:", "msg:list:"} }

// Cache is the response cache, a gqlgen extension: add it with handler.Server.Use after
// anything that must see every operation (metrics) and before the per-operation loaders, so
// that a hit runs nothing else.
type Cache struct {
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	cfg     Config
	local   *localcache.Tier
	log     *slog.Logger
	stats   struct{ hits, localHits, earlyHits, coalesced, misses, uncacheable, stale, errors atomic.Int64 }
	metrics metrics
	storing chan struct{} // bounds the background stores in flight
	// cluster: rdb is a Redis Cluster, where a lookup checks the tokens in other slots than the
	// response's in a second step (see the package doc).
	cluster bool

	// leads are the executions of missed keys in progress, by response key, that concurrent
	// misses of the same key wait for (see Concurrent misses in the package doc; only with the
	// in-process tier).
	leadsMu sync.Mutex
	leads   map[string]*lead
	// onWait, when set, runs when a lookup begins to wait for a lead (tests).
	onWait func()

	// Token moves that failed or had not landed when their mutation answered, retried every
	// second; while there is any, queries bypass the cache (Bypassed). See markPending.
	pendingMu sync.Mutex
	pending   map[string]uint64 // token key -> mark ticket
	pendingN  atomic.Int64
	tickets   atomic.Uint64
	stop      chan struct{}
	stopped   sync.WaitGroup
}

var (
	_ graphql.HandlerExtension          = (*Cache)(nil)
	_ graphql.OperationParameterMutator = (*Cache)(nil)
	_ graphql.OperationInterceptor      = (*Cache)(nil)
	_ graphql.FieldInterceptor          = (*Cache)(nil)
)

// New returns a response cache over rdb, a standalone Redis or a Redis Cluster.
func New(rdb redis.UniversalClient, breaker *redisclient.Breaker, cfg Config) *Cache {
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.ViewerTokenTTL = cmp.Or(cfg.ViewerTokenTTL, DefaultViewerTokenTTL)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	_, cluster := rdb.(*redis.ClusterClient)
	if cluster && cfg.Local != nil {
		cfg.Log.Info("response cache: in-process tier off: REDIS_URL names a Redis Cluster")
		cfg.Local = nil
	}
	c := &Cache{
		rdb: rdb, breaker: breaker, cfg: cfg, local: cfg.Local, log: cfg.Log, metrics: newMetrics(cfg.Registerer),
		storing: make(chan struct{}, 64), cluster: cluster, pending: map[string]uint64{}, stop: make(chan struct{}),
		leads: map[string]*lead{},
	}
	c.stopped.Go(func() { tick.Every(c.stop, time.Second, c.retryInvalidations) })
	return c
}

// Close stops the retry of failed token moves.
func (c *Cache) Close() {
	close(c.stop)
	c.stopped.Wait()
}

func (c *Cache) ExtensionName() string                   { return extensionName }
func (c *Cache) Validate(graphql.ExecutableSchema) error { return nil }
func viewerTokenKey(viewer int64) string {
	return "msg:viewer:{u" + strconv.FormatInt(viewer, 10) + "}"
}
func listTokenKey(viewer int64) string {
	return "msg:list:{u" + strconv.FormatInt(viewer, 10) + "}"
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

// readTokensLua opens lookupScript and fetchScript: it reads the viewer's membership token
// (KEYS[2]) and list token (KEYS[3]), creating each with ARGV[1] for ARGV[2] seconds if missing,
// into tok ("<membership token> <list token>"), and the stored response (KEYS[1]) into v,
// replying {tok, false} when there is none.
const readTokensLua = `
local function token(key)
  local t = redis.call('GET', key)
  if not t then
    t = ARGV[1]
    redis.call('SET', key, t, 'EX', ARGV[2])
  end
  return t
end
local tok = token(KEYS[2]) .. ' ' .. token(KEYS[3])
local v = redis.call('GET', KEYS[1])
if not v then return {tok, false} end
`

// lookupScript returns the viewer's membership token and list token (creating each with ARGV[1]
// if missing) and the stored response if every dependency recorded with it is current, with
// the milliseconds it has left to live. A stored value is "<n>\n" then n "<key>\n<token>\n"
// pairs, then the data. Replies: {tokens, value, pttl} on a hit, {tokens, false} on a miss,
// {tokens, false, 1} when the stored response is stale, where tokens is "<membership token>
// <list token>".
var lookupScript = redis.NewScript(readTokensLua + `local nl = string.find(v, '\n', 1, true)
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
return {tok, v, redis.call('PTTL', KEYS[1])}
`)

// fetchScript is lookupScript for a Redis Cluster: it reads the viewer's tokens (creating each
// if missing) and the stored response, with the milliseconds it has left to live, but checks no
// dependency, since they live in other slots (see the package doc). Replies: {tokens, value,
// pttl} when a response is stored, {tokens, false} when none is.
var fetchScript = redis.NewScript(readTokensLua + `return {tok, v, redis.call('PTTL', KEYS[1])}
`)

// ExtensionName and the stats key of what MutateOperationParameters leaves for
// InterceptOperation.
const extensionName = "ResponseCache"

// request is what identifies an operation for the cache, as the client sent it: the document
// text (a persisted query's, resolved), the operation name and the variables before coercion.
type request struct {
	query, operationName string
	variables            map[string]any
}

// MutateOperationParameters implements graphql.OperationParameterMutator: it keeps the request
// as sent for InterceptOperation, which keys the response on it. It runs after the document gate
// (added to the handler before the cache), which has resolved a persisted query's text.
func (c *Cache) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if graphql.HasOperationContext(ctx) {
		graphql.GetOperationContext(ctx).Stats.SetExtension(extensionName, &request{query: p.Query, operationName: p.OperationName, variables: p.Variables})
	}
	return nil
}

// InterceptOperation serves a query from the cache or executes it and stores the response.
//
// A lookup made before the executor (Lookup) is used when the executor computes the same key;
// otherwise its lead, if it has one, ends here, before the execution: nothing this request
// executes is kept under that key, and its waiters need not wait for it.
func (c *Cache) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	if opCtx.Operation != nil && opCtx.Operation.Operation == ast.Subscription {
		return withoutCollector(next(ctx)) // Lookup is made for queries only
	}
	prior, _ := ctx.Value(priorKey{}).(*result)
	viewer, key, ok := c.operationKey(ctx, opCtx)
	if !ok {
		prior.endLead()
		return next(ctx)
	}
	res := prior
	if res == nil || res.key != key {
		prior.endLead()
		res = c.lookup(ctx, viewer, key)
	}
	if res.err != nil {
		if res.refused {
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
				Message: "server overloaded: retry shortly", Extensions: map[string]any{"code": string(apperr.ServiceUnavailable)},
			}}})
		}
		return next(ctx)
	}
	if res.hit != nil {
		served := false
		return func(context.Context) *graphql.Response {
			if served {
				return nil
			}
			served = true
			return &graphql.Response{Data: res.hit.data()}
		}
	}
	col := &collector{viewer: viewer, viewerToken: res.tokens.viewer, listToken: res.tokens.list, deps: make(map[string]string, 4)}
	ctx = context.WithValue(ctx, collectorKey{}, col)
	responses := next(ctx)
	return func(ctx context.Context) *graphql.Response {
		resp := responses(ctx)
		c.executed(ctx, res, col, resp)
		return resp
	}
}

// operationKey is the key of the operation's response for its viewer; not ok when the operation
// is not one the cache serves: not a query, the cache bypassed, no viewer, or variables that
// cannot be encoded.
func (c *Cache) operationKey(ctx context.Context, opCtx *graphql.OperationContext) (viewer int64, key string, ok bool) {
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query || c.Bypassed() {
		return 0, "", false
	}
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return 0, "", false
	}
	req, ok := opCtx.Stats.GetExtension(extensionName).(*request)
	if !ok {
		return 0, "", false
	}
	key, ok = c.Key(viewer, req.query, req.operationName, req.variables)
	return viewer, key, ok
}

// endLead ends r's lead, if r has one (nil: no lookup).
func (r *result) endLead() {
	if r != nil {
		r.lead.end()
	}
}

// executed stores the response of an executed miss (nil: none) if it can be, keeps it in the
// in-process tier if the miss leads its key, and then ends the lead: its waiters look in the
// tier.
func (c *Cache) executed(ctx context.Context, res *result, col *collector, resp *graphql.Response) {
	defer res.lead.end()
	if resp == nil {
		return
	}
	if len(resp.Errors) > 0 || col.isUncacheable() || len(resp.Data) == 0 {
		c.stats.uncacheable.Add(1)
		c.metrics.uncacheable.Inc()
		return
	}
	c.storeAsync(ctx, res.key, col, resp.Data)
	if res.lead != nil {
		c.keepLocal(res.snap, res.key, col, resp.Data)
	}
}

// Bypassed reports whether queries must execute without the cache now (Config.Bypass).
func (c *Cache) Bypassed() bool {
	return c.pendingN.Load() > 0 || (c.cfg.Bypass != nil && c.cfg.Bypass())
}

// Key is the key of the response to a request of viewer: the document's text (a persisted
// query's, resolved), the operation name, and the variables as the client sent them, before
// coercion, encoded by encoding/json (which sorts the keys of maps, and writes a json.Number as
// the client wrote it), and Config.Salt. A response is a function of these: coercion is too.
// Two encodings of one value (1 and 1.0) are two keys, which costs a miss, never a wrong
// answer. Not ok when the variables cannot be encoded.
func (c *Cache) Key(viewer int64, query, operationName string, variables map[string]any) (string, bool) {
	vars := []byte("{}")
	if len(variables) > 0 {
		var err error
		if vars, err = json.Marshal(variables); err != nil {
			return "", false
		}
	}
	h := sha256.New()
	var b [20]byte
	h.Write(strconv.AppendInt(b[:0], viewer, 10))
	h.Write([]byte{0})
	h.Write([]byte(c.cfg.Salt))
	h.Write([]byte{0})
	h.Write([]byte(query))
	h.Write([]byte{0})
	h.Write([]byte(operationName))
	h.Write([]byte{0})
	h.Write(vars)
	var sum [sha256.Size]byte
	return responseKey(viewer, hex.EncodeToString(h.Sum(sum[:0])[:20])), true
}

// priorKey carries the result of a lookup made before the executor (Lookup) to
// InterceptOperation, which then makes none.
type priorKey struct{}

// Lookup looks up the stored response to the request key names (Key), for viewer, before the
// executor runs: body is the GraphQL response to send ({"data": ...}, as the executor would
// encode it) on a hit. On a miss body is nil and ctx carries the lookup for the executed
// request, which then neither looks up again nor counts the miss twice. The caller must have
// checked what the executor would (a query, admitted by the document gate and the cost limit
// under the rules Config.Salt names) and Bypassed.
func (c *Cache) Lookup(ctx context.Context, viewer int64, key string) ([]byte, context.Context) {
	res := c.lookup(ctx, viewer, key)
	if res.hit != nil {
		c.stats.earlyHits.Add(1)
		c.metrics.earlyHits.Inc()
		return res.hit.body, ctx
	}
	return nil, context.WithValue(ctx, priorKey{}, res)
}

// viewerTokens are the viewer's tokens, read by the lookup.
type viewerTokens struct{ viewer, list string }

// result is the outcome of a lookup: a hit, or the viewer's tokens for the execution of a
// miss, or an error (refused: the fallback budget is spent). A miss that leads the execution of
// its key (see Concurrent misses in the package doc) has a lead, to end once the response is
// kept, and the snapshot of the tier taken before its lookup read anything.
type result struct {
	key     string
	hit     *stored
	tokens  viewerTokens
	err     error
	refused bool
	lead    *lead
	snap    localcache.Snapshot
}

// stored is a stored response as the in-process tier keeps it: its dependencies and the
// response's encoding, {"data": <data>}.
type stored struct {
	deps []dep
	body []byte
}

type dep struct{ key, token string }

const bodyPrefix, bodySuffix = `{"data":`, `}`

func (s *stored) data() []byte { return s.body[len(bodyPrefix) : len(s.body)-len(bodySuffix)] }

// lookup finds the stored response for key, counting the hit, miss or error: first in the
// in-process tier, where a response is served only after a barrier, and only if the tier holds
// every token it depends on with the value recorded; then in Redis. With the tier, a lookup
// that finds an execution of key in progress in this process waits for it and looks in the tier
// again (before going to Redis, and after Redis missed); a miss that finds none leads one.
func (c *Cache) lookup(ctx context.Context, viewer int64, key string) *result {
	if c.local != nil {
		l := c.leading(key)
		if l != nil {
			c.await(ctx, l)
		}
		if s := c.localLookup(ctx, key); s != nil {
			if l != nil {
				c.countCoalesced()
			}
			c.countLocalHit()
			return &result{key: key, hit: s}
		}
		c.local.Miss()
	}
	res := &result{key: key}
	res.err = c.redisLookup(ctx, viewer, res)
	switch {
	case res.err != nil:
		if !errors.Is(res.err, redisclient.ErrOpen) {
			c.countError()
			c.log.WarnContext(ctx, "response cache lookup failed", "err", res.err)
			if c.cfg.Fallbacks != nil && !c.cfg.Fallbacks.Allow() {
				c.metrics.fallbacksRefused.Inc()
				res.refused = true
			}
		}
	case res.hit != nil:
		c.countHit()
	case c.local != nil:
		// A lead whose response the tier could not keep, or that a write made stale before
		// this lookup began, leaves its waiters to lead the next execution (one of them) or wait
		// for it (the others); after maxWaits waits a lookup executes on its own.
		for waits := 0; ; waits++ {
			l, leader := c.lead(ctx, key)
			if leader {
				res.lead = l
				break
			}
			if waits == maxWaits {
				break
			}
			c.await(ctx, l)
			if s := c.localLookup(ctx, key); s != nil {
				c.countCoalesced()
				c.countLocalHit()
				return &result{key: key, hit: s, tokens: res.tokens}
			}
			if ctx.Err() != nil {
				break
			}
		}
		c.countMiss()
	default:
		c.countMiss()
	}
	return res
}

func (c *Cache) countCoalesced() { c.stats.coalesced.Add(1); c.metrics.coalesced.Inc() }

func (c *Cache) countLocalHit() {
	c.local.Hit()
	c.stats.localHits.Add(1)
	c.metrics.localHits.Inc()
	c.countHit()
}

// localLookup returns the response the in-process tier holds for key if, after a barrier, the
// tier holds every token it depends on with the value recorded; nil otherwise. A response whose
// token moved is dropped.
func (c *Cache) localLookup(ctx context.Context, key string) *stored {
	v, ok := c.local.Get(key)
	if !ok {
		return nil
	}
	s := v.(*stored)
	if c.local.Barrier(ctx) != nil {
		return nil
	}
	switch c.localState(s) {
	case current:
		return s
	case outdated: // certainly stale here; Redis may hold a newer one
		c.local.Delete(key)
	}
	return nil
}

// maxWaits bounds the executions of one key a lookup that missed in Redis waits for before it
// executes on its own (see lookup).
const maxWaits = 3

// lead is an execution of a missed key in progress, which concurrent misses of the key wait for.
type lead struct {
	c    *Cache
	key  string
	done chan struct{}
	once sync.Once
	stop func() bool // stops the end at the context's end
}

// leading returns the execution of key in progress, if any.
func (c *Cache) leading(key string) *lead {
	c.leadsMu.Lock()
	defer c.leadsMu.Unlock()
	return c.leads[key]
}

// lead returns the execution of key in progress and false, or a new one that the caller leads
// and true. A lead ends when its response is kept (InterceptOperation), or at the latest when
// ctx ends, so that no waiter outlives the request it waits for.
func (c *Cache) lead(ctx context.Context, key string) (*lead, bool) {
	c.leadsMu.Lock()
	defer c.leadsMu.Unlock()
	if l, ok := c.leads[key]; ok {
		return l, false
	}
	l := &lead{c: c, key: key, done: make(chan struct{})}
	c.leads[key] = l
	l.stop = context.AfterFunc(ctx, l.end)
	return l, true
}

// end ends the lead (nil: none); waiters then look in the tier.
func (l *lead) end() {
	if l == nil {
		return
	}
	l.once.Do(func() {
		l.c.leadsMu.Lock()
		if l.c.leads[l.key] == l {
			delete(l.c.leads, l.key)
		}
		l.c.leadsMu.Unlock()
		close(l.done)
		if l.stop != nil {
			l.stop()
		}
	})
}

// await waits for l to end, or for ctx to.
func (c *Cache) await(ctx context.Context, l *lead) {
	if c.onWait != nil {
		c.onWait()
	}
	select {
	case <-l.done:
	case <-ctx.Done():
	}
}

// keepLocal keeps an executed response in the in-process tier, as a Redis hit's is kept, with
// the tokens it depends on filled under snap, taken before any of them was read (see Concurrent
// misses in the package doc). If the tier refuses a token (an invalidation of it came since
// snap), the response is not kept: it could not pass the check anyway.
func (c *Cache) keepLocal(snap localcache.Snapshot, key string, col *collector, data []byte) {
	col.mu.Lock()
	deps := make([]dep, 0, len(col.deps))
	for k, t := range col.deps {
		deps = append(deps, dep{key: k, token: t})
	}
	col.mu.Unlock()
	for _, d := range deps {
		if !c.local.Fill(snap, d.key, d.token) {
			return
		}
	}
	c.setLocal(key, &stored{deps: deps, body: responseBody(data)}, c.cfg.TTL)
}

// setLocal keeps s in the in-process tier under key for ttl, weighed by its body and deps.
func (c *Cache) setLocal(key string, s *stored, ttl time.Duration) {
	c.local.Set(key, s, int64(len(s.body)+64*len(s.deps)), ttl)
}

// responseBody is the GraphQL response {"data": data}, as a stored response keeps it.
func responseBody[T string | []byte](data T) []byte {
	b := make([]byte, 0, len(bodyPrefix)+len(data)+len(bodySuffix))
	return append(append(append(b, bodyPrefix...), data...), bodySuffix...)
}

type localState int

const (
	unknown  localState = iota // a token the tier does not hold: Redis must say
	current                    // every token holds its recorded value
	outdated                   // a token moved
)

// localState checks s's dependencies against the tokens the tier holds; call it after a
// barrier.
func (c *Cache) localState(s *stored) localState {
	for _, d := range s.deps {
		v, ok := c.local.Get(d.key)
		if !ok {
			return unknown
		}
		if v.(string) != d.token {
			return outdated
		}
	}
	return current
}

// redisLookup runs the lookup script (on a Redis Cluster, the fetch script, then the check of
// the tokens in other slots), and keeps in the in-process tier what it learnt: the viewer's
// tokens, and on a hit the response and the tokens it depends on, all current when they were
// read.
func (c *Cache) redisLookup(ctx context.Context, viewer int64, res *result) error {
	var snap localcache.Snapshot
	if c.local != nil {
		snap = c.local.Snapshot()
		res.snap = snap
	}
	script := lookupScript
	if c.cluster {
		script = fetchScript
	}
	var value string
	var pttl int64
	err := c.breaker.Do(ctx, func(ctx context.Context) error {
		vals, err := script.Run(ctx, c.rdb, []string{res.key, viewerTokenKey(viewer), listTokenKey(viewer)},
			newToken(), int(c.cfg.ViewerTokenTTL/time.Second)).Slice()
		if err != nil {
			return err
		}
		if len(vals) < 2 {
			return errors.New("response cache: unexpected script reply")
		}
		tok, ok := vals[0].(string)
		viewerTok, listTok, found := strings.Cut(tok, " ")
		if !ok || !found {
			return errors.New("response cache: unexpected token reply")
		}
		res.tokens = viewerTokens{viewer: viewerTok, list: listTok}
		if s, ok := vals[1].(string); ok && len(vals) > 2 {
			value = s
			pttl, _ = vals[2].(int64)
		} else if len(vals) > 2 {
			c.stats.stale.Add(1)
			c.metrics.stale.Inc()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if value != "" {
		s, err := decodeStored(value)
		if err != nil {
			c.log.WarnContext(ctx, "response cache: undecodable stored response", "err", err)
			return nil // a miss
		}
		if c.cluster {
			fresh, err := c.current(ctx, viewer, res.tokens, s.deps)
			if err != nil {
				return err
			}
			if !fresh {
				c.stats.stale.Add(1)
				c.metrics.stale.Inc()
				return nil // a miss, under the viewer's tokens the fetch read
			}
		}
		res.hit = s
		if c.local != nil {
			for _, d := range s.deps {
				c.local.Fill(snap, d.key, d.token)
			}
			if pttl > 0 {
				c.setLocal(res.key, s, time.Duration(pttl)*time.Millisecond)
			}
		}
	}
	if c.local != nil {
		c.local.Fill(snap, viewerTokenKey(viewer), res.tokens.viewer)
		c.local.Fill(snap, listTokenKey(viewer), res.tokens.list)
	}
	return nil
}

// current is the second step of a lookup on a Redis Cluster: it reports whether every
// dependency of a fetched response still has its recorded token. The viewer's tokens are
// compared with those the fetch read (their slot is the response's); the others are read now,
// after the fetch, with one MGET per hash tag (keys of one tag share a slot), pipelined, so in
// one round trip to every node concerned at once. A missing token matches nothing.
func (c *Cache) current(ctx context.Context, viewer int64, tokens viewerTokens, deps []dep) (bool, error) {
	viewerKey, listKey := viewerTokenKey(viewer), listTokenKey(viewer)
	var tags []string
	byTag := make(map[string][]dep, len(deps))
	for _, d := range deps {
		switch d.key {
		case viewerKey:
			if d.token != tokens.viewer {
				return false, nil
			}
		case listKey:
			if d.token != tokens.list {
				return false, nil
			}
		default:
			tag := hashTag(d.key)
			if _, ok := byTag[tag]; !ok {
				tags = append(tags, tag)
			}
			byTag[tag] = append(byTag[tag], d)
		}
	}
	if len(tags) == 0 {
		return true, nil
	}
	fresh := true
	err := c.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := c.rdb.Pipeline()
		cmds := make([]*redis.SliceCmd, len(tags))
		for i, tag := range tags {
			group := byTag[tag]
			keys := make([]string, len(group))
			for j, d := range group {
				keys[j] = d.key
			}
			cmds[i] = pipe.MGet(ctx, keys...)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for i, cmd := range cmds {
			group := byTag[tags[i]]
			vals := cmd.Val()
			if len(vals) != len(group) {
				return errors.New("response cache: unexpected MGET reply")
			}
			for j, v := range vals {
				if t, ok := v.(string); !ok || t != group[j].token {
					fresh = false
				}
			}
		}
		return nil
	})
	return fresh, err
}

// hashTag is the part of key that Redis Cluster hashes to choose its slot: the text between the
// first '{' and the next '}' when not empty, else the whole key.
func hashTag(key string) string {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			return key[s+1 : s+1+e]
		}
	}
	return key
}

// decodeStored reads a stored value (see lookupScript) into its dependencies and the
// response's encoding.
func decodeStored(v string) (*stored, error) {
	bad := errors.New("response cache: malformed stored value")
	line, rest, ok := strings.Cut(v, "\n")
	n, err := strconv.Atoi(line)
	if !ok || err != nil || n < 0 || n > len(rest) {
		return nil, bad
	}
	s := &stored{deps: make([]dep, n)}
	for i := range n {
		var k, t string
		if k, rest, ok = strings.Cut(rest, "\n"); !ok {
			return nil, bad
		}
		if t, rest, ok = strings.Cut(rest, "\n"); !ok {
			return nil, bad
		}
		s.deps[i] = dep{key: k, token: t}
	}
	if rest == "" {
		return nil, bad
	}
	s.body = responseBody(rest)
	return s, nil
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

// AfterCommit is the response cache's chat.Hook, in one Redis round trip: users whose set of
// conversations changed get new membership tokens, and everyone whose conversation list shows
// the change (the members, and those it removed) new list tokens.
func (c *Cache) AfterCommit(ctx context.Context, ch chat.Change) {
	c.invalidate(ctx, ch.MembersChanged, append(ch.Members, ch.MembersChanged...))
}

// Late is the hook's chat.Hook.Late: the mutation answers before its token moves have returned
// (Redis slow or down), so this instance bypasses the cache until moves sent from now on land.
func (c *Cache) Late(ch chat.Change) {
	c.markPending(tokenKeys(ch.MembersChanged, append(ch.Members, ch.MembersChanged...)))
}

// InvalidateViewers moves the membership and list tokens of users whose set of conversations
// changed.
func (c *Cache) InvalidateViewers(ctx context.Context, userIDs []int64) {
	c.invalidate(ctx, userIDs, userIDs)
}

// tokenKeys are the keys of the membership tokens of viewers and the list tokens of lists.
func tokenKeys(viewers, lists []int64) []string {
	keys := make([]string, 0, len(viewers)+len(lists))
	for _, u := range viewers {
		keys = append(keys, viewerTokenKey(u))
	}
	for _, u := range lists {
		keys = append(keys, listTokenKey(u))
	}
	return keys
}

// invalidate moves the membership tokens of viewers and the list tokens of lists. A failure is
// retried in the background; until the retry lands this instance bypasses the cache, so it never
// serves a response older than a change it acknowledged (other instances may, until the retry
// lands or the response's TTL ends, as with the history cache's generations).
func (c *Cache) invalidate(ctx context.Context, viewers, lists []int64) {
	keys := tokenKeys(viewers, lists)
	if len(keys) == 0 {
		return
	}
	t := c.tickets.Add(1)
	if err := c.move(context.WithoutCancel(ctx), keys); err != nil {
		c.metrics.invalidationFailures.Inc()
		c.log.WarnContext(ctx, "response cache: token invalidation failed; retried, and this instance bypasses the cache until it lands",
			"viewers", viewers, "lists", lists, "err", err)
		c.markPending(keys)
		return
	}
	c.clearPending(keys, t)
}

// move sets a new token at each key, in one round trip.
func (c *Cache) move(ctx context.Context, keys []string) error {
	return c.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := c.rdb.Pipeline()
		for _, k := range keys {
			pipe.Set(ctx, k, newToken(), c.cfg.ViewerTokenTTL)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
}

// markPending records token moves that have not landed. As in the history cache, each mark and
// each move takes a ticket, and a move that succeeds clears only the marks older than its own
// ticket: only a move sent after the mark is known to follow the change's commit.
func (c *Cache) markPending(keys []string) {
	if len(keys) == 0 {
		return
	}
	c.pendingMu.Lock()
	t := c.tickets.Add(1)
	for _, k := range keys {
		c.pending[k] = t
	}
	c.pendingN.Store(int64(len(c.pending)))
	c.pendingMu.Unlock()
	c.metrics.pending.Set(float64(c.pendingN.Load()))
}

func (c *Cache) clearPending(keys []string, t uint64) {
	if c.pendingN.Load() == 0 {
		return
	}
	c.pendingMu.Lock()
	for _, k := range keys {
		if mark, ok := c.pending[k]; ok && mark < t {
			delete(c.pending, k)
		}
	}
	c.pendingN.Store(int64(len(c.pending)))
	c.pendingMu.Unlock()
	c.metrics.pending.Set(float64(c.pendingN.Load()))
}

// retryInvalidations moves the pending tokens; it runs every second, so they are moved until
// it succeeds.
func (c *Cache) retryInvalidations() {
	if c.pendingN.Load() == 0 {
		return
	}
	c.pendingMu.Lock()
	keys := slices.Collect(maps.Keys(c.pending))
	c.pendingMu.Unlock()
	t := c.tickets.Add(1)
	if err := c.move(context.Background(), keys); err == nil {
		c.clearPending(keys, t)
	}
}

// collector gathers an executing operation's dependencies.
type collector struct {
	viewer      int64
	viewerToken string
	listToken   string
	mu          sync.Mutex
	deps        map[string]string
	uncacheable bool
}

type collectorKey struct{}

// withoutCollector gives each response of h (each event of a subscription) a nil collector,
// which InterceptField finds after the few contexts of the fields above it instead of walking
// every context of the connection and the operation to find none: a subscription's fields are
// the most frequent on a busy instance (every event, for every subscriber), and nothing of
// them is recorded (only queries' responses are stored).
func withoutCollector(h graphql.ResponseHandler) graphql.ResponseHandler {
	return func(ctx context.Context) *graphql.Response {
		return h(context.WithValue(ctx, collectorKey{}, (*collector)(nil)))
	}
}

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
	col, _ := ctx.Value(collectorKey{}).(*collector)
	if col == nil {
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

// declare marks the current field as declaring its dependencies and returns the running
// query's collector (nil outside a cached query, where no field is marked: InterceptField
// marks fields only under a collector).
func declare(ctx context.Context) *collector {
	col, _ := ctx.Value(collectorKey{}).(*collector)
	if col == nil {
		return nil
	}
	if m, ok := ctx.Value(fieldMarkKey{}).(*fieldMark); ok {
		m.declared.Store(true)
	}
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

// DependViewerList declares that the current field's result depends on the viewer's
// conversations and anything in them: their order, their last messages, the viewer's read
// positions and unread counts. The viewer's list token moves with every event of any of their
// conversations, every change of their memberships and every move of their read position.
func DependViewerList(ctx context.Context) {
	if col := declare(ctx); col != nil {
		col.add(listTokenKey(col.viewer), col.listToken)
	}
}

// ListToken returns the viewer's list token as the running query read it (zero outside a
// cached query): the token under which a conversation list, and every conversation in it as
// the viewer sees it, was read.
func ListToken(ctx context.Context) chat.Token {
	col, _ := ctx.Value(collectorKey{}).(*collector)
	if col == nil || col.listToken == "" {
		return chat.Token{}
	}
	return chat.Token{Key: listTokenKey(col.viewer), Value: col.listToken}
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
	Hits int64 `json:"hits"`
	// LocalHits are the hits the in-process tier answered, EarlyHits those answered over HTTP
	// before the executor ran; both are counted in Hits too. Coalesced are the local hits that
	// waited for a concurrent execution of the same key in this process (see Concurrent misses
	// in the package doc).
	LocalHits     int64   `json:"localHits"`
	EarlyHits     int64   `json:"earlyHits"`
	Coalesced     int64   `json:"coalesced"`
	Misses        int64   `json:"misses"`
	Uncacheable   int64   `json:"uncacheable"`
	StaleRejected int64   `json:"staleRejected"`
	Errors        int64   `json:"errors"`
	HitRatio      float64 `json:"hitRatio"`
	// Local is the in-process tier's state; null when there is none.
	Local *localcache.Stats `json:"local"`
}

// Stats returns the counters since start.
func (c *Cache) Stats() Stats {
	s := Stats{Hits: c.stats.hits.Load(), LocalHits: c.stats.localHits.Load(), EarlyHits: c.stats.earlyHits.Load(), Coalesced: c.stats.coalesced.Load(),
		Misses: c.stats.misses.Load(), Uncacheable: c.stats.uncacheable.Load(), StaleRejected: c.stats.stale.Load(), Errors: c.stats.errors.Load()}
	if total := s.Hits + s.Misses; total > 0 {
		s.HitRatio = float64(s.Hits) / float64(total)
	}
	if c.local != nil {
		ls := c.local.Stats()
		s.Local = &ls
	}
	return s
}

type metrics struct {
	hits, localHits, earlyHits, coalesced, misses, errors, uncacheable, stale, invalidationFailures, fallbacksRefused prometheus.Counter
	pending                                                                                                           prometheus.Gauge
}

// hitsHelp is the help of threadline_cache_hits_total, which the history cache registers too.
const hitsHelp = "Cache lookups that found what they looked for (the response cache's include the in-process tier's)."

func newMetrics(reg prometheus.Registerer) metrics {
	labels := prometheus.Labels{"cache": "response"}
	m := metrics{
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_hits_total", Help: hitsHelp, ConstLabels: labels}),
		localHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_response_cache_local_hits_total", Help: "Response-cache hits answered by the in-process tier, without a Redis round trip (part of the hits).",
		}),
		earlyHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_response_cache_early_hits_total", Help: "Response-cache hits answered over HTTP before the GraphQL executor ran (part of the hits).",
		}),
		coalesced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_response_cache_coalesced_total", Help: "Response-cache hits that waited for a concurrent execution of the same query in this process (part of the local hits).",
		}),
		misses:      prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_misses_total", Help: "Cache lookups not found in Redis.", ConstLabels: labels}),
		errors:      prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_errors_total", Help: "Failed Redis cache operations (the read went to PostgreSQL).", ConstLabels: labels}),
		uncacheable: prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_response_cache_uncacheable_total", Help: "Executed query responses not stored: errors, or a resolver that declared no dependency."}),
		stale:       prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_response_cache_stale_rejected_total", Help: "Stored responses refused because a dependency had changed."}),
		invalidationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_response_cache_invalidation_failures_total", Help: "Membership- and list-token bumps after a change that failed (retried).",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_response_cache_invalidations_pending",
			Help: "Membership and list tokens whose move after a change failed or had not landed when the mutation answered, waiting for a retry; while any is pending this instance bypasses the response cache.",
		}),
		fallbacksRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_cache_fallbacks_refused_total", ConstLabels: labels,
			Help: "Reads refused with SERVICE_UNAVAILABLE because a Redis timeout would have sent them to the slow path past the fallback budget.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.localHits, m.earlyHits, m.coalesced, m.misses, m.errors, m.uncacheable, m.stale, m.invalidationFailures, m.fallbacksRefused, m.pending)
	}
	return m
}
