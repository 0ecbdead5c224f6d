package db

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/chat"
)

// conversationPagesForMember is the statement of ConversationPagesForMember, written by hand
// because sqlc cannot read the columns of a set-returning function. The function
// (migrations/00005_conversation_pages.sql; pages by cursor too since 00007_pages_by_cursor.sql)
// is the page with its conversation and the reader's membership in one statement, planned once
// per server connection instead of once per call.
// The name comment is sqlc's, so that the statement is traced and counted under its name.
const conversationPagesForMember = `-- name: ConversationPagesForMember :many
SELECT ord, conv_id, title, conv_created_at, last_seq, last_message_at, last_event_seq, last_read_seq,
       id, seq, sender_id, sender_name, body, client_message_id, created_at, edited_at, deleted_at,
       version, reactions
FROM conversation_pages_for_member($1, $2, $3, $4, $5)
`

// ConversationPagesForMember reads pages (as MessagePages) together with their
// conversations as userID sees them, in one statement: per key, the conversation (nil when it
// is missing or userID is not a member, and then no page) and its page.
func (s *Store) ConversationPagesForMember(ctx context.Context, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page, error) {
	cols := pageKeyColumns(keys)
	type result struct {
		convs []*chat.Conversation
		pages []chat.Page
	}
	res, err := readRoutedDB(ctx, s, func(ctx context.Context, onReplica bool) (result, error) {
		db := s.db
		if onReplica {
			db = s.replica.db
		}
		convs, pages, err := scanConversationPages(ctx, db, userID, keys, cols)
		return result{convs, pages}, err
	}, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("conversation pages for member: %w", err)
	}
	return res.convs, res.pages, nil
}

// scanConversationPages runs the statement on db and reads its rows into conversations and
// pages, straight from the driver's buffers: a conversation's columns are read on its first row
// only, a page's sender names once per sender, and the bodies of all the messages into one
// string, which each message's Body is a part of (one allocation instead of one a message).
func scanConversationPages(ctx context.Context, db dbsqlc.DBTX, userID int64, keys []chat.PageKey, cols pageColumns) ([]*chat.Conversation, []chat.Page, error) {
	rows, err := db.Query(ctx, conversationPagesForMember, cols.ids, userID, cols.limits, cols.offsets, cols.befores)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	convs := make([]*chat.Conversation, len(keys))
	pages := make([]chat.Page, len(keys))
	var (
		ord                       int32
		convID                    int64
		conv                      memberConversationRow
		m                         messageRow
		senderName, reactionsJSON pgtype.DriverBytes
		body                      pgtype.DriverBytes
		senders                   map[int64]string
		bodies                    bodyArena
	)
	convDest := []any{&ord, &convID, &conv.Title, &conv.CreatedAt, &conv.LastSeq, &conv.LastMessageAt, &conv.LastEventSeq, &conv.LastReadSeq}
	msgDest := []any{&m.ID, &m.Seq, &m.SenderID, &senderName, &body, &m.ClientMessageID, &m.CreatedAt, &m.EditedAt, &m.DeletedAt, &m.Version, &reactionsJSON}
	full := append(append(make([]any, 0, len(convDest)+len(msgDest)), convDest...), msgDest...)
	// Every row repeats its conversation's columns. A row is first read without them (nil
	// destinations skip a column), all but ord and the id, and read again whole when it is the
	// first of its conversation.
	skipConv := append(append(make([]any, 0, len(full)), &ord, &convID, nil, nil, nil, nil, nil, nil), msgDest...)
	last := -1 // the index of the key whose rows are being read
	for rows.Next() {
		if err := rows.Scan(skipConv...); err != nil {
			return nil, nil, err
		}
		i := int(ord) - 1 // WITH ORDINALITY counts from 1
		if i < 0 || i >= len(keys) {
			return nil, nil, fmt.Errorf("row for key %d of %d", ord, len(keys))
		}
		if i != last {
			if i < last || convs[i] != nil {
				return nil, nil, fmt.Errorf("rows of key %d out of order", ord)
			}
			if err := rows.Scan(full...); err != nil {
				return nil, nil, err
			}
			conv.ID = convID
			c := memberConversation(conv)
			convs[i] = &c
			pages[i].Messages = make([]chat.Message, 0, keys[i].Limit)
			last = i
		}
		if m.ID == 0 { // an empty page
			continue
		}
		if len(pages[i].Messages) == keys[i].Limit {
			pages[i].HasMore = true
			continue
		}
		m.ConversationID = convID
		m.SenderName = internSender(&senders, m.SenderID, senderName)
		m.Reactions = reactionsJSON // read by message, not kept
		pages[i].Messages = append(pages[i].Messages, message(m))
		bodies.add(i, len(pages[i].Messages)-1, body)
		// The next row's nullable columns are scanned into fresh pointers, whatever the driver
		// does with non-nil ones: no two messages share one.
		m.ClientMessageID, m.EditedAt, m.DeletedAt = nil, nil, nil
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	bodies.set(pages)
	return convs, pages, nil
}

// bodyArena gathers the bodies of a read's messages, to be made into one string at the end.
type bodyArena struct {
	buf  strings.Builder
	ends []bodyEnd
}

// bodyEnd is where a message's body ends in bodyArena.buf (it starts where the previous ends).
type bodyEnd struct{ page, message, end int }

func (a *bodyArena) add(page, message int, body []byte) {
	if a.ends == nil {
		a.buf.Grow(2048)
		a.ends = make([]bodyEnd, 0, 64)
	}
	a.buf.Write(body)
	a.ends = append(a.ends, bodyEnd{page, message, a.buf.Len()})
}

// set gives each message its body, as a part of one string that holds them all.
func (a *bodyArena) set(pages []chat.Page) {
	all := a.buf.String() // no copy: the builder's bytes become the string
	start := 0
	for _, e := range a.ends {
		pages[e.page].Messages[e.message].Body = all[start:e.end]
		start = e.end
	}
}

// internSender returns name as a string, one string per sender id for the whole read: a page's
// messages come from a handful of senders.
func internSender(senders *map[int64]string, id int64, name []byte) string {
	if s, ok := (*senders)[id]; ok && s == string(name) {
		return s
	}
	if *senders == nil {
		*senders = make(map[int64]string, 8)
	}
	s := string(name)
	(*senders)[id] = s
	return s
}
