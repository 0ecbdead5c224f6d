package main

// The cluster against real processes: three instances of the binary behind nginx, over a Redis
// Cluster and the tests' PgBouncer and PostgreSQL, under HTTP load and WebSocket subscribers,
// through a rolling restart and through a kill -9.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

// The tests that start a cluster are slow tests (testenv.SlowTests): each takes about a minute
// and starts seven processes.
func TestMain(m *testing.M) { testenv.MainSlow(m, testenv.Options{Migrate: db.Migrate}) }

func needCluster(t *testing.T) {
	t.Helper()
	testenv.SkipSlow(t, "starts a cluster of real processes")
}

// reachableDir is a temporary directory the account nginx runs as can enter.
func reachableDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestNginxConfig has nginx check the configuration the cluster renders, with an instance out
// of rotation as a rolling restart has it.
func TestNginxConfig(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/nginx"); err != nil && testing.Short() {
		t.Skip("nginx is not installed (make deps)")
	}
	dir := reachableDir(t)
	c := &Cluster{cfg: Config{Dir: dir, Port: 18080, FailTimeout: 1500 * time.Millisecond}}
	for i := range Instances {
		c.Instances = append(c.Instances, &Instance{N: i + 1, Addr: fmt.Sprintf("127.0.0.1:%d", 18081+i)})
	}
	if err := os.MkdirAll(c.cfg.path("log"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, err := c.nginxConfig(2)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	conf := cfg.Config()
	for _, want := range []string{
		"server 127.0.0.1:18081 max_fails=1 fail_timeout=2s;",
		"server 127.0.0.1:18082 max_fails=1 fail_timeout=2s down;",
		"proxy_buffering off;",
		"proxy_next_upstream error timeout http_502 http_503;",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("nginx.conf has no %q:\n%s", want, conf)
		}
	}
}

// testCluster starts a cluster over a new seeded database.
func testCluster(t *testing.T) (*Cluster, testenv.Database) {
	t.Helper()
	d := apptest.NewSeededDatabase(t)
	env := apptest.Env(t, d, "")
	delete(env, "ADDR")
	delete(env, "OPS_ADDR")
	delete(env, "REDIS_URL")
	env["PATH"], env["HOME"] = os.Getenv("PATH"), os.Getenv("HOME")
	env["RATE_LIMIT_DISABLED"], env["LOG_LEVEL"], env["SHUTDOWN_TIMEOUT"] = "true", "warn", "10s"
	env["WS_MAX_CONNS_PER_USER"] = "1000"
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	c, err := Start(ctx, Config{Dir: reachableDir(t), Bin: apptest.Binary(t), Env: env, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(); err != nil {
			t.Error(err)
		}
	})
	return c, d
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// request is one HTTP request of the load, timed from the load's start.
type request struct {
	kind, conv, cmid string
	start, end       time.Duration
	status           int
	upstream         string // nginx's X-Upstream: the instances it tried
	err              error  // nil: answered 200 without errors
}

// load is a mixed HTTP load through nginx (reads and sendMessage) and WebSocket subscribers to
// messageAdded through nginx that resume with afterSeq whenever their connection ends.
type load struct {
	t      *testing.T
	url    string
	token  string
	convs  []string
	began  time.Time
	client *http.Client

	mu       sync.Mutex
	requests []request

	stopHTTP   context.CancelFunc
	httpDone   sync.WaitGroup
	subsCtx    context.Context
	stopSubs   context.CancelFunc
	subsDone   sync.WaitGroup
	subs       []*subscriber
	sendCount  atomic.Int64
	subscribed atomic.Int64 // subscribers whose first subscription was sent
}

type subscriber struct {
	conv       string
	from       int64 // afterSeq of the first subscription
	seqs       []int64
	reconnects int
	errs       []string
	last       atomic.Int64
	target     atomic.Int64 // the conversation's last seq once the load is over
}

func (l *load) since() time.Duration { return time.Since(l.began) }

// post sends a GraphQL request through nginx. Every request of the load is idempotent (a query,
// or sendMessage with its clientMessageId), and says so with Idempotency-Key: Go's transport
// then sends it again when nginx closed the keep-alive connection as it was being sent (nginx's
// old workers close their idle connections on a reload).
func (l *load) post(ctx context.Context, query string, vars map[string]any, key string) (int, string, error) {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.url+"/query", bytes.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", l.token)
	req.Header.Set("Idempotency-Key", key)
	res, err := l.client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, res.Header.Get("X-Upstream"), err
	}
	var out struct {
		Data   json.RawMessage
		Errors []json.RawMessage
	}
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Errors) > 0 || len(out.Data) == 0 || string(out.Data) == "null" {
		return res.StatusCode, res.Header.Get("X-Upstream"), fmt.Errorf("%d %.200s", res.StatusCode, b)
	}
	return res.StatusCode, res.Header.Get("X-Upstream"), nil
}

