package graph_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/internal/apq"
	"github.com/threadline/threadline/internal/httpapi"
)

// post sends a GraphQL request body (any JSON) and returns the status, headers and response.
func (e *env) post(authz string, body any) (int, http.Header, gqlResponse) {
	e.t.Helper()
	raw, err := json.Marshal(body)
	if err != nil {
		e.t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.URL+"/query", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return e.send(req)
}

func (e *env) send(req *http.Request) (int, http.Header, gqlResponse) {
	e.t.Helper()
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out gqlResponse
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("status %d: not a GraphQL response: %q", res.StatusCode, raw)
	}
	return res.StatusCode, res.Header, out
}

// An operation over the cost, depth, alias, field or token limit is refused
// with a public code before any resolver runs: no SQL statement is issued.
func TestQueryLimitsRefuseBeforeAnySQL(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 3)
	authz := "Bearer " + e.token(f.alice)

	repeat := func(n int, format string) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, format, i)
		}
		return b.String()
	}
	// Fragments that double at each level: 2^12 fields from a query of a few hundred bytes.
	var frags strings.Builder
	frags.WriteString(`{ me { ...F12 } } fragment F0 on User { id name }`)
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&frags, " fragment F%d on User { ...F%d ...F%d }", i, i-1, i-1)
	}
	deep := `{ __schema { types { fields { type ` + strings.Repeat(`{ ofType `, 20) + `{ name }` + strings.Repeat(` }`, 20) + ` } } } }`

	for _, tc := range []struct {
		name, query string
		vars        map[string]any
		code, msg   string
	}{
		{"cost", `{ conversations(first: 100) { edges { node { messages(limit: 100) { items { id body sender { name } } } } } } }`, nil, "COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		{"cost in variables", `query($n: Int, $m: Int) { conversations(first: $n) { edges { node { history(first: $m) { edges { node { body } } } members { name } } } } }`,
			map[string]any{"n": 100, "m": 100}, "COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		{"cost of timeline backward", `{ conversations(first: 100) { edges { node { timeline(last: 100) { edges { node { body } } } } } } }`, nil, "COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		{"cost of historyAround", `{ conversations(first: 50) { edges { node { historyAround(seq: 1, before: 100, after: 100) { items { body } } } } } }`, nil, "COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		{"cost of aliases", `{ ` + repeat(60, `c%d: conversations(first: 50) { edges { node { messages(limit: 5) { items { id } } } } } `) + `}`, nil, "COMPLEXITY_LIMIT_EXCEEDED", "complexity"},
		{"depth", deep, nil, "BAD_USER_INPUT", "deeper"},
		{"aliases", `{ ` + repeat(101, `a%d: me { id } `) + `}`, nil, "BAD_USER_INPUT", "aliases"},
		{"fields", `{ me { ` + strings.Repeat(`id `, 1001) + `} }`, nil, "BAD_USER_INPUT", "fields"},
		{"fragments", frags.String(), nil, "BAD_USER_INPUT", "fields"},
		{"tokens", `{ me { ` + strings.Repeat(`id `, 12000) + `} }`, nil, "BAD_USER_INPUT", "token limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.resetStatements()
			_, _, resp := e.post(authz, map[string]any{"query": tc.query, "variables": tc.vars})
			if codes := resp.codes(); len(codes) != 1 || codes[0] != tc.code || !strings.Contains(resp.Errors[0].Message, tc.msg) {
				t.Fatalf("errors %+v, want one %s about %q", resp.Errors, tc.code, tc.msg)
			}
			if string(resp.Data) != "" && string(resp.Data) != "null" {
				t.Fatalf("data %s", resp.Data)
			}
			if s := e.statementsSeen(); len(s) != 0 {
				t.Fatalf("SQL issued for a refused operation: %v", s)
			}
		})
	}

	// What clients send stays well inside the limits: GraphiQL's example query, a deep page.
	var ok map[string]any
	e.as(f.alice, `query LatestConversations {
  me { id name }
  conversations(first: 5) { edges { node { id title messages(limit: 10, offset: 0) { items { seq body createdAt sender { name } } hasMore } } } pageInfo { hasNextPage endCursor } }
}`, nil, &ok)
	e.as(f.alice, `query($id: ID!) { conversation(id: $id) { members { id name } lastMessage { sender { name } } history(first: 100) { edges { cursor node { id seq body sender { id name } createdAt } } pageInfo { hasNextPage endCursor } } } }`,
		map[string]any{"id": f.conv}, &ok)
	// The deepest introspection clients send (9 levels of ofType under field arguments) is
	// within the depth limit (introspection itself is off in this env).
	typeRef := `{ __schema { types { fields { args { type ` + strings.Repeat(`{ kind name ofType `, 9) + `{ kind name }` + strings.Repeat(` }`, 9) + ` } } } } }`
	for _, err := range e.do(authz, typeRef, nil).Errors {
		if strings.Contains(err.Message, "deeper") {
			t.Fatalf("introspection refused for its depth: %+v", err)
		}
	}
	// Outside development, no field suggestions: a stranger does not learn the schema by typos.
	if resp := e.do(authz, `{ conversatoins { edges { cursor } } }`, nil); len(resp.Errors) != 1 || strings.Contains(resp.Errors[0].Message, "Did you mean") {
		t.Fatalf("typo: %+v", resp.Errors)
	}
	// An out-of-range limit is not a cost: the resolver refuses it, as before the limits.
	resp := e.do(authz, `{ conversations(first: 1000000) { edges { cursor } } }`, nil)
	if codes := resp.codes(); len(codes) != 1 || codes[0] != "BAD_USER_INPUT" {
		t.Fatalf("first: 1000000: %+v", resp.Errors)
	}
}

