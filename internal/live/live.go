// Package live delivers new messages to subscribers as they are committed, on every server
// instance, in seq order, each once, with exact resume.
//
// # How a message travels
//
// After sendMessage commits, chat.Service runs its hooks; Hub.AfterCommit is one of
// them. It hands the message to the subscribers of this instance directly (so they get it even
// when Redis is down) and publishes it, as JSON carrying the whole message, on the Redis channel
// msg:events:{<conversation>} (hash-tagged, so that on a Redis Cluster it lives in the
// conversation's slot; the cluster is then reached with SPUBLISH/SSUBSCRIBE). Every instance
// holds one Redis subscription per conversation that has local subscribers, counted by
// reference and dropped when the last one leaves, and fans each event out in process: delivery
// needs no SQL in the common case.
//
// # Order and exactness
//
// Redis Pub/Sub is at-most-once and publishes of concurrent senders can arrive in any order; the
// per-conversation seq, gap-free and in commit order, makes delivery exact anyway. Each
// subscriber remembers the last seq it delivered and:
//
//   - drops an event it has seen (seq <= last): the sending instance gets its own event twice,
//     once directly and once from Redis;
//   - on a gap (it expects N+1 and gets N+2) reads the missing messages from PostgreSQL before it
//     delivers N+2: since publishing happens after commit, N+1 is committed;
//   - with afterSeq, replays from PostgreSQL (in pages) what follows afterSeq, then continues
//     live. It joins the conversation's Redis subscription before it reads, and waits until
//     Redis confirmed that subscription, so nothing falls between the replay and the live stream;
//   - without afterSeq, starts at the conversation's last_seq, read after joining.
//
// When the Redis subscription had to be re-established (a reconnect, a dead connection, or a
// subscription that could not be confirmed in time), every subscriber of the conversation checks
// PostgreSQL for what it may have missed. Concurrent reads of the same range share one query
// (singleflight), so a conversation with ten thousand subscribers costs one query, not ten
// thousand.
//
// # Polling PostgreSQL
//
// Redis Pub/Sub is at most once: an event published while an instance's subscription is down
// (Redis restarting, a connection replaced), or one whose publish failed (Redis unreachable
// from the sending instance only), never arrives. The sequences make delivery exact anyway, but
// left at that, only the stream's next event (a gap) or a resubscription would make a subscriber
// look in PostgreSQL, however long that takes. So every PollInterval each instance reads, in one statement, the newest event_seq
// of every stream that has local subscribers (each conversation's, and each sidebar viewer's
// own), by primary key, and compares it with the newest event its topic has passed on:
//
//   - A topic that is behind while its Redis subscription is not confirmed or its connection is
//     failing catches up at once: its sinks are sent a pollMark carrying the head read, and each
//     reads from PostgreSQL, in order, the events up to it that it has not handled (they are
//     committed: the head was read after their commit), sharing the read with the sinks at
//     the same position. A sink drops what it has seen, so nothing arrives twice.
//   - A topic that is behind while Redis looks healthy is given PollGrace first: the event may
//     be a publish still on its way. Only if the topic is still behind the same head then does
//     it catch up. This covers publishes lost while Redis is otherwise up.
//
// The topic then counts the head as passed on (fanout drops what is not newer): every sink
// attached when the mark was sent catches up to it, and a sink that attaches later reads where
// it starts after attaching, so after the head was read.
//
// The poll runs always, not only while Redis is known to be down, because an instance cannot
// know that another instance's publishes are failing: it costs one primary-key lookup per
// followed stream per interval, in one statement, and nothing while the instance has no
// subscribers. Delivery while Pub/Sub is down is then at most PollInterval plus a read late, and
// a lost publish at most PollInterval plus PollGrace plus a read.
//
// # Slow subscribers
//
// A subscriber has a bounded buffer (Config.Buffer events, after the few its consumer's channel
// holds). Publishing never waits: when the buffer is full the subscription is cut off and ends
// with *ResumeError, which carries the last seq delivered; the client resubscribes with that
// afterSeq and loses nothing, since the history is in PostgreSQL.
//
// # Shared results
//
// Every subscriber of a topic receives the same event value: one pointer, handed to all of
// them (fanout). What a subscriber sends for it depends only on that event, on the subscriber's
// operation (document, operation name, variables) and, for a selection that reads something
// of the viewer's own, on the viewer. Subscribers that agree on all three would each compute
// the same bytes; Hub.Result lets the first compute them and the others reuse them.
//
// Results are kept by ResultKey, singleflighted (a subscriber that asks while the first is
// computing waits for it), shared only when the computation says so (a result with errors is
// its subscriber's alone: the next one to ask computes afresh), and kept briefly: at most 2 s
// after they were made, 4096 of them and 16 MiB in all, the oldest leaving first (the
// subscribers of an event ask within moments of each other). A subscriber that asks after its result left computes it again: sharing
// saves work, it never decides what a subscriber receives. Each kept result holds its event
// value, so the event cannot be freed and its address reused while the key is in the table:
// pointer equality is event identity.
//
// Sharing never widens what anyone sees: the subscriber was authorised when it subscribed,
// and ends on its own when it stops being a member (its subscription ends with NOT_FOUND
// before the next event reaches it), whoever computed the bytes of the events before.
//
// # Shutdown
//
// Close tells every tracked connection to go away (the GraphQL WebSocket transport closes with
// 1001, so clients reconnect to another instance and resume with afterSeq), ends the remaining
// subscriptions, and drops the Redis subscriptions.
package live

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/defaults"
	"github.com/threadline/threadline/internal/pubsub"
	"github.com/threadline/threadline/internal/redisclient"
)

