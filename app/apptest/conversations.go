package apptest

import "testing"

// ConversationIDs returns the ids of the client's user's first conversations (at most first,
// latest activity first), failing the test when there are fewer than atLeast: the
// conversations a test over the seeded data (Seed) works in.
func (c *Client) ConversationIDs(t testing.TB, first, atLeast int) []string {
	t.Helper()
	var out struct {
		Conversations struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	c.Query(t, `query($first: Int!) { conversations(first: $first) { edges { node { id } } } }`,
		map[string]any{"first": first}, &out)
	var ids []string
	for _, e := range out.Conversations.Edges {
		ids = append(ids, e.Node.ID)
	}
	if len(ids) < atLeast {
		t.Fatalf("the user has %d conversations, want at least %d", len(ids), atLeast)
	}
	return ids
}

// The two requests of the tests' mixed loads of reads and writes (faults, shutdown, the
// cluster): a page of a conversation by offset (variables id and offset), and a sendMessage with
// a clientMessageId (variables conv, body and cmid) that answers the id and seq a retry with the
// same clientMessageId is checked against.
const (
	LoadReadQuery = `query($id: ID!, $offset: Int!) { conversation(id: $id) { id title
		messages(limit: 20, offset: $offset) { items { id seq body sender { name } } hasMore } } }`
	LoadSendQuery = `mutation($conv: ID!, $body: String!, $cmid: String!) {
		sendMessage(input: {conversationId: $conv, body: $body, clientMessageId: $cmid}) { id seq clientMessageId } }`
)
