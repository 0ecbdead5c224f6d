package live

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// A shard is one Redis Pub/Sub connection and the conversation channels subscribed on it.
//
// On a standalone Redis every channel of the instance shares one connection (shard 0): a
// subscription per conversation costs a SUBSCRIBE, not a connection. On a Redis Cluster sharded
// channels live on the node that owns their slot, so there is one connection per slot in use
// (a conversation's channel is in the slot of its hash tag).
//
// Two goroutines serve a shard: work runs the SUBSCRIBE and UNSUBSCRIBE commands in the order the
// hub decided them (so an UNSUBSCRIBE can never overtake a later SUBSCRIBE of the same channel),
// and receive reads the connection. The shard closes when its last channel goes.
type shard struct {
	hub   *Hub
	key   int
	count int // topics on this shard; hub.mu

	qmu   sync.Mutex
	queue []op
	wake  chan struct{}

	mu        sync.Mutex // ps and channels; held during the commands of work and reset
	ps        *redis.PubSub
	channels  map[string]*topic
	closed    bool
	receiving bool // work only

	wmu     sync.Mutex
	waiters map[string]*topic // PING payload -> topic awaiting confirmation

	quit chan struct{}
	// healthy: the connection's last receive succeeded (read by the poll, see pubsubHealthy).
	healthy atomic.Bool
}

type opKind int

const (
	opSubscribe opKind = iota
	opUnsubscribe
	opClose
)

type op struct {
	kind opKind
	t    *topic
}

// healthToken is the payload of the keep-alive PING.
const healthToken = "live:health"

// shardFor returns the shard of t's channel, starting it if needed. Called with hub.mu held.
func (h *Hub) shardFor(t *topic) *shard {
	key := 0
	if h.sharded {
		key = slot(t.channel)
	}
	sh := h.shards[key]
	if sh == nil {
		sh = &shard{
			hub:      h,
			key:      key,
			wake:     make(chan struct{}, 1),
			channels: map[string]*topic{},
			waiters:  map[string]*topic{},
			quit:     make(chan struct{}),
		}
		h.shards[key] = sh
		h.shardsWG.Add(1)
		go sh.work()
	}
	t.shard = sh
	return sh
}

// add, remove and close queue work for the shard; they never wait. Called with hub.mu held.
func (sh *shard) add(t *topic) {
	sh.count++
	sh.enqueue(op{kind: opSubscribe, t: t})
}

func (sh *shard) remove(t *topic) {
	sh.count--
	sh.enqueue(op{kind: opUnsubscribe, t: t})
}

func (sh *shard) close() { sh.enqueue(op{kind: opClose}) }

func (sh *shard) enqueue(o op) {
	sh.qmu.Lock()
	sh.queue = append(sh.queue, o)
	sh.qmu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *shard) work() {
	defer sh.hub.shardsWG.Done()
	for range sh.wake {
		for {
			sh.qmu.Lock()
			ops := sh.queue
			sh.queue = nil
			sh.qmu.Unlock()
			if len(ops) == 0 {
				break
			}
			for _, o := range ops {
				switch o.kind {
				case opSubscribe:
					sh.subscribe(o.t)
				case opUnsubscribe:
					sh.unsubscribe(o.t)
				case opClose:
					sh.shutdown()
					return
				}
			}
		}
	}
}

// subscribe sends SUBSCRIBE then PING <token>: the PONG confirms the subscription.
func (sh *shard) subscribe(t *topic) {
	h := sh.hub
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ReadyTimeout)
	defer cancel()
	sh.mu.Lock()
	if sh.ps == nil {
		sh.ps = h.newPubSub(ctx)
	}
	ps := sh.ps
	sh.channels[t.channel] = t
	err := h.subscribeCmd(ctx, ps, t.channel)
	if err == nil {
		sh.wmu.Lock()
		sh.waiters[t.token] = t
		sh.wmu.Unlock()
		err = ps.Ping(ctx, t.token)
	}
	sh.mu.Unlock()
	if !sh.receiving {
		// Started after the first SUBSCRIBE: on a cluster, the connection must be opened for a
		// channel (it goes to the channel's node), not for a bare read.
		sh.receiving = true
		h.shardsWG.Add(1)
		go sh.receive()
	}
	if err != nil {
		// go-redis keeps the channel and subscribes it again when it reconnects; the topic
		// catches up then.
		t.giveUp("subscribing failed", err)
	}
}

func (sh *shard) unsubscribe(t *topic) {
	h := sh.hub
	sh.wmu.Lock()
	delete(sh.waiters, t.token)
	sh.wmu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.channels[t.channel] != t {
		return
	}
	delete(sh.channels, t.channel)
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ReadyTimeout)
	defer cancel()
	if err := h.unsubscribeCmd(ctx, sh.ps, t.channel); err != nil {
		h.log.Debug("live: unsubscribe failed (the connection will not resubscribe it)", "channel", t.channel, "err", err)
	}
}

func (sh *shard) shutdown() {
	sh.mu.Lock()
	sh.closed = true
	ps := sh.ps
	sh.ps = nil
	sh.mu.Unlock()
	close(sh.quit)
	if ps != nil {
		_ = ps.Close()
	}
}

