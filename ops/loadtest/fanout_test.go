package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/chat"
	"github.com/threadline/threadline/internal/live"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m, testenv.Options{Migrate: db.Migrate})
}

// BenchmarkFanoutWebSocket is the live-updates scenario end to end: the threadline binary
// serves 10,000 WebSocket clients (graphql-transport-ws, one subscription each, each client a
// user of its own), and each iteration sends one message through another instance (in this
// process: commit, then publish on Redis) and waits until every subscriber of its conversation
// has received what it subscribed to over its socket:
//
//   - messageAdded: one messageAdded subscription per client, the clients spread over 100
//     conversations, and all on one conversation. Every subscriber of a conversation selects
//     the same fields of the message, so the server executes the selection once per message
//     and writes the same bytes to every subscriber (graph/fanout.go).
//
//   - sidebar: one viewerEvents subscription per client (the sidebar: each message is a
//     ConversationActivityEvent with the conversation's title, last message and the viewer's
//     unread count), all members of the one busy conversation, and spread over 100. Each event
//     carries the viewer's own position and unread count: it is executed per subscriber.
//
//     go test -run XXX -bench FanoutWebSocket -benchtime 200x -timeout 30m ./ops/loadtest
//
// Reported: rss-, heap- and stack-bytes/subscriber of the server process (heap in use: garbage
// not yet collected included), the publish-to-delivery latency until the message has reached
// all subscribers of its conversation (p50-ms, p99-ms; the clock starts after the commit, when
// the message is published), the median single delivery (delivery-p50-ms), the server's CPU
// time per delivered message (server-cpu-us/delivery), and on shutdown how long it took until
// every client had its 1001 going-away close (goaway-ms). The clients run in this process, on
// the same cores as the server. LOADTEST_SUBSCRIBERS changes the 10,000; LOADTEST_FANOUT
// (messageAdded, sidebar) runs one scenario only. With LOADTEST_SERVER_PROFILE=dir, the
// server's CPU profile over the first LOADTEST_SERVER_PROFILE_SECONDS (default 20) of the
// timed part is written to dir (go tool pprof -top dir/<scenario>-<subs>subs-<convs>convs.pprof).
//
// Every client connects from 127.0.0.1, so the server runs with WS_MAX_CONNS_PER_ADDR above
// the number of clients; WS_MAX_CONNS_PER_USER and the rate limit keep their defaults, since
// each client is a user of its own and sends its token with the upgrade request too.
func BenchmarkFanoutWebSocket(b *testing.B) {
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("LOADTEST_SUBSCRIBERS")); err == nil && v > 0 {
		n = v
	}
	only := os.Getenv("LOADTEST_FANOUT")
	apptest.Binary(b) // built once, before the clock starts
	for _, sc := range []scenario{messageAdded, sidebar} {
		if only != "" && only != sc.name {
			continue
		}
		for _, convs := range []int{100, 1} {
			name := fmt.Sprintf("%dsubs-%dconvs", n, convs)
			if sc.name != "messageAdded" { // the rows of BENCHMARKS.md before the sidebar keep their names
				name = sc.name + "-" + name
			}
			b.Run(name, func(b *testing.B) { benchWebSocket(b, sc, n, convs) })
		}
	}
}

// A scenario is what each client subscribes to.
type scenario struct {
	name string
	// query is the subscription; vars its variables for a client of conversation conv.
	query string
	vars  func(conv int64) map[string]any
}

var (
	messageAdded = scenario{
		name:  "messageAdded",
		query: `subscription($c: ID!) { messageAdded(conversationId: $c) { id seq conversationId body createdAt sender { id name } } }`,
		vars:  func(conv int64) map[string]any { return map[string]any{"c": strconv.FormatInt(conv, 10)} },
	}
	sidebar = scenario{
		name: "sidebar",
		query: `subscription { viewerEvents { __typename position ... on ConversationActivityEvent {
			conversation { id title unreadCount viewerLastReadSeq lastMessage { id seq body createdAt sender { id name } } } } } }`,
		vars: func(int64) map[string]any { return nil },
	}
)

type pending struct {
	remaining atomic.Int64
	start     atomic.Int64 // unix nanos, set when the message is published
	done      chan time.Time
}

