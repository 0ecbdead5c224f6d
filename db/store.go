package db

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// Store implements chat.Store over a pgx pool.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
}

var _ chat.Store = (*Store)(nil)

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	// Outside transactions the Store only reads: those reads survive a broken connection.
	return &Store{pool: pool, q: dbsqlc.New(readRetrier{pool})}
}

// Ping checks that a statement reaches PostgreSQL through the pool.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "-- name: Ping :exec\nSELECT 1")
	return err
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(s.q.WithTx(tx)) })
}

func (s *Store) UsersByIDs(ctx context.Context, ids []int64) ([]*chat.User, error) {
	rows, err := s.q.UsersByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("users by ids: %w", err)
	}
	byID := make(map[int64]*chat.User, len(rows))
	for _, r := range rows {
		byID[r.ID] = &chat.User{ID: r.ID, Name: r.Name}
	}
	out := make([]*chat.User, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

func (s *Store) ConversationsByIDForMember(ctx context.Context, userID int64, ids []int64) ([]*chat.Conversation, error) {
	rows, err := s.q.ConversationsByIDForMember(ctx, dbsqlc.ConversationsByIDForMemberParams{UserID: userID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("conversations for member: %w", err)
	}
	byID := make(map[int64]*chat.Conversation, len(rows))
	for _, r := range rows {
		c := conversation(conversationRow(r))
		byID[r.ID] = &c
	}
	out := make([]*chat.Conversation, len(ids))
	for i, id := range ids {
		out[i] = byID[id]
	}
	return out, nil
}

func (s *Store) ConversationListByMember(ctx context.Context, userID int64, after *chat.ConversationCursor, limit int) ([]chat.Conversation, error) {
	p := dbsqlc.ConversationListByMemberParams{UserID: userID, RowLimit: int32(limit)}
	if after != nil {
		p.HasCursor, p.AfterTime, p.AfterID = true, after.LastMessageAt, after.ID
	}
	rows, err := s.q.ConversationListByMember(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("conversations by member: %w", err)
	}
	out := make([]chat.Conversation, len(rows))
	for i, r := range rows {
		out[i] = conversation(conversationRow(r))
	}
	return out, nil
}

func (s *Store) MembersByConversations(ctx context.Context, conversationIDs []int64) ([][]chat.User, error) {
	rows, err := s.q.MembersByConversations(ctx, conversationIDs)
	if err != nil {
		return nil, fmt.Errorf("members by conversations: %w", err)
	}
	byConv := make(map[int64][]chat.User, len(conversationIDs))
	for _, r := range rows {
		byConv[r.ConversationID] = append(byConv[r.ConversationID], chat.User{ID: r.ID, Name: r.Name})
	}
	out := make([][]chat.User, len(conversationIDs))
	for i, id := range conversationIDs {
		out[i] = byConv[id]
		if out[i] == nil {
			out[i] = []chat.User{}
		}
	}
	return out, nil
}

func (s *Store) MessagePages(ctx context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	p := dbsqlc.MessagePagesParams{
		ConversationIds: make([]int64, len(keys)),
		Limits:          make([]int32, len(keys)),
		Offsets:         make([]int32, len(keys)),
	}
	for i, k := range keys {
		p.ConversationIds[i], p.Limits[i], p.Offsets[i] = k.ConversationID, int32(k.Limit), int32(k.Offset)
	}
	rows, err := s.q.MessagePages(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("message pages: %w", err)
	}
	pages := make([]chat.Page, len(keys))
	for i := range pages {
		pages[i].Messages = make([]chat.Message, 0, keys[i].Limit)
	}
	for _, r := range rows {
		i := int(r.Ord) - 1 // WITH ORDINALITY counts from 1
		if i < 0 || i >= len(pages) {
			return nil, fmt.Errorf("message pages: row for key %d of %d", r.Ord, len(keys))
		}
		if len(pages[i].Messages) == keys[i].Limit {
			pages[i].HasMore = true
			continue
		}
		pages[i].Messages = append(pages[i].Messages, message(messageRow{
			ID: r.ID, ConversationID: r.ConversationID, Seq: r.Seq, SenderID: r.SenderID,
			SenderName: r.SenderName, Body: r.Body, ClientMessageID: r.ClientMessageID, CreatedAt: r.CreatedAt,
		}))
	}
	return pages, nil
}

func (s *Store) MessagesBefore(ctx context.Context, conversationID, beforeSeq int64, limit int) ([]chat.Message, error) {
	rows, err := s.q.MessagesBefore(ctx, dbsqlc.MessagesBeforeParams{ConversationID: conversationID, BeforeSeq: beforeSeq, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("messages before: %w", err)
	}
	out := make([]chat.Message, len(rows))
	for i, r := range rows {
		out[i] = message(messageRow(r))
	}
	return out, nil
}

func (s *Store) MessagesAfter(ctx context.Context, conversationID, afterSeq int64, limit int) ([]chat.Message, error) {
	rows, err := s.q.MessagesAfter(ctx, dbsqlc.MessagesAfterParams{ConversationID: conversationID, AfterSeq: afterSeq, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("messages after: %w", err)
	}
	out := make([]chat.Message, len(rows))
	for i, r := range rows {
		out[i] = message(messageRow(r))
	}
	return out, nil
}

// InsertMessage takes the conversation's next seq under its row lock and inserts the message in
// one transaction. A repeated client id rolls the transaction back (so the seq is not spent) and
// returns the original message.
func (s *Store) InsertMessage(ctx context.Context, m chat.NewMessage) (chat.Message, bool, error) {
	if m.ClientMessageID != nil {
		// A retry usually finds its original here, without taking the conversation's lock.
		if orig, err := s.messageByClientID(ctx, s.q, m); err == nil {
			return orig, false, nil
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return chat.Message{}, false, err
		}
	}
	var out chat.Message
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		bump, err := q.ConversationBumpSeq(ctx, dbsqlc.ConversationBumpSeqParams{ID: m.ConversationID, SenderID: m.SenderID})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("bump seq: %w", err)
		}
		row, err := q.MessageInsert(ctx, dbsqlc.MessageInsertParams{
			ConversationID: m.ConversationID, Seq: bump.LastSeq, SenderID: m.SenderID,
			Body: m.Body, ClientMessageID: m.ClientMessageID, CreatedAt: bump.LastMessageAt,
		})
		if errors.Is(err, pgx.ErrNoRows) {
			return errDuplicateClientID
		}
		if err != nil {
			return fmt.Errorf("insert message: %w", err)
		}
		out = message(messageRow(row))
		return nil
	})
	if errors.Is(err, errDuplicateClientID) {
		// A concurrent send with the same client id committed first.
		orig, err := s.messageByClientID(ctx, s.q, m)
		if err != nil {
			return chat.Message{}, false, err
		}
		return orig, false, nil
	}
	if err != nil {
		return chat.Message{}, false, err
	}
	return out, true, nil
}

var errDuplicateClientID = errors.New("duplicate client message id")

func (s *Store) messageByClientID(ctx context.Context, q *dbsqlc.Queries, m chat.NewMessage) (chat.Message, error) {
	row, err := q.MessageByClientID(ctx, dbsqlc.MessageByClientIDParams{
		ConversationID: m.ConversationID, SenderID: m.SenderID, ClientMessageID: *m.ClientMessageID,
	})
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return chat.Message{}, err
		}
		return chat.Message{}, fmt.Errorf("message by client id: %w", err)
	}
	return message(messageRow(row)), nil
}

