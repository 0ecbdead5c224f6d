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

// Changes to a conversation other than sending: each runs in one transaction that first takes
// the conversation's next event_seq under its row lock (ConversationBumpEvent, which also checks
// that the actor is a member and reads their role), then checks what may only be checked under
// the lock, makes the change and stores its event. A change that would change nothing (an
// idempotent repeat) rolls the transaction back, so that no event_seq is spent and event_seq
// stays gap-free.

// errNoChange rolls back a transaction whose change would change nothing.
var errNoChange = errors.New("no change")

var (
	errNotYourMessage = apperr.New(apperr.Forbidden, "only the sender may edit a message")
	errNotDeletable   = apperr.New(apperr.Forbidden, "only the sender or the conversation's owner may delete a message")
	errNotOwner       = apperr.New(apperr.Forbidden, "only the conversation's owner may remove members")
	errDeleted        = apperr.Invalid("id", "the message is deleted")
	errNotAMember     = apperr.New(apperr.NotFound, "the user is not a member of the conversation")
	errTooManyEmojis  = apperr.Invalid("emoji", "a message has at most %d different reactions", chat.MaxReactions)
)

// Apply makes one change to a conversation on behalf of actorID (see chat.Store).
func (s *Store) Apply(ctx context.Context, actorID int64, m chat.Mutation) (chat.Change, error) {
	c, err := s.apply(ctx, actorID, m)
	if err == nil && c.Event != nil {
		s.stamp(ctx, &c)
	}
	return c, err
}

func (s *Store) apply(ctx context.Context, actorID int64, m chat.Mutation) (chat.Change, error) {
	switch m := m.(type) {
	case chat.EditMessage, chat.DeleteMessage, chat.React:
		return s.changeMessage(ctx, actorID, m)
	case chat.AddMembers:
		return s.changeConversation(ctx, actorID, m.ConversationID, func(q *dbsqlc.Queries, h chat.EventHeader, _ chat.Role, ch *chat.Change) (chat.Event, error) {
			return addMembersChecked(ctx, q, h, m.UserIDs, ch)
		})
	case chat.RemoveMember:
		if m.UserID == actorID {
			return s.apply(ctx, actorID, chat.LeaveConversation{ConversationID: m.ConversationID})
		}
		return s.changeConversation(ctx, actorID, m.ConversationID, func(q *dbsqlc.Queries, h chat.EventHeader, role chat.Role, ch *chat.Change) (chat.Event, error) {
			if role != chat.RoleOwner {
				return nil, errNotOwner
			}
			return removeMember(ctx, q, h, m.UserID, ch)
		})
	case chat.LeaveConversation:
		return s.changeConversation(ctx, actorID, m.ConversationID, func(q *dbsqlc.Queries, h chat.EventHeader, role chat.Role, ch *chat.Change) (chat.Event, error) {
			ev, err := removeMember(ctx, q, h, actorID, ch)
			if err != nil || role != chat.RoleOwner {
				return ev, err
			}
			next, err := q.MemberLongestStanding(ctx, h.ConversationID)
			if errors.Is(err, pgx.ErrNoRows) {
				return ev, nil // the last member left
			}
			if err != nil {
				return nil, fmt.Errorf("longest-standing member: %w", err)
			}
			return ev, q.MemberMakeOwner(ctx, dbsqlc.MemberMakeOwnerParams{ConversationID: h.ConversationID, UserID: next})
		})
	case chat.RenameConversation:
		return s.changeConversation(ctx, actorID, m.ConversationID, func(q *dbsqlc.Queries, h chat.EventHeader, _ chat.Role, _ *chat.Change) (chat.Event, error) {
			if _, err := q.ConversationRename(ctx, dbsqlc.ConversationRenameParams{ID: h.ConversationID, Title: m.Title}); err != nil {
				return nil, fmt.Errorf("rename: %w", err)
			}
			err := q.EventInsert(ctx, eventRow(h, "conversation_renamed", func(p *dbsqlc.EventInsertParams) { p.Title = &m.Title }))
			return &chat.ConversationRenamed{EventHeader: h, Title: m.Title}, err
		})
	}
	return chat.Change{}, fmt.Errorf("db: unknown change %T", m)
}

