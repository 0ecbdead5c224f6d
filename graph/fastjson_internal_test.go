package graph

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/go-cmp/cmp"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/internal/chat"
)

// Every plain field (no resolver, no argument, not an interface) of the types the fast path
// writes is known to it; a new one would otherwise quietly send those lists back to gqlgen.
func TestFastMarshalKnowsEveryPlainField(t *testing.T) {
	for typeName, fields := range known {
		shape, ok := objectShapes[typeName]
		if !ok {
			t.Fatalf("no shape for %s", typeName)
		}
		for name, f := range shape.fields {
			if f.concurrent || f.abstract {
				continue
			}
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s is a plain field the fast path does not write", typeName, name)
			}
			if f.object != "" && children[name] != f.object {
				t.Errorf("%s.%s is a %s, the fast path writes it as a %q", typeName, name, f.object, children[name])
			}
		}
		for name := range fields {
			if f, ok := shape.fields[name]; name != "__typename" && (!ok || f.concurrent) {
				t.Errorf("the fast path writes %s.%s, which is not a plain field of the schema", typeName, name)
			}
		}
	}
	// The fields with a resolver that the fast path resolves itself are fields of the schema
	// with a resolver (see perViewer).
	for typeName, fields := range perViewer {
		for name := range fields {
			if f, ok := objectShapes[typeName].fields[name]; !ok || !f.concurrent {
				t.Errorf("the fast path resolves %s.%s, which is not a field with a resolver", typeName, name)
			}
		}
	}
	if got := slices.Sorted(maps.Keys(known)); !slices.Equal(got, []string{"Message", "MessageEdge", "Reaction", "User"}) {
		t.Fatalf("known types %v", got)
	}
}

// reactionsStore answers ReactionsOfUser with reactions, counting the calls; every other method
// of chat.Store is left out (nil), as the fast path calls none.
type reactionsStore struct {
	chat.Store
	calls     atomic.Int32
	reactions func() ([][]string, error)
}

func (s *reactionsStore) ReactionsOfUser(context.Context, int64, []int64, []int64) ([][]string, error) {
	s.calls.Add(1)
	return s.reactions()
}

// Reaction.viewerReacted is resolved by the fast path through the loader, as its resolver does;
// when the loader fails or panics, the list goes to gqlgen (ok=false), whose resolvers get the
// same answer from the loader and report it; a list without reactions reads nothing.
func TestFastMarshalViewerReacted(t *testing.T) {
	schema := NewExecutableSchema(Config{}).Schema()
	doc := gqlparser.MustLoadQueryWithRules(schema, `query($id: ID!) { conversation(id: $id) { messages(limit: 2) { items { id reactions { emoji viewerReacted } } } } }`, nil)
	op := doc.Operations[0]
	items := op.SelectionSet[0].(*ast.Field).SelectionSet[0].(*ast.Field).SelectionSet[0].(*ast.Field)
	opCtx := &graphql.OperationContext{Doc: doc, Operation: op, Variables: map[string]any{"id": "7"}}
	created := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	reacted := []*chat.Message{
		{ID: 1, ConversationID: 7, CreatedAt: created, Reactions: []chat.Reaction{
			{ConversationID: 7, MessageID: 1, Emoji: "👍", Count: 2}, {ConversationID: 7, MessageID: 1, Emoji: "🎉", Count: 1},
		}},
		{ID: 2, ConversationID: 7, CreatedAt: created},
	}
	plain := []*chat.Message{{ID: 3, ConversationID: 7, CreatedAt: created}}
	for _, tc := range []struct {
		name      string
		msgs      []*chat.Message
		reactions func() ([][]string, error)
		want      string // "" when the list goes to gqlgen
		wantCalls int32
	}{
		{"viewer reacted with one", reacted, func() ([][]string, error) { return [][]string{{"🎉"}}, nil },
			`[{"id":"1","reactions":[{"emoji":"👍","viewerReacted":false},{"emoji":"🎉","viewerReacted":true}]},{"id":"2","reactions":[]}]`, 1},
		{"viewer reacted with none", reacted, func() ([][]string, error) { return [][]string{nil}, nil },
			`[{"id":"1","reactions":[{"emoji":"👍","viewerReacted":false},{"emoji":"🎉","viewerReacted":false}]},{"id":"2","reactions":[]}]`, 1},
		{"loader fails", reacted, func() ([][]string, error) { return nil, errors.New("connection refused") }, "", 1},
		{"loader answers the wrong number of values", reacted, func() ([][]string, error) { return nil, nil }, "", 1},
		{"loader panics", reacted, func() ([][]string, error) { panic("boom") }, "", 1},
		{"no reactions", plain, func() ([][]string, error) { panic("not called") }, `[{"id":"3","reactions":[]}]`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &reactionsStore{reactions: tc.reactions}
			ctx := loader.With(context.Background(), loader.NewFactory(store, loader.Config{}).New(42))
			m, ok := fastMessages(ctx, opCtx, items.SelectionSet, tc.msgs)
			var got string
			if ok {
				var b bytes.Buffer
				m.MarshalGQL(&b)
				got = b.String()
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("written list (-want +got):\n%s", diff)
			}
			if n := store.calls.Load(); n != tc.wantCalls {
				t.Errorf("ReactionsOfUser called %d times, want %d", n, tc.wantCalls)
			}
		})
	}
}
