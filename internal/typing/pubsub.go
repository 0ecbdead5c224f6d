package typing

import (
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/pubsub"
)

// A shard is one Redis Pub/Sub connection and the rooms' channels subscribed on it
// (internal/pubsub, shared with package live): one for the whole instance on a standalone
// Redis, one per slot in use on a Redis Cluster. A room recovers differently from a live topic:
// it reads the sorted set again instead of replaying events from PostgreSQL. The service adds
// and removes rooms under svc.mu; the shard closes when its last room goes.
type shard = pubsub.Shard[*room]

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

func (s *Service) pubsubConfig() *pubsub.Config[*room] {
	return &pubsub.Config[*room]{
		Redis:          s.rdb,
		Sharded:        s.sharded,
		ReadyTimeout:   s.cfg.ReadyTimeout,
		HealthInterval: s.cfg.HealthInterval,
		Log:            s.log,
		Name:           "typing",
		WG:             &s.shardsWG,
		// Any message on a room's channel makes the room read again.
		Message: func(sh *shard, m *redis.Message) {
			if r, ok := roomOn(sh, m.Channel); ok {
				r.kick()
			}
		},
		Lookup: roomOn,
	}
}

// roomOn returns the room of channel if sh serves it.
func roomOn(sh *shard, channel string) (*room, bool) {
	if _, ok := conversationOf(channel); !ok {
		return nil, false
	}
	return sh.Member(channel)
}

// A room is a pubsub.Member.

func (r *room) Channel() string { return r.channel }
func (r *room) Token() string   { return r.token }
func (r *room) Confirmed()      { r.confirmed() }
func (r *room) Resubscribed()   { r.resubscribed() }

// SubscribeFailed: go-redis subscribes the channel again when it reconnects; the room reads
// again then. Meanwhile it starts unconfirmed.
func (r *room) SubscribeFailed(error) { r.degrade() }
