package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// MarkRead moves userID's read position forward (see chat.Store). The position's row is updated
// with the check that it moves forward in the same statement, so concurrent marks by the same
// user serialise on the row and the position never moves back; the UserRead event is appended
// in the same transaction.
func (s *Store) MarkRead(ctx context.Context, userID, conversationID, seq int64) (chat.Change, error) {
	var ch chat.Change
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		at, err := q.MemberMarkRead(ctx, dbsqlc.MemberMarkReadParams{Seq: seq, ConversationID: conversationID, UserID: userID})
		if errors.Is(err, pgx.ErrNoRows) {
			return errNoChange
		}
		if err != nil {
			return fmt.Errorf("mark read: %w", err)
		}
		ch = chat.Change{ConversationID: conversationID, Members: []int64{userID}}
		return appendUserEvents(ctx, q, &ch, []int64{userID}, chat.UserEvent{Kind: chat.UserRead, ConversationID: conversationID, ReadSeq: seq, At: at})
	})
	if !errors.Is(err, errNoChange) {
		return ch, err
	}
	// Nothing moved: not a member, a seq past the last message, or a position already there.
	state, err := s.q.MemberReadState(ctx, dbsqlc.MemberReadStateParams{ConversationID: conversationID, UserID: userID})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return chat.Change{}, apperr.ErrNotFound
	case err != nil:
		return chat.Change{}, fmt.Errorf("read state: %w", err)
	case seq > state.LastSeq:
		return chat.Change{}, apperr.Invalid("seq", "is past the conversation's last message (%d)", state.LastSeq)
	}
	return chat.Change{}, nil
}

// UserEventsAfter returns userID's events after event_seq after (see chat.Store).
func (s *Store) UserEventsAfter(ctx context.Context, userID, after int64, limit int) ([]chat.UserEvent, error) {
	rows, err := s.q.UserEventsAfter(ctx, dbsqlc.UserEventsAfterParams{UserID: userID, AfterSeq: after, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("user events after: %w", err)
	}
	out := make([]chat.UserEvent, len(rows))
	for i, r := range rows {
		out[i] = chat.UserEvent{
			UserID: userID, EventSeq: r.EventSeq, Kind: chat.UserEventKind(r.Kind), ConversationID: r.ConversationID,
			ConversationEventSeq: deref(r.ConversationEventSeq), ReadSeq: deref(r.ReadSeq), At: r.At,
		}
	}
	return out, nil
}

// UserStreamStart reads where a sidebar stream starting now begins (see chat.Store), in one
// statement, whose one snapshot makes the user's conversations exactly those their events up
// to last left them in: one round trip where a read-only transaction took four, for every
// stream that starts (twice each: see live.Hub.SubscribeViewer).
func (s *Store) UserStreamStart(ctx context.Context, userID int64) (last, firstKept int64, conversations map[int64]int64, err error) {
	rows, err := s.q.UserStreamStart(ctx, userID)
	if err != nil {
		return 0, 0, nil, fmt.Errorf("user stream start: %w", err)
	}
	if len(rows) == 0 {
		return 0, 0, nil, apperr.ErrNotFound
	}
	last, firstKept = rows[0].LastEventSeq, rows[0].FirstKept
	conversations = make(map[int64]int64, len(rows))
	for _, r := range rows {
		if r.ConversationID != nil { // nil: the one row of a user in no conversation
			conversations[*r.ConversationID] = deref(r.ConversationLastEventSeq)
		}
	}
	return last, firstKept, conversations, nil
}

// UnreadTotal returns userID's unread messages over all their conversations.
func (s *Store) UnreadTotal(ctx context.Context, userID int64) (int64, error) {
	n, err := s.q.UnreadTotal(ctx, userID)
	if err != nil {
		return 0, fmt.Errorf("unread total: %w", err)
	}
	return n, nil
}

// ConversationForMembers returns, in key order, conversation conversationID as each of userIDs
// sees it (see chat.Store), in one statement: nil for a user who is not a member. The
// conversation's columns, read in the statement's one snapshot, are decoded once and shared;
// each user's value carries their own read position and unread count.
func (s *Store) ConversationForMembers(ctx context.Context, conversationID int64, userIDs []int64) ([]*chat.Conversation, error) {
	rows, err := s.q.ConversationForMembers(ctx, dbsqlc.ConversationForMembersParams{ConversationID: conversationID, UserIds: userIDs})
	if err != nil {
		return nil, fmt.Errorf("conversation for members: %w", err)
	}
	var base chat.Conversation
	if len(rows) > 0 {
		r := rows[0]
		base = conversation(conversationRow{
			ID: r.ID, Title: r.Title, CreatedAt: r.CreatedAt, LastSeq: r.LastSeq, LastMessageAt: r.LastMessageAt, LastEventSeq: r.LastEventSeq,
		})
	}
	return inKeyOrder(userIDs, rows, func(r dbsqlc.ConversationForMembersRow) (int64, *chat.Conversation) {
		c := base
		c.ViewerLastReadSeq = r.LastReadSeq
		unread := r.Unread
		c.ViewerUnread = &unread
		return r.UserID, &c
	}), nil
}
