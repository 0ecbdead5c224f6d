package graph_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/graph/client"
)

func ptr[T any](v T) *T { return &v }

// TestGoClient runs the API's main flows through the generated Go client (graph/client):
// the viewer, creating a conversation, sending (and retrying) messages, both kinds of history
// page, the conversation list, and the errors a client must be able to read.
func TestGoClient(t *testing.T) {
	t.Parallel()
	goClientFlows(t, newEnv(t))
}

// With TRUSTED_DOCUMENTS_ONLY the same flows work: the Go client sends only the documents of
// the trusted-document manifest. Any other document is refused before it is parsed.
func TestGoClientTrustedDocumentsOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{trustedOnly: true})
	goClientFlows(t, e)
	for _, q := range []string{`{ me { id name } }`, `{ this is not GraphQL`} {
		resp := e.do("Bearer "+e.token(1), q, nil)
		if len(resp.Errors) != 1 || resp.codes()[0] != "BAD_USER_INPUT" || !strings.Contains(resp.Errors[0].Message, "trusted") {
			t.Fatalf("%s: %+v", q, resp.Errors)
		}
	}
}

func goClientFlows(t *testing.T, e *env) {
	f := newFixture(t, e, 3)
	ctx := context.Background()
	endpoint := e.URL + "/query"
	alice := client.New(endpoint, e.token(f.alice), http.DefaultClient)
	carol := client.New(endpoint, e.token(f.carol), http.DefaultClient)
	anonymous := client.New(endpoint, "", http.DefaultClient)

	viewer, err := client.Viewer(ctx, alice)
	if err != nil || viewer.Me.Name != "Alice" || viewer.Me.Id != fmt.Sprint(f.alice) {
		t.Fatalf("Viewer: %+v, %v", viewer, err)
	}

	created, err := client.CreateConversation(ctx, alice, client.CreateConversationInput{
		Title: "  Planning  ", MemberIds: []string{fmt.Sprint(f.bob)},
	})
	if err != nil {
		t.Fatalf("CreateConversation: %v", err)
	}
	conv := created.CreateConversation
	var members []string
	for _, m := range conv.Members {
		members = append(members, m.Name)
	}
	slices.Sort(members)
	if conv.Title != "Planning" || !slices.Equal(members, []string{"Alice", "Bob"}) || conv.LastMessage != nil ||
		time.Since(conv.CreatedAt) > time.Minute {
		t.Fatalf("created %+v (members %v)", conv, members)
	}

	// Three messages; the retry of the second returns it again and adds nothing.
	var sent []client.MessageFields
	for i, body := range []string{"one", "two", "three"} {
		res, err := client.SendMessage(ctx, alice, client.SendMessageInput{
			ConversationId: conv.Id, Body: body, ClientMessageId: ptr(fmt.Sprintf("c-%d", i)),
		})
		if err != nil {
			t.Fatalf("SendMessage %s: %v", body, err)
		}
		sent = append(sent, res.SendMessage)
	}
	retry, err := client.SendMessage(ctx, alice, client.SendMessageInput{ConversationId: conv.Id, Body: "two", ClientMessageId: ptr("c-1")})
	if err != nil || retry.SendMessage.Id != sent[1].Id || retry.SendMessage.Seq != 2 {
		t.Fatalf("retry: %+v, %v; want the original %+v", retry, err, sent[1])
	}
	for i, m := range sent {
		if m.Seq != i+1 || m.ConversationId != conv.Id || m.Sender.Name != "Alice" || *m.ClientMessageId != fmt.Sprintf("c-%d", i) {
			t.Errorf("sent[%d] = %+v", i, m)
		}
	}

	// Offset pages, newest first.
	page, err := client.MessagesPage(ctx, alice, conv.Id, ptr(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(page.Conversation.Messages.Items); !slices.Equal(got, []int{3, 2}) || !page.Conversation.Messages.HasMore ||
		page.Conversation.Messages.Offset != 0 {
		t.Errorf("first page: seqs %v, %+v", got, page.Conversation.Messages)
	}
	page, err = client.MessagesPage(ctx, alice, conv.Id, ptr(2), ptr(2))
	if err != nil {
		t.Fatal(err)
	}
	if got := seqs(page.Conversation.Messages.Items); !slices.Equal(got, []int{1}) || page.Conversation.Messages.HasMore {
		t.Errorf("second page: seqs %v, hasMore %v", got, page.Conversation.Messages.HasMore)
	}

	// Cursor pages.
	hist, err := client.History(ctx, alice, conv.Id, ptr(2), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := hist.Conversation.History
	if len(h.Edges) != 2 || h.Edges[0].Node.Seq != 3 || !h.PageInfo.HasNextPage || h.PageInfo.EndCursor == nil {
		t.Fatalf("history: %+v", h)
	}
	hist, err = client.History(ctx, alice, conv.Id, ptr(2), h.PageInfo.EndCursor)
	if err != nil {
		t.Fatal(err)
	}
	if h := hist.Conversation.History; len(h.Edges) != 1 || h.Edges[0].Node.Seq != 1 || h.PageInfo.HasNextPage {
		t.Fatalf("older history: %+v", h)
	}

	// The list: the new conversation has the latest activity.
	list, err := client.Conversations(ctx, alice, ptr(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	edges := list.Conversations.Edges
	if len(edges) != 1 || edges[0].Node.Id != conv.Id || edges[0].Node.LastMessage == nil || edges[0].Node.LastMessage.Seq != 3 ||
		!list.Conversations.PageInfo.HasNextPage {
		t.Fatalf("conversations: %+v", list.Conversations)
	}
	list, err = client.Conversations(ctx, alice, ptr(10), list.Conversations.PageInfo.EndCursor)
	if err != nil {
		t.Fatal(err)
	}
	if edges := list.Conversations.Edges; len(edges) != 1 || edges[0].Node.Id != fmt.Sprint(f.conv) {
		t.Fatalf("second page of conversations: %+v", list.Conversations)
	}
	latest, err := client.LatestConversations(ctx, alice, ptr(5), ptr(2))
	if err != nil {
		t.Fatal(err)
	}
	if edges := latest.Conversations.Edges; len(edges) != 2 || len(edges[0].Node.Messages.Items) != 2 || len(edges[1].Node.Messages.Items) != 2 {
		t.Fatalf("latest conversations: %+v", latest.Conversations)
	}

	// A non-member sees null, exactly as for a conversation that does not exist.
	for _, id := range []string{conv.Id, "999999"} {
		got, err := client.Conversation(ctx, carol, id)
		if err != nil || got.Conversation != nil {
			t.Errorf("Conversation(%s) as Carol: %+v, %v; want null", id, got.Conversation, err)
		}
	}
	got, err := client.Conversation(ctx, alice, conv.Id)
	if err != nil || got.Conversation == nil || len(got.Conversation.Members) != 2 {
		t.Errorf("Conversation as Alice: %+v, %v", got, err)
	}

	// Errors come back with their codes.
	if _, err := client.Viewer(ctx, anonymous); !slices.Equal(client.ErrorCodes(err), []string{"UNAUTHENTICATED"}) {
		t.Errorf("anonymous Viewer: %v (codes %v)", err, client.ErrorCodes(err))
	}
	if _, err := client.SendMessage(ctx, alice, client.SendMessageInput{ConversationId: conv.Id, Body: "   "}); !slices.Equal(client.ErrorCodes(err), []string{"BAD_USER_INPUT"}) {
		t.Errorf("blank body: %v (codes %v)", err, client.ErrorCodes(err))
	}
	if _, err := client.SendMessage(ctx, carol, client.SendMessageInput{ConversationId: conv.Id, Body: "hi"}); !slices.Equal(client.ErrorCodes(err), []string{"NOT_FOUND"}) {
		t.Errorf("non-member send: %v (codes %v)", err, client.ErrorCodes(err))
	}
	if client.ErrorCodes(nil) != nil {
		t.Error("ErrorCodes(nil) is not nil")
	}
}

func seqs(items []client.MessageFields) []int {
	out := make([]int, len(items))
	for i, m := range items {
		out[i] = m.Seq
	}
	return out
}
