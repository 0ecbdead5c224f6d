package graph_test

// Messages that change and members who come and go (lifecycle.graphqls), through the production
// wiring: every test here talks to servers started by app/apptest, with both caches on unless it
// says otherwise.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/respcache"
)

// deployment is two instances of Threadline on one database and one Redis, as behind a load
// balancer, with both caches on (the production defaults).
type deployment struct {
	a, b   *apptest.Server
	direct *pgxpool.Pool
}

// aliceAndBob starts a deployment with the users Alice and Bob in a conversation titled
// title, which Alice owns.
func aliceAndBob(t *testing.T, title string) (d *deployment, alice, bob, conv int64) {
	t.Helper()
	d = newDeployment(t)
	u := dbtest.Users(t, d.direct, "Alice", "Bob")
	return d, u[0], u[1], dbtest.Conversation(t, d.direct, title, u[0], u[1])
}

// aliceBobCarol creates the users Alice, Bob and Carol, in that order, and returns their ids.
func aliceBobCarol(t *testing.T, pool *pgxpool.Pool) (alice, bob, carol int64) {
	t.Helper()
	u := dbtest.Users(t, pool, "Alice", "Bob", "Carol")
	return u[0], u[1], u[2]
}

// seededAliceAndBob is aliceAndBob with n messages in the conversation (dbtest.Messages: Alice
// and Bob in turn, bodies "message <seq>"), for the race tests; it logs how long seeding took.
// body gives the body of message seq: as seeded up to n, and after n the body the test sends,
// sentPrefix followed by seq-n.
func seededAliceAndBob(t *testing.T, title string, n int64, sentPrefix string) (d *deployment, alice, bob, conv int64, body func(seq int64) string) {
	t.Helper()
	began := time.Now()
	d, alice, bob, conv = aliceAndBob(t, title)
	dbtest.Messages(t, d.direct, conv, []int64{alice, bob}, int(n))
	t.Logf("seeded %d messages in %v", n, time.Since(began).Round(time.Millisecond))
	body = func(seq int64) string {
		if seq > n {
			return fmt.Sprint(sentPrefix, seq-n)
		}
		return fmt.Sprint("message ", seq)
	}
	return d, alice, bob, conv, body
}

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	return newDeploymentOn(t, "")
}

// newDeploymentOn is newDeployment on the Redis redisURL names ("": a new one of the test's own).
func newDeploymentOn(t *testing.T, redisURL string) *deployment {
	t.Helper()
	configure := func(c *app.Config) {
		c.CacheEnabled, c.ResponseCacheEnabled = true, true
		c.AdmissionEnabled = false // load shedding is tested on its own (TestOverload)
		c.DBMaxConns = 16
	}
	a := apptest.Start(t, apptest.Options{RedisURL: redisURL, Configure: configure})
	b := apptest.Start(t, apptest.Options{Database: &a.Database, RedisURL: a.Config.RedisURL, Configure: configure})
	return &deployment{a: a, b: b, direct: a.Direct}
}

// lifecycleServer is one instance with both caches on.
func lifecycleServer(t *testing.T) *apptest.Server {
	t.Helper()
	return apptest.Start(t, apptest.Options{Configure: func(c *app.Config) {
		c.CacheEnabled, c.ResponseCacheEnabled = true, true
		c.AdmissionEnabled = false
	}})
}

type vars = map[string]any

// The operations of the lifecycle, selecting what the tests compare.
const (
	lcMessage = `id seq body version editedAt deletedAt sender { id } reactions { emoji count viewerReacted }`

	sendMut           = `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { ` + lcMessage + ` } }`
	editMut           = `mutation($id: ID!, $b: String!) { editMessage(input: {id: $id, body: $b}) { ` + lcMessage + ` } }`
	deleteMut         = `mutation($id: ID!) { deleteMessage(id: $id) { ` + lcMessage + ` } }`
	addReactionMut    = `mutation($id: ID!, $e: String!) { addReaction(messageId: $id, emoji: $e) { ` + lcMessage + ` } }`
	removeReactionMut = `mutation($id: ID!, $e: String!) { removeReaction(messageId: $id, emoji: $e) { ` + lcMessage + ` } }`
	addMembersMut     = `mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id lastEventSeq memberships { user { id } role } } }`
	removeMemberMut   = `mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id lastEventSeq memberships { user { id } role } } }`
	leaveMut          = `mutation($c: ID!) { leaveConversation(conversationId: $c) }`
	renameMut         = `mutation($c: ID!, $t: String!) { renameConversation(conversationId: $c, title: $t) { id title lastEventSeq } }`
	createMut         = `mutation($t: String!, $m: [ID!]) { createConversation(input: {title: $t, memberIds: $m}) {
	  id lastEventSeq memberships { user { id } role } events { items { ` + lcEventFields + ` } hasMore } } }`

	lcEventFields = `__typename eventSeq conversationId actor { id }
	  ... on MessageAddedEvent { message { id } }
	  ... on MessageEditedEvent { message { id } }
	  ... on MessageDeletedEvent { message { id } }
	  ... on ReactionChangedEvent { message { id } emoji added }
	  ... on MembersAddedEvent { users { id } }
	  ... on MemberRemovedEvent { user { id } }
	  ... on ConversationRenamedEvent { title }`
	eventsQuery = `query($id: ID!, $after: Int, $first: Int) { conversation(id: $id) {
	  lastEventSeq events(after: $after, first: $first) { items { ` + lcEventFields + ` } hasMore } } }`
	eventsSub = `subscription($c: ID!, $after: Int) { conversationEvents(conversationId: $c, afterEventSeq: $after) { ` + lcEventFields + ` } }`

	pageOfQuery = `query($id: ID!, $limit: Int, $offset: Int) { conversation(id: $id) {
	  messages(limit: $limit, offset: $offset) { items { ` + lcMessage + ` } hasMore } } }`
	historyOfQuery = `query($id: ID!, $first: Int, $before: String) { conversation(id: $id) {
	  history(first: $first, before: $before) { edges { cursor node { ` + lcMessage + ` } } pageInfo { endCursor hasNextPage } } } }`
	membershipsQuery = `query($id: ID!) { conversation(id: $id) { title lastEventSeq memberships { user { id } role } } }`
)

