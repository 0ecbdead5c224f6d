package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/internal/chat"
)

// selection is one step from a list field's elements down to its users: field selected on an
// object of type typ.
type selection struct{ typ, field string }

// Paths from a list field's elements to User.online.
var (
	onlineOfUsers       = []selection{{"User", "online"}}
	onlineOfMemberships = []selection{{"Membership", "user"}, {"User", "online"}}
	onlineOfUserEdges   = []selection{{"UserConnection", "edges"}, {"UserEdge", "node"}, {"User", "online"}}
)

// prefetchOnline reads, in one round trip, whether the users of a list field's items are online
// when the current field's selection reaches User.online through path. A list of users
// selecting online is marshalled one goroutine per element (graph/marshal_lists.go); their loads
// would batch by time, in as many round trips as the scheduler makes batches. A failure is left
// to the loads.
func prefetchOnline[T any](ctx context.Context, items []T, userID func(*T) int64, path []selection) {
	if len(items) == 0 || !selects(ctx, path) {
		return
	}
	ids := make([]int64, len(items))
	for i := range items {
		ids[i] = userID(&items[i])
	}
	_ = loader.PrefetchOnline(ctx, ids)
}

func idOfUser(u *chat.User) int64         { return u.ID }
func idOfMember(m *chat.Membership) int64 { return m.User.ID }

// selects reports whether the current field's selection reaches the last step of path, each
// step selected (under any alias, in fragments too) on what the previous one selected.
func selects(ctx context.Context, path []selection) bool {
	fc := graphql.GetFieldContext(ctx)
	opCtx := graphql.GetOperationContext(ctx)
	if fc == nil || opCtx == nil {
		return false
	}
	sel := fc.Field.Selections
	for _, step := range path {
		satisfies := append([]string{step.typ}, objectShapes[step.typ].implements...)
		var next ast.SelectionSet
		found := false
		for _, f := range graphql.CollectFields(opCtx, sel, satisfies) {
			if f.Name == step.field {
				found = true
				next = append(next, f.Selections...)
			}
		}
		if !found {
			return false
		}
		sel = next
	}
	return true
}
