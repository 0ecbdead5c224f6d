package graph

import (
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/chat"
)

// Message lists are most of what this server writes: a page is 50 messages of about ten fields,
// and gqlgen marshals each field of each message through its general machinery (a field
// context, a resolver wrapper, a marshaler value), about a hundred allocations a message. When
// everything a request selects on the messages of a list, at any depth, is a plain field read
// from the struct (no resolver, no argument: the fields below), fastMessages and
// fastMessageEdges write the whole list into one buffer instead; Reaction.viewerReacted, a
// resolver, is taken too when no message of the list has a reaction, so that it is never
// resolved (perViewer). Any other selection (a resolver such as User.online, viewerReacted on
// a list with reactions, a field this file does not know) makes them answer ok=false, and
// gqlgen marshals the list as usual. The output is
// byte-identical to gqlgen's (TestFastMarshalMatchesGqlgen), and TestFastMarshalKnowsEveryPlainField
// fails when a plain field is added to these types without being handled here. ops/gqlgen
// rewrites the generated list marshallers to try them first.

// fastMarshalOff turns the fast path off (tests compare it with gqlgen's); fastMarshalled counts
// the lists it wrote.
var (
	fastMarshalOff atomic.Bool
	fastMarshalled atomic.Int64
)

// The fields a plan writes.
const (
	fTypename = iota
	fID
	fSeq
	fConversationID
	fBody
	fCreatedAt
	fClientMessageID
	fEditedAt
	fDeletedAt
	fVersion
	fSender
	fReactions
	fName
	fEmoji
	fCount
	fCursor
	fNode
	fViewerReacted
)

// planField is one selected field: its key (the JSON-quoted alias and the colon), what to
// write, and the plan of its selection for an object field.
type planField struct {
	key  []byte
	kind int
	sub  []planField
}

// known lists the plain fields of each type the fast path writes, by name.
var known = map[string]map[string]int{
	"Message": {
		"__typename": fTypename, "id": fID, "seq": fSeq, "conversationId": fConversationID, "body": fBody,
		"createdAt": fCreatedAt, "clientMessageId": fClientMessageID, "editedAt": fEditedAt,
		"deletedAt": fDeletedAt, "version": fVersion, "sender": fSender, "reactions": fReactions,
	},
	"User":        {"__typename": fTypename, "id": fID, "name": fName},
	"Reaction":    {"__typename": fTypename, "emoji": fEmoji, "count": fCount},
	"MessageEdge": {"__typename": fTypename, "cursor": fCursor, "node": fNode},
}

// perViewer lists the fields the fast path writes that have a resolver: Reaction.viewerReacted,
// which reads the viewer's reactions through the loaders. A reaction exists only inside a
// message's reactions list, so a list of messages none of which has a reaction never resolves
// it, whatever the selection: gqlgen writes "reactions":[] for each. The fast path takes such
// lists (the common case: most messages have no reactions) and sends any list with a reaction
// back to gqlgen when the selection asks for viewerReacted (needsViewer).
var perViewer = map[string]map[string]int{
	"Reaction": {"viewerReacted": fViewerReacted},
}

// children names the type of each object field of the types above.
var children = map[string]string{"sender": "User", "reactions": "Reaction", "node": "Message"}

// plan compiles the selection of typeName into fields to write; ok=false when it selects
// anything the fast path does not write.
func plan(opCtx *graphql.OperationContext, sel ast.SelectionSet, typeName string) ([]planField, bool) {
	fields := graphql.CollectFields(opCtx, sel, []string{typeName})
	out := make([]planField, len(fields))
	for i, f := range fields {
		kind, ok := known[typeName][f.Name]
		if !ok {
			kind, ok = perViewer[typeName][f.Name]
		}
		if !ok || len(f.Arguments) > 0 || len(f.Directives) > 0 && !onlySkipInclude(f.Directives) {
			return nil, false
		}
		key := make([]byte, 0, len(f.Alias)+3)
		key = appendQuoted(key, f.Alias)
		out[i] = planField{key: append(key, ':'), kind: kind}
		if child, isObject := children[f.Name]; isObject {
			sub, ok := plan(opCtx, f.Selections, child)
			if !ok {
				return nil, false
			}
			out[i].sub = sub
		}
	}
	return out, true
}

// needsViewer reports whether the plan p writes a field of perViewer, at any depth.
func needsViewer(p []planField) bool {
	for _, f := range p {
		if f.kind == fViewerReacted || needsViewer(f.sub) {
			return true
		}
	}
	return false
}

// hasReactions reports whether a message of v has a reaction.
func hasReactions[T any](v []T, message func(T) *chat.Message) bool {
	for _, x := range v {
		if len(message(x).Reactions) > 0 {
			return true
		}
	}
	return false
}

func messageOf(m *chat.Message) *chat.Message   { return m }
func nodeOf(e *model.MessageEdge) *chat.Message { return e.Node }

// onlySkipInclude reports whether a field's directives are only @skip and @include, which
// CollectFields has applied already.
func onlySkipInclude(ds ast.DirectiveList) bool {
	for _, d := range ds {
		if d.Name != "skip" && d.Name != "include" {
			return false
		}
	}
	return true
}

// fastMessages writes a list of messages (see the top of this file).
func fastMessages(opCtx *graphql.OperationContext, sel ast.SelectionSet, v []*chat.Message) (graphql.Marshaler, bool) {
	if fastMarshalOff.Load() || opCtx == nil {
		return nil, false
	}
	for _, m := range v {
		if m == nil || m.CreatedAt.IsZero() { // gqlgen reports those as errors
			return nil, false
		}
	}
	p, ok := plan(opCtx, sel, "Message")
	if !ok || needsViewer(p) && hasReactions(v, messageOf) {
		return nil, false
	}
	buf := make([]byte, 0, 64+len(v)*(200+len(p)*16))
	fastMarshalled.Add(1)
	return rawJSON(appendList(buf, p, "Message", v, messageField)), true
}

