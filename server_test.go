package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// running is `threadline serve` run by run() in this process, for the tests of run itself.
type running struct {
	*apptest.Endpoint
	logs   *apptest.Buffer
	cancel context.CancelFunc
	done   chan struct{} // closed when run has returned; err is set then
	err    error
}

// startRun runs `threadline serve` through run() with env (apptest.Env and the test's settings)
// and waits until it is ready. It stops when the test ends, if not before (stop).
func startRun(t *testing.T, env map[string]string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	endpoint := apptest.NewEndpoint(t, "http://"+env["ADDR"], env["JWT_SECRET"])
	if ops := env["OPS_ADDR"]; ops != "" {
		endpoint.OpsURL = "http://" + ops
	}
	r := &running{
		Endpoint: endpoint,
		logs:     &apptest.Buffer{}, cancel: cancel, done: make(chan struct{}),
	}
	go func() {
		defer close(r.done)
		r.err = run(ctx, nil, func(k string) string { return env[k] }, io.Discard, r.logs)
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	ready := false
	defer func() {
		if !ready { // WaitReady failed the test
			t.Logf("threadline serve:\n%s", r.logs)
		}
	}()
	apptest.WaitReady(t, r.URL, r.done)
	ready = true
	return r
}

// stop cancels run's context, as SIGTERM does main's, and returns run's error; the test fails
// if run has not returned 15 s later.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(15 * time.Second):
		t.Fatalf("serve did not stop after its context was cancelled\n%s", r.logs)
		return nil
	}
}

