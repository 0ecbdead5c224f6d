// Package apptest starts Threadline for tests, exactly as `threadline serve` wires it: in
// process (Start: package app's New behind a real listener) or as the real binary
// (StartProcess), and talks to it over HTTP, WebSocket and Server-Sent Events (an Endpoint's
// Client, Dial and Stream; DialSubscribe, WS.Read, OpenSSE and SSE.Read for clients off the
// test's goroutine).
//
// It builds on internal/testenv, which starts PostgreSQL, PgBouncer and Redis once per test
// binary and gives each test its own database; a package whose tests use apptest calls
// testenv.Main from its TestMain as usual:
//
//	func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }
//
//	func TestSomething(t *testing.T) {
//		srv := apptest.Start(t, apptest.Options{Seed: true})
//		var out struct{ Me struct{ Name string } }
//		srv.Client(1).MustQuery(t, `{ me { name } }`, nil, &out)
//	}
package apptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

// Secret signs the tokens of every server apptest starts.
const Secret = "apptest-secret-0123456789abcdef"

// Options configure Start.
type Options struct {
	// Configure adjusts the configuration after apptest has filled in the services, the secret
	// and test-friendly settings (Config); nil keeps them.
	Configure func(*app.Config)
	// App adds test hooks to the wiring (statement observers, Redis hooks, logs).
	App app.Options
	// Database is the database to serve; nil: a new one (testenv.NewDatabase), migrated.
	Database *testenv.Database
	// RedisURL is the Redis to use; "": a new one of the test's own (testenv.NewRedis). Servers
	// given the same database and Redis are instances of one deployment.
	RedisURL string
	// Seed serves the demo data set (db.DemoSeed: user 1 in 20 conversations): a new database
	// from NewSeededDatabase, or Database once Seed has loaded it.
	Seed bool
}

// Server is an application serving on 127.0.0.1 for the length of a test.
type Server struct {
	Endpoint // its URL, and the clients that reach it
	// App is the application, built by app.New.
	App      *app.App
	Config   app.Config
	Database testenv.Database
	// Direct is a pool straight to the test database, for fixtures and checks.
	Direct *pgxpool.Pool

	stop func() error
}

// Config returns the configuration apptest starts from: app.Defaults (production mode), with
// the rate limit off and short timeouts that keep tests quick, before Options.Configure.
// Redis calls get 500 ms instead of production's 100 ms: with other packages' tests sharing the
// cores a call can take longer, and a mutation whose token move timed out lets other instances
// serve the older response until its retry lands (respcache's package doc), which the
// read-your-writes races would count as stale reads. The tests that make Redis hang pause it for
// 1.5 s or more.
func Config(database testenv.Database, redisURL string) app.Config {
	c := app.Defaults()
	c.Addr = "127.0.0.1:0"
	c.DatabaseURL, c.DatabaseDirectURL, c.RedisURL = database.PooledURL, database.DirectURL, redisURL
	c.JWTSecret = Secret
	c.RateLimitDisabled = true
	c.DBMaxConns, c.DBMinConns = 8, 0
	c.ShutdownTimeout = 5 * time.Second
	c.WSInitTimeout = 2 * time.Second
	c.RedisTimeout = 500 * time.Millisecond
	return c
}

