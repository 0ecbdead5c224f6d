package chat

import (
	"context"
	"fmt"

	"github.com/threadline/threadline/internal/apperr"
)

// A conversation's history as a Relay connection by the book (the Relay Cursor Connections
// Specification, https://relay.dev/graphql/connections.htm), and a window around one message.
//
// The list is the conversation's messages newest first. first/after page forward along it,
// toward older messages; last/before page backward, toward newer ones; either way the edges
// come in list order. A cursor holds a seq (EncodeMessageCursor), the keyset position of a
// message, so a page is one range scan of the (conversation_id, seq) index at any depth.
//
// The specification leaves two things to the server, decided here:
//
//   - first and last together are refused (BAD_USER_INPUT), as the specification discourages
//     them; with neither, the page holds DefaultPageSize messages next to the cursor: last when
//     only before is given, first otherwise (so no arguments is the newest page).
//   - hasPreviousPage when paging forward, and hasNextPage when paging backward, are exact, not
//     false: "elements exist prior to after" is true whenever after is given, since the message
//     the cursor names precedes the page and messages are never removed (a deleted one is a
//     tombstone that keeps its seq); "elements exist following before" is true unless before
//     names seq 1, since seqs run 1..lastSeq without holes.
//
// A cursor must name a message of the conversation: a seq past its last seq is BAD_USER_INPUT,
// as messageAdded's afterSeq is. (A cursor holds no conversation: one taken from another
// conversation names a position in this one.)

// DefaultWindowSide is how many older and newer messages a window around a message holds when
// the client names no number.
const DefaultWindowSide = 25

// TimelineArgs are the checked arguments of timeline(first, after, last, before).
type TimelineArgs struct {
	// Size is first or last, or DefaultPageSize when neither was given.
	Size int
	// Last is set when the page is the last Size edges of the range between the cursors (the
	// oldest of them): paging backward, toward newer messages.
	Last bool
	// After and Before are the seqs the cursors name; 0 when absent.
	After, Before int64
}

// PageKey returns the history page the arguments name in conversation conversationID, if they
// name one: paging forward (first) without before, the newest page (the offset-0 page) or the
// page below after (a page by cursor), which the history cache holds and one statement reads
// with the conversation. The caller checks after against the conversation's last seq first.
func (a TimelineArgs) PageKey(conversationID int64) (PageKey, bool) {
	if a.Last || a.Before != 0 {
		return PageKey{}, false
	}
	return PageKey{ConversationID: conversationID, Limit: a.Size, Before: a.After}, true
}

// ParseTimelineArgs checks the arguments of timeline(first, after, last, before), nil standing
// for an absent one. The resolver and the look-ahead prefetch both read them through it.
func ParseTimelineArgs(first *int, after *string, last *int, before *string) (TimelineArgs, error) {
	var a TimelineArgs
	switch {
	case first != nil && last != nil:
		return TimelineArgs{}, apperr.Invalid("first", "and last cannot be given together: page toward older messages with first and after, toward newer ones with last and before")
	case first != nil:
		a.Size = *first
		if err := ValidatePageSize("first", a.Size); err != nil {
			return TimelineArgs{}, err
		}
	case last != nil:
		a.Size, a.Last = *last, true
		if err := ValidatePageSize("last", a.Size); err != nil {
			return TimelineArgs{}, err
		}
	default:
		a.Size, a.Last = DefaultPageSize, before != nil && after == nil
	}
	var err error
	if after != nil {
		if a.After, err = DecodeMessageCursor("after", *after); err != nil {
			return TimelineArgs{}, err
		}
	}
	if before != nil {
		if a.Before, err = DecodeMessageCursor("before", *before); err != nil {
			return TimelineArgs{}, err
		}
	}
	return a, nil
}

