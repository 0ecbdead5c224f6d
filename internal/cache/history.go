// Package cache is the history cache: offset pages of conversation history kept in Redis per
// (conversation, limit, offset), in front of the PostgreSQL store.
//
// # Protocol
//
// Each conversation has a generation token at msg:gen:{<conv>}, a random string, and its pages
// live at msg:history:{<conv>}:<token>:<limit>:<offset>. The braces are a Redis Cluster hash
// tag: a conversation's keys share a slot.
//
//   - A read fetches the token (creating it if missing) and the page in one round trip: one Lua
//     script per page, all the pages of a dataloader batch pipelined together. On a miss it reads
//     PostgreSQL (one statement for all the misses of the batch) and stores each page under the
//     token it read.
//   - A write commits, then sets a new random token (Invalidate), then publishes. A reader that
//     raced the write can only have stored its page under the old token, which no later reader
//     uses: after sendMessage returns, every read sees the message. Tokens are random, not
//     counters, so a token that was evicted or deleted can never come back, and neither can
//     the pages stored under it.
//   - Pages expire after TTLFirstPage (offset 0) or TTL (deeper pages); tokens after
//     GenerationTTL. Concurrent misses of one page in one process run one query (a
//     multi-key singleflight that also keeps a finished result for a moment, so stragglers
//     that missed in Redis just before the fill land share it).
//
// # Conversations with their pages
//
// CachedConversationPages serves a page together with its conversation, as a member sees it,
// from Redis: a hit is one round trip and no SQL. The conversation is kept per (conversation,
// token, viewer) at msg:conv:{<conv>}:<token>:<viewer>, beside the pages, and is stored only
// for a viewer who is a member: the key exists only if the viewer was a member when the row was
// read. Both parts are covered by the conversation's generation token:
//
//   - the row (title, created_at, last_seq, last_message_at, last_event_seq) changes only with an
//     event of the conversation (a message sent, edited or deleted, a reaction, a rename, a
//     member added, removed or leaving: every statement that writes the row takes the next
//     event_seq, see db/query), and every event moves the token (AfterCommit);
//   - whether the viewer is a member changes only when a member is added, removed or leaves,
//     which are events too.
//
// So the record is stored under the token read before the database read, exactly as a page is,
// and the argument above holds for it: a removal acknowledged before a read began
// moved the token, and the read finds no record under the new one. The viewer's read position
// (Conversation.ViewerLastReadSeq) moves without an event (markRead), so no generation covers
// it: it is not stored, and conversations read here carry none (zero). A caller that needs it
// reads through ConversationsByIDForMember.
//
// # When Redis fails
//
// Every Redis call goes through a circuit breaker with a short deadline. A failed or skipped
// Redis read is never a failed read: the pages come from PostgreSQL. If the token bump after a
// commit fails, the failure is logged, counted in threadline_cache_invalidation_failures_total,
// and retried every second until it succeeds. Until then this instance reads that conversation
// from PostgreSQL, so it never serves a page older than a write it acknowledged; other instances
// may serve the page as it was before the write until the retry lands or the page's TTL ends
// (30 s for the first page by default), whichever comes first.
//
// A bump that has not returned when its mutation answers (the application bounds that wait
// while Redis is failing: see package app) is treated as failed at the answer (Late): the
// conversation is pending from then on, and the same argument holds. A pending conversation is
// cleared only by a bump sent after it was marked, hence after the write committed (see
// markPending); threadline_cache_invalidations_pending counts them.
//
// # Replicas
//
// With a streaming replica (DATABASE_REPLICA_URL), a token also holds a WAL position,
// "<random>.<16 hex digits>": a position at or past the commit of every write the token follows
// (chat.Change.Position, read on the primary after the commit). The bump keeps the greater of
// its write's position and the old token's, in one script, so bumps of concurrent writes landing
// out of order never move it back. A miss's read carries the greatest position of its tokens
// (chat.WithReadPosition), and the database store serves it from the replica only if the
// replica has replayed that far (package db): a reader after an acknowledged write reads a
// token at or past the write's position, so it sees the write, from either server.
//
// A token a reader created (the key had expired or been evicted) holds no position; the first
// miss under it gives it the primary's position, read then (Config.Position), unless the token
// moved meanwhile: no write it could follow committed after that. A token without a position
// sends its reads to the primary: one a reader created and no miss has given a position yet, one
// a retried bump wrote, one of a write whose position could not be
// read, and every token when Redis cannot be read. One case is left: if a token is evicted
// between the bumps of two concurrent writes of one conversation and the later-committed one's
// bump lands first, the other's bump writes its own, older, position; Redis evicts keys only
// under a maxmemory policy, and the token of a conversation being written is the most recently
// used of its keys.
package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/admission"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/tick"
)

