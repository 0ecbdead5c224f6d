package graph_test

// Conversation.timeline against the Relay Cursor Connections Specification, and
// Conversation.historyAround, through the production wiring with both caches on.

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
)

const (
	timelineQuery = `query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) { conversation(id: $id) {
	  timeline(first: $first, after: $after, last: $last, before: $before) {
	    edges { cursor node { seq body deletedAt } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }`
	aroundQuery = `query($id: ID!, $seq: Int!, $before: Int, $after: Int) { conversation(id: $id) {
	  historyAround(seq: $seq, before: $before, after: $after) {
	    items { seq body deletedAt } hasOlder hasNewer olderCursor newerCursor } } }`
)

type timelineView struct {
	Conversation *struct {
		Timeline struct {
			Edges []struct {
				Cursor string
				Node   timelineNode
			}
			PageInfo pageInfoView
		}
	}
}

type timelineNode struct {
	Seq       int64
	Body      string
	DeletedAt *string
}

type pageInfoView struct {
	HasNextPage, HasPreviousPage bool
	StartCursor, EndCursor       *string
}

type aroundView struct {
	Conversation *struct {
		HistoryAround windowView
	}
}

type windowView struct {
	Items                    []timelineNode
	HasOlder, HasNewer       bool
	OlderCursor, NewerCursor *string
}

// page is what a test compares of a timeline page: the seqs in order and the two flags.
type page struct {
	Seqs             []int64
	HasNext, HasPrev bool
}

// cursor is the cursor of the message at seq (cursors are opaque to clients; tests know them).
func cursor(seq int64) string { return chat.EncodeMessageCursor(seq) }