// fastMessageEdges writes a list of message edges (see the top of this file).
func fastMessageEdges(opCtx *graphql.OperationContext, sel ast.SelectionSet, v []*model.MessageEdge) (graphql.Marshaler, bool) {
	if fastMarshalOff.Load() || opCtx == nil {
		return nil, false
	}
	for _, e := range v {
		if e == nil || e.Node == nil || e.Node.CreatedAt.IsZero() {
			return nil, false
		}
	}
	p, ok := plan(opCtx, sel, "MessageEdge")
	if !ok || needsViewer(p) && hasReactions(v, nodeOf) {
		return nil, false
	}
	buf := make([]byte, 0, 64+len(v)*(240+len(p)*16))
	fastMarshalled.Add(1)
	return rawJSON(appendList(buf, p, "MessageEdge", v, edgeField)), true
}

// appendList writes vs as a JSON array of objects of type typeName (see appendObject).
func appendList[T any](buf []byte, p []planField, typeName string, vs []T, value func([]byte, planField, T) []byte) []byte {
	buf = append(buf, '[')
	for i, v := range vs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendObject(buf, p, typeName, v, value)
	}
	return append(buf, ']')
}

// appendObject writes v as the JSON object of the plan p: each field's key, then its value:
// typeName for __typename, what value writes for any other field.
func appendObject[T any](buf []byte, p []planField, typeName string, v T, value func([]byte, planField, T) []byte) []byte {
	buf = append(buf, '{')
	for i, f := range p {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, f.key...)
		if f.kind == fTypename {
			buf = appendQuoted(buf, typeName)
		} else {
			buf = value(buf, f, v)
		}
	}
	return append(buf, '}')
}

func edgeField(buf []byte, f planField, e *model.MessageEdge) []byte {
	if f.kind == fNode {
		return appendObject(buf, f.sub, "Message", e.Node, messageField)
	}
	return appendQuoted(buf, e.Cursor) // fCursor
}

func messageField(buf []byte, f planField, m *chat.Message) []byte {
	switch f.kind {
	case fID:
		return appendID(buf, m.ID)
	case fSeq:
		return strconv.AppendInt(buf, m.Seq, 10)
	case fConversationID:
		return appendID(buf, m.ConversationID)
	case fBody:
		return appendQuoted(buf, m.Body)
	case fCreatedAt:
		return appendTime(buf, &m.CreatedAt)
	case fClientMessageID:
		if m.ClientMessageID == nil {
			return append(buf, "null"...)
		}
		return appendQuoted(buf, *m.ClientMessageID)
	case fEditedAt:
		return appendTime(buf, m.EditedAt)
	case fDeletedAt:
		return appendTime(buf, m.DeletedAt)
	case fVersion:
		return strconv.AppendInt(buf, int64(m.Version), 10)
	case fSender:
		return appendObject(buf, f.sub, "User", m, senderField)
	case fReactions:
		return appendList(buf, f.sub, "Reaction", m.Reactions, reactionField)
	}
	return buf
}

// senderField writes a field of the User who sent m, from the sender fields m carries.
func senderField(buf []byte, f planField, m *chat.Message) []byte {
	if f.kind == fID {
		return appendID(buf, m.SenderID)
	}
	return appendQuoted(buf, m.SenderName) // fName
}

func reactionField(buf []byte, f planField, r chat.Reaction) []byte {
	switch f.kind {
	case fEmoji:
		return appendQuoted(buf, r.Emoji)
	case fCount:
		return strconv.AppendInt(buf, int64(r.Count), 10)
	}
	// fViewerReacted: a list with a reaction whose plan has it goes to gqlgen (see perViewer).
	panic("fastjson: viewerReacted written for a reaction")
}

// appendID writes an ID as model.MarshalID does.
func appendID(buf []byte, id int64) []byte {
	buf = append(buf, '"')
	buf = strconv.AppendInt(buf, id, 10)
	return append(buf, '"')
}

// appendTime writes a Time as graphql.MarshalTime does: RFC 3339 with nanoseconds, quoted; null
// for nil or the zero time.
func appendTime(buf []byte, t *time.Time) []byte {
	if t == nil || t.IsZero() {
		return append(buf, "null"...)
	}
	buf = append(buf, '"')
	buf = t.AppendFormat(buf, time.RFC3339Nano) // ASCII only: nothing to escape
	return append(buf, '"')
}

const hexDigits = "0123456789ABCDEF" // as gqlgen writes them

// appendQuoted writes s as a JSON string exactly as gqlgen's graphql.MarshalString does:
// control characters, backslash and quote escaped, everything else (invalid UTF-8 included)
// copied as is.
func appendQuoted(buf []byte, s string) []byte {
	buf = append(buf, '"')
	start := 0
	for i, c := range s {
		if c < 0x20 || c == '\\' || c == '"' {
			buf = append(buf, s[start:i]...)
			switch c {
			case '\t':
				buf = append(buf, `\t`...)
			case '\r':
				buf = append(buf, `\r`...)
			case '\n':
				buf = append(buf, `\n`...)
			case '\\':
				buf = append(buf, `\\`...)
			case '"':
				buf = append(buf, `\"`...)
			default:
				buf = append(buf, `\u00`...)
				buf = append(buf, hexDigits[c>>4], hexDigits[c&0xf])
			}
			start = i + 1
		}
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"')
}

// rawJSON is a marshalled value.
type rawJSON []byte

func (r rawJSON) MarshalGQL(w io.Writer) { _, _ = w.Write(r) }
