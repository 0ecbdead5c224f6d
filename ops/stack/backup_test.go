package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// TestBackupAndPointInTimeRestore is make backup and make restore end to end: a stack with WAL
// archiving and a base backup, then 1,000 messages sent through the store (each acknowledged:
// InsertMessage returned, so it committed), then a restore to a moment between two of them
// into a new data directory on a free port. The restored database holds exactly the messages
// acknowledged before that moment, in order; the stack, still running, holds all of them.
//
// The moment is taken on this machine's clock, which the server's commit timestamps share:
// after message k was acknowledged and before message k+1 was sent, so message k committed
// before it and message k+1 after.
func TestBackupAndPointInTimeRestore(t *testing.T) {
	testenv.SkipShort(t, "starts PostgreSQL, PgBouncer and Redis, backs up and restores")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Not t.TempDir: when root, the postgres user must be able to enter it.
	dir, err := os.MkdirTemp("", "stack-backup-test-")
	if err != nil {
		t.Fatal(err)
	}
	restoreDir := dir + "/restored"
	t.Cleanup(func() {
		if err := devstack.StopRestored(restoreDir); err != nil {
			t.Error(err)
		}
		devstack.Stop(dir)
		os.RemoveAll(dir)
	})
	getenv := env(map[string]string{"STACK_PG_PORT": "0", "STACK_PGBOUNCER_PORT": "0", "STACK_REDIS_PORT": "0"})
	stack := func(args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if err := run(ctx, append(args, "-dir", dir), getenv, &out, &errOut); err != nil {
			t.Fatalf("%v: %v\n%s%s", args, err, out.String(), errOut.String())
		}
		return out.String()
	}
	stack("up")
	s, err := devstack.Attach(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx, s.DirectURL); err != nil {
		t.Fatal(err)
	}
	direct := dbtest.Open(t, s.DirectURL)
	users := dbtest.Users(t, direct, "Ada", "Grace")
	conv := dbtest.Conversation(t, direct, "backed up", users...)

	out := stack("backup")
	if !regexp.MustCompile(`(?m)^WAL archiving on .*\n^base backup `).MatchString(out) {
		t.Errorf("the first backup should turn archiving on and take a base backup:\n%s", out)
	}

	pool, err := db.OpenPool(ctx, s.DatabaseURL, db.PoolConfig{MaxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	store := db.NewStore(pool)
	const total, before = 1000, 617 // the restore keeps messages 1..before
	var target time.Time
	for i := 1; i <= total; i++ {
		if i == before+1 {
			// A moment between the acknowledgement of the last message kept and the sending
			// of the first one dropped, with room on either side at PostgreSQL's microsecond
			// resolution.
			time.Sleep(2 * time.Millisecond)
			target = time.Now()
			time.Sleep(2 * time.Millisecond)
		}
		id := fmt.Sprintf("m-%04d", i)
		if _, _, err := store.InsertMessage(ctx, chat.NewMessage{
			ConversationID: conv, SenderID: users[i%2], Body: id, ClientMessageID: &id,
		}); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}

	out = stack("restore", "-target-time", target.UTC().Format(time.RFC3339Nano), "-restore-dir", restoreDir)
	url := regexp.MustCompile(`(?m)^DATABASE_DIRECT_URL=(\S+)$`).FindStringSubmatch(out)
	if url == nil {
		t.Fatalf("restore printed no DATABASE_DIRECT_URL:\n%s", out)
	}
	if url[1] == s.DirectURL {
		t.Fatalf("the restored server is the stack's own: %s", url[1])
	}
	bodies := func(t *testing.T, dbURL string) []string {
		t.Helper()
		conn := dbtest.Open(t, dbURL)
		rows, err := conn.Query(ctx, "SELECT seq, body FROM messages WHERE conversation_id = $1 ORDER BY seq", conv)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var seq int64
			var body string
			if err := rows.Scan(&seq, &body); err != nil {
				t.Fatal(err)
			}
			if seq != int64(len(out)+1) {
				t.Fatalf("seq %d after %d messages", seq, len(out))
			}
			out = append(out, body)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	want := func(n int) []string {
		var out []string
		for i := 1; i <= n; i++ {
			out = append(out, fmt.Sprintf("m-%04d", i))
		}
		return out
	}
	if diff := cmp.Diff(want(before), bodies(t, url[1])); diff != "" {
		t.Errorf("restored to %s: messages (-want +got):\n%s", target.UTC().Format(time.RFC3339Nano), diff)
	}
	if diff := cmp.Diff(want(total), bodies(t, s.DirectURL)); diff != "" {
		t.Errorf("the stack after the restore: messages (-want +got):\n%s", diff)
	}
	// The conversation's counters agree with its restored messages: the restore is a
	// transaction-consistent state, not a copy of tables at different moments.
	var lastSeq int64
	if err := dbtest.Open(t, url[1]).QueryRow(ctx, "SELECT last_seq FROM conversations WHERE id = $1", conv).Scan(&lastSeq); err != nil {
		t.Fatal(err)
	}
	if lastSeq != before {
		t.Errorf("restored conversation's last_seq %d, want %d", lastSeq, before)
	}

	// A restore into a directory that exists is refused: it never overwrites.
	var errOut bytes.Buffer
	err = run(ctx, []string{"restore", "-dir", dir, "-target-time", target.UTC().Format(time.RFC3339Nano), "-restore-dir", restoreDir}, getenv, &bytes.Buffer{}, &errOut)
	if err == nil {
		t.Error("a second restore into the same directory succeeded")
	}
}
