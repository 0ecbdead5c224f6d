// Command bench runs Threadline's load scenarios side by side and writes the performance report,
// BENCHMARKS.md, with its charts. `make bench` starts the stack and runs it:
//
//	go run ./ops/stack up -dir .data-bench -pg-port 0 -pgbouncer-port 0 -redis-port 0
//	go run ./ops/loadtest/cmd/bench -dir .data-bench [-quick] [-out BENCHMARKS.md]
//
// It reads the stack's URLs from <dir>/stack.env, migrates, seeds the load-test data set once
// (1000 conversations x 200 messages, all readable by user 1, plus one conversation of 10,100
// messages for deep pagination, plus the search corpus: 1,000,000 messages, see searchCorpus),
// builds bin/threadline, and starts one server process per
// configuration (restarted between them): cache on (history and response cache), cache on with a
// streaming replica (started by devstack.Stack.StartReplica on the bench stack, stopped with it;
// the row notes the share of the reads a replica may serve that it served), response cache
// off, cache off through PgBouncer, cache off straight to PostgreSQL, and the ceiling: a plain
// net/http server (this binary, `bench ceiling`) answering the cached page's bytes from memory
// after a JWT check. The load generator (package loadtest) runs in this process, on the same
// cores as the server. Every load stops by itself: each run has a fixed duration or count.
//
// BENCH_QUICK=1 (or -quick) is the smoke run: fewer, shorter scenarios, the report written to
// <dir>/BENCHMARKS-quick.md unless -out says otherwise. BENCH_ONLY=search (or -only search)
// runs the search scenarios alone, against the cache-off server, and writes
// <dir>/BENCHMARKS-search.md unless -out says otherwise; BENCH_ONLY=mix runs the 95/5 Zipf mix
// against the cache-on server three times (the first profiled), then its reads alone and its
// sends alone, then the ceiling, and writes
// <dir>/BENCHMARKS-mix.md (it needs no search corpus): BENCHMARKS.md is always a whole run. The fan-out scenario calls the existing
// benchmark, BenchmarkFanoutWebSocket, with go test, and the typing scenario
// BenchmarkTypingAcrossInstances.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/internal/auth"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ceiling" {
		if err := ceiling(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "bench ceiling:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

const secret = "bench-secret-0123456789abcdef0123"

type options struct {
	dir, out, bin string
	quick         bool
	fanout        bool
	only          string // "" (everything), "search" or "mix"
}

func run(ctx context.Context) error {
	var o options
	flag.StringVar(&o.dir, "dir", ".data-bench", "the stack's `directory` (holding stack.env)")
	flag.StringVar(&o.out, "out", "", "report `file` (default BENCHMARKS.md, or <dir>/BENCHMARKS-quick.md when quick)")
	flag.StringVar(&o.bin, "bin", "bin/threadline", "server `binary` to build and run")
	flag.BoolVar(&o.quick, "quick", os.Getenv("BENCH_QUICK") == "1", "smoke run (BENCH_QUICK=1)")
	flag.BoolVar(&o.fanout, "fanout", true, "run the WebSocket fan-out and typing benchmarks too")
	flag.StringVar(&o.only, "only", os.Getenv("BENCH_ONLY"), "run only these `scenarios`: search or mix (BENCH_ONLY=search, BENCH_ONLY=mix)")
	flag.Parse()
	if o.only != "" && o.only != "search" && o.only != "mix" {
		return fmt.Errorf("-only %q: the subsets are search and mix", o.only)
	}
	switch {
	case o.out != "":
	case o.only != "":
		o.out = filepath.Join(o.dir, "BENCHMARKS-"+o.only+".md")
	case o.quick:
		o.out = filepath.Join(o.dir, "BENCHMARKS-quick.md")
	default:
		o.out = "BENCHMARKS.md"
	}
	began := time.Now()
	raiseFileLimit()
	// The generator allocates a little per response; collect less often, so that its pauses
	// stay out of the measured latencies.
	debug.SetGCPercent(400)
	env, err := readEnvFile(filepath.Join(o.dir, "stack.env"))
	if err != nil {
		return err
	}
	for _, k := range []string{"DATABASE_URL", "DATABASE_DIRECT_URL", "REDIS_URL", "PGBOUNCER_ADMIN_URL"} {
		if env[k] == "" {
			return fmt.Errorf("%s/stack.env has no %s", o.dir, k)
		}
	}
	logf("building %s", o.bin)
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", o.bin, ".").CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	withSearch := o.only != "mix"
	if err := prepare(ctx, o.bin, env, o.quick, withSearch); err != nil {
		return err
	}
	fx, err := loadFixture(ctx, env["DATABASE_DIRECT_URL"], o.quick, withSearch)
	if err != nil {
		return err
	}
	keys, err := auth.NewKeys(secret)
	if err != nil {
		return err
	}
	token, err := keys.Sign(1, 24*time.Hour)
	if err != nil {
		return err
	}
	var searchToken string
	if withSearch {
		if searchToken, err = keys.Sign(fx.search.viewer, 24*time.Hour); err != nil {
			return err
		}
	}
	b := &bench{opts: o, env: env, fx: fx, sfx: fx.search, token: token, searchToken: searchToken}
	if err := b.runAll(ctx); err != nil {
		return err
	}
	b.took = time.Since(began)
	if o.only == "" {
		if err := b.charts(); err != nil {
			logf("charts: %v", err)
		}
	}
	if err := b.writeReport(); err != nil {
		return err
	}
	logf("wrote %s in %s", o.out, b.took.Round(time.Second))
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func raiseFileLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			logf("raising the open-file limit: %v", err)
		}
	}
}

