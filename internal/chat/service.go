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
	hooks []Hook
}

// A Change is a committed write that caches and live subscribers must hear of.
type Change struct {
	ConversationID int64
	// Message is the message a send committed; nil for other changes.
	Message *Message
	// MembersChanged lists the users whose set of conversations changed (the members of a new
	// conversation).
	MembersChanged []int64
}

// A Hook runs after every commit, before the mutation answers. Hooks must be idempotent (a
// retried send runs them again, see SendMessage) and must not block for long.
type Hook struct {
	Name string // for logs and tests
	Run  func(ctx context.Context, c Change)
}

// NewService returns a Service over store. After each commit it runs hooks in the order given:
// the order is part of the correctness argument of the caches (a reader that sees a published
// message must find the cache already moved past it), so the application assembles the list in
// one place (package app).
func NewService(store Store, hooks ...Hook) *Service {
	return &Service{store: store, hooks: hooks}
}

func (s *Service) afterCommit(ctx context.Context, c Change) {
	for _, h := range s.hooks {
		h.Run(ctx, c)
	}
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
	s.afterCommit(ctx, Change{ConversationID: msg.ConversationID, Message: &msg})
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
	s.afterCommit(ctx, Change{ConversationID: conv.ID, MembersChanged: append([]int64{creatorID}, members...)})
	return conv, nil
}

// ConversationList is one page of a user's conversations, latest activity first.
type ConversationList struct {
	Conversations []Conversation
	HasNextPage   bool
}

// DefaultConversationPageSize is the size of a conversation list page when the client names none.
const DefaultConversationPageSize = 20

// Conversations lists userID's conversations after the cursor `after` (nil: from the start),
// first at a time (nil: DefaultConversationPageSize).
func (s *Service) Conversations(ctx context.Context, userID int64, firstArg *int, after *string) (ConversationList, error) {
	first := DefaultConversationPageSize
	if firstArg != nil {
		first = *firstArg
	}
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
	rows, err := s.store.ConversationListByMember(ctx, userID, cursor, first+1)
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

// OffsetPageArgs checks the arguments of messages(limit, offset), nil standing for their
// defaults, and names the page they ask for. The resolver and the look-ahead prefetch both read
// arguments through it, so they always agree on the page.
func OffsetPageArgs(conversationID int64, limit, offset *int) (PageKey, error) {
	k := PageKey{ConversationID: conversationID, Limit: DefaultPageSize}
	if limit != nil {
		k.Limit = *limit
	}
	if offset != nil {
		k.Offset = *offset
	}
	if err := ValidatePageSize("limit", k.Limit); err != nil {
		return PageKey{}, err
	}
	if err := ValidateOffset(k.Offset); err != nil {
		return PageKey{}, err
	}
	return k, nil
}

// HistoryArgs checks the arguments of history(first, before), nil standing for their defaults,
// and returns the page size and the seq to read below (0: from the newest).
func HistoryArgs(first *int, before *string) (size int, beforeSeq int64, err error) {
	size = DefaultPageSize
	if first != nil {
		size = *first
	}
	if err := ValidatePageSize("first", size); err != nil {
		return 0, 0, err
	}
	if before == nil {
		return size, 0, nil
	}
	beforeSeq, err = DecodeMessageCursor("before", *before)
	return size, beforeSeq, err
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
