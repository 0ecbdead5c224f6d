package db_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/testenv"
)

func newStore(t *testing.T) (*db.Store, testenv.Database) {
	t.Helper()
	d := testenv.NewDatabase(t)
	pool, err := db.OpenPool(context.Background(), d.PooledURL, db.PoolConfig{MaxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return db.NewStore(pool), d
}

func TestMessagePagesInKeyOrder(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "A", "B")
	c1 := dbtest.Conversation(t, direct, "one", u...)
	c2 := dbtest.Conversation(t, direct, "two", u...)
	empty := dbtest.Conversation(t, direct, "empty", u...)
	dbtest.Messages(t, direct, c1, u, 30)
	dbtest.Messages(t, direct, c2, u, 7)

	keys := []chat.PageKey{
		{ConversationID: c2, Limit: 5, Offset: 0},
		{ConversationID: 999999, Limit: 5, Offset: 0},
		{ConversationID: c1, Limit: 10, Offset: 25},
		{ConversationID: empty, Limit: 5, Offset: 0},
		{ConversationID: c1, Limit: 10, Offset: 0},
		{ConversationID: c2, Limit: 5, Offset: 5},
	}
	pages, err := store.MessagePages(context.Background(), keys)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		seqs    string
		hasMore bool
	}{
		{"7 6 5 4 3", true}, {"", false}, {"5 4 3 2 1", false}, {"", false}, {"30 29 28 27 26 25 24 23 22 21", true}, {"2 1", false},
	}
	for i, p := range pages {
		var seqs []string
		for _, m := range p.Messages {
			if m.ConversationID != keys[i].ConversationID || m.SenderName == "" {
				t.Fatalf("key %d: message %+v", i, m)
			}
			seqs = append(seqs, fmt.Sprint(m.Seq))
		}
		if got := strings.Join(seqs, " "); got != want[i].seqs || p.HasMore != want[i].hasMore {
			t.Errorf("key %d %+v: seqs %q hasMore %v, want %q %v", i, keys[i], got, p.HasMore, want[i].seqs, want[i].hasMore)
		}
	}
}

func TestBatchReadsInKeyOrder(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "A", "B", "C")
	c1 := dbtest.Conversation(t, direct, "one", u[0], u[1])
	c2 := dbtest.Conversation(t, direct, "two", u[1], u[2])
	dbtest.Messages(t, direct, c2, u[1:], 3)
	ctx := context.Background()

	users, err := store.UsersByIDs(ctx, []int64{u[2], 424242, u[0]})
	if err != nil || users[0].Name != "C" || users[1] != nil || users[2].Name != "A" {
		t.Fatalf("users %v %v", users, err)
	}
	convs, err := store.ConversationsByIDForMember(ctx, u[1], []int64{c2, c1, 5555})
	if err != nil || convs[0].ID != c2 || convs[1].ID != c1 || convs[2] != nil || convs[0].LastSeq != 3 {
		t.Fatalf("conversations %v %v", convs, err)
	}
	convs, err = store.ConversationsByIDForMember(ctx, u[0], []int64{c2, c1})
	if err != nil || convs[0] != nil || convs[1] == nil {
		t.Fatalf("membership filter: %v %v", convs, err)
	}
	members, err := store.MembershipsByConversations(ctx, []int64{c2, 777, c1})
	if err != nil || len(members[0]) != 2 || members[0][0].User.ID != u[1] || len(members[1]) != 0 || members[2][1].User.ID != u[1] {
		t.Fatalf("members %v %v", members, err)
	}
	if _, err := store.MarkRead(ctx, u[1], c2, 2); err != nil {
		t.Fatal(err)
	}
	convHeads, userHeads, err := store.StreamHeads(ctx, []int64{c1, 5555, c2}, []int64{u[1], 424242})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[int64]int64{c1: 0, c2: 3}, convHeads); diff != "" {
		t.Errorf("conversation heads (-want +got):\n%s", diff)
	}
	// u[1]'s own events: the read (the fixtures add members without events).
	if diff := cmp.Diff(map[int64]int64{u[1]: 1}, userHeads); diff != "" {
		t.Errorf("user heads (-want +got):\n%s", diff)
	}
}

