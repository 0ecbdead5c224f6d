package main

// Fault injection against real processes: Redis killed during a read
// load, PgBouncer and PostgreSQL restarted during a mixed load. Each test gets services of its
// own (a private Redis, or a private PostgreSQL + PgBouncer + Redis stack), so that it can stop
// them without disturbing the other tests' databases, and may run in parallel with them.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// publicCodes is the DESIGN's fixed list of extensions.code values.
var publicCodes = []string{"UNAUTHENTICATED", "NOT_FOUND", "BAD_USER_INPUT", "RATE_LIMITED",
	"COMPLEXITY_LIMIT_EXCEEDED", "PERSISTED_QUERY_NOT_FOUND", "INTERNAL_SERVER_ERROR"}

// leakMarkers are fragments of SQL, driver, network and Go error text that no client may see.
var leakMarkers = []string{"sql", "pgx", "pgconn", "pgbouncer", "postgres", "redis", "select ", "insert ",
	"update ", "conversations", "connection", "dial ", "tcp", "127.0.0.1", "eof", "context ", "deadline",
	"goroutine", ".go:", "panic", "failed to", "terminating", "server closed"}

// result is one GraphQL request's outcome as a client sees it.
type result struct {
	apptest.Response
	Err error // no GraphQL response: a transport error, or a body that is not one
}

func post(ctx context.Context, c *apptest.Client, query string, vars map[string]any) result {
	res, err := c.Do(ctx, query, vars)
	return result{res, err}
}

// problem says what is wrong with a failed result that a client must be able to act on: a
// transport error, a body that is not a GraphQL response, or an error without a public code or
// with internal text. Empty when every error is a clean public one.
func (r result) problem() string {
	if r.Err != nil {
		return "transport: " + r.Err.Error()
	}
	if len(r.Errors) == 0 {
		if r.Status != http.StatusOK {
			return fmt.Sprintf("status %d without GraphQL errors: %.200s", r.Status, r.Body)
		}
		return ""
	}
	for _, e := range r.Errors {
		if !slices.Contains(publicCodes, e.Code()) {
			return fmt.Sprintf("error without a public code: %.300s", r.Body)
		}
		msg := strings.ToLower(e.Message)
		for _, m := range leakMarkers {
			if strings.Contains(msg, m) {
				return fmt.Sprintf("error text leaks %q: %.300s", m, r.Body)
			}
		}
	}
	return ""
}

func (r result) ok() bool { return r.Err == nil && r.OK() }

// startFaultServer starts a server for a fault test over the demo data set: no rate limiting
// (the load is one user's), a short breaker rhythm, configure's settings.
func startFaultServer(t *testing.T, o apptest.Options, configure func(*app.Config)) *apptest.Server {
	t.Helper()
	o.Seed = true
	o.Configure = func(c *app.Config) {
		c.RedisBreakerOpen = 500 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	}
	return apptest.Start(t, o)
}

// privateStack starts a PostgreSQL + PgBouncer + Redis of the test's own (about a second with
// an ephemeral cluster on tmpfs), stopped when the test ends.
func privateStack(t *testing.T) *devstack.Stack {
	t.Helper()
	testenv.Stack(t) // skips under -short
	root := ""
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		root = "/dev/shm" // PostgreSQL creates its cluster much faster on tmpfs
	}
	dir, err := os.MkdirTemp(root, "threadline-fault-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	began := time.Now()
	var log strings.Builder
	s, err := devstack.Start(ctx, devstack.Config{Dir: dir, Ephemeral: true, Log: &log})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("private stack: %v\n%s", err, log.String())
	}
	t.Logf("private stack started in %s", time.Since(began).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stopping the private stack: %v", err)
		}
		os.RemoveAll(dir)
	})
	return s
}

// demoConversations returns the ids of the demo user's conversations (three or more).
func demoConversations(t *testing.T, srv *apptest.Endpoint) []string {
	t.Helper()
	return srv.Client(1).ConversationIDs(t, 10, 3)
}

// The load's read and send.
const faultReadQuery, faultSendQuery = apptest.LoadReadQuery, apptest.LoadSendQuery