// Timeline reads the page of conv's timeline that a names (see ParseTimelineArgs), with one
// statement reading at most one row more than the page: the Relay specification's
// ApplyCursorsToEdges (messages older than after and newer than before), then the first or
// last Size of them, with hasNextPage and hasPreviousPage as its HasNextPage and
// HasPreviousPage define them.
func (s *Service) Timeline(ctx context.Context, conv *Conversation, a TimelineArgs) (History, error) {
	if a.After > conv.LastSeq {
		return History{}, apperr.Invalid("after", "names no message of this conversation")
	}
	if a.Before > conv.LastSeq {
		return History{}, apperr.Invalid("before", "names no message of this conversation")
	}
	var h History
	if !a.Last {
		// The newest Size+1 messages below after (or below the newest) that are above before.
		below := a.After
		if below == 0 {
			below = conv.LastSeq + 1
		}
		rows, err := s.store.MessagesBefore(ctx, conv.ID, below, a.Size+1)
		if err != nil {
			return History{}, err
		}
		rows = keepWhile(rows, func(m *Message) bool { return m.Seq > a.Before })
		h.HasNextPage = len(rows) > a.Size
		h.Messages = rows[:min(len(rows), a.Size)]
		h.HasPreviousPage = a.After != 0 // the message at after precedes the page
		return h, nil
	}
	// The oldest Size+1 messages above before (or from the first) that are below after.
	rows, err := s.store.MessagesAfter(ctx, conv.ID, a.Before, a.Size+1)
	if err != nil {
		return History{}, err
	}
	rows = keepWhile(rows, func(m *Message) bool { return a.After == 0 || m.Seq < a.After })
	h.HasPreviousPage = len(rows) > a.Size
	rows = rows[:min(len(rows), a.Size)]
	for i, j := 0, len(rows)-1; i < j; i, j = i+1, j-1 {
		rows[i], rows[j] = rows[j], rows[i]
	}
	h.Messages = rows
	h.HasNextPage = a.Before > 1 // messages 1..before-1 follow the page
	return h, nil
}

// keepWhile returns the longest prefix of rows whose elements satisfy ok.
func keepWhile(rows []Message, ok func(*Message) bool) []Message {
	for i := range rows {
		if !ok(&rows[i]) {
			return rows[:i]
		}
	}
	return rows
}

// Window is a run of consecutive messages around one, newest first.
type Window struct {
	Messages []Message
	// HasOlder and HasNewer report whether messages lie beyond the window's ends.
	HasOlder, HasNewer bool
}

// HistoryAround reads the message of conv at seq with up to before older and up to after newer
// messages (each 0..MaxPageSize), newest first, in one statement of two index range scans that
// read one row more on each side than the window shows. seq must name a message of the
// conversation (1..LastSeq), else BAD_USER_INPUT.
func (s *Service) HistoryAround(ctx context.Context, conv *Conversation, seq int64, before, after int) (Window, error) {
	for _, side := range []struct {
		name string
		n    int
	}{{"before", before}, {"after", after}} {
		if side.n < 0 || side.n > MaxPageSize {
			return Window{}, apperr.Invalid(side.name, "must be between 0 and %d", MaxPageSize)
		}
	}
	if seq < 1 || seq > conv.LastSeq {
		return Window{}, apperr.Invalid("seq", "names no message of this conversation")
	}
	rows, err := s.store.MessagesAround(ctx, conv.ID, seq, before+2, after+1)
	if err != nil {
		return Window{}, err
	}
	// rows: the newer side (seq > seq), then the message at seq and the older side.
	k := 0
	for k < len(rows) && rows[k].Seq > seq {
		k++
	}
	if k == len(rows) || rows[k].Seq != seq {
		return Window{}, fmt.Errorf("history around: conversation %d has no message at seq %d (last seq %d)", conv.ID, seq, conv.LastSeq)
	}
	w := Window{HasNewer: k > after, HasOlder: len(rows)-k > before+1}
	lo := k - min(k, after)
	w.Messages = rows[lo : k+min(len(rows)-k, before+1)]
	return w, nil
}