// Store is what the hub reads from PostgreSQL: membership and last_seq when a subscription
// starts, and the messages of a replay or a gap. chat.Store has both; pass the database store
// itself, not a cache in front of it.
type Store interface {
	ConversationsByIDForMember(ctx context.Context, userID int64, ids []int64) ([]*chat.Conversation, error)
	MessagesAfter(ctx context.Context, conversationID, afterSeq int64, limit int) ([]chat.Message, error)
	EventsAfter(ctx context.Context, conversationID, after int64, limit int) ([]chat.Event, error)
	UserEventsAfter(ctx context.Context, userID, after int64, limit int) ([]chat.UserEvent, error)
	UserStreamStart(ctx context.Context, userID int64) (last, firstKept int64, conversations map[int64]int64, err error)
	// StreamHeads returns, in one statement, the newest event_seq of each conversation and of
	// each user named (the polls); those that do not exist are left out.
	StreamHeads(ctx context.Context, conversations, users []int64) (conversationHeads, userHeads map[int64]int64, err error)
}

// Config configures a Hub. Zero values take the defaults.
type Config struct {
	// Redis carries events between instances. A *redis.ClusterClient uses sharded Pub/Sub
	// (SPUBLISH/SSUBSCRIBE); any other client plain Pub/Sub over one connection.
	Redis redis.UniversalClient
	// Breaker, if set, is the Redis circuit breaker publishes go through: while it is open they
	// are skipped at once (counted as failures; other instances' polls deliver the events).
	Breaker *redisclient.Breaker
	// Store is read for membership, replays and gap fills.
	Store Store
	Log   *slog.Logger
	// Registerer receives the hub's metrics; nil: not registered.
	Registerer prometheus.Registerer

	// Buffer is how many events a subscriber may have waiting before it is cut off. Default 256.
	Buffer int
	// PageSize is how many messages one replay or gap-fill query reads. Default 100.
	PageSize int
	// PublishTimeout bounds the Redis publish that runs after each commit (and so does the
	// Breaker's call deadline, when there is one). Default 500ms.
	PublishTimeout time.Duration
	// QueryTimeout bounds each PostgreSQL read of the hub. Default 5s.
	QueryTimeout time.Duration
	// ReadyTimeout bounds how long a new subscription waits for Redis to confirm the
	// conversation's channel. After it the subscription starts anyway and catches up from
	// PostgreSQL once the channel is confirmed. Default 2s.
	ReadyTimeout time.Duration
	// HealthInterval is how long a Redis subscription connection may be silent before it is
	// pinged; one that stays silent for two more intervals is replaced. Default 5s.
	HealthInterval time.Duration
	// PollInterval is how often the heads of the streams with local subscribers are read from
	// PostgreSQL, to deliver what Redis Pub/Sub did not (see Polling PostgreSQL). Default 1s;
	// below 0, never.
	PollInterval time.Duration
	// PollGrace is how long a stream found behind while its Redis subscription looks healthy
	// is given for the event to arrive through Redis before it catches up. Default 250ms.
	PollGrace time.Duration
}