// fileLimit is the soft limit on open files (the server inherits it).
func fileLimit() uint64 {
	var l syscall.Rlimit
	_ = syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%v (start the stack first: go run ./ops/stack up -dir %s)", err, filepath.Dir(path))
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
		}
	}
	return env, sc.Err()
}

func environ(env map[string]string, extra ...string) []string {
	out := os.Environ()
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return append(out, extra...)
}

const longTitle = "bench: long conversation"

// longMessages is the long conversation's length: depth 10,000 plus a page and then some.
const longMessages = 10100

// prepare migrates and seeds once: the large data set and the long conversation, and the
// search corpus when withSearch.
func prepare(ctx context.Context, bin string, env map[string]string, quick, withSearch bool) error {
	cmd := exec.CommandContext(ctx, bin, "migrate")
	cmd.Env = environ(env)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("migrate: %v\n%s", err, out)
	}
	conn, err := pgx.Connect(ctx, env["DATABASE_DIRECT_URL"])
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	var readable int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.user_id = 1 AND c.title <> $1 AND c.last_seq >= 200`, longTitle).Scan(&readable); err != nil {
		return err
	}
	if readable < 1000 {
		logf("seeding the large data set (1000 conversations x 200 messages)")
		cmd := exec.CommandContext(ctx, bin, "seed", "-large")
		cmd.Env = environ(env)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("seed: %v\n%s", err, out)
		}
		logf("%s", strings.TrimSpace(string(out)))
	}
	var long int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM conversations WHERE title = $1`, longTitle).Scan(&long); err != nil {
		return err
	}
	if long == 0 {
		logf("creating the long conversation (%d messages)", longMessages)
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			var id int64
			if err := tx.QueryRow(ctx, `INSERT INTO conversations (title, created_by, last_seq, last_message_at)
				VALUES ($1, 1, $2, now()) RETURNING id`, longTitle, longMessages).Scan(&id); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO conversation_members (conversation_id, user_id)
				SELECT $1, u FROM generate_series(1, 3) u`, id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO messages (conversation_id, seq, sender_id, body, created_at)
				SELECT $1, g, 1 + g % 3, 'message ' || g || ' of the long conversation, ' || repeat('lorem ipsum ', 6),
				       now() - ($2 - g) * interval '1 second'
				FROM generate_series(1, $2::bigint) g`, id, longMessages)
			return err
		})
		if err != nil {
			return fmt.Errorf("long conversation: %w", err)
		}
		if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
			return err
		}
	}
	if !withSearch {
		return nil
	}
	return prepareSearch(ctx, conn, quick)
}