// receive reads the shard's connection: events go to the hub, confirmations to their topics.
// A connection that stays silent is pinged, and replaced when pings go unanswered.
func (sh *shard) receive() {
	h := sh.hub
	defer h.shardsWG.Done()
	ctx := context.Background()
	silent := 0
	backoff := 50 * time.Millisecond
	for {
		sh.mu.Lock()
		ps, closed := sh.ps, sh.closed
		sh.mu.Unlock()
		if closed || ps == nil {
			return
		}
		msg, err := ps.ReceiveTimeout(ctx, h.cfg.HealthInterval)
		if err != nil {
			if sh.isClosed() {
				return
			}
			var nerr net.Error
			var rerr redis.Error
			if !(errors.As(err, &nerr) && nerr.Timeout()) {
				sh.healthy.Store(false)
			}
			switch {
			case errors.As(err, &nerr) && nerr.Timeout():
				silent++
				if silent > 2 {
					sh.reset(ps, "the connection stopped answering pings", nil)
					silent = 0
					continue
				}
				pctx, cancel := context.WithTimeout(ctx, h.cfg.HealthInterval)
				_ = ps.Ping(pctx, healthToken)
				cancel()
			case errors.As(err, &rerr):
				// An error reply on a subscribed connection (a cluster slot that moved, say):
				// start over on a fresh connection, and let the subscribers catch up.
				sh.reset(ps, "redis answered with an error", err)
			default:
				// The connection failed; go-redis reconnects and resubscribes on the next call.
				h.log.Debug("live: redis pub/sub receive failed", "err", err)
				select {
				case <-time.After(backoff):
				case <-sh.quit:
					return
				}
				backoff = min(2*backoff, 2*time.Second)
			}
			continue
		}
		silent, backoff = 0, 50*time.Millisecond
		sh.healthy.Store(true)
		switch m := msg.(type) {
		case *redis.Message:
			sh.onMessage(m)
		case *redis.Subscription:
			sh.onSubscription(ps, m)
		case *redis.Pong:
			sh.onPong(m.Payload)
		}
	}
}

func (sh *shard) isClosed() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.closed
}

func (sh *shard) onMessage(m *redis.Message) {
	h := sh.hub
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

func (sh *shard) onSubscription(ps *redis.PubSub, m *redis.Subscription) {
	t := sh.topic(m.Channel)
	if t == nil {
		return // a channel this shard no longer serves
	}
	switch m.Kind {
	case "subscribe", "ssubscribe":
		t.resubscribed()
	case "sunsubscribe":
		// Unasked: Redis Cluster drops the sharded subscriptions of a slot that moved to
		// another node. A new connection goes to the slot's new owner.
		sh.reset(ps, "redis cluster dropped a sharded subscription", nil)
	}
}

func (sh *shard) onPong(payload string) {
	if payload == healthToken {
		return
	}
	sh.wmu.Lock()
	t := sh.waiters[payload]
	delete(sh.waiters, payload)
	sh.wmu.Unlock()
	if t != nil {
		t.confirmed()
	}
}

// topic returns the live topic of channel if it is served by this shard.
func (sh *shard) topic(channel string) *topic {
	key, ok := streamOf(channel)
	if !ok {
		return nil
	}
	h := sh.hub
	h.mu.RLock()
	defer h.mu.RUnlock()
	if t := h.topics[key]; t != nil && t.shard == sh {
		return t
	}
	return nil
}

// reset replaces the shard's connection old with a new one subscribed to the same channels.
// Their confirmations make every topic catch up.
func (sh *shard) reset(old *redis.PubSub, reason string, cause error) {
	h := sh.hub
	sh.mu.Lock()
	if sh.closed || sh.ps != old {
		sh.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ReadyTimeout)
	defer cancel()
	ps := h.newPubSub(ctx)
	channels := make([]string, 0, len(sh.channels))
	for c := range sh.channels {
		channels = append(channels, c)
	}
	sh.ps = ps
	sh.healthy.Store(false)
	var err error
	if len(channels) > 0 {
		err = h.subscribeCmd(ctx, ps, channels...)
	}
	sh.mu.Unlock()
	_ = old.Close()
	h.log.Warn("live: redis pub/sub connection replaced", "reason", reason, "cause", cause, "channels", len(channels), "subscribe_err", err)
}

func (h *Hub) newPubSub(ctx context.Context) *redis.PubSub {
	if h.sharded {
		return h.rdb.SSubscribe(ctx)
	}
	return h.rdb.Subscribe(ctx)
}

func (h *Hub) subscribeCmd(ctx context.Context, ps *redis.PubSub, channels ...string) error {
	if h.sharded {
		return ps.SSubscribe(ctx, channels...)
	}
	return ps.Subscribe(ctx, channels...)
}

func (h *Hub) unsubscribeCmd(ctx context.Context, ps *redis.PubSub, channels ...string) error {
	if h.sharded {
		return ps.SUnsubscribe(ctx, channels...)
	}
	return ps.Unsubscribe(ctx, channels...)
}

// slot is the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash tag, modulo 16384.
func slot(key string) int {
	if s := strings.IndexByte(key, '{'); s >= 0 {
		if e := strings.IndexByte(key[s+1:], '}'); e > 0 {
			key = key[s+1 : s+1+e]
		}
	}
	var crc uint16
	for i := 0; i < len(key); i++ {
		crc ^= uint16(key[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return int(crc % 16384)
}
