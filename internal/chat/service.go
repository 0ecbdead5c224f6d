package chat

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/threadline/threadline/internal/apperr"
)

// Service holds the rules of reading and writing chat data on top of a Store. It validates every
// input before anything is read or written, so bad input changes nothing.
type Service struct {
	store Store
	hooks []Hook
	cfg   ServiceConfig
}

// A Change is a committed write that caches and live subscribers must hear of. The Store
// returns it, read in the write's transaction.
type Change struct {
	ConversationID int64
	// Event is the change's event (with the message it is about, as the change left it); nil
	// for a change that is the user's own (a read position).
	Event Event
	// Members are the conversation's members when the change committed, and those it removed:
	// everyone whose conversation list shows it.
	Members []int64
	// MembersChanged lists the users whose set of conversations changed: the members of a new
	// conversation, those added, the one removed or leaving.
	MembersChanged []int64
	// UserEvents are the users' own events the change wrote (joined, left, read).
	UserEvents []UserEvent
	// Position is a WAL position (see WithReadPosition) at or past the change's commit, read
	// after it committed; 0 when unknown (no replica is configured, or it could not be read).
	Position uint64
}

// changed reports whether c changed anything (a repeat changes nothing).
func (c Change) changed() bool {
	return (c.Event != nil && c.Event.Header().EventSeq != 0) || len(c.UserEvents) > 0
}

// A Hook runs after every commit, before the mutation answers (or, past the post-commit wait,
// after: see ServiceConfig.Wait). Hooks must be idempotent (a retried send runs them again, see
// SendMessage) and must not block for long.
type Hook struct {
	Name string // for logs and tests
	Run  func(ctx context.Context, c Change)
	// Late, if set, is called when the mutation answers before Run(c) has returned (Run may
	// not even have begun): it must record at once, in process, that Run's effect may not be in
	// place yet, so that reads that start after the answer do not trust what Run would have
	// moved (the caches read around the conversation and retry the move themselves). It must
	// not block.
	Late func(c Change)
}

// ServiceConfig tunes a Service.
type ServiceConfig struct {
	// Hooks run after every commit, in the order given: the order is part of the correctness
	// argument of the caches (a reader that sees a published message must find the cache
	// already moved past it), so the application assembles the list in one place (package app).
	Hooks []Hook
	// Wait bounds how long a mutation waits for its hooks after its commit, while Bounded says
	// so. Past it the mutation answers, each hook that has not returned is told so (Hook.Late)
	// before the answer, and the hooks go on in the background, in order. Zero: wait for them
	// all.
	Wait time.Duration
	// Bounded reports whether Wait applies to a mutation committing now; nil: always. The
	// application bounds the wait only while Redis is known to be failing: with Redis answering,
	// a mutation waits until every instance's caches have moved, so that a read anywhere after
	// the answer sees the write, and Redis's own deadlines bound that wait anyway.
	Bounded func() bool
	// Observe, if set, is told of every run of the hooks that outlived Wait: late with +1 when
	// the mutation answers without it, then -1 when the last hook has returned (a gauge of
	// post-commit work still running, and a count of late runs).
	Observe func(delta int)
}

// NewService returns a Service over store that runs hooks, in the order given, after each
// commit and waits for them (NewServiceConfig with Hooks only).
func NewService(store Store, hooks ...Hook) *Service {
	return NewServiceConfig(store, ServiceConfig{Hooks: hooks})
}

// NewServiceConfig returns a Service over store configured by cfg.
func NewServiceConfig(store Store, cfg ServiceConfig) *Service {
	return &Service{store: store, hooks: cfg.Hooks, cfg: cfg}
}