// Defaults for Config.
const (
	DefaultBuffer         = 256
	DefaultPageSize       = 100
	DefaultPublishTimeout = 500 * time.Millisecond
	DefaultQueryTimeout   = 5 * time.Second
	DefaultReadyTimeout   = 2 * time.Second
	DefaultHealthInterval = 5 * time.Second
	DefaultPollInterval   = time.Second
	DefaultPollGrace      = 250 * time.Millisecond
)

// ResumeError ends a subscription that fell too far behind. The client resubscribes after
// After, the last seq (a messages stream) or event_seq (an events stream, Events) it was sent,
// or for a sidebar stream (Viewer) after Position, the position of the last event it was sent,
// and misses nothing.
type ResumeError struct {
	ConversationID int64
	Events         bool
	After          int64
	Viewer         bool
	Position       string
}

func (e *ResumeError) Error() string {
	switch {
	case e.Viewer:
		return "subscriber too slow: resubscribe with after"
	case e.Events:
		return "subscriber too slow: resubscribe with afterEventSeq"
	}
	return "subscriber too slow: resubscribe with afterSeq"
}

// ErrClosed is returned by Subscribe once Close has begun.
var ErrClosed = errors.New("live: hub closed")

// Hub is one instance's side of live delivery: its subscribers, grouped by conversation, and its
// Redis subscriptions. It is safe for concurrent use.
type Hub struct {
	cfg     Config
	rdb     redis.UniversalClient
	sharded bool
	store   Store
	log     *slog.Logger
	m       metrics
	reads   singleflight.Group
	results *results
	pubsub  *pubsub.Config[*topic]

	mu       sync.RWMutex
	topics   map[stream]*topic
	shards   map[int]*shard
	conns    map[uint64]func()
	nextConn uint64
	nextID   uint64
	closed   bool

	done     chan struct{} // closed when Close ends the remaining subscriptions
	subs     sync.WaitGroup
	connsWG  sync.WaitGroup
	shardsWG sync.WaitGroup
	pollWG   sync.WaitGroup
}

// NewHub returns a Hub. It connects to Redis only when the first subscriber arrives.
func NewHub(cfg Config) *Hub {
	cfg.Buffer = defaults.Positive(cfg.Buffer, DefaultBuffer)
	cfg.PageSize = defaults.Positive(cfg.PageSize, DefaultPageSize)
	cfg.PublishTimeout = defaults.Positive(cfg.PublishTimeout, DefaultPublishTimeout)
	cfg.QueryTimeout = defaults.Positive(cfg.QueryTimeout, DefaultQueryTimeout)
	cfg.ReadyTimeout = defaults.Positive(cfg.ReadyTimeout, DefaultReadyTimeout)
	cfg.HealthInterval = defaults.Positive(cfg.HealthInterval, DefaultHealthInterval)
	cfg.PollInterval = cmp.Or(cfg.PollInterval, DefaultPollInterval)
	cfg.PollGrace = defaults.Positive(cfg.PollGrace, DefaultPollGrace)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	_, sharded := cfg.Redis.(*redis.ClusterClient)
	h := &Hub{
		cfg:     cfg,
		rdb:     cfg.Redis,
		sharded: sharded,
		store:   cfg.Store,
		log:     cfg.Log,
		m:       newMetrics(cfg.Registerer),
		results: newResults(),
		topics:  map[stream]*topic{},
		shards:  map[int]*shard{},
		conns:   map[uint64]func(){},
		done:    make(chan struct{}),
	}
	h.pubsub = h.pubsubConfig()
	h.pollWG.Add(1)
	go h.poll()
	return h
}

