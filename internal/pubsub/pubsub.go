// Package pubsub runs the Redis Pub/Sub connections of packages live and typing: a Shard is one
// connection and the channels subscribed on it.
//
// On a standalone Redis every channel of the instance shares one connection (one shard): a
// subscription per channel costs a SUBSCRIBE, not a connection. On a Redis Cluster sharded
// channels live on the node that owns their slot, so the owner keeps one shard per slot in use
// (redisclient.Slot of the channel).
//
// Two goroutines serve a shard: work runs the SUBSCRIBE and UNSUBSCRIBE commands in the order
// the owner queued them (so an UNSUBSCRIBE can never overtake a later SUBSCRIBE of the same
// channel), and receive reads the connection. Each SUBSCRIBE is followed by PING <token>: the
// PONG confirms the subscription to its member. A connection that stays silent is pinged, and
// replaced when pings go unanswered, when Redis answers with an error, or when a Redis Cluster
// drops a sharded subscription unasked; the new connection subscribes every channel again, and
// each (re)subscription is reported to its member so it can catch up on what it missed.
package pubsub

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/redisclient"
)

// A Member is subscribed to one channel. Its methods are called from the shard's goroutines.
type Member interface {
	comparable
	Channel() string
	// Token is the payload of the PING that confirms the subscription; unique per member.
	Token() string
	// Confirmed: the PONG that follows the member's SUBSCRIBE arrived.
	Confirmed()
	// Resubscribed: Redis confirmed a (re)subscription of the channel; messages published
	// while the connection was down are lost.
	Resubscribed()
	// SubscribeFailed: the SUBSCRIBE or its PING failed. go-redis keeps the channel and
	// subscribes it again when it reconnects, which calls Resubscribed.
	SubscribeFailed(err error)
}

// Config is shared by the shards of one owner.
type Config[M Member] struct {
	Redis   redis.UniversalClient
	Sharded bool // SSUBSCRIBE (Redis Cluster) instead of SUBSCRIBE
	// ReadyTimeout bounds each command; HealthInterval is the silence after which the
	// connection is pinged.
	ReadyTimeout, HealthInterval time.Duration
	Log                          *slog.Logger
	Name                         string // log prefix and keep-alive PING payload prefix
	// WG counts the shards' goroutines; the owner waits on it when it closes.
	WG *sync.WaitGroup
	// Message receives the messages of the shard's channels.
	Message func(sh *Shard[M], m *redis.Message)
	// Lookup returns the live member of channel served by sh; nil looks channel up among the
	// shard's subscribed channels (Member).
	Lookup func(sh *Shard[M], channel string) (M, bool)
}

// A Shard is one Pub/Sub connection. Config.Add, Remove and Close queue work and never wait; the
// owner calls them under its own lock, which guards its map of shards and their member counts.
type Shard[M Member] struct {
	cfg   *Config[M]
	key   int
	count int // members added and not removed; the owner's lock

	qmu   sync.Mutex
	queue []op[M]
	wake  chan struct{}

	mu        sync.Mutex // ps, channels, closed; held during the commands of work and reset
	ps        *redis.PubSub
	channels  map[string]M
	closed    bool
	receiving bool // work only

	wmu     sync.Mutex
	waiters map[string]M // PING payload -> member awaiting confirmation

	quit    chan struct{}
	healthy atomic.Bool // the connection's last receive succeeded
}

type opKind int

const (
	opSubscribe opKind = iota
	opUnsubscribe
	opClose
)

type op[M Member] struct {
	kind opKind
	m    M
}

// Add subscribes m's channel on its shard in shards (keyed 0 on a standalone Redis, by the
// channel's redisclient.Slot on a cluster), starting the shard if needed, and returns the shard.
func (c *Config[M]) Add(shards map[int]*Shard[M], m M) *Shard[M] {
	key := 0
	if c.Sharded {
		key = redisclient.Slot(m.Channel())
	}
	sh := shards[key]
	if sh == nil {
		sh = start(c, key)
		shards[key] = sh
	}
	sh.count++
	sh.enqueue(op[M]{kind: opSubscribe, m: m})
	return sh
}

