package graph_test

// The sidebar (sidebar.graphqls): one viewerEvents stream per viewer, read positions and unread
// counts, through the production wiring on two instances.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
)

const (
	viewerEventsSub = `subscription($after: String) { viewerEvents(after: $after) { __typename position
	  ... on ConversationActivityEvent { conversation { id title unreadCount lastMessage { seq body } } }
	  ... on ConversationJoinedEvent { conversation { id title unreadCount } }
	  ... on ConversationLeftEvent { conversationId }
	  ... on ReadStateChangedEvent { conversation { id unreadCount viewerLastReadSeq } } } }`
	markReadMut  = `mutation($c: ID!, $s: Int!) { markRead(conversationId: $c, seq: $s) { id unreadCount viewerLastReadSeq } }`
	unreadQuery  = `query($id: ID!) { conversation(id: $id) { unreadCount viewerLastReadSeq } unreadTotal }`
	sidebarList  = `{ conversations(first: 20) { edges { node { id title unreadCount lastMessage { seq body } } } } }`
	sidebarQuery = `{ conversations(first: 20) { edges { node { id title unreadCount lastMessage { seq body } } } } unreadTotal }`
)

// sidebarEvent is a viewerEvents result as the tests compare it.
type sidebarEvent struct {
	Typename       string `json:"__typename"`
	Position       string
	ConversationID string
	Conversation   *struct {
		ID                string
		Title             string
		UnreadCount       int
		ViewerLastReadSeq int
		LastMessage       *struct {
			Seq  int64
			Body string
		}
	}
}

// conv is the conversation the event is about.
func (e sidebarEvent) conv() string {
	if e.Conversation != nil {
		return e.Conversation.ID
	}
	return e.ConversationID
}

// key names what an event says, for comparing multisets of events.
func (e sidebarEvent) key() string { return e.Typename + " " + e.conv() }

