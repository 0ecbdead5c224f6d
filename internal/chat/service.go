package chat

import (
	"context"
	"slices"

	"github.com/threadline/threadline/internal/apperr"
)

// Service holds the rules of reading and writing chat data on top of a Store. It validates every
// input before anything is read or written, so bad input changes nothing.
type Service struct {
	store Store
	// afterSend runs, in order, after a new message is committed: the history cache moves its
	// generation, then the message is published to live subscribers.
	afterSend []func(context.Context, Message)
	// afterCreate runs after a new conversation is committed, with all its members.
	afterCreate []func(ctx context.Context, c Conversation, memberIDs []int64)
}

// NewService returns a Service over store.
func NewService(store Store) *Service {
	return &Service{store: store}
}

// Store returns the store the service reads through.
func (s *Service) Store() Store { return s.store }

// OnMessageSent registers fn to run after each committed message, after those registered
// before it, and again for a retry that returns it (see SendMessage): fn must be idempotent.
// fn must not block for long: sendMessage returns only after every fn has run.
func (s *Service) OnMessageSent(fn func(context.Context, Message)) {
	s.afterSend = append(s.afterSend, fn)
}

// OnConversationCreated registers fn to run after each new conversation is committed, with the
// ids of all its members (the creator first), before createConversation returns.
func (s *Service) OnConversationCreated(fn func(ctx context.Context, c Conversation, memberIDs []int64)) {
	s.afterCreate = append(s.afterCreate, fn)
}

// SendMessage stores a message from sender. A retry with the same clientMessageID returns the
// original message and stores nothing.
func (s *Service) SendMessage(ctx context.Context, senderID int64, m NewMessage) (Message, error) {
	body, err := NormalizeBody(m.Body)
	if err != nil {
		return Message{}, err
	}
	if err := ValidateClientMessageID(m.ClientMessageID); err != nil {
		return Message{}, err
	}
	m.Body, m.SenderID = body, senderID
	msg, _, err := s.store.InsertMessage(ctx, m)
	if err != nil {
		return Message{}, err
	}
	// The hooks run for a retry that returns the original too: the original's own request may
	// have failed after its commit (PgBouncer or PostgreSQL restarting, measured in
	// TestFaultPgBouncerRestart) and so never run them, and the message must still reach the
	// cache's generation and live subscribers before this call returns. Both are idempotent:
	// a new generation costs one cache miss, and subscribers drop a seq they have seen.
	for _, fn := range s.afterSend {
		fn(ctx, msg)
	}
	return msg, nil
}

// CreateConversation creates a conversation whose members are the creator and memberIDs.
func (s *Service) CreateConversation(ctx context.Context, creatorID int64, title string, memberIDs []int64) (Conversation, error) {
	title, err := NormalizeTitle(title)
	if err != nil {
		return Conversation{}, err
	}
	if len(memberIDs) > MaxMembers {
		return Conversation{}, apperr.Invalid("memberIds", "at most %d members", MaxMembers)
	}
	members := make([]int64, 0, len(memberIDs))
	for _, id := range memberIDs {
		if id < 1 {
			return Conversation{}, apperr.Invalid("memberIds", "must be positive integers")
		}
		if id != creatorID && !slices.Contains(members, id) {
			members = append(members, id)
		}
	}
	conv, err := s.store.CreateConversation(ctx, creatorID, title, members)
	if err != nil {
		return Conversation{}, err
	}
	all := append([]int64{creatorID}, members...)
	for _, fn := range s.afterCreate {
		fn(ctx, conv, all)
	}
	return conv, nil
}

// ConversationList is one page of a user's conversations, latest activity first.
type ConversationList struct {
	Conversations []Conversation
	HasNextPage   bool
}

// Conversations lists userID's conversations after the cursor `after` (nil: from the start).
func (s *Service) Conversations(ctx context.Context, userID int64, first int, after *string) (ConversationList, error) {
	if err := ValidatePageSize("first", first); err != nil {
		return ConversationList{}, err
	}
	var cursor *ConversationCursor
	if after != nil {
		c, err := DecodeConversationCursor("after", *after)
		if err != nil {
			return ConversationList{}, err
		}
		cursor = &c
	}
	rows, err := s.store.ConversationsByMember(ctx, userID, cursor, first+1)
	if err != nil {
		return ConversationList{}, err
	}
	list := ConversationList{Conversations: rows, HasNextPage: len(rows) > first}
	if list.HasNextPage {
		list.Conversations = rows[:first]
	}
	return list, nil
}

// History is one page of a conversation's history read backwards by cursor, newest first.
type History struct {
	Messages        []Message
	HasNextPage     bool // older messages follow
	HasPreviousPage bool // newer messages precede (the page did not start at the newest)
}

// ParseHistoryArgs checks history's arguments and returns the seq to read below (0: from the newest).
func ParseHistoryArgs(first int, before *string) (beforeSeq int64, err error) {
	if err := ValidatePageSize("first", first); err != nil {
		return 0, err
	}
	if before == nil {
		return 0, nil
	}
	return DecodeMessageCursor("before", *before)
}

// HistoryBefore reads up to first messages of conv with seq below beforeSeq (0: from the newest).
func (s *Service) HistoryBefore(ctx context.Context, conv *Conversation, first int, beforeSeq int64) (History, error) {
	if beforeSeq == 0 || beforeSeq > conv.LastSeq+1 {
		beforeSeq = conv.LastSeq + 1
	}
	rows, err := s.store.MessagesBefore(ctx, conv.ID, beforeSeq, first+1)
	if err != nil {
		return History{}, err
	}
	h := History{Messages: rows, HasNextPage: len(rows) > first, HasPreviousPage: beforeSeq <= conv.LastSeq}
	if h.HasNextPage {
		h.Messages = rows[:first]
	}
	return h, nil
}
