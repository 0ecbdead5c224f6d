package devstack

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestReplica starts a replica of a stack, reads through its PgBouncer entry what the primary
// wrote, holds replay back and lets it go, and stops and starts it again.
func TestReplica(t *testing.T) {
	needServers(t)
	ctx := testContext(t)
	s, err := Start(ctx, Config{Dir: stackDir(t), Ephemeral: true, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.StartReplica(ctx)
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, s.DirectURL, "CREATE TABLE notes (n int)")
	execSQL(t, s.DirectURL, "INSERT INTO notes VALUES (1)")
	waitCount(t, r.DatabaseURL, 1)

	execSQL(t, r.DirectURL, "SELECT pg_wal_replay_pause()")
	execSQL(t, s.DirectURL, "INSERT INTO notes VALUES (2)")
	execSQL(t, s.DirectURL, "SELECT pg_switch_wal()") // the insert reaches the replica's disk
	time.Sleep(200 * time.Millisecond)
	if n := count(t, r.DatabaseURL); n != 1 {
		t.Errorf("with replay paused the replica counts %d rows, want 1", n)
	}
	execSQL(t, r.DirectURL, "SELECT pg_wal_replay_resume()")
	waitCount(t, r.DatabaseURL, 2)

	// Another database gets an entry of its own.
	execSQL(t, s.DirectURL, "CREATE DATABASE other")
	url, err := r.AddDatabase(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	execSQL(t, url, "SELECT 1")

	// Started again by a second StartReplica, and after Stop.
	if again, err := s.StartReplica(ctx); err != nil || again.Port != r.Port {
		t.Fatalf("StartReplica again: port %v, %v; want the running replica on %d", again, err, r.Port)
	}
	if err := r.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, r.DirectURL); err == nil {
		t.Error("the replica answers after Stop")
	}
	execSQL(t, s.DirectURL, "INSERT INTO notes VALUES (3)")
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	waitCount(t, r.DatabaseURL, 3)

	// The stack's Stop stops the replica; after the stack starts again, StartReplica copies
	// the primary afresh.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := pgx.Connect(ctx, r.DirectURL); err == nil {
		t.Error("the replica answers after the stack's Stop")
	}
	s, err = Start(ctx, Config{Dir: s.Dir, Ephemeral: true, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if r, err = s.StartReplica(ctx); err != nil {
		t.Fatal(err)
	}
	waitCount(t, r.DatabaseURL, 3)
}

// connect connects to url in the simple exec mode, which PgBouncer's transaction pooling takes.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func execSQL(t *testing.T, url, sql string) {
	t.Helper()
	conn := connect(t, url)
	defer conn.Close(context.Background())
	if _, err := conn.Exec(t.Context(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func count(t *testing.T, url string) int {
	t.Helper()
	conn := connect(t, url)
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM notes").Scan(&n); err != nil {
		var pgErr interface{ SQLState() string }
		if errors.As(err, &pgErr) && pgErr.SQLState() == "42P01" {
			return 0 // the table is not there yet
		}
		t.Fatal(err)
	}
	return n
}

// waitCount waits until the replica counts n rows (replay is asynchronous).
func waitCount(t *testing.T, url string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := count(t, url)
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica counts %d rows, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
