package loader

import (
	"context"
	"encoding/json"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
)

// Prefetching looks ahead in a query for what the resolvers will load, and loads it first, one
// statement per kind, into the operation's loaders. It covers the shapes that fan out over
// conversations: root `conversation(id:)` fields (any number of aliases) and the `conversations`
// list, each with their `messages`, `history` and `timeline` (first page), `lastMessage` and
// `members`. The resolvers then find everything cached, so such a query costs one statement per
// kind whatever the scheduling of gqlgen's goroutines, and a single-page request pays no
// batching window. Arguments are read with the functions the resolvers use
// (chat.OffsetPageArgs, chat.HistoryArgs, chat.ParseTimelineArgs), so both name the same pages.
// Anything prefetching does not understand (or that fails) is left to the resolvers, which load
// it through the dataloaders and report errors as usual.
//
// When every root conversation(id:) field asks for a page, the conversations are read with their
// pages in one read: over the database, one statement (chat.MemberPageStore); through the
// history cache, one Redis round trip and no statement on a hit (internal/cache's
// CachedConversationPages), unless the document selects viewerLastReadSeq anywhere, which the
// cache does not keep: the conversations are then read from the database as before.

// PrefetchOperation prefetches for the root conversation(id:) fields of the query in ctx. The
// handler calls it once per operation, after the Loaders are in ctx.
func PrefetchOperation(ctx context.Context) {
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
	if len(ids) == 0 {
		return
	}
	// The conversations and their pages in one read: from the history cache, one Redis round
	// trip on a hit, unless the operation selects the viewer's read position, which the cache
	// does not keep; over the database itself, one statement.
	store := For(ctx).factory.store
	var read memberPagesFunc
	if cs, ok := store.(conversationPageCache); ok {
		if !selectsField(opCtx.Doc, "viewerLastReadSeq") {
			read = cs.CachedConversationPages
		}
	} else if ms, ok := store.(chat.MemberPageStore); ok {
		read = ms.ConversationPagesForMember
	}
	if read != nil {
		var wants conversationWants
		paged := true
		for _, r := range roots {
			n := len(wants.pages)
			wants.add(opCtx, r.id, r.fields)
			paged = paged && len(wants.pages) > n
		}
		if paged && prefetchMemberPages(ctx, read, wants.pages) == nil {
			wants.pages = nil // in the loaders already
			wants.members = slices.DeleteFunc(wants.members, func(id int64) bool {
				c, err := Conversation(ctx, id)
				return err != nil || c == nil
			})
			wants.prefetch(ctx)
			return
		}
	}
	if PrefetchConversations(ctx, ids) != nil {
		return
	}
	var wants conversationWants
	for _, r := range roots {
		if conv, err := Conversation(ctx, r.id); err == nil && conv != nil {
			wants.add(opCtx, r.id, r.fields)
		}
	}
	wants.prefetch(ctx)
}

// memberPagesFunc reads pages with their conversations as userID sees them: per key, the
// conversation (nil when it is missing or userID is not a member, and then no page) and its page
// (chat.MemberPageStore).
type memberPagesFunc func(ctx context.Context, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page, error)

// conversationPageCache is a store that serves pages with their conversations from a cache, as
// a memberPagesFunc whose conversations carry no read position (ViewerLastReadSeq zero), since
// no cache token moves with it (internal/cache's Store).
type conversationPageCache interface {
	CachedConversationPages(ctx context.Context, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page, error)
}

// selectsField reports whether any operation or fragment of doc selects a field named name, at
// any depth: a conservative test (it ignores types, directives and which operation runs).
func selectsField(doc *ast.QueryDocument, name string) bool {
	var walk func(ast.SelectionSet) bool
	walk = func(set ast.SelectionSet) bool {
		for _, sel := range set {
			switch sel := sel.(type) {
			case *ast.Field:
				if sel.Name == name || walk(sel.SelectionSet) {
					return true
				}
			case *ast.InlineFragment:
				if walk(sel.SelectionSet) {
					return true
				}
			}
		}
		return false
	}
	if doc == nil {
		return true
	}
	for _, op := range doc.Operations {
		if walk(op.SelectionSet) {
			return true
		}
	}
	for _, f := range doc.Fragments {
		if walk(f.SelectionSet) {
			return true
		}
	}
	return false
}

