package graph

import (
	"context"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/loader"
	"github.com/threadline/threadline/graph/model"
	"github.com/threadline/threadline/internal/chat"
)

// Message lists are most of what this server writes: a page is 50 messages of about ten fields,
// and gqlgen marshals each field of each message through its general machinery (a field
// context, a resolver wrapper, a marshaler value), about a hundred allocations a message. When
// everything a request selects on the messages of a list, at any depth, is a plain field read
// from the struct (no resolver, no argument: the fields below) or Reaction.viewerReacted
// (perViewer), fastMessages and fastMessageEdges write the whole list into one buffer instead.
// Any other selection (a resolver such as User.online, a field this file does not know) makes
// them answer ok=false, and gqlgen marshals the list as usual. The output is byte-identical to
// gqlgen's (TestFastMarshalMatchesGqlgen), and TestFastMarshalKnowsEveryPlainField fails when a
// plain field is added to these types without being handled here. ops/gqlgen rewrites the
// generated list marshallers to try them first.

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

// perViewer lists the one field with a resolver that the fast path writes:
// Reaction.viewerReacted, whose resolver reads the viewer's reactions to the message through the
// loaders (loader.ViewerReacted) and declares its result static for the response cache, which
// then records nothing for it. The fast path resolves it the same way before writing the list
// (viewerReactions): for every reaction of the list at once, concurrently, as gqlgen's resolvers
// run, so that the loader reads them in one batch. A list without reactions never resolves it.
// If one of them fails, the list goes to gqlgen, whose resolvers get the same answer from the
// loader and report the error where gqlgen reports it.
var perViewer = map[string]map[string]int{
	"Reaction": {"viewerReacted": fViewerReacted},
}

// children names the type of each object field of the types above.
var children = map[string]string{"sender": "User", "reactions": "Reaction", "node": "Message"}

// fieldKeys holds the key written for each field of known and perViewer under its own name (a
// selection without an alias), so that planning a selection does not build them again. Keys are
// only read.
var fieldKeys = func() map[string][]byte {
	keys := map[string][]byte{}
	for _, table := range []map[string]map[string]int{known, perViewer} {
		for _, fields := range table {
			for name := range fields {
				keys[name] = append(appendQuoted(nil, name), ':')
			}
		}
	}
	return keys
}()

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
		key, ok := fieldKeys[f.Alias]
		if !ok {
			key = append(appendQuoted(make([]byte, 0, len(f.Alias)+3), f.Alias), ':')
		}
		out[i] = planField{key: key, kind: kind}
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

// reactedKey names one reaction, as the resolver of Reaction.viewerReacted reads it.
type reactedKey struct {
	conversationID, messageID int64
	emoji                     string
}

// writeState is what writing a list needs besides its values: whether the viewer made each
// reaction of the list (nil when the plan does not select viewerReacted).
type writeState struct {
	reacted map[reactedKey]bool
}

// viewerReactions resolves Reaction.viewerReacted for every reaction of msgs as its resolver
// does (see perViewer); ok=false when one of them failed or panicked.
func viewerReactions(ctx context.Context, msgs []*chat.Message) (st *writeState, ok bool) {
	var rs []loader.Reacted
	for _, m := range msgs {
		for _, r := range m.Reactions {
			rs = append(rs, loader.Reacted{ConversationID: r.ConversationID, MessageID: r.MessageID, Emoji: r.Emoji})
		}
	}
	st = &writeState{reacted: make(map[reactedKey]bool, len(rs))}
	if len(rs) == 0 {
		return st, true
	}
	// A panic in the loader's batch comes back as an error of its thunks (dataloader recovers it).
	mine, err := loader.ViewerReactedAll(ctx, rs)
	if err != nil {
		return nil, false
	}
	for i, r := range rs {
		st.reacted[reactedKey{r.ConversationID, r.MessageID, r.Emoji}] = mine[i]
	}
	return st, true
}

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
func fastMessages(ctx context.Context, opCtx *graphql.OperationContext, sel ast.SelectionSet, v []*chat.Message) (graphql.Marshaler, bool) {
	if fastMarshalOff.Load() || opCtx == nil {
		return nil, false
	}
	for _, m := range v {
		if m == nil || m.CreatedAt.IsZero() { // gqlgen reports those as errors
			return nil, false
		}
	}
	p, ok := plan(opCtx, sel, "Message")
	if !ok {
		return nil, false
	}
	var st *writeState
	if needsViewer(p) {
		if st, ok = viewerReactions(ctx, v); !ok {
			return nil, false
		}
	}
	buf := make([]byte, 0, 64+len(v)*(200+len(p)*16))
	fastMarshalled.Add(1)
	return rawJSON(appendList(buf, st, p, "Message", v, messageField)), true
}