func (l *load) record(r request) {
	l.mu.Lock()
	l.requests = append(l.requests, r)
	l.mu.Unlock()
}

// startLoad dials subscribers (spread over convs), waits until each receives a first message,
// then starts workers/2 readers and workers/2 senders.
func startLoad(t *testing.T, c *Cluster, d testenv.Database, convs []string, subscribers, workers int) *load {
	t.Helper()
	l := &load{
		t: t, url: c.URL, token: "Bearer " + apptest.Token(t, apptest.Secret, 1, time.Hour), convs: convs, began: time.Now(),
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}},
	}
	t.Cleanup(l.client.CloseIdleConnections)
	l.subsCtx, l.stopSubs = context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(l.stopSubs)
	start := lastSeqs(t, d, convs)
	wsURL := "ws" + strings.TrimPrefix(c.URL, "http") + "/query"
	for i := range subscribers {
		s := &subscriber{conv: convs[i%len(convs)]}
		s.from = start[s.conv]
		s.last.Store(s.from)
		s.target.Store(1 << 62)
		l.subs = append(l.subs, s)
		l.subsDone.Go(func() { l.subscribe(wsURL, s) })
	}
	// A first message in each conversation: once every subscriber has it, every subscription is
	// live.
	for _, conv := range convs {
		if _, _, err := l.post(t.Context(), apptest.LoadSendQuery, map[string]any{"conv": conv, "body": "first", "cmid": "first-" + conv}, "first-"+conv); err != nil {
			t.Fatalf("first message: %v", err)
		}
	}
	l.waitDelivered(t, lastSeqs(t, d, convs), time.Minute)

	ctx, stop := context.WithCancel(context.Background())
	l.stopHTTP = stop
	for w := range workers {
		l.httpDone.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				r := request{kind: "read", conv: convs[(w+i)%len(convs)], start: l.since()}
				if w%2 == 0 {
					r.kind, r.cmid = "send", fmt.Sprintf("load-%d", l.sendCount.Add(1))
					r.status, r.upstream, r.err = l.post(ctx, apptest.LoadSendQuery, map[string]any{"conv": r.conv, "body": "load " + r.cmid, "cmid": r.cmid}, r.cmid)
				} else {
					r.status, r.upstream, r.err = l.post(ctx, apptest.LoadReadQuery, map[string]any{"id": r.conv, "offset": i % 60}, fmt.Sprintf("read-%d-%d", w, i))
				}
				r.end = l.since()
				if ctx.Err() != nil && r.err != nil {
					return // cancelled at the end of the load, not failed
				}
				l.record(r)
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
	return l
}