// prefetchMemberPages reads pages with their conversations (one statement, or one Redis round
// trip) into the loaders: each key's conversation, nil for one the viewer may not see, and the
// pages of the others.
func prefetchMemberPages(ctx context.Context, read memberPagesFunc, keys []chat.PageKey) error {
	l := For(ctx)
	convs, pages, err := read(ctx, l.viewerID, keys)
	if err != nil {
		return err
	}
	for i, k := range keys {
		l.conversationLoader().Prime(ctx, k.ConversationID, convs[i])
		if convs[i] != nil {
			l.pageLoader().Prime(ctx, k, pages[i])
		}
	}
	return nil
}

// PrefetchConversationList primes the loaders with the conversations of a `conversations` list
// field (the field in ctx) and prefetches what the fields under its nodes will load.
func PrefetchConversationList(ctx context.Context, convs []chat.Conversation) {
	PrimeConversations(ctx, convs)
	if len(convs) == 0 {
		return
	}
	nodeFields := listNodeFields(ctx)
	if nodeFields == nil {
		return
	}
	opCtx := graphql.GetOperationContext(ctx)
	var wants conversationWants
	for i := range convs {
		wants.add(opCtx, convs[i].ID, nodeFields)
	}
	wants.prefetch(ctx)
}

// listNodeFields returns the fields selected on the nodes of the `conversations` list field in
// ctx (nil outside one).
func listNodeFields(ctx context.Context) []graphql.CollectedField {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil {
		return nil
	}
	opCtx := graphql.GetOperationContext(ctx)
	nodeFields := []graphql.CollectedField{}
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
	return nodeFields
}

// ListSelectsUnread reports whether the `conversations` list field in ctx selects unreadCount
// on its nodes: the list then reads the counts in its own statement.
func ListSelectsUnread(ctx context.Context) bool {
	for _, f := range listNodeFields(ctx) {
		if f.Name == "unreadCount" {
			return true
		}
	}
	return false
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
			limit, ok1 := intArg(args["limit"])
			offset, ok2 := intArg(args["offset"])
			if k, err := chat.OffsetPageArgs(convID, limit, offset); ok1 && ok2 && err == nil {
				w.pages = append(w.pages, k)
			}
		case "history":
			first, ok1 := intArg(args["first"])
			before, ok2 := stringArg(args["before"])
			if size, beforeSeq, err := chat.HistoryArgs(first, before); ok1 && ok2 && err == nil {
				w.pages = append(w.pages, chat.PageKey{ConversationID: convID, Limit: size, Before: beforeSeq})
			}
		case "timeline":
			first, ok1 := intArg(args["first"])
			last, ok2 := intArg(args["last"])
			after, ok3 := stringArg(args["after"])
			before, ok4 := stringArg(args["before"])
			a, err := chat.ParseTimelineArgs(first, after, last, before)
			if k, paged := a.PageKey(convID); ok1 && ok2 && ok3 && ok4 && err == nil && paged {
				w.pages = append(w.pages, k)
			}
		case "lastMessage":
			w.pages = append(w.pages, chat.PageKey{ConversationID: convID, Limit: 1})
		case "members", "memberships":
			w.members = append(w.members, convID)
		}
	}
}

func (w *conversationWants) prefetch(ctx context.Context) {
	if len(w.pages) > 0 {
		_ = PrefetchPages(ctx, w.pages)
	}
	if len(w.members) > 0 {
		_ = PrefetchMemberships(ctx, w.members)
	}
}

// intArg reads an Int argument as the executor will: a literal (int64), a variable
// (json.Number), or absent/null (nil, the argument's default).
func intArg(v any) (*int, bool) {
	var n int
	switch v := v.(type) {
	case nil:
		return nil, true
	case int64:
		n = int(v)
	case int:
		n = v
	case json.Number:
		i, err := v.Int64()
		if err != nil {
			return nil, false
		}
		n = int(i)
	default:
		return nil, false
	}
	return &n, true
}

// stringArg reads an optional String argument.
func stringArg(v any) (*string, bool) {
	switch v := v.(type) {
	case nil:
		return nil, true
	case string:
		return &v, true
	default:
		return nil, false
	}
}
