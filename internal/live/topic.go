package live

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// A topic is one conversation's local subscribers and the state of its Redis subscription.
// Events reach every subscriber in increasing event_seq order: fanout drops what the topic
// already passed on (the sending instance sees its own events twice) and sends under the
// topic's lock.
type topic struct {
	hub     *Hub
	conv    int64
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
	subs   map[*subscriber]struct{}
	maxSeq int64 // highest event_seq fanned out
}

// Redis subscription states of a topic.
const (
	statePending  int32 = iota // SUBSCRIBE sent, not yet confirmed
	stateReady                 // confirmed: every event published from then on arrives
	stateDegraded              // not confirmed in time: subscribers run, and catch up once it is
)

func newTopic(h *Hub, conv int64, id uint64) *topic {
	t := &topic{
		hub:     h,
		conv:    conv,
		channel: channelName(conv),
		token:   "live:" + strconv.FormatUint(id, 10),
		ready:   make(chan struct{}),
		subs:    map[*subscriber]struct{}{},
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
			"conversation_id", t.conv, "reason", reason, "err", err)
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

// fanout passes an event to every subscriber, unless the topic already passed it (or a later
// one) on: in that case each subscriber has it, or has filled it from PostgreSQL, or started
// after it.
func (t *topic) fanout(ev chat.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if seq := ev.Header().EventSeq; seq <= t.maxSeq {
		return
	} else {
		t.maxSeq = seq
	}
	t.sendLocked(ev)
}

// sendLocked never waits: a subscriber whose buffer is full is cut off and removed.
func (t *topic) sendLocked(m chat.Event) {
	for s := range t.subs {
		select {
		case s.in <- m:
		default:
			delete(t.subs, s)
			s.cutOff()
		}
	}
}

// resyncMarker, sent in place of an event, makes a subscriber catch up from PostgreSQL.
var resyncMarker chat.Event = &chat.MessageAdded{}
