// Package typing keeps typing indicators: who is typing in which conversation, for a few
// seconds, in Redis only. Nothing here writes PostgreSQL, and nothing moves the history cache's
// generations or the response cache's tokens: typing is not an event of the conversation.
//
// # What is stored
//
//   - msg:typing:{<conv>}: a sorted set of the user ids typing in the conversation, each scored
//     by the time (Redis's clock, in ms) its typing ends: TTL (6 s) after its last
//     setTyping(true). The key itself expires 1 s after the latest entry would.
//   - msg:members:{<conv>}:<generation>: a hash of the conversation's member ids to their names,
//     read from PostgreSQL on a miss and kept for MembersTTL (60 s), under the conversation's
//     history-cache generation token (msg:gen:{<conv>}, package cache). Every event of a
//     conversation moves its generation, a membership change included, so a member set is only
//     ever read under the generation it was read for: it is exact, never stale, and the warm
//     path reads no PostgreSQL. A reader reads the generation before PostgreSQL and stores what
//     it read under that generation, as the history cache does with pages; a writer commits,
//     then moves the generation. (With the history cache off, AfterCommit moves it on
//     membership changes instead.)
//   - msg:typing:events:{<conv>}: the Pub/Sub channel of the conversation's typing changes
//     (SPUBLISH/SSUBSCRIBE on a Redis Cluster). The braces are the hash tag: every key and the
//     channel of one conversation are in one slot, so each script below touches one slot.
//
// # Set
//
// setTyping is one Lua script, one round trip when the member set is warm: read the
// generation, check the viewer in the member set (a miss returns the generation; the member set
// is then read from PostgreSQL, stored, and the script runs again), drop expired entries, then
// add the viewer with a new end time or remove them, and publish on the channel only when the
// viewer's state changed (not typing to typing, or typing to not). A setTyping(true) repeated
// while typing only moves the end time: subscribers see one event per change, never a
// duplicate.
//
// # Subscribers
//
// The sorted set is the truth and a published message only says "look again". Each instance
// holds one Redis subscription per conversation with local subscribers (a room), counted by
// reference, confirmed by a PING after the SUBSCRIBE (as package live does), and keeps the set
// of typists it last delivered. On a message, when the earliest known end time passes (a local
// timer), and when Redis confirms a (re)subscription, the room reads the set again (one script:
// the typists still typing, with their names from the member set and the time they have left)
// and delivers the differences: typing:true for those who started, typing:false for those who
// stopped or whose time ran out, so a client that vanished mid-word stops typing about TTL later
// on every instance. Reads of one room never overlap (one runs, one more is queued), so a
// message that arrives during a read is never lost. A new subscriber first receives typing:true
// for each member typing at that moment.
//
// Each read also checks the room's subscribers against the member set: a subscriber who is no
// longer a member is cut off (NOT_FOUND) before anything more is delivered to anyone.
//
// # When Redis fails
//
// setTyping and subscribing answer SERVICE_UNAVAILABLE (typing cannot be recorded, and
// membership cannot be checked without PostgreSQL, which the warm path never reads);
// Conversation.typing answers an empty list. Open subscriptions stay open: each typist still
// stops at the end time last read (nothing can renew it meanwhile), and the room reads the set
// again when Redis confirms its subscription anew.
package typing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/defaults"
	"github.com/threadline/threadline/internal/pubsub"
	"github.com/threadline/threadline/internal/redisclient"
)

// Defaults of Config.
const (
	DefaultTTL            = 6 * time.Second
	DefaultMembersTTL     = 60 * time.Second
	DefaultBuffer         = 64
	DefaultReadyTimeout   = 2 * time.Second
	DefaultHealthInterval = 5 * time.Second
	DefaultQueryTimeout   = 5 * time.Second
)

