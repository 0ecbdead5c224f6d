package db

import (
	"context"
	"fmt"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/chat"
)

// SearchMessages runs db/query/search.sql (see chat.Store): one statement, whose snippets'
// marks are computed for the returned rows only. With a replica it reads there when the replica
// has replayed up to the primary's WAL position read as the search starts (replica.go).
func (s *Store) SearchMessages(ctx context.Context, viewerID int64, query string, conversationID int64, after *chat.SearchCursor, limit int) ([]chat.SearchHit, error) {
	p := dbsqlc.MessagesSearchParams{Query: query, ViewerID: viewerID, ConversationID: conversationID, RowLimit: int32(limit)}
	if after != nil {
		p.HasCursor, p.AfterTime, p.AfterID = true, after.CreatedAt, after.ID
	}
	if s.replica != nil {
		if _, ok := chat.ReadPosition(ctx); !ok {
			// A search reads any of the viewer's conversations: it may go to the replica once
			// that has replayed up to the primary's position now, at or past the commit of every
			// write acknowledged before the search began. Without that position: the primary.
			if pos, err := s.WALPosition(ctx); err == nil {
				ctx = chat.WithReadPosition(ctx, pos)
			}
		}
	}
	rows, err := readRouted(ctx, s, func(ctx context.Context, q *dbsqlc.Queries) ([]dbsqlc.MessagesSearchRow, error) {
		return q.MessagesSearch(ctx, p)
	}, nil)
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
