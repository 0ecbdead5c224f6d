package db_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
)

// replacedPagesStatement is the statement conversation_pages_for_member replaced, as it was
// sent for every page: the function must return what it returned, row for row.
const replacedPagesStatement = `
SELECT k.ord::int AS ord, c.id AS conv_id, c.title, c.created_at AS conv_created_at, c.last_seq,
       c.last_message_at, c.last_event_seq, mb.last_read_seq,
       coalesce(m.id, 0)::bigint AS id, coalesce(m.seq, 0)::bigint AS seq,
       coalesce(m.sender_id, 0)::bigint AS sender_id, coalesce(u.name, '')::text AS sender_name,
       coalesce(m.body, '')::text AS body, m.client_message_id,
       coalesce(m.created_at, c.created_at)::timestamptz AS created_at, m.edited_at, m.deleted_at,
       coalesce(m.version, 1)::int AS version, coalesce(m.reactions, '[]')::jsonb AS reactions
FROM unnest($1::bigint[]) WITH ORDINALITY AS k(conversation_id, ord)
JOIN conversations c ON c.id = k.conversation_id
JOIN conversation_members mb ON mb.conversation_id = c.id AND mb.user_id = $2
LEFT JOIN LATERAL (
    SELECT mm.*
    FROM messages mm
    WHERE mm.conversation_id = c.id
      AND mm.seq <= c.last_seq - ($4::int[])[k.ord]
    ORDER BY mm.seq DESC
    LIMIT ($3::int[])[k.ord] + 1
) m ON true
LEFT JOIN users u ON u.id = m.sender_id
ORDER BY k.ord, m.seq DESC`

// replacedPageRow is a row of replacedPagesStatement.
type replacedPageRow struct {
	Ord             int32
	ConvID          int64
	Title           string
	ConvCreatedAt   time.Time
	LastSeq         int64
	LastMessageAt   time.Time
	LastEventSeq    int64
	LastReadSeq     int64
	ID              int64
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

// replacedConversationPages is ConversationPagesForMember as it was: replacedPagesStatement,
// read in pgx's text format, each row mapped to the chat types.
func replacedConversationPages(t *testing.T, pool *pgxpool.Pool, userID int64, keys []chat.PageKey) ([]*chat.Conversation, []chat.Page) {
	t.Helper()
	ids, limits, offsets := make([]int64, len(keys)), make([]int32, len(keys)), make([]int32, len(keys))
	for i, k := range keys {
		ids[i], limits[i], offsets[i] = k.ConversationID, int32(k.Limit), int32(k.Offset)
	}
	rows, err := pool.Query(context.Background(), replacedPagesStatement, pgx.QueryExecModeExec, ids, userID, limits, offsets)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[replacedPageRow])
	if err != nil {
		t.Fatal(err)
	}
	convs := make([]*chat.Conversation, len(keys))
	pages := make([]chat.Page, len(keys))
	for _, r := range rs {
		i := int(r.Ord) - 1
		if convs[i] == nil {
			convs[i] = &chat.Conversation{
				ID: r.ConvID, Title: r.Title, CreatedAt: r.ConvCreatedAt, LastSeq: r.LastSeq, LastMessageAt: r.LastMessageAt,
				LastEventSeq: r.LastEventSeq, ViewerLastReadSeq: r.LastReadSeq,
			}
			pages[i].Messages = make([]chat.Message, 0, keys[i].Limit)
		}
		if r.ID == 0 {
			continue
		}
		if len(pages[i].Messages) == keys[i].Limit {
			pages[i].HasMore = true
			continue
		}
		var reactions []chat.Reaction
		var rr []struct {
			Emoji string `json:"emoji"`
			Count int    `json:"count"`
		}
		if err := json.Unmarshal(r.Reactions, &rr); err != nil {
			t.Fatal(err)
		}
		for _, x := range rr {
			reactions = append(reactions, chat.Reaction{ConversationID: r.ConvID, MessageID: r.ID, Emoji: x.Emoji, Count: x.Count})
		}
		pages[i].Messages = append(pages[i].Messages, chat.Message{
			ID: r.ID, ConversationID: r.ConvID, Seq: r.Seq, SenderID: r.SenderID, SenderName: r.SenderName, Body: r.Body,
			CreatedAt: r.CreatedAt, ClientMessageID: r.ClientMessageID, EditedAt: r.EditedAt, DeletedAt: r.DeletedAt,
			Version: int(r.Version), Reactions: reactions,
		})
	}
	return convs, pages
}