type msgView struct {
	ID        string
	Seq       int64
	Body      string
	Version   int
	EditedAt  *string
	DeletedAt *string
	Sender    struct{ ID string }
	Reactions []reactionView
}

type reactionView struct {
	Emoji         string
	Count         int
	ViewerReacted bool
}

type idView struct{ ID string }

type eventView struct {
	Typename       string `json:"__typename"`
	EventSeq       int64
	ConversationID string
	Actor          idView
	Message        *idView
	Emoji          string
	Added          bool
	Users          []idView
	User           *idView
	Title          string
}

type membershipView struct {
	User idView
	Role string
}

// gql runs query on srv as user and decodes data into out (if not nil); any error fails the test.
func gql(t testing.TB, srv *apptest.Server, user int64, query string, v vars, out any) {
	t.Helper()
	srv.Client(user).Query(t, query, v, out)
}

// gqlRefused runs query on srv as user, which must answer exactly one error with code, and
// returns the response.
func gqlRefused(t testing.TB, srv *apptest.Server, user int64, query string, v vars, code string) apptest.Response {
	t.Helper()
	res := srv.Client(user).Must(t, query, v)
	if got := res.Codes(); len(got) != 1 || got[0] != code {
		t.Fatalf("%s %v as %d: errors %+v (data %s), want one %s", firstLine(query), v, user, res.Errors, res.Data, code)
	}
	return res
}

// concurrentClients returns a maker of GraphQL clients for requests sent concurrently. They share
// a transport of the test's own, whose idle connections close before the servers shut down:
// under concurrency a transport may dial a connection it then never uses, and
// http.Server.Shutdown waits 5 s for a connection that has not sent its first request.
func concurrentClients(t *testing.T) func(srv *apptest.Server, user int64) *apptest.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections) // runs before the servers' own cleanup, registered earlier
	hc := &http.Client{Transport: tr}
	return func(srv *apptest.Server, user int64) *apptest.Client {
		c := srv.Client(user)
		c.HTTP = hc
		return c
	}
}

// mutate runs query with c without failing the test, so that it may run off the test's
// goroutine; out (if not nil) receives data.
func mutate(c *apptest.Client, query string, v vars, out any) error {
	res, err := c.Do(context.Background(), query, v)
	if err != nil {
		return err
	}
	if !res.OK() {
		return fmt.Errorf("%s %v: status %d, errors %+v", firstLine(query), v, res.Status, res.Errors)
	}
	if out != nil {
		return json.Unmarshal(res.Data, out)
	}
	return nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "{ ")
	return strings.TrimSpace(s)
}

// dbState dumps every row a change to conversation conv (0: to any) can touch, for the check that
// a refused change changed nothing.
func dbState(t testing.TB, pool *pgxpool.Pool, conv int64) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT id, title, last_seq, last_message_at, last_event_seq FROM conversations WHERE $1 = 0 OR id = $1 ORDER BY id",
		"SELECT conversation_id, user_id, role, joined_at FROM conversation_members WHERE $1 = 0 OR conversation_id = $1 ORDER BY 1, 2",
		`SELECT id, conversation_id, seq, sender_id, body, client_message_id, created_at, edited_at, deleted_at, version, reactions::text
		 FROM messages WHERE $1 = 0 OR conversation_id = $1 ORDER BY id`,
		"SELECT conversation_id, message_id, user_id, emoji, created_at FROM reactions WHERE $1 = 0 OR conversation_id = $1 ORDER BY 1, 2, 3, 4",
		`SELECT conversation_id, event_seq, kind, actor_id, at, message_id, emoji, added, title, user_ids
		 FROM conversation_events WHERE $1 = 0 OR conversation_id = $1 ORDER BY 1, 2`,
		// The conversation's members (every user for 0): tests running beside this one add
		// users of their own.
		"SELECT id, name FROM users WHERE $1 = 0 OR id IN (SELECT user_id FROM conversation_members WHERE conversation_id = $1) ORDER BY id",
	} {
		rows, err := pool.Query(context.Background(), q, conv)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			t.Fatal(err)
		}
		for _, row := range vals { // a row a line: a diff names the rows that changed
			fmt.Fprintln(&b, row...)
		}
		b.WriteString("--\n")
	}
	return b.String()
}

// unchanged fails the test when the state differs from before.
func unchanged(t testing.TB, what, before, after string) {
	t.Helper()
	if before != after {
		t.Fatalf("%s changed the database (-before +after):\n%s", what, cmp.Diff(before, after))
	}
}

