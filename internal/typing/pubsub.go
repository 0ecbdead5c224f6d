package typing

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// A shard is one Redis Pub/Sub connection and the rooms' channels subscribed on it: one for
// the whole instance on a standalone Redis, one per slot in use on a Redis Cluster (sharded
// channels live on their slot's node). It is package live's design (internal/live/redis.go),
// kept apart because a room recovers differently (it reads the sorted set again instead of
// replaying events from PostgreSQL).
//
// Two goroutines serve a shard: work runs SUBSCRIBE and UNSUBSCRIBE in the order rooms came and
// went (an UNSUBSCRIBE never overtakes a later SUBSCRIBE of the same channel), and receive reads
// the connection. The shard closes when its last room goes.
type shard struct {
	svc   *Service
	key   int
	count int // rooms on this shard; svc.mu

	qmu   sync.Mutex
	queue []op
	wake  chan struct{}

	mu        sync.Mutex // ps, channels, closed
	ps        *redis.PubSub
	channels  map[string]*room
	closed    bool
	receiving bool // work only

	wmu     sync.Mutex
	waiters map[string]*room // PING payload -> room awaiting confirmation

	quit chan struct{}
}

type opKind int

const (
	opSubscribe opKind = iota
	opUnsubscribe
	opClose
)

type op struct {
	kind opKind
	r    *room
}

// healthToken is the payload of the keep-alive PING.
const healthToken = "typing:health"

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }

// shardFor returns the shard of r's channel, starting it if needed. Called with svc.mu held.
func (s *Service) shardFor(r *room) *shard {
	key := 0
	if s.sharded {
		key = slot(r.channel)
	}
	sh := s.shards[key]
	if sh == nil {
		sh = &shard{
			svc: s, key: key, wake: make(chan struct{}, 1),
			channels: map[string]*room{}, waiters: map[string]*room{}, quit: make(chan struct{}),
		}
		s.shards[key] = sh
		s.shardsWG.Add(1)
		go sh.work()
	}
	r.shard = sh
	return sh
}

// add, remove and close queue work for the shard; they never wait. add and remove are called
// with svc.mu held.
func (sh *shard) add(r *room) {
	sh.count++
	sh.enqueue(op{kind: opSubscribe, r: r})
}

func (sh *shard) remove(r *room) {
	sh.count--
	sh.enqueue(op{kind: opUnsubscribe, r: r})
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
	defer sh.svc.shardsWG.Done()
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
					sh.subscribe(o.r)
				case opUnsubscribe:
					sh.unsubscribe(o.r)
				case opClose:
					sh.shutdown()
					return
				}
			}
		}
	}
}

// subscribe sends SUBSCRIBE then PING <token>: the PONG confirms the subscription.
func (sh *shard) subscribe(r *room) {
	s := sh.svc
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadyTimeout)
	defer cancel()
	sh.mu.Lock()
	if sh.ps == nil {
		sh.ps = s.newPubSub(ctx)
	}
	ps := sh.ps
	sh.channels[r.channel] = r
	err := s.subscribeCmd(ctx, ps, r.channel)
	if err == nil {
		sh.wmu.Lock()
		sh.waiters[r.token] = r
		sh.wmu.Unlock()
		err = ps.Ping(ctx, r.token)
	}
	sh.mu.Unlock()
	if !sh.receiving {
		// Started after the first SUBSCRIBE: on a cluster the connection must be opened for a
		// channel (it goes to the channel's node), not for a bare read.
		sh.receiving = true
		s.shardsWG.Add(1)
		go sh.receive()
	}
	if err != nil {
		// go-redis keeps the channel and subscribes it again when it reconnects; the room reads
		// again then. Meanwhile it starts unconfirmed.
		r.degrade()
	}
}