// Defaults of Config.
const (
	DefaultTTLFirstPage  = 30 * time.Second
	DefaultTTL           = 60 * time.Second
	DefaultGenerationTTL = 24 * time.Hour
	DefaultFallbackRate  = 500 // reads per second
)

// errOverloaded refuses a read that a Redis timeout would have sent to PostgreSQL past the
// fallback budget.
var errOverloaded = apperr.New(apperr.ServiceUnavailable, "server overloaded: retry shortly")

// Config tunes the history cache. Zero values take the defaults.
type Config struct {
	TTLFirstPage  time.Duration // offset 0; default DefaultTTLFirstPage
	TTL           time.Duration // other offsets; default DefaultTTL
	GenerationTTL time.Duration // tokens; default DefaultGenerationTTL
	// Linger keeps a finished fill in process this long, for readers that missed in Redis just
	// before it landed; default 1s.
	Linger time.Duration
	// FillTimeout bounds a miss's PostgreSQL read. The read survives the cancellation of the
	// request that led it, since other requests may be waiting for it, but not that request's
	// deadline; default 10s.
	FillTimeout time.Duration
	// Fallbacks bounds the reads that go to PostgreSQL after a Redis call failed while the
	// circuit breaker was closed (a timeout: Redis up but slow, usually because the machine is
	// overloaded); the others are refused with SERVICE_UNAVAILABLE. Reads while the breaker is
	// open (Redis down) always go to PostgreSQL. Nil: no bound. The application shares one
	// budget (DefaultFallbackRate a second) between the history and the response cache.
	Fallbacks *admission.Budget
	// ConversationTokens makes ConversationsByIDForMember read each conversation's generation
	// token first, for a response cache to record (one more Redis round trip). Without a
	// response cache nobody reads them.
	ConversationTokens bool
	// Position, set when a streaming replica serves reads, reads the primary's WAL position
	// now. A miss whose conversation's token holds no position gives it that one (unless the
	// token moved meanwhile), so that the conversation's later misses may go to the replica;
	// see Replicas in the package doc.
	Position   func(ctx context.Context) (uint64, error)
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// Store is a chat.Store whose MessagePages are cached in Redis; every other method passes
// through to the wrapped store (a decorator with the store's own method set).
type Store struct {
	chat.Store
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	cfg     Config
	log     *slog.Logger
	flights flightGroup
	stats   stats
	metrics metrics

	// beforeFill, when set, runs between a miss's SQL read and its fill (tests).
	beforeFill func()

	pendingMu sync.Mutex
	pending   map[int64]uint64 // conversations whose token bump failed or is late -> mark ticket
	pendingN  atomic.Int64     // len(pending), read without the lock on every read
	tickets   atomic.Uint64    // orders marks and bumps (see markPending)
	stop      chan struct{}
	stopped   sync.WaitGroup
}

// NewStore returns a Store caching store's pages. Call Close when done.
func NewStore(store chat.Store, rdb redis.UniversalClient, breaker *redisclient.Breaker, cfg Config) *Store {
	cfg.TTLFirstPage = cmp.Or(cfg.TTLFirstPage, DefaultTTLFirstPage)
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.GenerationTTL = cmp.Or(cfg.GenerationTTL, DefaultGenerationTTL)
	cfg.Linger = cmp.Or(cfg.Linger, time.Second)
	cfg.FillTimeout = cmp.Or(cfg.FillTimeout, 10*time.Second)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	h := &Store{
		Store: store, rdb: rdb, breaker: breaker, cfg: cfg, log: cfg.Log,
		metrics: newMetrics(cfg.Registerer),
		pending: make(map[int64]uint64),
		stop:    make(chan struct{}),
	}
	h.flights.linger = cfg.Linger
	h.stopped.Go(func() { tick.Every(h.stop, time.Second, h.retryInvalidations) })
	return h
}

// HasPending reports whether a token bump is waiting to be retried: until it lands, responses
// cached elsewhere may hold pages older than an acknowledged write.
func (h *Store) HasPending() bool { return h.pendingN.Load() > 0 }

// Close stops the retry of failed invalidations.
func (h *Store) Close() {
	close(h.stop)
	h.stopped.Wait()
}

// GenerationKey is the Redis key of a conversation's generation token.
func GenerationKey(conv int64) string { return "msg:gen:{" + strconv.FormatInt(conv, 10) + "}" }

// generation names the token a page of conv was read under, for the response cache.
func generation(conv int64, token string) chat.Token {
	return chat.Token{Key: GenerationKey(conv), Value: token}
}

func pagePrefix(conv int64) string { return "msg:history:{" + strconv.FormatInt(conv, 10) + "}:" }

// pageSuffix ends a page's key: its limit and offset, and for a page by cursor its bound.
func pageSuffix(k chat.PageKey) string {
	s := ":" + strconv.Itoa(k.Limit) + ":" + strconv.Itoa(k.Offset)
	if k.Before != 0 {
		s += ":b" + strconv.FormatInt(k.Before, 10)
	}
	return s
}

// GenerationLua opens the Lua scripts that work under a conversation's generation token (this
// cache's readScript and tokenScript, and the typing service's, which keeps member sets under
// it): it reads the token (KEYS[1]) into gen, creating it with ARGV[1] (a NewGeneration) for
// ARGV[2] seconds if missing. Every script creates a missing token the same way.
const GenerationLua = `
local gen = redis.call('GET', KEYS[1])
if not gen then
  gen = ARGV[1]
  redis.call('SET', KEYS[1], gen, 'EX', ARGV[2])
end
`

// readScript returns the conversation's token, creating it with ARGV[1] if missing, and the
// page stored under it (false when missing). The page key is built from the token, inside the
// conversation's hash slot.
var readScript = redis.NewScript(GenerationLua + `return {gen, redis.call('GET', ARGV[3] .. gen .. ARGV[4])}
`)

// NewGeneration returns a fresh generation token.
func NewGeneration() string {
	return strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
}

// MessagePages returns the pages in key order: cached ones from Redis, the rest from the store.
// Conversations whose token bump is still pending are read from the store, so this instance never
// serves a page older than a write it acknowledged.
func (h *Store) MessagePages(ctx context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	if h.pendingN.Load() > 0 {
		return h.pagesAroundPending(ctx, keys)
	}
	return h.cachedPages(ctx, keys)
}

func (h *Store) pagesAroundPending(ctx context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	var cachedKeys, directKeys []chat.PageKey
	var cachedIdx, directIdx []int
	h.pendingMu.Lock()
	for i, k := range keys {
		if _, ok := h.pending[k.ConversationID]; ok {
			directKeys, directIdx = append(directKeys, k), append(directIdx, i)
		} else {
			cachedKeys, cachedIdx = append(cachedKeys, k), append(cachedIdx, i)
		}
	}
	h.pendingMu.Unlock()
	pages := make([]chat.Page, len(keys))
	for _, part := range []struct {
		keys []chat.PageKey
		idx  []int
		read func(context.Context, []chat.PageKey) ([]chat.Page, error)
	}{{directKeys, directIdx, h.Store.MessagePages}, {cachedKeys, cachedIdx, h.cachedPages}} {
		if len(part.keys) == 0 {
			continue
		}
		got, err := part.read(ctx, part.keys)
		if err != nil {
			return nil, err
		}
		for j, i := range part.idx {
			pages[i] = got[j]
		}
	}
	return pages, nil
}

// readFailed accounts for a failed read of the cache, after which the caller serves from
// PostgreSQL, uncached, unless it returns errOverloaded. Redis down or skipped by the breaker is
// not an error of the read. With the breaker closed, Redis is up but did not answer in time:
// most likely the machine is overloaded, and sending every read to PostgreSQL (ten times the
// cost) would make it worse, so only FallbackRate reads a second may.
func (h *Store) readFailed(ctx context.Context, err error) error {
	if errors.Is(err, redisclient.ErrOpen) {
		return nil
	}
	h.countError()
	h.log.WarnContext(ctx, "history cache read failed", "err", err)
	if h.cfg.Fallbacks != nil && !h.cfg.Fallbacks.Allow() {
		h.metrics.fallbacksRefused.Inc()
		return errOverloaded
	}
	return nil
}

func (h *Store) cachedPages(ctx context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	tokens, cached, err := h.read(ctx, keys)
	if err != nil {
		if err := h.readFailed(ctx, err); err != nil {
			return nil, err
		}
		return h.Store.MessagePages(ctx, keys)
	}
	pages := make([]chat.Page, len(keys))
	var missIdx []int
	for i := range keys {
		if cached[i] != nil {
			p, err := decodePage(cached[i], keys[i].ConversationID)
			if err == nil {
				p.Generation = generation(keys[i].ConversationID, tokens[i])
				pages[i] = p
				h.countHit()
				continue
			}
			h.log.WarnContext(ctx, "history cache: undecodable page", "err", err)
		}
		h.countMiss()
		missIdx = append(missIdx, i)
	}
	if len(missIdx) == 0 {
		return pages, nil
	}
	if h.cfg.Position != nil {
		h.givePositions(ctx, keys, tokens, missIdx)
	}
	if err := h.fillMisses(ctx, keys, tokens, missIdx, pages); err != nil {
		return nil, err
	}
	return pages, nil
}

// read fetches the token and the stored page of every key in one pipelined round trip.
func (h *Store) read(ctx context.Context, keys []chat.PageKey) (tokens []string, pages [][]byte, err error) {
	tokens = make([]string, len(keys))
	pages = make([][]byte, len(keys))
	genTTL := strconv.Itoa(int(h.cfg.GenerationTTL / time.Second))
	err = h.evalPerKey(ctx, len(keys), 1, func(ctx context.Context, pipe redis.Pipeliner, i int) *redis.Cmd {
		k := keys[i]
		return readScript.Eval(ctx, pipe, []string{GenerationKey(k.ConversationID)},
			NewGeneration(), genTTL, pagePrefix(k.ConversationID), pageSuffix(k))
	}, func(i int, token string, stored [][]byte) {
		tokens[i], pages[i] = token, stored[0]
	})
	return tokens, pages, err
}

// evalPerKey runs, in one pipelined round trip, the script eval returns for each of n keys,
// whose reply is the key's generation token followed by `values` stored values (each a string,
// or nil where nothing is stored), and hands each reply to got. The stored slice is reused
// from one call of got to the next.
func (h *Store) evalPerKey(ctx context.Context, n, values int, eval func(ctx context.Context, pipe redis.Pipeliner, i int) *redis.Cmd, got func(i int, token string, stored [][]byte)) error {
	return h.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := h.rdb.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for i := range cmds {
			cmds[i] = eval(ctx, pipe, i)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		stored := make([][]byte, values)
		for i, cmd := range cmds {
			vals, err := cmd.Slice()
			if err != nil || len(vals) != 1+values {
				return errors.New("history cache: unexpected script reply")
			}
			tok, ok := vals[0].(string)
			if !ok {
				return errors.New("history cache: unexpected token reply")
			}
			for j, v := range vals[1:] {
				stored[j] = nil
				if s, ok := v.(string); ok {
					stored[j] = []byte(s)
				}
			}
			got(i, tok, stored)
		}
		return nil
	})
}