// changeConversation runs change under conversationID's row lock, with the header of the event
// it is to store and the Change so far (the members before it), which change may add to. A
// conversation that is missing or that the actor is not a member of is NOT_FOUND. When change
// returns errNoChange the returned Change's event has EventSeq 0.
func (s *Store) changeConversation(ctx context.Context, actorID, conversationID int64, change func(*dbsqlc.Queries, chat.EventHeader, chat.Role, *chat.Change) (chat.Event, error)) (chat.Change, error) {
	var out chat.Change
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		bump, err := q.ConversationBumpEvent(ctx, dbsqlc.ConversationBumpEventParams{ID: conversationID, ActorID: actorID})
		if errors.Is(err, pgx.ErrNoRows) {
			return apperr.ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("bump event: %w", err)
		}
		h := chat.EventHeader{
			EventSeq: bump.LastEventSeq, ConversationID: conversationID,
			Actor: chat.User{ID: actorID, Name: bump.ActorName}, At: bump.At,
		}
		out = chat.Change{ConversationID: conversationID, Members: bump.MemberIds}
		out.Event, err = change(q, h, chat.Role(bump.Role), &out)
		return err
	})
	if errors.Is(err, errNoChange) {
		return chat.Change{ConversationID: conversationID, Event: &chat.MembersAdded{EventHeader: chat.EventHeader{ConversationID: conversationID}}}, nil
	}
	if err != nil {
		return chat.Change{}, err
	}
	return out, nil
}

// changeMessage edits, deletes or reacts to a message.
func (s *Store) changeMessage(ctx context.Context, actorID int64, m chat.Mutation) (chat.Change, error) {
	var id int64
	switch m := m.(type) {
	case chat.EditMessage:
		id = m.MessageID
	case chat.DeleteMessage:
		id = m.MessageID
	case chat.React:
		id = m.MessageID
	}
	loc, err := s.q.MessageLocate(ctx, dbsqlc.MessageLocateParams{UserID: actorID, ID: id})
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Change{}, apperr.ErrNotFound
	}
	if err != nil {
		return chat.Change{}, fmt.Errorf("locate message: %w", err)
	}
	var msg *chat.Message
	ch, err := s.changeConversation(ctx, actorID, loc.ConversationID, func(q *dbsqlc.Queries, h chat.EventHeader, role chat.Role, _ *chat.Change) (chat.Event, error) {
		state, err := q.MessageState(ctx, dbsqlc.MessageStateParams{ConversationID: h.ConversationID, ID: id})
		if err != nil {
			return nil, fmt.Errorf("message state: %w", err)
		}
		ev, err := changeMessageLocked(ctx, q, h, role, state, m)
		if err != nil {
			return nil, err
		}
		if msg, err = messageByID(ctx, q, id); err != nil {
			return nil, err
		}
		chat.SetEventMessage(ev, msg)
		return ev, nil
	})
	if err != nil {
		return chat.Change{}, err
	}
	if ch.Event.Header().EventSeq != 0 {
		return ch, nil
	}
	// Nothing changed: the message as it is, under an event that numbers nothing.
	if msg, err = messageByID(ctx, s.q, id); err != nil {
		return chat.Change{}, err
	}
	ch.Event = &chat.MessageEdited{EventHeader: chat.EventHeader{ConversationID: loc.ConversationID}, Message: msg}
	return ch, nil
}