func lastEventSeq(t testing.TB, pool *pgxpool.Pool, conv int64) int64 {
	t.Helper()
	var n int64
	if err := pool.QueryRow(context.Background(), "SELECT last_event_seq FROM conversations WHERE id = $1", conv).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// messageIDs returns the ids of a conversation's messages by seq.
// messagesIn creates a conversation of members with n messages sent by senders in turn, and
// returns it with its messages' IDs by seq.
func messagesIn(t testing.TB, pool *pgxpool.Pool, title string, members, senders []int64, n int) (int64, map[int64]string) {
	t.Helper()
	conv := dbtest.Conversation(t, pool, title, members...)
	dbtest.Messages(t, pool, conv, senders, n)
	return conv, messageIDs(t, pool, conv)
}

func messageIDs(t testing.TB, pool *pgxpool.Pool, conv int64) map[int64]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT seq, id FROM messages WHERE conversation_id = $1", conv)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]string{}
	for rows.Next() {
		var seq, id int64
		if err := rows.Scan(&seq, &id); err != nil {
			t.Fatal(err)
		}
		out[seq] = apptest.ID(id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// allEvents pages through a conversation's events, first at a time, on srv as user.
func allEvents(t testing.TB, srv *apptest.Server, user, conv int64, first int) []eventView {
	t.Helper()
	var out []eventView
	after := int64(0)
	for {
		var d struct {
			Conversation *struct {
				Events struct {
					Items   []eventView
					HasMore bool
				}
			}
		}
		gql(t, srv, user, eventsQuery, vars{"id": conv, "after": after, "first": first}, &d)
		if d.Conversation == nil {
			t.Fatalf("conversation %d is null for %d", conv, user)
		}
		items := d.Conversation.Events.Items
		if len(items) > first || (d.Conversation.Events.HasMore && len(items) != first) {
			t.Fatalf("a page of %d events with first %d and hasMore %v", len(items), first, d.Conversation.Events.HasMore)
		}
		out = append(out, items...)
		if !d.Conversation.Events.HasMore {
			return out
		}
		after = items[len(items)-1].EventSeq
	}
}

func typenames(evs []eventView) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Typename
	}
	return out
}

// responseStats reads the response cache's counters from /health/cache on the operations listener.
func responseStats(t testing.TB, srv *apptest.Server) respcache.Stats {
	t.Helper()
	_, body := srv.GetOps("/health/cache")
	var h struct {
		ResponseCache *respcache.Stats `json:"responseCache"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil || h.ResponseCache == nil {
		t.Fatalf("/health/cache: %s (%v)", body, err)
	}
	return *h.ResponseCache
}

// storedRead runs query on srv as user until the response cache serves it (a hit with the same
// bytes as the run that stored it), and returns the data. The store is asynchronous: the second
// run retries briefly until it has landed.
func storedRead(t testing.TB, srv *apptest.Server, user int64, query string, v vars) string {
	t.Helper()
	c := srv.Client(user)
	first := c.Must(t, query, v)
	if !first.OK() {
		t.Fatalf("%s: %+v", firstLine(query), first.Errors)
	}
	for range 100 {
		before := responseStats(t, srv).Hits
		again := c.Must(t, query, v)
		if responseStats(t, srv).Hits == before+1 {
			if string(again.Data) != string(first.Data) {
				t.Fatalf("a hit returned other data:\n%s\n%s", again.Data, first.Data)
			}
			return string(first.Data)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s was never served from the response cache: %+v", firstLine(query), responseStats(t, srv))
	return ""
}

func decode[T any](t testing.TB, data string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

// TestLifecycleSemantics pins what editing, deleting, reacting and membership changes do.
func TestLifecycleSemantics(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	pool := srv.Direct
	u := dbtest.Users(t, pool, "Alice", "Bob", "Carol", "Dave")
	alice, bob, carol, dave := u[0], u[1], u[2], u[3]
	id := apptest.ID

	t.Run("version 1, 2 after an edit, 3 after the delete", func(t *testing.T) {
		t.Parallel()
		conv := dbtest.Conversation(t, pool, "versions", alice, bob)
		var sent struct{ SendMessage msgView }
		gql(t, srv, alice, sendMut, vars{"c": conv, "b": "first"}, &sent)
		m := sent.SendMessage
		if m.Version != 1 || m.Body != "first" || m.EditedAt != nil || m.DeletedAt != nil || len(m.Reactions) != 0 {
			t.Fatalf("sent: %+v", m)
		}
		var edited struct{ EditMessage msgView }
		gql(t, srv, alice, editMut, vars{"id": m.ID, "b": "  second  "}, &edited)
		e := edited.EditMessage
		if e.ID != m.ID || e.Seq != m.Seq || e.Version != 2 || e.Body != "second" || e.EditedAt == nil || e.DeletedAt != nil {
			t.Fatalf("edited: %+v", e)
		}
		var reacted struct{ AddReaction msgView }
		gql(t, srv, bob, addReactionMut, vars{"id": m.ID, "e": "👍"}, &reacted)
		if r := reacted.AddReaction; r.Version != 2 || !cmp.Equal(r.Reactions, []reactionView{{"👍", 1, true}}) {
			t.Fatalf("a reaction: %+v (it does not change the version)", r)
		}
		var deleted struct{ DeleteMessage msgView }
		gql(t, srv, alice, deleteMut, vars{"id": m.ID}, &deleted)
		d := deleted.DeleteMessage
		if d.ID != m.ID || d.Seq != m.Seq || d.Version != 3 || d.Body != "" || d.DeletedAt == nil || d.EditedAt == nil ||
			len(d.Reactions) != 0 || d.Sender.ID != id(alice) {
			t.Fatalf("deleted: %+v", d)
		}
		if n := dbtest.Count(t, pool, "SELECT count(*) FROM reactions WHERE conversation_id = $1", conv); n != 0 {
			t.Fatalf("%d reactions left on a deleted message", n)
		}

		// A tombstone cannot be edited, nor reacted to; nothing changes.
		before := dbState(t, pool, conv)
		gqlRefused(t, srv, alice, editMut, vars{"id": m.ID, "b": "resurrected"}, "BAD_USER_INPUT")
		gqlRefused(t, srv, bob, addReactionMut, vars{"id": m.ID, "e": "🎉"}, "BAD_USER_INPUT")
		unchanged(t, "editing or reacting to a deleted message", before, dbState(t, pool, conv))

		evs := allEvents(t, srv, bob, conv, 100)
		want := []string{"MessageAddedEvent", "MessageEditedEvent", "ReactionChangedEvent", "MessageDeletedEvent"}
		if diff := cmp.Diff(want, typenames(evs)); diff != "" {
			t.Fatalf("events (-want +got):\n%s", diff)
		}
		for i, ev := range evs {
			if ev.EventSeq != int64(i+1) || ev.Message == nil || ev.Message.ID != m.ID {
				t.Fatalf("event %d: %+v", i, ev)
			}
		}
	})

	t.Run("a tombstone keeps its seq in offset pages and in history", func(t *testing.T) {
		t.Parallel()
		conv, ids := messagesIn(t, pool, "tombstones", []int64{alice, bob}, []int64{alice, bob}, 30)
		gql(t, srv, bob, deleteMut, vars{"id": ids[30]}, nil)   // bob's own, at offset 0
		gql(t, srv, alice, deleteMut, vars{"id": ids[15]}, nil) // alice's own, at offset 15
		tombstone := map[int64]bool{30: true, 15: true}
		check := func(where string, items []msgView, from int64) {
			t.Helper()
			if len(items) != 10 {
				t.Fatalf("%s: %d items", where, len(items))
			}
			for i, m := range items {
				seq := from - int64(i)
				sender := id([]int64{alice, bob}[(seq-1)%2])
				switch {
				case m.Seq != seq || m.ID != ids[seq] || m.Sender.ID != sender:
					t.Fatalf("%s: item %d is %+v, want seq %d", where, i, m, seq)
				case tombstone[seq] && (m.Body != "" || m.DeletedAt == nil || m.Version != 2 || len(m.Reactions) != 0):
					t.Fatalf("%s: seq %d is not a tombstone: %+v", where, seq, m)
				case !tombstone[seq] && (m.Body != fmt.Sprint("message ", seq) || m.DeletedAt != nil || m.Version != 1):
					t.Fatalf("%s: seq %d: %+v", where, seq, m)
				}
			}
		}
		for _, offset := range []int64{0, 10} {
			var d struct {
				Conversation struct{ Messages struct{ Items []msgView } }
			}
			gql(t, srv, alice, pageOfQuery, vars{"id": conv, "limit": 10, "offset": offset}, &d)
			check(fmt.Sprint("offset ", offset), d.Conversation.Messages.Items, 30-offset)
		}
		type historyPage struct {
			Conversation struct {
				History struct {
					Edges    []struct{ Node msgView }
					PageInfo struct{ EndCursor string }
				}
			}
		}
		nodes := func(h historyPage) []msgView {
			var out []msgView
			for _, e := range h.Conversation.History.Edges {
				out = append(out, e.Node)
			}
			return out
		}
		var h1, h2 historyPage
		gql(t, srv, bob, historyOfQuery, vars{"id": conv, "first": 10}, &h1)
		check("history", nodes(h1), 30)
		gql(t, srv, bob, historyOfQuery, vars{"id": conv, "first": 10, "before": h1.Conversation.History.PageInfo.EndCursor}, &h2)
		check("history before seq 21", nodes(h2), 20)
		var last struct {
			Conversation struct{ LastMessage msgView }
		}
		gql(t, srv, alice, `query($id: ID!) { conversation(id: $id) { lastMessage { `+lcMessage+` } } }`, vars{"id": conv}, &last)
		if lm := last.Conversation.LastMessage; lm.Seq != 30 || lm.DeletedAt == nil || lm.Body != "" {
			t.Fatalf("lastMessage: %+v", lm)
		}
	})

	t.Run("deleting twice returns the tombstone and adds no event", func(t *testing.T) {
		t.Parallel()
		conv, ids := messagesIn(t, pool, "twice", []int64{alice, bob}, []int64{alice, bob}, 4)
		var first struct{ DeleteMessage msgView }
		gql(t, srv, bob, deleteMut, vars{"id": ids[4]}, &first)
		before := dbState(t, pool, conv)
		for _, who := range []int64{bob, alice} { // the sender, then the owner
			var again struct{ DeleteMessage msgView }
			gql(t, srv, who, deleteMut, vars{"id": ids[4]}, &again)
			if diff := cmp.Diff(first.DeleteMessage, again.DeleteMessage); diff != "" {
				t.Fatalf("deleting again as %d (-first +again):\n%s", who, diff)
			}
		}
		unchanged(t, "deleting a deleted message", before, dbState(t, pool, conv))
		if n := lastEventSeq(t, pool, conv); n != 5 {
			t.Fatalf("last event %d, want 5 (4 sends, 1 delete)", n)
		}
	})

	t.Run("reactions are idempotent", func(t *testing.T) {
		t.Parallel()
		conv, ids := messagesIn(t, pool, "reactions", []int64{alice, bob}, []int64{alice}, 1)
		m := ids[1]
		steps := []struct {
			query, emoji string
			want         []reactionView
			event        bool
		}{
			{addReactionMut, "👍", []reactionView{{"👍", 1, true}}, true},
			{addReactionMut, "👍", []reactionView{{"👍", 1, true}}, false},
			{removeReactionMut, "👍", nil, true},
			{removeReactionMut, "👍", nil, false},
			{removeReactionMut, "🎉", nil, false}, // never there
		}
		for i, s := range steps {
			before, seq := dbState(t, pool, conv), lastEventSeq(t, pool, conv)
			var out map[string]msgView
			gql(t, srv, bob, s.query, vars{"id": m, "e": s.emoji}, &out)
			for _, got := range out {
				if !cmp.Equal(got.Reactions, s.want, cmpopts.EquateEmpty()) {
					t.Fatalf("step %d: reactions %+v, want %+v", i, got.Reactions, s.want)
				}
			}
			after := lastEventSeq(t, pool, conv)
			switch {
			case s.event && after != seq+1:
				t.Fatalf("step %d: last event %d -> %d, want one event", i, seq, after)
			case !s.event:
				unchanged(t, fmt.Sprint("step ", i), before, dbState(t, pool, conv))
			}
		}
		evs := allEvents(t, srv, alice, conv, 100)
		if len(evs) != 3 || evs[1].Typename != "ReactionChangedEvent" || !evs[1].Added || evs[1].Emoji != "👍" ||
			evs[2].Typename != "ReactionChangedEvent" || evs[2].Added || evs[2].Actor.ID != id(bob) {
			t.Fatalf("events: %+v", evs)
		}
	})

	t.Run("at most 20 different emojis on a message", func(t *testing.T) {
		t.Parallel()
		conv, ids := messagesIn(t, pool, "emojis", []int64{alice, bob}, []int64{alice}, 1)
		m := ids[1]
		emoji := func(i int) string { return fmt.Sprintf(":e%02d:", i) }
		for i := 1; i <= 20; i++ {
			gql(t, srv, alice, addReactionMut, vars{"id": m, "e": emoji(i)}, nil)
		}
		before := dbState(t, pool, conv)
		gqlRefused(t, srv, alice, addReactionMut, vars{"id": m, "e": emoji(21)}, "BAD_USER_INPUT")
		gqlRefused(t, srv, bob, addReactionMut, vars{"id": m, "e": emoji(21)}, "BAD_USER_INPUT")
		unchanged(t, "a 21st emoji", before, dbState(t, pool, conv))
		var again struct{ AddReaction msgView }
		gql(t, srv, bob, addReactionMut, vars{"id": m, "e": emoji(7)}, &again) // one that is there already
		r := again.AddReaction.Reactions
		if len(r) != 20 || r[0] != (reactionView{emoji(7), 2, true}) {
			t.Fatalf("after a second %s: %+v", emoji(7), r)
		}
		gql(t, srv, alice, removeReactionMut, vars{"id": m, "e": emoji(20)}, nil)
		var room struct{ AddReaction msgView }
		gql(t, srv, bob, addReactionMut, vars{"id": m, "e": emoji(21)}, &room)
		if r := room.AddReaction.Reactions; len(r) != 20 || !slices.ContainsFunc(r, func(x reactionView) bool { return x.Emoji == emoji(21) }) {
			t.Fatalf("once one emoji was gone: %+v", r)
		}
	})

	t.Run("grouped by emoji, most used first, viewerReacted per viewer", func(t *testing.T) {
		t.Parallel()
		conv, ids := messagesIn(t, pool, "grouping", []int64{alice, bob, carol}, []int64{alice}, 1)
		m := ids[1]
		for _, r := range []struct {
			who   int64
			emoji string
		}{{alice, "😂"}, {carol, "🎉"}, {alice, "👍"}, {bob, "👍"}, {carol, "👍"}, {bob, "❤️"}, {carol, "❤️"}} {
			gql(t, srv, r.who, addReactionMut, vars{"id": m, "e": r.emoji}, nil)
		}
		// 😂 and 🎉 both count 1: the one that came first comes first.
		for who, mine := range map[int64][4]bool{alice: {true, false, true, false}, bob: {true, true, false, false}, carol: {true, true, false, true}} {
			want := []reactionView{{"👍", 3, mine[0]}, {"❤️", 2, mine[1]}, {"😂", 1, mine[2]}, {"🎉", 1, mine[3]}}
			q := `query($id: ID!) { conversation(id: $id) { messages(limit: 1) { items { reactions { emoji count viewerReacted } } } } }`
			// Twice: the second answer comes from the response cache, stored for this viewer only.
			got := decode[struct {
				Conversation struct{ Messages struct{ Items []msgView } }
			}](t, storedRead(t, srv, who, q, vars{"id": conv}))
			if diff := cmp.Diff(want, got.Conversation.Messages.Items[0].Reactions); diff != "" {
				t.Fatalf("as %d (-want +got):\n%s", who, diff)
			}
			var noop struct{ RemoveReaction msgView } // removing one never added: the message as it is, for this viewer
			gql(t, srv, who, removeReactionMut, vars{"id": m, "e": "🙈"}, &noop)
			if diff := cmp.Diff(want, noop.RemoveReaction.Reactions); diff != "" {
				t.Fatalf("removeReaction's answer as %d (-want +got):\n%s", who, diff)
			}
		}
	})

	t.Run("an owner who leaves hands ownership to the longest-standing member", func(t *testing.T) {
		t.Parallel()
		var created struct{ CreateConversation struct{ ID string } }
		gql(t, srv, alice, createMut, vars{"t": "handover", "m": []string{id(carol)}}, &created)
		conv := created.CreateConversation.ID
		// Bob joins later, though his id is lower than Carol's: Carol is the longest-standing.
		gql(t, srv, alice, addMembersMut, vars{"c": conv, "u": []string{id(bob)}}, nil)
		gqlRefused(t, srv, bob, removeMemberMut, vars{"c": conv, "u": id(carol)}, "FORBIDDEN")

		var left struct{ LeaveConversation bool }
		gql(t, srv, alice, leaveMut, vars{"c": conv}, &left)
		if !left.LeaveConversation {
			t.Fatal("leaveConversation answered false")
		}
		var d struct {
			Conversation *struct{ Memberships []membershipView }
		}
		gql(t, srv, bob, membershipsQuery, vars{"id": conv}, &d)
		want := []membershipView{{idView{id(bob)}, "MEMBER"}, {idView{id(carol)}, "OWNER"}}
		if diff := cmp.Diff(want, d.Conversation.Memberships); diff != "" {
			t.Fatalf("memberships after the owner left (-want +got):\n%s", diff)
		}
		var gone struct{ Conversation *struct{ Title string } }
		gql(t, srv, alice, membershipsQuery, vars{"id": conv}, &gone)
		if gone.Conversation != nil {
			t.Fatalf("the owner who left still sees the conversation: %+v", gone.Conversation)
		}
		gqlRefused(t, srv, alice, leaveMut, vars{"c": conv}, "NOT_FOUND")
		convID, err := strconv.ParseInt(conv, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		evs := allEvents(t, srv, carol, convID, 100)
		last := evs[len(evs)-1]
		if last.Typename != "MemberRemovedEvent" || last.Actor.ID != id(alice) || last.User == nil || last.User.ID != id(alice) {
			t.Fatalf("the leaving's event: %+v", last)
		}
		// The new owner may remove members.
		gql(t, srv, carol, removeMemberMut, vars{"c": conv, "u": id(bob)}, nil)
	})

	t.Run("createConversation's first event names every member", func(t *testing.T) {
		t.Parallel()
		var created struct {
			CreateConversation struct {
				ID           string
				LastEventSeq int64
				Memberships  []membershipView
				Events       struct {
					Items   []eventView
					HasMore bool
				}
			}
		}
		gql(t, srv, alice, createMut, vars{"t": "first event", "m": []string{id(carol), id(bob)}}, &created)
		c := created.CreateConversation
		if c.LastEventSeq != 1 || len(c.Events.Items) != 1 || c.Events.HasMore {
			t.Fatalf("created: %+v", c)
		}
		ev := c.Events.Items[0]
		users := []string{}
		for _, u := range ev.Users {
			users = append(users, u.ID)
		}
		slices.Sort(users)
		if ev.Typename != "MembersAddedEvent" || ev.EventSeq != 1 || ev.Actor.ID != id(alice) || ev.ConversationID != c.ID ||
			!slices.Equal(users, []string{id(alice), id(bob), id(carol)}) {
			t.Fatalf("first event: %+v", ev)
		}
		want := []membershipView{{idView{id(alice)}, "OWNER"}, {idView{id(bob)}, "MEMBER"}, {idView{id(carol)}, "MEMBER"}}
		if diff := cmp.Diff(want, c.Memberships); diff != "" {
			t.Fatalf("memberships (-want +got):\n%s", diff)
		}
	})

	t.Run("limits", func(t *testing.T) {
		t.Parallel()
		conv, msgs := messagesIn(t, pool, "limits", []int64{alice, bob}, []int64{alice}, 1)
		m := msgs[1]
		crowd := make([]string, 101)
		ids := dbtest.Users(t, pool, func() []string {
			names := make([]string, 101)
			for i := range names {
				names[i] = fmt.Sprintf("Crowd %03d", i)
			}
			return names
		}()...)
		for i, u := range ids {
			crowd[i] = id(u)
		}
		for _, c := range []struct {
			name  string
			who   int64
			query string
			v     vars
		}{
			{"an empty body", alice, editMut, vars{"id": m, "b": ""}},
			{"a blank body", alice, editMut, vars{"id": m, "b": " \n\t "}},
			{"4001 characters", alice, editMut, vars{"id": m, "b": strings.Repeat("é", 4001)}},
			{"an empty emoji", bob, addReactionMut, vars{"id": m, "e": ""}},
			{"33 characters of emoji", bob, addReactionMut, vars{"id": m, "e": strings.Repeat("x", 33)}},
			{"an emoji with a space", bob, addReactionMut, vars{"id": m, "e": "a b"}},
			{"removing an empty emoji", bob, removeReactionMut, vars{"id": m, "e": ""}},
			{"101 users", alice, addMembersMut, vars{"c": conv, "u": crowd}},
			{"no user", alice, addMembersMut, vars{"c": conv, "u": []string{}}},
			{"a user who does not exist", alice, addMembersMut, vars{"c": conv, "u": []string{id(dave), "987654"}}},
			{"a user id of 0", alice, addMembersMut, vars{"c": conv, "u": []string{"0"}}},
			{"removing oneself", alice, removeMemberMut, vars{"c": conv, "u": id(alice)}},
			{"an empty title", bob, renameMut, vars{"c": conv, "t": "   "}},
			{"201 characters of title", bob, renameMut, vars{"c": conv, "t": strings.Repeat("t", 201)}},
			{"events first 0", alice, eventsQuery, vars{"id": conv, "first": 0}},
			{"events first 101", alice, eventsQuery, vars{"id": conv, "first": 101}},
			{"events after -1", alice, eventsQuery, vars{"id": conv, "after": -1}},
		} {
			before := dbState(t, pool, conv)
			gqlRefused(t, srv, c.who, c.query, c.v, "BAD_USER_INPUT")
			unchanged(t, c.name, before, dbState(t, pool, conv))
		}
		// The bounds themselves are allowed.
		var edited struct{ EditMessage msgView }
		gql(t, srv, alice, editMut, vars{"id": m, "b": strings.Repeat("é", 4000)}, &edited)
		if len([]rune(edited.EditMessage.Body)) != 4000 || edited.EditMessage.Version != 2 {
			t.Fatalf("4000 characters: %d characters, version %d", len([]rune(edited.EditMessage.Body)), edited.EditMessage.Version)
		}
		gql(t, srv, bob, addReactionMut, vars{"id": m, "e": strings.Repeat("x", 32)}, nil)
		gql(t, srv, bob, addReactionMut, vars{"id": m, "e": "👍🏽"}, nil)
		gql(t, srv, bob, renameMut, vars{"c": conv, "t": strings.Repeat("t", 200)}, nil)
		var added struct {
			AddMembers struct{ Memberships []membershipView }
		}
		gql(t, srv, bob, addMembersMut, vars{"c": conv, "u": crowd[:100]}, &added) // any member may add
		if n := len(added.AddMembers.Memberships); n != 102 {
			t.Fatalf("%d members after adding 100 to 2", n)
		}
		evs := allEvents(t, srv, alice, conv, 100)
		last := evs[len(evs)-1]
		if last.Typename != "MembersAddedEvent" || len(last.Users) != 100 || last.Actor.ID != id(bob) {
			t.Fatalf("the event of adding 100: %s with %d users by %s", last.Typename, len(last.Users), last.Actor.ID)
		}
		// Adding members who are all members already changes nothing.
		before := dbState(t, pool, conv)
		gql(t, srv, alice, addMembersMut, vars{"c": conv, "u": crowd[:3]}, nil)
		unchanged(t, "adding members again", before, dbState(t, pool, conv))
	})
}

// TestLifecycleAuthorization: a non-member is told NOT_FOUND exactly as about a missing id, by
// every new mutation and read; changes to someone else's message and removals by a non-owner are
// FORBIDDEN; and no refused request changes anything.
func TestLifecycleAuthorization(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	pool := srv.Direct
	u := dbtest.Users(t, pool, "Alice", "Bob", "Carol", "Mallory")
	alice, bob, carol, mallory := u[0], u[1], u[2], u[3]
	conv, ids := messagesIn(t, pool, "Private", []int64{alice, bob, carol}, []int64{alice, bob}, 4) // Alice owns it; seq 2 and 4 are Bob's
	// Mallory has a conversation of her own: she is a member somewhere, just not here.
	mine := dbtest.Conversation(t, pool, "Mallory's", mallory)
	dbtest.Messages(t, pool, mine, []int64{mallory}, 1)
	missingConv, missingMsg := apptest.ID(conv+1000), "987654321"
	c, bobsMsg := apptest.ID(conv), ids[2]

	// Every refusal below must leave everything as it was.
	state := dbState(t, pool, 0)
	refused := func(t *testing.T, name string, who int64, query string, v vars, code string) apptest.Response {
		t.Helper()
		res := gqlRefused(t, srv, who, query, v, code)
		unchanged(t, name, state, dbState(t, pool, 0))
		for _, e := range res.Errors {
			if leaksInternals(e.Message) {
				t.Errorf("%s: the error speaks of internals: %q", name, e.Message)
			}
		}
		return res
	}

	t.Run("a non-member is told what a stranger to a missing id is told", func(t *testing.T) {
		for _, tc := range []struct {
			name           string
			query          string
			member, absent vars
		}{
			{"editMessage", editMut, vars{"id": bobsMsg, "b": "x"}, vars{"id": missingMsg, "b": "x"}},
			{"deleteMessage", deleteMut, vars{"id": bobsMsg}, vars{"id": missingMsg}},
			{"addReaction", addReactionMut, vars{"id": bobsMsg, "e": "👍"}, vars{"id": missingMsg, "e": "👍"}},
			{"removeReaction", removeReactionMut, vars{"id": bobsMsg, "e": "👍"}, vars{"id": missingMsg, "e": "👍"}},
			{"addMembers (herself)", addMembersMut, vars{"c": c, "u": []string{apptest.ID(mallory)}}, vars{"c": missingConv, "u": []string{apptest.ID(mallory)}}},
			{"removeMember", removeMemberMut, vars{"c": c, "u": apptest.ID(bob)}, vars{"c": missingConv, "u": apptest.ID(bob)}},
			{"leaveConversation", leaveMut, vars{"c": c}, vars{"c": missingConv}},
			{"renameConversation", renameMut, vars{"c": c, "t": "mine"}, vars{"c": missingConv, "t": "mine"}},
		} {
			a := refused(t, tc.name, mallory, tc.query, tc.member, "NOT_FOUND")
			b := refused(t, tc.name+" of a missing id", mallory, tc.query, tc.absent, "NOT_FOUND")
			if string(a.Data) != string(b.Data) || !cmp.Equal(a.Errors, b.Errors) {
				t.Errorf("%s: a non-member and a missing id differ:\n%s %+v\n%s %+v", tc.name, a.Data, a.Errors, b.Data, b.Errors)
			}
		}
		// Reads: memberships, events and lastEventSeq of a conversation she is not in.
		for _, q := range []string{membershipsQuery, eventsQuery} {
			a := srv.Client(mallory).Must(t, q, vars{"id": c})
			b := srv.Client(mallory).Must(t, q, vars{"id": missingConv})
			if !a.OK() || string(a.Data) != `{"conversation":null}` || string(a.Data) != string(b.Data) || !cmp.Equal(a.Errors, b.Errors) {
				t.Errorf("%s: non-member %s %+v, missing %s %+v", firstLine(q), a.Data, a.Errors, b.Data, b.Errors)
			}
		}
		// The event stream, on a WebSocket.
		var answers []string
		for _, target := range []string{c, missingConv} {
			ws := srv.Dial(t, mallory)
			ws.Subscribe("ev", eventsSub, vars{"c": target})
			m, _ := ws.Next(10 * time.Second)
			if m.Type != "next" || !strings.Contains(string(m.Payload), `"NOT_FOUND"`) {
				t.Fatalf("conversationEvents of %s: %s %s", target, m.Type, m.Payload)
			}
			answers = append(answers, string(m.Payload))
			if m, _ := ws.Next(10 * time.Second); m.Type != "complete" {
				t.Fatalf("after the refusal: %s %s", m.Type, m.Payload)
			}
		}
		if answers[0] != answers[1] {
			t.Errorf("conversationEvents: non-member %s, missing %s", answers[0], answers[1])
		}
	})

	t.Run("members may not change what is not theirs", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			who   int64
			query string
			v     vars
			code  string
		}{
			{"another member edits Bob's message", carol, editMut, vars{"id": bobsMsg, "b": "x"}, "FORBIDDEN"},
			{"the owner edits Bob's message", alice, editMut, vars{"id": bobsMsg, "b": "x"}, "FORBIDDEN"},
			{"another member deletes Bob's message", carol, deleteMut, vars{"id": bobsMsg}, "FORBIDDEN"},
			{"a member removes another", bob, removeMemberMut, vars{"c": c, "u": apptest.ID(carol)}, "FORBIDDEN"},
			{"a member removes the owner", bob, removeMemberMut, vars{"c": c, "u": apptest.ID(alice)}, "FORBIDDEN"},
			{"the owner removes a non-member", alice, removeMemberMut, vars{"c": c, "u": apptest.ID(mallory)}, "NOT_FOUND"},
		} {
			refused(t, tc.name, tc.who, tc.query, tc.v, tc.code)
		}
	})

	t.Run("anonymous", func(t *testing.T) {
		for _, tc := range []struct {
			query string
			v     vars
		}{
			{editMut, vars{"id": bobsMsg, "b": "x"}}, {deleteMut, vars{"id": bobsMsg}},
			{addReactionMut, vars{"id": bobsMsg, "e": "👍"}}, {removeReactionMut, vars{"id": bobsMsg, "e": "👍"}},
			{addMembersMut, vars{"c": c, "u": []string{apptest.ID(mallory)}}}, {removeMemberMut, vars{"c": c, "u": apptest.ID(bob)}},
			{leaveMut, vars{"c": c}}, {renameMut, vars{"c": c, "t": "anon"}},
			{`{ users(first: 5) { edges { node { id } } } }`, nil},
		} {
			refused(t, "anonymous "+firstLine(tc.query), 0, tc.query, tc.v, "UNAUTHENTICATED")
		}
	})

	t.Run("the owner may delete anyone's message; then others still may not", func(t *testing.T) {
		var d struct{ DeleteMessage msgView }
		gql(t, srv, alice, deleteMut, vars{"id": bobsMsg}, &d)
		if d.DeleteMessage.DeletedAt == nil || d.DeleteMessage.Version != 2 {
			t.Fatalf("the owner's delete: %+v", d.DeleteMessage)
		}
		state = dbState(t, pool, 0)
		// Deleting someone else's message is refused whatever state it is in.
		refused(t, "another member deletes Bob's deleted message", carol, deleteMut, vars{"id": bobsMsg}, "FORBIDDEN")
		refused(t, "a non-member deletes Bob's deleted message", mallory, deleteMut, vars{"id": bobsMsg}, "NOT_FOUND")
		gql(t, srv, bob, deleteMut, vars{"id": ids[4]}, nil) // his own
	})
}

// TestResponseCacheConversationFieldsStayExact: conversation fields that now change (title,
// memberships, lastEventSeq, messages before a cursor) are never served from a response stored
// before the change, when the change goes through another instance.
func TestResponseCacheConversationFieldsStayExact(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	alice, bob, carol := aliceBobCarol(t, d.direct)
	conv, ids := messagesIn(t, d.direct, "Before", []int64{alice, bob}, []int64{alice, bob}, 20)
	id := apptest.ID

	type convView struct {
		Conversation struct {
			Title        string
			LastEventSeq int64
			Memberships  []membershipView
		}
	}
	titleOnly := `query($id: ID!) { conversation(id: $id) { title lastEventSeq } }`
	v := vars{"id": conv}

	// The subtests run in order, on one conversation.
	t.Run("renameConversation", func(t *testing.T) {
		storedRead(t, d.a, alice, membershipsQuery, v)
		storedRead(t, d.a, alice, titleOnly, v)
		gql(t, d.b, bob, renameMut, vars{"c": conv, "t": "After"}, nil)
		for _, q := range []string{membershipsQuery, titleOnly} {
			var got convView
			gql(t, d.a, alice, q, v, &got)
			if got.Conversation.Title != "After" || got.Conversation.LastEventSeq != 21 {
				t.Errorf("%s after a rename on the other instance: %+v", q, got.Conversation)
			}
		}
	})

	t.Run("addMembers", func(t *testing.T) {
		storedRead(t, d.a, alice, membershipsQuery, v)
		storedRead(t, d.a, alice, titleOnly, v)
		gql(t, d.b, bob, addMembersMut, vars{"c": conv, "u": []string{id(carol)}}, nil)
		var got convView
		gql(t, d.a, alice, membershipsQuery, v, &got)
		want := []membershipView{{idView{id(alice)}, "OWNER"}, {idView{id(bob)}, "MEMBER"}, {idView{id(carol)}, "MEMBER"}}
		if diff := cmp.Diff(want, got.Conversation.Memberships); diff != "" || got.Conversation.LastEventSeq != 22 {
			t.Errorf("after addMembers on the other instance: lastEventSeq %d, memberships (-want +got):\n%s", got.Conversation.LastEventSeq, diff)
		}
		gql(t, d.a, alice, titleOnly, v, &got)
		if got.Conversation.LastEventSeq != 22 {
			t.Errorf("lastEventSeq after addMembers on the other instance: %d", got.Conversation.LastEventSeq)
		}
	})

	t.Run("messages before a cursor", func(t *testing.T) {
		historyBeforeStaysExact(t, d, alice, bob, conv, ids)
	})
}

// historyBeforeStaysExact: messages before a cursor change too (edits, reactions, deletes), and a
// response holding them is not served after the change.
func historyBeforeStaysExact(t *testing.T, d *deployment, alice, bob, conv int64, ids map[int64]string) {
	var first struct {
		Conversation struct {
			History struct{ PageInfo struct{ EndCursor string } }
		}
	}
	gql(t, d.a, alice, historyOfQuery, vars{"id": conv, "first": 5}, &first)
	before := vars{"id": conv, "first": 5, "before": first.Conversation.History.PageInfo.EndCursor} // seq 15..11
	type historyView struct {
		Conversation struct {
			History struct{ Edges []struct{ Node msgView } }
		}
	}
	seq14 := func() msgView {
		t.Helper()
		var h historyView
		gql(t, d.a, alice, historyOfQuery, before, &h)
		n := h.Conversation.History.Edges[1].Node
		if n.Seq != 14 {
			t.Fatalf("history before seq 16: second item has seq %d", n.Seq)
		}
		return n
	}
	for _, step := range []struct {
		name   string
		change func()
		check  func(msgView) bool
	}{
		{"an edit", func() { gql(t, d.b, bob, editMut, vars{"id": ids[14], "b": "edited"}, nil) }, func(m msgView) bool { return m.Body == "edited" && m.Version == 2 }},
		{"a reaction", func() { gql(t, d.b, alice, addReactionMut, vars{"id": ids[14], "e": "👍"}, nil) }, func(m msgView) bool {
			return cmp.Equal(m.Reactions, []reactionView{{"👍", 1, true}})
		}},
		{"a delete", func() { gql(t, d.b, bob, deleteMut, vars{"id": ids[14]}, nil) }, func(m msgView) bool { return m.DeletedAt != nil && m.Body == "" && m.Version == 3 }},
	} {
		storedRead(t, d.a, alice, historyOfQuery, before)
		step.change()
		if m := seq14(); !step.check(m) {
			t.Fatalf("history before a cursor after %s on the other instance: %+v", step.name, m)
		}
	}
}
