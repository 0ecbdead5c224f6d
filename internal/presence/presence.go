// Package presence knows which users are online: those with an open streaming connection
// (WebSocket, SSE) on any instance, or who made a request within the last TTL (60 s). It lives
// in Redis only, one key per user, and is never written to PostgreSQL.
//
// # Protocol
//
// A user is online while the key presence:{u<id>} exists. Every instance that sees the user
// sets it to expire TTL + Refresh later (Refresh is TTL/4: 15 s); nothing ever deletes it. The
// braces are a Redis Cluster hash tag: each user's key has a slot of its own, and nothing reads
// two users' keys in one command.
//
//   - A request (Middleware, after authentication) or a new connection (Connected) calls
//     Seen, which writes the key unless this instance wrote it for the user within the last
//     Refresh: requests do not each write Redis. The last write before a request is at most
//     Refresh older than it, so the key outlives every request by at least TTL (online for 60 s
//     after it, as promised) and at most TTL + Refresh (75 s).
//   - While a user has a connection open on this instance, a background loop rewrites the key
//     every Refresh (skipping users written within the last Refresh/2): the key outlives each
//     write by TTL + Refresh, longer than the longest gap between writes (1.5 Refresh).
//   - Online reads any number of users in one pipelined round trip (EXISTS per key): the
//     GraphQL layer's dataloader batches the users of a request into one call.
//
// # When Redis fails
//
// Presence is best effort: a write that fails is counted and forgotten (the next request
// retries it), and a read that fails answers "offline" for everyone asked, so a list of users
// never fails for it.
package presence

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/defaults"
	"github.com/threadline/threadline/internal/redisclient"
	"github.com/threadline/threadline/internal/tick"
)

// DefaultTTL is how long a user stays online after their last request or connection refresh.
const DefaultTTL = 60 * time.Second

// Config configures a Tracker. Zero values take the defaults.
type Config struct {
	Redis   redis.UniversalClient
	Breaker *redisclient.Breaker // every Redis call goes through it
	// TTL is how long a user stays online after the last sign of life; default DefaultTTL.
	// Refresh, the write throttle and the connection refresh period, is TTL/4.
	TTL        time.Duration
	Log        *slog.Logger
	Registerer prometheus.Registerer // nil: metrics not registered
}

// Tracker records and reads presence. It is safe for concurrent use. Call Close when done.
type Tracker struct {
	rdb     redis.UniversalClient
	breaker *redisclient.Breaker
	ttl     time.Duration // of a key: Config.TTL + refresh
	refresh time.Duration
	log     *slog.Logger
	m       metrics

	mu      sync.Mutex
	written map[int64]time.Time // when this instance last wrote each user's key
	conns   map[int64]int       // open streaming connections per user

	stop    chan struct{}
	stopped sync.WaitGroup
}

// New returns a Tracker and starts its connection refresher.
func New(cfg Config) *Tracker {
	cfg.TTL = defaults.Positive(cfg.TTL, DefaultTTL)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	t := &Tracker{
		rdb: cfg.Redis, breaker: cfg.Breaker, ttl: cfg.TTL + cfg.TTL/4, refresh: cfg.TTL / 4, log: cfg.Log,
		m:       newMetrics(cfg.Registerer),
		written: map[int64]time.Time{},
		conns:   map[int64]int{},
		stop:    make(chan struct{}),
	}
	t.stopped.Go(func() { tick.Every(t.stop, t.refresh, t.refreshConnected) })
	return t
}

// Close stops the connection refresher. Keys already written expire by themselves.
func (t *Tracker) Close() {
	close(t.stop)
	t.stopped.Wait()
}

// Key is the Redis key of a user's presence.
func Key(userID int64) string { return "presence:{u" + strconv.FormatInt(userID, 10) + "}" }

// Seen records a sign of life of userID: it writes the user's key, unless this instance wrote
// it within the last Refresh. It returns once the write is done (or failed), so that a request
// that made a user online is visible to the next read.
func (t *Tracker) Seen(ctx context.Context, userID int64) {
	now := time.Now()
	t.mu.Lock()
	if last, ok := t.written[userID]; ok && now.Sub(last) < t.refresh {
		t.mu.Unlock()
		return
	}
	t.written[userID] = now
	t.mu.Unlock()
	err := t.breaker.Do(context.WithoutCancel(ctx), func(ctx context.Context) error {
		return t.rdb.Set(ctx, Key(userID), "1", t.ttl).Err()
	})
	t.m.writes.Inc()
	if err != nil {
		t.failed(ctx, err, 1)
		t.mu.Lock()
		if t.written[userID].Equal(now) { // let the next sign of life try again
			delete(t.written, userID)
		}
		t.mu.Unlock()
	}
}