// changeMessageLocked checks and makes a change to a message under the conversation's lock.
func changeMessageLocked(ctx context.Context, q *dbsqlc.Queries, h chat.EventHeader, role chat.Role, state dbsqlc.MessageStateRow, m chat.Mutation) (chat.Event, error) {
	switch m := m.(type) {
	case chat.EditMessage:
		switch {
		case state.SenderID != h.Actor.ID:
			return nil, errNotYourMessage
		case state.Deleted:
			return nil, errDeleted
		}
		if _, err := q.MessageEdit(ctx, dbsqlc.MessageEditParams{ConversationID: h.ConversationID, ID: m.MessageID, Body: m.Body}); err != nil {
			return nil, fmt.Errorf("edit message: %w", err)
		}
		return &chat.MessageEdited{EventHeader: h}, q.EventInsert(ctx, eventRow(h, "message_edited", onMessage(m.MessageID)))
	case chat.DeleteMessage:
		switch { // permission first: someone else's message is refused whether deleted or not
		case state.SenderID != h.Actor.ID && role != chat.RoleOwner:
			return nil, errNotDeletable
		case state.Deleted:
			return nil, errNoChange
		}
		if err := q.ReactionsDeleteForMessage(ctx, dbsqlc.ReactionsDeleteForMessageParams{ConversationID: h.ConversationID, MessageID: m.MessageID}); err != nil {
			return nil, fmt.Errorf("delete reactions: %w", err)
		}
		if _, err := q.MessageDelete(ctx, dbsqlc.MessageDeleteParams{ConversationID: h.ConversationID, ID: m.MessageID}); err != nil {
			return nil, fmt.Errorf("delete message: %w", err)
		}
		return &chat.MessageDeleted{EventHeader: h}, q.EventInsert(ctx, eventRow(h, "message_deleted", onMessage(m.MessageID)))
	case chat.React:
		return react(ctx, q, h, state, m)
	}
	return nil, fmt.Errorf("db: unknown change %T", m)
}

func react(ctx context.Context, q *dbsqlc.Queries, h chat.EventHeader, state dbsqlc.MessageStateRow, m chat.React) (chat.Event, error) {
	if state.Deleted {
		return nil, errDeleted
	}
	key := struct{ conv, msg int64 }{h.ConversationID, m.MessageID}
	var n int64
	var err error
	if m.Add {
		if state.DistinctReactions >= chat.MaxReactions {
			has, err := q.ReactionHasEmoji(ctx, dbsqlc.ReactionHasEmojiParams{ConversationID: key.conv, MessageID: key.msg, Emoji: m.Emoji})
			if err != nil {
				return nil, fmt.Errorf("reaction has emoji: %w", err)
			}
			if !has {
				return nil, errTooManyEmojis
			}
		}
		n, err = q.ReactionInsert(ctx, dbsqlc.ReactionInsertParams{ConversationID: key.conv, MessageID: key.msg, UserID: h.Actor.ID, Emoji: m.Emoji})
	} else {
		n, err = q.ReactionDelete(ctx, dbsqlc.ReactionDeleteParams{ConversationID: key.conv, MessageID: key.msg, UserID: h.Actor.ID, Emoji: m.Emoji})
	}
	switch {
	case err != nil:
		return nil, fmt.Errorf("reaction: %w", err)
	case n == 0:
		return nil, errNoChange
	}
	if err := q.ReactionsSummarize(ctx, dbsqlc.ReactionsSummarizeParams{ConversationID: key.conv, MessageID: key.msg}); err != nil {
		return nil, fmt.Errorf("summarize reactions: %w", err)
	}
	err = q.EventInsert(ctx, eventRow(h, "reaction_changed", onMessage(m.MessageID), func(p *dbsqlc.EventInsertParams) {
		p.Emoji, p.Added = &m.Emoji, &m.Add
	}))
	return &chat.ReactionChanged{EventHeader: h, Emoji: m.Emoji, Added: m.Add}, err
}

// addMembersChecked adds users who exist (BAD_USER_INPUT otherwise); none new is no change.
func addMembersChecked(ctx context.Context, q *dbsqlc.Queries, h chat.EventHeader, userIDs []int64, ch *chat.Change) (chat.Event, error) {
	n, err := q.UsersExist(ctx, userIDs)
	if err != nil {
		return nil, fmt.Errorf("users exist: %w", err)
	}
	if int(n) != len(userIDs) {
		return nil, apperr.Invalid("userIds", "names a user that does not exist")
	}
	ev, err := addMembers(ctx, q, h, 0, userIDs, ch)
	if err == nil && len(ev.Users) == 0 {
		return nil, errNoChange
	}
	return ev, err
}

