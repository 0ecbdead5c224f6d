package db_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

// The replica tests share the test binary's replica and pause its replay: none is parallel.

type replicaFixture struct {
	store   *db.Store
	reg     *prometheus.Registry
	direct  *pgxpool.Pool
	replica *pgx.Conn // straight to the replica's "postgres" database
}

func newReplicaFixture(t *testing.T) replicaFixture {
	t.Helper()
	d := testenv.NewReplicatedDatabase(t)
	open := func(url string) *pgxpool.Pool {
		pool, err := db.OpenPool(context.Background(), url, db.PoolConfig{MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return pool
	}
	reg := prometheus.NewRegistry()
	conn, err := pgx.Connect(context.Background(), testenv.Replica(t).URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return replicaFixture{
		store:   db.NewStoreWithReplica(open(d.PooledURL), open(d.ReplicaURL), db.ReplicaConfig{Registerer: reg}),
		reg:     reg,
		direct:  dbtest.Open(t, d.DirectURL),
		replica: conn,
	}
}

// reads returns threadline_db_reads_total by "target/reason".
func (f replicaFixture) reads(t *testing.T) map[string]float64 {
	t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, fam := range families {
		for _, m := range fam.GetMetric() {
			var target, reason string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "target":
					target = l.GetValue()
				case "reason":
					reason = l.GetValue()
				}
			}
			out[target+"/"+reason] += m.GetCounter().GetValue()
		}
	}
	return out
}

// caughtUp waits until the replica has replayed everything the primary wrote so far.
func (f replicaFixture) caughtUp(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var primary int64
	if err := f.direct.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&primary); err != nil {
		t.Fatal(err)
	}
	f.replayedTo(t, ctx, uint64(primary))
}

