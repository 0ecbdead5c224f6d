package graph

import (
	"context"
	"encoding/json"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
)

// Prefetching looks ahead in a query for what the resolvers will load, and loads it first, one
// statement per kind, into the operation's loaders. It covers the shapes that fan out over
// conversations: root `conversation(id:)` fields (any number of aliases) and the `conversations`
// list, each with their `messages`, `history` (first page), `lastMessage` and `members`. The
// resolvers then find everything cached, so such a query costs one statement per kind whatever
// the scheduling of gqlgen's goroutines, and a single-page request pays no batching window.
// Anything prefetching does not understand (or that fails) is left to the resolvers, which
// load it through the dataloaders and report errors as usual.

// prefetchOperation prefetches for the root conversation(id:) fields of a query.
func prefetchOperation(ctx context.Context) {
	opCtx := graphql.GetOperationContext(ctx)
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Query {
		return
	}
	if _, err := auth.Viewer(ctx); err != nil {
		return
	}
	type root struct {
		id     int64
		fields []graphql.CollectedField
	}
	var roots []root
	var ids []int64
	for _, f := range graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Query"}) {
		if f.Name != "conversation" {
			continue
		}
		id, err := model.UnmarshalID(f.ArgumentMap(opCtx.Variables)["id"])
		if err != nil {
			continue
		}
		roots = append(roots, root{id: id, fields: graphql.CollectFields(opCtx, f.Selections, []string{"Conversation"})})
		ids = append(ids, id)
	}
	if len(ids) == 0 || loader.PrefetchConversations(ctx, ids) != nil {
		return
	}
	var wants conversationWants
	for _, r := range roots {
		if conv, err := loader.Conversation(ctx, r.id); err == nil && conv != nil {
			wants.add(opCtx, r.id, r.fields)
		}
	}
	wants.prefetch(ctx)
}

// prefetchConversationList prefetches for the conversations of a `conversations` list field.
func prefetchConversationList(ctx context.Context, convs []chat.Conversation) {
	loader.PrimeConversations(ctx, convs)
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || len(convs) == 0 {
		return
	}
	opCtx := graphql.GetOperationContext(ctx)
	var nodeFields []graphql.CollectedField
	for _, edges := range graphql.CollectFields(opCtx, fc.Field.Selections, []string{"ConversationConnection"}) {
		if edges.Name != "edges" {
			continue
		}
		for _, node := range graphql.CollectFields(opCtx, edges.Selections, []string{"ConversationEdge"}) {
			if node.Name == "node" {
				nodeFields = append(nodeFields, graphql.CollectFields(opCtx, node.Selections, []string{"Conversation"})...)
			}
		}
	}
	var wants conversationWants
	for i := range convs {
		wants.add(opCtx, convs[i].ID, nodeFields)
	}
	wants.prefetch(ctx)
}

// conversationWants collects what the fields under conversations will load.
type conversationWants struct {
	pages   []chat.PageKey
	members []int64
}

func (w *conversationWants) add(opCtx *graphql.OperationContext, convID int64, fields []graphql.CollectedField) {
	for _, f := range fields {
		args := f.ArgumentMap(opCtx.Variables)
		switch f.Name {
		case "messages":
			limit, ok1 := intValue(args["limit"], chat.DefaultPageSize)
			offset, ok2 := intValue(args["offset"], 0)
			if ok1 && ok2 && chat.ValidatePageSize("limit", limit) == nil && chat.ValidateOffset(offset) == nil {
				w.pages = append(w.pages, chat.PageKey{ConversationID: convID, Limit: limit, Offset: offset})
			}
		case "history":
			first, ok := intValue(args["first"], chat.DefaultPageSize)
			if ok && args["before"] == nil && chat.ValidatePageSize("first", first) == nil {
				w.pages = append(w.pages, chat.PageKey{ConversationID: convID, Limit: first})
			}
		case "lastMessage":
			w.pages = append(w.pages, chat.PageKey{ConversationID: convID, Limit: 1})
		case "members":
			w.members = append(w.members, convID)
		}
	}
}

func (w *conversationWants) prefetch(ctx context.Context) {
	if len(w.pages) > 0 {
		_ = loader.PrefetchPages(ctx, w.pages)
	}
	if len(w.members) > 0 {
		_ = loader.PrefetchMembers(ctx, w.members)
	}
}

// intValue reads an Int argument as the executor will: a literal (int64), a variable
// (json.Number), or absent/null (def).
func intValue(v any, def int) (int, bool) {
	switch v := v.(type) {
	case nil:
		return def, true
	case int64:
		return int(v), true
	case int:
		return v, true
	case json.Number:
		n, err := v.Int64()
		return int(n), err == nil
	}
	return 0, false
}