// afterCommit runs the hooks in order. With a Wait, they run on a goroutine of their own and
// the caller waits at most Wait: Redis down or slow costs a mutation that much, not the sum of
// its hooks' timeouts. What the hooks move is then either moved before the answer, or marked
// late (Hook.Late) before it, which is all the caches' exactness argument needs.
func (s *Service) afterCommit(ctx context.Context, c Change) {
	if s.cfg.Wait <= 0 || (s.cfg.Bounded != nil && !s.cfg.Bounded()) {
		for _, h := range s.hooks {
			h.Run(ctx, c)
		}
		return
	}
	// The request may end the moment the mutation answers; the hooks must not end with it.
	bg := context.WithoutCancel(ctx)
	var mu sync.Mutex
	finished, late := 0, false
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, h := range s.hooks {
			h.Run(bg, c)
			mu.Lock()
			finished++
			wasLate := late && finished == len(s.hooks)
			mu.Unlock()
			if wasLate && s.cfg.Observe != nil {
				s.cfg.Observe(-1)
			}
		}
	}()
	t := time.NewTimer(s.cfg.Wait)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	}
	mu.Lock()
	defer mu.Unlock()
	if finished == len(s.hooks) {
		return
	}
	late = true
	// Under the lock: a hook that returns meanwhile waits to count itself, so every hook from
	// finished on is told before the answer, and none is both told and counted as done before.
	for _, h := range s.hooks[finished:] {
		if h.Late != nil {
			h.Late(c)
		}
	}
	if s.cfg.Observe != nil {
		s.cfg.Observe(+1)
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
	ch, _, err := s.store.InsertMessage(ctx, m)
	if err != nil {
		return Message{}, err
	}
	msg := *ch.Event.(*MessageAdded).Message
	// The hooks run for a retry that returns the original too: the original's own request may
	// have failed after its commit (PgBouncer or PostgreSQL restarting, measured in
	// TestFaultPgBouncerRestart) and so never run them, and the message must still reach the
	// cache's generation and live subscribers before this call returns. Both are idempotent:
	// a new generation costs one cache miss, and subscribers drop a seq they have seen.
	s.afterCommit(ctx, ch)
	return msg, nil
}

// CreateConversation creates a conversation whose members are the creator and memberIDs.
func (s *Service) CreateConversation(ctx context.Context, creatorID int64, title string, memberIDs []int64) (Conversation, error) {
	title, err := NormalizeTitle(title)
	if err != nil {
		return Conversation{}, err
	}
	members, err := distinctIDs("memberIds", memberIDs, MaxMembers)
	if err != nil {
		return Conversation{}, err
	}
	members = slices.DeleteFunc(members, func(id int64) bool { return id == creatorID })
	conv, ch, err := s.store.CreateConversation(ctx, creatorID, title, members)
	if err != nil {
		return Conversation{}, err
	}
	s.afterCommit(ctx, ch)
	return conv, nil
}

// EditMessage replaces the body of a message the viewer sent. A message that does not exist,
// or in a conversation the viewer is not a member of, is NOT_FOUND; someone else's message is
// FORBIDDEN; a deleted one cannot be edited (BAD_USER_INPUT).
func (s *Service) EditMessage(ctx context.Context, viewer, messageID int64, body string) (*Message, error) {
	body, err := NormalizeBody(body)
	if err != nil {
		return nil, err
	}
	return s.applyToMessage(ctx, viewer, EditMessage{MessageID: messageID, Body: body})
}

// DeleteMessage makes a message a tombstone: the viewer must be its sender or the
// conversation's owner. Deleting it again returns the tombstone and changes nothing.
func (s *Service) DeleteMessage(ctx context.Context, viewer, messageID int64) (*Message, error) {
	return s.applyToMessage(ctx, viewer, DeleteMessage{MessageID: messageID})
}

// React adds (add) or removes the viewer's reaction to a message. Both are idempotent.
func (s *Service) React(ctx context.Context, viewer, messageID int64, emoji string, add bool) (*Message, error) {
	emoji, err := NormalizeEmoji(emoji)
	if err != nil {
		return nil, err
	}
	return s.applyToMessage(ctx, viewer, React{MessageID: messageID, Emoji: emoji, Add: add})
}

// applyToMessage applies a change to a message and returns the message as it is after it.
func (s *Service) applyToMessage(ctx context.Context, viewer int64, m Mutation) (*Message, error) {
	ev, err := s.apply(ctx, viewer, m)
	if err != nil {
		return nil, err
	}
	return EventMessage(ev), nil
}

// AddMembers makes users members of the conversation; any member may. Users who are members
// already are left alone; a user who does not exist is BAD_USER_INPUT.
func (s *Service) AddMembers(ctx context.Context, viewer, conversationID int64, userIDs []int64) error {
	ids, err := distinctIDs("userIds", userIDs, MaxMembers)
	if err != nil {
		return err
	}
	if len(ids) == 0 {
		return apperr.Invalid("userIds", "name at least one user")
	}
	_, err = s.apply(ctx, viewer, AddMembers{ConversationID: conversationID, UserIDs: ids})
	return err
}

// RemoveMember removes another member; only the owner may (FORBIDDEN otherwise). To leave, a
// member calls Leave.
func (s *Service) RemoveMember(ctx context.Context, viewer, conversationID, userID int64) error {
	if userID < 1 {
		return apperr.Invalid("userId", "must be a positive integer")
	}
	if userID == viewer {
		return apperr.Invalid("userId", "is the viewer: leave with leaveConversation")
	}
	_, err := s.apply(ctx, viewer, RemoveMember{ConversationID: conversationID, UserID: userID})
	return err
}

