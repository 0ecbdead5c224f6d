package live

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// A stream is what a topic carries: the events of one conversation (chat.Event), or one user's
// own events (*chat.UserEvent: joined, left, read), each numbered by its own gap-free event_seq.
type stream struct {
	user bool
	id   int64
}

// channel is the Redis channel of the stream, hash-tagged by conversation or user: the
// conversation's msg:events:{<id>}, the user's msg:user:{u<id>}.
func (k stream) channel() string {
	if k.user {
		return "msg:user:{u" + strconv.FormatInt(k.id, 10) + "}"
	}
	return "msg:events:{" + strconv.FormatInt(k.id, 10) + "}"
}

// streamOf parses a channel name back into its stream.
func streamOf(channel string) (stream, bool) {
	for _, f := range []struct {
		prefix string
		user   bool
	}{{"msg:events:{", false}, {"msg:user:{u", true}} {
		if len(channel) > len(f.prefix)+1 && strings.HasPrefix(channel, f.prefix) && strings.HasSuffix(channel, "}") {
			id, err := strconv.ParseInt(channel[len(f.prefix):len(channel)-1], 10, 64)
			return stream{user: f.user, id: id}, err == nil && id > 0
		}
	}
	return stream{}, false
}

// A sink receives what topics pass on: a subscription to one conversation (subscriber), or a
// viewer's sidebar stream over many topics (viewerSub).
type sink interface {
	// offer passes on an item of t (an event of t's stream, or resyncMarker) without waiting;
	// false when the sink's buffer is full.
	offer(t *topic, item any) bool
	// cutOff ends a sink that fell behind. It never blocks.
	cutOff()
}

// A topic is one stream's local sinks and the state of its Redis subscription. Events reach
// every sink in increasing event_seq order: fanout drops what the topic already passed on (the
// sending instance sees its own events twice) and sends under the topic's lock.
type topic struct {
	hub     *Hub
	key     stream
	channel string
	// token is the payload of the PING sent after the SUBSCRIBE: its PONG proves that Redis
	// has processed the SUBSCRIBE, on this connection, for this topic.
	token string
	shard *shard // set once, under hub.mu
	refs  int    // subscribers attached; hub.mu

	ready     chan struct{} // closed once the subscription is confirmed or given up on
	readyOnce sync.Once
	state     atomic.Int32
	timer     *time.Timer

	mu     sync.Mutex
	subs   map[sink]struct{}
	maxSeq int64 // highest event_seq fanned out
}

// Redis subscription states of a topic.
const (
	statePending  int32 = iota // SUBSCRIBE sent, not yet confirmed
	stateReady                 // confirmed: every event published from then on arrives
	stateDegraded              // not confirmed in time: subscribers run, and catch up once it is
)

func newTopic(h *Hub, key stream, id uint64) *topic {
	t := &topic{
		hub:     h,
		key:     key,
		channel: key.channel(),
		token:   "live:" + strconv.FormatUint(id, 10),
		ready:   make(chan struct{}),
		subs:    map[sink]struct{}{},
	}
	t.timer = time.AfterFunc(h.cfg.ReadyTimeout, func() { t.degrade("redis did not confirm the subscription in time", nil) })
	return t
}

func (t *topic) stopTimer() { t.timer.Stop() }

func (t *topic) markReady() { t.readyOnce.Do(func() { close(t.ready) }) }

// confirmed: the PONG that follows the topic's SUBSCRIBE arrived.
func (t *topic) confirmed() {
	if t.state.CompareAndSwap(statePending, stateReady) {
		t.stopTimer()
		t.markReady()
		return
	}
	if t.state.CompareAndSwap(stateDegraded, stateReady) {
		t.resync()
	}
}

// giveUp: the subscription could not be confirmed. Subscribers start anyway; events of this
// instance still reach them directly, and they catch up once Redis confirms the channel.
func (t *topic) giveUp(reason string, err error) {
	t.stopTimer()
	t.degrade(reason, err)
}

func (t *topic) degrade(reason string, err error) {
	if t.state.CompareAndSwap(statePending, stateDegraded) {
		t.hub.log.Warn("live: redis subscription not confirmed; continuing, subscribers catch up when it is",
			"channel", t.channel, "reason", reason, "err", err)
		t.markReady()
	}
}

// resubscribed: Redis confirmed a (re)subscription of the channel. After a reconnect, events
// published while the connection was down are lost: subscribers check PostgreSQL.
func (t *topic) resubscribed() {
	switch t.state.Load() {
	case stateReady:
		t.resync()
	case stateDegraded:
		if t.state.CompareAndSwap(stateDegraded, stateReady) {
			t.resync()
		}
	}
}

// resync asks every subscriber to catch up from PostgreSQL.
func (t *topic) resync() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sendLocked(resyncMarker)
}

// fanout passes an event (seq its event_seq) to every sink, unless the topic already passed it
// (or a later one) on: in that case each sink has it, or has filled it from PostgreSQL, or
// started after it.
func (t *topic) fanout(item any, seq int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq <= t.maxSeq {
		return
	}
	t.maxSeq = seq
	t.sendLocked(item)
}

// sendLocked never waits: a sink whose buffer is full is cut off and removed.
func (t *topic) sendLocked(item any) {
	for s := range t.subs {
		if !s.offer(t, item) {
			delete(t.subs, s)
			s.cutOff()
		}
	}
}

// resyncMarker, sent in place of an event, makes a sink catch up from PostgreSQL.
var resyncMarker chat.Event = &chat.MessageAdded{}
