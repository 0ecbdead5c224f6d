package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// TestRedisDownWritersAndSubscribers kills Redis for 10 s under reads and sends through two
// instances of the real binary (one database, one Redis), with messageAdded subscribers on both,
// then starts it again on the same port. Every request succeeds throughout; every subscriber
// receives every message of its conversation, in seq order, once (those sent through the other
// instance during the outage reach it through its poll of PostgreSQL); both instances' polls
// delivered. The send and delivery latencies before, during and after the outage are logged, not
// judged. It takes about 40 s, most of it waiting: it runs in parallel with the package's other
// tests (its Redis and database are its own).
func TestRedisDownWritersAndSubscribers(t *testing.T) {
	testenv.Stack(t) // skips under -short
	t.Parallel()
	const (
		warmUp                = 2 * time.Second // fresh processes: not measured
		before, outage, after = 6 * time.Second, 10 * time.Second, 6 * time.Second
		senders, readers      = 4, 4
		sendPause, readPause  = 20 * time.Millisecond, 10 * time.Millisecond
	)
	ctx := context.Background()
	d := apptest.NewSeededDatabase(t)
	redisDir := t.TempDir()
	redisAddr, stopRedis, err := devstack.StartRedisServer(ctx, redisDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stopRedis() })
	redisURL := "redis://" + redisAddr + "/0"
	var instances []*apptest.Process
	for range 2 {
		env := apptest.Env(t, d, redisURL)
		env["RATE_LIMIT_DISABLED"], env["LOG_LEVEL"], env["REDIS_BREAKER_OPEN"] = "true", "warn", "500ms"
		instances = append(instances, apptest.StartProcess(t, env))
	}
	defer func() {
		if t.Failed() {
			for i, p := range instances {
				logs := p.Logs()
				t.Logf("instance %d logs (last 4 KB):\n%s", i, logs[max(0, len(logs)-4096):])
			}
		}
	}()
	direct := dbtest.Open(t, d.DirectURL)
	convs := demoConversations(t, &instances[0].Endpoint)[:3]
	start := map[string]int64{}
	for _, c := range convs {
		start[c] = lastSeq(t, direct, c)
	}

	// A subscriber per conversation on each instance, from the seq read above: it must receive
	// exactly what follows it.
	subCtx, cancelSubs := context.WithCancel(ctx)
	defer cancelSubs()
	type received struct {
		seq int64
		at  time.Time
	}
	type subscriber struct {
		instance int
		conv     string
		got      []received
		err      error
	}
	var subsMu sync.Mutex
	var subs []*subscriber
	var subsWG sync.WaitGroup
	for i, p := range instances {
		for _, c := range convs {
			ws, err := apptest.DialSubscribe(t, p.WebSocketURL(), "Bearer "+p.Token(1), "1", apptest.MessageAddedQuery, vars{"c": c, "after": start[c]})
			if err != nil {
				t.Fatal(err)
			}
			s := &subscriber{instance: i, conv: c}
			subs = append(subs, s)
			subsWG.Go(func() {
				for {
					m, err := ws.Read(subCtx)
					if err != nil {
						if subCtx.Err() == nil {
							subsMu.Lock()
							s.err = err
							subsMu.Unlock()
						}
						return
					}
					added, err := m.MessageAdded()
					subsMu.Lock()
					if err != nil {
						s.err = err
					} else {
						s.got = append(s.got, received{added.Seq, time.Now()})
					}
					subsMu.Unlock()
					if err != nil {
						return
					}
				}
			})
		}
	}
	time.Sleep(500 * time.Millisecond) // the subscriptions are live (what comes before is replayed anyway)

	// The load: senders and readers, each request through either instance.
	type request struct {
		kind       string
		instance   int
		conv       string
		seq        int64
		start, end time.Time
		problem    string
	}
	var mu sync.Mutex
	var requests []request
	stop := make(chan struct{})
	var loadWG sync.WaitGroup
	worker := func(kind string, w int) {
		rng := rand.New(rand.NewPCG(uint64(w), 7))
		clients := make([]*apptest.Client, len(instances))
		for i, p := range instances {
			clients[i] = p.Client(1)
			clients[i].HTTP = &http.Client{Timeout: 15 * time.Second}
		}
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			// Sends to the first conversation go through instance 0 only, to the second through
			// instance 1 only (their subscribers on the other instance get nothing of their own
			// to fill gaps with: only Redis or the poll brings them), the third through both.
			r := request{kind: kind, instance: (w + n) % len(instances), conv: convs[rng.IntN(len(convs))], start: time.Now()}
			if kind == "send" && r.conv != convs[2] {
				r.instance = slices.Index(convs, r.conv)
			}
			var res result
			if kind == "send" {
				cmid := fmt.Sprintf("down-%d-%d", w, n)
				res = post(ctx, clients[r.instance], faultSendQuery, vars{"conv": r.conv, "body": "while " + cmid, "cmid": cmid})
				var out struct{ SendMessage struct{ Seq int64 } }
				if res.ok() && json.Unmarshal(res.Data, &out) == nil {
					r.seq = out.SendMessage.Seq
				}
			} else {
				res = post(ctx, clients[r.instance], faultReadQuery, vars{"id": r.conv, "offset": rng.IntN(40)})
			}
			r.end = time.Now()
			if !res.ok() {
				r.problem = res.problem() + " " + string(res.Body)
			}
			mu.Lock()
			requests = append(requests, r)
			mu.Unlock()
			pause := readPause
			if kind == "send" {
				pause = sendPause
			}
			time.Sleep(pause)
		}
	}
	for w := range senders {
		loadWG.Go(func() { worker("send", w) })
	}
	for w := range readers {
		loadWG.Go(func() { worker("read", 100+w) })
	}
	time.Sleep(warmUp)
	measuredFrom := time.Now()
	time.Sleep(before)
	killedAt := time.Now()
	if err := stopRedis(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(outage)
	port, _ := strconv.Atoi(redisAddr[strings.LastIndex(redisAddr, ":")+1:])
	if _, stopRedis, err = devstack.StartRedisServer(ctx, redisDir, port); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	time.Sleep(after)
	close(stop)
	loadWG.Wait()

	// Every subscriber receives up to its conversation's last seq.
	final := map[string]int64{}
	for _, c := range convs {
		final[c] = lastSeq(t, direct, c)
	}
	caughtUp := func() bool {
		subsMu.Lock()
		defer subsMu.Unlock()
		for _, s := range subs {
			if s.err != nil || len(s.got) == 0 || s.got[len(s.got)-1].seq < final[s.conv] {
				if s.err != nil {
					return true // reported below
				}
				return false
			}
		}
		return true
	}
	for deadline := time.Now().Add(20 * time.Second); !caughtUp() && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
	}
	cancelSubs()
	subsWG.Wait()

	// Requests: none failed.
	phase := func(at time.Time) string {
		switch {
		case at.Before(measuredFrom):
			return "warm-up"
		case at.Before(killedAt):
			return "before"
		case at.Before(restartedAt):
			return "during"
		}
		return "after"
	}
	latencies := map[string][]time.Duration{}
	var outageSeconds [10][]time.Duration // sends by second of the outage
	sent := map[string]map[int64]request{}
	failed := 0
	for _, r := range requests {
		if r.problem != "" {
			failed++
			if failed <= 5 {
				t.Errorf("%s through instance %d at %s (%s the outage) failed: %s", r.kind, r.instance,
					r.start.Sub(killedAt).Round(time.Millisecond), phase(r.start), r.problem)
			}
			continue
		}
		latencies[r.kind+" "+phase(r.start)] = append(latencies[r.kind+" "+phase(r.start)], r.end.Sub(r.start))
		if sec := int(r.start.Sub(killedAt) / time.Second); r.kind == "send" && phase(r.start) == "during" && sec < len(outageSeconds) {
			outageSeconds[sec] = append(outageSeconds[sec], r.end.Sub(r.start))
		}
		if r.kind == "send" {
			if sent[r.conv] == nil {
				sent[r.conv] = map[int64]request{}
			}
			sent[r.conv][r.seq] = r
		}
	}
	if failed > 0 {
		t.Errorf("%d of %d requests failed", failed, len(requests))
	}
	if n := len(latencies["send during"]); n < 50 {
		t.Errorf("only %d sends during the outage: the load did not cover it", n)
	}

	// Subscribers: every message once, in order; delivery measured from the send's start (an
	// upper bound on the time since its commit).
	delivery := map[string][]time.Duration{}
	deliveredDuring := 0
	for _, s := range subs {
		if s.err != nil {
			t.Errorf("subscriber of %s on instance %d ended: %v", s.conv, s.instance, s.err)
			continue
		}
		seqs := make([]int64, len(s.got))
		for i, g := range s.got {
			seqs[i] = g.seq
		}
		want := make([]int64, 0, final[s.conv]-start[s.conv])
		for q := start[s.conv] + 1; q <= final[s.conv]; q++ {
			want = append(want, q)
		}
		if !slices.Equal(want, seqs) {
			t.Errorf("subscriber of %s on instance %d: %d messages, want seqs %d..%d once in order; first differences: %s",
				s.conv, s.instance, len(seqs), start[s.conv]+1, final[s.conv], firstDifferences(want, seqs))
			continue
		}
		for _, g := range s.got {
			r, ok := sent[s.conv][g.seq]
			if !ok {
				continue // a send whose answer the load did not record (none: every send succeeded)
			}
			route := "same instance"
			if r.instance != s.instance {
				route = "other instance"
				// Only Redis or the poll brings these (see the load): the poll, while Redis is down.
				if s.conv != convs[2] && phase(r.start) == "during" && g.at.Before(restartedAt) {
					deliveredDuring++
				}
			}
			key := phase(r.start) + ", " + route
			delivery[key] = append(delivery[key], g.at.Sub(r.start))
		}
	}
	if deliveredDuring == 0 {
		t.Error("no message sent during the outage to a conversation written through one instance reached its subscriber on the other instance before Redis came back")
	}
	for i, p := range instances {
		status, body := p.GetOps("/metrics")
		if status != http.StatusOK {
			t.Fatalf("instance %d /metrics: %d", i, status)
		}
		values := map[string]float64{}
		for _, line := range strings.Split(body, "\n") {
			for _, name := range []string{"threadline_live_poll_deliveries_total", "threadline_live_poll_catchups_total",
				"threadline_live_polls_total", "threadline_postcommit_late_total", "threadline_pubsub_publish_failures_total",
				"threadline_subscription_gap_fills_total"} {
				if v, ok := strings.CutPrefix(line, name+" "); ok {
					values[name], _ = strconv.ParseFloat(v, 64)
				}
			}
		}
		if values["threadline_live_poll_deliveries_total"] == 0 {
			t.Errorf("instance %d: no delivery through its poll (threadline_live_poll_deliveries_total 0)", i)
		}
		t.Logf("instance %d: %v", i, values)
	}

	t.Logf("%d requests; Redis down %s (killed %s into the load)", len(requests),
		restartedAt.Sub(killedAt).Round(time.Millisecond), warmUp+before)
	for _, k := range []string{"send before", "send during", "send after", "read before", "read during", "read after"} {
		t.Logf("%-12s %s", k, summary(latencies[k]))
	}
	for sec, ds := range outageSeconds {
		t.Logf("send during, second %d: %s", sec, summary(ds))
	}
	for _, ph := range []string{"before", "during", "after"} {
		for _, route := range []string{"same instance", "other instance"} {
			k := ph + ", " + route
			t.Logf("delivery %-30s %s", k, summary(delivery[k]))
		}
	}
}

// summary is "n=…, p50 …, p99 …, max …" of ds.
func summary(ds []time.Duration) string {
	if len(ds) == 0 {
		return "n=0"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		return s[min(len(s)-1, int(p*float64(len(s))))].Round(100 * time.Microsecond)
	}
	return fmt.Sprintf("n=%d p50 %s p99 %s max %s", len(s), q(0.5), q(0.99), s[len(s)-1].Round(100*time.Microsecond))
}

// firstDifferences describes where got departs from want.
func firstDifferences(want, got []int64) string {
	for i := range min(len(want), len(got)) {
		if want[i] != got[i] {
			return fmt.Sprintf("at %d: want %d, got %v", i, want[i], got[i:min(len(got), i+5)])
		}
	}
	if len(got) < len(want) {
		return fmt.Sprintf("missing %v…", want[len(got):min(len(want), len(got)+5)])
	}
	return fmt.Sprintf("extra %v…", got[len(want):min(len(got), len(want)+5)])
}