// outcome is one request of a load, timed from the load's start.
type outcome struct {
	start, end time.Duration
	kind       string // "read" or "send"
	conv       string
	cmid       string // sends: the clientMessageId
	msgID      string // sends that succeeded: the message id returned
	res        result
}

// mixedLoad runs readers and senders against srv until stop is closed, each request bounded
// by the client's timeout, and returns every outcome.
type mixedLoad struct {
	mu       sync.Mutex
	outcomes []outcome
	began    time.Time
	wg       sync.WaitGroup
	stop     chan struct{}
}

func startMixedLoad(srv *apptest.Server, convs []string, readers, senders int, prefix string) *mixedLoad {
	l := &mixedLoad{began: time.Now(), stop: make(chan struct{})}
	client := srv.Client(1)
	client.HTTP = &http.Client{Timeout: 15 * time.Second}
	ctx := context.Background()
	var sent atomic.Int64
	worker := func(kind string, w int) {
		defer l.wg.Done()
		rng := rand.New(rand.NewPCG(uint64(w), uint64(len(kind))))
		for {
			select {
			case <-l.stop:
				return
			default:
			}
			conv := convs[rng.IntN(len(convs))]
			o := outcome{kind: kind, conv: conv, start: time.Since(l.began)}
			if kind == "read" {
				o.res = post(ctx, client, faultReadQuery, map[string]any{"id": conv, "offset": rng.IntN(80)})
			} else {
				o.cmid = fmt.Sprintf("%s-%d-%d", prefix, w, sent.Add(1))
				o.res = post(ctx, client, faultSendQuery, map[string]any{"conv": conv, "body": "fault " + o.cmid, "cmid": o.cmid})
				if o.res.ok() {
					var d struct{ SendMessage struct{ ID string } }
					_ = json.Unmarshal(o.res.Data, &d)
					o.msgID = d.SendMessage.ID
				}
			}
			o.end = time.Since(l.began)
			l.mu.Lock()
			l.outcomes = append(l.outcomes, o)
			l.mu.Unlock()
			if !o.res.ok() {
				time.Sleep(20 * time.Millisecond) // a client backing off a little
			}
		}
	}
	for i := range readers {
		l.wg.Add(1)
		go worker("read", i)
	}
	for i := range senders {
		l.wg.Add(1)
		go worker("send", 1000+i)
	}
	return l
}

func (l *mixedLoad) since() time.Duration { return time.Since(l.began) }

func (l *mixedLoad) finish() []outcome {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.outcomes
}

// TestFaultRedisKilledDuringReads kills the server's Redis while several clients read pages,
// and starts it again: not one read fails (the breaker sends them to PostgreSQL), and the
// cache serves hits again afterwards.
func TestFaultRedisKilledDuringReads(t *testing.T) {
	t.Parallel()
	testenv.Stack(t)
	rds := apptest.StartRedis(t)
	srv := startFaultServer(t, apptest.Options{RedisURL: rds.URL()}, nil)
	convs := demoConversations(t, &srv.Endpoint)

	load := startMixedLoad(srv, convs, 6, 0, "")
	time.Sleep(700 * time.Millisecond)
	killedAt := load.since()
	rds.Stop(t)
	time.Sleep(1200 * time.Millisecond)
	rds.Restart(t)
	restartedAt := load.since()
	// Until the breaker has closed again and hits are back, under the same load (a few hundred
	// milliseconds; up to 9 s measured with the machine's two cores saturated by a build).
	deadline := time.Now().Add(20 * time.Second)
	for {
		before := cacheHealthOf(t, &srv.Endpoint).redisHits()
		time.Sleep(200 * time.Millisecond)
		if h := cacheHealthOf(t, &srv.Endpoint); h.redisHits() > before && h.Breaker == "closed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cache hits 20s after Redis came back: %+v", cacheHealthOf(t, &srv.Endpoint))
		}
	}
	recoveredAt := load.since()
	time.Sleep(300 * time.Millisecond)
	outcomes := load.finish()

	var during, failed int
	for _, o := range outcomes {
		if o.start >= killedAt && o.start < restartedAt {
			during++
		}
		if !o.res.ok() {
			failed++
			if failed <= 5 {
				t.Errorf("read at %s failed: %s %s", o.start, o.res.problem(), o.res.Body)
			}
		}
	}
	if during < 20 {
		t.Errorf("only %d reads while Redis was down: the load did not cover the outage", during)
	}
	t.Logf("%d reads, %d while Redis was down (%s), %d failed; Redis killed at %s, back at %s, cache hits again at %s",
		len(outcomes), during, (restartedAt - killedAt).Round(time.Millisecond), failed,
		killedAt.Round(time.Millisecond), restartedAt.Round(time.Millisecond), recoveredAt.Round(time.Millisecond))
}

