// Package localcache is an in-process tier in front of Redis that stays exact: a value it holds
// for a Redis key is never used by a request that began after a change of that key had
// completed in Redis, whichever process made the change.
//
// # Tracking
//
// Each process holds one dedicated connection to Redis, in RESP3, on which it runs CLIENT
// TRACKING ON BCAST with a PREFIX for each family of keys the tier may hold (Config.Prefixes).
// From then on Redis sends on that connection an invalidation message naming every key with one
// of those prefixes that any client changes — written, deleted, expired, evicted — whoever read
// it, and a message without keys when a database is flushed. The values themselves are read
// through the ordinary client pool and kept with Fill; the tracking connection only carries
// invalidations and barriers. Tracking on the connection itself (RESP3 push messages) rather
// than redirected to a Pub/Sub connection keeps invalidations and barrier replies on one
// ordered stream, and leaves no second connection whose loss would have to be noticed
// (tracking-redir-broken).
//
// # Barrier
//
// A request uses what the tier holds only after a barrier (Barrier): a PING sent on the tracking
// connection after the request began, and its reply. Redis queues a BCAST invalidation to the
// tracking connection in the event-loop iteration that made the change, before it writes any
// reply of that iteration to the writer (beforeSleep runs trackingBroadcastInvalidationMessages,
// then handleClientsWithPendingWrites, in Redis 6.0 to 7.x), and a connection delivers what was
// queued to it in order. So when a write has completed (its client has Redis's reply) before a
// request began, the PING that request waits for is read by Redis after the invalidation was
// queued, its PONG follows the invalidation on the wire, and the one goroutine that reads the
// connection applies the invalidation before it releases the barrier. Read-your-writes holds
// across processes: a read that starts after a mutation's answer sees it, whichever instance
// serves either, because the mutation's answer follows its Redis write.
//
// Barriers coalesce: one PING is in flight at a time; requests that arrive while it is in flight
// wait for the next one, sent when its reply comes (a PING already in flight may have been read
// by Redis before they began). Under load that is one round trip for each batch of requests
// rather than one per request: threadline_local_cache_barriers_total and
// threadline_local_cache_barrier_batch_size show it.
//
// # Fills
//
// A value read from Redis may change before it is kept. A fill takes a Snapshot of the tier's
// invalidation sequence before sending the read, and Fill keeps the value only if no
// invalidation of that key (of any key hashing to the same of keySlots slots: a superset) and
// no flush was applied since, under the lock that applying an invalidation takes. An
// invalidation applied before the snapshot was queued by a change Redis made before the read
// was sent, so the read saw that change; one applied after the snapshot refuses the fill; one
// applied after the fill removes the value.
//
// # Doubt
//
// When the tier cannot vouch for what it holds it empties itself, and holds and answers nothing
// until tracking is established anew: the tracking connection failed or was closed (a Redis
// restart, CLIENT KILL), a barrier got no reply within Config.BarrierTimeout, Config.Healthy said
// no (the Redis circuit breaker is not closed), Redis flushed a database, or it sent something
// the tier does not understand. Whoever uses the tier then falls back to Redis.
//
// # Untracked entries
//
// Set keeps values that are not Redis keys the tier tracks (stored responses, say), for at most
// their TTL. Nothing invalidates them: their user must check them against tracked values (the
// tokens they were stored under) after a barrier. The tier empties them with everything else.
//
// The tier is bounded by Config.Bytes, in estimated bytes of keys and values; past it, the least
// recently used entries go. A Redis Cluster is not supported: BCAST tracking and the barrier
// cover one node, and a cluster's keys change on several (each would need its own tracking
// connection and barrier, kept up through failovers and slot migrations). Do not create a tier
// for one; the response cache runs without it there (internal/respcache).
package localcache

import (
	"bufio"
	"cmp"
	"container/list"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/defaults"
	"github.com/threadline/threadline/internal/tick"
)

// Defaults of Config.
const (
	DefaultBytes          = 64 << 20
	DefaultBarrierTimeout = 100 * time.Millisecond
)

// ErrInactive is returned by Barrier while the tier cannot vouch for what it holds (tracking
// is not established).
var ErrInactive = errors.New("localcache: tracking is not established")