// addMembers inserts the users who are not members yet (ownerID as the owner, 0 for none) and
// stores their MembersAdded event with header h, and each one's UserJoined event, when there
// are any; ch learns of them. An actor without a name (a new conversation's creator) takes it
// from the rows.
func addMembers(ctx context.Context, q *dbsqlc.Queries, h chat.EventHeader, ownerID int64, userIDs []int64, ch *chat.Change) (*chat.MembersAdded, error) {
	rows, err := q.MembersInsert(ctx, dbsqlc.MembersInsertParams{ConversationID: h.ConversationID, OwnerID: ownerID, UserIds: userIDs})
	if err != nil {
		return nil, fmt.Errorf("insert members: %w", err)
	}
	ev := &chat.MembersAdded{EventHeader: h}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ev.Users = append(ev.Users, chat.User{ID: r.ID, Name: r.Name})
		ids[i] = r.ID
		if r.ID == h.Actor.ID && ev.Actor.Name == "" {
			ev.Actor = ev.Users[i]
		}
	}
	if len(ids) == 0 {
		return ev, nil
	}
	if err := q.EventInsert(ctx, eventRow(h, "members_added", func(p *dbsqlc.EventInsertParams) { p.UserIds = ids })); err != nil {
		return nil, err
	}
	ch.Members = append(ch.Members, ids...)
	ch.MembersChanged = append(ch.MembersChanged, ids...)
	return ev, appendUserEvents(ctx, q, ch, ids, chat.UserEvent{Kind: chat.UserJoined, ConversationID: h.ConversationID, ConversationEventSeq: h.EventSeq, At: h.At})
}

// removeMember removes userID (NOT_FOUND when not a member) and stores the MemberRemoved event
// and the user's UserLeft event; ch learns of them.
func removeMember(ctx context.Context, q *dbsqlc.Queries, h chat.EventHeader, userID int64, ch *chat.Change) (*chat.MemberRemoved, error) {
	n, err := q.MemberDelete(ctx, dbsqlc.MemberDeleteParams{ConversationID: h.ConversationID, UserID: userID})
	if err != nil {
		return nil, fmt.Errorf("remove member: %w", err)
	}
	if n == 0 {
		return nil, errNotAMember
	}
	user := h.Actor
	if userID != h.Actor.ID {
		users, err := q.UsersByIDs(ctx, []int64{userID})
		if err != nil || len(users) != 1 {
			return nil, fmt.Errorf("removed user: %w", err)
		}
		user = chat.User{ID: users[0].ID, Name: users[0].Name}
	}
	if err := q.EventInsert(ctx, eventRow(h, "member_removed", func(p *dbsqlc.EventInsertParams) { p.UserIds = []int64{userID} })); err != nil {
		return nil, err
	}
	ch.MembersChanged = append(ch.MembersChanged, userID)
	return &chat.MemberRemoved{EventHeader: h, User: user},
		appendUserEvents(ctx, q, ch, []int64{userID}, chat.UserEvent{Kind: chat.UserLeft, ConversationID: h.ConversationID, ConversationEventSeq: h.EventSeq, At: h.At})
}

// appendUserEvents stores ev (all but its user and event_seq) as the next event of each of the
// users, and adds them to ch.
func appendUserEvents(ctx context.Context, q *dbsqlc.Queries, ch *chat.Change, userIDs []int64, ev chat.UserEvent) error {
	p := dbsqlc.UserEventsAppendParams{UserIds: userIDs, Kind: string(ev.Kind), ConversationID: ev.ConversationID, At: ev.At}
	switch ev.Kind {
	case chat.UserRead:
		p.ReadSeq = &ev.ReadSeq
	default:
		p.ConversationEventSeq = &ev.ConversationEventSeq
	}
	rows, err := q.UserEventsAppend(ctx, p)
	if err != nil {
		return fmt.Errorf("append user events: %w", err)
	}
	for _, r := range rows {
		e := ev
		e.UserID, e.EventSeq = r.UserID, r.EventSeq
		ch.UserEvents = append(ch.UserEvents, e)
	}
	return nil
}

// eventRow is the stored form of an event with header h.
func eventRow(h chat.EventHeader, kind string, set ...func(*dbsqlc.EventInsertParams)) dbsqlc.EventInsertParams {
	p := dbsqlc.EventInsertParams{ConversationID: h.ConversationID, EventSeq: h.EventSeq, Kind: kind, ActorID: h.Actor.ID, At: h.At}
	for _, f := range set {
		f(&p)
	}
	return p
}