// Tight limits apply to data queries too.
func TestConfiguredLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{limits: graphLimits(4, 2)})
	f := newFixture(t, e, 3)
	authz := "Bearer " + e.token(f.alice)
	for q, code := range map[string]string{
		`{ me { name } }`: "",
		`{ conversations { edges { node { messages { items { id } } } } } }`:                  "BAD_USER_INPUT", // 5 deep
		`{ a: me { id } b: me { id } c: me { id } }`:                                          "BAD_USER_INPUT", // 3 aliases
		`query($id: ID!) { conversation(id: $id) { messages(limit: 100) { items { id } } } }`: "COMPLEXITY_LIMIT_EXCEEDED",
	} {
		e.resetStatements()
		resp := e.do(authz, q, map[string]any{"id": f.conv})
		if got := strings.Join(resp.codes(), ","); got != code {
			t.Errorf("%s: codes %q, want %q", q, got, code)
		}
		if code != "" && len(e.statementsSeen()) != 0 {
			t.Errorf("%s: SQL issued: %v", q, e.statementsSeen())
		}
	}
}

// A body over MAX_BODY_BYTES gets 413 with a GraphQL error, whether its length is
// declared or it is sent in chunks.
func TestBodyOverLimitIs413(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"query":"{ __typename }","variables":{"pad":"` + strings.Repeat("x", 70<<10) + `"}}`
	for _, chunked := range []bool{false, true} {
		var body io.Reader = strings.NewReader(big)
		if chunked {
			body = io.MultiReader(body) // hides the length: Transfer-Encoding chunked
		}
		req, _ := http.NewRequest(http.MethodPost, e.URL+"/query", body)
		req.Header.Set("Content-Type", "application/json")
		status, h, resp := e.send(req)
		if status != http.StatusRequestEntityTooLarge || len(resp.Errors) != 1 || resp.codes()[0] != "BAD_USER_INPUT" ||
			!strings.Contains(h.Get("Content-Type"), "json") {
			t.Fatalf("chunked %v: %d %s %+v", chunked, status, h.Get("Content-Type"), resp.Errors)
		}
	}
}

// A burst over the limit from one user gets RATE_LIMITED with Retry-After; another
// user, and an anonymous client, are unaffected; two instances on one Redis share one budget.
func TestRateLimitPerUserSharedByInstances(t *testing.T) {
	t.Parallel()
	const burst = 6
	a := newEnv(t, envOptions{rateLimit: burst})
	b := newEnv(t, envOptions{redisURL: a.redisURL, rateLimit: burst})
	user1, user2 := "Bearer "+a.token(1001), "Bearer "+a.token(1002)
	q := map[string]any{"query": `{ __typename }`}

	for i := range burst { // the burst, spread over both instances
		inst := []*env{a, b}[i%2]
		if status, _, resp := inst.post(user1, q); status != http.StatusOK || len(resp.Errors) != 0 {
			t.Fatalf("request %d of the burst: %d %+v", i, status, resp.Errors)
		}
	}
	for _, inst := range []*env{a, b} {
		status, h, resp := inst.post(user1, q)
		retry, _ := strconv.Atoi(h.Get("Retry-After"))
		if status != http.StatusTooManyRequests || retry < 1 || len(resp.Errors) != 1 || resp.codes()[0] != "RATE_LIMITED" {
			t.Fatalf("over the limit: %d Retry-After %q %+v", status, h.Get("Retry-After"), resp.Errors)
		}
	}
	if status, _, resp := b.post(user2, q); status != http.StatusOK || len(resp.Errors) != 0 {
		t.Fatalf("another user: %d %+v", status, resp.Errors)
	}
	if status, _, resp := a.post("", q); status != http.StatusOK || len(resp.Errors) != 0 {
		t.Fatalf("anonymous: %d %+v", status, resp.Errors)
	}
	// The budget lives in Redis, under the user's key, and refills: one request per second.
	if n, err := a.rdb.Exists(context.Background(), "rate:user:1001").Result(); err != nil || n != 1 {
		t.Fatalf("rate:user:1001 in Redis: %d %v", n, err)
	}
	time.Sleep(1100 * time.Millisecond)
	if status, _, resp := a.post(user1, q); status != http.StatusOK || len(resp.Errors) != 0 {
		t.Fatalf("after a second: %d %+v", status, resp.Errors)
	}
}

func apqBody(query, hash string) map[string]any {
	b := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}}
	if query != "" {
		b["query"] = query
	}
	return b
}

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// APQ. Hash only: PERSISTED_QUERY_NOT_FOUND; hash with query: registered (in
// Redis, with a TTL); hash only: answered, by any instance; a wrong hash: refused. The response
// cache keys on the query the hash stands for.
func TestAutomaticPersistedQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{respCache: true})
	f := newFixture(t, e, 3)
	authz := "Bearer " + e.token(f.alice)
	qMe := `{ me { name } }`
	qTitle := fmt.Sprintf(`{ conversation(id: %d) { title } }`, f.conv)

	for _, tc := range []struct{ query, want string }{
		{qMe, `{"me":{"name":"Alice"}}`},
		{qTitle, `{"conversation":{"title":"General"}}`},
	} {
		hash := sha(tc.query)
		e.resetStatements()
		if _, _, resp := e.post(authz, apqBody("", hash)); len(resp.Errors) != 1 || resp.codes()[0] != "PERSISTED_QUERY_NOT_FOUND" {
			t.Fatalf("hash only, unknown: %+v", resp.Errors)
		}
		if s := e.statementsSeen(); len(s) != 0 {
			t.Fatalf("SQL for an unknown persisted query: %v", s)
		}
		if _, _, resp := e.post(authz, apqBody(tc.query, hash)); len(resp.Errors) != 0 || string(resp.Data) != tc.want {
			t.Fatalf("hash with query: %s %+v", resp.Data, resp.Errors)
		}
		ttl, err := e.rdb.TTL(context.Background(), "apq:"+hash).Result()
		if err != nil || ttl <= 0 || ttl > apq.DefaultTTL {
			t.Fatalf("apq:%s TTL %v %v", hash, ttl, err)
		}
		for range 2 { // the second from the response cache
			if _, _, resp := e.post(authz, apqBody("", hash)); len(resp.Errors) != 0 || string(resp.Data) != tc.want {
				t.Fatalf("hash only, registered: %s %+v", resp.Data, resp.Errors)
			}
		}
		// Over GET as well, as CDNs like it.
		u := e.URL + "/query?extensions=" + url.QueryEscape(fmt.Sprintf(`{"persistedQuery":{"version":1,"sha256Hash":%q}}`, hash))
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		req.Header.Set("Authorization", authz)
		if _, _, resp := e.send(req); len(resp.Errors) != 0 || string(resp.Data) != tc.want {
			t.Fatalf("GET hash only: %s %+v", resp.Data, resp.Errors)
		}
	}

	// A wrong hash is refused, and registers nothing.
	wrong := sha("something else")
	if _, _, resp := e.post(authz, apqBody(qMe, wrong)); len(resp.Errors) != 1 || resp.codes()[0] != "BAD_USER_INPUT" || resp.Data != nil && string(resp.Data) != "null" {
		t.Fatalf("wrong hash: %s %+v", resp.Data, resp.Errors)
	}
	if _, _, resp := e.post(authz, apqBody("", wrong)); len(resp.Errors) != 1 || resp.codes()[0] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("wrong hash registered: %+v", resp.Errors)
	}
	for _, v := range []any{2, "1"} {
		body := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": v, "sha256Hash": sha(qMe)}}}
		if _, _, resp := e.post(authz, body); len(resp.Errors) != 1 || resp.codes()[0] != "BAD_USER_INPUT" {
			t.Fatalf("version %v: %+v", v, resp.Errors)
		}
	}

	// Another instance on the same Redis knows the query.
	other := newEnv(t, envOptions{redisURL: e.redisURL})
	typename := `{ __typename }`
	e.post("", apqBody(typename, sha(typename)))
	if _, _, resp := other.post("", apqBody("", sha(typename))); len(resp.Errors) != 0 || string(resp.Data) != `{"__typename":"Query"}` {
		t.Fatalf("another instance: %s %+v", resp.Data, resp.Errors)
	}
}

// deadlineHook records, for each Redis command, what its context carried.
type deadlineHook struct {
	mu   *sync.Mutex
	seen *[]stmtCtx
}

func (deadlineHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h deadlineHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if n := cmd.Name(); n != "hello" && n != "client" {
			h.mu.Lock()
			*h.seen = append(*h.seen, ctxInfo(ctx))
			h.mu.Unlock()
		}
		return next(ctx, cmd)
	}
}
func (h deadlineHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.mu.Lock()
		*h.seen = append(*h.seen, ctxInfo(ctx))
		h.mu.Unlock()
		return next(ctx, cmds)
	}
}

// Every SQL statement and Redis command a request causes runs under the request's context and
// deadline (REQUEST_TIMEOUT, set by httpapi).
func TestRequestDeadlineReachesSQLAndRedis(t *testing.T) {
	t.Parallel()
	const timeout = 5 * time.Second // under the history cache's FillTimeout (10s)
	e := newEnv(t, envOptions{cache: true, requestTimeout: timeout})
	f := newFixture(t, e, 5)
	var mu sync.Mutex
	var redisCtxs []stmtCtx
	e.rdb.AddHook(deadlineHook{&mu, &redisCtxs})
	e.resetStatements()
	var out map[string]any
	e.as(f.alice, `query($id: ID!) { me { name } conversation(id: $id) { members { name } messages(limit: 3) { items { body } } history(first: 2) { edges { cursor } } } conversations { edges { cursor } } }`,
		map[string]any{"id": f.conv}, &out)
	e.as(f.alice, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "hi", clientMessageId: "d-1"}) { id } }`, map[string]any{"c": f.conv}, &out)

	e.mu.Lock()
	stmts := append([]stmtCtx(nil), e.stmtCtxs...)
	e.mu.Unlock()
	if len(stmts) == 0 {
		t.Fatal("no SQL seen")
	}
	for i, s := range stmts {
		if s.requestID == "" || s.left <= timeout-2*time.Second || s.left > timeout {
			t.Fatalf("statement %d (%s): request id %q, deadline in %v; want the request's (%v)", i, e.statementsSeen()[i], s.requestID, s.left, timeout)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(redisCtxs) == 0 {
		t.Fatal("no Redis command seen")
	}
	for i, s := range redisCtxs {
		if s.requestID == "" || s.left <= 0 || s.left > timeout {
			t.Fatalf("redis command %d: request id %q, deadline in %v", i, s.requestID, s.left)
		}
	}
	_ = httpapi.RequestID // the id above is the one httpapi gives each request
}

func graphLimits(depth, aliases int) graph.Limits {
	return graph.Limits{Depth: depth, Aliases: aliases, Complexity: 100}
}