func (sh *shard) unsubscribe(r *room) {
	s := sh.svc
	sh.wmu.Lock()
	delete(sh.waiters, r.token)
	sh.wmu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.channels[r.channel] != r {
		return
	}
	delete(sh.channels, r.channel)
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadyTimeout)
	defer cancel()
	if err := s.unsubscribeCmd(ctx, sh.ps, r.channel); err != nil {
		s.log.Debug("typing: unsubscribe failed (the connection will not resubscribe it)", "channel", r.channel, "err", err)
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

func (sh *shard) isClosed() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.closed
}

// receive reads the shard's connection: messages and (re)subscriptions make their rooms read
// again, PONGs confirm subscriptions. A connection that stays silent is pinged, and replaced
// when pings go unanswered.
func (sh *shard) receive() {
	s := sh.svc
	defer s.shardsWG.Done()
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
		msg, err := ps.ReceiveTimeout(ctx, s.cfg.HealthInterval)
		if err != nil {
			if sh.isClosed() {
				return
			}
			var nerr net.Error
			var rerr redis.Error
			switch {
			case errors.As(err, &nerr) && nerr.Timeout():
				silent++
				if silent > 2 {
					sh.reset(ps, "the connection stopped answering pings")
					silent = 0
					continue
				}
				pctx, cancel := context.WithTimeout(ctx, s.cfg.HealthInterval)
				_ = ps.Ping(pctx, healthToken)
				cancel()
			case errors.As(err, &rerr):
				sh.reset(ps, "redis answered with an error")
			default:
				// The connection failed; go-redis reconnects and resubscribes on the next call.
				s.log.Debug("typing: redis pub/sub receive failed", "err", err)
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
		switch m := msg.(type) {
		case *redis.Message:
			if r := sh.room(m.Channel); r != nil {
				r.kick()
			}
		case *redis.Subscription:
			r := sh.room(m.Channel)
			switch {
			case r == nil:
			case m.Kind == "subscribe" || m.Kind == "ssubscribe":
				r.resubscribed()
			case m.Kind == "sunsubscribe":
				// Unasked: Redis Cluster drops the sharded subscriptions of a slot that moved.
				sh.reset(ps, "redis cluster dropped a sharded subscription")
			}
		case *redis.Pong:
			if m.Payload == healthToken {
				continue
			}
			sh.wmu.Lock()
			r := sh.waiters[m.Payload]
			delete(sh.waiters, m.Payload)
			sh.wmu.Unlock()
			if r != nil {
				r.confirmed()
			}
		}
	}
}

// room returns the room of channel if this shard serves it.
func (sh *shard) room(channel string) *room {
	if _, ok := conversationOf(channel); !ok {
		return nil
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.channels[channel]
}

// reset replaces the shard's connection old with a new one subscribed to the same channels;
// their confirmations make every room read again.
func (sh *shard) reset(old *redis.PubSub, reason string) {
	s := sh.svc
	sh.mu.Lock()
	if sh.closed || sh.ps != old {
		sh.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReadyTimeout)
	defer cancel()
	ps := s.newPubSub(ctx)
	channels := make([]string, 0, len(sh.channels))
	for c := range sh.channels {
		channels = append(channels, c)
	}
	sh.ps = ps
	var err error
	if len(channels) > 0 {
		err = s.subscribeCmd(ctx, ps, channels...)
	}
	sh.mu.Unlock()
	_ = old.Close()
	s.log.Warn("typing: redis pub/sub connection replaced", "reason", reason, "channels", len(channels), "subscribe_err", err)
}

func (s *Service) newPubSub(ctx context.Context) *redis.PubSub {
	if s.sharded {
		return s.rdb.SSubscribe(ctx)
	}
	return s.rdb.Subscribe(ctx)
}

func (s *Service) subscribeCmd(ctx context.Context, ps *redis.PubSub, channels ...string) error {
	if s.sharded {
		return ps.SSubscribe(ctx, channels...)
	}
	return ps.Subscribe(ctx, channels...)
}

func (s *Service) unsubscribeCmd(ctx context.Context, ps *redis.PubSub, channels ...string) error {
	if s.sharded {
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