func (f replicaFixture) replayedTo(t *testing.T, ctx context.Context, pos uint64) {
	t.Helper()
	for {
		var replayed int64
		if err := f.replica.QueryRow(ctx, "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint").Scan(&replayed); err != nil {
			t.Fatalf("the replica did not replay up to %d: %v", pos, err)
		}
		if uint64(replayed) >= pos {
			time.Sleep(2 * db.DefaultReplicaMaxAge) // the store's replay position is at most that old
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func seqs(msgs []chat.Message) string {
	var b strings.Builder
	for _, m := range msgs {
		fmt.Fprintf(&b, "%d ", m.Seq)
	}
	return strings.TrimSpace(b.String())
}

// TestReplicaRouting: which reads the replica serves, and those it does not.
func TestReplicaRouting(t *testing.T) {
	f := newReplicaFixture(t)
	u := dbtest.Users(t, f.direct, "Ann", "Bob")
	conv := dbtest.Conversation(t, f.direct, "routing", u...)
	dbtest.Messages(t, f.direct, conv, u, 10)
	f.caughtUp(t)

	page := func(ctx context.Context) (string, error) {
		pages, err := f.store.MessagePages(ctx, []chat.PageKey{{ConversationID: conv, Limit: 3}})
		if err != nil {
			return "", err
		}
		return seqs(pages[0].Messages), nil
	}
	// The page with its conversation, whose statement is written by hand (pages.go).
	convPage := func(ctx context.Context) (string, error) {
		convs, pages, err := f.store.ConversationPagesForMember(ctx, u[0], []chat.PageKey{{ConversationID: conv, Limit: 3}})
		if err != nil || convs[0] == nil {
			return "", err
		}
		return convs[0].Title + ": " + seqs(pages[0].Messages), nil
	}
	after := func(afterSeq int64, limit int) func(context.Context) (string, error) {
		return func(ctx context.Context) (string, error) {
			msgs, err := f.store.MessagesAfter(ctx, conv, afterSeq, limit)
			return seqs(msgs), err
		}
	}
	users := func(ctx context.Context) (string, error) {
		list, err := f.store.SearchUsers(ctx, "", nil, 10)
		var names []string
		for _, u := range list {
			names = append(names, u.Name)
		}
		return strings.Join(names, " "), err
	}
	at := func(pos uint64) context.Context { return chat.WithReadPosition(context.Background(), pos) }
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		read  func(context.Context) (string, error)
		want  string
		route string // target/reason
	}{
		{"a page without a position", context.Background(), page, "10 9 8", "primary/no_position"},
		{"a page at a replayed position", at(1), page, "10 9 8", "replica/replayed"},
		{"a page ahead of the replica", at(1 << 62), page, "10 9 8", "primary/lagging"},
		{"a page with its conversation without a position", context.Background(), convPage, "routing: 10 9 8", "primary/no_position"},
		{"a page with its conversation at a replayed position", at(1), convPage, "routing: 10 9 8", "replica/replayed"},
		{"a page with its conversation ahead of the replica", at(1 << 62), convPage, "routing: 10 9 8", "primary/lagging"},
		{"a complete replay", at(1), after(2, 5), "3 4 5 6 7", "replica/replayed"},
		{"a replay shorter than asked", at(1), after(7, 5), "8 9 10", "primary/incomplete"},
		{"users, with no position", context.Background(), users, "Ann Bob", "replica/replayed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.reads(t)
			got, err := tc.read(tc.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("read %q, want %q", got, tc.want)
			}
			moved := map[string]float64{}
			for k, v := range f.reads(t) {
				if v != before[k] {
					moved[k] = v - before[k]
				}
			}
			if diff := cmp.Diff(map[string]float64{tc.route: 1}, moved); diff != "" {
				t.Errorf("threadline_db_reads_total moved (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReplicaWritePosition: a write's Change.Position is at or past its commit: with replay
// paused the replica is behind it, and once it has replayed that far it shows the write.
func TestReplicaWritePosition(t *testing.T) {
	f := newReplicaFixture(t)
	u := dbtest.Users(t, f.direct, "Ann", "Bob")
	conv := dbtest.Conversation(t, f.direct, "positions", u...)
	f.caughtUp(t)

	ctx := context.Background()
	if _, err := f.replica.Exec(ctx, "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	paused := true
	defer func() {
		if paused {
			f.replica.Exec(context.Background(), "SELECT pg_wal_replay_resume()")
		}
	}()
	c, created, err := f.store.InsertMessage(ctx, chat.NewMessage{ConversationID: conv, SenderID: u[0], Body: "hello"})
	if err != nil || !created {
		t.Fatalf("InsertMessage: created %v, %v", created, err)
	}
	if c.Position == 0 {
		t.Fatal("the change has no position")
	}
	// Behind the write: its readers get it from the primary.
	lagging := f.reads(t)["primary/lagging"]
	msgs, err := f.store.MessagesAfter(chat.WithReadPosition(ctx, c.Position), conv, 0, 1)
	if err != nil || seqs(msgs) != "1" {
		t.Fatalf("read after the write with replay paused: %q, %v; want seq 1", seqs(msgs), err)
	}
	if f.reads(t)["primary/lagging"] != lagging+1 {
		t.Errorf("with replay paused, the read was not sent to the primary as lagging: %v", f.reads(t))
	}

	if _, err := f.replica.Exec(ctx, "SELECT pg_wal_replay_resume()"); err != nil {
		t.Fatal(err)
	}
	paused = false
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	f.replayedTo(t, wctx, c.Position)
	before := f.reads(t)["replica/replayed"]
	msgs, err = f.store.MessagesAfter(chat.WithReadPosition(ctx, c.Position), conv, 0, 1)
	if err != nil || seqs(msgs) != "1" {
		t.Fatalf("read after the replica replayed the write's position: %q, %v; want seq 1", seqs(msgs), err)
	}
	if f.reads(t)["replica/replayed"] != before+1 {
		t.Errorf("the read did not go to the replica: %v", f.reads(t))
	}
}
