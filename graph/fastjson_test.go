package graph_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/graph"
)

// TestFastMarshalMatchesGqlgen: message lists written by the fast path (graph/fastjson.go) are
// byte-identical to gqlgen's, for random selections (aliases, fragments, @skip and @include,
// __typename, senders, reactions with viewerReacted, which the fast path resolves, User.online,
// a resolver that sends the list back to gqlgen) over messages with every kind of content: edited, deleted, with and without client ids
// and reactions (the viewer's and others'), bodies with quotes, backslashes, control characters
// and non-ASCII text; and over a conversation without reactions.
func TestFastMarshalMatchesGqlgen(t *testing.T) {
	// No response cache: both answers must be executed.
	srv := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.ResponseCacheEnabled = false }})
	u := dbtest.Users(t, srv.Direct, "Ann \"the\" \\ writer", "Bob 😀")
	alice, bob := u[0], u[1]
	conv := dbtest.Conversation(t, srv.Direct, "mixed", alice, bob)
	id := apptest.ID
	bodies := []string{"plain", "quote \" and \\ backslash", "tab\tnew\nline", "ünïcödé 😀 日本", "<b>html</b> & 'single'", "last"}
	var ids []string
	for i, b := range bodies {
		var out struct{ SendMessage struct{ ID string } }
		cid := fmt.Sprintf("client-%d", i)
		v := vars{"c": id(conv), "b": b}
		q := sendMut
		if i%2 == 0 {
			q = `mutation($c: ID!, $b: String!, $cid: String) { sendMessage(input: {conversationId: $c, body: $b, clientMessageId: $cid}) { id } }`
			v["cid"] = cid
		}
		gql(t, srv, []int64{alice, bob}[i%2], q, v, &out)
		ids = append(ids, out.SendMessage.ID)
	}
	gql(t, srv, alice, editMut, vars{"id": ids[0], "b": "edited \"body\""}, nil)
	gql(t, srv, bob, deleteMut, vars{"id": ids[1]}, nil)
	gql(t, srv, alice, addReactionMut, vars{"id": ids[2], "e": "👍"}, nil)
	gql(t, srv, bob, addReactionMut, vars{"id": ids[2], "e": "🎉"}, nil)
	gql(t, srv, bob, addReactionMut, vars{"id": ids[2], "e": "👍"}, nil)
	// Control characters the API refuses today may be in older rows: written as gqlgen would.
	if _, err := srv.Direct.Exec(context.Background(), "UPDATE messages SET body = $1 WHERE id = $2", "ctrl \x01\x1f\r end", ids[5]); err != nil {
		t.Fatal(err)
	}

	// A conversation without reactions: viewerReacted is resolved on none of its messages.
	quiet := dbtest.Conversation(t, srv.Direct, "quiet", alice, bob)
	for i, b := range []string{"no reactions", "here \"either\"", "ünïcödé"} {
		gql(t, srv, []int64{alice, bob}[i%2], sendMut, vars{"c": id(quiet), "b": b}, nil)
	}

	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 300 {
		sel := randomMessageSelection(rng) + " t: __typename @include(if: $yes)"
		var q string
		switch i % 3 {
		case 0:
			q = `query($id: ID!, $yes: Boolean!) { conversation(id: $id) { messages(limit: 20) { items { ` + sel + ` } } } }`
		case 1:
			q = `query($id: ID!, $yes: Boolean!) { conversation(id: $id) { timeline(first: 20) { edges { cursor ` + edgeExtra(rng) + ` node { ` + sel + ` } } } } }`
		default:
			q = `query($id: ID!, $yes: Boolean!) { conversation(id: $id) { history(first: 20) { edges { e: node { ` + sel + ` } c: cursor } } } }`
		}
		if strings.Contains(sel, "...M") {
			q += "\nfragment M on Message { id body }"
		}
		if strings.Contains(sel, "...U") {
			q += "\nfragment U on User { name id }"
		}
		if strings.Contains(sel, "...R") {
			q += "\nfragment R on Reaction { emoji viewerReacted }"
		}
		c := conv
		if rng.IntN(3) == 0 {
			c = quiet
		}
		v := vars{"id": id(c), "yes": true}
		graph.SetFastMarshal(true)
		before := graph.FastMarshalled()
		fast := rawQuery(t, srv, alice, q, v)
		viaResolver := strings.Contains(sel, "online")
		if took := graph.FastMarshalled() > before; took == viaResolver {
			t.Fatalf("selection %d: fast path taken %v, want %v: %s", i, took, !viaResolver, sel)
		}
		graph.SetFastMarshal(false)
		slow := rawQuery(t, srv, alice, q, v)
		graph.SetFastMarshal(true)
		if fast != slow {
			t.Fatalf("selection %d differs:\n%s\nfast: %s\ngqlgen: %s", i, q, fast, slow)
		}
	}
}

func edgeExtra(rng *rand.Rand) string {
	return []string{"", "__typename", "c2: cursor"}[rng.IntN(3)]
}

// randomMessageSelection returns a selection of Message fields.
func randomMessageSelection(rng *rand.Rand) string {
	plain := []string{"id", "seq", "conversationId", "body", "createdAt", "clientMessageId", "editedAt", "deletedAt", "version", "__typename"}
	var parts []string
	for range 1 + rng.IntN(6) {
		f := plain[rng.IntN(len(plain))]
		switch rng.IntN(10) {
		case 0:
			parts = append(parts, "a"+f+": "+f) // an alias per field: two fields under one alias conflict
		case 1:
			parts = append(parts, f+" @skip(if: $yes)")
		case 2:
			parts = append(parts, f+" @include(if: $yes)")
		default:
			parts = append(parts, f)
		}
	}
	switch rng.IntN(7) {
	case 0:
		parts = append(parts, "sender { id name }")
	case 1:
		parts = append(parts, "s: sender { ...U __typename }")
	case 2:
		parts = append(parts, "reactions { emoji count }")
	case 3:
		parts = append(parts, "reactions { emoji viewerReacted }") // a resolver the fast path runs
	case 4:
		parts = append(parts, "...M", "... on Message { version }")
	case 5:
		parts = append(parts, "sender { online }") // a resolver: gqlgen's path
	case 6:
		parts = append(parts, "r: reactions { v: viewerReacted ...R count __typename }")
	}
	return strings.Join(parts, " ")
}

// rawQuery returns the response body of query as user.
func rawQuery(t *testing.T, srv *apptest.Server, user int64, query string, v vars) string {
	t.Helper()
	res, err := srv.Client(user).Do(context.Background(), query, v)
	if err != nil || !res.OK() {
		t.Fatalf("%s: %v %+v", query, err, res.Errors)
	}
	return string(res.Body)
}