// subscribe follows s.conv until the load is over, resuming after the last seq it received
// whenever its connection ends.
func (l *load) subscribe(wsURL string, s *subscriber) {
	first := true
	for l.subsCtx.Err() == nil {
		ws, err := apptest.DialSubscribe(l.t, wsURL, l.token, "1", apptest.MessageAddedQuery, map[string]any{"c": s.conv, "after": s.last.Load()})
		if err != nil {
			s.errs = append(s.errs, fmt.Sprintf("%s: dial: %v", l.since().Round(time.Millisecond), err))
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if first {
			l.subscribed.Add(1)
			first = false
		}
		for {
			m, err := ws.Read(l.subsCtx)
			if err != nil {
				break
			}
			added, err := m.MessageAdded()
			if err != nil {
				s.errs = append(s.errs, fmt.Sprintf("%s: %v", l.since().Round(time.Millisecond), err))
				break
			}
			s.seqs = append(s.seqs, added.Seq)
			s.last.Store(added.Seq)
		}
		ws.Drop()
		if s.last.Load() >= s.target.Load() {
			return
		}
		s.reconnects++
	}
}

// waitDelivered waits until every subscriber has received its conversation's seq in want.
func (l *load) waitDelivered(t *testing.T, want map[string]int64, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		behind := 0
		for _, s := range l.subs {
			if s.last.Load() < want[s.conv] {
				behind++
			}
		}
		if behind == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d subscribers have not received every message after %s", behind, len(l.subs), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// finish stops the HTTP load, sends a last message to each conversation through nginx, waits
// until every subscriber has it and stops the subscribers.
func (l *load) finish(t *testing.T, d testenv.Database) map[string]int64 {
	t.Helper()
	l.stopHTTP()
	l.httpDone.Wait()
	for _, conv := range l.convs {
		if _, _, err := l.post(t.Context(), apptest.LoadSendQuery, map[string]any{"conv": conv, "body": "last", "cmid": "last-" + conv}, "last-"+conv); err != nil {
			t.Fatalf("last message: %v", err)
		}
	}
	final := lastSeqs(t, d, l.convs)
	for _, s := range l.subs {
		s.target.Store(final[s.conv])
	}
	l.waitDelivered(t, final, time.Minute)
	l.stopSubs()
	l.subsDone.Wait()
	return final
}

// checkSubscribers checks that every subscriber received every seq of its conversation after
// the one it started from, once each, in order.
func (l *load) checkSubscribers(t *testing.T, final map[string]int64) (delivered, reconnects int) {
	t.Helper()
	bad := 0
	for i, s := range l.subs {
		delivered += len(s.seqs)
		reconnects += s.reconnects
		want := make([]int64, 0, final[s.conv]-s.from)
		for seq := s.from + 1; seq <= final[s.conv]; seq++ {
			want = append(want, seq)
		}
		if !slices.Equal(s.seqs, want) {
			bad++
			if bad <= 3 {
				t.Errorf("subscriber %d (conversation %s): got %d messages, want seqs %d..%d once each in order; first differences: %v; errors: %v",
					i, s.conv, len(s.seqs), s.from+1, final[s.conv], firstDiff(s.seqs, want), s.errs)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d subscribers missed or repeated messages", bad, len(l.subs))
	}
	return delivered, reconnects
}

func firstDiff(got, want []int64) string {
	for i := range max(len(got), len(want)) {
		if i >= len(got) || i >= len(want) || got[i] != want[i] {
			return fmt.Sprintf("at %d: got %v, want %v", i, got[i:min(len(got), i+5)], want[i:min(len(want), i+5)])
		}
	}
	return "none"
}

func lastSeqs(t *testing.T, d testenv.Database, convs []string) map[string]int64 {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), d.DirectURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	out := map[string]int64{}
	for _, c := range convs {
		var seq int64
		if err := conn.QueryRow(t.Context(), `SELECT last_seq FROM conversations WHERE id = $1::bigint`, c).Scan(&seq); err != nil {
			t.Fatal(err)
		}
		out[c] = seq
	}
	return out
}

// checkStoredOnce checks that each clientMessageId in acked is stored exactly once.
func checkStoredOnce(t *testing.T, d testenv.Database, acked []string) {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), d.DirectURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(t.Context(), `SELECT client_message_id, count(*) FROM messages WHERE client_message_id = ANY($1) GROUP BY 1`, acked)
	if err != nil {
		t.Fatal(err)
	}
	counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (struct {
		cmid string
		n    int
	}, error) {
		var v struct {
			cmid string
			n    int
		}
		return v, r.Scan(&v.cmid, &v.n)
	})
	if err != nil {
		t.Fatal(err)
	}
	stored := 0
	for _, c := range counts {
		if c.n != 1 {
			t.Errorf("clientMessageId %s stored %d times", c.cmid, c.n)
		}
		stored++
	}
	if stored != len(acked) {
		t.Errorf("%d of %d acknowledged messages stored", stored, len(acked))
	}
}

// demoConversations returns three of the demo user's conversations.
func demoConversations(t *testing.T, c *Cluster) []string {
	t.Helper()
	return apptest.NewEndpoint(t, c.URL, apptest.Secret).Client(1).ConversationIDs(t, 3, 3)
}

const (
	subscribers = 300
	workers     = 8
)

// TestRollingRestart restarts the three instances one at a time under the load: no HTTP request
// fails, and every subscriber ends with every message exactly once.
func TestRollingRestart(t *testing.T) {
	needCluster(t)
	c, d := testCluster(t)
	convs := demoConversations(t, c)
	l := startLoad(t, c, d, convs, subscribers, workers)
	time.Sleep(time.Second)
	restarts, err := c.RollingRestart(t.Context(), func(r Restart) { t.Log(r) })
	if err != nil {
		t.Fatal(err)
	}
	if len(restarts) != Instances {
		t.Fatalf("%d restarts, want %d", len(restarts), Instances)
	}
	time.Sleep(time.Second)
	final := l.finish(t, d)

	reads, sends, acked, failed := l.outcomes()
	for _, r := range failed[:min(len(failed), 5)] {
		t.Errorf("%s at %s (upstream %q): %v", r.kind, r.start.Round(time.Millisecond), r.upstream, r.err)
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d requests failed across the rolling restart, want none", len(failed), len(l.requests))
	}
	checkStoredOnce(t, d, acked)
	delivered, reconnects := l.checkSubscribers(t, final)
	t.Logf("rolling restart: %d requests (%d reads, %d sendMessage), %d failed; %d subscribers, %d reconnections, %d messages delivered (%d sent in all)",
		len(l.requests), reads, sends, len(failed), len(l.subs), reconnects, delivered, countSent(final, l))
}

// outcomes counts the load's reads and sends and sorts its requests out: the clientMessageIds
// of the sends acknowledged, and the requests that failed.
func (l *load) outcomes() (reads, sends int, acked []string, failed []request) {
	for _, r := range l.requests {
		if r.kind == "send" {
			sends++
		} else {
			reads++
		}
		switch {
		case r.err != nil:
			failed = append(failed, r)
		case r.kind == "send":
			acked = append(acked, r.cmid)
		}
	}
	return reads, sends, acked, failed
}

// countSent is how many messages the subscribers' conversations got while they followed them.
func countSent(final map[string]int64, l *load) int64 {
	from := map[string]int64{}
	for _, s := range l.subs {
		from[s.conv] = s.from
	}
	var n int64
	for conv, f := range from {
		n += final[conv] - f
	}
	return n
}

// TestKillInstance kills one instance with SIGKILL under the load: only requests in flight on
// it fail; a failed sendMessage sent again with its clientMessageId is stored once; subscribers
// resume on the others without a gap.
func TestKillInstance(t *testing.T) {
	needCluster(t)
	c, d := testCluster(t)
	convs := demoConversations(t, c)
	l := startLoad(t, c, d, convs, subscribers, workers)
	time.Sleep(1500 * time.Millisecond)
	victim := c.Instances[1]
	if err := victim.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := victim.Wait(t.Context()); err == nil {
		t.Fatal("the killed instance exited 0")
	}
	// Gone: a request that starts from now on cannot be in flight on it.
	killedAt := l.since()
	time.Sleep(1500 * time.Millisecond)
	if err := victim.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // past nginx's fail_timeout: the instance takes requests again
	l.finish(t, d)

	reads, sends, acked, failed := l.outcomes()
	failedSends := 0
	for _, r := range failed {
		// In flight on the victim: started before the kill, and nginx's last try was the victim.
		tried := strings.Split(r.upstream, ", ")
		if r.start > killedAt || tried[len(tried)-1] != victim.Addr {
			t.Errorf("%s started at %s (kill at %s) failed with upstream %q: %v; want failures only among requests in flight on %s",
				r.kind, r.start.Round(time.Millisecond), killedAt.Round(time.Millisecond), r.upstream, r.err, victim.Addr)
		}
		if r.kind == "send" {
			failedSends++
			// Sent again with the same clientMessageId: stored once, whether or not the first try
			// had committed.
			if _, _, err := l.post(t.Context(), apptest.LoadSendQuery, map[string]any{"conv": r.conv, "body": "load " + r.cmid, "cmid": r.cmid}, r.cmid); err != nil {
				t.Errorf("retrying %s: %v", r.cmid, err)
			}
			acked = append(acked, r.cmid)
		}
	}
	// The retries' messages, if new, reach the subscribers too.
	final := lastSeqs(t, d, convs)
	checkStoredOnce(t, d, acked)
	delivered, reconnects := l.resumeAndCheck(t, d, final)
	t.Logf("kill -9 of instance %d at %s: %d requests (%d reads, %d sendMessage), %d failed (%d sendMessage, retried); %d subscribers, %d reconnections, %d messages delivered",
		victim.N, killedAt.Round(time.Millisecond), len(l.requests), reads, sends, len(failed), failedSends, len(l.subs), reconnects, delivered)
}

// resumeAndCheck checks the subscribers against final: finish stopped them at the last
// message, and the retries after it may have added messages they never saw, so those are
// read now in a subscription resumed where each left off.
func (l *load) resumeAndCheck(t *testing.T, d testenv.Database, final map[string]int64) (int, int) {
	t.Helper()
	wsURL := "ws" + strings.TrimPrefix(l.url, "http") + "/query"
	for _, s := range l.subs {
		missing := final[s.conv] - s.last.Load()
		if missing <= 0 {
			continue
		}
		ws, err := apptest.DialSubscribe(t, wsURL, l.token, "1", apptest.MessageAddedQuery, map[string]any{"c": s.conv, "after": s.last.Load()})
		if err != nil {
			t.Fatal(err)
		}
		ms, err := ws.Collect("1", int(missing), 30*time.Second, "")
		if err != nil {
			t.Fatal(err)
		}
		s.seqs = append(s.seqs, apptest.Seqs(ms)...)
		s.last.Store(s.seqs[len(s.seqs)-1])
		ws.Drop()
	}
	return l.checkSubscribers(t, final)
}

// TestResponseCacheOnTheCluster: behind nginx, on the Redis Cluster, the response cache is on
// (its hits show in each instance's /health/cache on the operations listener), and a read that
// starts after a send returned sees it, whichever instance serves either.
func TestResponseCacheOnTheCluster(t *testing.T) {
	needCluster(t)
	c, _ := testCluster(t)
	conv := demoConversations(t, c)[0]
	e := apptest.NewEndpoint(t, c.URL, apptest.Secret)
	cl := e.Client(1)
	const page = `query($c: ID!) { conversation(id: $c) { messages(limit: 1, offset: 0) { items { seq body } } } }`
	var got struct {
		Conversation struct {
			Messages struct{ Items []struct{ Seq int64 } }
		}
	}
	const rounds = 200
	for i := range rounds {
		var sent struct{ SendMessage struct{ Seq int64 } }
		cl.Query(t, `mutation($c: ID!, $b: String!) { sendMessage(input: {conversationId: $c, body: $b}) { seq } }`,
			map[string]any{"c": conv, "b": fmt.Sprintf("read your writes %d", i)}, &sent)
		for range 3 { // the first read fills an instance's cache, the next ones may hit it
			cl.Query(t, page, map[string]any{"c": conv}, &got)
			if items := got.Conversation.Messages.Items; len(items) != 1 || items[0].Seq != sent.SendMessage.Seq {
				t.Fatalf("round %d: sent seq %d, then read %+v", i, sent.SendMessage.Seq, items)
			}
		}
	}
	var hits, stale int64
	for _, in := range c.Instances {
		resp, err := http.Get("http://" + in.OpsAddr + "/health/cache")
		if err != nil {
			t.Fatal(err)
		}
		var h struct {
			ResponseCache *struct {
				Hits          int64   `json:"hits"`
				StaleRejected int64   `json:"staleRejected"`
				HitRatio      float64 `json:"hitRatio"`
			} `json:"responseCache"`
		}
		err = json.NewDecoder(resp.Body).Decode(&h)
		_ = resp.Body.Close()
		if err != nil || h.ResponseCache == nil {
			t.Fatalf("instance %d: /health/cache: %v (response cache: %v)", in.N, err, h.ResponseCache)
		}
		t.Logf("instance %d: response cache hits %d, stale rejected %d, hit ratio %.2f", in.N, h.ResponseCache.Hits, h.ResponseCache.StaleRejected, h.ResponseCache.HitRatio)
		hits += h.ResponseCache.Hits
		stale += h.ResponseCache.StaleRejected
	}
	if hits == 0 {
		t.Fatalf("no response-cache hit on any instance over %d rounds of a send and three reads", rounds)
	}
	t.Logf("%d rounds of a send and three reads through nginx: 0 stale reads, %d hits, %d stale responses rejected", rounds, hits, stale)
}
