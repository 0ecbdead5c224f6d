package chat

import (
	"encoding/base64"
	"encoding/binary"
	"math"
	"slices"
	"time"

	"github.com/threadline/threadline/internal/apperr"
)

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
	// SetStreamPosition sets the position after the event, when the stream delivers it.
	SetStreamPosition(position string)
}

// ViewerEventHeader is what every viewer event has.
type ViewerEventHeader struct {
	Position string
}

// StreamPosition returns the position after the event.
func (h *ViewerEventHeader) StreamPosition() string { return h.Position }
func (*ViewerEventHeader) viewerEvent()             {}

// SetStreamPosition sets the position after the event.
func (h *ViewerEventHeader) SetStreamPosition(position string) { h.Position = position }

// ConversationActivity: a message was sent, edited or deleted, or the conversation renamed.
// Conversation is read when the event is delivered (by the GraphQL layer), as it is then, with
// the viewer's unread count.
type ConversationActivity struct {
	ViewerEventHeader
	ConversationID int64
	Conversation   *Conversation
}

// ConversationJoined: the viewer became a member of the conversation (read when delivered).
type ConversationJoined struct {
	ViewerEventHeader
	ConversationID int64
	Conversation   *Conversation
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
	Conversation   *Conversation // read when delivered
}

// TypingEvent: a member started or stopped typing in a conversation.
type TypingEvent struct {
	User   User
	Typing bool
}

// UserEventKind is the kind of a UserEvent.
type UserEventKind string

// The kinds of user events.
const (
	UserJoined UserEventKind = "joined" // the user became a member (members_added)
	UserLeft   UserEventKind = "left"   // the user was removed or left (member_removed)
	UserRead   UserEventKind = "read"   // the user moved their read position
)

// A UserEvent is a change to what one user sees across their conversations that the
// conversations' own events do not tell a stream following only the user's conversations:
// that they joined one, left one, or moved their read position in one. Every user numbers their
// events 1, 2, 3, … (EventSeq) without holes in commit order, as a conversation numbers its
// events, so a stream that remembers the last one it handled resumes exactly.
type UserEvent struct {
	UserID   int64
	EventSeq int64
	Kind     UserEventKind
	// ConversationID is the conversation the event is about.
	ConversationID int64
	// ConversationEventSeq is, for UserJoined and UserLeft, the event_seq of the conversation's
	// event that made the change (MembersAdded, MemberRemoved).
	ConversationEventSeq int64
	// ReadSeq is, for UserRead, the read position it moved to.
	ReadSeq int64
	At      time.Time
}

// ViewerPosition is a position in a viewer's sidebar stream (viewerEvents): the last event of
// the viewer's own (UserEvent) handled, and for each conversation followed, the last of its
// events handled. There is no single sequence over all conversations that is in commit order
// without serialising every writer, so the position is this vector, as in Matrix's sync tokens:
// resuming after it replays, from each stream, exactly what follows.
type ViewerPosition struct {
	Viewer        int64
	User          int64
	Conversations map[int64]int64
}

const positionVersion = 1

// EncodeViewerPosition returns the opaque text of p: base64url of a version byte, the viewer,
// the user event_seq, and the conversations in id order as (id delta, event_seq) varints. A
// viewer in 50 conversations gets a position of about 250 characters.
func EncodeViewerPosition(p ViewerPosition) string {
	ids := make([]int64, 0, len(p.Conversations))
	for id := range p.Conversations {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	buf := make([]byte, 0, 16+len(ids)*6)
	buf = append(buf, positionVersion)
	buf = binary.AppendUvarint(buf, uint64(p.Viewer))
	buf = binary.AppendUvarint(buf, uint64(p.User))
	buf = binary.AppendUvarint(buf, uint64(len(ids)))
	prev := int64(0)
	for _, id := range ids {
		buf = binary.AppendUvarint(buf, uint64(id-prev))
		buf = binary.AppendUvarint(buf, uint64(p.Conversations[id]))
		prev = id
	}
	return base64.RawURLEncoding.EncodeToString(buf)
}

// MaxPositionLength bounds the text of a position a client may pass (a viewer in about 10,000
// conversations).
const MaxPositionLength = 64 << 10

// DecodeViewerPosition reads a position passed as field by viewer. Anything that is not a
// position this server wrote for this viewer is BAD_USER_INPUT.
func DecodeViewerPosition(field string, viewer int64, text string) (ViewerPosition, error) {
	bad := apperr.Invalid(field, "is not a valid position")
	if len(text) > MaxPositionLength {
		return ViewerPosition{}, bad
	}
	buf, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil || len(buf) == 0 || buf[0] != positionVersion {
		return ViewerPosition{}, bad
	}
	r := varintReader{buf: buf[1:]}
	p := ViewerPosition{Viewer: r.int(), User: r.int()}
	n := r.int()
	if r.bad || n > int64(len(r.buf)) {
		return ViewerPosition{}, bad
	}
	p.Conversations = make(map[int64]int64, n)
	id := int64(0)
	for i := int64(0); i < n; i++ {
		delta := r.int()
		seq := r.int()
		if r.bad || delta < 1 || id > math.MaxInt64-delta {
			return ViewerPosition{}, bad
		}
		id += delta
		p.Conversations[id] = seq
	}
	if r.bad || len(r.buf) != 0 || p.Viewer < 1 {
		return ViewerPosition{}, bad
	}
	if p.Viewer != viewer {
		return ViewerPosition{}, apperr.Invalid(field, "is a position of another viewer")
	}
	return p, nil
}

// varintReader reads uvarints as non-negative int64s; bad is set on the first malformed one.
type varintReader struct {
	buf []byte
	bad bool
}

func (r *varintReader) int() int64 {
	if r.bad {
		return 0
	}
	v, n := binary.Uvarint(r.buf)
	if n <= 0 || v > math.MaxInt64 {
		r.bad = true
		return 0
	}
	r.buf = r.buf[n:]
	return int64(v)
}