// SubscribeMessages starts viewerID's subscription to conversationID's messages: with afterSeq,
// every message after it (replayed from PostgreSQL, then live); without, every message committed
// from now on. Messages arrive on the returned channel in seq order, each once. The channel is
// closed when ctx ends, when the hub closes, when the viewer stops being a member, or when the
// subscription fails. Just before, onEnd (if not nil) is called once with the reason: nil for
// the first two, apperr.ErrNotFound when the viewer was removed, a *ResumeError when the
// subscriber fell too far behind, anything else an internal error, already logged. When
// SubscribeMessages returns an error, onEnd is not called.
//
// A conversation that does not exist and one the viewer is not a member of are both
// apperr.ErrNotFound; an afterSeq below 0 or past the conversation's last seq is
// BAD_USER_INPUT.
func (h *Hub) SubscribeMessages(ctx context.Context, viewerID, conversationID int64, afterSeq *int64, onEnd func(error)) (<-chan *chat.Message, error) {
	s := &subscriber{messages: make(chan *chat.Message, directBuffer)}
	err := h.subscribe(ctx, s, viewerID, conversationID, afterSeq, "afterSeq", func(c *chat.Conversation) int64 { return c.LastSeq }, onEnd)
	if err != nil {
		return nil, err
	}
	return s.messages, nil
}

// SubscribeEvents starts viewerID's subscription to every event of conversationID, in event_seq
// order, each once: with afterEventSeq, first the events after it (from PostgreSQL). It ends as
// SubscribeMessages does; a viewer removed from the conversation first receives the
// MemberRemoved event about them.
func (h *Hub) SubscribeEvents(ctx context.Context, viewerID, conversationID int64, afterEventSeq *int64, onEnd func(error)) (<-chan chat.Event, error) {
	s := &subscriber{events: make(chan chat.Event, directBuffer)}
	err := h.subscribe(ctx, s, viewerID, conversationID, afterEventSeq, "afterEventSeq", func(c *chat.Conversation) int64 { return c.LastEventSeq }, onEnd)
	if err != nil {
		return nil, err
	}
	return s.events, nil
}

// subscribe checks the viewer's membership and the resume position (after, named field, at most
// last of the conversation), attaches s to the conversation's topic, then fixes where it starts
// and runs it.
func (h *Hub) subscribe(ctx context.Context, s *subscriber, viewerID, conversationID int64, after *int64, field string, last func(*chat.Conversation) int64, onEnd func(error)) error {
	if after != nil && *after < 0 {
		return apperr.Invalid(field, "must be 0 or more")
	}
	conv, err := h.conversation(ctx, viewerID, conversationID)
	if err != nil {
		return err
	}
	if after != nil && *after > last(conv) {
		// A position the client cannot have seen (it would silently skip what comes up to it).
		return apperr.Invalid(field, "is past the conversation's last (%d)", last(conv))
	}
	s.hub, s.conv, s.viewer = h, conversationID, viewerID
	s.in, s.cut = make(chan chat.Event, h.cfg.Buffer), make(chan struct{})
	t, err := h.attach(ctx, s, stream{id: conversationID})
	if err != nil {
		return err
	}
	s.topic = t
	// Joined and confirmed by Redis: whatever is committed from here on reaches s, live or
	// through a gap fill. Now read where to start: the conversation's last seq and last
	// event_seq, read together, are an exact seam between what is replayed and what is live.
	if conv, err = h.conversation(ctx, viewerID, conversationID); err != nil {
		h.detach(s, t)
		return err
	}
	s.lastEvent, s.lastSeq = conv.LastEventSeq, conv.LastSeq
	start := func(context.Context) error { return nil }
	switch {
	case after != nil && s.events != nil:
		s.lastEvent = *after
		start = func(ctx context.Context) error { return s.catchUp(ctx, conv.LastEventSeq) }
	case after != nil:
		s.lastSeq = *after
		start = func(ctx context.Context) error { return s.replayMessages(ctx, conv.LastSeq) }
	}
	h.m.active.Inc() // counted once its start is fixed: from here on it misses nothing
	go s.run(ctx, start, onEnd)
	return nil
}

// conversation reads the conversation if viewerID is a member.
func (h *Hub) conversation(ctx context.Context, viewerID, conversationID int64) (*chat.Conversation, error) {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.QueryTimeout)
	defer cancel()
	convs, err := h.store.ConversationsByIDForMember(ctx, viewerID, []int64{conversationID})
	if err != nil {
		return nil, fmt.Errorf("live: membership: %w", err)
	}
	if len(convs) != 1 || convs[0] == nil {
		return nil, apperr.ErrNotFound
	}
	return convs[0], nil
}