// checkConnection checks what every page must satisfy whatever its arguments: each edge's cursor
// is its message's, the start and end cursors are the first and last edges' (null when there
// is none), and a deleted message is a tombstone. It returns the page's seqs and flags.
func checkConnection(t *testing.T, v timelineView) page {
	t.Helper()
	if v.Conversation == nil {
		t.Fatal("conversation is null")
	}
	tl := v.Conversation.Timeline
	got := page{Seqs: []int64{}, HasNext: tl.PageInfo.HasNextPage, HasPrev: tl.PageInfo.HasPreviousPage}
	for _, e := range tl.Edges {
		got.Seqs = append(got.Seqs, e.Node.Seq)
		if e.Cursor != cursor(e.Node.Seq) {
			t.Errorf("the edge of seq %d has cursor %q", e.Node.Seq, e.Cursor)
		}
		if (e.Node.DeletedAt != nil) != (e.Node.Body == "") {
			t.Errorf("seq %d: body %q, deletedAt %v", e.Node.Seq, e.Node.Body, e.Node.DeletedAt)
		}
	}
	var start, end *string
	if n := len(tl.Edges); n > 0 {
		start, end = &tl.Edges[0].Cursor, &tl.Edges[n-1].Cursor
	}
	if diff := cmp.Diff(start, tl.PageInfo.StartCursor); diff != "" {
		t.Errorf("startCursor (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(end, tl.PageInfo.EndCursor); diff != "" {
		t.Errorf("endCursor (-want +got):\n%s", diff)
	}
	return got
}

func seqRun(from, to int64) []int64 { // from down to to, or up when from < to
	out := []int64{}
	step := int64(-1)
	if from < to {
		step = 1
	}
	for s := from; ; s += step {
		out = append(out, s)
		if s == to {
			return out
		}
	}
}

// TestTimelineFollowsTheRelaySpec pages a conversation of 10 messages, seq 5 deleted, in every
// way the specification describes: the list is newest first (10 … 1), first/after go toward
// older messages and last/before toward newer ones, and hasNextPage/hasPreviousPage are what
// its HasNextPage and HasPreviousPage algorithms return, computed exactly.
func TestTimelineFollowsTheRelaySpec(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	alice, bob, carol := aliceBobCarol(t, srv.Direct)
	conv, ids := messagesIn(t, srv.Direct, "Ten", []int64{alice, bob}, []int64{alice, bob}, 10)
	gql(t, srv, alice, deleteMut, vars{"id": ids[5]}, nil) // a tombstone keeps its seq
	empty := dbtest.Conversation(t, srv.Direct, "Empty", alice, bob)

	for _, tc := range []struct {
		name string
		args vars
		conv int64 // 0: the conversation of 10
		want page
	}{
		// Forward: first/after, toward older messages. hasPreviousPage is true exactly when
		// after is given: the message it names precedes the page.
		{"no arguments: the newest 50", vars{}, 0, page{seqRun(10, 1), false, false}},
		{"first 3", vars{"first": 3}, 0, page{seqRun(10, 8), true, false}},
		{"first 3 after 8", vars{"first": 3, "after": cursor(8)}, 0, page{seqRun(7, 5), true, true}},
		{"first 3 after the tombstone", vars{"first": 3, "after": cursor(5)}, 0, page{seqRun(4, 2), true, true}},
		{"first 3 after 4: ends at the oldest", vars{"first": 3, "after": cursor(4)}, 0, page{seqRun(3, 1), false, true}},
		{"first 3 after 3: fewer than first", vars{"first": 3, "after": cursor(3)}, 0, page{seqRun(2, 1), false, true}},
		{"first 3 after the oldest", vars{"first": 3, "after": cursor(1)}, 0, page{[]int64{}, false, true}},
		{"first 3 after the newest", vars{"first": 3, "after": cursor(10)}, 0, page{seqRun(9, 7), true, true}},
		{"first 1", vars{"first": 1}, 0, page{[]int64{10}, true, false}},
		{"first 1 after 2", vars{"first": 1, "after": cursor(2)}, 0, page{[]int64{1}, false, true}},
		{"first 100", vars{"first": 100}, 0, page{seqRun(10, 1), false, false}},
		{"first 10: exactly all", vars{"first": 10}, 0, page{seqRun(10, 1), false, false}},
		{"first 9: all but one", vars{"first": 9}, 0, page{seqRun(10, 2), true, false}},
		{"first 2 before 3: the newest above before", vars{"first": 2, "before": cursor(3)}, 0, page{seqRun(10, 9), true, false}},

		// Backward: last/before, toward newer messages. hasNextPage is true exactly when before
		// is given and is not seq 1: older messages follow it.
		{"last 3: the oldest", vars{"last": 3}, 0, page{seqRun(3, 1), false, true}},
		{"last 3 before 4", vars{"last": 3, "before": cursor(4)}, 0, page{seqRun(7, 5), true, true}},
		{"last 3 before the tombstone", vars{"last": 3, "before": cursor(5)}, 0, page{seqRun(8, 6), true, true}},
		{"last 3 before 7: ends at the newest", vars{"last": 3, "before": cursor(7)}, 0, page{seqRun(10, 8), true, false}},
		{"last 3 before 8: fewer than last", vars{"last": 3, "before": cursor(8)}, 0, page{seqRun(10, 9), true, false}},
		{"last 3 before the newest", vars{"last": 3, "before": cursor(10)}, 0, page{[]int64{}, true, false}},
		{"last 3 before the oldest", vars{"last": 3, "before": cursor(1)}, 0, page{seqRun(4, 2), false, true}},
		{"last 1 before 9", vars{"last": 1, "before": cursor(9)}, 0, page{[]int64{10}, true, false}},
		{"last 1 before 2", vars{"last": 1, "before": cursor(2)}, 0, page{[]int64{3}, true, true}},
		{"last 100", vars{"last": 100}, 0, page{seqRun(10, 1), false, false}},
		{"before alone: the 50 next to it", vars{"before": cursor(4)}, 0, page{seqRun(10, 5), true, false}},
		{"last 2 after 3: the oldest below after", vars{"last": 2, "after": cursor(3)}, 0, page{seqRun(2, 1), false, false}},

		// Both cursors: the edges between them (ApplyCursorsToEdges), then first or last.
		{"first 2 after 9 before 3", vars{"first": 2, "after": cursor(9), "before": cursor(3)}, 0, page{seqRun(8, 7), true, true}},
		{"first 5 after 9 before 3: all between", vars{"first": 5, "after": cursor(9), "before": cursor(3)}, 0, page{seqRun(8, 4), false, true}},
		{"last 2 after 9 before 3", vars{"last": 2, "after": cursor(9), "before": cursor(3)}, 0, page{seqRun(5, 4), true, true}},
		{"last 5 after 9 before 3: all between", vars{"last": 5, "after": cursor(9), "before": cursor(3)}, 0, page{seqRun(8, 4), true, false}},
		{"after 9 before 3: first 50", vars{"after": cursor(9), "before": cursor(3)}, 0, page{seqRun(8, 4), false, true}},
		{"after 3 before 9: nothing between", vars{"after": cursor(3), "before": cursor(9)}, 0, page{[]int64{}, false, true}},
		{"last 2 after 3 before 9: nothing between", vars{"last": 2, "after": cursor(3), "before": cursor(9)}, 0, page{[]int64{}, true, false}},

		// An empty conversation.
		{"empty: no arguments", vars{}, empty, page{[]int64{}, false, false}},
		{"empty: first 5", vars{"first": 5}, empty, page{[]int64{}, false, false}},
		{"empty: last 5", vars{"last": 5}, empty, page{[]int64{}, false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vars{"id": conv}
			if tc.conv != 0 {
				v["id"] = tc.conv
			}
			for k, a := range tc.args {
				v[k] = a
			}
			var got timelineView
			gql(t, srv, bob, timelineQuery, v, &got)
			if diff := cmp.Diff(tc.want, checkConnection(t, got)); diff != "" {
				t.Errorf("timeline(%v) (-want +got):\n%s", tc.args, diff)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args vars
			conv int64
		}{
			{"first 0", vars{"first": 0}, conv},
			{"first 101", vars{"first": 101}, conv},
			{"first -1", vars{"first": -1}, conv},
			{"last 0", vars{"last": 0}, conv},
			{"last 101", vars{"last": 101}, conv},
			{"first and last", vars{"first": 3, "last": 3}, conv},
			{"a cursor that is not one", vars{"after": "nope"}, conv},
			{"an empty cursor", vars{"before": ""}, conv},
			{"a conversation cursor", vars{"after": chat.EncodeConversationCursor(chat.ConversationCursor{ID: 1})}, conv},
			{"a cursor of seq 0", vars{"after": cursor(0)}, conv},
			{"after past the last seq", vars{"first": 3, "after": cursor(11)}, conv},
			{"before past the last seq", vars{"last": 3, "before": cursor(11)}, conv},
			{"a cursor in an empty conversation", vars{"first": 3, "after": cursor(1)}, empty},
		} {
			t.Run(tc.name, func(t *testing.T) {
				v := vars{"id": tc.conv}
				for k, a := range tc.args {
					v[k] = a
				}
				res := gqlRefused(t, srv, bob, timelineQuery, v, "BAD_USER_INPUT")
				if leaksInternals(res.Errors[0].Message) {
					t.Errorf("the error tells internals: %q", res.Errors[0].Message)
				}
			})
		}
	})

	t.Run("not a member", func(t *testing.T) {
		var got timelineView
		gql(t, srv, carol, timelineQuery, vars{"id": conv, "first": 3}, &got)
		if got.Conversation != nil {
			t.Fatalf("a non-member sees the conversation: %+v", got.Conversation)
		}
	})
}

// TestHistoryAround reads windows around messages of a conversation of 10, seq 5 deleted.
func TestHistoryAround(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	alice, bob := u[0], u[1]
	conv, ids := messagesIn(t, srv.Direct, "Ten", []int64{alice, bob}, []int64{alice, bob}, 10)
	gql(t, srv, alice, deleteMut, vars{"id": ids[5]}, nil)
	empty := dbtest.Conversation(t, srv.Direct, "Empty", alice, bob)

	type window struct {
		Seqs               []int64
		HasOlder, HasNewer bool
	}
	for _, tc := range []struct {
		name string
		args vars
		want window
	}{
		{"the tombstone, 2 each side", vars{"seq": 5, "before": 2, "after": 2}, window{seqRun(7, 3), true, true}},
		{"25 each side by default", vars{"seq": 5}, window{seqRun(10, 1), false, false}},
		{"the newest", vars{"seq": 10, "before": 2, "after": 2}, window{seqRun(10, 8), true, false}},
		{"the oldest", vars{"seq": 1, "before": 2, "after": 2}, window{seqRun(3, 1), false, true}},
		{"the message alone", vars{"seq": 6, "before": 0, "after": 0}, window{[]int64{6}, true, true}},
		{"the first alone", vars{"seq": 1, "before": 0, "after": 0}, window{[]int64{1}, false, true}},
		{"reaching both ends exactly", vars{"seq": 3, "before": 2, "after": 7}, window{seqRun(10, 1), false, false}},
		{"one short of both ends", vars{"seq": 4, "before": 2, "after": 5}, window{seqRun(9, 2), true, true}},
		{"100 each side", vars{"seq": 4, "before": 100, "after": 100}, window{seqRun(10, 1), false, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := vars{"id": conv}
			for k, a := range tc.args {
				v[k] = a
			}
			var got aroundView
			gql(t, srv, alice, aroundQuery, v, &got)
			w := got.Conversation.HistoryAround
			g := window{Seqs: []int64{}, HasOlder: w.HasOlder, HasNewer: w.HasNewer}
			for _, m := range w.Items {
				g.Seqs = append(g.Seqs, m.Seq)
				if (m.DeletedAt != nil) != (m.Seq == 5) || (m.Body == "") != (m.Seq == 5) {
					t.Errorf("seq %d: body %q, deletedAt %v", m.Seq, m.Body, m.DeletedAt)
				}
			}
			if diff := cmp.Diff(tc.want, g); diff != "" {
				t.Errorf("historyAround(%v) (-want +got):\n%s", tc.args, diff)
			}
			// The cursors are those of the window's ends, for timeline(after:) and (before:).
			wantOlder, wantNewer := cursor(g.Seqs[len(g.Seqs)-1]), cursor(g.Seqs[0])
			if diff := cmp.Diff(windowCursors{&wantOlder, &wantNewer}, windowCursors{w.OlderCursor, w.NewerCursor}); diff != "" {
				t.Errorf("cursors (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			args vars
		}{
			{"seq 0", vars{"id": conv, "seq": 0}},
			{"seq -1", vars{"id": conv, "seq": -1}},
			{"seq past the last", vars{"id": conv, "seq": 11}},
			{"before -1", vars{"id": conv, "seq": 5, "before": -1}},
			{"before 101", vars{"id": conv, "seq": 5, "before": 101}},
			{"after -1", vars{"id": conv, "seq": 5, "after": -1}},
			{"after 101", vars{"id": conv, "seq": 5, "after": 101}},
			{"an empty conversation", vars{"id": empty, "seq": 1}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := gqlRefused(t, srv, alice, aroundQuery, tc.args, "BAD_USER_INPUT")
				if leaksInternals(res.Errors[0].Message) {
					t.Errorf("the error tells internals: %q", res.Errors[0].Message)
				}
			})
		}
	})
}

type windowCursors struct{ Older, Newer *string }

// TestTimelineAndWindowStatements: a timeline page or a window, at any depth, is one statement
// besides the conversation's, which checks membership; the first page, and any page forward
// (first, after), is one with it.
func TestTimelineAndWindowStatements(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 300)
	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		want  []string
	}{
		{"timeline first page", timelineQuery, vars{"id": f.conv, "first": 50}, []string{"ConversationPagesForMember"}},
		{"timeline after", timelineQuery, vars{"id": f.conv, "first": 50, "after": cursor(200)}, []string{"ConversationPagesForMember"}},
		{"timeline before", timelineQuery, vars{"id": f.conv, "last": 50, "before": cursor(20)}, []string{"ConversationsByIDForMember", "MessagesAfter"}},
		{"historyAround", aroundQuery, vars{"id": f.conv, "seq": 150, "before": 40, "after": 40}, []string{"ConversationsByIDForMember", "MessagesAround"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.resetStatements()
			e.as(f.alice, tc.query, tc.vars, nil)
			if diff := cmp.Diff(tc.want, e.statementsSeen()); diff != "" {
				t.Errorf("statements (-want +got):\n%s", diff)
			}
		})
	}
}

// TestResponseCacheTimelineStaysExact: a stored timeline page or window is never served once a
// message in it changed, or once a message was sent that it would now show, when the change
// goes through another instance.
func TestResponseCacheTimelineStaysExact(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	u := dbtest.Users(t, d.direct, "Alice", "Bob")
	alice, bob := u[0], u[1]
	conv, ids := messagesIn(t, d.direct, "Exact", []int64{alice, bob}, []int64{alice, bob}, 20)

	// Messages inside a page change: seq 14 is in each of these.
	type read struct {
		name  string
		query string
		v     vars
		seq14 func(data string) timelineNode
	}
	inTimeline := func(data string) timelineNode {
		for _, e := range decode[timelineView](t, data).Conversation.Timeline.Edges {
			if e.Node.Seq == 14 {
				return e.Node
			}
		}
		t.Fatalf("seq 14 is not in %s", data)
		return timelineNode{}
	}
	inWindow := func(data string) timelineNode {
		for _, m := range decode[aroundView](t, data).Conversation.HistoryAround.Items {
			if m.Seq == 14 {
				return m
			}
		}
		t.Fatalf("seq 14 is not in %s", data)
		return timelineNode{}
	}
	reads := []read{
		{"timeline after", timelineQuery, vars{"id": conv, "first": 5, "after": cursor(16)}, inTimeline},
		{"timeline before", timelineQuery, vars{"id": conv, "last": 5, "before": cursor(12)}, inTimeline},
		{"historyAround", aroundQuery, vars{"id": conv, "seq": 13, "before": 2, "after": 2}, inWindow},
	}
	for _, step := range []struct {
		name   string
		change func()
		check  func(timelineNode) bool
	}{
		{"an edit", func() { gql(t, d.b, bob, editMut, vars{"id": ids[14], "b": "edited"}, nil) }, func(m timelineNode) bool { return m.Body == "edited" }},
		{"a delete", func() { gql(t, d.b, bob, deleteMut, vars{"id": ids[14]}, nil) }, func(m timelineNode) bool { return m.DeletedAt != nil && m.Body == "" }},
	} {
		for _, r := range reads {
			storedRead(t, d.a, alice, r.query, r.v)
		}
		step.change()
		for _, r := range reads {
			res := d.a.Client(alice).Must(t, r.query, r.v)
			if !res.OK() {
				t.Fatalf("%s: %+v", r.name, res.Errors)
			}
			if m := r.seq14(string(res.Data)); !step.check(m) {
				t.Errorf("%s after %s on the other instance: seq 14 is %+v", r.name, step.name, m)
			}
		}
	}

	// The newest end: a stored page or window that reached it shows a message sent since.
	tail := vars{"id": conv, "last": 5, "before": cursor(18)}
	around := vars{"id": conv, "seq": 20, "before": 1, "after": 3}
	storedRead(t, d.a, alice, timelineQuery, tail)
	storedRead(t, d.a, alice, aroundQuery, around)
	gql(t, d.b, bob, sendMut, vars{"c": conv, "b": "new"}, nil)
	var tl timelineView
	gql(t, d.a, alice, timelineQuery, tail, &tl)
	if diff := cmp.Diff(page{seqRun(21, 19), true, false}, checkConnection(t, tl)); diff != "" {
		t.Errorf("timeline before seq 18 after a send on the other instance (-want +got):\n%s", diff)
	}
	var w aroundView
	gql(t, d.a, alice, aroundQuery, around, &w)
	if got := w.Conversation.HistoryAround; len(got.Items) != 3 || got.Items[0].Seq != 21 || got.HasNewer || !got.HasOlder {
		t.Errorf("historyAround seq 20 after a send on the other instance: %+v", got)
	}
}
