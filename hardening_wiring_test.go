package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/threadline/threadline/internal/testenv"
)

// The hardening as server.go wires it, through `threadline serve`: the 413 body,
// CORS preflights, query limits, no field suggestions in production, APQ in Redis, and the rate
// limit with its metric. (Each is tested in depth in graph/hardening_test.go and the packages.)
func TestHardeningWiring(t *testing.T) {
	const burst = 10
	srv := startServer(t, map[string]string{
		"APP_ENV": "production", "REDIS_URL": testenv.NewRedis(t), "MAX_BODY_BYTES": "2000",
		"RATE_LIMIT": "1", "RATE_LIMIT_BURST": "10", "CORS_ALLOWED_ORIGINS": "https://app.example.com",
	})
	do := func(method, authz string, body any, header map[string]string) (int, http.Header, map[string]json.RawMessage, string) {
		t.Helper()
		var r io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			r = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, srv.base+"/query", r)
		req.Header.Set("Content-Type", "application/json")
		if authz != "" {
			req.Header.Set("Authorization", authz)
		}
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		raw, _ := io.ReadAll(res.Body)
		var out map[string]json.RawMessage
		_ = json.Unmarshal(raw, &out)
		return res.StatusCode, res.Header, out, string(raw)
	}

	// Refused before the rate limiter: they spend no budget.
	if status, _, out, raw := do(http.MethodPost, "", map[string]any{"query": "{ __typename }", "pad": strings.Repeat("x", 3000)}, nil); status != http.StatusRequestEntityTooLarge || out["errors"] == nil {
		t.Fatalf("body over MAX_BODY_BYTES: %d %s", status, raw)
	}
	status, h, _, _ := do(http.MethodOptions, "", nil, map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"})
	if status != http.StatusNoContent || h.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("preflight: %d %v", status, h)
	}
	if status, _, _, _ := do(http.MethodOptions, "", nil, map[string]string{"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}); status != http.StatusForbidden {
		t.Fatalf("preflight from another origin: %d", status)
	}

	// Anonymous requests: a few of the address's budget.
	for q, want := range map[string]string{
		`{ conversations(first: 100) { edges { node { messages(limit: 100) { items { body sender { name } } } } } } }`: "COMPLEXITY_LIMIT_EXCEEDED",
		`{ conversatoins { edges { cursor } } }`: "BAD_USER_INPUT",
		`{ __schema { types { name } } }`:        "", // introspection off in production: an error, not the schema
	} {
		_, _, out, raw := do(http.MethodPost, "", map[string]any{"query": q}, nil)
		if !strings.Contains(raw, want) || strings.Contains(raw, "Did you mean") || strings.Contains(raw, `"types"`) {
			t.Fatalf("%s: %s", q, raw)
		}
		if out["errors"] == nil {
			t.Fatalf("%s: no error: %s", q, raw)
		}
	}
	q := `{ __typename }`
	sum := sha256.Sum256([]byte(q))
	pq := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hex.EncodeToString(sum[:])}}
	if _, _, _, raw := do(http.MethodPost, "", map[string]any{"extensions": pq}, nil); !strings.Contains(raw, "PERSISTED_QUERY_NOT_FOUND") {
		t.Fatalf("APQ hash only: %s", raw)
	}
	do(http.MethodPost, "", map[string]any{"query": q, "extensions": pq}, nil)
	if _, _, _, raw := do(http.MethodPost, "", map[string]any{"extensions": pq}, nil); raw != `{"data":{"__typename":"Query"}}` {
		t.Fatalf("APQ registered: %s", raw)
	}

	// The user's budget: a burst, then RATE_LIMITED with Retry-After.
	authz := "Bearer " + srv.token
	for i := range burst {
		if status, _, _, raw := do(http.MethodPost, authz, map[string]any{"query": "{ me { id } }"}, nil); status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, status, raw)
		}
	}
	status, h, _, raw := do(http.MethodPost, authz, map[string]any{"query": "{ me { id } }"}, map[string]string{"Origin": "https://app.example.com"})
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.Contains(raw, "RATE_LIMITED") ||
		h.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("over the limit: %d %v %s", status, h, raw)
	}
	if _, metrics := srv.get("/metrics"); !strings.Contains(metrics, "\nthreadline_rate_limited_total 1\n") ||
		!strings.Contains(metrics, "\nthreadline_rate_limit_fail_open_total 0\n") {
		t.Fatal("rate limit metrics missing or wrong")
	}
}