// AfterCommit is the hub's chat.Hook: every change's event is published (Publish), and so are
// the users' own events it wrote (PublishUser).
func (h *Hub) AfterCommit(ctx context.Context, c chat.Change) {
	if c.Event != nil {
		h.Publish(ctx, c.Event)
	}
	for i := range c.UserEvents {
		h.PublishUser(ctx, &c.UserEvents[i])
	}
}

// Publish hands a committed event to this instance's subscribers and publishes it on Redis for
// the others. The application runs it after every change (AfterCommit). It never waits for a
// subscriber, and waits for Redis at most PublishTimeout; a failed publish is counted and
// logged, and other instances' subscribers catch up at their next poll (see Polling
// PostgreSQL) or on the conversation's next event, whichever comes first.
func (h *Hub) Publish(ctx context.Context, ev chat.Event) {
	hd := ev.Header()
	key := stream{id: hd.ConversationID}
	h.dispatch(key, ev, hd.EventSeq)
	payload, err := encodeEvent(ev)
	h.publish(ctx, key, hd.EventSeq, payload, err)
}

// PublishUser hands a user's own committed event to this instance's sidebar streams of the user
// and publishes it on Redis for the others, as Publish does.
func (h *Hub) PublishUser(ctx context.Context, ev *chat.UserEvent) {
	key := stream{user: true, id: ev.UserID}
	h.dispatch(key, ev, ev.EventSeq)
	payload, err := encodeUserEvent(ev)
	h.publish(ctx, key, ev.EventSeq, payload, err)
}

// publish sends an encoded event on its stream's channel.
func (h *Hub) publish(ctx context.Context, key stream, seq int64, payload []byte, err error) {
	channel := key.channel()
	if err != nil { // cannot happen with these types; counted as a failure all the same
		h.m.publishes.Inc()
		h.m.publishFailures.Inc()
		h.log.ErrorContext(ctx, "live: encoding an event", "channel", channel, "event_seq", seq, "err", err)
		return
	}
	// The request may end the moment the mutation answers; the publish must not end with it.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.PublishTimeout)
	defer cancel()
	send := func(ctx context.Context) error {
		if h.sharded {
			return h.rdb.SPublish(ctx, channel, payload).Err()
		}
		return h.rdb.Publish(ctx, channel, payload).Err()
	}
	if h.cfg.Breaker != nil {
		err = h.cfg.Breaker.Do(pctx, send)
	} else {
		err = send(pctx)
	}
	h.m.publishes.Inc()
	if err != nil {
		h.m.publishFailures.Inc()
		level := slog.LevelWarn
		if errors.Is(err, redisclient.ErrOpen) {
			level = slog.LevelDebug // Redis is known to be down: said once, by the breaker
		}
		h.log.Log(ctx, level, "live: publish to redis failed; local subscribers were served, others catch up at their next poll",
			"channel", channel, "event_seq", seq, "err", err)
	}
}

// dispatch fans an event of a stream out to the stream's local sinks.
func (h *Hub) dispatch(key stream, item any, seq int64) {
	h.mu.RLock()
	t := h.topics[key]
	h.mu.RUnlock()
	if t != nil {
		t.fanout(item, seq)
	}
}

// TrackConn registers a client connection that Close must send away; goAway is called once,
// when Close begins, and should make the connection close soon (the GraphQL WebSocket
// transport closes with 1001 going away). Call untrack when the connection has ended. ok is
// false once Close has begun: refuse the connection then.
func (h *Hub) TrackConn(goAway func()) (untrack func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	h.nextConn++
	id := h.nextConn
	h.conns[id] = goAway
	h.connsWG.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.conns, id)
			h.mu.Unlock()
			h.connsWG.Done()
		})
	}, true
}

