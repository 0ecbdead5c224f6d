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
}

// Message is one message of a conversation. Seq numbers a conversation's messages 1, 2, 3, …
// in commit order, without holes.
type Message struct {
	ID              int64
	ConversationID  int64
	Seq             int64
	SenderID        int64
	SenderName      string
	Body            string
	CreatedAt       time.Time
	ClientMessageID *string
}

// Sender returns the message's sender as read with the message.
func (m *Message) Sender() *User { return &User{ID: m.SenderID, Name: m.SenderName} }

// PageKey names one offset page of a conversation's history, newest first.
type PageKey struct {
	ConversationID int64
	Limit          int
	Offset         int
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

// Store persists the domain. Batch methods take keys and return results in key order, one per key.
type Store interface {
	// UsersByIDs returns the users with the given ids, in key order; a missing user is nil.
	UsersByIDs(ctx context.Context, ids []int64) ([]*User, error)
	// ConversationsByIDForMember returns, in key order, the conversations that userID is a member
	// of; a missing conversation, and one the user is not a member of, is nil.
	ConversationsByIDForMember(ctx context.Context, userID int64, ids []int64) ([]*Conversation, error)
	// ConversationListByMember lists userID's conversations, latest activity first, after the cursor.
	ConversationListByMember(ctx context.Context, userID int64, after *ConversationCursor, limit int) ([]Conversation, error)
	// MembersByConversations returns, in key order, each conversation's members ordered by id.
	MembersByConversations(ctx context.Context, conversationIDs []int64) ([][]User, error)
	// MessagePages returns the pages, in key order.
	MessagePages(ctx context.Context, keys []PageKey) ([]Page, error)
	// MessagesBefore returns up to limit messages with seq < beforeSeq, newest first.
	MessagesBefore(ctx context.Context, conversationID, beforeSeq int64, limit int) ([]Message, error)
	// MessagesAfter returns up to limit messages with seq > afterSeq, oldest first.
	MessagesAfter(ctx context.Context, conversationID, afterSeq int64, limit int) ([]Message, error)
	// InsertMessage stores m at the conversation's next seq. When the sender already sent a
	// message with m.ClientMessageID to the conversation, it returns that one and created=false.
	// A conversation that is missing or that the sender is not a member of is ErrNotFound.
	InsertMessage(ctx context.Context, m NewMessage) (msg Message, created bool, err error)
	// CreateConversation creates a conversation with the creator and the other members.
	// It reports apperr BAD_USER_INPUT when a member does not exist.
	CreateConversation(ctx context.Context, creatorID int64, title string, memberIDs []int64) (Conversation, error)
}
