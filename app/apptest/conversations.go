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