// Close sends the tracked connections away and waits until they have ended, then ends every
// remaining subscription and drops the Redis subscriptions. It waits at most until ctx ends.
// Publish keeps working after Close (a request still in flight publishes its message for the
// other instances). Close is safe to call more than once.
func (h *Hub) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	goAways := make([]func(), 0, len(h.conns))
	for _, f := range h.conns {
		goAways = append(goAways, f)
	}
	h.mu.Unlock()

	// Connections first: their subscriptions then end as part of a going-away close, which
	// clients answer by reconnecting, rather than as a normal completion.
	for _, f := range goAways {
		f()
	}
	err := wait(ctx, &h.connsWG)
	close(h.done)
	if err2 := wait(ctx, &h.subs); err == nil {
		err = err2
	}
	if err2 := wait(ctx, &h.shardsWG); err == nil {
		err = err2
	}
	if err2 := wait(ctx, &h.pollWG); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("live: close: %w", err)
	}
	return nil
}

func wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// attach adds s to key's topic, creating the topic (and its Redis subscription) when s is the
// first, and waits until the Redis subscription is confirmed or given up on.
func (h *Hub) attach(ctx context.Context, s sink, key stream) (*topic, error) {
	ts, err := h.attachAll(ctx, s, []stream{key})
	if err != nil {
		return nil, err
	}
	return ts[0], nil
}

// attachAll adds s to the topics of keys, then waits until each one's Redis subscription is
// confirmed or given up on: the subscriptions are asked for together.
func (h *Hub) attachAll(ctx context.Context, s sink, keys []stream) ([]*topic, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	ts := make([]*topic, len(keys))
	for i, key := range keys {
		t := h.topics[key]
		if t == nil {
			h.nextID++
			t = newTopic(h, key, h.nextID)
			h.topics[key] = t
			t.shard = h.pubsub.Add(h.shards, t)
		}
		t.refs++
		t.mu.Lock()
		t.subs[s] = struct{}{}
		t.mu.Unlock()
		h.subs.Add(1)
		ts[i] = t
	}
	h.mu.Unlock()

	for _, t := range ts {
		var err error
		select {
		case <-t.ready:
			continue
		case <-ctx.Done():
			err = ctx.Err()
		case <-h.done:
			err = ErrClosed
		}
		for _, t := range ts {
			h.detach(s, t)
		}
		return nil, err
	}
	return ts, nil
}

// detach removes s from t, dropping the topic (and its Redis subscription) when s was the last.
// It runs once per attachment.
func (h *Hub) detach(s sink, t *topic) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t.mu.Lock()
	delete(t.subs, s)
	t.mu.Unlock()
	t.refs--
	if t.refs == 0 {
		delete(h.topics, t.key)
		t.stopTimer()
		t.shard.Remove(h.shards, t)
	}
	h.subs.Done()
}

// readMessages returns up to limit messages after afterSeq, sharing one query among concurrent
// callers that ask the same.
func (h *Hub) readMessages(ctx context.Context, conv, afterSeq int64, limit int) ([]chat.Message, error) {
	return shared(ctx, h, "m:"+readKey(conv, afterSeq, limit), func(ctx context.Context) ([]chat.Message, error) {
		return h.store.MessagesAfter(ctx, conv, afterSeq, limit)
	})
}

// readEvents returns up to limit events after event_seq after, sharing one query among
// concurrent callers that ask the same.
func (h *Hub) readEvents(ctx context.Context, conv, after int64, limit int) ([]chat.Event, error) {
	return shared(ctx, h, "e:"+readKey(conv, after, limit), func(ctx context.Context) ([]chat.Event, error) {
		return h.store.EventsAfter(ctx, conv, after, limit)
	})
}

func readKey(conv, after int64, limit int) string {
	return strconv.FormatInt(conv, 10) + ":" + strconv.FormatInt(after, 10) + ":" + strconv.Itoa(limit)
}

// shared runs read once for concurrent callers with the same key. The read does not run under
// a caller's context: one caller leaving must not fail it for the others.
func shared[T any](ctx context.Context, h *Hub, key string, read func(context.Context) (T, error)) (T, error) {
	ch := h.reads.DoChan(key, func() (any, error) {
		qctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
		defer cancel()
		return read(qctx)
	})
	var zero T
	select {
	case r := <-ch:
		if r.Err != nil {
			return zero, r.Err
		}
		return r.Val.(T), nil // shared between callers: read only
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// maxSeq stands for "no upper bound" in catch-up reads.
const maxSeq = math.MaxInt64
