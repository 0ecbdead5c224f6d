package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		// A child started by a test (see startMainProcess) to be the real program: main()
		// with its signal handling, so that the test can send it a real SIGTERM.
		main()
		os.Exit(0)
	}
	// No migration: TestRunServes migrates through the migrate command itself.
	testenv.Main(m, testenv.Options{})
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestRunServes(t *testing.T) {
	stack := testenv.Stack(t)
	d := testenv.NewDatabase(t)
	addr := freeAddr(t)
	env := map[string]string{
		"APP_ENV":             "development",
		"ADDR":                addr,
		"DATABASE_URL":        d.PooledURL,
		"DATABASE_DIRECT_URL": d.DirectURL,
		"REDIS_URL":           stack.RedisURL,
		"JWT_SECRET":          "server-test-secret-0123456789",
		"SHUTDOWN_TIMEOUT":    "5s",
	}
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()

	var out, errs syncBuffer
	if err := run(ctx, []string{"migrate"}, getenv, &out, &errs); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errs.String())
	}
	if err := run(ctx, []string{"seed"}, getenv, &out, &errs); err != nil {
		t.Fatalf("seed: %v", err)
	}
	if err := run(ctx, []string{"seed"}, getenv, &out, &errs); err != nil || !strings.Contains(out.String(), "already has data") {
		t.Fatalf("second seed: %v\n%s", err, out.String())
	}
	var tokOut bytes.Buffer
	if err := run(ctx, []string{"token", "-user", "1"}, getenv, &tokOut, &errs); err != nil {
		t.Fatalf("token: %v", err)
	}
	token := strings.TrimSpace(tokOut.String())

	serveCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(serveCtx, nil, getenv, &out, &errs) }()

	base := "http://" + addr
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("not ready: %v\n%s", err, errs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The demo user's seeded data answers through the whole stack.
	body, _ := json.Marshal(map[string]any{"query": `{ me { name } conversations(first: 10) { edges { node { id messages(limit: 50) { items { seq sender { name } } hasMore } } } } }`})
	req, _ := http.NewRequest(http.MethodPost, base+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res.Body)
	res.Body.Close()
	var resp struct {
		Data struct {
			Me            struct{ Name string }
			Conversations struct {
				Edges []struct {
					Node struct {
						Messages struct {
							Items []struct {
								Seq    int
								Sender struct{ Name string }
							}
							HasMore bool
						}
					}
				}
			}
		}
		Errors []any
	}
	if err := json.Unmarshal(raw, &resp); err != nil || len(resp.Errors) > 0 {
		t.Fatalf("query: %v %s", err, raw)
	}
	if resp.Data.Me.Name != "Demo User" || len(resp.Data.Conversations.Edges) != 10 {
		t.Fatalf("demo data: %s", raw)
	}
	for _, edge := range resp.Data.Conversations.Edges {
		if items := edge.Node.Messages.Items; len(items) != 50 || !edge.Node.Messages.HasMore || items[0].Sender.Name == "" {
			t.Fatalf("a demo conversation's first page: %d items", len(items))
		}
	}

	for path, want := range map[string]int{"/healthz": 200, "/": 200, "/nope": 404} {
		res, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop after its context was cancelled")
	}
	if !strings.Contains(errs.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", errs.String())
	}
}

func TestConfigErrors(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"bad env":              {"APP_ENV": "staging"},
		"bad duration":         {"REQUEST_TIMEOUT": "soon"},
		"bad int":              {"DB_MAX_CONNS": "-3"},
		"bad log level":        {"LOG_LEVEL": "loud"},
		"zero rate":            {"RATE_LIMIT": "0"},
		"bad rate flag":        {"RATE_LIMIT_DISABLED": "maybe"},
		"zero depth":           {"MAX_QUERY_DEPTH": "0"},
		"bad APQ TTL":          {"APQ_TTL": "forever"},
		"CORS any, production": {"CORS_ALLOWED_ORIGINS": "*"},
		"CORS with a path":     {"CORS_ALLOWED_ORIGINS": "https://app.example.com/x"},
	} {
		if _, err := loadConfig(func(k string) string { return env[k] }); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// CORS defaults to the WebSocket origins; limits and rate limits to theirs.
	c, err := loadConfig(func(k string) string {
		return map[string]string{"WS_ALLOWED_ORIGINS": "https://app.example.com"}[k]
	})
	if err != nil || len(c.CORSAllowedOrigins) != 1 || c.CORSAllowedOrigins[0] != "https://app.example.com" ||
		c.RateLimitDisabled || c.RateLimit != 50 || c.Limits.Complexity != 10000 || c.APQTTL != 24*time.Hour {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	err = run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL is required") {
		t.Fatalf("serve without config: %v", err)
	}
	err = run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestTokenCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-user", "3"}, func(string) string { return "" }, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if parts := strings.Split(strings.TrimSpace(out.String()), "."); len(parts) != 3 {
		t.Fatalf("not a JWT: %q", out.String())
	}
	if err := run(context.Background(), []string{"token"}, func(string) string { return "" }, io.Discard, io.Discard); err == nil {
		t.Fatal("token without -user accepted")
	}
}
