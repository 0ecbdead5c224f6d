package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/db/dbsqlc"
	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// Store implements chat.Store over a pgx pool.
type Store struct {
	pool *pgxpool.Pool
	q    *dbsqlc.Queries
	db   dbsqlc.DBTX // q's, for the statements written by hand (pages.go)
	// replica, when set, serves the reads that may go to a streaming replica (replica.go).
	replica *replica
}

var _ chat.Store = (*Store)(nil)

// NewStore returns a Store over pool.
func NewStore(pool *pgxpool.Pool) *Store {
	// Outside transactions the Store only reads: those reads survive a broken connection.
	rdb := readRetrier{pool}
	return &Store{pool: pool, q: dbsqlc.New(rdb), db: rdb}
}

// Ping checks that a statement reaches PostgreSQL through the pool.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.pool.Exec(ctx, "-- name: Ping :exec\nSELECT 1")
	return err
}

// inTx runs fn in a transaction, committing when it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(q *dbsqlc.Queries) error) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return fn(s.q.WithTx(tx)) })
}

// mapRows returns f of each row, in the rows' order.
func mapRows[R, V any](rows []R, f func(R) V) []V {
	out := make([]V, len(rows))
	for i, r := range rows {
		out[i] = f(r)
	}
	return out
}

// inKeyOrder answers a batch read (a dataloader's) in the order of its keys, whatever order the
// rows came in: out[i] is the value of the row whose key is keys[i], the zero value (nil) when
// no row has it. kv gives a row's key and value.
func inKeyOrder[K comparable, R, V any](keys []K, rows []R, kv func(R) (K, V)) []V {
	byKey := make(map[K]V, len(rows))
	for _, r := range rows {
		k, v := kv(r)
		byKey[k] = v
	}
	out := make([]V, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

// groupedInKeyOrder is inKeyOrder for reads with any number of rows per key: out[i] holds the
// values of keys[i]'s rows in the order they came (nil when none).
func groupedInKeyOrder[K comparable, R, V any](keys []K, rows []R, kv func(R) (K, V)) [][]V {
	byKey := make(map[K][]V, len(keys))
	for _, r := range rows {
		k, v := kv(r)
		byKey[k] = append(byKey[k], v)
	}
	out := make([][]V, len(keys))
	for i, k := range keys {
		out[i] = byKey[k]
	}
	return out
}

func (s *Store) UsersByIDs(ctx context.Context, ids []int64) ([]*chat.User, error) {
	rows, err := s.q.UsersByIDs(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("users by ids: %w", err)
	}
	return inKeyOrder(ids, rows, func(r dbsqlc.UsersByIDsRow) (int64, *chat.User) {
		return r.ID, &chat.User{ID: r.ID, Name: r.Name}
	}), nil
}

func (s *Store) ConversationsByIDForMember(ctx context.Context, userID int64, ids []int64) ([]*chat.Conversation, error) {
	rows, err := s.q.ConversationsByIDForMember(ctx, dbsqlc.ConversationsByIDForMemberParams{UserID: userID, Ids: ids})
	if err != nil {
		return nil, fmt.Errorf("conversations for member: %w", err)
	}
	return inKeyOrder(ids, rows, func(r dbsqlc.ConversationsByIDForMemberRow) (int64, *chat.Conversation) {
		c := memberConversation(memberConversationRow(r))
		return r.ID, &c
	}), nil
}

func (s *Store) ConversationListByMember(ctx context.Context, userID int64, after *chat.ConversationCursor, limit int, unread bool) ([]chat.Conversation, error) {
	p := dbsqlc.ConversationListByMemberParams{WithUnread: unread, UserID: userID, RowLimit: int32(limit)}
	if after != nil {
		p.HasCursor, p.AfterTime, p.AfterID = true, after.LastMessageAt, after.ID
	}
	rows, err := s.q.ConversationListByMember(ctx, p)
	if err != nil {
		return nil, fmt.Errorf("conversations by member: %w", err)
	}
	return mapRows(rows, func(r dbsqlc.ConversationListByMemberRow) chat.Conversation {
		c := memberConversation(memberConversationRow{
			ID: r.ID, Title: r.Title, CreatedAt: r.CreatedAt, LastSeq: r.LastSeq, LastMessageAt: r.LastMessageAt,
			LastEventSeq: r.LastEventSeq, LastReadSeq: r.LastReadSeq,
		})
		if unread {
			c.ViewerUnread = &r.Unread
		}
		return c
	}), nil
}

func (s *Store) UnreadCounts(ctx context.Context, userID int64, conversationIDs []int64) ([]int64, error) {
	rows, err := s.q.UnreadCounts(ctx, dbsqlc.UnreadCountsParams{UserID: userID, Ids: conversationIDs})
	if err != nil {
		return nil, fmt.Errorf("unread counts: %w", err)
	}
	return inKeyOrder(conversationIDs, rows, func(r dbsqlc.UnreadCountsRow) (int64, int64) {
		return r.ConversationID, r.Unread
	}), nil
}

func (s *Store) MembershipsByConversations(ctx context.Context, conversationIDs []int64) ([][]chat.Membership, error) {
	rows, err := s.q.MembershipsByConversations(ctx, conversationIDs)
	if err != nil {
		return nil, fmt.Errorf("memberships by conversations: %w", err)
	}
	out := groupedInKeyOrder(conversationIDs, rows, func(r dbsqlc.MembershipsByConversationsRow) (int64, chat.Membership) {
		return r.ConversationID, chat.Membership{
			User: chat.User{ID: r.ID, Name: r.Name}, Role: chat.Role(r.Role), JoinedAt: r.JoinedAt,
			LastReadSeq: r.LastReadSeq, ReadAt: r.ReadAt,
		}
	})
	for i := range out {
		if out[i] == nil {
			out[i] = []chat.Membership{}
		}
	}
	return out, nil
}

func (s *Store) MessagesByID(ctx context.Context, ids []int64) ([]*chat.Message, error) {
	rows, err := s.q.MessagesByID(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("messages by id: %w", err)
	}
	return inKeyOrder(ids, rows, func(r dbsqlc.MessagesByIDRow) (int64, *chat.Message) {
		m := message(messageRow(r))
		return r.ID, &m
	}), nil
}

func (s *Store) ReactionsOfUser(ctx context.Context, userID int64, conversationIDs, messageIDs []int64) ([][]string, error) {
	rows, err := s.q.ReactionsOfUser(ctx, dbsqlc.ReactionsOfUserParams{UserID: userID, ConversationIds: conversationIDs, MessageIds: messageIDs})
	if err != nil {
		return nil, fmt.Errorf("reactions of user: %w", err)
	}
	return groupedInKeyOrder(messageIDs, rows, func(r dbsqlc.ReactionsOfUserRow) (int64, string) {
		return r.MessageID, r.Emoji
	}), nil
}

func (s *Store) SearchUsers(ctx context.Context, search string, after *chat.UserCursor, limit int) ([]chat.User, error) {
	p := dbsqlc.UsersSearchParams{Search: search, RowLimit: int32(limit)}
	if after != nil {
		p.HasCursor, p.AfterName, p.AfterID = true, after.Name, after.ID
	}
	if _, ok := chat.ReadPosition(ctx); !ok {
		// No request writes users (the seed does, through DATABASE_DIRECT_URL): the replica
		// is never behind a write a reader made, so any replayed position will do.
		ctx = chat.WithReadPosition(ctx, 0)
	}
	rows, err := readRouted(ctx, s, func(ctx context.Context, q *dbsqlc.Queries) ([]dbsqlc.UsersSearchRow, error) {
		return q.UsersSearch(ctx, p)
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("users search: %w", err)
	}
	return mapRows(rows, func(r dbsqlc.UsersSearchRow) chat.User { return chat.User{ID: r.ID, Name: r.Name} }), nil
}

func (s *Store) MessagePages(ctx context.Context, keys []chat.PageKey) ([]chat.Page, error) {
	c := pageKeyColumns(keys)
	p := dbsqlc.MessagePagesParams{ConversationIds: c.ids, Limits: c.limits, Offsets: c.offsets, Befores: c.befores}
	rows, err := readRouted(ctx, s, func(ctx context.Context, q *dbsqlc.Queries) ([]dbsqlc.MessagePagesRow, error) {
		return q.MessagePages(ctx, p)
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("message pages: %w", err)
	}
	pages := make([]chat.Page, len(keys))
	for i := range pages {
		pages[i].Messages = make([]chat.Message, 0, keys[i].Limit)
	}
	for _, r := range rows {
		i := int(r.Ord) - 1 // WITH ORDINALITY counts from 1
		if i < 0 || i >= len(pages) {
			return nil, fmt.Errorf("message pages: row for key %d of %d", r.Ord, len(keys))
		}
		if len(pages[i].Messages) == keys[i].Limit {
			pages[i].HasMore = true
			continue
		}
		pages[i].Messages = append(pages[i].Messages, message(messageRow{
			ID: r.ID, ConversationID: r.ConversationID, Seq: r.Seq, SenderID: r.SenderID,
			SenderName: r.SenderName, Body: r.Body, ClientMessageID: r.ClientMessageID, CreatedAt: r.CreatedAt,
			EditedAt: r.EditedAt, DeletedAt: r.DeletedAt, Version: r.Version, Reactions: r.Reactions,
		}))
	}
	return pages, nil
}

// pageColumns are page keys as the parallel arrays that the page queries unnest WITH
// ORDINALITY: row i of the result answers keys[i]. An offset page's before is the largest
// bigint, a bound no seq reaches.
type pageColumns struct {
	ids, befores    []int64
	limits, offsets []int32
}

func pageKeyColumns(keys []chat.PageKey) pageColumns {
	c := pageColumns{ids: make([]int64, len(keys)), befores: make([]int64, len(keys)), limits: make([]int32, len(keys)), offsets: make([]int32, len(keys))}
	for i, k := range keys {
		c.ids[i], c.limits[i], c.offsets[i], c.befores[i] = k.ConversationID, int32(k.Limit), int32(k.Offset), k.Before
		if k.Before == 0 {
			c.befores[i] = math.MaxInt64
		}
	}
	return c
}

func (s *Store) MessagesBefore(ctx context.Context, conversationID, beforeSeq int64, limit int) ([]chat.Message, error) {
	rows, err := s.q.MessagesBefore(ctx, dbsqlc.MessagesBeforeParams{ConversationID: conversationID, BeforeSeq: beforeSeq, RowLimit: int32(limit)})
	if err != nil {
		return nil, fmt.Errorf("messages before: %w", err)
	}
	return mapRows(rows, func(r dbsqlc.MessagesBeforeRow) chat.Message { return message(messageRow(r)) }), nil
}

func (s *Store) MessagesAfter(ctx context.Context, conversationID, afterSeq int64, limit int) ([]chat.Message, error) {
	p := dbsqlc.MessagesAfterParams{ConversationID: conversationID, AfterSeq: afterSeq, RowLimit: int32(limit)}
	rows, err := readRouted(ctx, s, func(ctx context.Context, q *dbsqlc.Queries) ([]dbsqlc.MessagesAfterRow, error) {
		return q.MessagesAfter(ctx, p)
	},
		func(rows []dbsqlc.MessagesAfterRow) bool { return len(rows) == limit })
	if err != nil {
		return nil, fmt.Errorf("messages after: %w", err)
	}
	return mapRows(rows, func(r dbsqlc.MessagesAfterRow) chat.Message { return message(messageRow(r)) }), nil
}

func (s *Store) MessagesAround(ctx context.Context, conversationID, seq int64, older, newer int) ([]chat.Message, error) {
	rows, err := s.q.MessagesAround(ctx, dbsqlc.MessagesAroundParams{
		ConversationID: conversationID, Seq: seq, OlderLimit: int32(older), NewerLimit: int32(newer),
	})
	if err != nil {
		return nil, fmt.Errorf("messages around: %w", err)
	}
	return mapRows(rows, func(r dbsqlc.MessagesAroundRow) chat.Message { return message(messageRow(r)) }), nil
}

// InsertMessage takes the conversation's next seq and event_seq under its row lock and inserts
// the message with its event, with one statement in a transaction of its own. A repeated client
// id spends neither number and returns the original message and its event.
func (s *Store) InsertMessage(ctx context.Context, m chat.NewMessage) (chat.Change, bool, error) {
	c, created, err := s.insertMessage(ctx, m)
	if err == nil {
		// A repeat too: its hooks run again (see chat.Service.SendMessage).
		s.stamp(ctx, &c)
	}
	return c, created, err
}

// insertMessage stores m with one statement (MessageSend, in a transaction of its own: see
// send). Its empty answer means either a conversation the sender cannot write to or a client id
// already sent; only a send with a client id pays a second statement to tell them apart (and to
// return the original).
func (s *Store) insertMessage(ctx context.Context, m chat.NewMessage) (chat.Change, bool, error) {
	row, err := s.send(ctx, m)
	if err == nil {
		return sentChange(row), true, nil
	}
	// No row, or a concurrent send of the same client id committed first (and this statement
	// changed nothing).
	repeat := errors.Is(err, pgx.ErrNoRows) || violates(err, "messages_client_id_key")
	if !repeat {
		return chat.Change{}, false, fmt.Errorf("send message: %w", err)
	}
	if m.ClientMessageID == nil {
		return chat.Change{}, false, apperr.ErrNotFound
	}
	orig, err := s.messageByClientID(ctx, m)
	if errors.Is(err, pgx.ErrNoRows) {
		return chat.Change{}, false, apperr.ErrNotFound
	}
	if err != nil {
		return chat.Change{}, false, err
	}
	return orig, false, nil
}

// violates reports whether err is PostgreSQL's unique violation of the named constraint.
func violates(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == constraint
}

// messageByClientID returns the sending of the message m's sender sent with m's client id, as
// the Change it made (with the members now).
func (s *Store) messageByClientID(ctx context.Context, m chat.NewMessage) (chat.Change, error) {
	row, err := s.q.MessageByClientID(ctx, dbsqlc.MessageByClientIDParams{
		ConversationID: m.ConversationID, SenderID: m.SenderID, ClientMessageID: *m.ClientMessageID,
	})
	if err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return chat.Change{}, err
		}
		return chat.Change{}, fmt.Errorf("message by client id: %w", err)
	}
	return sentChange(row), nil
}

// sentChange is the Change a message's sending made, from a row with the message, the seq of
// its message_added event and the conversation's members: MessageByClientID's, and MessageSend's
// (send).
func sentChange(row dbsqlc.MessageByClientIDRow) chat.Change {
	ev := messageAdded(message(messageRow{
		ID: row.ID, ConversationID: row.ConversationID, Seq: row.Seq, SenderID: row.SenderID, SenderName: row.SenderName,
		Body: row.Body, ClientMessageID: row.ClientMessageID, CreatedAt: row.CreatedAt, EditedAt: row.EditedAt,
		DeletedAt: row.DeletedAt, Version: row.Version, Reactions: row.Reactions,
	}), row.EventSeq)
	return chat.Change{ConversationID: row.ConversationID, Event: ev, Members: row.MemberIds}
}

// messageAdded is the event of m's sending.
func messageAdded(m chat.Message, eventSeq int64) *chat.MessageAdded {
	return &chat.MessageAdded{EventHeader: chat.EventHeader{
		EventSeq: eventSeq, ConversationID: m.ConversationID, Actor: chat.User{ID: m.SenderID, Name: m.SenderName}, At: m.CreatedAt,
	}, Message: &m}
}

func (s *Store) CreateConversation(ctx context.Context, creatorID int64, title string, memberIDs []int64) (chat.Conversation, chat.Change, error) {
	var out chat.Conversation
	var ch chat.Change
	err := s.inTx(ctx, func(q *dbsqlc.Queries) error {
		all := append([]int64{creatorID}, memberIDs...)
		n, err := q.UsersExist(ctx, all)
		if err != nil {
			return fmt.Errorf("users exist: %w", err)
		}
		if int(n) != len(all) {
			return apperr.Invalid("memberIds", "names a user that does not exist")
		}
		row, err := q.ConversationInsert(ctx, dbsqlc.ConversationInsertParams{Title: title, CreatedBy: creatorID})
		if err != nil {
			return fmt.Errorf("insert conversation: %w", err)
		}
		out = conversation(conversationRow(row))
		h := chat.EventHeader{EventSeq: row.LastEventSeq, ConversationID: out.ID, Actor: chat.User{ID: creatorID}, At: row.CreatedAt}
		ch = chat.Change{ConversationID: out.ID}
		ev, err := addMembers(ctx, q, h, creatorID, all, &ch)
		ch.Event = ev
		return err
	})
	if err == nil {
		s.stamp(ctx, &ch)
	}
	return out, ch, err
}

// conversationRow and messageRow are the shapes that sqlc generates once per query; Go's struct
// conversion turns each generated row type into these.
type conversationRow struct {
	ID            int64
	Title         string
	CreatedAt     time.Time
	LastSeq       int64
	LastMessageAt time.Time
	LastEventSeq  int64
}

func conversation(r conversationRow) chat.Conversation {
	return chat.Conversation{
		ID: r.ID, Title: r.Title, CreatedAt: r.CreatedAt, LastSeq: r.LastSeq, LastMessageAt: r.LastMessageAt,
		LastEventSeq: r.LastEventSeq,
	}
}

// memberConversationRow is a conversation read for one of its members, with the member's read
// position.
type memberConversationRow struct {
	ID            int64
	Title         string
	CreatedAt     time.Time
	LastSeq       int64
	LastMessageAt time.Time
	LastEventSeq  int64
	LastReadSeq   int64
}

func memberConversation(r memberConversationRow) chat.Conversation {
	c := conversation(conversationRow{
		ID: r.ID, Title: r.Title, CreatedAt: r.CreatedAt, LastSeq: r.LastSeq, LastMessageAt: r.LastMessageAt, LastEventSeq: r.LastEventSeq,
	})
	c.ViewerLastReadSeq = r.LastReadSeq
	return c
}

type messageRow struct {
	ID              int64
	ConversationID  int64
	Seq             int64
	SenderID        int64
	SenderName      string
	Body            string
	ClientMessageID *string
	CreatedAt       time.Time
	EditedAt        *time.Time
	DeletedAt       *time.Time
	Version         int32
	Reactions       []byte
}

func message(r messageRow) chat.Message {
	return chat.Message{
		ID: r.ID, ConversationID: r.ConversationID, Seq: r.Seq, SenderID: r.SenderID, SenderName: r.SenderName,
		Body: r.Body, CreatedAt: r.CreatedAt, ClientMessageID: r.ClientMessageID, EditedAt: r.EditedAt,
		DeletedAt: r.DeletedAt, Version: int(r.Version), Reactions: reactions(r.ConversationID, r.ID, r.Reactions),
	}
}

// reactions decodes messages.reactions ([{"emoji", "count"}, …], most used first).
func reactions(conversationID, messageID int64, raw []byte) []chat.Reaction {
	if len(raw) <= 2 { // "[]"
		return nil
	}
	var rs []struct {
		Emoji string `json:"emoji"`
		Count int    `json:"count"`
	}
	if err := json.Unmarshal(raw, &rs); err != nil {
		return nil // the column is written by ReactionsSummarize only; never seen malformed
	}
	out := make([]chat.Reaction, len(rs))
	for i, r := range rs {
		out[i] = chat.Reaction{ConversationID: conversationID, MessageID: messageID, Emoji: r.Emoji, Count: r.Count}
	}
	return out
}