// TestQueriesUseIndexes shows that an index serves every statement the Store runs: with
// sequential scans priced out, auto_explain reports each plan to the client, and none reads a
// whole table.
func TestQueriesUseIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, plans := seededExplainingPool(t, "")
	store := db.NewStore(pool)
	cid := "client-1"
	// Conversation 9's owner, made the sender of its first message, makes the changes below:
	// conversations 1 to 3 serve the reads.
	var owner, message int64
	if err := pool.QueryRow(ctx, `UPDATE messages SET sender_id = (SELECT user_id FROM conversation_members WHERE conversation_id = 9 AND role = 'owner')
		WHERE conversation_id = 9 AND seq = 1 RETURNING sender_id, id`).Scan(&owner, &message); err != nil {
		t.Fatal(err)
	}
	steps := map[string]func() error{
		"MessagePages": func() error {
			_, err := store.MessagePages(ctx, []chat.PageKey{{ConversationID: 1, Limit: 50}, {ConversationID: 2, Limit: 20, Offset: 30}})
			return err
		},
		"MessagesBefore": func() error { _, err := store.MessagesBefore(ctx, 3, 40, 51); return err },
		"MessagesAfter":  func() error { _, err := store.MessagesAfter(ctx, 3, 10, 100); return err },
		"MessagesAround": func() error { _, err := store.MessagesAround(ctx, 3, 30, 27, 26); return err },
		"ConversationsByIDForMember": func() error {
			_, err := store.ConversationsByIDForMember(ctx, 1, []int64{1, 2})
			return err
		},
		"ConversationForMembers": func() error {
			_, err := store.ConversationForMembers(ctx, 1, []int64{1, 2, 3, 4, 5})
			return err
		},
		"UserStreamStart":          func() error { _, _, _, err := store.UserStreamStart(ctx, 1); return err },
		"ConversationListByMember": func() error { _, err := store.ConversationListByMember(ctx, 1, nil, 21, true); return err },
		"MembershipsByConversations": func() error {
			_, err := store.MembershipsByConversations(ctx, []int64{1, 2})
			return err
		},
		"MessagesByID":    func() error { _, err := store.MessagesByID(ctx, []int64{1, 2, 3}); return err },
		"ReactionsOfUser": func() error { _, err := store.ReactionsOfUser(ctx, 1, []int64{1, 1}, []int64{1, 2}); return err },
		"EventsAfter":     func() error { _, err := store.EventsAfter(ctx, 3, 10, 100); return err },
		"StreamHeads": func() error {
			_, _, err := store.StreamHeads(ctx, []int64{1, 2, 3}, []int64{1, 2})
			return err
		},
		"SearchUsers": func() error {
			for _, q := range []string{"", "a", "lov"} {
				if _, err := store.SearchUsers(ctx, q, &chat.UserCursor{Name: "b", ID: 3}, 21); err != nil {
					return err
				}
			}
			return nil
		},
		"Apply": func() error {
			for _, m := range []chat.Mutation{
				chat.EditMessage{MessageID: message, Body: "edited"},
				chat.React{MessageID: message, Emoji: "👍", Add: true},
				chat.React{MessageID: message, Emoji: "👍", Add: false},
				chat.DeleteMessage{MessageID: message},
				chat.RenameConversation{ConversationID: 9, Title: "renamed"},
				chat.AddMembers{ConversationID: 9, UserIDs: []int64{19, 20}},
				chat.RemoveMember{ConversationID: 9, UserID: 20},
				chat.LeaveConversation{ConversationID: 9},
			} {
				if _, err := store.Apply(ctx, owner, m); err != nil {
					return fmt.Errorf("%T: %w", m, err)
				}
			}
			return nil
		},
		"SearchMessages": func() error {
			after := &chat.SearchCursor{CreatedAt: time.Now(), ID: 1 << 40}
			for _, q := range []string{"the", "deploy cache", `"looks good"`, "review -the", "zzz", "!!"} {
				for _, conv := range []int64{0, 2} {
					if _, err := store.SearchMessages(ctx, 1, q, conv, after, 21); err != nil {
						return err
					}
				}
			}
			return nil
		},
		"UsersByIDs": func() error { _, err := store.UsersByIDs(ctx, []int64{1, 2}); return err },
		"InsertMessage": func() error {
			_, _, err := store.InsertMessage(ctx, chat.NewMessage{ConversationID: 1, SenderID: 1, Body: "x", ClientMessageID: &cid})
			return err
		},
	}
	for name, step := range steps {
		plans.take()
		if err := step(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := plans.take()
		if len(got) == 0 {
			t.Errorf("%s: no plan reported", name)
		}
		for _, plan := range got {
			if strings.Contains(plan, "Seq Scan") {
				t.Errorf("%s reads a whole table:\n%s", name, plan)
			}
		}
	}
}

