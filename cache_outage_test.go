package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/localstack"
	"github.com/threadline/threadline/internal/testenv"
)

// TestRedisOutage stops Redis under a running server: every read still succeeds from
// PostgreSQL, /health/cache shows the breaker open, /readyz reports PostgreSQL fine and Redis
// down; Redis restarted, hits resume within seconds without a server restart.
func TestRedisOutage(t *testing.T) {
	testenv.Stack(t) // skips under -short
	ctx := context.Background()
	redisDir := t.TempDir()
	redisAddr, stopRedis, err := localstack.StartRedisServer(ctx, redisDir, 0)
	if err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, map[string]string{"REDIS_URL": "redis://" + redisAddr + "/0", "REDIS_BREAKER_OPEN": "500ms"})

	query := `{ conversations(first: 3) { edges { node { messages(limit: 20) { items { seq sender { name } } } } } } }`
	read := func() {
		t.Helper()
		if _, err := srv.query(query); err != nil {
			t.Fatal(err)
		}
	}
	read()
	read()
	if h := srv.cacheHealth(); h.Hits == 0 || h.Breaker != "closed" {
		t.Fatalf("before the outage: %+v", h)
	}

	if err := stopRedis(); err != nil {
		t.Fatal(err)
	}
	for range 30 {
		read() // fails the test on any error
	}
	h := srv.cacheHealth()
	if h.Breaker != "open" || h.Evictions != nil {
		t.Fatalf("during the outage: %+v", h)
	}
	status, ready := srv.get("/readyz")
	if status != http.StatusServiceUnavailable || !strings.Contains(ready, `"postgres":"ok"`) || !strings.Contains(ready, `"redis":"unavailable"`) {
		t.Fatalf("readyz during the outage: %d %s", status, ready)
	}

	port, _ := strconv.Atoi(redisAddr[strings.LastIndex(redisAddr, ":")+1:])
	_, stopRedis, err = localstack.StartRedisServer(ctx, redisDir, port)
	if err != nil {
		t.Fatal(err)
	}
	defer stopRedis()
	deadline := time.Now().Add(10 * time.Second)
	for {
		before := srv.cacheHealth().Hits
		read()
		read()
		if h := srv.cacheHealth(); h.Hits > before && h.Breaker == "closed" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no cache hits 10s after Redis came back: %+v", srv.cacheHealth())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, _ := srv.get("/readyz"); status != http.StatusOK {
		t.Fatalf("readyz after the outage: %d", status)
	}
}

// testServer is a `threadline serve` started by run() on a migrated, seeded database.
type testServer struct {
	base, token string
}

func startServer(t *testing.T, extraEnv map[string]string) *testServer {
	t.Helper()
	stack := testenv.Stack(t)
	d := testenv.NewDatabase(t)
	addr := freeAddr(t)
	env := map[string]string{
		"APP_ENV": "development", "ADDR": addr, "DATABASE_URL": d.PooledURL, "DATABASE_DIRECT_URL": d.DirectURL,
		"REDIS_URL": stack.RedisURL, "JWT_SECRET": "server-test-secret-0123456789", "SHUTDOWN_TIMEOUT": "5s",
	}
	for k, v := range extraEnv {
		env[k] = v
	}
	token := prepareDatabase(t, env)
	stop := serveInProcess(t, env)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &testServer{base: "http://" + addr, token: token}
}

func (s *testServer) get(path string) (int, string) {
	res, err := http.Get(s.base + path)
	if err != nil {
		return 0, err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// query runs a GraphQL query as the demo user; any GraphQL error is an error.
func (s *testServer) query(q string) (json.RawMessage, error) {
	body, _ := json.Marshal(map[string]any{"query": q})
	req, _ := http.NewRequest(http.MethodPost, s.base+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var out struct {
		Data   json.RawMessage
		Errors []any
	}
	raw, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Errors) > 0 || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("query: status %d: %s", res.StatusCode, raw)
	}
	return out.Data, nil
}

type cacheHealth struct {
	Hits, Misses, Errors int64
	HitRatio             float64
	Evictions            *int64
	Breaker              string
}

func (s *testServer) cacheHealth() cacheHealth {
	_, body := s.get("/health/cache")
	var h cacheHealth
	_ = json.Unmarshal([]byte(body), &h)
	return h
}
