// Package chat is the domain of Threadline: users, conversations and their messages, the rules
// for reading and writing them, and the Store that persists them.
//
// The GraphQL layer binds its types directly to the types here, so they carry foreign keys
// (SenderID) rather than storage types. Messages carry their sender's name as well, read in the
// same statement as the message, so that a page with senders costs one statement.
package chat

import (
	"context"
	"time"
)

// User is a person who chats.
type User struct {
	ID   int64
	Name string
}

// Conversation is a thread of messages between its members.
type Conversation struct {
	ID        int64
	Title     string
	CreatedAt time.Time
	// LastSeq is the seq of the newest message, 0 while the conversation is empty.
	LastSeq int64
	// LastMessageAt is the time of the newest message, or the creation time while empty.
	LastMessageAt time.Time
	// LastEventSeq is the event_seq of the newest event (see Event), 0 while there is none.
	LastEventSeq int64
	// ViewerLastReadSeq is the read position of the member the conversation was read for
	// (ConversationsByIDForMember, ConversationListByMember).
	ViewerLastReadSeq int64
	// ViewerUnread is that member's unread count, when it was read with the conversation (a
	// list that asked for it); nil otherwise (UnreadCounts reads it).
	ViewerUnread *int64
	// Generation is the history-cache generation token the conversation was read under (zero
	// when it was not read through the cache): a response cache records it as the dependency
	// of what the conversation's fields show (title, members, events).
	Generation Token
	// LatestPage, when set, reads the conversation's newest page of one message (offset 0,
	// limit 1: its lastMessage) once for every value read in the same batch as this one (the
	// sidebar's, see ConversationForMembers), the first time any of them asks; nil: the
	// lastMessage resolver loads the page itself.
	LatestPage func(ctx context.Context) (Page, error)
}

// Message is one message of a conversation. Seq numbers a conversation's messages 1, 2, 3, …
// in commit order, without holes: a deleted message stays as a tombstone with its seq.
type Message struct {
	ID              int64
	ConversationID  int64
	Seq             int64
	SenderID        int64
	SenderName      string
	Body            string // "" once deleted
	CreatedAt       time.Time
	ClientMessageID *string
	EditedAt        *time.Time // nil until edited
	DeletedAt       *time.Time // nil until deleted
	// Version is 1 when sent, and grows by one with each edit or deletion.
	Version int
	// Reactions are grouped by emoji, most used first; none once deleted.
	Reactions []Reaction
}

// Reaction is the count of one emoji on a message. Whether the viewer is among those who
// reacted is not part of it: a page of history is the same for every viewer (and cached as
// such), and the viewer's own reactions are read apart.
type Reaction struct {
	ConversationID, MessageID int64
	Emoji                     string
	Count                     int
}

// Role is a member's role in a conversation.
type Role string

// The roles. The owner (the creator, at first) may remove members; when the owner leaves, the
// longest-standing member becomes the owner.
const (
	RoleOwner  Role = "owner"
	RoleMember Role = "member"
)

// Membership is one member of a conversation, with their read position (the seq of the last
// message they read, 0: none) and when they last moved it (nil until they did).
type Membership struct {
	User        User
	Role        Role
	JoinedAt    time.Time
	LastReadSeq int64
	ReadAt      *time.Time
}

// UserCursor is a position in the user directory, ordered by lower-case name then id.
type UserCursor struct {
	Name string // lower case
	ID   int64
}

// Sender returns the message's sender as read with the message.
func (m *Message) Sender() *User { return &User{ID: m.SenderID, Name: m.SenderName} }

// PageKey names one page of a conversation's history, newest first: the Limit messages from
// Offset below the newest (an offset page), or, when Before is set, the Limit newest messages
// with seq below Before (a page by cursor, history(before:); Offset is then 0).
type PageKey struct {
	ConversationID int64
	Limit          int
	Offset         int
	Before         int64
}

// Page is an offset page of history, newest first.
type Page struct {
	Messages []Message
	HasMore  bool
	// Generation is the history-cache generation token the page was read under (zero when it
	// was not read through the cache). A response cache records it as the page's dependency.
	Generation Token
}

// Token is a version stamp kept in Redis: the key that holds it and the value it had when data
// was read. Data read under a token is current while the key still holds that value.
type Token struct {
	Key, Value string
}

// NewMessage is a message to be stored.
type NewMessage struct {
	ConversationID  int64
	SenderID        int64
	Body            string
	ClientMessageID *string
}

// ConversationCursor is a position in a user's conversation list (latest activity first).
type ConversationCursor struct {
	LastMessageAt time.Time
	ID            int64
}

// MemberPageStore is a Store that reads offset pages together with the conversations they
// belong to, as a member sees them, in one statement (the database store; a cache in front of
// it does not, since its pages come from elsewhere). ConversationPagesForMember returns per key
// the conversation (nil when it is missing or userID is not a member) and its page.
type MemberPageStore interface {
	ConversationPagesForMember(ctx context.Context, userID int64, keys []PageKey) ([]*Conversation, []Page, error)
}

