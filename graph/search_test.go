package graph_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

const searchQuery = `query($q: String!, $c: ID, $first: Int, $after: String) {
  searchMessages(query: $q, conversationId: $c, first: $first, after: $after) {
    edges { cursor snippet node { id seq conversationId body sender { id name } } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

type searchHit struct {
	Cursor  string
	Snippet string
	Node    struct {
		ID             string
		Seq            int64
		ConversationID string
		Body           string
		Sender         struct{ ID, Name string }
	}
}

type searchPage struct {
	SearchMessages struct {
		Edges    []searchHit
		PageInfo struct {
			HasNextPage, HasPreviousPage bool
			StartCursor, EndCursor       *string
		}
	}
}

// searchAll pages through a search first hits at a time, checking each page's shape, and
// returns the hits in the order served.
func searchAll(t *testing.T, srv *apptest.Server, viewer int64, query string, conv *string, first int) []searchHit {
	t.Helper()
	var out []searchHit
	var after *string
	for page := 1; ; page++ {
		var d searchPage
		gql(t, srv, viewer, searchQuery, vars{"q": query, "c": conv, "first": first, "after": after}, &d)
		edges, info := d.SearchMessages.Edges, d.SearchMessages.PageInfo
		if len(edges) > first || (info.HasNextPage && len(edges) != first) || info.HasPreviousPage != (after != nil) {
			t.Fatalf("search %q, page %d: %d hits, pageInfo %+v", query, page, len(edges), info)
		}
		if len(edges) > 0 && (info.StartCursor == nil || *info.StartCursor != edges[0].Cursor || info.EndCursor == nil || *info.EndCursor != edges[len(edges)-1].Cursor) {
			t.Fatalf("search %q, page %d: cursors %+v", query, page, info)
		}
		out = append(out, edges...)
		if !info.HasNextPage {
			return out
		}
		after = info.EndCursor
	}
}

func hitIDs(hits []searchHit) []string {
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.Node.ID
	}
	return ids
}

// searchIDs is searchAll's message ids, 100 a page.
func searchIDs(t *testing.T, srv *apptest.Server, viewer int64, query string, conv *string) []string {
	t.Helper()
	return hitIDs(searchAll(t, srv, viewer, query, conv, 100))
}

// TestSearchMembersOnly: a search finds messages only in the conversations the viewer is a
// member of at the time: not in another conversation holding the same words, which answers
// NOT_FOUND when named, as a missing one does; a conversation joined later is searched, one
// left is not.
func TestSearchMembersOnly(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	alice, bob, carol := aliceBobCarol(t, srv.Direct)
	ours := dbtest.Conversation(t, srv.Direct, "ours", alice, bob)
	theirs := dbtest.Conversation(t, srv.Direct, "theirs", bob, carol)
	send := func(user, conv int64, body string) string {
		var d struct{ SendMessage struct{ ID string } }
		gql(t, srv, user, sendMut, vars{"c": apptest.ID(conv), "b": body}, &d)
		return d.SendMessage.ID
	}
	oursHit := send(bob, ours, "The launch is on Friday")
	theirsHit := send(carol, theirs, "Friday's launch: keep it quiet")
	send(carol, theirs, "nothing to see")

	if diff := cmp.Diff([]string{oursHit}, searchIDs(t, srv, alice, "launch", nil)); diff != "" {
		t.Errorf("alice's search (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{theirsHit, oursHit}, searchIDs(t, srv, bob, "launch", nil)); diff != "" {
		t.Errorf("bob's search (-want +got):\n%s", diff)
	}
	for _, conv := range []string{apptest.ID(theirs), "999999"} {
		res := gqlRefused(t, srv, alice, searchQuery, vars{"q": "launch", "c": conv}, "NOT_FOUND")
		if string(res.Data) != "null" {
			t.Errorf("conversation %s: data %s", conv, res.Data)
		}
	}
	gqlRefused(t, srv, 0, searchQuery, vars{"q": "launch"}, "UNAUTHENTICATED")

	// Carol adds Alice to theirs (its history comes with it); Alice leaves ours.
	gql(t, srv, carol, addMembersMut, vars{"c": apptest.ID(theirs), "u": []string{apptest.ID(alice)}}, nil)
	ids := searchIDs(t, srv, alice, "launch", nil)
	if diff := cmp.Diff([]string{theirsHit, oursHit}, ids); diff != "" {
		t.Errorf("alice's search after joining (-want +got):\n%s", diff)
	}
	oursID := apptest.ID(ours)
	if got := searchIDs(t, srv, alice, "launch", &oursID); !cmp.Equal(got, []string{oursHit}) {
		t.Errorf("alice's search of ours: %v", got)
	}
	gql(t, srv, alice, leaveMut, vars{"c": oursID}, nil)
	if diff := cmp.Diff([]string{theirsHit}, searchIDs(t, srv, alice, "launch", nil)); diff != "" {
		t.Errorf("alice's search after leaving (-want +got):\n%s", diff)
	}
	gqlRefused(t, srv, alice, searchQuery, vars{"q": "launch", "c": oursID}, "NOT_FOUND")
}

// TestSearchFollowsEditsAndDeletes: an edited message is found by its new words and no longer
// by its old ones, a deleted one by none. A search of all the viewer's conversations is never
// stored by the response cache; one of a single conversation is, and is not served once the
// conversation has changed.
func TestSearchFollowsEditsAndDeletes(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	alice, bob := u[0], u[1]
	conv := dbtest.Conversation(t, srv.Direct, "reports", alice, bob)
	convID := apptest.ID(conv)
	var sent struct{ SendMessage struct{ ID string } }
	gql(t, srv, alice, sendMut, vars{"c": convID, "b": "the quarterly report is late"}, &sent)
	id := sent.SendMessage.ID
	var other struct{ SendMessage struct{ ID string } }
	gql(t, srv, bob, sendMut, vars{"c": convID, "b": "an unrelated message"}, &other)

	check := func(step string, want map[string][]string) {
		t.Helper()
		for query, ids := range want {
			// All conversations: executed every time, never stored.
			for range 2 {
				before := responseStats(t, srv)
				if got := searchIDs(t, srv, bob, query, nil); !cmp.Equal(got, ids, cmpopts.EquateEmpty()) {
					t.Errorf("%s: search %q: %v, want %v", step, query, got, ids)
				}
				if after := responseStats(t, srv); after.Hits != before.Hits || after.Uncacheable != before.Uncacheable+1 {
					t.Errorf("%s: search %q: response cache %+v, then %+v", step, query, before, after)
				}
			}
			// One conversation: stored, and served until the conversation changes.
			data := storedRead(t, srv, bob, searchQuery, vars{"q": query, "c": convID, "first": 100})
			if got := hitIDs(decode[searchPage](t, data).SearchMessages.Edges); !cmp.Equal(got, ids, cmpopts.EquateEmpty()) {
				t.Errorf("%s: search %q in the conversation: %v, want %v", step, query, got, ids)
			}
		}
	}
	check("sent", map[string][]string{"quarterly": {id}, "annual": nil, "report": {id}})
	gql(t, srv, alice, editMut, vars{"id": id, "b": "the annual summary is late"}, nil)
	check("edited", map[string][]string{"quarterly": nil, "annual": {id}, "late": {id}})
	gql(t, srv, alice, deleteMut, vars{"id": id}, nil)
	check("deleted", map[string][]string{"annual": nil, "late": nil, "summary or message": {other.SendMessage.ID}})

	var tsv string
	if err := srv.Direct.QueryRow(context.Background(), "SELECT tsv::text FROM messages WHERE id = $1", id).Scan(&tsv); err != nil || tsv != "" {
		t.Errorf("the tombstone's words: %q %v", tsv, err)
	}
}

// TestSearchPaging: 150 hits in three conversations, many sent in the same microsecond, come
// back newest first (by time, then id), each exactly once, 7 a page; arguments out of range
// are BAD_USER_INPUT; a query with nothing to look for finds nothing.
func TestSearchPaging(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	ctx := context.Background()
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	alice, bob := u[0], u[1]
	var convs []int64
	for _, title := range []string{"one", "two", "three"} {
		c := dbtest.Conversation(t, srv.Direct, title, alice, bob)
		dbtest.Messages(t, srv.Direct, c, []int64{alice, bob}, 60) // bodies "message <seq>"
		convs = append(convs, c)
	}
	other := dbtest.Conversation(t, srv.Direct, "not alice's", bob)
	dbtest.Messages(t, srv.Direct, other, []int64{bob}, 30)
	// Ties: every second message of the first two conversations at one instant.
	if _, err := srv.Direct.Exec(ctx, `UPDATE messages SET created_at = '2026-01-02 03:04:05.678901+00'
		WHERE conversation_id = ANY($1) AND seq % 2 = 0`, convs[:2]); err != nil {
		t.Fatal(err)
	}
	// Every message of alice's three conversations is a hit.
	rows, err := srv.Direct.Query(ctx, `SELECT m.id::text FROM messages m WHERE m.conversation_id = ANY($1)
		ORDER BY m.created_at DESC, m.id DESC`, convs)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	if rows.Err() != nil || len(want) != 180 {
		t.Fatalf("%d messages (%v)", len(want), rows.Err())
	}

	hits := searchAll(t, srv, alice, "message", nil, 7)
	if diff := cmp.Diff(want, hitIDs(hits)); diff != "" {
		t.Fatalf("all hits (-want +got):\n%s", diff)
	}
	for _, h := range hits {
		if h.Snippet != "**message** "+strings.TrimPrefix(h.Node.Body, "message ") || h.Node.Sender.ID == "" {
			t.Fatalf("hit %+v", h)
		}
	}
	// One conversation, with the default page size.
	one := apptest.ID(convs[2])
	var d searchPage
	gql(t, srv, alice, searchQuery, vars{"q": "MESSAGE", "c": one}, &d)
	if got := d.SearchMessages.Edges; len(got) != 20 || got[0].Node.ConversationID != one || got[0].Node.Seq != 60 || !d.SearchMessages.PageInfo.HasNextPage {
		t.Fatalf("first page of one conversation: %+v", d.SearchMessages)
	}

	for name, v := range map[string]vars{
		"first 0":                           {"q": "message", "first": 0},
		"first 101":                         {"q": "message", "first": 101},
		"a forged cursor":                   {"q": "message", "after": "bm90IGEgY3Vyc29y"},
		"a history cursor":                  {"q": "message", "after": "bTox"},
		"an empty query":                    {"q": "   "},
		"201 characters":                    {"q": strings.Repeat("a", 201)},
		"a control character":               {"q": "mess\x00age"},
		"a newline":                         {"q": "message\nfoo"},
		"an invalid id":                     {"q": "message", "c": "0"},
		"a non-numeric id":                  {"q": "message", "c": "abc"},
		"first 0 in another's conversation": {"q": "message", "c": apptest.ID(other), "first": 0},
	} {
		t.Run(name, func(t *testing.T) {
			gqlRefused(t, srv, alice, searchQuery, v, "BAD_USER_INPUT")
		})
	}
	for _, q := range []string{"!!!", `"" -- ***`, "-message", "message or -seven", "<b>"} {
		var d searchPage
		gql(t, srv, alice, searchQuery, vars{"q": q}, &d)
		if len(d.SearchMessages.Edges) != 0 || d.SearchMessages.PageInfo.HasNextPage {
			t.Errorf("query %q found %+v", q, d.SearchMessages)
		}
	}
}

// TestSearchSnippets: a snippet shows the matching words between ** and **, the body's own
// asterisks escaped and its HTML and Markdown as written, around the first match of a long
// body; the node is the whole message, for historyAround.
func TestSearchSnippets(t *testing.T) {
	t.Parallel()
	srv := lifecycleServer(t)
	u := dbtest.Users(t, srv.Direct, "Alice")
	alice := u[0]
	conv := dbtest.Conversation(t, srv.Direct, "snippets", alice)
	long := strings.Repeat("lorem ipsum ", 20) + "the Deploy failed, deploy again " + strings.Repeat("dolor sit ", 20)
	for _, tc := range []struct{ body, query, snippet string }{
		{"Use <b>bold</b> & **stars**\nto <script>deploy()</script> [it](http://x)", "stars bold",
			`Use <b>**bold**</b> & \*\***stars**\*\* to <script>deploy()</script> [it](http://x)`},
		{`a\b *deploy* c`, "deploy", `a\\b \***deploy**\* c`},
		{"Café CAFÉ café naïve", "café", "**Café** **CAFÉ** **café** naïve"},
		{long, `"deploy again"`, "…lorem ipsum lorem ipsum lorem ipsum the **Deploy** failed, **deploy** **again**" + strings.Repeat(" dolor sit", 9) + "…"},
	} {
		var sent struct{ SendMessage struct{ ID string } }
		gql(t, srv, alice, sendMut, vars{"c": apptest.ID(conv), "b": tc.body}, &sent)
		var d searchPage
		gql(t, srv, alice, searchQuery, vars{"q": tc.query, "first": 1}, &d)
		edges := d.SearchMessages.Edges
		if len(edges) != 1 {
			t.Fatalf("search %q: %+v", tc.query, d.SearchMessages)
		}
		if got := edges[0].Snippet; got != tc.snippet {
			t.Errorf("search %q (-want +got):\n%s", tc.query, cmp.Diff(tc.snippet, got))
		}
		n := edges[0].Node
		if n.ID != sent.SendMessage.ID || n.Body != strings.TrimSpace(tc.body) || n.ConversationID != apptest.ID(conv) || n.Sender.ID != apptest.ID(alice) || n.Sender.Name != "Alice" || n.Seq < 1 {
			t.Errorf("search %q: node %+v", tc.query, n)
		}
	}
}