func TestRunServes(t *testing.T) {
	t.Parallel()
	d := testenv.NewEmptyDatabase(t) // the migrate command builds the schema
	env := apptest.Env(t, d, testenv.NewRedis(t))
	getenv := func(k string) string { return env[k] }
	ctx := context.Background()

	var out, errs apptest.Buffer
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
	srv := startRun(t, env)

	// The demo user's seeded data answers through the whole stack, to the command's token.
	demo := &apptest.Client{URL: srv.URL + "/query", Authorization: "Bearer " + strings.TrimSpace(tokOut.String())}
	var data struct {
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
	demo.Query(t, `{ me { name } conversations(first: 10) { edges { node { id messages(limit: 50) { items { seq sender { name } } hasMore } } } } }`, nil, &data)
	if data.Me.Name != "Demo User" || len(data.Conversations.Edges) != 10 {
		t.Fatalf("demo data: %+v", data)
	}
	for _, edge := range data.Conversations.Edges {
		if items := edge.Node.Messages.Items; len(items) != 50 || !edge.Node.Messages.HasMore || items[0].Sender.Name == "" {
			t.Fatalf("a demo conversation's first page: %d items", len(items))
		}
	}

	for path, want := range map[string]int{"/healthz": 200, "/": 200, "/nope": 404} {
		if status, _ := srv.Get(path); status != want {
			t.Errorf("%s: %d, want %d", path, status, want)
		}
	}

	if err := srv.stop(t); err != nil {
		t.Fatalf("serve returned %v", err)
	}
	if !strings.Contains(srv.logs.String(), "msg=stopped") {
		t.Fatalf("no clean stop in the log:\n%s", srv.logs)
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
	err := run(context.Background(), nil, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "DATABASE_URL is required") {
		t.Fatalf("serve without config: %v", err)
	}
	err = run(context.Background(), []string{"frobnicate"}, func(string) string { return "" }, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unknown command: %v", err)
	}
}

// TestConfigFromEnvironment checks that each setting reaches the configuration the server is
// built from (app.New's app.Config): set alone, a variable changes its fields and no other.
// What each field does is tested from app.Config, through the same app.New, in graph and the
// packages; TestServeHonoursHardeningSettings runs a few through the whole program.
func TestConfigFromEnvironment(t *testing.T) {
	origin := []string{"https://app.example.com"}
	example, err := os.ReadFile(".env.example")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want func(*app.Config)
	}{
		{map[string]string{}, func(*app.Config) {}}, // app.Defaults
		{map[string]string{"APP_ENV": "development"}, func(c *app.Config) {
			c.Env, c.Introspection, c.JWTSecret = "development", true, app.DevelopmentSecret
			c.Addr, c.OpsAddr = "127.0.0.1:8080", "" // loopback; operations endpoints on the main listener
		}},
		{map[string]string{"ADDR": ":9090"}, func(c *app.Config) { c.Addr = ":9090" }},
		{map[string]string{"DATABASE_URL": "postgres://pooled"}, func(c *app.Config) { c.DatabaseURL = "postgres://pooled" }},
		{map[string]string{"DATABASE_DIRECT_URL": "postgres://direct"}, func(c *app.Config) { c.DatabaseDirectURL = "postgres://direct" }},
		{map[string]string{"DATABASE_REPLICA_URL": "postgres://replica"}, func(c *app.Config) { c.DatabaseReplicaURL = "postgres://replica" }},
		{map[string]string{"REDIS_URL": "redis://r:6379"}, func(c *app.Config) { c.RedisURL = "redis://r:6379" }},
		{map[string]string{"REDIS_TLS_CA_FILE": "/etc/redis/ca.crt"}, func(c *app.Config) { c.RedisTLS.CAFile = "/etc/redis/ca.crt" }},
		{map[string]string{"REDIS_TLS_CERT_FILE": "/etc/redis/client.crt"}, func(c *app.Config) { c.RedisTLS.CertFile = "/etc/redis/client.crt" }},
		{map[string]string{"REDIS_TLS_KEY_FILE": "/etc/redis/client.key"}, func(c *app.Config) { c.RedisTLS.KeyFile = "/etc/redis/client.key" }},
		{map[string]string{"JWT_SECRET": "0123456789abcdef0123"}, func(c *app.Config) { c.JWTSecret = "0123456789abcdef0123" }},
		{map[string]string{"LOG_LEVEL": "debug"}, func(c *app.Config) { c.LogLevel = slog.LevelDebug }},
		{map[string]string{"LOG_FORMAT": "text"}, func(c *app.Config) { c.LogFormat = "text" }},
		{map[string]string{"DB_MAX_CONNS": "7"}, func(c *app.Config) { c.DBMaxConns = 7 }},
		{map[string]string{"DB_MIN_CONNS": "1"}, func(c *app.Config) { c.DBMinConns = 1 }},
		{map[string]string{"DB_MAX_CONN_LIFETIME": "1h"}, func(c *app.Config) { c.DBMaxConnLifetime = time.Hour }},
		{map[string]string{"DB_MAX_CONN_IDLE_TIME": "1m"}, func(c *app.Config) { c.DBMaxConnIdleTime = time.Minute }},
		{map[string]string{"DB_CONNECT_TIMEOUT": "2s"}, func(c *app.Config) { c.DBConnectTimeout = 2 * time.Second }},
		{map[string]string{"LOADER_WAIT": "1ms"}, func(c *app.Config) { c.LoaderWait = time.Millisecond }},
		{map[string]string{"LOADER_MAX_BATCH": "9"}, func(c *app.Config) { c.LoaderMaxBatch = 9 }},
		{map[string]string{"CACHE_ENABLED": "false"}, func(c *app.Config) { c.CacheEnabled, c.ResponseCacheEnabled = false, false }},
		{map[string]string{"RESPONSE_CACHE_ENABLED": "false"}, func(c *app.Config) { c.ResponseCacheEnabled = false }},
		{map[string]string{"RESPONSE_CACHE_TTL": "3s"}, func(c *app.Config) { c.ResponseCacheTTL = 3 * time.Second }},
		{map[string]string{"LOCAL_CACHE_BYTES": "0"}, func(c *app.Config) { c.LocalCacheBytes = 0 }},
		{map[string]string{"CACHE_TTL_FIRST_PAGE": "4s"}, func(c *app.Config) { c.CacheTTLFirstPage = 4 * time.Second }},
		{map[string]string{"CACHE_TTL": "5s"}, func(c *app.Config) { c.CacheTTL = 5 * time.Second }},
		{map[string]string{"REDIS_TIMEOUT": "6ms"}, func(c *app.Config) { c.RedisTimeout = 6 * time.Millisecond }},
		{map[string]string{"REDIS_BREAKER_FAILURES": "3"}, func(c *app.Config) { c.RedisBreakerFailures = 3 }},
		{map[string]string{"REDIS_BREAKER_OPEN": "7s"}, func(c *app.Config) { c.RedisBreakerOpen = 7 * time.Second }},
		{map[string]string{"POST_COMMIT_WAIT": "42ms"}, func(c *app.Config) { c.PostCommitWait = 42 * time.Millisecond }},
		{map[string]string{"POST_COMMIT_WAIT": "0s"}, func(c *app.Config) { c.PostCommitWait = 0 }},
		{map[string]string{"LIVE_POLL_INTERVAL": "43ms"}, func(c *app.Config) { c.LivePollInterval = 43 * time.Millisecond }},
		{map[string]string{"LIVE_POLL_INTERVAL": "0"}, func(c *app.Config) { c.LivePollInterval = 0 }},
		{map[string]string{"GRAPHQL_INTROSPECTION": "true"}, func(c *app.Config) { c.Introspection = true }},
		{map[string]string{"MAX_BODY_BYTES": "2000"}, func(c *app.Config) { c.MaxBodyBytes = 2000 }},
		{map[string]string{"MAX_HEADER_BYTES": "3000"}, func(c *app.Config) { c.MaxHeaderBytes = 3000 }},
		{map[string]string{"REQUEST_TIMEOUT": "8s"}, func(c *app.Config) { c.RequestTimeout = 8 * time.Second }},
		{map[string]string{"HTTP_READ_HEADER_TIMEOUT": "1s"}, func(c *app.Config) { c.ReadHeaderTimeout = time.Second }},
		{map[string]string{"HTTP_READ_TIMEOUT": "2s"}, func(c *app.Config) { c.ReadTimeout = 2 * time.Second }},
		{map[string]string{"HTTP_WRITE_TIMEOUT": "3s"}, func(c *app.Config) { c.WriteTimeout = 3 * time.Second }},
		{map[string]string{"HTTP_IDLE_TIMEOUT": "4s"}, func(c *app.Config) { c.IdleTimeout = 4 * time.Second }},
		{map[string]string{"SHUTDOWN_TIMEOUT": "9s"}, func(c *app.Config) { c.ShutdownTimeout = 9 * time.Second }},
		{map[string]string{"SHUTDOWN_DRAIN_DELAY": "5s"}, func(c *app.Config) { c.ShutdownDrainDelay = 5 * time.Second }},
		{map[string]string{"MAX_QUERY_COMPLEXITY": "11"}, func(c *app.Config) { c.Limits.Complexity = 11 }},
		{map[string]string{"MAX_QUERY_DEPTH": "12"}, func(c *app.Config) { c.Limits.Depth = 12 }},
		{map[string]string{"MAX_ALIASES": "13"}, func(c *app.Config) { c.Limits.Aliases = 13 }},
		{map[string]string{"MAX_FIELDS": "14"}, func(c *app.Config) { c.Limits.Fields = 14 }},
		{map[string]string{"MAX_TOKENS": "15"}, func(c *app.Config) { c.Limits.Tokens = 15 }},
		{map[string]string{"RATE_LIMIT_DISABLED": "true"}, func(c *app.Config) { c.RateLimitDisabled = true }},
		{map[string]string{"RATE_LIMIT": "16"}, func(c *app.Config) { c.RateLimit = 16 }},
		{map[string]string{"RATE_LIMIT_BURST": "17"}, func(c *app.Config) { c.RateLimitBurst = 17 }},
		{map[string]string{"APQ_TTL": "1h"}, func(c *app.Config) { c.APQTTL = time.Hour }},
		{map[string]string{"CORS_ALLOWED_ORIGINS": origin[0]}, func(c *app.Config) { c.CORSAllowedOrigins = origin }},
		// CORS allows the WebSocket origins unless it has a list of its own.
		{map[string]string{"WS_ALLOWED_ORIGINS": origin[0] + "/"}, func(c *app.Config) { c.WSAllowedOrigins, c.CORSAllowedOrigins = origin, origin }},
		{map[string]string{"WS_INIT_TIMEOUT": "1s"}, func(c *app.Config) { c.WSInitTimeout = time.Second }},
		{map[string]string{"WS_PING_INTERVAL": "2s"}, func(c *app.Config) { c.WSPingInterval = 2 * time.Second }},
		{map[string]string{"SUBSCRIBER_BUFFER": "18"}, func(c *app.Config) { c.SubscriberBuffer = 18 }},
		{map[string]string{"DEMO_USER_ID": "19"}, func(c *app.Config) { c.DemoUserID = 19 }},
		{map[string]string{"WEB_APP_ENABLED": "true"}, func(c *app.Config) { c.WebAppEnabled = true }},
		{map[string]string{"OPS_ADDR": "127.0.0.1:6060"}, func(c *app.Config) { c.OpsAddr = "127.0.0.1:6060" }},
		{map[string]string{"JWT_JWKS_URL": "https://idp.example.com/jwks"}, func(c *app.Config) { c.JWTJWKSURL = "https://idp.example.com/jwks" }},
		{map[string]string{"JWT_ISSUER": "https://idp.example.com/"}, func(c *app.Config) { c.JWTIssuer = "https://idp.example.com/" }},
		{map[string]string{"JWT_AUDIENCE": "threadline"}, func(c *app.Config) { c.JWTAudience = "threadline" }},
		{map[string]string{"CREATE_CONVERSATION_RATE": "20"}, func(c *app.Config) { c.CreateConversationRate = 20 }},
		{map[string]string{"CREATE_CONVERSATION_BURST": "21"}, func(c *app.Config) { c.CreateConversationBurst = 21 }},
		{map[string]string{"MAX_MUTATIONS_PER_OPERATION": "22"}, func(c *app.Config) { c.MaxMutations = 22 }},
		{map[string]string{"ADMISSION_ENABLED": "false"}, func(c *app.Config) { c.AdmissionEnabled = false }},
		{map[string]string{"ADMISSION_MAX_LIMIT": "23"}, func(c *app.Config) { c.AdmissionMaxLimit = 23 }},
		{map[string]string{"ADMISSION_MAX_WAIT": "24ms"}, func(c *app.Config) { c.AdmissionMaxWait = 24 * time.Millisecond }},
		{map[string]string{"CACHE_FALLBACK_RATE": "25"}, func(c *app.Config) { c.CacheFallbackRate = 25 }},
		{map[string]string{"WS_WRITE_TIMEOUT": "26s"}, func(c *app.Config) { c.WSWriteTimeout = 26 * time.Second }},
		{map[string]string{"WS_MAX_SUBSCRIPTIONS": "27"}, func(c *app.Config) { c.WSMaxSubscriptions = 27 }},
		{map[string]string{"WS_MAX_IN_FLIGHT": "28"}, func(c *app.Config) { c.WSMaxInFlight = 28 }},
		{map[string]string{"WS_MAX_CONNS_PER_USER": "29"}, func(c *app.Config) { c.WSMaxConnsPerUser = 29 }},
		{map[string]string{"WS_MAX_CONNS_PER_ADDR": "30"}, func(c *app.Config) { c.WSMaxConnsPerAddr = 30 }},
		{map[string]string{"SSE_KEEPALIVE_INTERVAL": "41s"}, func(c *app.Config) { c.SSEKeepAlive = 41 * time.Second }},
		{map[string]string{"MAX_DOCUMENT_BYTES": "31"}, func(c *app.Config) { c.Limits.DocumentBytes = 31 }},
		{map[string]string{"MAX_SAME_NAME": "32"}, func(c *app.Config) { c.Limits.SameName = 32 }},
		{map[string]string{"MAX_OPERATIONS": "33"}, func(c *app.Config) { c.Limits.Operations = 33 }},
		{map[string]string{"MAX_FRAGMENTS": "34"}, func(c *app.Config) { c.Limits.FragmentDefinitions = 34 }},
		{map[string]string{"MAX_FRAGMENT_SPREADS": "35"}, func(c *app.Config) { c.Limits.FragmentSpreads = 35 }},
		{map[string]string{"MAX_DIRECTIVES": "36"}, func(c *app.Config) { c.Limits.Directives = 36 }},
		{map[string]string{"MAX_VARIABLES": "37"}, func(c *app.Config) { c.Limits.Variables = 37 }},
		{map[string]string{"TRUSTED_DOCUMENTS_ONLY": "true"}, func(c *app.Config) { c.TrustedDocumentsOnly = true }},
		{map[string]string{"APQ_MAX_BYTES": "38"}, func(c *app.Config) { c.APQMaxBytes = 38 }},
		{map[string]string{"DOCUMENT_CACHE_BYTES": "39"}, func(c *app.Config) { c.DocumentCache.Bytes = 39 }},
		{map[string]string{"DOCUMENT_CACHE_ENTRIES": "40"}, func(c *app.Config) { c.DocumentCache.Entries = 40 }},
	} {
		name := "defaults"
		for k, v := range tc.env {
			name = k + "=" + v
			if !strings.Contains(string(example), "\n"+k+"=") {
				t.Errorf(".env.example does not list %s", k)
			}
			if !strings.Contains(string(readme), "`"+k+"`") {
				t.Errorf("README.md does not name %s", k)
			}
		}
		t.Run(name, func(t *testing.T) {
			want := app.Defaults()
			tc.want(&want)
			got, err := loadConfig(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

// TestServeHonoursHardeningSettings sets hardening settings in the environment of `threadline
// serve` and sees each take effect through the whole program: the body limit, CORS, production's
// closed introspection and field suggestions, the rate limit with its metric (and CORS headers
// on its 429), and the HTTP read timeout of server.go's http.Server.
func TestServeHonoursHardeningSettings(t *testing.T) {
	t.Parallel()
	const burst, appOrigin = 10, "https://app.example.com"
	env := apptest.Env(t, testenv.NewDatabase(t), testenv.NewRedis(t))
	for k, v := range map[string]string{
		"APP_ENV": "production", "MAX_BODY_BYTES": "2000", "RATE_LIMIT": "1", "RATE_LIMIT_BURST": "10",
		"CORS_ALLOWED_ORIGINS": appOrigin, "HTTP_READ_TIMEOUT": "1s",
	} {
		env[k] = v
	}
	srv := startRun(t, env)
	ctx := t.Context()
	anon := srv.Client(0)

	// Refused before the rate limiter: they spend no budget.
	if res, err := anon.Post(ctx, []byte(`{"query":"{ __typename }","pad":"`+strings.Repeat("x", 3000)+`"}`)); err != nil ||
		res.Status != http.StatusRequestEntityTooLarge || len(res.Errors) == 0 {
		t.Fatalf("body over MAX_BODY_BYTES: %d %s %v", res.Status, res.Body, err)
	}
	preflight := func(origin string) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodOptions, srv.URL+"/query", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		req.Header.Set("Access-Control-Request-Headers", "authorization,content-type")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	if res := preflight(appOrigin); res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
	if res := preflight("https://evil.example.com"); res.StatusCode != http.StatusForbidden {
		t.Fatalf("preflight from another origin: %d", res.StatusCode)
	}

	// Production: no schema by introspection, no suggestion of field names.
	for _, q := range []string{`{ __schema { types { name } } }`, `{ conversatoins { edges { cursor } } }`} {
		res := anon.Must(t, q, nil)
		if len(res.Errors) == 0 || strings.Contains(string(res.Body), "Did you mean") || strings.Contains(string(res.Body), `"types"`) {
			t.Fatalf("%s: %s", q, res.Body)
		}
	}

	// The user's budget: a burst, then RATE_LIMITED with Retry-After, CORS headers still on.
	user := srv.Client(1)
	for i := range burst {
		if res := user.Must(t, `{ __typename }`, nil); !res.OK() {
			t.Fatalf("request %d: %d %s", i, res.Status, res.Body)
		}
	}
	user.Header = http.Header{"Origin": {appOrigin}}
	res := user.Must(t, `{ __typename }`, nil)
	if res.Status != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" || strings.Join(res.Codes(), ",") != "RATE_LIMITED" ||
		res.Header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("over the limit: %d %v %s", res.Status, res.Header, res.Body)
	}
	if _, metrics := srv.GetOps("/metrics"); !strings.Contains(metrics, "\nthreadline_rate_limited_total 1\n") ||
		!strings.Contains(metrics, "\nthreadline_rate_limit_fail_open_total 0\n") {
		t.Fatal("rate limit metrics missing or wrong")
	}

	// A request whose body never comes is ended by HTTP_READ_TIMEOUT (1 s), not left waiting
	// (the default is 15 s).
	conn, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /query HTTP/1.1\r\nHost: threadline\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	// An answer (an error status) or the connection closed: either way the request has ended.
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the server still waits for the body 10 s later; HTTP_READ_TIMEOUT is 1 s")
		}
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
