package graph_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/internal/testenv"
)

// convPageFields are the fields a page query may select on a conversation, and
// convMessageFields on its messages, for random selections.
var (
	convPageFields    = []string{"id", "title", "createdAt", "lastEventSeq", "__typename", "lastMessage { seq body }"}
	convMessageFields = []string{"id", "seq", "body", "createdAt", "editedAt", "deletedAt", "version", "clientMessageId",
		"sender { id name }", "reactions { emoji count }", "conversationId"}
)

// randomPageQuery returns a conversation(id:) query selecting a random part of the fields, with
// a page of random limit and offset.
func randomPageQuery(rnd *rand.Rand) string {
	pick := func(fields []string) string {
		var out []string
		for _, f := range fields {
			if rnd.IntN(2) == 0 {
				out = append(out, f)
			}
		}
		if len(out) == 0 {
			out = fields[:1]
		}
		return strings.Join(out, " ")
	}
	return fmt.Sprintf(`query($id: ID!) { conversation(id: $id) { %s messages(limit: %d, offset: %d) { items { %s } hasMore limit offset } } }`,
		pick(convPageFields), 1+rnd.IntN(60), rnd.IntN(3)*10, pick(convMessageFields))
}

// TestCachedConversationPageMatchesTheDatabase: with the history cache on, a conversation read
// with its page is answered from Redis with no SQL statement once warm, and its bytes are the
// bytes of the cold read (from PostgreSQL, one statement) and of the path the cache replaces
// (the conversation read from PostgreSQL, selected here through viewerLastReadSeq, which the
// cache does not keep), for random selections. A non-member sees null every time.
func TestCachedConversationPageMatchesTheDatabase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{cache: true})
	f := newFixture(t, e, 70)
	e.as(f.alice, `mutation($c: ID!) { renameConversation(conversationId: $c, title: "Général ✓") { id } }`, map[string]any{"c": f.conv}, nil)
	e.as(f.alice, `{ __typename }`, nil, nil) // records presence before counting
	e.as(f.carol, `{ __typename }`, nil, nil)
	vars := map[string]any{"id": f.conv}
	read := func(user int64, q string) (json.RawMessage, []string) {
		t.Helper()
		e.resetStatements()
		resp := e.do("Bearer "+e.token(user), q, vars)
		if len(resp.Errors) > 0 {
			t.Fatalf("%s: %+v", q, resp.Errors)
		}
		return resp.Data, e.statementsSeen()
	}
	rnd := rand.New(rand.NewPCG(7, 11))
	for i := range 40 {
		q := randomPageQuery(rnd)
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			e.rdb.FlushAll(t.Context())
			cold, coldStmts := read(f.alice, q)
			if diff := cmp.Diff([]string{"ConversationPagesForMember"}, coldStmts); diff != "" {
				t.Errorf("cold read statements (-want +got):\n%s", diff)
			}
			warm, warmStmts := read(f.alice, q)
			if len(warmStmts) != 0 {
				t.Errorf("warm read ran %v, want no statement", warmStmts)
			}
			if diff := cmp.Diff(string(cold), string(warm)); diff != "" {
				t.Errorf("%s\nwarm read differs from the cold one (-want +got):\n%s", q, diff)
			}
			// The replaced path: the conversation from PostgreSQL, the page from the cache.
			oldQ := strings.Replace(q, "{ conversation(id: $id)", "{ rp: conversation(id: $id) { viewerLastReadSeq } conversation(id: $id)", 1)
			both, oldStmts := read(f.alice, oldQ)
			if diff := cmp.Diff([]string{"ConversationsByIDForMember"}, oldStmts); diff != "" {
				t.Errorf("replaced path statements (-want +got):\n%s", diff)
			}
			var parts map[string]json.RawMessage
			if err := json.Unmarshal(both, &parts); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(`{"conversation":`+string(parts["conversation"])+`}`, string(warm)); diff != "" {
				t.Errorf("%s\ncached read differs from the replaced path (-want +got):\n%s", q, diff)
			}
			for range 2 {
				if got, _ := read(f.carol, q); string(got) != `{"conversation":null}` {
					t.Errorf("non-member read %s", got)
				}
			}
		})
	}
}