// Start builds the application with app.New and serves it on a free port of 127.0.0.1 until the
// test ends, when it shuts down as `serve` does (readiness, WebSocket clients sent away, then the
// listener) and reports a failed shutdown as a test error.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	s := prepare(t, o)
	cfg := s.Config
	a, err := app.New(context.Background(), cfg, o.App)
	if err != nil {
		t.Fatalf("apptest: app.New: %v", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		a.Close()
		t.Fatalf("apptest: %v", err)
	}
	var conns connStates
	srv := &http.Server{
		Handler: a.Handler, ReadHeaderTimeout: cfg.ReadHeaderTimeout, ReadTimeout: cfg.ReadTimeout,
		WriteTimeout: cfg.WriteTimeout, IdleTimeout: cfg.IdleTimeout, MaxHeaderBytes: cfg.MaxHeaderBytes,
		ErrorLog:  slog.NewLogLogger(slog.DiscardHandler, slog.LevelWarn),
		ConnState: conns.track,
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	opsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	ops := &http.Server{Handler: a.Ops, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = ops.Serve(opsLn) }()
	t.Cleanup(func() { _ = ops.Close() })
	s.App, s.URL, s.OpsURL = a, "http://"+ln.Addr().String(), "http://"+opsLn.Addr().String()
	var once sync.Once
	var stopErr error
	s.stop = func() error {
		once.Do(func() {
			defer a.Close()
			ctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
			defer cancel()
			a.Drain()
			if err := a.GoAway(ctx); err != nil {
				stopErr = err
			}
			if err := srv.Shutdown(ctx); err != nil {
				unused := conns.onlyUnused()
				srv.Close()
				if !unused {
					stopErr = errors.Join(stopErr, err)
				}
			}
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				stopErr = errors.Join(stopErr, err)
			}
		})
		return stopErr
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("apptest: shutdown: %v", err)
		}
	})
	s.WaitReady(t)
	return s
}

// prepare makes the services and the configuration of a server.
func prepare(t testing.TB, o Options) *Server {
	t.Helper()
	var database testenv.Database
	switch {
	case o.Database != nil:
		database = *o.Database
		if o.Seed {
			Seed(t, database)
		}
	case o.Seed:
		database = NewSeededDatabase(t)
	default:
		database = testenv.NewDatabase(t)
	}
	redisURL := o.RedisURL
	if redisURL == "" {
		redisURL = testenv.NewRedis(t)
	}
	cfg := Config(database, redisURL)
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	return &Server{Endpoint: Endpoint{Secret: cfg.JWTSecret, t: t}, Config: cfg, Database: database, Direct: directPool(t, database)}
}

var (
	directMu    sync.Mutex
	directPools = map[string]*pgxpool.Pool{} // by DirectURL: database names repeat across stacks
)

// directPool returns one pool per database for the whole test (shared by its instances).
func directPool(t testing.TB, d testenv.Database) *pgxpool.Pool {
	directMu.Lock()
	defer directMu.Unlock()
	if p, ok := directPools[d.DirectURL]; ok {
		return p
	}
	p, err := pgxpool.New(context.Background(), d.DirectURL)
	if err != nil {
		t.Fatalf("apptest: %v", err)
	}
	directPools[d.DirectURL] = p
	t.Cleanup(func() {
		directMu.Lock()
		delete(directPools, d.DirectURL)
		directMu.Unlock()
		p.Close()
	})
	return p
}

// Seed loads the demo data set into database (user 1 is a member of 20 conversations). A new
// database with it is quicker to have from NewSeededDatabase.
func Seed(t testing.TB, database testenv.Database) {
	t.Helper()
	if err := seedDemo(context.Background(), database.DirectURL); err != nil {
		t.Fatalf("apptest: seed: %v", err)
	}
}

// NewSeededDatabase is a new database for the test holding the demo data set, as Seed loads it:
// a copy of a template seeded once per test binary (testenv.NewFilledDatabase).
func NewSeededDatabase(t testing.TB) testenv.Database {
	t.Helper()
	return testenv.NewFilledDatabase(t, "threadline_demo", seedDemo)
}

// seedDemo loads db.DemoSeed with random seed 1: the same rows every time into the same
// starting state.
func seedDemo(ctx context.Context, directURL string) error {
	_, err := db.Seed(ctx, directURL, db.DemoSeed, 1)
	return err
}

// Stop shuts the server down now (rather than when the test ends) and returns the error of
// its shutdown.
func (s *Server) Stop() error { return s.stop() }

// WaitReady waits until /readyz answers 200, failing the test after 15 s.
func (s *Server) WaitReady(t testing.TB) {
	t.Helper()
	WaitReady(t, s.URL, nil)
}

