package live

import (
	"context"
	"time"

	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/tick"
)

// pollMark, sent to a topic's sinks in place of an event, says that the stream's events up to
// EventSeq are committed and that the topic had not passed them all on: a sink that has not
// handled them catches up to it from PostgreSQL.
type pollMark struct{ chat.EventHeader }

// poll runs until the hub closes.
func (h *Hub) poll() {
	defer h.pollWG.Done()
	if h.cfg.PollInterval <= 0 {
		return
	}
	tick.Every(h.done, h.cfg.PollInterval, h.pollOnce)
}

// pollOnce reads the heads of the streams with local sinks and makes the topics that are behind
// catch up (see the package's section on polling).
func (h *Hub) pollOnce() {
	h.mu.RLock()
	topics := make([]*topic, 0, len(h.topics))
	var convs, users []int64
	for key, t := range h.topics {
		topics = append(topics, t)
		if key.user {
			users = append(users, key.id)
		} else {
			convs = append(convs, key.id)
		}
	}
	h.mu.RUnlock()
	if len(topics) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.QueryTimeout)
	convHeads, userHeads, err := h.store.StreamHeads(ctx, convs, users)
	cancel()
	h.m.polls.Inc()
	if err != nil {
		h.m.pollFailures.Inc()
		h.log.Warn("live: polling the streams' heads failed", "err", err)
		return
	}
	type behind struct {
		t    *topic
		head int64
	}
	var waiting []behind
	for _, t := range topics {
		heads := convHeads
		if t.key.user {
			heads = userHeads
		}
		head, ok := heads[t.key.id]
		if !ok || head <= t.passedOn() {
			continue
		}
		if t.pubsubHealthy() {
			waiting = append(waiting, behind{t, head})
			continue
		}
		t.catchUpTo(head)
	}
	if len(waiting) == 0 {
		return
	}
	select {
	case <-time.After(h.cfg.PollGrace):
	case <-h.done:
		return
	}
	for _, b := range waiting {
		b.t.catchUpTo(b.head)
	}
}

// passedOn returns the event_seq of the newest event the topic has passed on.
func (t *topic) passedOn() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.maxSeq
}

// pubsubHealthy reports whether the topic's Redis subscription is confirmed and its connection
// is receiving: events published now should arrive.
func (t *topic) pubsubHealthy() bool {
	return t.state.Load() == stateReady && t.shard.Healthy()
}

// catchUpTo makes the topic's sinks catch up to event_seq head, committed, unless the topic has
// passed it on already.
func (t *topic) catchUpTo(head int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if head <= t.maxSeq {
		return
	}
	t.maxSeq = head
	t.hub.m.pollCatchUps.Inc()
	t.sendLocked(&pollMark{chat.EventHeader{EventSeq: head, ConversationID: t.key.id}})
}