// Config configures a Service. Zero values take the defaults.
type Config struct {
	Redis   redis.UniversalClient
	Breaker *redisclient.Breaker // every Redis command goes through it (Pub/Sub does not)
	// Members reads conversations' members from PostgreSQL, in key order (chat.Store's
	// MembershipsByConversations): called on a member-set miss only.
	Members func(ctx context.Context, conversationIDs []int64) ([][]chat.Membership, error)
	// TTL is how long a user types after their last setTyping(true); default DefaultTTL. The
	// schema promises 6 s: tests alone change it.
	TTL time.Duration
	// MembersTTL is how long a member set stays in Redis; default DefaultMembersTTL.
	MembersTTL time.Duration
	// Buffer is how many events a subscriber may have waiting before it is cut off; default
	// DefaultBuffer.
	Buffer int
	// ReadyTimeout bounds how long a new room waits for Redis to confirm its subscription; it
	// then starts anyway and catches up once confirmed. Default DefaultReadyTimeout.
	ReadyTimeout time.Duration
	// HealthInterval is how long a Pub/Sub connection may be silent before it is pinged; one
	// silent for two more intervals is replaced. Default DefaultHealthInterval.
	HealthInterval time.Duration
	// QueryTimeout bounds a room's read of the typists (a member-set fill included). Default
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	Log          *slog.Logger
	Registerer   prometheus.Registerer // nil: metrics not registered
}

// Service records typing and serves it to readers and subscribers. It is safe for concurrent
// use. Call Close when done.
type Service struct {
	cfg     Config
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	sharded bool
	publish string // PUBLISH, or SPUBLISH on a cluster
	log     *slog.Logger
	m       metrics
	fills   singleflight.Group
	pubsub  *pubsub.Config[*room]

	mu       sync.Mutex
	rooms    map[int64]*room
	shards   map[int]*shard
	nextID   uint64
	closed   bool
	shardsWG sync.WaitGroup
}

// New returns a Service. It subscribes to nothing until the first subscriber arrives.
func New(cfg Config) *Service {
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&cfg.TTL, DefaultTTL}, {&cfg.MembersTTL, DefaultMembersTTL}, {&cfg.ReadyTimeout, DefaultReadyTimeout},
		{&cfg.HealthInterval, DefaultHealthInterval}, {&cfg.QueryTimeout, DefaultQueryTimeout},
	} {
		*d.v = defaults.Positive(*d.v, d.def)
	}
	cfg.Buffer = defaults.Positive(cfg.Buffer, DefaultBuffer)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	_, sharded := cfg.Redis.(*redis.ClusterClient)
	s := &Service{
		cfg: cfg, rdb: cfg.Redis, breaker: cfg.Breaker, sharded: sharded, publish: "PUBLISH", log: cfg.Log,
		m:     newMetrics(cfg.Registerer),
		rooms: map[int64]*room{}, shards: map[int]*shard{},
	}
	if sharded {
		s.publish = "SPUBLISH"
	}
	s.pubsub = s.pubsubConfig()
	return s
}

// ErrUnavailable refuses setTyping and typing subscriptions while Redis cannot answer.
var ErrUnavailable = apperr.New(apperr.ServiceUnavailable, "typing indicators are unavailable: retry shortly")

// Key is the Redis key of a conversation's typists.
func Key(conv int64) string { return "msg:typing:{" + strconv.FormatInt(conv, 10) + "}" }

// MembersKey is the Redis key of a conversation's member set under a generation token.
func MembersKey(conv int64, generation string) string { return membersPrefix(conv) + generation }

func membersPrefix(conv int64) string {
	return "msg:members:{" + strconv.FormatInt(conv, 10) + "}:"
}

// Channel is the Pub/Sub channel of a conversation's typing changes.
func Channel(conv int64) string { return "msg:typing:events:{" + strconv.FormatInt(conv, 10) + "}" }

// conversationOf parses a channel name back into its conversation id.
func conversationOf(channel string) (int64, bool) {
	const prefix, suffix = "msg:typing:events:{", "}"
	if len(channel) <= len(prefix)+len(suffix) || channel[:len(prefix)] != prefix || channel[len(channel)-1:] != suffix {
		return 0, false
	}
	id, err := strconv.ParseInt(channel[len(prefix):len(channel)-1], 10, 64)
	return id, err == nil
}

// Replies of the scripts.
const (
	replyMiss      = 0 // the member set is not in Redis under the current generation: {0, generation}
	replyNotMember = 1 // setTyping: the user is not a member
	replyState     = 1 // state: {1, {id, name, ms left, ...}, {absent ids}}
	replyDone      = 2 // setTyping: {2, changed}
)