func readSidebar(t testing.TB, ws *apptest.WS, id string, n int) []sidebarEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []sidebarEvent
	for len(out) < n {
		m, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("after %d of %d events: %v", len(out), n, err)
		}
		if m.ID != id || m.Type != "next" {
			t.Fatalf("after %d of %d events: unexpected %s (id %q) %s", len(out), n, m.Type, m.ID, m.Payload)
		}
		var p struct {
			Data *struct {
				ViewerEvents *sidebarEvent `json:"viewerEvents"`
			} `json:"data"`
			Errors []apptest.Error `json:"errors"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data == nil || p.Data.ViewerEvents == nil || len(p.Errors) > 0 {
			t.Fatalf("next payload %s (%v)", m.Payload, err)
		}
		out = append(out, *p.Data.ViewerEvents)
	}
	return out
}

// checkPositionOrder checks that each event's position follows the one before: no stream goes
// back, and something moves.
func checkPositionOrder(t testing.TB, viewer int64, from string, evs []sidebarEvent) {
	t.Helper()
	prev := chat.ViewerPosition{Conversations: map[int64]int64{}}
	if from != "" {
		var err error
		if prev, err = chat.DecodeViewerPosition("after", viewer, from); err != nil {
			t.Fatal(err)
		}
	}
	for i, ev := range evs {
		p, err := chat.DecodeViewerPosition("position", viewer, ev.Position)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		moved := p.User > prev.User
		if p.User < prev.User {
			t.Fatalf("event %d (%s): user position %d after %d", i, ev.key(), p.User, prev.User)
		}
		for c, seq := range p.Conversations {
			if before, ok := prev.Conversations[c]; ok && seq < before {
				t.Fatalf("event %d (%s): conversation %d at %d after %d", i, ev.key(), c, seq, before)
			} else if !ok || seq > before {
				moved = true
			}
		}
		if !moved && len(p.Conversations) >= len(prev.Conversations) {
			t.Fatalf("event %d (%s): the position did not move", i, ev.key())
		}
		prev = p
	}
}

// TestSidebarOneStream: a viewer in 50 conversations holds one viewerEvents subscription on one
// instance; sends, an edit, a rename, a reaction, and a new conversation that adds the viewer,
// made on the other instance, each arrive once (the reaction not at all), in position order.
// After a reconnect with after = the last position received, what happened meanwhile arrives,
// nothing missing and nothing twice. A user who is not a member receives nothing of it.
func TestSidebarOneStream(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	u := dbtest.Users(t, d.direct, "Vera", "Alice", "Sam")
	vera, alice, sam := u[0], u[1], u[2]
	id := apptest.ID
	convs := make([]int64, 50)
	for i := range convs {
		convs[i] = dbtest.Conversation(t, d.direct, fmt.Sprintf("room %d", i), alice, vera)
	}
	samsRoom := dbtest.Conversation(t, d.direct, "Sam and Alice", alice, sam)

	ws := d.b.Dial(t, vera)
	ws.Subscribe("side", viewerEventsSub, nil)
	samWS := d.b.Dial(t, sam)
	samWS.Subscribe("side", viewerEventsSub, nil)
	waitMetric(t, d.b, "threadline_subscriptions_active", 2)

	var sent struct{ SendMessage struct{ ID string } }
	want := map[string]int{} // event key -> count
	send := func(c int64, body string) {
		gql(t, d.a, alice, sendMut, vars{"c": id(c), "b": body}, &sent)
		want["ConversationActivityEvent "+id(c)]++
	}
	for i := range 10 {
		send(convs[i*5], fmt.Sprintf("hello %d", i))
	}
	gql(t, d.a, alice, editMut, vars{"id": sent.SendMessage.ID, "b": "edited"}, nil)
	want["ConversationActivityEvent "+id(convs[45])]++
	gql(t, d.a, alice, renameMut, vars{"c": id(convs[7]), "t": "renamed"}, nil)
	want["ConversationActivityEvent "+id(convs[7])]++
	gql(t, d.a, alice, addReactionMut, vars{"id": sent.SendMessage.ID, "e": "👍"}, nil) // moves the position only
	gql(t, d.a, alice, sendMut, vars{"c": id(samsRoom), "b": "for Sam"}, nil)          // not Vera's
	var created struct{ CreateConversation struct{ ID string } }
	gql(t, d.a, alice, createMut, vars{"t": "new room", "m": []string{id(vera)}}, &created)
	want["ConversationJoinedEvent "+created.CreateConversation.ID]++
	newRoom, _ := strconv.ParseInt(created.CreateConversation.ID, 10, 64)
	send(newRoom, "welcome")
	gql(t, d.a, vera, markReadMut, vars{"c": id(convs[0]), "s": 1}, nil) // on another device
	want["ReadStateChangedEvent "+id(convs[0])]++

	got := readCounted(t, ws, "side", want, "events")
	checkPositionOrder(t, vera, "", got)
	for _, ev := range got {
		if ev.Typename == "ConversationJoinedEvent" && ev.Conversation.Title != "new room" {
			t.Fatalf("joined: %+v", ev.Conversation)
		}
	}
	// Sam, a member of none of these, heard only of his own room.
	samGot := readSidebar(t, samWS, "side", 1)
	if samGot[0].key() != "ConversationActivityEvent "+id(samsRoom) {
		t.Fatalf("Sam got %s", samGot[0].key())
	}
	samWS.Quiet(100 * time.Millisecond)

	// Vera goes offline; more happens; she comes back on the other instance.
	ws.Send(apptest.WSMessage{Type: "complete", ID: "side"})
	waitMetric(t, d.b, "threadline_subscriptions_active", 1)
	want = map[string]int{}
	for i := range 7 {
		send(convs[i], fmt.Sprintf("while away %d", i))
	}
	gql(t, d.a, alice, renameMut, vars{"c": id(newRoom), "t": "renamed again"}, nil)
	want["ConversationActivityEvent "+id(newRoom)]++
	gql(t, d.a, alice, removeMemberMut, vars{"c": id(convs[49]), "u": id(vera)}, nil)
	want["ConversationLeftEvent "+id(convs[49])]++
	gql(t, d.a, alice, createMut, vars{"t": "another room", "m": []string{id(vera)}}, &created)
	want["ConversationJoinedEvent "+created.CreateConversation.ID]++

	back := d.a.Dial(t, vera)
	last := got[len(got)-1].Position
	back.Subscribe("side", viewerEventsSub, vars{"after": last})
	resumed := readCounted(t, back, "side", want, "resumed events")
	checkPositionOrder(t, vera, last, resumed)

	// Live again: a message in the room she joined while away reaches the resumed stream.
	other, _ := strconv.ParseInt(created.CreateConversation.ID, 10, 64)
	send(other, "hi again")
	if ev := readSidebar(t, back, "side", 1)[0]; ev.key() != "ConversationActivityEvent "+id(other) || ev.Conversation.LastMessage.Body != "hi again" {
		t.Fatalf("live after resuming: %+v", ev)
	}
}

// readCounted reads as many events of subscription id as want counts, checks that no more
// follow and that they are want's by key (what names them in the failure), and returns them.
func readCounted(t testing.TB, ws *apptest.WS, id string, want map[string]int, what string) []sidebarEvent {
	t.Helper()
	n := 0
	for _, k := range want {
		n += k
	}
	got := readSidebar(t, ws, id, n)
	ws.Quiet(300 * time.Millisecond)
	if diff := cmp.Diff(want, counts(got)); diff != "" {
		t.Fatalf("%s (-want +got):\n%s", what, diff)
	}
	return got
}

func counts(evs []sidebarEvent) map[string]int {
	out := map[string]int{}
	for _, ev := range evs {
		out[ev.key()]++
	}
	return out
}

// TestUnreadCountsExactUnderRaces: three writers send (and delete some of their messages) while
// the reader marks what they have seen as read, on both instances. unreadCount is never
// negative, never more than what was sent, and at the end equals what PostgreSQL counts;
// unreadTotal is the sum over the reader's conversations.
func TestUnreadCountsExactUnderRaces(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	u := dbtest.Users(t, d.direct, "Reader", "W1", "W2", "W3")
	reader, writers := u[0], u[1:]
	id := apptest.ID
	conv := dbtest.Conversation(t, d.direct, "busy", append([]int64{reader}, writers...)...)
	quiet := dbtest.Conversation(t, d.direct, "quiet", writers[0], reader)
	dbtest.Messages(t, d.direct, quiet, []int64{writers[0]}, 7)
	client := concurrentClients(t)
	servers := []*apptest.Server{d.a, d.b}

	const perWriter = 60
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i, w := range writers {
		wg.Go(func() {
			c := client(servers[i%2], w)
			for j := range perWriter {
				var out struct{ SendMessage struct{ ID string } }
				if err := mutate(c, sendMut, vars{"c": id(conv), "b": fmt.Sprintf("w%d m%d", i, j)}, &out); err != nil {
					errs <- err
					return
				}
				if j%7 == 3 {
					if err := mutate(c, deleteMut, vars{"id": out.SendMessage.ID}, nil); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	readerDone := make(chan struct{})
	wg.Go(func() {
		defer close(readerDone)
		for k := 0; ; k++ {
			c := client(servers[k%2], reader)
			var view struct {
				Conversation struct {
					UnreadCount       int
					ViewerLastReadSeq int
					LastMessage       *struct{ Seq int }
				}
			}
			if err := mutate(c, `query($id: ID!) { conversation(id: $id) { unreadCount viewerLastReadSeq lastMessage { seq } } }`, vars{"id": id(conv)}, &view); err != nil {
				errs <- err
				return
			}
			v := view.Conversation
			if v.UnreadCount < 0 || v.UnreadCount > 3*perWriter {
				errs <- fmt.Errorf("unreadCount %d", v.UnreadCount)
				return
			}
			if v.LastMessage == nil {
				continue
			}
			// Mark a random part of what was seen as read: sometimes behind the position
			// (changes nothing), usually ahead.
			seq := rand.IntN(v.LastMessage.Seq + 1)
			var marked struct {
				MarkRead struct{ UnreadCount, ViewerLastReadSeq int }
			}
			if err := mutate(c, markReadMut, vars{"c": id(conv), "s": seq}, &marked); err != nil {
				errs <- err
				return
			}
			if m := marked.MarkRead; m.UnreadCount < 0 || m.ViewerLastReadSeq < max(seq, v.ViewerLastReadSeq) {
				errs <- fmt.Errorf("markRead(%d) after %d: %+v", seq, v.ViewerLastReadSeq, m)
				return
			}
			if dbtest.Count(t, d.direct, "SELECT last_seq FROM conversations WHERE id = $1", conv) == 3*perWriter && k > 20 {
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	<-readerDone

	const unreadSQL = `SELECT count(*) FROM messages m JOIN conversation_members cm ON cm.conversation_id = m.conversation_id
		WHERE cm.user_id = $1 AND m.conversation_id = $2 AND m.seq > cm.last_read_seq AND m.deleted_at IS NULL AND m.sender_id <> $1`
	total := 0
	for _, c := range []int64{conv, quiet} {
		want := dbtest.Count(t, d.direct, unreadSQL, reader, c)
		total += want
		for _, srv := range servers {
			var got struct {
				Conversation struct{ UnreadCount int }
				UnreadTotal  int
			}
			gql(t, srv, reader, unreadQuery, vars{"id": id(c)}, &got)
			if got.Conversation.UnreadCount != want {
				t.Errorf("conversation %d: unreadCount %d, PostgreSQL counts %d", c, got.Conversation.UnreadCount, want)
			}
		}
	}
	for _, srv := range servers {
		var got struct{ UnreadTotal int }
		gql(t, srv, reader, `{ unreadTotal }`, nil, &got)
		if got.UnreadTotal != total {
			t.Errorf("unreadTotal %d, want %d", got.UnreadTotal, total)
		}
	}
	t.Logf("unread at the end: %d of %d sent", total-7, 3*perWriter)
}

// TestMarkRead: forward only, idempotent, one UserRead event per move, read receipts; bad input
// and non-members change nothing.
func TestMarkRead(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	alice, bob, carol := aliceBobCarol(t, srv.Direct)
	conv := dbtest.Conversation(t, srv.Direct, "pair", alice, bob)
	dbtest.Messages(t, srv.Direct, conv, []int64{alice, bob}, 10) // alice sends odd seqs
	id := apptest.ID
	type readView struct {
		ID                             string
		UnreadCount, ViewerLastReadSeq int
	}
	mark := func(seq int) readView {
		var out struct{ MarkRead readView }
		gql(t, srv, bob, markReadMut, vars{"c": id(conv), "s": seq}, &out)
		return out.MarkRead
	}
	events := func() int {
		return dbtest.Count(t, srv.Direct, "SELECT count(*) FROM user_events WHERE user_id = $1", bob)
	}

	if got := mark(4); got.UnreadCount != 3 || got.ViewerLastReadSeq != 4 { // 5, 7, 9 are Alice's
		t.Fatalf("markRead(4): %+v", got)
	}
	for _, seq := range []int{4, 2, 0} { // again, and behind: nothing moves
		if got := mark(seq); got.ViewerLastReadSeq != 4 || got.UnreadCount != 3 {
			t.Fatalf("markRead(%d): %+v", seq, got)
		}
	}
	if n := events(); n != 1 {
		t.Fatalf("%d UserRead events, want 1", n)
	}
	if got := mark(10); got.UnreadCount != 0 || got.ViewerLastReadSeq != 10 {
		t.Fatalf("markRead(10): %+v", got)
	}
	var receipts struct {
		Conversation struct {
			ReadStates []struct {
				User        idView
				LastReadSeq int
				At          *string
			}
		}
	}
	gql(t, srv, alice, `query($id: ID!) { conversation(id: $id) { readStates { user { id } lastReadSeq at } } }`, vars{"id": id(conv)}, &receipts)
	rs := receipts.Conversation.ReadStates
	if len(rs) != 2 || rs[0].User.ID != id(alice) || rs[0].LastReadSeq != 0 || rs[0].At != nil ||
		rs[1].User.ID != id(bob) || rs[1].LastReadSeq != 10 || rs[1].At == nil {
		t.Fatalf("readStates: %+v", rs)
	}

	before := dbState(t, srv.Direct, conv) + strconv.Itoa(events())
	gqlRefused(t, srv, bob, markReadMut, vars{"c": id(conv), "s": 11}, "BAD_USER_INPUT")
	gqlRefused(t, srv, bob, markReadMut, vars{"c": id(conv), "s": -1}, "BAD_USER_INPUT")
	missing := gqlRefused(t, srv, carol, markReadMut, vars{"c": id(conv + 1000), "s": 1}, "NOT_FOUND")
	stranger := gqlRefused(t, srv, carol, markReadMut, vars{"c": id(conv), "s": 1}, "NOT_FOUND")
	if diff := cmp.Diff(missing.Errors[0].Message, stranger.Errors[0].Message); diff != "" {
		t.Fatalf("a non-member learns the conversation exists (-missing +stranger):\n%s", diff)
	}
	unchanged(t, "refused markRead", before, dbState(t, srv.Direct, conv)+strconv.Itoa(events()))
}

// TestSidebarStatementsAndCache: the sidebar's list with unread counts and last messages costs
// at most two SQL statements, and is served from the response cache until something in it
// changes: a message in any conversation of the viewer, or the viewer's reading.
func TestSidebarStatementsAndCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	u := dbtest.Users(t, e.direct, "Vera", "Alice")
	vera, alice := u[0], u[1]
	convs := make([]int64, 25)
	for i := range convs {
		convs[i] = dbtest.Conversation(t, e.direct, fmt.Sprintf("room %d", i), alice, vera)
		dbtest.Messages(t, e.direct, convs[i], []int64{alice}, 3)
	}
	e.resetStatements()
	e.as(vera, sidebarList, nil, nil)
	if got := e.statementsSeen(); len(got) > 2 {
		t.Fatalf("the sidebar's list cost %d statements, want at most 2: %v", len(got), got)
	}
	first := e.cachedRead(vera, sidebarQuery, nil) // stored, and served
	e.resetStatements()
	if n := e.hitsAfter(func() { e.as(vera, sidebarQuery, nil, nil) }); n != 1 {
		t.Fatal("the stored sidebar was not served")
	}
	if got := e.statementsSeen(); len(got) != 0 {
		t.Fatalf("a stored sidebar cost %v", got)
	}
	for _, change := range []struct {
		name string
		do   func()
	}{
		{"a message in the 25th conversation", func() {
			e.as(alice, sendMut, vars{"c": apptest.ID(convs[0]), "b": "news"}, nil)
		}},
		{"the viewer reads", func() {
			e.as(vera, markReadMut, vars{"c": apptest.ID(convs[20]), "s": 2}, nil)
		}},
	} {
		change.do()
		fresh := e.cachedRead(vera, sidebarQuery, nil)
		if fresh == first {
			t.Fatalf("after %s the stored sidebar was served", change.name)
		}
		first = fresh
	}
	var list struct {
		Conversations struct {
			Edges []struct {
				Node struct {
					ID          string
					UnreadCount int
				}
			}
		}
		UnreadTotal int
	}
	if err := json.Unmarshal([]byte(first), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range list.Conversations.Edges {
		got[e.Node.ID] = e.Node.UnreadCount
	}
	if got[apptest.ID(convs[0])] != 4 || got[apptest.ID(convs[20])] != 1 || list.UnreadTotal != 25*3+1-2 {
		t.Fatalf("unread: %v, total %d", got, list.UnreadTotal)
	}
}

// TestViewerEventsPositions: positions that are not this stream's are BAD_USER_INPUT; one older
// than the viewer's events kept is POSITION_EXPIRED.
func TestViewerEventsPositions(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	u := dbtest.Users(t, srv.Direct, "Vera", "Alice")
	vera, alice := u[0], u[1]
	conv := dbtest.Conversation(t, srv.Direct, "room", alice, vera)
	dbtest.Messages(t, srv.Direct, conv, []int64{alice}, 3)
	gql(t, srv, vera, markReadMut, vars{"c": apptest.ID(conv), "s": 1}, nil)
	gql(t, srv, vera, markReadMut, vars{"c": apptest.ID(conv), "s": 2}, nil)
	pos := func(p chat.ViewerPosition) string { return chat.EncodeViewerPosition(p) }
	for _, c := range []struct {
		name, after, code string
	}{
		{"not a position", "nonsense", "BAD_USER_INPUT"},
		{"another viewer's", pos(chat.ViewerPosition{Viewer: alice, Conversations: map[int64]int64{conv: 3}}), "BAD_USER_INPUT"},
		{"ahead of the viewer's events", pos(chat.ViewerPosition{Viewer: vera, User: 5, Conversations: map[int64]int64{conv: 3}}), "BAD_USER_INPUT"},
		{"ahead of a conversation", pos(chat.ViewerPosition{Viewer: vera, User: 2, Conversations: map[int64]int64{conv: 9}}), "BAD_USER_INPUT"},
	} {
		ws := srv.Dial(t, vera)
		ws.Subscribe("side", viewerEventsSub, vars{"after": c.after})
		if m, _ := ws.Next(10 * time.Second); !containsCode(m.Payload, c.code) {
			t.Errorf("%s: %s %s, want %s", c.name, m.Type, m.Payload, c.code)
		}
	}
	// The viewer's first event is no longer kept: a position before it has expired.
	if _, err := srv.Direct.Exec(context.Background(), "DELETE FROM user_events WHERE user_id = $1 AND event_seq = 1", vera); err != nil {
		t.Fatal(err)
	}
	ws := srv.Dial(t, vera)
	ws.Subscribe("side", viewerEventsSub, vars{"after": pos(chat.ViewerPosition{Viewer: vera, Conversations: map[int64]int64{conv: 3}})})
	if m, _ := ws.Next(10 * time.Second); !containsCode(m.Payload, "POSITION_EXPIRED") {
		t.Fatalf("expired position: %s %s", m.Type, m.Payload)
	}
}

// containsCode reports whether a subscription's error payload (an error message's list, or a
// next message's result) carries code.
func containsCode(payload json.RawMessage, code string) bool {
	var errs []apptest.Error
	if json.Unmarshal(payload, &errs) != nil {
		var result struct{ Errors []apptest.Error }
		if json.Unmarshal(payload, &result) != nil {
			return false
		}
		errs = result.Errors
	}
	for _, e := range errs {
		if e.Code() == code {
			return true
		}
	}
	return false
}