// Endpoint is a running server as its clients see it: where it listens and the secret its
// tokens are signed with. Server and Process embed one; NewEndpoint makes one for a server
// started otherwise (a test of the program's own entry point).
type Endpoint struct {
	// URL is the server's base URL, http://127.0.0.1:<port>.
	URL string
	// OpsURL is the base URL of the operations endpoints (/metrics, /health/cache, pprof): a
	// listener of their own, as in production, or URL in development (OPS_ADDR unset).
	OpsURL string
	// Secret is the server's JWT_SECRET.
	Secret string

	t testing.TB
}

// NewEndpoint returns the endpoint of a server serving at url (http://host:port) whose tokens
// are signed with secret.
func NewEndpoint(t testing.TB, url, secret string) *Endpoint {
	return &Endpoint{URL: url, Secret: secret, t: t}
}

// Token returns a token for userID, valid for an hour.
func (e *Endpoint) Token(userID int64) string {
	e.t.Helper()
	return Token(e.t, e.Secret, userID, time.Hour)
}

// Client returns a GraphQL client acting as userID (0: anonymous).
func (e *Endpoint) Client(userID int64) *Client {
	c := &Client{URL: e.URL + "/query"}
	if userID != 0 {
		c.Authorization = "Bearer " + e.Token(userID)
	}
	return c
}

// WebSocketURL is the ws:// address of /query.
func (e *Endpoint) WebSocketURL() string { return "ws" + strings.TrimPrefix(e.URL, "http") + "/query" }

// Get fetches path and returns the status and the body.
func (e *Endpoint) Get(path string) (int, string) {
	e.t.Helper()
	return get(e.t, e.URL+path)
}

// TryGet fetches path and returns the status and the body, or the error of a request that got
// no answer (a server not listening yet): for a test that waits for it.
func (e *Endpoint) TryGet(path string) (int, string, error) {
	return tryGet(e.URL + path)
}

// GetOps fetches path from the operations endpoints and returns the status and the body.
func (e *Endpoint) GetOps(path string) (int, string) {
	e.t.Helper()
	base := e.OpsURL
	if base == "" {
		base = e.URL
	}
	return get(e.t, base+path)
}

func get(t testing.TB, url string) (int, string) {
	t.Helper()
	status, body, err := tryGet(url)
	if err != nil {
		t.Fatalf("apptest: GET %s: %v", url, err)
	}
	return status, body
}

func tryGet(url string) (int, string, error) {
	res, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// WaitReady waits until the server at base (http://host:port) answers 200 on /readyz. It fails
// the test after 15 s, or as soon as stopped (if not nil) is closed: the server has exited.
func WaitReady(t testing.TB, base string, stopped <-chan struct{}) {
	t.Helper()
	waitOK(t, base+"/readyz", "the server at "+base, stopped, 15*time.Second)
}

// waitOK waits until url answers 200. It fails the test after timeout, or as soon as stopped
// (if not nil) is closed: the server, named what in the failure, has exited.
func waitOK(t testing.TB, url, what string, stopped <-chan struct{}, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("%s answered %d", url, res.StatusCode)
		}
		select {
		case <-stopped:
			t.Fatalf("apptest: %s exited before it was ready", what)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("apptest: %s is not ready: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// FreeAddr returns a 127.0.0.1 address with a port free at the time of the call.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ID formats an id as the GraphQL ID scalar does.
func ID(id int64) string { return strconv.FormatInt(id, 10) }

// connStates follows the server's connections. A client may dial a
// connection it never sends a request on (net/http's transport does when
// requests race); Shutdown waits for such a connection as long as for a
// request, but it is no request the server failed to finish.
type connStates struct {
	mu sync.Mutex
	m  map[net.Conn]http.ConnState
}

func (c *connStates) track(conn net.Conn, state http.ConnState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[net.Conn]http.ConnState)
	}
	switch state {
	case http.StateClosed, http.StateHijacked:
		delete(c.m, conn)
	default:
		c.m[conn] = state
	}
}

// onlyUnused reports whether every open connection is one that never
// carried a request.
func (c *connStates) onlyUnused() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, state := range c.m {
		if state != http.StateNew {
			return false
		}
	}
	return true
}