// fastMessageEdges writes a list of message edges (see the top of this file).
func fastMessageEdges(ctx context.Context, opCtx *graphql.OperationContext, sel ast.SelectionSet, v []*model.MessageEdge) (graphql.Marshaler, bool) {
	if fastMarshalOff.Load() || opCtx == nil {
		return nil, false
	}
	for _, e := range v {
		if e == nil || e.Node == nil || e.Node.CreatedAt.IsZero() {
			return nil, false
		}
	}
	p, ok := plan(opCtx, sel, "MessageEdge")
	if !ok {
		return nil, false
	}
	var st *writeState
	if needsViewer(p) {
		nodes := make([]*chat.Message, len(v))
		for i, e := range v {
			nodes[i] = e.Node
		}
		if st, ok = viewerReactions(ctx, nodes); !ok {
			return nil, false
		}
	}
	buf := make([]byte, 0, 64+len(v)*(240+len(p)*16))
	fastMarshalled.Add(1)
	return rawJSON(appendList(buf, st, p, "MessageEdge", v, edgeField)), true
}

// appendList writes vs as a JSON array of objects of type typeName (see appendObject).
func appendList[T any](buf []byte, st *writeState, p []planField, typeName string, vs []T, value func([]byte, *writeState, planField, T) []byte) []byte {
	buf = append(buf, '[')
	for i, v := range vs {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = appendObject(buf, st, p, typeName, v, value)
	}
	return append(buf, ']')
}

// appendObject writes v as the JSON object of the plan p: each field's key, then its value:
// typeName for __typename, what value writes for any other field.
func appendObject[T any](buf []byte, st *writeState, p []planField, typeName string, v T, value func([]byte, *writeState, planField, T) []byte) []byte {
	buf = append(buf, '{')
	for i, f := range p {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, f.key...)
		if f.kind == fTypename {
			buf = appendQuoted(buf, typeName)
		} else {
			buf = value(buf, st, f, v)
		}
	}
	return append(buf, '}')
}

func edgeField(buf []byte, st *writeState, f planField, e *model.MessageEdge) []byte {
	if f.kind == fNode {
		return appendObject(buf, st, f.sub, "Message", e.Node, messageField)
	}
	return appendQuoted(buf, e.Cursor) // fCursor
}

func messageField(buf []byte, st *writeState, f planField, m *chat.Message) []byte {
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
		return appendObject(buf, st, f.sub, "User", m, senderField)
	case fReactions:
		return appendList(buf, st, f.sub, "Reaction", m.Reactions, reactionField)
	}
	return buf
}

// senderField writes a field of the User who sent m, from the sender fields m carries.
func senderField(buf []byte, _ *writeState, f planField, m *chat.Message) []byte {
	if f.kind == fID {
		return appendID(buf, m.SenderID)
	}
	return appendQuoted(buf, m.SenderName) // fName
}

func reactionField(buf []byte, st *writeState, f planField, r chat.Reaction) []byte {
	switch f.kind {
	case fEmoji:
		return appendQuoted(buf, r.Emoji)
	case fCount:
		return strconv.AppendInt(buf, int64(r.Count), 10)
	}
	// fViewerReacted: resolved for every reaction of the list before writing it.
	return strconv.AppendBool(buf, st.reacted[reactedKey{r.ConversationID, r.MessageID, r.Emoji}])
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
