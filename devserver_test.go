package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/testenv"
)

// liveServer is the whole program serving over a fresh database of the test stack.
type liveServer struct {
	URL    string // http://127.0.0.1:port
	getenv func(string) string
}

// startLiveServer runs `threadline migrate`, `threadline seed` (when seed is set) and `threadline
// serve` with APP_ENV=appEnv over a fresh database, waits until /readyz answers 200, and stops
// the server (checking that it stops cleanly) when the test ends.
func startLiveServer(t *testing.T, appEnv string, seed bool) *liveServer {
	t.Helper()
	stack := testenv.Stack(t)
	d := testenv.NewDatabase(t)
	addr := freeAddr(t)
	env := map[string]string{
		"APP_ENV":             appEnv,
		"ADDR":                addr,
		"DATABASE_URL":        d.PooledURL,
		"DATABASE_DIRECT_URL": d.DirectURL,
		"REDIS_URL":           stack.RedisURL,
		"JWT_SECRET":          "server-test-secret-0123456789",
		"SHUTDOWN_TIMEOUT":    "5s",
		"LOG_LEVEL":           "warn",
	}
	s := &liveServer{URL: "http://" + addr, getenv: func(k string) string { return env[k] }}
	var out, errs syncBuffer
	ctx := context.Background()
	if err := run(ctx, []string{"migrate"}, s.getenv, &out, &errs); err != nil {
		t.Fatalf("migrate: %v\n%s", err, errs.String())
	}
	if seed {
		if err := run(ctx, []string{"seed"}, s.getenv, &out, &errs); err != nil {
			t.Fatalf("seed: %v\n%s", err, errs.String())
		}
	}

	serveCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- run(serveCtx, nil, s.getenv, &out, &errs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve returned %v\n%s", err, errs.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop after its context was cancelled")
		}
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := http.Get(s.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case err := <-done:
			t.Fatalf("serve returned %v before it was ready\n%s", err, errs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v\n%s", err, errs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// token returns `threadline token -user id`.
func (s *liveServer) token(t *testing.T, id string) string {
	t.Helper()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"token", "-user", id}, s.getenv, &out, io.Discard); err != nil {
		t.Fatalf("token: %v", err)
	}
	return strings.TrimSpace(out.String())
}

// query posts a GraphQL query with the Authorization header authz ("" for none) and returns
// the raw response body, failing the test on a transport error or a non-200 status.
func (s *liveServer) query(t *testing.T, authz, query string) []byte {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"query": query})
	req, _ := http.NewRequest(http.MethodPost, s.URL+"/query", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, raw)
	}
	return raw
}
