package db

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/chat"
)

// Reads from a streaming replica
//
// A Store with a replica (NewStoreWithReplica) sends some reads to it: history pages read on a
// history-cache miss (MessagePages, and ConversationPagesForMember, the page with its
// conversation as the viewer sees it: membership changes are events, which move the token whose
// position the read carries), the replays and gap fills of subscriptions (MessagesAfter),
// message search (SearchMessages: at the primary's WAL position read as the search starts, one
// cheap statement, since a search may read any of the viewer's conversations) and the user
// directory (SearchUsers). Every other read, and every write, goes to the primary.
//
// Never stale for the writer. A read goes to the replica only when its context carries a WAL
// position (chat.WithReadPosition) and the replica has replayed at least that far; otherwise it
// goes to the primary. The positions come from the writes: after each write commits, the Store
// reads pg_current_wal_insert_lsn() on the primary (Change.Position), which is at or past the
// write's commit record, since that record was inserted before the commit returned; a replica
// whose pg_last_wal_replay_lsn() is at or past it has replayed the commit, so it shows the write.
// (A position read inside the writing transaction would not do: the commit record follows it.)
// The history cache keeps the position with the conversation's generation token, moving it
// before the write is acknowledged, and hands it to the reads of that conversation: a read
// after an acknowledged write asks for at least that write's position. Redis down, a token
// without a position, a read without one: the primary.
//
// The replica's replay position is asked (WALReplayPosition) at most once per MaxAge, by one
// caller for all (the others wait for its answer), and reused until then. Replay positions only
// grow, so a reused one is at most behind the true one: it can send a read to the primary that
// the replica could have served, never the reverse. A replica that does not answer in
// ProbeTimeout, fails a read or does not answer it in ReadTimeout, or is not in recovery (promoted, or a primary by mistake) is left
// alone for Backoff: its reads go to the primary, and so does the read it failed.
//
// MessagesAfter's reads are also checked for completeness: seqs have no holes, so a read of
// limit messages after a seq that the caller knows to be committed returns limit rows. A replica
// read that returns fewer is read again on the primary: a conversation read on the primary may
// name a message whose commit is newer than the position its token holds (the token moves after
// the commit), and a replay up to its last seq must find it.
//
// Every routed read counts in threadline_db_reads_total{target, reason}: target "replica"
// (reason "replayed") or "primary" with why: "no_position", "lagging", "replica_down",
// "replica_error", "incomplete".

// Defaults of ReplicaConfig.
const (
	DefaultReplicaMaxAge       = 2 * time.Millisecond
	DefaultReplicaProbeTimeout = 250 * time.Millisecond
	DefaultReplicaBackoff      = time.Second
	DefaultReplicaReadTimeout  = time.Second
)

// ReplicaConfig tunes the use of a replica. Zero values take the defaults.
type ReplicaConfig struct {
	// MaxAge is how long the replica's replay position, once read, is reused.
	MaxAge time.Duration
	// ProbeTimeout bounds the question of the replay position.
	ProbeTimeout time.Duration
	// Backoff is how long a replica that failed is left alone.
	Backoff time.Duration
	// ReadTimeout bounds a read on the replica (within the caller's deadline); one that takes
	// longer is read again on the primary, and the replica left alone for Backoff.
	ReadTimeout time.Duration
	Log         *slog.Logger
	Registerer  prometheus.Registerer
}

// Why a read went where it went (the reason label).
const (
	reasonReplayed     = "replayed"
	reasonNoPosition   = "no_position"
	reasonLagging      = "lagging"
	reasonReplicaDown  = "replica_down"
	reasonReplicaError = "replica_error"
	reasonIncomplete   = "incomplete"
)

// NewStoreWithReplica returns a Store over primary that sends the reads it may (see above) to
// replica, a pool over a streaming replica of it.
func NewStoreWithReplica(primary, replicaPool *pgxpool.Pool, cfg ReplicaConfig) *Store {
	cfg.MaxAge = cmp.Or(cfg.MaxAge, DefaultReplicaMaxAge)
	cfg.ProbeTimeout = cmp.Or(cfg.ProbeTimeout, DefaultReplicaProbeTimeout)
	cfg.Backoff = cmp.Or(cfg.Backoff, DefaultReplicaBackoff)
	cfg.ReadTimeout = cmp.Or(cfg.ReadTimeout, DefaultReplicaReadTimeout)
	cfg.Log = cmp.Or(cfg.Log, slog.New(slog.DiscardHandler))
	s := NewStore(primary)
	// No retries on the replica: a read it fails goes to the primary at once.
	s.replica = &replica{q: dbsqlc.New(replicaPool), db: replicaPool, cfg: cfg, reads: newReadsCounter(cfg.Registerer)}
	return s
}

func newReadsCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "threadline_db_reads_total",
		Help: "Reads that a streaming replica may serve, by where they went (replica, primary) and why.",
	}, []string{"target", "reason"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// replica is the replica side of a Store.
type replica struct {
	q     *dbsqlc.Queries
	db    dbsqlc.DBTX // q's, for the statements written by hand (pages.go)
	cfg   ReplicaConfig
	reads *prometheus.CounterVec

	mu        sync.Mutex
	pos       uint64    // the replay position last read
	at        time.Time // when the question that read it was asked
	downUntil time.Time
	probe     *probe // the question in flight, if any
}

type probe struct {
	done chan struct{}
	pos  uint64
	err  error
}

var errNotInRecovery = errors.New("the replica is not in recovery")

// replayed returns how far the replica has replayed, at most MaxAge old, asking it if needed
// (one question at a time, shared); an error while it is left alone.
func (r *replica) replayed(ctx context.Context) (uint64, error) {
	now := time.Now()
	r.mu.Lock()
	if now.Before(r.downUntil) {
		r.mu.Unlock()
		return 0, errReplicaDown
	}
	if now.Sub(r.at) < r.cfg.MaxAge {
		pos := r.pos
		r.mu.Unlock()
		return pos, nil
	}
	p := r.probe
	if p == nil {
		p = &probe{done: make(chan struct{})}
		r.probe = p
		go r.ask(p, now)
	}
	r.mu.Unlock()
	select {
	case <-p.done:
		return p.pos, p.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

var errReplicaDown = errors.New("the replica failed recently")

// ask reads the replica's replay position for p, asked at asked.
func (r *replica) ask(p *probe, asked time.Time) {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.ProbeTimeout)
	pos, err := r.q.WALReplayPosition(ctx)
	cancel()
	if err == nil && pos < 0 {
		err = errNotInRecovery
	}
	r.mu.Lock()
	r.probe = nil
	if err != nil {
		r.downLocked(err)
	} else {
		r.pos, r.at = uint64(pos), asked
	}
	r.mu.Unlock()
	p.pos, p.err = uint64(max(pos, 0)), err
	close(p.done)
}

// down leaves the replica alone for Backoff after err.
func (r *replica) down(err error) {
	r.mu.Lock()
	r.downLocked(err)
	r.mu.Unlock()
}

func (r *replica) downLocked(err error) {
	if time.Now().After(r.downUntil) {
		r.cfg.Log.Warn("replica unavailable: reading from the primary", "for", r.cfg.Backoff, "err", err)
	}
	r.downUntil = time.Now().Add(r.cfg.Backoff)
	r.at = time.Time{}
}

// route says whether a read under ctx may go to the replica, and why not.
func (r *replica) route(ctx context.Context) string {
	want, ok := chat.ReadPosition(ctx)
	if !ok {
		return reasonNoPosition
	}
	got, err := r.replayed(ctx)
	switch {
	case err != nil:
		return reasonReplicaDown
	case got < want:
		return reasonLagging
	}
	return reasonReplayed
}

// readRouted runs query on the replica when ctx allows it and the result is complete (a nil
// complete accepts any), else on the primary; see the comment at the top of this file.
func readRouted[T any](ctx context.Context, s *Store, query func(context.Context, *dbsqlc.Queries) (T, error), complete func(T) bool) (T, error) {
	return readRoutedDB(ctx, s, func(ctx context.Context, onReplica bool) (T, error) {
		if onReplica {
			return query(ctx, s.replica.q)
		}
		return query(ctx, s.q)
	}, complete)
}

// readRoutedDB is readRouted for statements written by hand: query runs on s.replica.db when
// onReplica, else on s.db.
func readRoutedDB[T any](ctx context.Context, s *Store, query func(ctx context.Context, onReplica bool) (T, error), complete func(T) bool) (T, error) {
	r := s.replica
	if r == nil {
		return query(ctx, false)
	}
	reason := r.route(ctx)
	if reason == reasonReplayed {
		rctx, cancel := context.WithTimeout(ctx, r.cfg.ReadTimeout)
		v, err := query(rctx, true)
		cancel()
		switch {
		case err == nil && (complete == nil || complete(v)):
			r.reads.WithLabelValues("replica", reasonReplayed).Inc()
			return v, nil
		case err == nil:
			reason = reasonIncomplete
		case ctx.Err() != nil:
			return v, err
		default:
			r.down(err)
			reason = reasonReplicaError
		}
	}
	r.reads.WithLabelValues("primary", reason).Inc()
	return query(ctx, false)
}

// stamp sets c.Position to the primary's WAL insert position, read now that c's write has
// committed, when the Store has a replica (nobody reads positions otherwise). Should the read
// fail, the position stays 0, unknown: the conversation's reads go to the primary until its
// next write.
func (s *Store) stamp(ctx context.Context, c *chat.Change) {
	if s.replica == nil {
		return
	}
	pos, err := s.q.WALInsertPosition(ctx)
	if err != nil || pos < 0 {
		s.replica.cfg.Log.WarnContext(ctx, "reading the WAL position after a commit failed; the conversation is read from the primary until its next write", "err", err)
		return
	}
	c.Position = uint64(pos)
}

// WALPosition reads the primary's WAL insert position now: at or past the commit of every
// write acknowledged so far (for the history cache's tokens that hold none).
func (s *Store) WALPosition(ctx context.Context) (uint64, error) {
	pos, err := s.q.WALInsertPosition(ctx)
	if err != nil {
		return 0, err
	}
	if pos < 0 {
		return 0, errors.New("db: negative WAL position")
	}
	return uint64(pos), nil
}
