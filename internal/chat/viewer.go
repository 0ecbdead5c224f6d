package chat

import "time"

// ReadState is a member's read position in a conversation: the seq of the last message they
// read (0: none) and when they last moved it (nil until they did).
type ReadState struct {
	User        User
	LastReadSeq int64
	At          *time.Time
}

// A ViewerEvent is one item of a viewer's sidebar stream (viewerEvents): something about one of
// their conversations, with the stream position that follows it. The GraphQL types of the
// ViewerEvent interface bind to these types one to one.
type ViewerEvent interface {
	viewerEvent()
	// StreamPosition is the opaque position after the event: resuming after it delivers every
	// later event once.
	StreamPosition() string
}

// ViewerEventHeader is what every viewer event has.
type ViewerEventHeader struct {
	Position string
}

// StreamPosition returns the position after the event.
func (h *ViewerEventHeader) StreamPosition() string { return h.Position }
func (*ViewerEventHeader) viewerEvent()            {}

// ConversationActivity: a message was sent, edited or deleted, or the conversation renamed.
// The conversation is read when the event is delivered, with its last message and the
// viewer's unread count.
type ConversationActivity struct {
	ViewerEventHeader
	ConversationID int64
}

// ConversationJoined: the viewer became a member of the conversation.
type ConversationJoined struct {
	ViewerEventHeader
	ConversationID int64
}

// ConversationLeft: the viewer is no longer a member (removed, or left on another device).
type ConversationLeft struct {
	ViewerEventHeader
	ConversationID int64
}

// ReadStateChanged: the viewer moved their read position in the conversation (on another
// device, or this one).
type ReadStateChanged struct {
	ViewerEventHeader
	ConversationID int64
}

// TypingEvent: a member started or stopped typing in a conversation.
type TypingEvent struct {
	User   User
	Typing bool
}