// textRows returns the rows of a statement, each as PostgreSQL's text of the whole row.
func textRows(t *testing.T, pool *pgxpool.Pool, sql string, args ...any) []string {
	t.Helper()
	rows, err := pool.Query(context.Background(), "SELECT r::text FROM ("+sql+") AS r", args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestConversationPagesForMemberMatchesReplacedStatement holds the function and the hand-written
// read of its rows to the statement and mapping they replaced: the same rows, byte for byte, and
// the same conversations and pages, for members, non-members, missing and empty conversations,
// pages past the end, repeated keys, and messages edited, deleted, reacted to and sent with a
// client id.
func TestConversationPagesForMemberMatchesReplacedStatement(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	ctx := context.Background()
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "Ann", "Bo", "Cy", "Outsider")
	c1 := dbtest.Conversation(t, direct, "one", u[0], u[1], u[2])
	c2 := dbtest.Conversation(t, direct, "two", u[1], u[0])
	empty := dbtest.Conversation(t, direct, "empty", u[0])
	others := dbtest.Conversation(t, direct, "others", u[1], u[2])
	dbtest.Messages(t, direct, c1, u[:3], 60)
	dbtest.Messages(t, direct, c2, u[:2], 7)
	dbtest.Messages(t, direct, others, u[1:3], 5)
	var ids []int64
	for i, body := range []string{"with a client id", "to be edited", "to be deleted", "to react to"} {
		cid := fmt.Sprintf("client-%d", i)
		ch, _, err := store.InsertMessage(ctx, chat.NewMessage{ConversationID: c2, SenderID: u[0], Body: body, ClientMessageID: &cid})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ch.Event.(*chat.MessageAdded).Message.ID)
	}
	for _, m := range []struct {
		actor int64
		m     chat.Mutation
	}{
		{u[0], chat.EditMessage{MessageID: ids[1], Body: "edited"}},
		{u[0], chat.DeleteMessage{MessageID: ids[2]}},
		{u[0], chat.React{MessageID: ids[3], Emoji: "👍", Add: true}},
		{u[1], chat.React{MessageID: ids[3], Emoji: "👍", Add: true}},
		{u[1], chat.React{MessageID: ids[3], Emoji: "🎉", Add: true}},
	} {
		if _, err := store.Apply(ctx, m.actor, m.m); err != nil {
			t.Fatalf("%T: %v", m.m, err)
		}
	}
	if _, err := store.MarkRead(ctx, u[0], c1, 42); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		user int64
		keys []chat.PageKey
	}{
		{"newest page", u[0], []chat.PageKey{{ConversationID: c1, Limit: 50}}},
		{"edits, deletions, reactions, client ids", u[0], []chat.PageKey{{ConversationID: c2, Limit: 50}}},
		{"a page that ends exactly at the oldest", u[0], []chat.PageKey{{ConversationID: c1, Limit: 10, Offset: 50}}},
		{"past the end", u[0], []chat.PageKey{{ConversationID: c1, Limit: 10, Offset: 60}, {ConversationID: c2, Limit: 5, Offset: 500}}},
		{"empty conversation", u[0], []chat.PageKey{{ConversationID: empty, Limit: 50}}},
		{"not a member", u[0], []chat.PageKey{{ConversationID: others, Limit: 50}}},
		{"missing", u[0], []chat.PageKey{{ConversationID: 987654, Limit: 50}}},
		{"a stranger", u[3], []chat.PageKey{{ConversationID: c1, Limit: 50}, {ConversationID: c2, Limit: 50}}},
		{"a batch in key order", u[1], []chat.PageKey{
			{ConversationID: c2, Limit: 3}, {ConversationID: 987654, Limit: 5}, {ConversationID: c1, Limit: 10, Offset: 25},
			{ConversationID: others, Limit: 100}, {ConversationID: empty, Limit: 5}, {ConversationID: c1, Limit: 1},
			{ConversationID: c2, Limit: 5, Offset: 5}, {ConversationID: c2, Limit: 3},
		}},
		{"no keys", u[0], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, limits, offsets := make([]int64, len(tc.keys)), make([]int32, len(tc.keys)), make([]int32, len(tc.keys))
			for i, k := range tc.keys {
				ids[i], limits[i], offsets[i] = k.ConversationID, int32(k.Limit), int32(k.Offset)
			}
			want := textRows(t, direct, replacedPagesStatement, ids, tc.user, limits, offsets)
			// The function the store calls, whose befores bound nothing for offset pages, and
			// the four-argument one that the previous release calls during a rolling deploy.
			befores := slices.Repeat([]int64{math.MaxInt64}, len(tc.keys))
			got := textRows(t, direct, "SELECT * FROM conversation_pages_for_member($1, $2, $3, $4, $5)", ids, tc.user, limits, offsets, befores)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rows (-replaced statement +function):\n%s", diff)
			}
			got = textRows(t, direct, "SELECT * FROM conversation_pages_for_member($1, $2, $3, $4)", ids, tc.user, limits, offsets)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("rows (-replaced statement +four-argument function):\n%s", diff)
			}

			wantConvs, wantPages := replacedConversationPages(t, direct, tc.user, tc.keys)
			// Twice: the second time on a connection that has the statement's description and
			// the function's plan.
			for range 2 {
				convs, pages, err := store.ConversationPagesForMember(ctx, tc.user, tc.keys)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(wantConvs, convs); diff != "" {
					t.Errorf("conversations (-replaced +got):\n%s", diff)
				}
				if diff := cmp.Diff(wantPages, pages); diff != "" {
					t.Errorf("pages (-replaced +got):\n%s", diff)
				}
			}
		})
	}
}