func benchWebSocket(b *testing.B, sc scenario, n, convs int) {
	if n%convs != 0 {
		b.Fatalf("%d subscribers do not spread evenly over %d conversations", n, convs)
	}
	d := testenv.NewDatabase(b)
	redisURL := testenv.NewRedis(b)
	direct := dbtest.Open(b, d.DirectURL)
	writer := dbtest.Users(b, direct, "Writer")[0]
	readers := manyUsers(b, direct, n)
	convIDs := make([]int64, convs)
	for i := range convIDs {
		members := []int64{writer}
		for j := i; j < n; j += convs {
			members = append(members, readers[j])
		}
		convIDs[i] = dbtest.Conversation(b, direct, fmt.Sprint("c", i), members...)
	}
	env := apptest.Env(b, d, redisURL)
	env["APP_ENV"], env["LOG_LEVEL"], env["SHUTDOWN_TIMEOUT"] = "production", "warn", "60s"
	env["WS_MAX_CONNS_PER_ADDR"] = strconv.Itoa(n + 100)
	srv := &server{apptest.StartProcess(b, env)}

	// The sending instance, in this process.
	pool, err := db.OpenPool(context.Background(), d.PooledURL, db.PoolConfig{MaxConns: 4})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	ropts, _ := redis.ParseURL(redisURL)
	rdb := redis.NewClient(ropts)
	b.Cleanup(func() { rdb.Close() })
	store := db.NewStore(pool)
	hub := live.NewHub(live.Config{Redis: rdb, Store: store, Log: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() { _ = hub.Close(context.Background()) })
	var current sync.Map // conversation id -> *pending
	service := chat.NewService(store, chat.Hook{Name: "clock", Run: func(_ context.Context, c chat.Change) {
		if p, ok := current.Load(c.ConversationID); ok {
			p.(*pending).start.Store(time.Now().UnixNano())
		}
	}}, chat.Hook{Name: "live", Run: hub.AfterCommit})

	// Warm up with a few clients, so that one-time costs stay out of the per-subscriber memory.
	var deliveries []time.Duration
	var dmu sync.Mutex
	clients := make([]*client, 0, n)
	connect := func(from, to int) {
		out := make([]*client, to-from)
		var wg sync.WaitGroup
		next := atomic.Int64{}
		next.Store(int64(from))
		for range 32 {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= to {
						return
					}
					token := apptest.Token(b, apptest.Secret, readers[i], 24*time.Hour)
					c, err := dial(srv.WebSocketURL(), token, sc.query, sc.vars(convIDs[i%convs]))
					if err != nil {
						b.Errorf("client %d: %v", i, err)
						return
					}
					sample := i < convs // one client per conversation samples single deliveries
					go c.read(func(convID string) {
						id, _ := strconv.ParseInt(convID, 10, 64)
						v, ok := current.Load(id)
						if !ok {
							return
						}
						p := v.(*pending)
						if sample {
							d := time.Since(time.Unix(0, p.start.Load()))
							dmu.Lock()
							deliveries = append(deliveries, d)
							dmu.Unlock()
						}
						if p.remaining.Add(-1) == 0 {
							p.done <- time.Now()
						}
					})
					out[i-from] = c
				}
			})
		}
		wg.Wait()
		if b.Failed() {
			b.FailNow()
		}
		clients = append(clients, out...)
		srv.waitMetric(b, "threadline_subscriptions_active", float64(to))
	}
	warm := min(100, n/10)
	connect(0, warm)
	time.Sleep(time.Second)
	mem0 := srv.memory(b)
	connect(warm, n)
	time.Sleep(2 * time.Second)
	mem1 := srv.memory(b)
	per := func(i int) float64 { return (mem1[i] - mem0[i]) / float64(n-warm) }

	perConv := int64(n / convs)
	reachAll := make([]time.Duration, 0, b.N)
	stopProfile := srv.profile(b, sc.name, n, convs)
	cpu0 := srv.cpu(b)
	b.ResetTimer()
	for i := range b.N {
		conv := convIDs[i%convs]
		p := &pending{done: make(chan time.Time, 1)}
		p.remaining.Store(perConv)
		current.Store(conv, p)
		if _, err := service.SendMessage(context.Background(), writer, chat.NewMessage{ConversationID: conv, Body: fmt.Sprint("load ", i)}); err != nil {
			b.Fatal(err)
		}
		select {
		case end := <-p.done:
			reachAll = append(reachAll, end.Sub(time.Unix(0, p.start.Load())))
		case <-time.After(60 * time.Second):
			b.Fatalf("message %d reached %d of %d subscribers in 60s", i, perConv-p.remaining.Load(), perConv)
		}
	}
	b.StopTimer()
	cpuPerDelivery := (srv.cpu(b) - cpu0) / time.Duration(int64(b.N)*perConv)
	stopProfile()
	if cut := srv.metric(b, "threadline_subscription_cutoffs_total"); cut != 0 {
		b.Errorf("%v subscribers were cut off", cut)
	}

	// Shutdown: every client gets a going-away close.
	began := time.Now()
	srv.Signal(syscall.SIGTERM)
	goingAway := 0
	for _, c := range clients {
		select {
		case <-c.closed:
		case <-time.After(30 * time.Second):
			b.Fatal("a client was not closed within 30s of SIGTERM")
		}
		if websocket.CloseStatus(c.err) == websocket.StatusGoingAway {
			goingAway++
		}
	}
	goaway := time.Since(began)
	if goingAway != n {
		b.Errorf("%d of %d clients got 1001 going away", goingAway, n)
	}

	slices.Sort(reachAll)
	dmu.Lock()
	slices.Sort(deliveries)
	dmu.Unlock()
	b.ReportMetric(per(0), "rss-bytes/subscriber")
	b.ReportMetric(per(1), "heap-bytes/subscriber")
	b.ReportMetric(per(2), "stack-bytes/subscriber")
	b.ReportMetric(ms(percentile(reachAll, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(reachAll, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(deliveries, 0.50)), "delivery-p50-ms")
	b.ReportMetric(float64(cpuPerDelivery)/float64(time.Microsecond), "server-cpu-us/delivery")
	b.ReportMetric(ms(goaway), "goaway-ms")
}

// manyUsers creates n users in one statement and returns their ids.
func manyUsers(b *testing.B, pool *pgxpool.Pool, n int) []int64 {
	rows, err := pool.Query(context.Background(), "INSERT INTO users (name) SELECT 'Reader ' || i FROM generate_series(1, $1) AS i RETURNING id", n)
	if err != nil {
		b.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(ids)
	return ids
}

// client is one subscriber: a WebSocket connection with one subscription. Not
// apptest's WS: ten thousand of them share the process with the benchmark, so each keeps no
// more than its connection.
type client struct {
	conn   *websocket.Conn
	closed chan struct{}
	err    error // why reading stopped; set before closed is closed
}

func dial(url, token, query string, vars map[string]any) (*client, error) {
	// The token on the upgrade request too: the request is then charged to the rate limit of
	// its user rather than to the one address all the clients share.
	conn, err := subscribeOnce(url, token, http.Header{"Authorization": {"Bearer " + token}}, query, vars)
	if err != nil {
		return nil, err
	}
	return &client{conn: conn, closed: make(chan struct{})}, nil
}

// subscribeOnce opens a graphql-transport-ws connection with header on the upgrade request,
// initialises it with token and starts subscription "1" of query: all a lightweight client
// does before it reads.
func subscribeOnce(url, token string, header http.Header, query string, vars map[string]any) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: header})
	if err != nil {
		return nil, err
	}
	write := func(v any) error {
		raw, _ := json.Marshal(v)
		return conn.Write(ctx, websocket.MessageText, raw)
	}
	if err := write(map[string]any{"type": "connection_init", "payload": map[string]string{"Authorization": "Bearer " + token}}); err != nil {
		conn.CloseNow()
		return nil, err
	}
	if _, raw, err := conn.Read(ctx); err != nil || !strings.Contains(string(raw), `"connection_ack"`) {
		conn.CloseNow()
		return nil, fmt.Errorf("init: %s (%v)", raw, err)
	}
	if err := write(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		conn.CloseNow()
		return nil, err
	}
	return conn, nil
}

