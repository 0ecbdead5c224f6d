package graph

import (
	"context"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/cache"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/respcache"
)

// intArg returns an optional Int argument, or def when it is null.
func intArg(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}

// The helpers below declare, for the response cache, what each resolver's result depends on
// (see internal/respcache): a conversation's history generation, the viewer's memberships, or
// nothing that changes.

func me(ctx context.Context) (*chat.User, error) {
	respcache.Static(ctx) // users never change
	return loader.Viewer(ctx)
}

func conversation(ctx context.Context, id int64) (*chat.Conversation, error) {
	respcache.DependViewer(ctx) // null or not depends on the viewer's memberships
	return loader.Conversation(ctx, id)
}

func lastMessage(ctx context.Context, conversationID int64) (*chat.Message, error) {
	p, err := loader.Page(ctx, chat.PageKey{ConversationID: conversationID, Limit: 1})
	if err != nil {
		return nil, err
	}
	respcache.Depend(ctx, cache.GenerationKey(conversationID), p.Generation)
	if len(p.Messages) == 0 {
		return nil, nil
	}
	return &p.Messages[0], nil
}

func members(ctx context.Context, conversationID int64) ([]*chat.User, error) {
	respcache.Static(ctx) // members are set when a conversation is created
	users, err := loader.Members(ctx, conversationID)
	if err != nil {
		return nil, err
	}
	out := make([]*chat.User, len(users))
	for i := range users {
		out[i] = &users[i]
	}
	return out, nil
}

func messagePage(ctx context.Context, conv *chat.Conversation, limitArg, offsetArg *int) (*model.MessagePage, error) {
	limit, offset := intArg(limitArg, chat.DefaultPageSize), intArg(offsetArg, 0)
	if err := chat.ValidatePageSize("limit", limit); err != nil {
		return nil, err
	}
	if err := chat.ValidateOffset(offset); err != nil {
		return nil, err
	}
	page, err := loader.Page(ctx, chat.PageKey{ConversationID: conv.ID, Limit: limit, Offset: offset})
	if err != nil {
		return nil, err
	}
	respcache.Depend(ctx, cache.GenerationKey(conv.ID), page.Generation)
	return &model.MessagePage{Items: messagePointers(page.Messages), Limit: limit, Offset: offset, HasMore: page.HasMore}, nil
}

func messagePointers(msgs []chat.Message) []*chat.Message {
	out := make([]*chat.Message, len(msgs))
	for i := range msgs {
		out[i] = &msgs[i]
	}
	return out
}

func (r *Resolver) history(ctx context.Context, conv *chat.Conversation, firstArg *int, before *string) (*model.MessageConnection, error) {
	first := intArg(firstArg, chat.DefaultPageSize)
	beforeSeq, err := chat.ParseHistoryArgs(first, before)
	if err != nil {
		return nil, err
	}
	var h chat.History
	if beforeSeq == 0 {
		// The first page is the offset-0 page: it batches and caches with them.
		page, err := loader.Page(ctx, chat.PageKey{ConversationID: conv.ID, Limit: first})
		if err != nil {
			return nil, err
		}
		h = chat.History{Messages: page.Messages, HasNextPage: page.HasMore}
		respcache.Depend(ctx, cache.GenerationKey(conv.ID), page.Generation)
	} else {
		if beforeSeq <= conv.LastSeq {
			respcache.Static(ctx) // messages before an existing one never change
		} else {
			respcache.Uncacheable(ctx) // a cursor past the end reads the newest page
		}
		if h, err = r.Chat.HistoryBefore(ctx, conv, first, beforeSeq); err != nil {
			return nil, err
		}
	}
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
	return conn, nil
}

func (r *Resolver) conversations(ctx context.Context, firstArg *int, after *string) (*model.ConversationConnection, error) {
	respcache.Uncacheable(ctx) // the order depends on every conversation of the viewer
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	list, err := r.Chat.Conversations(ctx, viewer, intArg(firstArg, 20), after)
	if err != nil {
		return nil, err
	}
	prefetchConversationList(ctx, list.Conversations)
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
	return conn, nil
}

func (r *Resolver) sendMessage(ctx context.Context, in model.SendMessageInput) (*chat.Message, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	msg, err := r.Chat.SendMessage(ctx, viewer, chat.NewMessage{
		ConversationID: in.ConversationID, Body: in.Body, ClientMessageID: in.ClientMessageID,
	})
	if err != nil {
		return nil, err
	}
	return &msg, nil
}

func (r *Resolver) createConversation(ctx context.Context, in model.CreateConversationInput) (*chat.Conversation, error) {
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	conv, err := r.Chat.CreateConversation(ctx, viewer, in.Title, in.MemberIds)
	if err != nil {
		return nil, err
	}
	return &conv, nil
}

func (r *Resolver) messageAdded(ctx context.Context, conversationID int64, afterSeq *int) (<-chan *chat.Message, error) {
	return subscribeMessages(ctx, r.Live, conversationID, afterSeq)
}
