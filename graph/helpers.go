package graph

import (
	"context"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/auth"
	"github.com/threadline/threadline/internal/chat"
)

// intArg returns an optional Int argument, or def when it is null.
func intArg(v *int, def int) int {
	if v == nil {
		return def
	}
	return *v
}

func members(ctx context.Context, conversationID int64) ([]*chat.User, error) {
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
	h, err := r.Chat.HistoryBefore(ctx, conv, first, beforeSeq)
	if err != nil {
		return nil, err
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
	viewer, err := auth.Viewer(ctx)
	if err != nil {
		return nil, err
	}
	list, err := r.Chat.Conversations(ctx, viewer, intArg(firstArg, 20), after)
	if err != nil {
		return nil, err
	}
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
	if _, err := auth.Viewer(ctx); err != nil {
		return nil, err
	}
	return nil, apperr.New(apperr.Internal, "subscriptions are not enabled on this server")
}
