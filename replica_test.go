package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// The tests of reads from a streaming replica (DATABASE_REPLICA_URL) each run a stack and a
// replica of their own (replicaServer).

const replicaReadQuery = `query($id: ID!) { conversation(id: $id) { messages(limit: 5) { items { seq body } } } }`

// replicaServer starts a server over the demo data set whose DATABASE_REPLICA_URL is the test
// database on the replica, and returns it with the replica and the conversation to write to.
// replicaServer starts a server reading from a streaming replica, on a stack of the test's own
// (privateStack): a test may pause the replica's replay or stop it, and expects the replica to
// reach the primary's position once nothing is written, which other tests' writes to a shared
// primary would keep moving. It returns the server, the replica and a conversation of user 1.
func replicaServer(t *testing.T) (*apptest.Server, *devstack.Replica, string) {
	t.Helper()
	t.Parallel()
	stack := privateStack(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := db.Migrate(ctx, stack.DirectURL); err != nil {
		t.Fatal(err)
	}
	// The rows go to the replica with its base backup.
	small := db.SeedSize{Users: 5, Conversations: 5, MinMessages: 20, MaxMessages: 20, MinMembers: 2, MaxMembers: 3, DemoMemberOf: 5}
	if _, err := db.Seed(ctx, stack.DirectURL, small, 1); err != nil {
		t.Fatal(err)
	}
	r, err := stack.StartReplica(ctx)
	if err != nil {
		t.Fatalf("starting the replica: %v", err)
	}
	database := testenv.Database{Name: stack.Database, DirectURL: stack.DirectURL, PooledURL: stack.DatabaseURL, ReplicaURL: r.DatabaseURL}
	srv := apptest.Start(t, apptest.Options{Database: &database, RedisURL: stack.RedisURL, Configure: func(c *app.Config) {
		c.DatabaseReplicaURL = database.ReplicaURL
	}})
	return srv, r, demoConversations(t, &srv.Endpoint)[0]
}

// sendAndReadBack sends a message to conv and reads the conversation's newest page back
// through the server; it fails the test unless the page shows the message (a stale read).
func sendAndReadBack(t *testing.T, srv *apptest.Server, conv, body string) int64 {
	t.Helper()
	seq := sendTo(t, srv, conv, body)
	readBack(t, srv, conv, body, seq)
	return seq
}

// sendTo sends body to conv through the server (body is its client message id too)
// and returns its seq.
func sendTo(t *testing.T, srv *apptest.Server, conv, body string) int64 {
	t.Helper()
	var sent struct{ SendMessage struct{ Seq int64 } }
	srv.Client(1).Query(t, faultSendQuery, map[string]any{"conv": conv, "body": body, "cmid": body}, &sent)
	return sent.SendMessage.Seq
}

// readBack reads conv's newest page through the server and fails the test unless it starts
// with the message seq, body (a stale read).
func readBack(t *testing.T, srv *apptest.Server, conv, body string, seq int64) {
	t.Helper()
	var read struct {
		Conversation struct {
			Messages struct {
				Items []struct {
					Seq  int64
					Body string
				}
			}
		}
	}
	srv.Client(1).Query(t, replicaReadQuery, map[string]any{"id": conv}, &read)
	if items := read.Conversation.Messages.Items; len(items) == 0 || items[0].Seq != seq || items[0].Body != body {
		t.Fatalf("stale read: after sending %q (seq %d) the newest page is %+v", body, seq, items)
	}
}

// replay subscribes to conv's messages after afterSeq and checks that the replay delivers
// afterSeq+1..lastSeq, in order.
func replay(t *testing.T, srv *apptest.Server, conv string, afterSeq, lastSeq int64) {
	t.Helper()
	c := srv.Dial(t, 1)
	c.Subscribe("1", fmt.Sprintf(`subscription { messageAdded(conversationId: %s, afterSeq: %d) { seq body } }`, conv, afterSeq), nil)
	apptest.CheckSeqs(t, "replay", apptest.Seqs(c.Messages("1", int(lastSeq-afterSeq), 10*time.Second)), afterSeq+1, lastSeq)
	c.Complete("1")
}

// dbReads returns threadline_db_reads_total by "target/reason".
func dbReads(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "threadline_db_reads_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["target"]+"/"+labels["reason"]] += m.GetCounter().GetValue()
		}
	}
	return out
}

