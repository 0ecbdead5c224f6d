package graph

import (
	"strings"

	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/chat"
)

// Relay connections: edges with cursors, and pageInfo whose start and end cursors are those of
// the first and last edge.

func messageConnection(h chat.History) *model.MessageConnection {
	conn := &model.MessageConnection{
		Edges:    make([]*model.MessageEdge, len(h.Messages)),
		PageInfo: &model.PageInfo{HasNextPage: h.HasNextPage, HasPreviousPage: h.HasPreviousPage},
	}
	for i := range h.Messages {
		conn.Edges[i] = &model.MessageEdge{Cursor: chat.EncodeMessageCursor(h.Messages[i].Seq), Node: &h.Messages[i]}
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor, conn.PageInfo.EndCursor = &conn.Edges[0].Cursor, &conn.Edges[n-1].Cursor
	}
	return conn
}

// messageWindow gives a window the cursors of its ends: the oldest message's, to pass as
// timeline(after:) for what is older, and the newest's, to pass as timeline(before:) for what is
// newer (set even when nothing is newer yet: newer messages may come).
func messageWindow(w chat.Window) *model.MessageWindow {
	out := &model.MessageWindow{Items: pointers(w.Messages), HasOlder: w.HasOlder, HasNewer: w.HasNewer}
	if n := len(w.Messages); n > 0 {
		newer, older := chat.EncodeMessageCursor(w.Messages[0].Seq), chat.EncodeMessageCursor(w.Messages[n-1].Seq)
		out.NewerCursor, out.OlderCursor = &newer, &older
	}
	return out
}

func conversationConnection(list chat.ConversationList, after *string) *model.ConversationConnection {
	conn := &model.ConversationConnection{
		Edges:    make([]*model.ConversationEdge, len(list.Conversations)),
		PageInfo: &model.PageInfo{HasNextPage: list.HasNextPage, HasPreviousPage: after != nil},
	}
	for i := range list.Conversations {
		c := &list.Conversations[i]
		cursor := chat.EncodeConversationCursor(chat.ConversationCursor{LastMessageAt: c.LastMessageAt, ID: c.ID})
		conn.Edges[i] = &model.ConversationEdge{Cursor: cursor, Node: c}
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor, conn.PageInfo.EndCursor = &conn.Edges[0].Cursor, &conn.Edges[n-1].Cursor
	}
	return conn
}

func userConnection(list chat.UserList, after *string) *model.UserConnection {
	conn := &model.UserConnection{
		Edges:    make([]*model.UserEdge, len(list.Users)),
		PageInfo: &model.PageInfo{HasNextPage: list.HasNextPage, HasPreviousPage: after != nil},
	}
	for i := range list.Users {
		u := &list.Users[i]
		conn.Edges[i] = &model.UserEdge{Cursor: chat.EncodeUserCursor(chat.UserCursor{Name: strings.ToLower(u.Name), ID: u.ID}), Node: u}
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor, conn.PageInfo.EndCursor = &conn.Edges[0].Cursor, &conn.Edges[n-1].Cursor
	}
	return conn
}

// intOr is an Int argument, or def when the client passed null.
func intOr(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}

func pointers[T any](items []T) []*T {
	out := make([]*T, len(items))
	for i := range items {
		out[i] = &items[i]
	}
	return out
}

func searchConnection(page chat.SearchPage, after *string) *model.MessageSearchConnection {
	conn := &model.MessageSearchConnection{
		Edges:    make([]*model.MessageSearchEdge, len(page.Hits)),
		PageInfo: &model.PageInfo{HasNextPage: page.HasNextPage, HasPreviousPage: after != nil},
	}
	for i := range page.Hits {
		h := &page.Hits[i]
		cursor := chat.EncodeSearchCursor(chat.SearchCursor{CreatedAt: h.Message.CreatedAt, ID: h.Message.ID})
		conn.Edges[i] = &model.MessageSearchEdge{Cursor: cursor, Node: &h.Message, Snippet: h.Snippet}
	}
	if n := len(conn.Edges); n > 0 {
		conn.PageInfo.StartCursor, conn.PageInfo.EndCursor = &conn.Edges[0].Cursor, &conn.Edges[n-1].Cursor
	}
	return conn
}
