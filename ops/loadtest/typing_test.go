package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

// BenchmarkTypingAcrossInstances is the typing-indicator scenario end to end, on two threadline
// processes sharing PostgreSQL and Redis: WebSocket clients hold typing subscriptions on
// instance B, spread over conversations; each iteration sends setTyping (true and false in
// turn) over HTTP to instance A for one conversation, and waits until every subscriber of that
// conversation on B has the event.
//
//	go test -run XXX -bench TypingAcrossInstances -benchtime 200x ./ops/loadtest
//
// Reported: the latency from sending the HTTP request until the event has reached every
// subscriber of the conversation (p50-ms, p99-ms), until the first subscriber has it
// (first-p50-ms, first-p99-ms), and the setTyping request alone (request-p50-ms). The clients run
// in this process, on the same cores as the servers. LOADTEST_TYPING_SUBSCRIBERS changes the
// 1,000 subscribers (over 100 conversations).
func BenchmarkTypingAcrossInstances(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("LOADTEST_TYPING_SUBSCRIBERS")); err == nil && v > 0 {
		n = v
	}
	convs := max(1, n/10)
	apptest.Binary(b) // built once, before the clock starts
	d := testenv.NewDatabase(b)
	redisURL := testenv.NewRedis(b)
	direct := dbtest.Open(b, d.DirectURL)
	names := make([]string, n+1)
	names[0] = "Typist"
	for i := range n {
		names[i+1] = fmt.Sprint("watcher ", i)
	}
	users := dbtest.Users(b, direct, names...)
	typist, watchers := users[0], users[1:]
	convIDs := make([]string, convs)
	members := make([][]int64, convs)
	for i := range watchers {
		members[i%convs] = append(members[i%convs], watchers[i])
	}
	for i := range convIDs {
		convIDs[i] = strconv.FormatInt(dbtest.Conversation(b, direct, fmt.Sprint("c", i), append([]int64{typist}, members[i]...)...), 10)
	}
	start := func() *server {
		env := apptest.Env(b, d, redisURL)
		env["APP_ENV"], env["LOG_LEVEL"], env["RATE_LIMIT_DISABLED"] = "production", "warn", "true"
		env["WS_MAX_CONNS_PER_ADDR"] = strconv.Itoa(n + 100) // every client dials from 127.0.0.1
		return &server{apptest.StartProcess(b, env)}
	}
	a, srvB := start(), start()

	// The subscribers, on B.
	type pendingEvent struct {
		remaining atomic.Int64
		sent      time.Time
		first     atomic.Int64 // unix nanos of the first delivery
		done      chan time.Time
	}
	var current sync.Map // conversation id -> *pendingEvent
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 32 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				conv := convIDs[i%convs]
				c, err := dialTyping(srvB.WebSocketURL(), apptest.Token(b, apptest.Secret, watchers[i], 24*time.Hour), conv)
				if err != nil {
					b.Errorf("subscriber %d: %v", i, err)
					return
				}
				b.Cleanup(func() { c.conn.CloseNow() })
				go c.readTyping(func() {
					v, ok := current.Load(conv)
					if !ok {
						return
					}
					p := v.(*pendingEvent)
					p.first.CompareAndSwap(0, time.Now().UnixNano())
					if p.remaining.Add(-1) == 0 {
						p.done <- time.Now()
					}
				})
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	srvB.waitMetric(b, "threadline_typing_subscriptions_active", float64(n))

	client := &http.Client{}
	token := apptest.Token(b, apptest.Secret, typist, 24*time.Hour)
	setTyping := func(conv string, typing bool) error {
		body, _ := json.Marshal(map[string]any{
			"query":     `mutation($c: ID!, $t: Boolean!) { setTyping(conversationId: $c, typing: $t) }`,
			"variables": map[string]any{"c": conv, "t": typing},
		})
		req, _ := http.NewRequest(http.MethodPost, a.URL+"/query", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := client.Do(req)
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var out struct {
			Data   struct{ SetTyping bool }
			Errors []any
		}
		if err := json.NewDecoder(res.Body).Decode(&out); err != nil || !out.Data.SetTyping {
			return fmt.Errorf("setTyping: %v %+v", err, out.Errors)
		}
		return nil
	}
	// Warm every member set before the clock starts.
	for _, c := range convIDs {
		if err := setTyping(c, false); err != nil {
			b.Fatal(err)
		}
	}
	perConv := int64(n / convs)
	all := make([]time.Duration, 0, b.N)
	first := make([]time.Duration, 0, b.N)
	request := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		conv := convIDs[i%convs]
		typing := (i/convs)%2 == 0
		p := &pendingEvent{done: make(chan time.Time, 1), sent: time.Now()}
		p.remaining.Store(perConv)
		current.Store(conv, p)
		if err := setTyping(conv, typing); err != nil {
			b.Fatal(err)
		}
		answered := time.Now()
		select {
		case end := <-p.done:
			all = append(all, end.Sub(p.sent))
			first = append(first, time.Unix(0, p.first.Load()).Sub(p.sent))
			request = append(request, answered.Sub(p.sent))
		case <-time.After(30 * time.Second):
			b.Fatalf("iteration %d: the event reached %d of %d subscribers in 30s", i, perConv-p.remaining.Load(), perConv)
		}
		current.Delete(conv)
	}
	b.StopTimer()
	for _, s := range [][]time.Duration{all, first, request} {
		slices.Sort(s)
	}
	b.ReportMetric(ms(percentile(all, 0.50)), "p50-ms")
	b.ReportMetric(ms(percentile(all, 0.99)), "p99-ms")
	b.ReportMetric(ms(percentile(first, 0.50)), "first-p50-ms")
	b.ReportMetric(ms(percentile(first, 0.99)), "first-p99-ms")
	b.ReportMetric(ms(percentile(request, 0.50)), "request-p50-ms")
	if cut := srvB.metric(b, "threadline_typing_cutoffs_total"); cut != 0 {
		b.Errorf("%v subscribers were cut off", cut)
	}
}

// typingClient is one subscriber with one typing subscription.
type typingClient struct{ conn *websocket.Conn }

func dialTyping(url, token, conv string) (*typingClient, error) {
	conn, err := subscribeOnce(url, token, nil, `subscription($c: ID!) { typing(conversationId: $c) { user { id name } typing } }`,
		map[string]any{"c": conv})
	if err != nil {
		return nil, err
	}
	return &typingClient{conn: conn}, nil
}

// readTyping reads until the connection ends, answering pings and reporting each event.
func (c *typingClient) readTyping(got func()) {
	var m struct {
		Type string `json:"type"`
	}
	pong, _ := json.Marshal(map[string]string{"type": "pong"})
	for {
		_, raw, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		m.Type = ""
		if json.Unmarshal(raw, &m) != nil {
			return
		}
		switch m.Type {
		case "ping":
			_ = c.conn.Write(context.Background(), websocket.MessageText, pong)
		case "next":
			got()
		}
	}
}
