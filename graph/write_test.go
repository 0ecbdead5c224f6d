package graph_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

func TestConcurrentSendsGetSeqOneToTwenty(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxConns: 20})
	ids := dbtest.Users(t, e.direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, e.direct, "race", ids[0], ids[1])

	var wg sync.WaitGroup
	seqs := make([]int, 20)
	for i := range 20 {
		wg.Go(func() {
			var d struct{ SendMessage message }
			e.as(ids[i%2], `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
				map[string]any{"c": conv, "b": fmt.Sprintf("m%d", i)}, &d)
			seqs[i] = d.SendMessage.Seq
		})
	}
	wg.Wait()
	slices.Sort(seqs)
	for i, s := range seqs {
		if s != i+1 {
			t.Fatalf("seqs %v, want 1..20", seqs)
		}
	}
	if n := dbtest.Count(t, e.direct, "SELECT count(*) FROM messages WHERE conversation_id = $1", conv); n != 20 {
		t.Fatalf("%d rows, want 20", n)
	}
	if n := dbtest.Count(t, e.direct, "SELECT last_seq FROM conversations WHERE id = $1", conv); n != 20 {
		t.Fatalf("last_seq %d, want 20", n)
	}
}

func TestSendMessageRetriesAreIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxConns: 10})
	ids := dbtest.Users(t, e.direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, e.direct, "retry", ids[0], ids[1])
	dbtest.Messages(t, e.direct, conv, ids, 3)

	send := `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "once", clientMessageId: "client-42"}) { id seq } }`
	// Five retries, concurrently (as a flaky network would send them), then one more after.
	var wg sync.WaitGroup
	got := make([]string, 6)
	for i := range 5 {
		wg.Go(func() {
			var d struct{ SendMessage message }
			e.as(ids[0], send, map[string]any{"c": conv}, &d)
			got[i] = d.SendMessage.ID
		})
	}
	wg.Wait()
	var d struct{ SendMessage message }
	e.as(ids[0], send, map[string]any{"c": conv}, &d)
	got[5] = d.SendMessage.ID
	for _, id := range got {
		if id != got[0] {
			t.Fatalf("retries returned different messages: %v", got)
		}
	}
	if n := dbtest.Count(t, e.direct, "SELECT count(*) FROM messages WHERE conversation_id = $1 AND client_message_id = 'client-42'", conv); n != 1 {
		t.Fatalf("%d rows for one client id, want 1", n)
	}
	// The seq of a lost race is not spent: the next message follows on without a hole.
	e.as(ids[1], `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "next"}) { seq } }`, map[string]any{"c": conv}, &d)
	if d.SendMessage.Seq != 5 {
		t.Fatalf("next seq %d, want 5", d.SendMessage.Seq)
	}
	// The same client id from another sender is another message.
	e.as(ids[1], `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "bob", clientMessageId: "client-42"}) { seq } }`, map[string]any{"c": conv}, &d)
	if d.SendMessage.Seq != 6 {
		t.Fatalf("bob's message seq %d, want 6", d.SendMessage.Seq)
	}
}

// TestSendMessageStatements: a send is one statement in its transaction (the seq taken, the
// message and its event inserted together); a retry of a client id already sent is that
// statement, which finds the original and takes no seq, then the read of the original.
func TestSendMessageStatements(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ids := dbtest.Users(t, e.direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, e.direct, "statements", ids[0], ids[1])
	send := `mutation($c: ID!, $cmid: String) { sendMessage(input: {conversationId: $c, body: "hi", clientMessageId: $cmid}) { id seq } }`

	for i, tc := range []struct {
		cmid    any
		want    []string
		wantSeq int
	}{
		{nil, []string{"begin", "MessageSend", "commit"}, 1},
		{"c-1", []string{"begin", "MessageSend", "commit"}, 2},
		{"c-1", []string{"begin", "MessageSend", "rollback", "MessageByClientID"}, 2},
	} {
		e.resetStatements()
		var d struct{ SendMessage message }
		e.as(ids[0], send, map[string]any{"c": conv, "cmid": tc.cmid}, &d)
		if got := e.statementsSeen(); !slices.Equal(got, tc.want) {
			t.Errorf("send %d (client id %v): statements %v, want %v", i, tc.cmid, got, tc.want)
		}
		if d.SendMessage.Seq != tc.wantSeq {
			t.Errorf("send %d: seq %d, want %d", i, d.SendMessage.Seq, tc.wantSeq)
		}
	}
	if n := dbtest.Count(t, e.direct, "SELECT last_seq FROM conversations WHERE id = $1", conv); n != 2 {
		t.Fatalf("last_seq %d after two messages and a retry, want 2", n)
	}
}

// snapshot returns every row of the tables the API writes, to show that a request changed nothing.
func snapshot(t *testing.T, e *env) string {
	t.Helper()
	var b strings.Builder
	for _, q := range []string{
		"SELECT id, name FROM users ORDER BY id",
		"SELECT id, title, last_seq, last_message_at FROM conversations ORDER BY id",
		"SELECT conversation_id, user_id FROM conversation_members ORDER BY 1, 2",
		"SELECT id, conversation_id, seq, sender_id, body, client_message_id FROM messages ORDER BY id",
	} {
		rows, err := e.direct.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		vals, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) ([]any, error) { return r.Values() })
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(&b, vals)
	}
	return b.String()
}

func TestBadInputIsRefusedAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 5)
	long := strings.Repeat("x", 4001)
	send := `mutation($in: SendMessageInput!) { sendMessage(input: $in) { id } }`
	create := `mutation($in: CreateConversationInput!) { createConversation(input: $in) { id } }`
	conv := fmt.Sprint(f.conv)
	cases := []struct {
		name  string
		query string
		vars  map[string]any
	}{
		{"limit 0", pageQuery, map[string]any{"id": conv, "limit": 0}},
		{"limit 101", pageQuery, map[string]any{"id": conv, "limit": 101}},
		{"offset -1", pageQuery, map[string]any{"id": conv, "offset": -1}},
		{"offset 10001", pageQuery, map[string]any{"id": conv, "offset": 10001}},
		{"first 0", historyQuery, map[string]any{"id": conv, "first": 0}},
		{"first 101", historyQuery, map[string]any{"id": conv, "first": 101}},
		{"bad cursor", historyQuery, map[string]any{"id": conv, "before": "not-a-cursor"}},
		{"conversation cursor as message cursor", historyQuery, map[string]any{"id": conv, "before": "YzoxOjE"}},
		{"conversations first 0", `{ conversations(first: 0) { edges { cursor } } }`, nil},
		{"conversations bad after", `{ conversations(after: "bm9wZQ") { edges { cursor } } }`, nil},
		{"id not a number", pageQuery, map[string]any{"id": "abc"}},
		{"id zero", pageQuery, map[string]any{"id": "0"}},
		{"id negative", pageQuery, map[string]any{"id": "-4"}},
		{"id literal", `{ conversation(id: "1x") { id } }`, nil},
		{"empty body", send, map[string]any{"in": map[string]any{"conversationId": conv, "body": ""}}},
		{"blank body", send, map[string]any{"in": map[string]any{"conversationId": conv, "body": " \n\t "}}},
		{"body too long", send, map[string]any{"in": map[string]any{"conversationId": conv, "body": long}}},
		{"empty client id", send, map[string]any{"in": map[string]any{"conversationId": conv, "body": "x", "clientMessageId": ""}}},
		{"send to bad id", send, map[string]any{"in": map[string]any{"conversationId": "zz", "body": "x"}}},
		{"empty title", create, map[string]any{"in": map[string]any{"title": "  "}}},
		{"title too long", create, map[string]any{"in": map[string]any{"title": strings.Repeat("t", 201)}}},
		{"member id bad", create, map[string]any{"in": map[string]any{"title": "x", "memberIds": []string{"nope"}}}},
		{"member missing", create, map[string]any{"in": map[string]any{"title": "x", "memberIds": []string{"999999"}}}},
		{"missing required", send, map[string]any{"in": map[string]any{"body": "x"}}},
		{"syntax error", `{ conversation(id: 1) {`, nil},
		{"unknown field", `{ nope }`, nil},
	}
	before := snapshot(t, e)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := e.do("Bearer "+e.token(f.alice), tc.query, tc.vars)
			if len(resp.Errors) == 0 {
				t.Fatalf("no error; data %s", resp.Data)
			}
			for _, err := range resp.Errors {
				if code, _ := err.Extensions["code"].(string); code != "BAD_USER_INPUT" {
					t.Fatalf("code %q (%q), want BAD_USER_INPUT", code, err.Message)
				}
				if leaksInternals(err.Message) {
					t.Fatalf("message leaks internals: %q", err.Message)
				}
			}
		})
	}
	if after := snapshot(t, e); after != before {
		t.Fatalf("bad input changed the database:\nbefore %s\nafter  %s", before, after)
	}
}

func TestPgBouncerCarriesEveryStatement(t *testing.T) {
	t.Parallel()
	stack := testenv.Stack(t)
	e := newEnv(t, envOptions{maxConns: 50}) // more than PgBouncer's pool of 20
	f := newFixture(t, e, 200)

	before := pgbouncerQueries(t, stack.PgBouncerAdminURL, e.dbase.Name)
	e.resetStatements()

	// 200 concurrent requests: reads of both kinds and sends.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			var q string
			var vars map[string]any
			switch i % 4 {
			case 0:
				q, vars = `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`, map[string]any{"c": f.conv, "b": fmt.Sprint("load ", i)}
			case 1:
				q, vars = historyQuery, map[string]any{"id": f.conv, "first": 20}
			default:
				q, vars = pageQuery, map[string]any{"id": f.conv, "limit": 50, "offset": i % 100}
			}
			resp, err := e.doErr("Bearer "+e.token(f.alice), q, vars)
			if err == nil && len(resp.Errors) > 0 {
				err = fmt.Errorf("%+v", resp.Errors)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("request failed: %v", err)
	}
	if n := dbtest.Count(t, e.direct, "SELECT count(*) FROM messages WHERE conversation_id = $1", f.conv); n != 250 {
		t.Fatalf("%d messages, want 250", n)
	}
	seen := e.statementsSeen()
	ours := len(seen)
	through := pgbouncerQueries(t, stack.PgBouncerAdminURL, e.dbase.Name) - before
	// PgBouncer counts the exchanges it relayed for this database (each ends with the server's
	// ReadyForQuery), transaction control included; the tracer counts statements. A send's BEGIN
	// travels in one exchange with its MessageSend (db.Store.send), so each MessageSend is one
	// statement more than exchanges. The counts agree only if every statement went through it.
	want := int64(ours - sliceCount(seen, "MessageSend"))
	if through != want {
		t.Fatalf("PgBouncer carried %d queries for our %d statements (%d exchanges)", through, ours, want)
	}
	t.Logf("%d statements from the server in %d exchanges, %d queries counted by PgBouncer", ours, want, through)
}

// sliceCount returns how many of names are name.
func sliceCount(names []string, name string) int {
	n := 0
	for _, s := range names {
		if s == name {
			n++
		}
	}
	return n
}

// pgbouncerQueries returns PgBouncer's total query count for a database (SHOW STATS).
func pgbouncerQueries(t *testing.T, adminURL, database string) int64 {
	t.Helper()
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SHOW STATS")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var total int64 = -1
	for rows.Next() {
		// The simple protocol returns text: read the columns raw, whatever types pgx would infer.
		raw := rows.RawValues()
		var name string
		var queries int64
		for i, fd := range rows.FieldDescriptions() {
			switch fd.Name {
			case "database":
				name = string(raw[i])
			case "total_query_count":
				queries, _ = strconv.ParseInt(string(raw[i]), 10, 64)
			}
		}
		if name == database {
			total = queries
		}
	}
	if total < 0 {
		return 0
	}
	return total
}