// fixture is what the scenarios read.
type fixture struct {
	convs   []string // 1000 seeded conversations user 1 reads, by id
	long    string   // the long conversation
	longSeq int64
	search  searchFixture
}

func loadFixture(ctx context.Context, directURL string, quick, withSearch bool) (fixture, error) {
	var fx fixture
	conn, err := pgx.Connect(ctx, directURL)
	if err != nil {
		return fx, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, `SELECT c.id::text FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
		WHERE m.user_id = 1 AND c.title <> $1 AND c.last_seq >= 200 ORDER BY c.id LIMIT 1000`, longTitle)
	if err != nil {
		return fx, err
	}
	fx.convs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fx, err
	}
	if len(fx.convs) < 1000 {
		return fx, fmt.Errorf("only %d conversations to read, want 1000", len(fx.convs))
	}
	err = conn.QueryRow(ctx, `SELECT id::text, last_seq FROM conversations WHERE title = $1 ORDER BY id LIMIT 1`, longTitle).Scan(&fx.long, &fx.longSeq)
	if err != nil {
		return fx, err
	}
	if withSearch {
		fx.search, err = loadSearchFixture(ctx, conn, quick)
	}
	return fx, err
}

// server is one running server process (or the ceiling).
type server struct {
	name     string
	addr     string // host:port of the public listener
	opsAddr  string // host:port of the operations listener (/metrics, /health/cache, pprof)
	profiled bool   // a CPU profile is taken under load
	cmd      *exec.Cmd
	done     chan error
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServer starts bin with the stack's environment plus extra, and waits until it is ready.
func startServer(ctx context.Context, name string, argv []string, env []string, readyPath string, pprof bool) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	s := &server{name: name, addr: addr, done: make(chan error, 1), profiled: pprof}
	if s.opsAddr, err = freeAddr(); err != nil {
		return nil, err
	}
	env = append(env, "ADDR="+addr, "OPS_ADDR="+s.opsAddr)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Env = env
	s.cmd.Stdout = io.Discard
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-s.done:
			return nil, fmt.Errorf("%s exited before it was ready: %v", name, err)
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + addr + readyPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				logf("%s ready on %s", name, addr)
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s not ready after 30s", name)
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(25 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// ceiling serves the cached page's bytes from memory after a JWT check: what HTTP, JWT and a
// 9 KB write cost with no GraphQL, Redis or SQL.
func ceiling(args []string) error {
	fs := flag.NewFlagSet("ceiling", flag.ContinueOnError)
	body := fs.String("body", "", "response body `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	page, err := os.ReadFile(*body)
	if err != nil {
		return err
	}
	keys, err := auth.NewKeys(os.Getenv("JWT_SECRET"))
	if err != nil {
		return err
	}
	length := fmt.Sprint(len(page))
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	mux.HandleFunc("/query", func(w http.ResponseWriter, r *http.Request) {
		if _, err := keys.VerifyHeader(r.Header.Get("Authorization")); err != nil {
			http.Error(w, `{"errors":[{"message":"unauthenticated"}]}`, http.StatusUnauthorized)
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{length}
		_, _ = w.Write(page)
	})
	srv := &http.Server{Addr: os.Getenv("ADDR"), Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// healthCache is the part of /health/cache the report reads.
type healthCache struct {
	Hits          int64 `json:"hits"`
	Misses        int64 `json:"misses"`
	Errors        int64 `json:"errors"`
	ResponseCache *struct {
		Hits   int64 `json:"hits"`
		Misses int64 `json:"misses"`
		Errors int64 `json:"errors"`
	} `json:"responseCache"`
}

func decodeHealth(b []byte) (healthCache, error) {
	var h healthCache
	err := json.Unmarshal(b, &h)
	return h, err
}