// Store persists the domain. Batch methods take keys and return results in key order, one per key.
type Store interface {
	// UsersByIDs returns the users with the given ids, in key order; a missing user is nil.
	UsersByIDs(ctx context.Context, ids []int64) ([]*User, error)
	// ConversationsByIDForMember returns, in key order, the conversations that userID is a member
	// of; a missing conversation, and one the user is not a member of, is nil.
	ConversationsByIDForMember(ctx context.Context, userID int64, ids []int64) ([]*Conversation, error)
	// ConversationListByMember lists userID's conversations, latest activity first, after the
	// cursor; with unread, each with the user's unread count (ViewerUnread).
	ConversationListByMember(ctx context.Context, userID int64, after *ConversationCursor, limit int, unread bool) ([]Conversation, error)
	// ConversationForMembers returns, in key order, conversation conversationID as each of
	// userIDs sees it, with their read position and unread count (ViewerUnread), read in one
	// snapshot: nil for a user who is not a member (all nil when it is missing).
	ConversationForMembers(ctx context.Context, conversationID int64, userIDs []int64) ([]*Conversation, error)
	// UnreadCounts returns, in key order, userID's unread count in each conversation: the
	// messages after their read position that are not deleted and that they did not send (0 for
	// one they are not a member of).
	UnreadCounts(ctx context.Context, userID int64, conversationIDs []int64) ([]int64, error)
	// MembershipsByConversations returns, in key order, each conversation's members ordered by
	// user id.
	MembershipsByConversations(ctx context.Context, conversationIDs []int64) ([][]Membership, error)
	// MessagesByID returns the messages with the given ids as they are now, in key order; a
	// missing one is nil. The caller checks that the viewer may see them.
	MessagesByID(ctx context.Context, ids []int64) ([]*Message, error)
	// ReactionsOfUser returns, in key order, the emojis with which userID reacted to each message
	// (of the given conversations).
	ReactionsOfUser(ctx context.Context, userID int64, conversationIDs, messageIDs []int64) ([][]string, error)
	// EventsAfter returns up to limit events of a conversation with event_seq > after, oldest
	// first, each with what it names as it is now.
	EventsAfter(ctx context.Context, conversationID, after int64, limit int) ([]Event, error)
	// UserEventsAfter returns up to limit of userID's own events with event_seq > after, oldest
	// first.
	UserEventsAfter(ctx context.Context, userID, after int64, limit int) ([]UserEvent, error)
	// UserStreamStart returns the event_seq of userID's newest event and of the oldest one
	// kept (0 when none is kept), and for each of their conversations the event_seq of its
	// newest event: where a sidebar stream starting now begins. A user that does not exist is
	// ErrNotFound.
	UserStreamStart(ctx context.Context, userID int64) (last, firstKept int64, conversations map[int64]int64, err error)
	// UnreadTotal returns userID's unread messages over all their conversations.
	UnreadTotal(ctx context.Context, userID int64) (int64, error)
	// SearchUsers lists the users whose name contains search (case-insensitive; "" for all),
	// ordered by lower-case name then id, after the cursor.
	SearchUsers(ctx context.Context, search string, after *UserCursor, limit int) ([]User, error)
	// MessagePages returns the pages, in key order.
	MessagePages(ctx context.Context, keys []PageKey) ([]Page, error)
	// MessagesBefore returns up to limit messages with seq < beforeSeq, newest first.
	MessagesBefore(ctx context.Context, conversationID, beforeSeq int64, limit int) ([]Message, error)
	// MessagesAfter returns up to limit messages with seq > afterSeq, oldest first.
	MessagesAfter(ctx context.Context, conversationID, afterSeq int64, limit int) ([]Message, error)
	// MessagesAround returns, newest first, up to older messages with seq <= seq (the message
	// at seq and those before it) and up to newer messages with seq > seq (those just after it).
	MessagesAround(ctx context.Context, conversationID, seq int64, older, newer int) ([]Message, error)
	// InsertMessage stores m at the conversation's next seq, with its MessageAdded event (the
	// Change's Event) at the next event_seq. When the sender already sent a message with
	// m.ClientMessageID to the conversation, it returns that one (and its event) and
	// created=false. A conversation that is missing or that the sender is not a member of is
	// ErrNotFound.
	InsertMessage(ctx context.Context, m NewMessage) (c Change, created bool, err error)
	// Apply makes one change to a conversation (a Mutation) on behalf of actorID, with its
	// event, in one transaction under the conversation's row lock. When the change would change
	// nothing (an idempotent repeat) it spends no event_seq and returns a Change whose Event
	// has EventSeq 0, carrying the current state (the tombstone of a message deleted before,
	// say).
	Apply(ctx context.Context, actorID int64, m Mutation) (Change, error)
	// SearchMessages returns up to limit messages matching query (websearch syntax, see
	// MessageSearch) in the conversations viewerID is a member of now, or only in
	// conversationID when it is not 0, newest first by (CreatedAt, ID), after the cursor;
	// deleted messages never match. Each hit's Marked is set. A query with no word to look for
	// matches nothing.
	SearchMessages(ctx context.Context, viewerID int64, query string, conversationID int64, after *SearchCursor, limit int) ([]SearchHit, error)
	// CreateConversation creates a conversation with the creator (its owner) and the other
	// members, and its first event: the MembersAdded of everyone. It reports apperr
	// BAD_USER_INPUT when a member does not exist.
	CreateConversation(ctx context.Context, creatorID int64, title string, memberIDs []int64) (Conversation, Change, error)
	// MarkRead moves userID's read position in the conversation forward to seq, with its
	// UserRead event. A position at or behind seq changes nothing (a zero Change); a seq past
	// the conversation's last message is BAD_USER_INPUT; a conversation that is missing or that
	// the user is not a member of is ErrNotFound.
	MarkRead(ctx context.Context, userID, conversationID, seq int64) (Change, error)
}
