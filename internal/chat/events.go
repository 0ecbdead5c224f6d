package chat

import "time"

// An Event is one change to a conversation. Every conversation numbers its events 1, 2, 3, …
// (EventSeq) without holes, in commit order: the writer takes the next number under the
// conversation's row lock, in the transaction of the change, and stores the event with it. So a
// reader that has seen event N and receives N+2 knows that N+1 is committed and can read it, and
// a client that remembers the last number it saw resumes exactly.
//
// The GraphQL types of the ConversationEvent interface bind to these types one to one.
type Event interface {
	Header() *EventHeader
}

// EventHeader is what every event has.
type EventHeader struct {
	EventSeq       int64
	ConversationID int64
	Actor          User // who made the change
	At             time.Time
}

// Header returns h: every event type embeds an EventHeader.
func (h *EventHeader) Header() *EventHeader { return h }

// MessageAdded: a message was sent.
type MessageAdded struct {
	EventHeader
	Message *Message
}

// MessageEdited: a message's body was replaced.
type MessageEdited struct {
	EventHeader
	Message *Message
}

// MessageDeleted: a message became a tombstone.
type MessageDeleted struct {
	EventHeader
	Message *Message
}

// ReactionChanged: the actor added (or removed) a reaction with Emoji to a message.
type ReactionChanged struct {
	EventHeader
	Message *Message
	Emoji   string
	Added   bool
}

// MembersAdded: users became members.
type MembersAdded struct {
	EventHeader
	Users []User
}

// MemberRemoved: a member was removed by the owner, or left (then the actor is the user).
type MemberRemoved struct {
	EventHeader
	User User
}

// ConversationRenamed: the conversation has a new title.
type ConversationRenamed struct {
	EventHeader
	Title string
}

// EventMessage returns the message an event is about, or nil.
func EventMessage(e Event) *Message {
	if p := eventMessage(e); p != nil {
		return *p
	}
	return nil
}

// SetEventMessage gives an event about a message the message m; other events stay as they are.
func SetEventMessage(e Event, m *Message) {
	if p := eventMessage(e); p != nil {
		*p = m
	}
}

// eventMessage returns the field that holds the message e is about, or nil: the one list of
// the event types that are about a message.
func eventMessage(e Event) **Message {
	switch e := e.(type) {
	case *MessageAdded:
		return &e.Message
	case *MessageEdited:
		return &e.Message
	case *MessageDeleted:
		return &e.Message
	case *ReactionChanged:
		return &e.Message
	}
	return nil
}

// A Mutation is one change to a conversation, applied by Store.Apply: one of the types below.
type Mutation interface{ mutation() }

// EditMessage replaces the body of a message the actor sent and that is not deleted.
type EditMessage struct {
	MessageID int64
	Body      string
}

// DeleteMessage makes a message a tombstone: the actor must be its sender or the
// conversation's owner. Deleting a deleted message changes nothing.
type DeleteMessage struct{ MessageID int64 }

// React adds (or removes) the actor's reaction with Emoji to a message. Adding one that is
// there, or removing one that is not, changes nothing.
type React struct {
	MessageID int64
	Emoji     string
	Add       bool
}

// AddMembers makes users members; those who are members already are left alone.
type AddMembers struct {
	ConversationID int64
	UserIDs        []int64
}

// RemoveMember removes a member: the actor must be the owner. The owner removing themselves
// leaves (LeaveConversation).
type RemoveMember struct {
	ConversationID int64
	UserID         int64
}

// LeaveConversation removes the actor; an owner who leaves hands ownership to the
// longest-standing member.
type LeaveConversation struct{ ConversationID int64 }

// RenameConversation gives the conversation a new title.
type RenameConversation struct {
	ConversationID int64
	Title          string
}

func (EditMessage) mutation()        {}
func (DeleteMessage) mutation()      {}
func (React) mutation()              {}
func (AddMembers) mutation()         {}
func (RemoveMember) mutation()       {}
func (LeaveConversation) mutation()  {}
func (RenameConversation) mutation() {}