// genPrelude reads the conversation's generation (creating it if missing, as the history cache
// does) and names its member set.
const genPrelude = cache.GenerationLua + `
local members = ARGV[3] .. gen
if redis.call('EXISTS', members) == 0 then return {0, gen} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// setScript records that ARGV[4] types (ARGV[5] = "1", for ARGV[6] ms) or stopped ("0"), and
// publishes ARGV[4] on ARGV[7] with command ARGV[8] when that changed their state.
var setScript = redis.NewScript(genPrelude + `
if redis.call('HEXISTS', members, ARGV[4]) == 0 then return {1} end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local was = redis.call('ZSCORE', KEYS[2], ARGV[4])
local changed = 0
if ARGV[5] == '1' then
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[6]), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[6]) + 1000)
  if not was then changed = 1 end
elseif was then
  redis.call('ZREM', KEYS[2], ARGV[4])
  changed = 1
end
if changed == 1 then redis.call(ARGV[8], ARGV[7], ARGV[4]) end
return {2, changed}
`)

// stateScript returns the members typing now with their names and the ms they have left, and
// which of the users ARGV[4..] are not members.
var stateScript = redis.NewScript(genPrelude + `
local typing = {}
local entries = redis.call('ZRANGE', KEYS[2], string.format('(%d', now), '+inf', 'BYSCORE', 'WITHSCORES')
for i = 1, #entries, 2 do
  local name = redis.call('HGET', members, entries[i])
  if name then
    typing[#typing + 1] = entries[i]
    typing[#typing + 1] = name
    typing[#typing + 1] = tonumber(entries[i + 1]) - now
  end
end
local absent = {}
for i = 4, #ARGV do
  if redis.call('HEXISTS', members, ARGV[i]) == 0 then absent[#absent + 1] = ARGV[i] end
end
return {1, typing, absent}
`)

// genArgs are the arguments genPrelude reads.
func genArgs(conv int64) []any {
	return []any{cache.NewGeneration(), strconv.Itoa(int(cache.DefaultGenerationTTL / time.Second)), membersPrefix(conv)}
}

// maxAttempts bounds the member-set fills of one call: a generation that moves between the
// fill and the next read (an event of the conversation in between) costs one more.
const maxAttempts = 3

var errMoving = errors.New("typing: the conversation's generation kept moving")

// Set records that viewerID types (typing) or stopped typing in conv. A conversation that is
// missing and one the viewer is not a member of are both apperr.ErrNotFound; while Redis cannot
// answer it is ErrUnavailable.
func (s *Service) Set(ctx context.Context, viewerID, conv int64, typing bool) error {
	flag := "0"
	if typing {
		flag = "1"
	}
	for range maxAttempts {
		var reply []any
		err := s.breaker.Do(ctx, func(ctx context.Context) error {
			args := append(genArgs(conv), strconv.FormatInt(viewerID, 10), flag,
				strconv.FormatInt(s.cfg.TTL.Milliseconds(), 10), Channel(conv), s.publish)
			var err error
			reply, err = setScript.Run(ctx, s.rdb, []string{cache.GenerationKey(conv), Key(conv)}, args...).Slice()
			return err
		})
		if err != nil {
			return s.unavailable(ctx, "setTyping", err)
		}
		if len(reply) == 0 {
			return fmt.Errorf("typing: unexpected reply %v", reply)
		}
		kind, _ := reply[0].(int64)
		switch kind {
		case replyMiss:
			gen, _ := reply[1].(string)
			if err := s.fillOne(ctx, conv, gen); err != nil {
				return err
			}
		case replyNotMember:
			return apperr.ErrNotFound
		case replyDone:
			if changed, _ := reply[1].(int64); changed == 1 {
				s.m.changes.Inc()
			}
			return nil
		default:
			return fmt.Errorf("typing: unexpected reply %v", reply)
		}
	}
	return errMoving
}

// unavailable counts and logs a Redis failure and returns the public refusal.
func (s *Service) unavailable(ctx context.Context, what string, err error) error {
	s.m.unavailable.Inc()
	if !errors.Is(err, redisclient.ErrOpen) {
		s.log.WarnContext(ctx, "typing: redis failed", "op", what, "err", err)
	}
	return ErrUnavailable
}

// Typist is a member typing now, and for how much longer (as of the read).
type Typist struct {
	User chat.User
	Left time.Duration
}

// state is what stateScript read of one conversation.
type state struct {
	typing []Typist
	absent map[int64]bool // of the users asked about, those who are not members
}

// Typing returns, in key order, the members typing now in each conversation, ordered by user
// id. The caller has checked that the viewer may see them. While Redis cannot answer nobody is
// typing (counted in threadline_typing_unavailable_total).
func (s *Service) Typing(ctx context.Context, convs []int64) ([][]chat.User, error) {
	out := make([][]chat.User, len(convs))
	states, err := s.states(ctx, convs, nil)
	if err != nil {
		if errors.Is(err, ErrUnavailable) {
			return out, nil
		}
		return nil, err
	}
	for i, st := range states {
		users := make([]chat.User, len(st.typing))
		for j, t := range st.typing {
			users[j] = t.User
		}
		out[i] = users
	}
	return out, nil
}

// member reads conv's typists and whether viewerID is a member: apperr.ErrNotFound when not.
func (s *Service) member(ctx context.Context, viewerID, conv int64) (state, error) {
	states, err := s.states(ctx, []int64{conv}, [][]int64{{viewerID}})
	if err != nil {
		return state{}, err
	}
	if states[0].absent[viewerID] {
		return state{}, apperr.ErrNotFound
	}
	return states[0], nil
}

// states reads the typists of convs (and which of ask[i] are not members of convs[i]) in one
// pipelined round trip, plus, for the member sets missing from Redis, one PostgreSQL statement
// and one more round trip. A Redis failure is ErrUnavailable.
func (s *Service) states(ctx context.Context, convs []int64, ask [][]int64) ([]state, error) {
	out := make([]state, len(convs))
	todo := make([]int, len(convs))
	for i := range todo {
		todo[i] = i
	}
	for range maxAttempts {
		replies := make([][]any, len(todo))
		err := s.breaker.Do(ctx, func(ctx context.Context) error {
			pipe := s.rdb.Pipeline()
			cmds := make([]*redis.Cmd, len(todo))
			for j, i := range todo {
				args := genArgs(convs[i])
				if ask != nil {
					for _, u := range ask[i] {
						args = append(args, strconv.FormatInt(u, 10))
					}
				}
				cmds[j] = stateScript.Eval(ctx, pipe, []string{cache.GenerationKey(convs[i]), Key(convs[i])}, args...)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			for j, c := range cmds {
				if replies[j], _ = c.Slice(); len(replies[j]) < 2 {
					return fmt.Errorf("typing: unexpected state reply %v", c.Val())
				}
			}
			return nil
		})
		if err != nil {
			return nil, s.unavailable(ctx, "read", err)
		}
		var missed []int
		var gens []string
		for j, i := range todo {
			if kind, _ := replies[j][0].(int64); kind == replyMiss {
				gen, _ := replies[j][1].(string)
				missed, gens = append(missed, i), append(gens, gen)
				continue
			}
			st, err := decodeState(replies[j])
			if err != nil {
				return nil, err
			}
			out[i] = st
		}
		if len(missed) == 0 {
			return out, nil
		}
		missedConvs := make([]int64, len(missed))
		for j, i := range missed {
			missedConvs[j] = convs[i]
		}
		if len(missed) == 1 {
			err = s.fillOne(ctx, missedConvs[0], gens[0])
		} else {
			err = s.fill(ctx, missedConvs, gens)
		}
		if err != nil {
			return nil, err
		}
		todo = missed
	}
	return nil, errMoving
}

func decodeState(reply []any) (state, error) {
	bad := fmt.Errorf("typing: unexpected state reply %v", reply)
	if len(reply) != 3 {
		return state{}, bad
	}
	entries, ok1 := reply[1].([]any)
	absent, ok2 := reply[2].([]any)
	if !ok1 || !ok2 || len(entries)%3 != 0 {
		return state{}, bad
	}
	var st state
	for i := 0; i < len(entries); i += 3 {
		idS, _ := entries[i].(string)
		name, _ := entries[i+1].(string)
		left, _ := entries[i+2].(int64)
		id, err := strconv.ParseInt(idS, 10, 64)
		if err != nil {
			return state{}, bad
		}
		st.typing = append(st.typing, Typist{User: chat.User{ID: id, Name: name}, Left: time.Duration(left) * time.Millisecond})
	}
	slices.SortFunc(st.typing, func(a, b Typist) int { return int(a.User.ID - b.User.ID) })
	for _, a := range absent {
		idS, _ := a.(string)
		id, err := strconv.ParseInt(idS, 10, 64)
		if err != nil {
			return state{}, bad
		}
		if st.absent == nil {
			st.absent = map[int64]bool{}
		}
		st.absent[id] = true
	}
	return st, nil
}

// fillOne fills the member set of one conversation under the generation a script returned
// with its miss; concurrent fills of one member set in this process run once.
func (s *Service) fillOne(ctx context.Context, conv int64, gen string) error {
	_, err, _ := s.fills.Do(MembersKey(conv, gen), func() (any, error) {
		// Other callers may wait for this fill: it outlives this one's cancellation.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.QueryTimeout)
		defer cancel()
		return nil, s.fill(fctx, []int64{conv}, []string{gen})
	})
	return err
}

// fill reads the members of convs from PostgreSQL (one statement) and stores each set under
// the generation read before (gens[i]), in one round trip. A conversation without members (or
// missing) is stored as an empty set: it answers NOT_FOUND without PostgreSQL until the
// generation moves.
func (s *Service) fill(ctx context.Context, convs []int64, gens []string) error {
	members, err := s.cfg.Members(ctx, convs)
	if err != nil {
		return fmt.Errorf("typing: members: %w", err)
	}
	if len(members) != len(convs) {
		return errors.New("typing: members: a different number of results than conversations")
	}
	s.m.fills.Add(float64(len(convs)))
	err = s.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := s.rdb.Pipeline()
		for i, conv := range convs {
			fields := make([]any, 0, 2+2*len(members[i]))
			fields = append(fields, "_", "") // marks the set as read, members or not
			for _, m := range members[i] {
				fields = append(fields, strconv.FormatInt(m.User.ID, 10), m.User.Name)
			}
			key := MembersKey(conv, gens[i])
			pipe.HSet(ctx, key, fields...)
			pipe.PExpire(ctx, key, s.cfg.MembersTTL)
		}
		_, err := pipe.Exec(ctx)
		return err
	})
	if err != nil {
		return s.unavailable(ctx, "member fill", err)
	}
	return nil
}

// AfterCommit moves the generation of a conversation whose members changed. The application
// runs it only when the history cache is off (which otherwise moves the generation on every
// event); a failure is logged and counted, and the member set read under the old generation
// then lives until MembersTTL.
func (s *Service) AfterCommit(ctx context.Context, c chat.Change) {
	if len(c.MembersChanged) == 0 {
		return
	}
	err := s.breaker.Do(context.WithoutCancel(ctx), func(ctx context.Context) error {
		return s.rdb.Set(ctx, cache.GenerationKey(c.ConversationID), cache.NewGeneration(), cache.DefaultGenerationTTL).Err()
	})
	if err != nil {
		s.m.unavailable.Inc()
		s.log.WarnContext(ctx, "typing: moving the member generation failed; the member set may be stale until its TTL",
			"conversation_id", c.ConversationID, "err", err)
	}
}

type metrics struct {
	active      prometheus.Gauge
	changes     prometheus.Counter
	events      prometheus.Counter
	cutoffs     prometheus.Counter
	fills       prometheus.Counter
	unavailable prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "threadline_typing_subscriptions_active",
			Help: "typing subscriptions running on this instance.",
		}),
		changes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_typing_changes_total",
			Help: "setTyping calls that changed a user's state (started or stopped) and were published.",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_typing_events_total",
			Help: "TypingEvents handed to subscribers on this instance.",
		}),
		cutoffs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_typing_cutoffs_total",
			Help: "typing subscriptions ended because their buffer overflowed.",
		}),
		fills: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_typing_member_fills_total",
			Help: "Conversation member sets read from PostgreSQL into Redis (member-set misses).",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_typing_unavailable_total",
			Help: "Typing calls Redis could not answer: setTyping and subscriptions refused, reads answered empty.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.active, m.changes, m.events, m.cutoffs, m.fills, m.unavailable)
	}
	return m
}