// Leave removes the viewer from the conversation; an owner who leaves hands ownership to the
// longest-standing member.
func (s *Service) Leave(ctx context.Context, viewer, conversationID int64) error {
	_, err := s.apply(ctx, viewer, LeaveConversation{ConversationID: conversationID})
	return err
}

// Rename gives the conversation a new title; any member may.
func (s *Service) Rename(ctx context.Context, viewer, conversationID int64, title string) error {
	title, err := NormalizeTitle(title)
	if err != nil {
		return err
	}
	_, err = s.apply(ctx, viewer, RenameConversation{ConversationID: conversationID, Title: title})
	return err
}

// apply applies m for viewer and, when it changed something, runs the after-commit hooks. It
// returns the event, or for a change that changed nothing, the state the store reports.
func (s *Service) apply(ctx context.Context, viewer int64, m Mutation) (Event, error) {
	ch, err := s.store.Apply(ctx, viewer, m)
	if err != nil {
		return nil, err
	}
	if ch.changed() {
		s.afterCommit(ctx, ch)
	}
	return ch.Event, nil
}

// MarkRead moves the viewer's read position in the conversation forward to seq (never
// backward: a seq at or behind it changes nothing). A seq past the conversation's last message
// is BAD_USER_INPUT.
func (s *Service) MarkRead(ctx context.Context, viewer, conversationID, seq int64) error {
	if seq < 0 {
		return apperr.Invalid("seq", "must be 0 or more")
	}
	ch, err := s.store.MarkRead(ctx, viewer, conversationID, seq)
	if err != nil {
		return err
	}
	if ch.changed() {
		s.afterCommit(ctx, ch)
	}
	return nil
}

// Conversation reads a conversation of the viewer's as it is now, with their read position and
// unread count. A missing one, and one the viewer is not a member of, is NOT_FOUND.
func (s *Service) Conversation(ctx context.Context, viewer, id int64) (*Conversation, error) {
	convs, err := s.store.ConversationsByIDForMember(ctx, viewer, []int64{id})
	if err != nil {
		return nil, err
	}
	if len(convs) != 1 || convs[0] == nil {
		return nil, apperr.ErrNotFound
	}
	return convs[0], nil
}

// UnreadTotal returns the viewer's unread messages over all their conversations.
func (s *Service) UnreadTotal(ctx context.Context, viewer int64) (int64, error) {
	return s.store.UnreadTotal(ctx, viewer)
}

// EventPage is a page of a conversation's events, oldest first.
type EventPage struct {
	Events  []Event
	HasMore bool
}

// Events returns up to first events of conv after event_seq after (first 1..MaxPageSize).
func (s *Service) Events(ctx context.Context, conv *Conversation, after int64, first int) (EventPage, error) {
	if err := ValidatePageSize("first", first); err != nil {
		return EventPage{}, err
	}
	if after < 0 {
		return EventPage{}, apperr.Invalid("after", "must be 0 or more")
	}
	evs, err := s.store.EventsAfter(ctx, conv.ID, after, first+1)
	if err != nil {
		return EventPage{}, err
	}
	page := EventPage{Events: evs, HasMore: len(evs) > first}
	if page.HasMore {
		page.Events = evs[:first]
	}
	return page, nil
}

// UserList is one page of the user directory.
type UserList struct {
	Users       []User
	HasNextPage bool
}

// SearchUsers lists the users whose name contains search (case-insensitive), ordered by name,
// after the cursor `after`.
func (s *Service) SearchUsers(ctx context.Context, search *string, firstArg *int, after *string) (UserList, error) {
	first := DefaultConversationPageSize
	if firstArg != nil {
		first = *firstArg
	}
	if err := ValidatePageSize("first", first); err != nil {
		return UserList{}, err
	}
	q := ""
	if search != nil {
		var err error
		if q, err = normalizeSearch(*search); err != nil {
			return UserList{}, err
		}
	}
	var cursor *UserCursor
	if after != nil {
		c, err := DecodeUserCursor("after", *after)
		if err != nil {
			return UserList{}, err
		}
		cursor = &c
	}
	users, err := s.store.SearchUsers(ctx, q, cursor, first+1)
	if err != nil {
		return UserList{}, err
	}
	list := UserList{Users: users, HasNextPage: len(users) > first}
	if list.HasNextPage {
		list.Users = users[:first]
	}
	return list, nil
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
func (s *Service) Conversations(ctx context.Context, userID int64, firstArg *int, after *string, unread bool) (ConversationList, error) {
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
	rows, err := s.store.ConversationListByMember(ctx, userID, cursor, first+1, unread)
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