// TestConversationPagesForMemberErrors: a failed statement is an error, not a partial answer.
func TestConversationPagesForMemberErrors(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	ctx := context.Background()
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "Ann")
	conv := dbtest.Conversation(t, direct, "one", u...)
	dbtest.Messages(t, direct, conv, u, 3)
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if convs, pages, err := store.ConversationPagesForMember(canceled, u[0], []chat.PageKey{{ConversationID: conv, Limit: 5}}); err == nil {
		t.Errorf("with a canceled context: %v %v, no error", convs, pages)
	}
	// A limit past what int4 arithmetic allows fails in PostgreSQL (limits[ord] + 1).
	if convs, pages, err := store.ConversationPagesForMember(ctx, u[0], []chat.PageKey{{ConversationID: conv, Limit: 1<<31 - 1}}); err == nil {
		t.Errorf("with an overflowing limit: %v %v, no error", convs, pages)
	}
}

// TestFunctionPlans: the statement inside each PL/pgSQL function is planned once per
// connection, as a generic plan (its parameters appear as $n where a custom plan would show the
// arguments' values), and that plan reads every table by index. conversation_pages_for_member:
// the conversation, the membership and the senders by key, each page (by offset or by cursor)
// as a range of (conversation_id, seq). message_send: the conversation, the membership and the
// client id by key, for a first send and for a repeat of its client id alike. Eight calls each,
// past the five custom plans PostgreSQL would try first, were the plan not forced generic.
func TestFunctionPlans(t *testing.T) {
	t.Parallel()
	pool, plans := seededExplainingPool(t, "SET auto_explain.log_nested_statements = on")
	store := db.NewStore(pool)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		marker string // text of the function's statement, not of the call
		want   []string
		call   func(i int) error
	}{
		{"conversation_pages_for_member", "FROM unnest(conversation_ids)", []string{"conversations_pkey", "messages_conversation_seq_key", "users_pkey", "$2"}, func(i int) error {
			keys := []chat.PageKey{{ConversationID: int64(1 + i), Limit: 50}, {ConversationID: int64(2 + i), Limit: 20, Offset: 30}, {ConversationID: int64(3 + i), Limit: 10, Before: 20}}
			convs, _, err := store.ConversationPagesForMember(ctx, 1, keys)
			if err == nil && convs[0] == nil {
				err = fmt.Errorf("user 1 is not a member of conversation %d", keys[0].ConversationID)
			}
			return err
		}},
		{"message_send", "WITH bump AS", []string{"conversations_pkey", "messages_client_id_key", "users_pkey", "Index Cond: (id = $1)"}, func(i int) error {
			cid := fmt.Sprintf("plan-%d", i/2) // every second send repeats the one before
			_, created, err := store.InsertMessage(ctx, chat.NewMessage{ConversationID: int64(1 + i/2), SenderID: 1, Body: "planned", ClientMessageID: &cid})
			if err == nil && created != (i%2 == 0) {
				err = fmt.Errorf("created %v", created)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { // one after the other: one connection, one plan log
			for i := range 8 {
				plans.take()
				if err := tc.call(i); err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				var nested []string
				for _, p := range plans.take() {
					if strings.Contains(p, tc.marker) {
						nested = append(nested, p)
					}
				}
				if len(nested) != 1 {
					t.Fatalf("call %d: %d plans of the function's statement, want 1", i, len(nested))
				}
				for _, want := range tc.want {
					if !strings.Contains(nested[0], want) {
						t.Errorf("call %d: the plan has no %q:\n%s", i, want, nested[0])
					}
				}
				if strings.Contains(nested[0], "Seq Scan") {
					t.Errorf("call %d: the plan reads a whole table:\n%s", i, nested[0])
				}
			}
		})
	}
}

// Pages by cursor (PageKey.Before) read the newest Limit messages below the cursor, alone or
// beside offset pages in one batch, through both page statements: MessagePages and, with the
// conversation and the membership, ConversationPagesForMember.
func TestPagesByCursor(t *testing.T) {
	t.Parallel()
	store, d := newStore(t)
	ctx := context.Background()
	direct := dbtest.Open(t, d.DirectURL)
	u := dbtest.Users(t, direct, "Ann", "Bo", "Cy")
	conv := dbtest.Conversation(t, direct, "sixty", u[0], u[1])
	others := dbtest.Conversation(t, direct, "others", u[1], u[2])
	dbtest.Messages(t, direct, conv, u[:2], 60)
	dbtest.Messages(t, direct, others, u[1:], 5)

	keys := []chat.PageKey{
		{ConversationID: conv, Limit: 10, Before: 30},
		{ConversationID: conv, Limit: 5, Offset: 10},
		{ConversationID: conv, Limit: 10, Before: 5},   // fewer than a page left
		{ConversationID: conv, Limit: 10, Before: 11},  // exactly a page left
		{ConversationID: conv, Limit: 10, Before: 61},  // the newest page
		{ConversationID: conv, Limit: 3, Before: 1000}, // past the end: the newest page
		{ConversationID: conv, Limit: 10, Before: 1},   // nothing below
		{ConversationID: others, Limit: 10, Before: 4}, // not Ann's
		{ConversationID: conv, Limit: 50},
	}
	want := []struct {
		seqs    string
		hasMore bool
	}{
		{"29 28 27 26 25 24 23 22 21 20", true}, {"50 49 48 47 46", true}, {"4 3 2 1", false},
		{"10 9 8 7 6 5 4 3 2 1", false}, {"60 59 58 57 56 55 54 53 52 51", true}, {"60 59 58", true},
		{"", false}, {"3 2 1", false}, {"", true}, // the last is replaced below
	}
	var newest []string
	for s := 60; s > 10; s-- {
		newest = append(newest, fmt.Sprint(s))
	}
	want[8].seqs = strings.Join(newest, " ")
	seqsOf := func(p chat.Page) string {
		var seqs []string
		for _, m := range p.Messages {
			seqs = append(seqs, fmt.Sprint(m.Seq))
		}
		return strings.Join(seqs, " ")
	}

	pages, err := store.MessagePages(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pages {
		if got := seqsOf(p); got != want[i].seqs || p.HasMore != want[i].hasMore {
			t.Errorf("MessagePages, key %d %+v: seqs %q hasMore %v, want %q %v", i, keys[i], got, p.HasMore, want[i].seqs, want[i].hasMore)
		}
	}
	convs, pages, err := store.ConversationPagesForMember(ctx, u[0], keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pages {
		if keys[i].ConversationID == others {
			if convs[i] != nil || len(p.Messages) != 0 {
				t.Errorf("ConversationPagesForMember, key %d: Ann is not a member, got %+v %+v", i, convs[i], p)
			}
			continue
		}
		if convs[i] == nil || convs[i].LastSeq != 60 {
			t.Fatalf("ConversationPagesForMember, key %d: conversation %+v", i, convs[i])
		}
		if got := seqsOf(p); got != want[i].seqs || p.HasMore != want[i].hasMore {
			t.Errorf("ConversationPagesForMember, key %d %+v: seqs %q hasMore %v, want %q %v", i, keys[i], got, p.HasMore, want[i].seqs, want[i].hasMore)
		}
	}
}
