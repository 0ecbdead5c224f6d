// Package dbtest builds fixtures for tests: users, conversations and messages written straight
// to a test database, faster than going through the API and independent of it.
package dbtest

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

// Open returns a pool over url (a test database's direct URL), closed when the test ends.
func Open(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("dbtest: open: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewDatabase is testenv.NewDatabase (a migrated database of the test's own, dropped when it
// ends) with a pool of direct connections to it (Open).
func NewDatabase(t testing.TB) (testenv.Database, *pgxpool.Pool) {
	t.Helper()
	d := testenv.NewDatabase(t)
	return d, Open(t, d.DirectURL)
}

// Analyze runs VACUUM ANALYZE on table, as autovacuum would after a bulk insert: the planner's
// statistics are current and a GIN index's pending list is merged.
func Analyze(t testing.TB, pool *pgxpool.Pool, table string) {
	t.Helper()
	if _, err := pool.Exec(context.Background(), "VACUUM ANALYZE "+table); err != nil {
		t.Fatalf("dbtest: VACUUM ANALYZE %s: %v", table, err)
	}
}

// Users creates users with the given names and returns their ids in order.
func Users(t testing.TB, pool *pgxpool.Pool, names ...string) []int64 {
	t.Helper()
	ids := make([]int64, len(names))
	for i, name := range names {
		if err := pool.QueryRow(context.Background(), "INSERT INTO users (name) VALUES ($1) RETURNING id", name).Scan(&ids[i]); err != nil {
			t.Fatalf("dbtest: insert user: %v", err)
		}
	}
	return ids
}

// Conversation creates a conversation whose members are members (the first is its creator and
// owner). Like a conversation the seed makes, it has no events until its first message.
func Conversation(t testing.TB, pool *pgxpool.Pool, title string, members ...int64) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	if err := pool.QueryRow(ctx, "INSERT INTO conversations (title, created_by) VALUES ($1, $2) RETURNING id", title, members[0]).Scan(&id); err != nil {
		t.Fatalf("dbtest: insert conversation: %v", err)
	}
	if _, err := pool.Exec(ctx, `INSERT INTO conversation_members (conversation_id, user_id, role)
		SELECT $1, u, CASE WHEN u = $3 THEN 'owner' ELSE 'member' END FROM unnest($2::bigint[]) AS u`, id, members, members[0]); err != nil {
		t.Fatalf("dbtest: insert members: %v", err)
	}
	return id
}

// Messages appends n messages to a conversation, sent by senders in turn, with bodies
// "message <seq>" and one second apart, with their message_added events, and moves the
// conversation's last_seq and last_event_seq along.
func Messages(t testing.TB, pool *pgxpool.Pool, conversationID int64, senders []int64, n int) {
	t.Helper()
	const q = `
WITH c AS (
    UPDATE conversations SET last_seq = last_seq + $3, last_event_seq = last_event_seq + $3, last_message_at = now()
    WHERE id = $1 RETURNING last_seq - $3 AS base, last_event_seq - $3 AS event_base
), m AS (
    INSERT INTO messages (conversation_id, seq, sender_id, body, created_at)
    SELECT $1, c.base + g, ($2::bigint[])[1 + (g - 1) % cardinality($2::bigint[])], 'message ' || (c.base + g),
           now() - make_interval(secs => $3 - g)
    FROM c, generate_series(1, $3::int) AS g
    RETURNING id, seq, sender_id, created_at
)
INSERT INTO conversation_events (conversation_id, event_seq, kind, actor_id, at, message_id)
SELECT $1, c.event_base + (m.seq - c.base), 'message_added', m.sender_id, m.created_at, m.id FROM m, c`
	if _, err := pool.Exec(context.Background(), q, conversationID, senders, n); err != nil {
		t.Fatalf("dbtest: insert messages: %v", err)
	}
}

// Count returns the number of rows a query such as "SELECT count(*) FROM messages" counts.
func Count(t testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		t.Fatalf("dbtest: count: %v", err)
	}
	return n
}

// SearchCorpus adds a corpus for search tests (see db.SearchCorpus) and returns what it added.
func SearchCorpus(t testing.TB, pool *pgxpool.Pool, c db.SearchCorpus) db.SearchCorpusReport {
	t.Helper()
	rep, err := db.SeedSearchCorpus(context.Background(), pool, c)
	if err != nil {
		t.Fatalf("dbtest: %v", err)
	}
	return rep
}