// fillMisses reads the missed pages from the store, one statement for those this call leads,
// stores them under the tokens read, and waits for the ones other calls are already reading.
func (h *Store) fillMisses(ctx context.Context, keys []chat.PageKey, tokens []string, missIdx []int, pages []chat.Page) error {
	flightKeys := make([]string, len(missIdx))
	for j, i := range missIdx {
		flightKeys[j] = pagePrefix(keys[i].ConversationID) + tokens[i] + pageSuffix(keys[i])
	}
	led, joined := h.flights.begin(flightKeys)
	if len(led) > 0 {
		leadKeys := make([]chat.PageKey, len(led))
		for j, f := range led {
			leadKeys[j] = keys[missIdx[f.index]]
		}
		// Other requests may wait for this read: it survives this request's cancellation, but
		// not its deadline, nor FillTimeout.
		deadline := time.Now().Add(h.cfg.FillTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		sqlCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		leadTokens := make([]string, len(led))
		for j, f := range led {
			leadTokens[j] = tokens[missIdx[f.index]]
		}
		// A replica may serve the read once it has replayed what the tokens' writes committed.
		sqlCtx = readPosition(sqlCtx, leadTokens...)
		fresh, err := h.Store.MessagePages(sqlCtx, leadKeys)
		cancel()
		if err == nil {
			if h.beforeFill != nil {
				h.beforeFill()
			}
			h.fill(ctx, led, leadKeys, fresh)
		}
		for j, f := range led {
			if err != nil {
				h.flights.finish(f, chat.Page{}, err)
				continue
			}
			fresh[j].Generation = generation(keys[missIdx[f.index]].ConversationID, tokens[missIdx[f.index]])
			pages[missIdx[f.index]] = fresh[j]
			h.flights.finish(f, fresh[j], nil)
		}
		if err != nil {
			return err
		}
	}
	for _, f := range joined {
		p, err := f.wait(ctx)
		if err != nil {
			return err
		}
		pages[missIdx[f.index]] = p
	}
	return nil
}

// fill writes freshly read pages under the tokens they were read with, in one round trip.
func (h *Store) fill(ctx context.Context, led []*flightRef, keys []chat.PageKey, pages []chat.Page) {
	h.storeFills(ctx, func(ctx context.Context, pipe redis.Pipeliner) int {
		for j, f := range led {
			pipe.Set(ctx, f.key, encodePage(pages[j]), h.pageTTL(keys[j]))
		}
		return len(led)
	})
}

// pageTTL is how long a stored page of k lives: TTLFirstPage for the newest page (offset 0, no
// cursor), TTL for the others.
func (h *Store) pageTTL(k chat.PageKey) time.Duration {
	if k.Offset == 0 && k.Before == 0 {
		return h.cfg.TTLFirstPage
	}
	return h.cfg.TTL
}

// storeFills sends, in one round trip that outlives ctx's cancellation, the SETs that set queues
// on pipe, and counts the pages set says it queued as fills. A failure is counted and logged,
// never returned: a fill that did not happen is a later miss.
func (h *Store) storeFills(ctx context.Context, set func(ctx context.Context, pipe redis.Pipeliner) int) {
	n := 0
	err := h.breaker.Do(context.WithoutCancel(ctx), func(ctx context.Context) error {
		pipe := h.rdb.Pipeline()
		if n = set(ctx, pipe); n == 0 {
			return nil
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		if !errors.Is(err, redisclient.ErrOpen) {
			h.countError()
			h.log.WarnContext(ctx, "history cache fill failed", "err", err)
		}
		return
	}
	h.metrics.fills.Add(float64(n))
}

// AfterCommit is the cache's chat.Hook: every change to a conversation (a message sent, edited
// or deleted, a reaction, a member added or gone, a new title) moves it to a new generation, so
// that every page holding the message, at any offset, and every stored response that read the
// conversation, is out of date at once. It runs before the change is published (see package
// app), so a subscriber that receives an event and reads the history finds it.
func (h *Store) AfterCommit(ctx context.Context, c chat.Change) {
	if c.Event != nil {
		h.InvalidateAt(ctx, c.ConversationID, c.Position)
	}
}

// Late is the hook's chat.Hook.Late: the mutation answers before its token bump has returned
// (Redis slow or down), so the conversation is read from PostgreSQL here, and the response
// cache bypassed, until a bump issued from now on lands (the one in flight, issued before this
// mark, does not count: see markPending).
func (h *Store) Late(c chat.Change) {
	if c.Event != nil {
		h.markPending(c.ConversationID)
	}
}

// ConversationsByIDForMember reads the conversations (see chat.Store) with the generation token
// of each, read first: what the conversation shows (title, members, events) is then no newer
// than the token, and a response that records it is out of date as soon as the conversation
// changes.
func (h *Store) ConversationsByIDForMember(ctx context.Context, userID int64, ids []int64) ([]*chat.Conversation, error) {
	if !h.cfg.ConversationTokens {
		return h.Store.ConversationsByIDForMember(ctx, userID, ids)
	}
	tokens, err := h.tokens(ctx, ids)
	if err != nil {
		if !errors.Is(err, redisclient.ErrOpen) {
			h.countError()
		}
		tokens = nil // read without tokens: responses are not stored
	}
	convs, err := h.Store.ConversationsByIDForMember(ctx, userID, ids)
	if err != nil || tokens == nil {
		return convs, err
	}
	for i, c := range convs {
		if c != nil {
			c.Generation = generation(c.ID, tokens[i])
		}
	}
	return convs, nil
}

// tokenScript returns the conversation's token, creating it with ARGV[1] if missing.
var tokenScript = redis.NewScript(GenerationLua + `return gen
`)

// tokens reads (creating where missing) the generation tokens of conversations, in one
// pipelined round trip.
func (h *Store) tokens(ctx context.Context, convs []int64) ([]string, error) {
	out := make([]string, len(convs))
	genTTL := strconv.Itoa(int(h.cfg.GenerationTTL / time.Second))
	err := h.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := h.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(convs))
		for i, c := range convs {
			cmds[i] = tokenScript.Eval(ctx, pipe, []string{GenerationKey(c)}, NewGeneration(), genTTL)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for i, cmd := range cmds {
			tok, err := cmd.Text()
			if err != nil {
				return err
			}
			out[i] = tok
		}
		return nil
	})
	return out, err
}

// Invalidate gives the conversation a new generation token: call it after a write commits and
// before the write is acknowledged. On failure the bump is retried in the background.
func (h *Store) Invalidate(ctx context.Context, conversationID int64) {
	h.InvalidateAt(ctx, conversationID, 0)
}

// InvalidateAt is Invalidate for a write whose commit is at or before WAL position pos (0:
// unknown), which the new token keeps (see Replicas in the package doc).
func (h *Store) InvalidateAt(ctx context.Context, conversationID int64, pos uint64) {
	t := h.tickets.Add(1)
	if err := h.bump(context.WithoutCancel(ctx), conversationID, pos); err != nil {
		h.metrics.invalidationFailures.Inc()
		h.log.WarnContext(ctx, "history cache invalidation failed; pages may be stale until their TTL or a successful retry",
			"conversation", conversationID, "err", err)
		h.markPending(conversationID)
		return
	}
	h.clearPending(conversationID, t)
}

// markPending records that a write to conv committed whose token bump has not landed. Every mark
// takes a ticket, and so does every bump before it is sent; a successful bump clears only the
// marks older than its own ticket: a bump sent after the mark was made is sent after the
// write committed (the mark is made after the commit), so every reader that gets its token
// reads PostgreSQL after the write. A bump sent before the mark may have landed before the
// commit, and proves nothing.
func (h *Store) markPending(conv int64) {
	h.pendingMu.Lock()
	h.pending[conv] = h.tickets.Add(1)
	h.pendingN.Store(int64(len(h.pending)))
	h.pendingMu.Unlock()
	h.metrics.pending.Set(float64(h.pendingN.Load()))
}

// clearPending drops conv's mark if it is older than the bump of ticket t that succeeded.
func (h *Store) clearPending(conv int64, t uint64) {
	if h.pendingN.Load() == 0 {
		return
	}
	h.pendingMu.Lock()
	if mark, ok := h.pending[conv]; ok && mark < t {
		delete(h.pending, conv)
		h.pendingN.Store(int64(len(h.pending)))
	}
	h.pendingMu.Unlock()
	h.metrics.pending.Set(float64(h.pendingN.Load()))
}

// bumpScript sets the conversation's token to ARGV[1], or, given a WAL position ARGV[2] (16
// hexadecimal digits, so that strings compare as numbers), to ARGV[1] "." position, where the
// position is the greater of ARGV[2] and the one the old token holds: bumps of concurrent writes
// may land in any order, and the token must stay at or past every write it follows.
var bumpScript = redis.NewScript(`
local tok = ARGV[1]
if ARGV[2] ~= '' then
  local pos = ARGV[2]
  local old = redis.call('GET', KEYS[1])
  if old then
    local i = string.find(old, '.', 1, true)
    if i then
      local p = string.sub(old, i + 1)
      if p > pos then pos = p end
    end
  end
  tok = tok .. '.' .. pos
end
redis.call('SET', KEYS[1], tok, 'EX', ARGV[3])
return tok
`)

func (h *Store) bump(ctx context.Context, conversationID int64, pos uint64) error {
	arg := ""
	if pos > 0 {
		arg = fmt.Sprintf("%016x", pos)
	}
	ttl := strconv.Itoa(int(h.cfg.GenerationTTL / time.Second))
	return h.breaker.Do(ctx, func(ctx context.Context) error {
		return bumpScript.Run(ctx, h.rdb, []string{GenerationKey(conversationID)}, NewGeneration(), arg, ttl).Err()
	})
}

// positionScript gives a token the position ARGV[2] (sets it to ARGV[1] "." ARGV[2]) if it is
// still ARGV[1], keeping its expiry; it returns the new token, or false when the token moved.
var positionScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
  local tok = ARGV[1] .. '.' .. ARGV[2]
  redis.call('SET', KEYS[1], tok, 'KEEPTTL')
  return tok
end
return false
`)

// givePositions gives the tokens of the missed keys that hold no position (created by a reader)
// the primary's position, read now, and puts the new tokens in tokens. A token without one
// follows no write whose bump is still in Redis: the writes it could follow had their bumps
// evicted or expired before it was created, so they committed before now. A write whose bump
// lands after the token was read moves it, and then the token is left alone (the script
// compares); one whose bump lands after the position was given keeps the greater. Failures
// leave the tokens as they were: those misses go to the primary.
func (h *Store) givePositions(ctx context.Context, keys []chat.PageKey, tokens []string, missIdx []int) {
	var convs []int64
	olds := map[int64]string{}
	for _, i := range missIdx {
		c := keys[i].ConversationID
		if _, ok := tokenPosition(tokens[i]); ok {
			continue
		}
		if _, ok := olds[c]; !ok {
			olds[c] = tokens[i]
			convs = append(convs, c)
		}
	}
	if len(convs) == 0 {
		return
	}
	pos, err := h.cfg.Position(ctx)
	if err != nil || pos == 0 {
		return
	}
	hex := fmt.Sprintf("%016x", pos)
	news := make(map[int64]string, len(convs))
	err = h.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := h.rdb.Pipeline()
		cmds := make([]*redis.Cmd, len(convs))
		for j, c := range convs {
			cmds[j] = positionScript.Eval(ctx, pipe, []string{GenerationKey(c)}, olds[c], hex)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for j, c := range convs {
			if tok, err := cmds[j].Text(); err == nil {
				news[c] = tok
			}
		}
		return nil
	})
	if err != nil {
		if !errors.Is(err, redisclient.ErrOpen) {
			h.countError()
		}
		return
	}
	for i := range keys {
		if tok, ok := news[keys[i].ConversationID]; ok && tokens[i] == olds[keys[i].ConversationID] {
			tokens[i] = tok
		}
	}
}

// tokenPosition returns the WAL position a token holds (see bumpScript), if any.
func tokenPosition(token string) (uint64, bool) {
	i := strings.IndexByte(token, '.')
	if i < 0 {
		return 0, false
	}
	pos, err := strconv.ParseUint(token[i+1:], 16, 64)
	return pos, err == nil
}

// readPosition returns ctx carrying the greatest position of tokens (chat.WithReadPosition), or
// ctx unchanged when one of them holds none: a read under it then goes to the primary.
func readPosition(ctx context.Context, tokens ...string) context.Context {
	var want uint64
	for _, t := range tokens {
		pos, ok := tokenPosition(t)
		if !ok {
			return ctx
		}
		want = max(want, pos)
	}
	return chat.WithReadPosition(ctx, want)
}

// WithReadPosition returns ctx carrying the WAL position of the conversation's token (read, or
// created without one, in one round trip), for a read of the conversation that a replica may
// serve once it has replayed that far; ctx unchanged when Redis fails or the token holds none.
func (h *Store) WithReadPosition(ctx context.Context, conversationID int64) context.Context {
	tokens, err := h.tokens(ctx, []int64{conversationID})
	if err != nil {
		if !errors.Is(err, redisclient.ErrOpen) {
			h.countError()
		}
		return ctx
	}
	return readPosition(ctx, tokens...)
}

// retryInvalidations retries failed (or late) token bumps; it runs every second, so they are
// retried until they succeed.
func (h *Store) retryInvalidations() {
	h.pendingMu.Lock()
	convs := slices.Collect(maps.Keys(h.pending))
	h.pendingMu.Unlock()
	for _, c := range convs {
		ticket := h.tickets.Add(1)
		// Without a position: the write's is not kept, and a later write's bump may have
		// landed meanwhile. The conversation's reads go to the primary until its next write.
		if err := h.bump(context.Background(), c, 0); err != nil {
			return // still failing: try again next tick
		}
		h.clearPending(c, ticket)
	}
}

// stats are the counters behind /health/cache.
type stats struct {
	hits, misses, errors atomic.Int64
}

func (h *Store) countHit()   { h.stats.hits.Add(1); h.metrics.hits.Inc() }
func (h *Store) countMiss()  { h.stats.misses.Add(1); h.metrics.misses.Inc() }
func (h *Store) countError() { h.stats.errors.Add(1); h.metrics.errors.Inc() }

// Stats is the history cache's part of /health/cache.
type Stats struct {
	Hits     int64   `json:"hits"`
	Misses   int64   `json:"misses"`
	Errors   int64   `json:"errors"`
	HitRatio float64 `json:"hitRatio"`
}

// Stats returns the counters since start.
func (h *Store) Stats() Stats {
	s := Stats{Hits: h.stats.hits.Load(), Misses: h.stats.misses.Load(), Errors: h.stats.errors.Load()}
	if total := s.Hits + s.Misses; total > 0 {
		s.HitRatio = float64(s.Hits) / float64(total)
	}
	return s
}

type metrics struct {
	hits, misses, errors, fills prometheus.Counter
	invalidationFailures        prometheus.Counter
	fallbacksRefused            prometheus.Counter
	pending                     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) metrics {
	labels := prometheus.Labels{"cache": "history"}
	m := metrics{
		hits:   prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_hits_total", Help: "Cache lookups that found what they looked for (the response cache's include the in-process tier's).", ConstLabels: labels}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_misses_total", Help: "Cache lookups not found in Redis.", ConstLabels: labels}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_errors_total", Help: "Failed Redis cache operations (the read went to PostgreSQL).", ConstLabels: labels}),
		fills:  prometheus.NewCounter(prometheus.CounterOpts{Name: "threadline_cache_fills_total", Help: "Pages stored in Redis after a miss.", ConstLabels: labels}),
		invalidationFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_cache_invalidation_failures_total",
			Help: "Generation-token bumps after a commit that failed (retried; staleness bounded by the page TTL).",
		}),
		fallbacksRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_cache_fallbacks_refused_total", ConstLabels: labels,
			Help: "Reads refused with SERVICE_UNAVAILABLE because a Redis timeout would have sent them to the slow path past the fallback budget.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_cache_invalidations_pending",
			Help: "Token bumps after a commit that failed or had not landed when the mutation answered, waiting for a retry; while any is pending the cache reads around it.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.hits, m.misses, m.errors, m.fills, m.invalidationFailures, m.fallbacksRefused, m.pending)
	}
	return m
}
