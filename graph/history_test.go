package graph_test

import (
	"fmt"
	"slices"
	"strconv"
	"testing"

	"github.com/threadline/threadline/db/dbtest"
)

type message struct {
	ID     string `json:"id"`
	Seq    int    `json:"seq"`
	Body   string `json:"body"`
	Sender struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"sender"`
	ConversationID  string  `json:"conversationId"`
	CreatedAt       string  `json:"createdAt"`
	ClientMessageID *string `json:"clientMessageId"`
}

const pageQuery = `query($id: ID!, $limit: Int, $offset: Int) {
  conversation(id: $id) {
    messages(limit: $limit, offset: $offset) { items { id seq body createdAt conversationId sender { id name } } limit offset hasMore }
  }
}`

type pageData struct {
	Conversation *struct {
		Messages struct {
			Items   []message `json:"items"`
			Limit   int       `json:"limit"`
			Offset  int       `json:"offset"`
			HasMore bool      `json:"hasMore"`
		} `json:"messages"`
	} `json:"conversation"`
}

const historyQuery = `query($id: ID!, $first: Int, $before: String) {
  conversation(id: $id) {
    history(first: $first, before: $before) {
      edges { cursor node { seq body sender { name } } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
}`

type historyData struct {
	Conversation *struct {
		History struct {
			Edges []struct {
				Cursor string  `json:"cursor"`
				Node   message `json:"node"`
			} `json:"edges"`
			PageInfo struct {
				HasNextPage     bool    `json:"hasNextPage"`
				HasPreviousPage bool    `json:"hasPreviousPage"`
				StartCursor     *string `json:"startCursor"`
				EndCursor       *string `json:"endCursor"`
			} `json:"pageInfo"`
		} `json:"history"`
	} `json:"conversation"`
}

// fixture: alice and bob in one conversation of n messages, carol outside it.
type fixture struct {
	alice, bob, carol int64
	conv              int64
}

func newFixture(t testing.TB, e *env, n int) fixture {
	ids := dbtest.Users(t, e.direct, "Alice", "Bob", "Carol")
	f := fixture{alice: ids[0], bob: ids[1], carol: ids[2]}
	f.conv = dbtest.Conversation(t, e.direct, "General", f.alice, f.bob)
	dbtest.Messages(t, e.direct, f.conv, []int64{f.alice, f.bob}, n)
	return f
}

func TestMessagesPageNewestFirstWithSenders(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 120)

	var d pageData
	e.as(f.alice, pageQuery, map[string]any{"id": f.conv, "limit": 50, "offset": 0}, &d)
	page := d.Conversation.Messages
	if len(page.Items) != 50 || !page.HasMore || page.Limit != 50 || page.Offset != 0 {
		t.Fatalf("page: %d items, hasMore %v, limit %d, offset %d", len(page.Items), page.HasMore, page.Limit, page.Offset)
	}
	for i, m := range page.Items {
		wantSeq := 120 - i
		if m.Seq != wantSeq || m.Body != fmt.Sprintf("message %d", wantSeq) {
			t.Fatalf("item %d: seq %d body %q, want seq %d", i, m.Seq, m.Body, wantSeq)
		}
		wantSender := "Alice"
		if (wantSeq-1)%2 == 1 {
			wantSender = "Bob"
		}
		if m.Sender.Name != wantSender || m.ConversationID != strconv.FormatInt(f.conv, 10) {
			t.Fatalf("item %d: sender %q conversation %s", i, m.Sender.Name, m.ConversationID)
		}
	}

	// The last page: offset 100 holds seq 20..1 and nothing more.
	e.as(f.alice, pageQuery, map[string]any{"id": f.conv, "limit": 50, "offset": 100}, &d)
	page = d.Conversation.Messages
	if len(page.Items) != 20 || page.HasMore || page.Items[0].Seq != 20 || page.Items[19].Seq != 1 {
		t.Fatalf("last page: %d items, hasMore %v", len(page.Items), page.HasMore)
	}
	// Past the end: empty.
	e.as(f.alice, pageQuery, map[string]any{"id": f.conv, "limit": 10, "offset": 500}, &d)
	if n := len(d.Conversation.Messages.Items); n != 0 || d.Conversation.Messages.HasMore {
		t.Fatalf("past the end: %d items", n)
	}
}

func TestHistoryPagesBackToTheFirstMessage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 123)

	var seen []int
	var before any
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("history did not end")
		}
		var d historyData
		e.as(f.bob, historyQuery, map[string]any{"id": f.conv, "first": 25, "before": before}, &d)
		h := d.Conversation.History
		for _, edge := range h.Edges {
			seen = append(seen, edge.Node.Seq)
		}
		if (pages > 0) != h.PageInfo.HasPreviousPage {
			t.Fatalf("page %d: hasPreviousPage %v", pages, h.PageInfo.HasPreviousPage)
		}
		if !h.PageInfo.HasNextPage {
			break
		}
		before = *h.PageInfo.EndCursor
	}
	want := make([]int, 123)
	for i := range want {
		want[i] = 123 - i
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("history seqs: got %v, want 123..1 with no gap or repeat", seen)
	}
}

func TestSendMessageAppearsAtOffsetZero(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 60)

	var sent struct {
		SendMessage message `json:"sendMessage"`
	}
	e.as(f.bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "  hello there  ", clientMessageId: "m-1"}) { id seq body sender { name } clientMessageId conversationId } }`,
		map[string]any{"c": f.conv}, &sent)
	if sent.SendMessage.Seq != 61 || sent.SendMessage.Body != "hello there" || sent.SendMessage.Sender.Name != "Bob" ||
		sent.SendMessage.ClientMessageID == nil || *sent.SendMessage.ClientMessageID != "m-1" {
		t.Fatalf("sendMessage returned %+v", sent.SendMessage)
	}
	var d pageData
	e.as(f.alice, pageQuery, map[string]any{"id": f.conv, "limit": 5, "offset": 0}, &d)
	if got := d.Conversation.Messages.Items[0]; got.ID != sent.SendMessage.ID || got.Seq != 61 {
		t.Fatalf("offset 0 starts with %+v, want the sent message", got)
	}
	var last struct {
		Conversation struct {
			LastMessage message `json:"lastMessage"`
		} `json:"conversation"`
	}
	e.as(f.alice, `query($id: ID!) { conversation(id: $id) { lastMessage { id seq } } }`, map[string]any{"id": f.conv}, &last)
	if last.Conversation.LastMessage.ID != sent.SendMessage.ID {
		t.Fatalf("lastMessage %+v", last.Conversation.LastMessage)
	}
}

func TestStatementsPerPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 80)

	for _, tc := range []struct {
		name  string
		query string
		vars  map[string]any
		max   int
	}{
		// The conversation, the membership check and the page: one statement.
		{"messages", `query($id: ID!) { conversation(id: $id) { messages(limit: 50) { items { id body sender { name } } } } }`, map[string]any{"id": f.conv}, 1},
		{"history", `query($id: ID!) { conversation(id: $id) { history(first: 50) { edges { node { id body sender { name } } } } } }`, map[string]any{"id": f.conv}, 1},
		{"timeline", `query($id: ID!) { conversation(id: $id) { timeline(first: 50) { edges { node { id body sender { name } } } } } }`, map[string]any{"id": f.conv}, 1},
		{"two conversations", `query($id: ID!, $other: ID!) { a: conversation(id: $id) { messages(limit: 50) { items { id } } }
			b: conversation(id: $other) { messages(limit: 5) { items { id } } } }`, map[string]any{"id": f.conv, "other": f.conv + 1000}, 1},
		// A page by cursor: the same one statement, to its cursor.
		{"history before", `query($id: ID!, $b: String) { conversation(id: $id) { history(first: 50, before: $b) { edges { node { id body sender { name } } } } } }`, map[string]any{"id": f.conv, "b": cursorOf(t, e, f)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.resetStatements()
			e.as(f.alice, tc.query, tc.vars, nil)
			if got := e.statementsSeen(); len(got) > tc.max {
				t.Fatalf("a page with senders cost %d statements, want at most %d: %v", len(got), tc.max, got)
			}
		})
	}
}