// Config configures a Tier.
type Config struct {
	// Bytes bounds the entries, in estimated bytes (keys, values and bookkeeping).
	Bytes int64
	// Prefixes are the key prefixes Redis tracks for the tier: only keys with one of them can be
	// kept with Fill. They must not overlap (Redis refuses it).
	Prefixes []string
	// BarrierTimeout bounds the wait for a barrier's reply; past it the tier empties and tracking
	// is established anew. Default DefaultBarrierTimeout.
	BarrierTimeout time.Duration
	// Healthy, if set, is asked before each barrier round trip and while the tier waits to
	// reconnect: false empties the tier and drops tracking until it says true again (the Redis
	// circuit breaker: open or half-open is doubt).
	Healthy func() bool
	// Name is the connection's CLIENT SETNAME; default "threadline-localcache".
	Name       string
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// keySlots is the number of slots invalidations are remembered in, by key hash, for fills.
const keySlots = 4096

// Tier is the in-process tier. Its methods are safe for concurrent use.
type Tier struct {
	cfg  Config
	opts *redis.Options
	log  *slog.Logger
	m    *metrics

	mu      sync.Mutex
	entries map[string]*entry
	order   list.List // of *entry, most recently used first
	bytes   int64
	active  bool
	seq     uint64           // bumped by every invalidation message applied and every flush
	flushed uint64           // seq at the last flush
	keySeq  [keySlots]uint64 // seq of the last invalidation of a key in each slot
	// seqNow mirrors seq for Snapshot, which takes no lock.
	seqNow atomic.Uint64

	bmu      sync.Mutex // barrier state; taken before mu when both are
	conn     *trackConn // nil while tracking is not established
	inflight *batch     // the PING in flight
	waiting  *batch     // requests waiting for the next PING
	doubted  string     // why tracking on conn is being dropped, if it is

	closed chan struct{}
	done   sync.WaitGroup
}

type entry struct {
	key     string
	value   any
	size    int64
	expires time.Time // zero: none
	tracked bool
	elem    *list.Element // in Tier.order
}

// entryOverhead estimates what an entry costs besides its key and value.
const entryOverhead = 128

type batch struct {
	done chan struct{}
	err  error
	n    int
	sent time.Time
}

// trackConn is the tracking connection.
type trackConn struct {
	net.Conn
	rd *bufio.Reader
}

// New starts a tier whose tracking connection dials Redis as opts says (address, TLS,
// credentials; the database does not matter: tracking names keys in every database), or
// returns nil when cfg.Bytes is not positive. Call Close when done.
func New(opts *redis.Options, cfg Config) *Tier {
	if cfg.Bytes <= 0 {
		return nil
	}
	cfg.BarrierTimeout = defaults.Positive(cfg.BarrierTimeout, DefaultBarrierTimeout)
	cfg.Name = cmp.Or(cfg.Name, "threadline-localcache")
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	t := &Tier{cfg: cfg, opts: opts, log: cfg.Log, entries: make(map[string]*entry), closed: make(chan struct{})}
	t.m = newMetrics(cfg.Registerer, t)
	t.done.Go(t.run)
	t.done.Go(func() { tick.Every(t.closed, max(t.cfg.BarrierTimeout/4, time.Millisecond), t.watch) })
	return t
}

// Close drops tracking and stops the tier.
func (t *Tier) Close() {
	select {
	case <-t.closed:
		return
	default:
	}
	close(t.closed)
	t.bmu.Lock()
	if t.conn != nil {
		_ = t.conn.Close()
	}
	t.bmu.Unlock()
	t.done.Wait()
}

// Active reports whether tracking is established: whether Get, Fill and Set can hold anything.
func (t *Tier) Active() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.active
}

// Get returns the value kept for key, if any (and not past its TTL).
func (t *Tier) Get(key string) (any, bool) {
	t.mu.Lock()
	e := t.entries[key]
	if e == nil {
		t.mu.Unlock()
		return nil, false
	}
	if !e.expires.IsZero() && time.Now().After(e.expires) {
		t.remove(e)
		t.mu.Unlock()
		return nil, false
	}
	t.touch(e)
	v := e.value
	t.mu.Unlock()
	return v, true
}

