package live

import (
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/pubsub"
)

// A shard is one Redis Pub/Sub connection and the conversation channels subscribed on it
// (internal/pubsub): one for the whole instance on a standalone Redis, one per slot in use on a
// Redis Cluster (a conversation's channel is in the slot of its hash tag). The hub adds and
// removes topics under hub.mu; the shard closes when its last topic goes.
type shard = pubsub.Shard[*topic]

func (h *Hub) pubsubConfig() *pubsub.Config[*topic] {
	return &pubsub.Config[*topic]{
		Redis:          h.rdb,
		Sharded:        h.sharded,
		ReadyTimeout:   h.cfg.ReadyTimeout,
		HealthInterval: h.cfg.HealthInterval,
		Log:            h.log,
		Name:           "live",
		WG:             &h.shardsWG,
		Message:        h.onMessage,
		Lookup:         h.topicOn,
	}
}

// A topic is a pubsub.Member.

func (t *topic) Channel() string { return t.channel }
func (t *topic) Token() string   { return t.token }
func (t *topic) Confirmed()      { t.confirmed() }
func (t *topic) Resubscribed()   { t.resubscribed() }

// SubscribeFailed: go-redis subscribes the channel again when it reconnects; the topic catches
// up then.
func (t *topic) SubscribeFailed(err error) { t.giveUp("subscribing failed", err) }

func (h *Hub) onMessage(_ *shard, m *redis.Message) {
	key, ok := streamOf(m.Channel)
	if !ok {
		h.log.Warn("live: event on an unknown channel", "channel", m.Channel)
		return
	}
	var item any
	var seq, owner int64
	if key.user {
		ev, err := decodeUserEvent(m.Payload)
		if err != nil {
			h.log.Warn("live: undecodable event", "channel", m.Channel, "err", err)
			return
		}
		item, seq, owner = ev, ev.EventSeq, ev.UserID
	} else {
		ev, err := decodeEvent(m.Payload)
		if err != nil {
			h.log.Warn("live: undecodable event", "channel", m.Channel, "err", err)
			return
		}
		item, seq, owner = ev, ev.Header().EventSeq, ev.Header().ConversationID
	}
	if owner != key.id {
		h.log.Warn("live: event on the wrong channel", "channel", m.Channel, "owner", owner)
		return
	}
	h.dispatch(key, item, seq)
}

// topicOn returns the live topic of channel if it is served by sh.
func (h *Hub) topicOn(sh *shard, channel string) (*topic, bool) {
	key, ok := streamOf(channel)
	if !ok {
		return nil, false
	}
	h.mu.RLock()
	defer h.mu.RUnlock()
	if t := h.topics[key]; t != nil && t.shard == sh {
		return t, true
	}
	return nil, false
}