// cursorOf returns a cursor in the middle of the fixture's history.
func cursorOf(t *testing.T, e *env, f fixture) string {
	var d historyData
	e.as(f.alice, historyQuery, map[string]any{"id": f.conv, "first": 10}, &d)
	return *d.Conversation.History.PageInfo.EndCursor
}

func TestConversationsListLatestActivityFirst(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := dbtest.Users(t, e.direct, "Alice", "Bob")
	var convs []int64
	for i := range 5 {
		c := dbtest.Conversation(t, e.direct, fmt.Sprintf("c%d", i), ids[0], ids[1])
		convs = append(convs, c)
	}
	other := dbtest.Conversation(t, e.direct, "bob only", ids[1])
	_ = other
	// Activity order: a message to convs[2] last makes it the latest.
	for _, c := range []int64{convs[0], convs[4], convs[2]} {
		e.as(ids[0], `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "hi"}) { id } }`, map[string]any{"c": c}, nil)
	}
	type listData struct {
		Conversations struct {
			Edges []struct {
				Node struct {
					ID    string `json:"id"`
					Title string `json:"title"`
				} `json:"node"`
			} `json:"edges"`
			PageInfo struct {
				HasNextPage bool    `json:"hasNextPage"`
				EndCursor   *string `json:"endCursor"`
			} `json:"pageInfo"`
		} `json:"conversations"`
	}
	var got []string
	var after any
	for range 5 {
		var d listData
		e.as(ids[0], `query($after: String) { conversations(first: 2, after: $after) { edges { node { id title } } pageInfo { hasNextPage endCursor } } }`,
			map[string]any{"after": after}, &d)
		for _, edge := range d.Conversations.Edges {
			got = append(got, edge.Node.Title)
		}
		if !d.Conversations.PageInfo.HasNextPage {
			break
		}
		after = *d.Conversations.PageInfo.EndCursor
	}
	// Sent to last: c2, c4, c0; then the untouched ones, newest created first: c3, c1.
	want := []string{"c2", "c4", "c0", "c3", "c1"}
	if !slices.Equal(got, want) {
		t.Fatalf("conversations: got %v, want %v", got, want)
	}
}

func TestMembersAndMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 3)
	var d struct {
		Me           struct{ Name string } `json:"me"`
		Conversation struct {
			Title   string `json:"title"`
			Members []struct {
				Name string `json:"name"`
			} `json:"members"`
		} `json:"conversation"`
	}
	e.as(f.bob, `query($id: ID!) { me { name } conversation(id: $id) { title members { name } } }`, map[string]any{"id": f.conv}, &d)
	if d.Me.Name != "Bob" || d.Conversation.Title != "General" || len(d.Conversation.Members) != 2 ||
		d.Conversation.Members[0].Name != "Alice" || d.Conversation.Members[1].Name != "Bob" {
		t.Fatalf("got %+v", d)
	}
}

func TestCreateConversation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := dbtest.Users(t, e.direct, "Alice", "Bob", "Carol")
	var d struct {
		CreateConversation struct {
			ID      string `json:"id"`
			Title   string `json:"title"`
			Members []struct {
				ID string `json:"id"`
			} `json:"members"`
			LastMessage *message `json:"lastMessage"`
		} `json:"createConversation"`
	}
	e.as(ids[0], `mutation($m: [ID!]) { createConversation(input: {title: " Plans ", memberIds: $m}) { id title members { id } lastMessage { id } } }`,
		map[string]any{"m": []string{strconv.FormatInt(ids[1], 10), strconv.FormatInt(ids[1], 10), strconv.FormatInt(ids[0], 10)}}, &d)
	c := d.CreateConversation
	if c.Title != "Plans" || len(c.Members) != 2 || c.LastMessage != nil {
		t.Fatalf("created %+v", c)
	}
	// Carol is not a member: the new conversation is invisible to her.
	var v struct {
		Conversation *struct{ ID string } `json:"conversation"`
	}
	e.as(ids[2], `query($id: ID!) { conversation(id: $id) { id } }`, map[string]any{"id": c.ID}, &v)
	if v.Conversation != nil {
		t.Fatal("a non-member sees the new conversation")
	}
}