func onMessage(id int64) func(*dbsqlc.EventInsertParams) {
	return func(p *dbsqlc.EventInsertParams) { p.MessageID = &id }
}

func messageByID(ctx context.Context, q *dbsqlc.Queries, id int64) (*chat.Message, error) {
	rows, err := q.MessagesByID(ctx, []int64{id})
	if err != nil {
		return nil, fmt.Errorf("message by id: %w", err)
	}
	if len(rows) != 1 {
		return nil, apperr.ErrNotFound
	}
	m := message(messageRow(rows[0]))
	return &m, nil
}

// EventsAfter returns a conversation's events after event_seq after (see chat.Store).
func (s *Store) EventsAfter(ctx context.Context, conversationID, after int64, limit int) ([]chat.Event, error) {
	rows, err := s.q.EventsAfter(ctx, dbsqlc.EventsAfterParams{ConversationID: conversationID, AfterSeq: after, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("events after: %w", err)
	}
	out := make([]chat.Event, 0, len(rows))
	for _, r := range rows {
		h := chat.EventHeader{EventSeq: r.EventSeq, ConversationID: conversationID, Actor: chat.User{ID: r.ActorID, Name: r.ActorName}, At: r.At}
		var msg *chat.Message
		if r.MessageID != nil {
			m := message(messageRow{
				ID: *r.MessageID, ConversationID: conversationID, Seq: *r.Seq, SenderID: *r.SenderID, SenderName: *r.SenderName,
				Body: *r.Body, ClientMessageID: r.ClientMessageID, CreatedAt: *r.CreatedAt, EditedAt: r.EditedAt,
				DeletedAt: r.DeletedAt, Version: *r.Version, Reactions: r.Reactions,
			})
			msg = &m
		}
		users := make([]chat.User, len(r.UserIds))
		for i, id := range r.UserIds {
			users[i] = chat.User{ID: id}
			if i < len(r.UserNames) {
				users[i].Name = r.UserNames[i]
			}
		}
		switch r.Kind {
		case "message_added":
			out = append(out, &chat.MessageAdded{EventHeader: h, Message: msg})
		case "message_edited":
			out = append(out, &chat.MessageEdited{EventHeader: h, Message: msg})
		case "message_deleted":
			out = append(out, &chat.MessageDeleted{EventHeader: h, Message: msg})
		case "reaction_changed":
			out = append(out, &chat.ReactionChanged{EventHeader: h, Message: msg, Emoji: deref(r.Emoji), Added: r.Added != nil && *r.Added})
		case "members_added":
			out = append(out, &chat.MembersAdded{EventHeader: h, Users: users})
		case "member_removed":
			ev := &chat.MemberRemoved{EventHeader: h}
			if len(users) == 1 {
				ev.User = users[0]
			}
			out = append(out, ev)
		case "conversation_renamed":
			out = append(out, &chat.ConversationRenamed{EventHeader: h, Title: deref(r.Title)})
		default:
			return nil, fmt.Errorf("events after: unknown kind %q", r.Kind)
		}
	}
	return out, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// StreamHeads returns the newest event_seq of each of the conversations and of each of the users
// (see live.Store), in one statement; ids that do not exist are left out.
func (s *Store) StreamHeads(ctx context.Context, conversations, users []int64) (conversationHeads, userHeads map[int64]int64, err error) {
	rows, err := s.q.StreamHeads(ctx, dbsqlc.StreamHeadsParams{ConversationIds: conversations, UserIds: users})
	if err != nil {
		return nil, nil, fmt.Errorf("stream heads: %w", err)
	}
	conversationHeads, userHeads = make(map[int64]int64, len(conversations)), make(map[int64]int64, len(users))
	for _, r := range rows {
		if r.IsUser {
			userHeads[r.ID] = r.LastEventSeq
		} else {
			conversationHeads[r.ID] = r.LastEventSeq
		}
	}
	return conversationHeads, userHeads, nil
}