// delta is after - before, by key, leaving out keys that did not move.
func delta(before, after map[string]float64) map[string]float64 {
	d := map[string]float64{}
	for k, v := range after {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d
}

// replayedEverything waits until the replica has replayed all the primary has written so far.
func replayedEverything(t *testing.T, srv *apptest.Server, r *devstack.Replica) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var primary int64
	if err := srv.Direct.QueryRow(ctx, "SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint").Scan(&primary); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, r.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for {
		var replayed int64
		if err := conn.QueryRow(ctx, "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint").Scan(&replayed); err != nil {
			t.Fatalf("the replica did not replay up to %d: %v", primary, err)
		}
		if replayed >= primary {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// untilReplicaServes sends and reads back until a read is served by the replica, waiting for
// the replica to replay each send before reading it back (a read right after a write usually
// finds the replica behind it, and goes to the primary).
func untilReplicaServes(t *testing.T, srv *apptest.Server, r *devstack.Replica, conv, prefix string) {
	t.Helper()
	for i := 0; ; i++ {
		before := dbReads(t, srv.App.Registry)
		body := fmt.Sprintf("%s-%d", prefix, i)
		seq := sendTo(t, srv, conv, body)
		replayedEverything(t, srv, r)
		time.Sleep(2 * db.DefaultReplicaMaxAge) // the server's replay position is at most that old
		readBack(t, srv, conv, body, seq)
		if delta(before, dbReads(t, srv.App.Registry))["replica/replayed"] > 0 {
			return
		}
		if i == 20 {
			t.Fatalf("no read went to the replica in %d tries: %v", i+1, dbReads(t, srv.App.Registry))
		}
	}
}

// TestReplicaLag: with the replica's replay paused, every read after a send still shows it,
// and those reads are served by the primary ("lagging"); once replay resumes, reads go to the
// replica again.
func TestReplicaLag(t *testing.T) {
	srv, r, conv := replicaServer(t)
	untilReplicaServes(t, srv, r, conv, "before")

	conn, err := pgx.Connect(t.Context(), r.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), "SELECT pg_wal_replay_pause()"); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := conn.Exec(context.Background(), "SELECT pg_wal_replay_resume()"); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer resume()

	const sends = 20
	before := dbReads(t, srv.App.Registry)
	var first, last int64
	for i := range sends {
		last = sendAndReadBack(t, srv, conv, fmt.Sprintf("paused-%d", i))
		if i == 0 {
			first = last
		}
	}
	want := map[string]float64{"primary/lagging": sends}
	if got := delta(before, dbReads(t, srv.App.Registry)); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reads while replay was paused (target/reason: count) = %v, want %v", got, want)
	}
	// A search after a send finds it, read on the primary.
	before = dbReads(t, srv.App.Registry)
	searchFinds(t, srv, conv, "flamingopaused")
	if got := delta(before, dbReads(t, srv.App.Registry)); got["replica/replayed"] != 0 || got["primary/lagging"] == 0 {
		t.Errorf("search reads while replay was paused (target/reason: count) = %v, want them on the primary, lagging", got)
	}
	// A subscription's replay of what the replica has not replayed comes from the primary.
	before = dbReads(t, srv.App.Registry)
	replay(t, srv, conv, first-1, last)
	if got := delta(before, dbReads(t, srv.App.Registry)); got["replica/replayed"] != 0 || got["primary/lagging"] == 0 {
		t.Errorf("replay reads while replay was paused (target/reason: count) = %v, want them on the primary, lagging", got)
	}

	resume()
	untilReplicaServes(t, srv, r, conv, "resumed")
	// And once the replica has caught up, from the replica.
	replayedEverything(t, srv, r)
	time.Sleep(2 * db.DefaultReplicaMaxAge)
	before = dbReads(t, srv.App.Registry)
	replay(t, srv, conv, first-1, last)
	if got := delta(before, dbReads(t, srv.App.Registry)); got["replica/replayed"] == 0 {
		t.Errorf("replay reads after replay resumed (target/reason: count) = %v, want them on the replica", got)
	}
	// A search, once the replica has replayed everything the primary wrote, from the replica
	// (with nothing written meanwhile: the replica is then at the primary's position).
	searched := false
	for i := 0; i < 20 && !searched; i++ {
		replayedEverything(t, srv, r)
		time.Sleep(2 * db.DefaultReplicaMaxAge)
		before = dbReads(t, srv.App.Registry)
		var out struct {
			SearchMessages struct {
				Edges []struct{ Node struct{ Body string } }
			}
		}
		// A different first each time: a search of one conversation may be a response-cache hit.
		srv.Client(1).Query(t, `query($c: ID!, $n: Int) { searchMessages(query: "flamingopaused", conversationId: $c, first: $n) { edges { node { body } } } }`, map[string]any{"c": conv, "n": 10 + i}, &out)
		if len(out.SearchMessages.Edges) != 1 {
			t.Fatalf("search after resume: %+v", out)
		}
		searched = delta(before, dbReads(t, srv.App.Registry))["replica/replayed"] > 0
	}
	if !searched {
		t.Errorf("no search went to the replica after replay resumed: %v", dbReads(t, srv.App.Registry))
	}
}

// searchFinds sends a message holding word and searches for it at once: the search finds it.
func searchFinds(t *testing.T, srv *apptest.Server, conv, word string) {
	t.Helper()
	var sent struct{ SendMessage struct{ Seq int } }
	srv.Client(1).Query(t, faultSendQuery, map[string]any{"conv": conv, "body": "look: " + word, "cmid": word}, &sent)
	var out struct {
		SearchMessages struct {
			Edges []struct{ Node struct{ Body string } }
		}
	}
	srv.Client(1).Query(t, `query($c: ID!, $q: String!) { searchMessages(query: $q, conversationId: $c) { edges { node { body } } } }`, map[string]any{"c": conv, "q": word}, &out)
	if len(out.SearchMessages.Edges) != 1 || out.SearchMessages.Edges[0].Node.Body != "look: "+word {
		t.Fatalf("stale search: after sending %q, a search found %+v", word, out.SearchMessages.Edges)
	}
}

// TestReplicaDown: with the replica stopped, reads after sends are served by the primary, and
// none fails or is stale.
func TestReplicaDown(t *testing.T) {
	srv, r, conv := replicaServer(t)
	untilReplicaServes(t, srv, r, conv, "before")

	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.Start(ctx); err != nil {
			t.Errorf("starting the replica again: %v", err)
		}
	})
	const sends = 10
	before := dbReads(t, srv.App.Registry)
	for i := range sends {
		sendAndReadBack(t, srv, conv, fmt.Sprintf("down-%d", i))
	}
	got := delta(before, dbReads(t, srv.App.Registry))
	if got["replica/replayed"] != 0 || got["primary/replica_down"]+got["primary/replica_error"] != sends {
		t.Errorf("reads while the replica was down (target/reason: count) = %v, want all %d on the primary, replica_down or replica_error", got, sends)
	}
}