// Remove unsubscribes m's channel unless another member took it over; when m was the shard's
// last member, it drops the shard from shards and closes it.
func (sh *Shard[M]) Remove(shards map[int]*Shard[M], m M) {
	sh.count--
	sh.enqueue(op[M]{kind: opUnsubscribe, m: m})
	if sh.count == 0 {
		delete(shards, sh.key)
		sh.Close()
	}
}

func start[M Member](cfg *Config[M], key int) *Shard[M] {
	sh := &Shard[M]{
		cfg:      cfg,
		key:      key,
		wake:     make(chan struct{}, 1),
		channels: map[string]M{},
		waiters:  map[string]M{},
		quit:     make(chan struct{}),
	}
	cfg.WG.Add(1)
	go sh.work()
	return sh
}

// Close closes the connection once the queued commands ran.
func (sh *Shard[M]) Close() { sh.enqueue(op[M]{kind: opClose}) }

// Healthy reports whether the connection's last receive succeeded.
func (sh *Shard[M]) Healthy() bool { return sh.healthy.Load() }

// Member returns the member subscribed to channel on this shard.
func (sh *Shard[M]) Member(channel string) (M, bool) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	m, ok := sh.channels[channel]
	return m, ok
}

func (sh *Shard[M]) lookup(channel string) (M, bool) {
	if sh.cfg.Lookup != nil {
		return sh.cfg.Lookup(sh, channel)
	}
	return sh.Member(channel)
}

func (sh *Shard[M]) enqueue(o op[M]) {
	sh.qmu.Lock()
	sh.queue = append(sh.queue, o)
	sh.qmu.Unlock()
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

func (sh *Shard[M]) work() {
	defer sh.cfg.WG.Done()
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
					sh.subscribe(o.m)
				case opUnsubscribe:
					sh.unsubscribe(o.m)
				case opClose:
					sh.shutdown()
					return
				}
			}
		}
	}
}

// subscribe sends SUBSCRIBE then PING <token>: the PONG confirms the subscription.
func (sh *Shard[M]) subscribe(m M) {
	c := sh.cfg
	ctx, cancel := context.WithTimeout(context.Background(), c.ReadyTimeout)
	defer cancel()
	sh.mu.Lock()
	if sh.ps == nil {
		sh.ps = c.newPubSub(ctx)
	}
	ps := sh.ps
	sh.channels[m.Channel()] = m
	err := c.subscribeCmd(ctx, ps, m.Channel())
	if err == nil {
		sh.wmu.Lock()
		sh.waiters[m.Token()] = m
		sh.wmu.Unlock()
		err = ps.Ping(ctx, m.Token())
	}
	sh.mu.Unlock()
	if !sh.receiving {
		// Started after the first SUBSCRIBE: on a cluster, the connection must be opened for a
		// channel (it goes to the channel's node), not for a bare read.
		sh.receiving = true
		c.WG.Add(1)
		go sh.receive()
	}
	if err != nil {
		m.SubscribeFailed(err)
	}
}

func (sh *Shard[M]) unsubscribe(m M) {
	c := sh.cfg
	sh.wmu.Lock()
	delete(sh.waiters, m.Token())
	sh.wmu.Unlock()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if cur, ok := sh.channels[m.Channel()]; !ok || cur != m {
		return
	}
	delete(sh.channels, m.Channel())
	ctx, cancel := context.WithTimeout(context.Background(), c.ReadyTimeout)
	defer cancel()
	if err := c.unsubscribeCmd(ctx, sh.ps, m.Channel()); err != nil {
		c.Log.Debug(c.Name+": unsubscribe failed (the connection will not resubscribe it)", "channel", m.Channel(), "err", err)
	}
}