// read reads until the connection ends, answering pings and reporting the conversation of
// each result (of messageAdded or of viewerEvents), in one pass over each message.
func (c *client) read(got func(conversationID string)) {
	defer close(c.closed)
	var m struct {
		Type    string `json:"type"`
		Payload struct {
			Data struct {
				MessageAdded struct {
					ConversationID string `json:"conversationId"`
				} `json:"messageAdded"`
				ViewerEvents struct {
					Conversation struct {
						ID string `json:"id"`
					} `json:"conversation"`
				} `json:"viewerEvents"`
			} `json:"data"`
		} `json:"payload"`
	}
	pong, _ := json.Marshal(map[string]string{"type": "pong"})
	for {
		_, raw, err := c.conn.Read(context.Background())
		if err != nil {
			c.err = err
			return
		}
		m.Type, m.Payload.Data.MessageAdded.ConversationID, m.Payload.Data.ViewerEvents.Conversation.ID = "", "", ""
		if err := json.Unmarshal(raw, &m); err != nil {
			c.err = err
			return
		}
		switch d := m.Payload.Data; {
		case m.Type == "ping":
			_ = c.conn.Write(context.Background(), websocket.MessageText, pong)
		case m.Type == "next" && d.MessageAdded.ConversationID != "":
			got(d.MessageAdded.ConversationID)
		case m.Type == "next" && d.ViewerEvents.Conversation.ID != "":
			got(d.ViewerEvents.Conversation.ID)
		default:
			c.err = fmt.Errorf("unexpected %s", raw)
		}
	}
}

