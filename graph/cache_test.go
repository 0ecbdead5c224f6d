package graph_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/db/dbtest"
)

// TestFiftyConversationsOneStatement: one query asking 50 conversations for a page (by offset,
// or timeline's newest page) costs one SQL statement for all the pages when cold and none when
// warm, and at most two Redis round trips either way. Listing the conversations is counted
// apart; conversations asked by id come with their pages, from the same statement when cold
// and from Redis when warm.
func TestFiftyConversationsOneStatement(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cache: true})
	u := dbtest.Users(t, e.direct, "Alice", "Bob")
	var ids []int64
	for i := range 50 {
		c := dbtest.Conversation(t, e.direct, fmt.Sprint("c", i), u...)
		dbtest.Messages(t, e.direct, c, u, 25)
		ids = append(ids, c)
	}
	var aliased strings.Builder
	aliased.WriteString("{")
	for i, id := range ids {
		fmt.Fprintf(&aliased, " c%d: conversation(id: %d) { messages(limit: 20) { items { id sender { name } } } lastMessage { seq } }", i, id)
	}
	aliased.WriteString(" }")

	list := map[string][]string{"cold": {"ConversationListByMember", "MessagePages"}, "warm": {"ConversationListByMember"}}
	for _, tc := range []struct {
		name, query string
		want        map[string][]string // round -> statements, sorted
	}{
		{"list", `{ conversations(first: 50) { edges { node { messages(limit: 20) { items { id body sender { name } } hasMore } lastMessage { seq } } } } }`, list},
		{"aliases", aliased.String(), map[string][]string{"cold": {"ConversationPagesForMember"}, "warm": nil}},
		{"timelines", `{ conversations(first: 50) { edges { node { timeline(first: 20) { edges { node { id sender { name } } } pageInfo { hasNextPage } } lastMessage { seq } } } } }`, list},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.rdb.FlushAll(t.Context())
			// The viewer's first request also records their presence, one write per user per
			// 15 s (internal/presence): made before counting.
			e.as(u[0], `{ __typename }`, nil, nil)
			for _, round := range []string{"cold", "warm"} {
				e.resetStatements()
				e.redisRoundTrips.Store(0)
				var data map[string]any
				e.as(u[0], tc.query, nil, &data)
				if len(data) == 0 {
					t.Fatal("no data")
				}
				got := e.statementsSeen()
				slices.Sort(got)
				if diff := cmp.Diff(tc.want[round], got); diff != "" {
					t.Fatalf("%s: statements (-want +got):\n%s", round, diff)
				}
				if n := e.redisRoundTrips.Load(); n > 2 {
					t.Fatalf("%s: %d Redis round trips, want at most 2", round, n)
				}
				t.Logf("%s: statements %v, %d Redis round trips", round, got, e.redisRoundTrips.Load())
			}
		})
	}
}

// TestCachedHistoryAfterSend: with the cache on, a send is visible at once to messages,
// history and lastMessage.
func TestCachedHistoryAfterSend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cache: true})
	f := newFixture(t, e, 40)
	q := `query($id: ID!) { conversation(id: $id) { messages(limit: 5) { items { seq } } history(first: 5) { edges { node { seq } } pageInfo { hasNextPage } } lastMessage { seq } } }`
	type data struct {
		Conversation struct {
			Messages struct{ Items []struct{ Seq int } }
			History  struct {
				Edges    []struct{ Node struct{ Seq int } }
				PageInfo struct{ HasNextPage bool }
			}
			LastMessage struct{ Seq int }
		}
	}
	for want := 40; want < 45; want++ {
		for range 2 { // the second read is a hit
			var d data
			e.as(f.alice, q, map[string]any{"id": f.conv}, &d)
			c := d.Conversation
			if c.Messages.Items[0].Seq != want || c.History.Edges[0].Node.Seq != want || c.LastMessage.Seq != want || !c.History.PageInfo.HasNextPage {
				t.Fatalf("want newest seq %d: %+v", want, c)
			}
		}
		e.as(f.bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "more"}) { seq } }`, map[string]any{"c": f.conv}, nil)
	}
}

// TestCachedPageByCursor: with the cache on, a page by cursor is one statement when cold (the
// conversation, the membership and the page) and none when warm, and an edit below the cursor
// is seen by the next read.
func TestCachedPageByCursor(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cache: true})
	f := newFixture(t, e, 40)
	cursor := cursorOf(t, e, f) // below seq 31
	q := `query($id: ID!, $b: String) { conversation(id: $id) { history(first: 5, before: $b) {
		edges { node { id seq body } } pageInfo { hasNextPage hasPreviousPage } } } }`
	type data struct {
		Conversation struct {
			History struct {
				Edges []struct {
					Node struct {
						ID   string
						Seq  int
						Body string
					}
				}
				PageInfo struct{ HasNextPage, HasPreviousPage bool }
			}
		}
	}
	read := func(wantStatements []string) data {
		t.Helper()
		e.resetStatements()
		var d data
		e.as(f.alice, q, map[string]any{"id": f.conv, "b": cursor}, &d)
		h := d.Conversation.History
		if len(h.Edges) != 5 || h.Edges[0].Node.Seq != 30 || h.Edges[4].Node.Seq != 26 || !h.PageInfo.HasNextPage || !h.PageInfo.HasPreviousPage {
			t.Fatalf("the page below seq 31: %+v", h)
		}
		if diff := cmp.Diff(wantStatements, e.statementsSeen()); diff != "" {
			t.Fatalf("statements (-want +got):\n%s", diff)
		}
		return d
	}
	cold := []string{"ConversationPagesForMember"}
	d := read(cold)
	read(nil) // warm: from the history cache
	e.as(f.alice, `mutation($id: ID!) { editMessage(input: {id: $id, body: "edited below the cursor"}) { id } }`,
		map[string]any{"id": d.Conversation.History.Edges[1].Node.ID}, nil)
	if got := read(cold).Conversation.History.Edges[1].Node.Body; got != "edited below the cursor" {
		t.Fatalf("after the edit, seq 29 reads %q", got)
	}
}