func (sh *Shard[M]) shutdown() {
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

func (sh *Shard[M]) isClosed() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.closed
}

// receive reads the shard's connection: messages go to Config.Message, (re)subscriptions and
// confirmations to their members. A connection that stays silent is pinged, and replaced when
// pings go unanswered.
func (sh *Shard[M]) receive() {
	c := sh.cfg
	defer c.WG.Done()
	ctx := context.Background()
	healthToken := c.Name + ":health"
	silent := 0
	backoff := 50 * time.Millisecond
	for {
		sh.mu.Lock()
		ps, closed := sh.ps, sh.closed
		sh.mu.Unlock()
		if closed || ps == nil {
			return
		}
		msg, err := ps.ReceiveTimeout(ctx, c.HealthInterval)
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
				pctx, cancel := context.WithTimeout(ctx, c.HealthInterval)
				_ = ps.Ping(pctx, healthToken)
				cancel()
			case errors.As(err, &rerr):
				// An error reply on a subscribed connection (a cluster slot that moved, say):
				// start over on a fresh connection, and let the members catch up.
				sh.reset(ps, "redis answered with an error", err)
			default:
				// The connection failed; go-redis reconnects and resubscribes on the next call.
				c.Log.Debug(c.Name+": redis pub/sub receive failed", "err", err)
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
			c.Message(sh, m)
		case *redis.Subscription:
			mem, ok := sh.lookup(m.Channel)
			switch {
			case !ok:
				// a channel this shard no longer serves
			case m.Kind == "subscribe" || m.Kind == "ssubscribe":
				mem.Resubscribed()
			case m.Kind == "sunsubscribe":
				// Unasked: Redis Cluster drops the sharded subscriptions of a slot that moved
				// to another node. A new connection goes to the slot's new owner.
				sh.reset(ps, "redis cluster dropped a sharded subscription", nil)
			}
		case *redis.Pong:
			if m.Payload == healthToken {
				continue
			}
			sh.wmu.Lock()
			mem, ok := sh.waiters[m.Payload]
			delete(sh.waiters, m.Payload)
			sh.wmu.Unlock()
			if ok {
				mem.Confirmed()
			}
		}
	}
}

// reset replaces the shard's connection old with a new one subscribed to the same channels.
// Their confirmations (Resubscribed) make every member catch up.
func (sh *Shard[M]) reset(old *redis.PubSub, reason string, cause error) {
	c := sh.cfg
	sh.mu.Lock()
	if sh.closed || sh.ps != old {
		sh.mu.Unlock()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.ReadyTimeout)
	defer cancel()
	ps := c.newPubSub(ctx)
	channels := make([]string, 0, len(sh.channels))
	for ch := range sh.channels {
		channels = append(channels, ch)
	}
	sh.ps = ps
	sh.healthy.Store(false)
	var err error
	if len(channels) > 0 {
		err = c.subscribeCmd(ctx, ps, channels...)
	}
	sh.mu.Unlock()
	_ = old.Close()
	c.Log.Warn(c.Name+": redis pub/sub connection replaced", "reason", reason, "cause", cause, "channels", len(channels), "subscribe_err", err)
}

func (c *Config[M]) newPubSub(ctx context.Context) *redis.PubSub {
	if c.Sharded {
		return c.Redis.SSubscribe(ctx)
	}
	return c.Redis.Subscribe(ctx)
}

func (c *Config[M]) subscribeCmd(ctx context.Context, ps *redis.PubSub, channels ...string) error {
	if c.Sharded {
		return ps.SSubscribe(ctx, channels...)
	}
	return ps.Subscribe(ctx, channels...)
}

func (c *Config[M]) unsubscribeCmd(ctx context.Context, ps *redis.PubSub, channels ...string) error {
	if c.Sharded {
		return ps.SUnsubscribe(ctx, channels...)
	}
	return ps.Unsubscribe(ctx, channels...)
}
