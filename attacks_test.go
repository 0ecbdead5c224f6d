package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

// The attacks that took down a production-mode server, replayed against the real binary in
// production mode: each is refused or bounded, in time, in response size and in the process's
// memory. (Their finer points have tests of their own in graph, graph/document and graph's
// WebSocket and event-stream tests; this one measures the process.)
func TestAttacksAgainstProductionServer(t *testing.T) {
	t.Parallel()
	d, direct := dbtest.NewDatabase(t)
	redisURL := testenv.NewRedis(t)
	env := apptest.Env(t, d, redisURL)
	env["APP_ENV"], env["LOG_LEVEL"] = "production", "warn"
	const streamsPerAddr = 40
	env["WS_MAX_CONNS_PER_ADDR"] = strconv.Itoa(streamsPerAddr)
	users := dbtest.Users(t, direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, direct, "General", users...)
	srv := apptest.StartProcess(t, env)
	pid := srv.Cmd.Process.Pid
	rss := func() int64 { return processRSS(t, pid) }
	post := func(body []byte) (int, []byte, time.Duration) {
		began := time.Now()
		res, err := http.Post(srv.URL+"/query", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(res.Body)
		return res.StatusCode, b.Bytes(), time.Since(began)
	}
	// Warm the process up so that the baseline is a serving server's.
	for range 20 {
		post([]byte(`{"query":"{ __typename }"}`))
	}

	t.Run("validation bomb", func(t *testing.T) {
		body, _ := json.Marshal(map[string]string{"query": validationBomb("", "x: me { id } x: __typename")})
		before := rss()
		_, resp, took := post(body)
		if took > 200*time.Millisecond || len(resp) > 64<<10 || !strings.Contains(string(resp), "BAD_USER_INPUT") {
			t.Fatalf("the %d-byte bomb answered in %s with %d bytes: %.300s", len(body), took, len(resp), resp)
		}
		if grew := rss() - before; grew > 50<<20 {
			t.Fatalf("RSS grew by %d MB", grew>>20)
		}
	})

	t.Run("validation bomb over an event stream", func(t *testing.T) {
		before := rss()
		began := time.Now()
		sse := srv.Stream(t, users[0], validationBomb("subscription ", "x: messageAdded(conversationId: 1) { id } x: __typename"), nil, apptest.SSEOptions{})
		events := sse.Ended(t, 5*time.Second)
		if took := time.Since(began); took > 200*time.Millisecond || len(events) != 2 || !strings.Contains(string(events[0].Data), "BAD_USER_INPUT") ||
			len(events[0].Data) > 64<<10 {
			t.Fatalf("the bomb over an event stream: %s, %d events: %.300s", took, len(events), events)
		}
		if grew := rss() - before; grew > 50<<20 {
			t.Fatalf("RSS grew by %d MB", grew>>20)
		}
	})

	t.Run("event streams of one address are capped", func(t *testing.T) {
		before := rss()
		vars := map[string]any{"c": apptest.ID(conv)}
		for i := range streamsPerAddr {
			if sse := srv.Stream(t, users[i%2], apptest.MessageAddedQuery, vars, apptest.SSEOptions{Method: http.MethodGet}); sse.Status != http.StatusOK {
				t.Fatalf("stream %d: %d %v", i, sse.Status, sse.Refusal)
			}
		}
		sse := srv.Stream(t, users[0], apptest.MessageAddedQuery, vars, apptest.SSEOptions{Method: http.MethodGet})
		if sse.Status != http.StatusTooManyRequests || sse.Header.Get("Retry-After") == "" || len(sse.Refusal.Errors) != 1 || sse.Refusal.Errors[0].Code() != "RATE_LIMITED" {
			t.Fatalf("a stream past the cap: %d %v", sse.Status, sse.Refusal)
		}
		if grew := rss() - before; grew > 20<<20 {
			t.Fatalf("RSS grew by %d MB for %d streams", grew>>20, streamsPerAddr)
		}
	})

	t.Run("100 distinct 900 KB GETs", func(t *testing.T) {
		before := rss()
		refused := 0
		for i := range 100 {
			u := srv.URL + "/query?query=" + url.QueryEscape(fmt.Sprintf("{__typename}#%d%s", i, strings.Repeat("c", 900<<10)))
			res, err := http.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode == http.StatusRequestHeaderFieldsTooLarge || res.StatusCode == http.StatusBadRequest {
				refused++
			}
		}
		if refused != 100 {
			t.Fatalf("%d of 100 refused", refused)
		}
		if grew := rss() - before; grew > 40<<20 {
			t.Fatalf("RSS grew by %d MB", grew>>20)
		}
	})

	t.Run("junk persisted query", func(t *testing.T) {
		junk := strings.Repeat("this is not GraphQL ", 3000)
		sum := sha256.Sum256([]byte(junk))
		hash := hex.EncodeToString(sum[:])
		body, _ := json.Marshal(map[string]any{"query": junk, "extensions": map[string]any{
			"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash},
		}})
		_, resp, _ := post(body)
		if !strings.Contains(string(resp), "BAD_USER_INPUT") || strings.Contains(string(resp), "not GraphQL this") {
			t.Fatalf("%.300s", resp)
		}
		opts, _ := redis.ParseURL(redisURL)
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		if keys, err := rdb.Keys(context.Background(), "apq:*").Result(); err != nil || len(keys) != 0 {
			t.Fatalf("APQ keys: %v %v", keys, err)
		}
	})

	t.Run("introspection is a client error", func(t *testing.T) {
		_, before := srv.GetOps("/metrics")
		_, resp, _ := post([]byte(`{"query":"{ __schema { types { name } } }"}`))
		if !strings.Contains(string(resp), "BAD_USER_INPUT") || strings.Contains(string(resp), "INTERNAL_SERVER_ERROR") {
			t.Fatalf("%s", resp)
		}
		_, after := srv.GetOps("/metrics")
		const internal, client = `threadline_graphql_errors_total{code="INTERNAL_SERVER_ERROR"}`, `threadline_graphql_errors_total{code="BAD_USER_INPUT"}`
		if a, b := counter(after, internal), counter(before, internal); a != b {
			t.Fatalf("internal errors counted: %v → %v", b, a)
		}
		if a, b := counter(after, client), counter(before, client); a != b+1 {
			t.Fatalf("client errors: %v → %v, want one more", b, a)
		}
		if strings.Contains(srv.Logs(), `"level":"ERROR"`) {
			t.Fatalf("logged at ERROR:\n%s", srv.Logs())
		}
	})

	t.Run("operations endpoints are not public", func(t *testing.T) {
		for _, path := range []string{"/metrics", "/health/cache", "/debug/pprof/"} {
			if status, _ := srv.Get(path); status == http.StatusOK {
				t.Errorf("%s answers on the public listener", path)
			}
			if status, _ := srv.GetOps(path); status != http.StatusOK {
				t.Errorf("%s: %d on the operations listener", path, status)
			}
		}
	})
}

// processRSS reads a process's resident set size, in bytes.
func processRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// counter reads one sample of a Prometheus text exposition (0 when absent).
func counter(exposition, sample string) float64 {
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, _ := strconv.ParseFloat(rest, 64)
			return v
		}
	}
	return 0
}

// validationBomb is the operation op (a keyword and a space, or "" for a query) whose selection
// is sel 995 times: fields that conflict under one alias, which naive validation compares pair
// by pair.
func validationBomb(op, sel string) string {
	var q strings.Builder
	q.WriteString(op + "{ ")
	for range 995 {
		q.WriteString(sel + " ")
	}
	q.WriteString("}")
	return q.String()
}