func (t *Tracker) failed(ctx context.Context, err error, n int) {
	t.m.writeFailures.Add(float64(n))
	if !errors.Is(err, redisclient.ErrOpen) {
		t.log.WarnContext(ctx, "presence: writing to redis failed", "err", err)
	}
}

// Connected records an open streaming connection of userID (the user is online while it is
// open, on any instance) and returns the function to call, once, when it closes.
func (t *Tracker) Connected(ctx context.Context, userID int64) (disconnected func()) {
	t.mu.Lock()
	t.conns[userID]++
	t.mu.Unlock()
	t.Seen(ctx, userID)
	var once sync.Once
	return func() {
		once.Do(func() {
			t.mu.Lock()
			if t.conns[userID]--; t.conns[userID] <= 0 {
				delete(t.conns, userID)
			}
			t.mu.Unlock()
		})
	}
}

// Middleware records every authenticated request as a sign of life of its viewer. It runs
// after authentication.
func (t *Tracker) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, err := auth.Viewer(r.Context()); err == nil {
			t.Seen(r.Context(), id)
		}
		next.ServeHTTP(w, r)
	})
}

// Online reports, in key order, whether each user is online, in one round trip to Redis. When
// Redis cannot answer, everyone is offline (counted in threadline_presence_read_failures_total).
func (t *Tracker) Online(ctx context.Context, userIDs []int64) ([]bool, error) {
	online := make([]bool, len(userIDs))
	if len(userIDs) == 0 {
		return online, nil
	}
	err := t.breaker.Do(ctx, func(ctx context.Context) error {
		pipe := t.rdb.Pipeline()
		cmds := make([]*redis.IntCmd, len(userIDs))
		for i, id := range userIDs {
			cmds[i] = pipe.Exists(ctx, Key(id))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		for i, c := range cmds {
			online[i] = c.Val() > 0
		}
		return nil
	})
	if err != nil {
		t.m.readFailures.Inc()
		if !errors.Is(err, redisclient.ErrOpen) {
			t.log.WarnContext(ctx, "presence: reading from redis failed; answering offline", "err", err)
		}
		clear(online)
	}
	return online, nil
}

// refreshBatch bounds the keys written by one pipeline of the refresher.
const refreshBatch = 1000

// refreshConnected rewrites the keys of users with open connections, and forgets throttle
// entries that no longer throttle anything; it runs every Refresh.
func (t *Tracker) refreshConnected() {
	now := time.Now()
	var due []int64
	t.mu.Lock()
	for id, last := range t.written {
		if _, open := t.conns[id]; !open && now.Sub(last) >= t.refresh {
			delete(t.written, id)
		}
	}
	for id := range t.conns {
		if last, ok := t.written[id]; !ok || now.Sub(last) >= t.refresh/2 {
			due = append(due, id)
			t.written[id] = now
		}
	}
	t.mu.Unlock()
	for len(due) > 0 {
		batch := due[:min(len(due), refreshBatch)]
		due = due[len(batch):]
		err := t.breaker.Do(context.Background(), func(ctx context.Context) error {
			pipe := t.rdb.Pipeline()
			for _, id := range batch {
				pipe.Set(ctx, Key(id), "1", t.ttl)
			}
			_, err := pipe.Exec(ctx)
			return err
		})
		t.m.writes.Add(float64(len(batch)))
		if err != nil {
			t.failed(context.Background(), err, len(batch))
			t.mu.Lock()
			for _, id := range batch {
				delete(t.written, id)
			}
			t.mu.Unlock()
		}
	}
}

type metrics struct {
	writes, writeFailures, readFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{
		writes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_presence_writes_total",
			Help: "Presence keys written to Redis (requests and open connections, throttled per user), failed ones included.",
		}),
		writeFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_presence_write_failures_total",
			Help: "Presence keys that could not be written to Redis.",
		}),
		readFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "threadline_presence_read_failures_total",
			Help: "Presence reads Redis could not answer (the users read as offline).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.writes, m.writeFailures, m.readFailures)
	}
	return m
}