func (s *Store) CreateConversation(ctx context.Context, creatorID int64, title string, memberIDs []int64) (chat.Conversation, error) {
	var out chat.Conversation
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		all := append([]int64{creatorID}, memberIDs...)
		n, err := q.UsersExist(ctx, all)
		if err != nil {
			return fmt.Errorf("users exist: %w", err)
		}
		if int(n) != len(all) {
			return apperr.Invalid("memberIds", "names a user that does not exist")
		}
		row, err := q.ConversationInsert(ctx, dbsqlc.ConversationInsertParams{Title: title, CreatedBy: creatorID})
		if err != nil {
			return fmt.Errorf("insert conversation: %w", err)
		}
		if err := q.MembersInsert(ctx, dbsqlc.MembersInsertParams{ConversationID: row.ID, UserIds: all}); err != nil {
			return fmt.Errorf("insert members: %w", err)
		}
		out = conversation(conversationRow(row))
		return nil
	})
	return out, err
}

// conversationRow and messageRow are the shapes that sqlc generates once per query; Go's struct
// conversion turns each generated row type into these.
type conversationRow struct {
	ID            int64
	Title         string
	CreatedAt     time.Time
	LastSeq       int64
	LastMessageAt time.Time
}

func conversation(r conversationRow) chat.Conversation {
	return chat.Conversation{ID: r.ID, Title: r.Title, CreatedAt: r.CreatedAt, LastSeq: r.LastSeq, LastMessageAt: r.LastMessageAt}
}

type messageRow struct {
	ID              int64
	ConversationID  int64
	Seq             int64
	SenderID        int64
	SenderName      string
	Body            string
	ClientMessageID *string
	CreatedAt       time.Time
}

func message(r messageRow) chat.Message {
	return chat.Message{
		ID: r.ID, ConversationID: r.ConversationID, Seq: r.Seq, SenderID: r.SenderID, SenderName: r.SenderName,
		Body: r.Body, CreatedAt: r.CreatedAt, ClientMessageID: r.ClientMessageID,
	}
}
