package db

import (
	"context"
	"fmt"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/chat"
)

// SearchMessages runs db/query/search.sql (see chat.Store): one statement, whose snippets'
// marks are computed for the returned rows only.
func (s *Store) SearchMessages(ctx context.Context, viewerID int64, query string, conversationID int64, after *chat.SearchCursor, limit int) ([]chat.SearchHit, error) {
	p := dbsqlc.MessagesSearchParams{Query: query, ViewerID: viewerID, ConversationID: conversationID, RowLimit: int32(limit)}
	if after != nil {
		p.HasCursor, p.AfterTime, p.AfterID = true, after.CreatedAt, after.ID
	}
	rows, err := s.q.MessagesSearch(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("messages search: %w", err)
	}
	out := make([]chat.SearchHit, len(rows))
	for i, r := range rows {
		out[i] = chat.SearchHit{Message: message(messageRow{
			ID: r.ID, ConversationID: r.ConversationID, Seq: r.Seq, SenderID: r.SenderID, SenderName: r.SenderName,
			Body: r.Body, ClientMessageID: r.ClientMessageID, CreatedAt: r.CreatedAt, EditedAt: r.EditedAt,
			DeletedAt: r.DeletedAt, Version: r.Version, Reactions: r.Reactions,
		}), Marked: r.Marked}
	}
	return out, nil
}