// TestCachedConversationSeesChanges: with the history cache on, and the reader's page warm
// (answered from Redis), the next read after a change sees it: a rename, a message, a member
// removed or leaving (their conversation is null at once), a member added.
func TestCachedConversationSeesChanges(t *testing.T) {
	t.Parallel()
	const q = `query($id: ID!) { conversation(id: $id) { title lastEventSeq messages(limit: 5) { items { seq body } } } }`
	type page struct {
		Conversation *struct {
			Title        string
			LastEventSeq int
			Messages     struct{ Items []struct{ Seq int } }
		}
	}
	for _, tc := range []struct {
		name     string
		mutation func(e *env, f fixture) // as a member
		reader   func(f fixture) int64
		check    func(t *testing.T, before, after page)
	}{
		{"title edited", func(e *env, f fixture) {
			e.as(f.bob, `mutation($c: ID!) { renameConversation(conversationId: $c, title: "Renamed") { id } }`, map[string]any{"c": f.conv}, nil)
		}, func(f fixture) int64 { return f.alice }, func(t *testing.T, before, after page) {
			if after.Conversation == nil || after.Conversation.Title != "Renamed" || after.Conversation.LastEventSeq <= before.Conversation.LastEventSeq {
				t.Errorf("after the rename: %+v, before %+v", after.Conversation, before.Conversation)
			}
		}},
		{"message sent", func(e *env, f fixture) {
			e.as(f.bob, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "new"}) { seq } }`, map[string]any{"c": f.conv}, nil)
		}, func(f fixture) int64 { return f.alice }, func(t *testing.T, before, after page) {
			if after.Conversation == nil || after.Conversation.Messages.Items[0].Seq != before.Conversation.Messages.Items[0].Seq+1 ||
				after.Conversation.LastEventSeq != before.Conversation.LastEventSeq+1 {
				t.Errorf("after the send: %+v, before %+v", after.Conversation, before.Conversation)
			}
		}},
		{"member removed", func(e *env, f fixture) {
			e.as(f.alice, `mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }`, map[string]any{"c": f.conv, "u": f.bob}, nil)
		}, func(f fixture) int64 { return f.bob }, func(t *testing.T, before, after page) {
			if before.Conversation == nil || after.Conversation != nil {
				t.Errorf("removed member reads %+v (before: %+v), want null", after.Conversation, before.Conversation)
			}
		}},
		{"member left", func(e *env, f fixture) {
			e.as(f.bob, `mutation($c: ID!) { leaveConversation(conversationId: $c) }`, map[string]any{"c": f.conv}, nil)
		}, func(f fixture) int64 { return f.bob }, func(t *testing.T, before, after page) {
			if before.Conversation == nil || after.Conversation != nil {
				t.Errorf("member who left reads %+v (before: %+v), want null", after.Conversation, before.Conversation)
			}
		}},
		{"member added", func(e *env, f fixture) {
			e.as(f.alice, `mutation($c: ID!, $u: [ID!]!) { addMembers(conversationId: $c, userIds: $u) { id } }`, map[string]any{"c": f.conv, "u": []int64{f.carol}}, nil)
		}, func(f fixture) int64 { return f.carol }, func(t *testing.T, before, after page) {
			if before.Conversation != nil || after.Conversation == nil || after.Conversation.Title != "General" {
				t.Errorf("added member reads %+v (before: %+v)", after.Conversation, before.Conversation)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{cache: true})
			f := newFixture(t, e, 30)
			reader := tc.reader(f)
			vars := map[string]any{"id": f.conv}
			var before page
			e.as(reader, q, vars, &before)
			e.resetStatements()
			e.as(reader, q, vars, &before) // a hit for a member
			if s := e.statementsSeen(); before.Conversation != nil && len(s) != 0 {
				t.Fatalf("the warm read ran %v", s)
			}
			tc.mutation(e, f)
			var after page
			e.as(reader, q, vars, &after)
			tc.check(t, before, after)
			var again page
			e.as(reader, q, vars, &again) // and from the cache
			if diff := cmp.Diff(after, again); diff != "" {
				t.Errorf("second read after the change (-first +second):\n%s", diff)
			}
		})
	}
}

// TestCachedConversationWithRedisDown: with Redis stopped, conversation pages come from
// PostgreSQL, and are right: a rename and a removal made meanwhile are seen, and a non-member
// still reads null.
func TestCachedConversationWithRedisDown(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skips under -short
	rds := apptest.StartRedis(t)
	e := newEnv(t, envOptions{cache: true, redisURL: rds.URL()})
	f := newFixture(t, e, 20)
	const q = `query($id: ID!) { conversation(id: $id) { title messages(limit: 3) { items { seq } } } }`
	vars := map[string]any{"id": f.conv}
	type page struct {
		Conversation *struct {
			Title    string
			Messages struct{ Items []struct{ Seq int } }
		}
	}
	for range 2 { // warm
		e.as(f.bob, q, vars, nil)
		e.as(f.alice, q, vars, nil)
	}
	rds.Stop(t)
	e.as(f.alice, `mutation($c: ID!) { renameConversation(conversationId: $c, title: "Down") { id } }`, map[string]any{"c": f.conv}, nil)
	e.as(f.alice, `mutation($c: ID!, $u: ID!) { removeMember(conversationId: $c, userId: $u) { id } }`, map[string]any{"c": f.conv, "u": f.bob}, nil)
	var a, b, c page
	e.as(f.alice, q, vars, &a)
	e.as(f.bob, q, vars, &b)
	e.as(f.carol, q, vars, &c)
	if a.Conversation == nil || a.Conversation.Title != "Down" || a.Conversation.Messages.Items[0].Seq != 20 {
		t.Errorf("member reads %+v with Redis down", a.Conversation)
	}
	if b.Conversation != nil || c.Conversation != nil {
		t.Errorf("removed member reads %+v, non-member %+v, want null", b.Conversation, c.Conversation)
	}
}