// server is the threadline binary serving the benchmark.
type server struct{ *apptest.Process }

// profile starts a CPU profile of the server when LOADTEST_SERVER_PROFILE names a directory;
// stop waits for it to end and writes it there.
func (s *server) profile(b *testing.B, scenario string, subs, convs int) (stop func()) {
	dir := os.Getenv("LOADTEST_SERVER_PROFILE")
	if dir == "" {
		return func() {}
	}
	secs := 20
	if v, err := strconv.Atoi(os.Getenv("LOADTEST_SERVER_PROFILE_SECONDS")); err == nil && v > 0 {
		secs = v
	}
	base := s.OpsURL
	if base == "" {
		base = s.URL
	}
	done := make(chan []byte, 1)
	go func() {
		var out []byte
		defer func() { done <- out }()
		res, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", base, secs))
		if err != nil {
			b.Logf("server profile: %v", err)
			return
		}
		defer res.Body.Close()
		out, _ = io.ReadAll(res.Body)
	}()
	return func() {
		out := <-done
		path := filepath.Join(dir, fmt.Sprintf("%s-%dsubs-%dconvs.pprof", scenario, subs, convs))
		if err := os.WriteFile(path, out, 0o644); err != nil {
			b.Fatal(err)
		}
	}
}

// metric reads one unlabelled metric from the server's /metrics.
func (s *server) metric(b *testing.B, name string) float64 {
	status, body := s.GetOps("/metrics")
	if status != http.StatusOK {
		b.Fatalf("/metrics: %d", status)
	}
	for line := range strings.Lines(body) {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				b.Fatal(err)
			}
			return f
		}
	}
	b.Fatalf("no metric %s", name)
	return 0
}

func (s *server) waitMetric(b *testing.B, name string, want float64) {
	for range 600 {
		if s.metric(b, name) >= want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s is %v, want %v", name, s.metric(b, name), want)
}

// memory returns the server's resident set size, Go heap in use and goroutine stacks.
func (s *server) memory(b *testing.B) [3]float64 {
	var rss uint64
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.Cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			rss = kb * 1024
		}
	}
	if rss == 0 {
		b.Fatal(errors.New("no VmRSS"))
	}
	return [3]float64{float64(rss), s.metric(b, "go_memstats_heap_inuse_bytes"), s.metric(b, "go_memstats_stack_inuse_bytes")}
}

// cpu returns the CPU time the server process has used (user and system), from /proc.
func (s *server) cpu(b *testing.B) time.Duration {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.Cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	f := strings.Fields(rest) // from field 3, state; utime and stime are fields 14 and 15
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("/proc/%d/stat: %s", s.Cmd.Process.Pid, stat)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