// TestFaultPgBouncerRestart restarts PgBouncer under reads and idempotent sends.
func TestFaultPgBouncerRestart(t *testing.T) {
	t.Parallel()
	testDatabaseRestart(t, "pgbouncer", (*devstack.Stack).RestartPgBouncer)
}

// TestFaultPostgresRestart restarts PostgreSQL (fast shutdown: sessions are terminated) under
// reads and idempotent sends.
func TestFaultPostgresRestart(t *testing.T) {
	t.Parallel()
	testDatabaseRestart(t, "postgres", (*devstack.Stack).RestartPostgres)
}

// testDatabaseRestart runs a server on a private stack, restarts one of the stack's services
// under a mixed load, and checks: errors only inside the restart window (plus a short grace for
// the pool to replace its connections), each with a public code and no internal text; full
// recovery without restarting the server (requests and readiness); every acknowledged send in
// PostgreSQL exactly once; and every failed send, retried with its clientMessageId, stored once.
func testDatabaseRestart(t *testing.T, name string, restart func(*devstack.Stack, context.Context) error) {
	stack := privateStack(t)
	if err := db.Migrate(context.Background(), stack.DirectURL); err != nil {
		t.Fatal(err)
	}
	// The caches are off so that every read reaches PostgreSQL through PgBouncer: cached reads
	// would pass the outage without proving anything.
	database := testenv.Database{Name: stack.Database, DirectURL: stack.DirectURL, PooledURL: stack.DatabaseURL}
	srv := startFaultServer(t, apptest.Options{Database: &database, RedisURL: stack.RedisURL}, func(c *app.Config) {
		c.CacheEnabled, c.ResponseCacheEnabled = false, false
		c.RequestTimeout = 5 * time.Second
	})
	convs := demoConversations(t, &srv.Endpoint)

	load := startMixedLoad(srv, convs, 4, 3, "fault-"+name)
	time.Sleep(800 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	restartBegan := load.since()
	if err := restart(stack, ctx); err != nil {
		t.Fatalf("restarting %s: %v", name, err)
	}
	restartEnded := load.since()
	time.Sleep(4 * time.Second)
	outcomes := load.finish()

	// The window in which errors are allowed: the restart itself and the grace after it.
	// PgBouncer retries a failed login to PostgreSQL after server_login_retry (1 s), and may
	// fail twice while PostgreSQL starts: up to 1.7 s measured on a busy machine.
	const grace = 3 * time.Second
	var reads, sends, failed, badErrors, outside int
	var firstErr, lastErr time.Duration = -1, -1
	var acked, failedSends []outcome
	for _, o := range outcomes {
		if o.kind == "read" {
			reads++
		} else {
			sends++
		}
		if o.res.ok() {
			if o.kind == "send" {
				acked = append(acked, o)
			}
			continue
		}
		failed++
		if o.kind == "send" {
			failedSends = append(failedSends, o)
		}
		if firstErr < 0 {
			firstErr = o.end
		}
		lastErr = max(lastErr, o.end)
		if p := o.res.problem(); p != "" {
			badErrors++
			if badErrors <= 5 {
				t.Errorf("%s at %s..%s: %s", o.kind, o.start.Round(time.Millisecond), o.end.Round(time.Millisecond), p)
			}
		}
		if o.end < restartBegan || o.start > restartEnded+grace {
			outside++
			if outside <= 5 {
				t.Errorf("%s failed outside the restart window (%s..%s + %s): %s..%s: %s", o.kind,
					restartBegan.Round(time.Millisecond), restartEnded.Round(time.Millisecond), grace,
					o.start.Round(time.Millisecond), o.end.Round(time.Millisecond), o.res.Body)
			}
		}
	}
	t.Logf("%s restart took %s (at %s..%s); %d reads, %d sends, %d failed (first error ended at %s, last at %s: %s after the restart ended); codes of failures: %s",
		name, (restartEnded - restartBegan).Round(time.Millisecond), restartBegan.Round(time.Millisecond), restartEnded.Round(time.Millisecond),
		reads, sends, failed, firstErr.Round(time.Millisecond), lastErr.Round(time.Millisecond),
		(lastErr - restartEnded).Round(time.Millisecond), failureCodes(outcomes))

	// Full recovery: the end of the load was clean (checked above), and the server is ready.
	var okAfter int
	for _, o := range outcomes {
		if o.start > restartEnded+grace && o.res.ok() {
			okAfter++
		}
	}
	if okAfter < 20 {
		t.Errorf("only %d successful requests after the restart window", okAfter)
	}
	if status, body := srv.Get("/readyz"); status != http.StatusOK {
		t.Errorf("readyz after the restart: %d %s", status, body)
	}

	// Every acknowledged send is in PostgreSQL exactly once, with the id it was answered with.
	stored := storedByClientID(t, srv.Direct, "fault-"+name+"-")
	for _, o := range acked {
		s, ok := stored[o.cmid]
		if !ok || s.count != 1 || s.id != o.msgID {
			t.Errorf("acknowledged send %s (message %s): stored %+v, want exactly once", o.cmid, o.msgID, s)
		}
	}
	for cmid, s := range stored {
		if s.count != 1 {
			t.Errorf("%s stored %d times", cmid, s.count)
		}
	}
	// A failed send retried with the same clientMessageId: stored once, either created now or
	// (when its commit had landed before the failure) answered with the original.
	client := srv.Client(1)
	client.HTTP = &http.Client{Timeout: 10 * time.Second}
	var landed int
	for _, o := range failedSends {
		before, existed := stored[o.cmid]
		r := post(ctx, client, faultSendQuery, map[string]any{"conv": o.conv, "body": "fault " + o.cmid, "cmid": o.cmid})
		if !r.ok() {
			t.Errorf("retrying %s: %s", o.cmid, r.Body)
			continue
		}
		var d struct{ SendMessage struct{ ID string } }
		_ = json.Unmarshal(r.Data, &d)
		if existed {
			landed++
			if d.SendMessage.ID != before.id {
				t.Errorf("retrying %s, whose first attempt had committed as %s: got %s", o.cmid, before.id, d.SendMessage.ID)
			}
		}
	}
	after := storedByClientID(t, srv.Direct, "fault-"+name+"-")
	for _, o := range failedSends {
		if s := after[o.cmid]; s.count != 1 {
			t.Errorf("failed send %s after its retry: stored %d times", o.cmid, s.count)
		}
	}
	t.Logf("%d acknowledged sends all stored once; %d failed sends retried (%d had committed before failing), all stored once",
		len(acked), len(failedSends), landed)
}

func failureCodes(outcomes []outcome) string {
	counts := map[string]int{}
	for _, o := range outcomes {
		if !o.res.ok() {
			k := strings.Join(o.res.Codes(), ",")
			if o.res.Err != nil {
				k = "transport error"
			}
			counts[o.kind+":"+k]++
		}
	}
	return fmt.Sprint(counts)
}

type storedMessage struct {
	id    string
	count int
}

func storedByClientID(t *testing.T, direct *pgxpool.Pool, prefix string) map[string]storedMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := direct.Query(ctx, `SELECT client_message_id, min(id)::text, count(*) FROM messages WHERE client_message_id LIKE $1 || '%' GROUP BY 1`, prefix)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]storedMessage{}
	for rows.Next() {
		var cmid string
		var s storedMessage
		if err := rows.Scan(&cmid, &s.id, &s.count); err != nil {
			t.Fatal(err)
		}
		out[cmid] = s
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