// Snapshot is the tier's invalidation sequence at a moment: take it before reading a value from
// Redis, and pass it to Fill.
type Snapshot struct{ seq uint64 }

// Snapshot returns the invalidation sequence now.
func (t *Tier) Snapshot() Snapshot { return Snapshot{seq: t.seqNow.Load()} }

// Fill keeps value as what Redis holds at key, read after s was taken, unless that may no longer
// be so: tracking was not established all along since s, or an invalidation of key (or of a key
// in its slot) was applied since s. Keys without one of Config.Prefixes are not kept. It
// reports whether the value was kept.
func (t *Tier) Fill(s Snapshot, key, value string) bool {
	if !t.tracks(key) {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active || t.flushed > s.seq || t.keySeq[slot(key)] > s.seq {
		t.m.fillsRefused.Inc()
		return false
	}
	t.put(key, value, int64(len(value)), time.Time{}, true)
	return true
}

// Set keeps value, which is not a tracked Redis key's, for at most ttl (size: its estimated
// bytes). Nothing invalidates it (see the package doc). While tracking is not established it
// keeps nothing.
func (t *Tier) Set(key string, value any, size int64, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.active {
		return
	}
	t.put(key, value, size, time.Now().Add(ttl), false)
}

// Delete forgets key.
func (t *Tier) Delete(key string) {
	t.mu.Lock()
	if e := t.entries[key]; e != nil {
		t.remove(e)
	}
	t.mu.Unlock()
}

// Hit and Miss count a lookup that the tier answered, and one it could not answer (the caller
// went to Redis), for threadline_local_cache_hits_total and _misses_total.
func (t *Tier) Hit()  { t.m.hits.Inc() }
func (t *Tier) Miss() { t.m.misses.Inc() }

func (t *Tier) tracks(key string) bool {
	for _, p := range t.cfg.Prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// put inserts or replaces an entry and evicts past the bound; mu is held.
func (t *Tier) put(key string, value any, size int64, expires time.Time, tracked bool) {
	size += int64(len(key)) + entryOverhead
	if size > t.cfg.Bytes {
		return
	}
	if e := t.entries[key]; e != nil {
		t.remove(e)
	}
	e := &entry{key: key, value: value, size: size, expires: expires, tracked: tracked}
	t.entries[key] = e
	t.bytes += size
	e.elem = t.order.PushFront(e)
	for t.bytes > t.cfg.Bytes && t.order.Len() > 0 {
		t.remove(t.order.Back().Value.(*entry))
		t.m.evictions.Inc()
	}
}

// touch moves e to the front; mu is held.
func (t *Tier) touch(e *entry) { t.order.MoveToFront(e.elem) }

// remove drops e; mu is held.
func (t *Tier) remove(e *entry) {
	t.order.Remove(e.elem)
	delete(t.entries, e.key)
	t.bytes -= e.size
}

// invalidate applies one invalidation message: the keys Redis names, or everything (nil).
func (t *Tier) invalidate(keys []string, all bool) {
	t.mu.Lock()
	t.seq++
	if all {
		t.flushLocked()
	}
	for _, k := range keys {
		t.keySeq[slot(k)] = t.seq
		if e := t.entries[k]; e != nil && e.tracked {
			t.remove(e)
		}
	}
	t.seqNow.Store(t.seq)
	t.mu.Unlock()
	t.m.invalidations.Add(float64(len(keys)))
	t.m.nInvalidations.Add(int64(len(keys)))
}

// flushLocked empties the tier; mu is held, seq already bumped.
func (t *Tier) flushLocked() {
	t.flushed = t.seq
	clear(t.entries)
	t.order.Init()
	t.bytes = 0
}

// setActive empties the tier and makes it hold (true) or refuse (false) entries from now on:
// any fill whose snapshot is older fails.
func (t *Tier) setActive(active bool, reason string) {
	t.mu.Lock()
	was := t.active
	t.seq++
	t.flushLocked()
	t.active = active
	t.seqNow.Store(t.seq)
	t.mu.Unlock()
	if was && !active {
		t.m.flush(reason)
		t.log.Warn("local cache emptied: tracking lost", "reason", reason)
	}
	if active {
		t.m.tracking.Set(1)
	} else {
		t.m.tracking.Set(0)
	}
}

// slot is the key's FNV-1a hash modulo keySlots.
func slot(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % keySlots)
}

// Barrier returns once every invalidation of a change that completed in Redis before the call
// has been applied (see the package doc), or with an error when the tier cannot say so
// (ErrInactive, a failed round trip, ctx done): then nothing it holds may be used.
func (t *Tier) Barrier(ctx context.Context) error {
	t.bmu.Lock()
	c := t.conn
	if c == nil {
		t.bmu.Unlock()
		return ErrInactive
	}
	b := t.waiting
	if t.inflight == nil {
		b = &batch{done: make(chan struct{})}
		if err := t.sendPing(c, b); err != nil {
			t.bmu.Unlock()
			t.doubt(c, "write")
			return err
		}
		t.inflight = b
	} else if b == nil {
		b = &batch{done: make(chan struct{})}
		t.waiting = b
	}
	b.n++
	t.bmu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var pingCommand = appendCommand(nil, "PING")

// sendPing writes a PING for b on c; bmu is held.
func (t *Tier) sendPing(c *trackConn, b *batch) error {
	if t.cfg.Healthy != nil && !t.cfg.Healthy() {
		return errUnhealthy
	}
	b.sent = time.Now()
	_ = c.SetWriteDeadline(b.sent.Add(t.cfg.BarrierTimeout))
	_, err := c.Write(pingCommand)
	return err
}

var errUnhealthy = errors.New("localcache: Redis is not healthy (circuit breaker)")

// pong releases the batch in flight and sends the PING of the next one; it runs on the reading
// goroutine, after every message Redis sent before the PONG was applied.
func (t *Tier) pong(c *trackConn) error {
	t.bmu.Lock()
	b := t.inflight
	if b == nil {
		t.bmu.Unlock()
		return errors.New("localcache: a reply without a request")
	}
	t.inflight, t.waiting = t.waiting, nil
	var err error
	if t.inflight != nil {
		err = t.sendPing(c, t.inflight)
	}
	t.bmu.Unlock()
	t.m.barriers.Inc()
	t.m.nBarriers.Add(1)
	t.m.batchSize.Observe(float64(b.n))
	close(b.done)
	return err
}

// doubt drops tracking on c, if it is still the connection: the reading goroutine then empties
// the tier and establishes tracking anew.
func (t *Tier) doubt(c *trackConn, reason string) {
	t.log.Warn("local cache: dropping tracking", "reason", reason)
	t.bmu.Lock()
	if t.conn == c && t.doubted == "" {
		t.doubted = reason
		_ = c.Close()
	}
	t.bmu.Unlock()
}

// watch drops tracking when a barrier is overdue or Healthy says no; it runs every quarter of
// BarrierTimeout.
func (t *Tier) watch() {
	t.bmu.Lock()
	c, b := t.conn, t.inflight
	t.bmu.Unlock()
	switch {
	case c == nil:
	case b != nil && time.Since(b.sent) > t.cfg.BarrierTimeout:
		t.doubt(c, "timeout")
	case t.cfg.Healthy != nil && !t.cfg.Healthy():
		t.doubt(c, "unhealthy")
	}
}

// run establishes tracking, serves it until it fails, empties the tier, and starts again.
func (t *Tier) run() {
	backoff := 20 * time.Millisecond
	for {
		select {
		case <-t.closed:
			return
		default:
		}
		if t.cfg.Healthy == nil || t.cfg.Healthy() {
			c, err := t.connect()
			if err == nil {
				backoff = 20 * time.Millisecond
				t.serve(c)
				continue
			}
			t.log.Debug("local cache: establishing tracking failed", "err", err)
		}
		select {
		case <-t.closed:
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// connect dials Redis and turns tracking on.
func (t *Tier) connect() (*trackConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dial := t.opts.Dialer
	if dial == nil {
		d := &net.Dialer{Timeout: 5 * time.Second}
		dial = d.DialContext
	}
	network := t.opts.Network
	if network == "" {
		network = "tcp"
	}
	nc, err := dial(ctx, network, t.opts.Addr)
	if err != nil {
		return nil, err
	}
	c := &trackConn{Conn: nc, rd: bufio.NewReaderSize(nc, 16<<10)}
	deadline, _ := ctx.Deadline()
	_ = c.SetDeadline(deadline)
	hello := []string{"HELLO", "3"}
	if user, pass := t.opts.Username, t.opts.Password; user != "" || pass != "" {
		if user == "" {
			user = "default"
		}
		hello = append(hello, "AUTH", user, pass)
	}
	hello = append(hello, "SETNAME", t.cfg.Name)
	tracking := []string{"CLIENT", "TRACKING", "ON", "BCAST"}
	for _, p := range t.cfg.Prefixes {
		tracking = append(tracking, "PREFIX", p)
	}
	cmds := appendCommand(appendCommand(nil, hello...), tracking...)
	if _, err := c.Write(cmds); err != nil {
		_ = c.Close()
		return nil, err
	}
	for range 2 {
		r, err := readReply(c.rd)
		if err == nil {
			err = r.err()
		}
		if err != nil {
			_ = c.Close()
			return nil, err
		}
	}
	_ = c.SetDeadline(time.Time{})
	// Tracking is on: every change Redis makes from now on reaches this connection. Whatever
	// the tier held was flushed when tracking was last lost; fills older than this are refused.
	t.bmu.Lock()
	select {
	case <-t.closed:
		t.bmu.Unlock()
		_ = c.Close()
		return nil, errors.New("localcache: closed")
	default:
	}
	t.setActive(true, "")
	t.conn = c
	t.bmu.Unlock()
	t.log.Info("local cache: tracking established", "prefixes", t.cfg.Prefixes)
	return c, nil
}

// serve reads the tracking connection until it fails, applying invalidations and releasing
// barriers in the order Redis sent them; then it empties the tier.
func (t *Tier) serve(c *trackConn) {
	reason := "disconnected"
	for {
		r, err := readReply(c.rd)
		if err != nil {
			break
		}
		if r.isPush("invalidate") {
			if len(r.elems) < 2 || r.elems[1].null {
				t.invalidate(nil, true) // a flush: every key
				t.m.flush("flushed")
				continue
			}
			keys := make([]string, len(r.elems[1].elems))
			for i, k := range r.elems[1].elems {
				keys[i] = k.str
			}
			t.invalidate(keys, false)
			continue
		}
		if r.kind == '>' {
			continue // another kind of push: none is expected, none matters
		}
		if r.kind != '+' || r.str != "PONG" {
			reason = "unexpected reply"
			break
		}
		if err := t.pong(c); err != nil {
			reason = "write"
			break
		}
	}
	// Drop the connection first, so that no new barrier starts on it, then empty the tier
	// (run does), then release the waiting barriers with an error.
	t.bmu.Lock()
	_ = c.Close()
	if t.conn == c {
		t.conn = nil
	}
	if t.doubted != "" {
		reason, t.doubted = t.doubted, ""
	}
	fail := []*batch{t.inflight, t.waiting}
	t.inflight, t.waiting = nil, nil
	t.bmu.Unlock()
	t.setActive(false, reason)
	for _, b := range fail {
		if b != nil {
			b.err = ErrInactive
			close(b.done)
		}
	}
}

// Stats are the tier's counters for /health/cache.
type Stats struct {
	Active        bool  `json:"active"`
	Entries       int   `json:"entries"`
	Bytes         int64 `json:"bytes"`
	MaxBytes      int64 `json:"maxBytes"`
	Invalidations int64 `json:"invalidations"`
	Flushes       int64 `json:"flushes"`
	Barriers      int64 `json:"barriers"`
}

// Stats returns the tier's state and counters since start.
func (t *Tier) Stats() Stats {
	t.mu.Lock()
	s := Stats{Active: t.active, Entries: len(t.entries), Bytes: t.bytes, MaxBytes: t.cfg.Bytes}
	t.mu.Unlock()
	s.Invalidations, s.Flushes, s.Barriers = t.m.nInvalidations.Load(), t.m.nFlushes.Load(), t.m.nBarriers.Load()
	return s
}