// TestRangeReadsLimitTheScan: MessagesAfter, MessagesBefore and EventsAfter limit the range
// scan of (conversation_id, seq) or (conversation_id, event_seq) itself, before the joins, so
// that a page reads at most its limit of rows whatever the planner estimates of the range. With
// the limit above the join, a range deep in a conversation far longer than the others looked
// like a few rows, and the planner joined and sorted all of it (make bench's timeline backward
// at depth 5000). Reproducing that estimate takes a table of bench size; the plan's shape is
// what guarantees the bound.
func TestRangeReadsLimitTheScan(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, plans := seededExplainingPool(t, "")
	store := db.NewStore(pool)
	for name, tc := range map[string]struct {
		index string
		read  func() (int, error)
	}{
		"MessagesAfter": {"messages_conversation_seq_key", func() (int, error) {
			msgs, err := store.MessagesAfter(ctx, 3, 10, 21)
			return len(msgs), err
		}},
		"MessagesBefore": {"messages_conversation_seq_key", func() (int, error) {
			msgs, err := store.MessagesBefore(ctx, 3, 40, 21)
			return len(msgs), err
		}},
		"EventsAfter": {"conversation_events_pkey", func() (int, error) {
			evs, err := store.EventsAfter(ctx, 3, 10, 21)
			return len(evs), err
		}},
	} {
		plans.take()
		if n, err := tc.read(); err != nil || n != 21 {
			t.Fatalf("%s: %d rows, %v", name, n, err)
		}
		got := plans.take()
		if len(got) != 1 {
			t.Fatalf("%s: %d plans", name, len(got))
		}
		// The plan's node lines (with a cost), outermost first: the scan's parent must be a Limit.
		var nodes []string
		for _, l := range strings.Split(got[0], "\n") {
			if strings.Contains(l, "(cost=") {
				nodes = append(nodes, strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->")))
			}
		}
		i := slices.IndexFunc(nodes, func(n string) bool { return strings.Contains(n, "using "+tc.index) })
		if i < 1 || !strings.HasPrefix(nodes[i-1], "Limit") {
			t.Errorf("%s: the range scan is not limited by itself:\n%s", name, got[0])
		}
	}
}

// Writers that append user events for overlapping sets of users (new conversations, members
// added and removed, read positions moved) never deadlock: each transaction's foreign-key checks
// lock those users' rows FOR KEY SHARE in any order before the append locks them in id order.
func TestUserEventWritersDoNotDeadlock(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "A", "B", "C", "D", "E", "F")
	shared := dbtest.Conversation(t, direct, "shared", u...)
	dbtest.Messages(t, direct, shared, u, 10)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := range 8 {
		wg.Go(func() {
			for i := range 15 {
				// Members in a different order in each writer.
				members := []int64{u[(w+1)%6], u[(w+3)%6], u[(w+5)%6]}
				creator := u[w%6]
				var err error
				switch i % 3 {
				case 0:
					_, _, err = store.CreateConversation(ctx, creator, fmt.Sprintf("w%d-%d", w, i), members)
				case 1:
					_, err = store.MarkRead(ctx, creator, shared, int64(i%10+1))
				case 2:
					var c chat.Conversation
					if c, _, err = store.CreateConversation(ctx, creator, "to grow", nil); err == nil {
						_, err = store.Apply(ctx, creator, chat.AddMembers{ConversationID: c.ID, UserIDs: members})
					}
				}
				if err != nil {
					errs <- fmt.Errorf("writer %d, step %d: %w", w, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Each user's events are numbered without holes.
	if n := dbtest.Count(t, direct, `SELECT count(*) FROM users u
		WHERE u.last_event_seq <> (SELECT count(*) FROM user_events e WHERE e.user_id = u.id)`); n != 0 {
		t.Fatalf("%d users whose last_event_seq is not their number of events", n)
	}
}

// TestConcurrentSendsOfOneClientID: sends of one client id that wait together on the
// conversation's row lock store one message; the others answer it, and no seq is spent. The
// lock is held from outside until both have checked the client id and wait for it, so the
// second to take it inserts the duplicate, fails on the unique constraint and reads the first.
func TestConcurrentSendsOfOneClientID(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "A", "B")
	conv := dbtest.Conversation(t, direct, "race", u...)
	ctx := context.Background()

	holder, err := direct.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx)
	if _, err := holder.Exec(ctx, "SELECT 1 FROM conversations WHERE id = $1 FOR UPDATE", conv); err != nil {
		t.Fatal(err)
	}
	cmid := "same"
	type sent struct {
		c       chat.Change
		created bool
		err     error
	}
	out := make(chan sent, 2)
	for range 2 {
		go func() {
			c, created, err := store.InsertMessage(ctx, chat.NewMessage{ConversationID: conv, SenderID: u[0], Body: "once", ClientMessageID: &cmid})
			out <- sent{c, created, err}
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for dbtest.Count(t, direct, `SELECT count(*) FROM pg_stat_activity
		WHERE wait_event_type = 'Lock' AND query LIKE '%MessageSend%'`) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the two sends never waited for the conversation's lock together")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}

	a, b := <-out, <-out
	for _, s := range []sent{a, b} {
		if s.err != nil {
			t.Fatalf("send: %v", s.err)
		}
	}
	if a.created == b.created {
		t.Fatalf("created %v and %v, want one of each", a.created, b.created)
	}
	ma, mb := a.c.Event.(*chat.MessageAdded).Message, b.c.Event.(*chat.MessageAdded).Message
	if ma.ID != mb.ID || ma.Seq != 1 || a.c.Event.Header().EventSeq != b.c.Event.Header().EventSeq {
		t.Fatalf("answers %+v and %+v, want the same message at seq 1 with the same event", ma, mb)
	}
	if n := dbtest.Count(t, direct, "SELECT last_seq FROM conversations WHERE id = $1", conv); n != 1 {
		t.Fatalf("last_seq %d after one message, want 1", n)
	}
	if n := dbtest.Count(t, direct, "SELECT count(*) FROM conversation_events WHERE conversation_id = $1 AND kind = 'message_added'", conv); n != 1 {
		t.Fatalf("%d message_added events, want 1", n)
	}
}

// TestSendRoundTrips: through PgBouncer, a send is two round trips, its BEGIN sent with the
// statement and then its COMMIT; a repeat of a client id is that first round trip, the ROLLBACK
// and the read of the original. Round trips are counted as the writes on the connection: pgx
// writes each of them at once.
func TestSendRoundTrips(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "A", "B")
	conv := dbtest.Conversation(t, direct, "round trips", u...)
	ctx := context.Background()

	var writes atomic.Int64
	pool, err := db.OpenPool(ctx, d.PooledURL, db.PoolConfig{
		MaxConns:   1,
		ShouldPing: func(context.Context, pgxpool.ShouldPingParams) bool { return false },
		DialFunc: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return countingConn{c, &writes}, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := pool.Ping(ctx); err != nil { // the connection's startup is writes too
		t.Fatal(err)
	}
	store := db.NewStore(pool)

	cmid := "round-trips"
	for _, tc := range []struct {
		name        string
		wantWrites  int64
		wantCreated bool
	}{
		{"a send", 2, true},
		{"its repeat", 3, false},
	} {
		writes.Store(0)
		_, created, err := store.InsertMessage(ctx, chat.NewMessage{ConversationID: conv, SenderID: u[0], Body: "hi", ClientMessageID: &cmid})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if created != tc.wantCreated {
			t.Fatalf("%s: created %v, want %v", tc.name, created, tc.wantCreated)
		}
		if n := writes.Load(); n != tc.wantWrites {
			t.Errorf("%s: %d round trips to PgBouncer, want %d", tc.name, n, tc.wantWrites)
		}
	}
	if n := dbtest.Count(t, direct, "SELECT count(*) FROM messages WHERE conversation_id = $1", conv); n != 1 {
		t.Fatalf("%d messages after a send and its repeat, want 1", n)
	}
}

// countingConn counts the writes on a connection.
type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}
