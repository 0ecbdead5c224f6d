// Package testenv is the test harness behind every package's TestMain: one
// real PostgreSQL, PgBouncer and Redis per test binary (internal/devstack),
// a fresh database per test, and a dedicated Redis for tests that need one.
//
// Use it like this:
//
//	func TestMain(m *testing.M) {
//		testenv.Main(m, testenv.Options{Migrate: db.Migrate})
//	}
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		database := testenv.NewDatabase(t) // migrated, empty, dropped after the test
//		redisURL := testenv.NewRedis(t)   // a redis-server of its own
//		rds := testenv.StartRedis(t)      // one the test can Stop and Restart on its address
//		...
//	}
//
// # Decisions
//
//   - One stack per test binary, started in Main, on free ports under a
//     temporary directory (in /dev/shm when it is a roomy tmpfs: PostgreSQL
//     creates databases about ten times faster there), and stopped when the
//     binary ends. Its servers are killed by the kernel if the binary dies
//     (see devstack.Config.Detach), and directories left by binaries that
//     crashed are removed by the next Main. PostgreSQL runs with fsync off
//     (devstack.Config.Ephemeral).
//   - Migrations run once, into the template database threadline_template;
//     then its connections are closed and it is marked IS_TEMPLATE and
//     ALLOW_CONNECTIONS false, so a stray connection cannot block the
//     CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY that gives each test
//     its own copy, which is much faster than migrating per test. A data set
//     many tests load (the demo seed) is a template of its own, filled once
//     per binary on first use (NewFilledDatabase): copying it takes a
//     fraction of loading it.
//   - Each test database is reachable directly (DirectURL) and through the
//     shared PgBouncer (PooledURL; PgBouncer's wildcard entry routes any
//     database name). When the test ends, the database is first KILLed on
//     PgBouncer's admin console, which closes PgBouncer's server connections
//     to it (otherwise the idle ones would linger until server_idle_timeout,
//     10 minutes, and be torn down by the drop) and pauses that one database
//     name only, and then dropped WITH (FORCE).
//   - Every call opens its own short connection, so tests may run in
//     parallel and may restart PostgreSQL or PgBouncer (Stack(t).Restart*)
//     without breaking the harness. Tests that stop or restart the shared
//     services must not call t.Parallel: Go runs them before the parallel
//     tests resume.
//   - With -short nothing is started and Stack, NewDatabase and NewRedis skip
//     the test.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/threadline/threadline/internal/devstack"
)

// TemplateDatabase is the migrated database every test database copies.
const TemplateDatabase = "threadline_template"

// Options configure Main.
type Options struct {
	// Migrate brings the database at directURL (straight to PostgreSQL) to
	// the current schema. It runs once per test binary, on the template
	// database. Nil: the template stays empty.
	Migrate func(ctx context.Context, directURL string) error
}

// The stack of this test binary, set by Main before the tests run.
var stack *devstack.Stack

// Main starts the services, runs the tests and exits with their status. Call
// it from TestMain; it calls flag.Parse and os.Exit itself.
func Main(m *testing.M, opts Options) {
	flag.Parse()
	if testing.Short() {
		code := m.Run()
		runAtExit()
		os.Exit(code)
	}
	code := run(m, opts)
	runAtExit()
	os.Exit(code)
}

func run(m *testing.M, opts Options) int {
	removeAbandonedDirs()
	began := time.Now()
	dir, err := os.MkdirTemp(stateRoot(), dirPrefix)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	owner, err := claimDir(dir)
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	defer owner.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var log strings.Builder
	s, err := devstack.Start(ctx, devstack.Config{Dir: dir, Ephemeral: true, Log: &log})
	if err != nil {
		fmt.Fprintf(os.Stderr, "testenv: cannot start PostgreSQL, PgBouncer and Redis for the tests: %v\n%s", err, log.String())
		fmt.Fprintln(os.Stderr, "testenv: install them with ops/stack/install-deps.sh, or run only the tests that need no services with -short")
		return 1
	}
	defer func() {
		if err := s.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testenv: stopping the stack: %v\n", err)
		}
	}()
	if err := createTemplate(ctx, s, opts.Migrate); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: %v\n", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "testenv: PostgreSQL, PgBouncer and Redis ready and template migrated in %s\n", time.Since(began).Round(time.Millisecond))
	}
	stack = s
	return m.Run()
}

func createTemplate(ctx context.Context, s *devstack.Stack, migrate func(context.Context, string) error) error {
	conn, err := pgx.Connect(ctx, s.DirectURL)
	if err != nil {
		return fmt.Errorf("connecting to postgres: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+TemplateDatabase); err != nil {
		return fmt.Errorf("creating %s: %w", TemplateDatabase, err)
	}
	if migrate != nil {
		if err := migrate(ctx, withDatabase(s.DirectURL, TemplateDatabase)); err != nil {
			return fmt.Errorf("migrating %s: %w", TemplateDatabase, err)
		}
	}
	return sealTemplate(ctx, conn, TemplateDatabase)
}

// sealTemplate marks the database name as a template that takes no connections, and closes
// the ones left open (by a migration or a fill): any would make every CREATE DATABASE ...
// TEMPLATE name fail.
func sealTemplate(ctx context.Context, conn *pgx.Conn, name string) error {
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("marking %s as template: %w", name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
		return fmt.Errorf("closing connections to %s: %w", name, err)
	}
	return nil
}

// filledTemplate is a template database made on first use by NewFilledDatabase.
type filledTemplate struct {
	once sync.Once
	err  error
}

var (
	filledMu        sync.Mutex
	filledTemplates = map[string]*filledTemplate{}
)

// NewFilledDatabase creates a database for this test as a copy of the template database name,
// made on the binary's first call for that name: a copy of the migrated template that fill then
// loads, over a direct URL. Copying a loaded database takes a fraction of loading it again (the
// demo data set: about 4 s of PostgreSQL's CPU for its COPY alone, measured). Tests asking at once
// wait for the first to finish; if fill fails, every test asking for name fails. name must be a
// plain lower-case identifier; fill must give the same result every time it runs.
func NewFilledDatabase(t testing.TB, name string, fill func(ctx context.Context, directURL string) error) Database {
	t.Helper()
	s := Stack(t)
	filledMu.Lock()
	tmpl := filledTemplates[name]
	if tmpl == nil {
		tmpl = &filledTemplate{}
		filledTemplates[name] = tmpl
	}
	filledMu.Unlock()
	tmpl.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		tmpl.err = func() error {
			if err := createDatabase(ctx, s, name, TemplateDatabase); err != nil {
				return err
			}
			if err := fill(ctx, withDatabase(s.DirectURL, name)); err != nil {
				return fmt.Errorf("filling %s: %w", name, err)
			}
			conn, err := pgx.Connect(ctx, s.DirectURL)
			if err != nil {
				return fmt.Errorf("connecting to postgres: %w", err)
			}
			defer conn.Close(context.Background())
			return sealTemplate(ctx, conn, name)
		}()
	})
	if tmpl.err != nil {
		t.Fatalf("testenv: template %s: %v", name, tmpl.err)
	}
	return newDatabase(t, name)
}

// Stack returns the test binary's stack. It skips the test under -short and
// fails it when Main did not start a stack.
func Stack(t testing.TB) *devstack.Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: needs PostgreSQL, PgBouncer and Redis; skipped with -short")
	}
	if stack == nil {
		t.Fatal("testenv: no stack: call testenv.Main(m, ...) from TestMain")
	}
	return stack
}

// Database is a test's own database, a copy of the migrated template.
type Database struct {
	Name string
	// DirectURL reaches PostgreSQL directly, PooledURL through PgBouncer
	// (transaction pooling: use pgx.QueryExecModeExec or the simple protocol).
	DirectURL, PooledURL string
	// ReplicaURL reaches the database on the streaming replica through
	// PgBouncer (NewReplicatedDatabase only).
	ReplicaURL string
}

var (
	replicaOnce sync.Once
	replica     *devstack.Replica
	replicaErr  error
)

// Replica returns the test binary's streaming replica of its PostgreSQL,
// started on first use (devstack.Stack.StartReplica) and stopped with the
// stack. It is shared by the binary's tests: a test that pauses its replay
// (pg_wal_replay_pause) or stops it must not run while another test uses it.
func Replica(t testing.TB) *devstack.Replica {
	t.Helper()
	s := Stack(t)
	replicaOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		replica, replicaErr = s.StartReplica(ctx)
	})
	if replicaErr != nil {
		t.Fatalf("testenv: starting the replica: %v", replicaErr)
	}
	return replica
}

// NewReplicatedDatabase is NewDatabase, and the database on the test
// binary's replica (Replica) through a PgBouncer entry of its own
// (Database.ReplicaURL), once the replica has replayed its creation.
func NewReplicatedDatabase(t testing.TB) Database {
	t.Helper()
	r := Replica(t)
	d := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := r.AddDatabase(ctx, d.Name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	d.ReplicaURL = url
	return d
}

// NewDatabase creates a database for this test from the migrated template and
// drops it when the test ends.
func NewDatabase(t testing.TB) Database {
	t.Helper()
	return newDatabase(t, TemplateDatabase)
}

// NewEmptyDatabase creates an empty database for this test (PostgreSQL's own
// template, no migration: for tests of migrating itself) and drops it when the
// test ends.
func NewEmptyDatabase(t testing.TB) Database {
	t.Helper()
	return newDatabase(t, "template1")
}

func newDatabase(t testing.TB, template string) Database {
	t.Helper()
	s := Stack(t)
	name := databaseName(t.Name())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createDatabase(ctx, s, name, template); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := dropDatabase(ctx, s, name); err != nil {
			t.Errorf("testenv: %v", err)
		}
	})
	return Database{
		Name:      name,
		DirectURL: withDatabase(s.DirectURL, name),
		PooledURL: withDatabase(s.DatabaseURL, name),
	}
}

// createDatabase copies template into a new database name. FILE_COPY copies the template's
// files and logs one record; PostgreSQL 15's default, WAL_LOG, writes the whole template to the
// WAL (4 MB for the migrated template), which the replica (NewReplicatedDatabase) then has to
// replay: with a few dozen tests creating databases at once it fell a minute behind.
func createDatabase(ctx context.Context, s *devstack.Stack, name, template string) error {
	for {
		err := execDirect(ctx, s, "CREATE DATABASE "+name+" TEMPLATE "+template+" STRATEGY FILE_COPY")
		// 55006 object_in_use: something touched the template just now.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55006" && ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			return fmt.Errorf("creating database %s: %w", name, err)
		}
		return nil
	}
}

func dropDatabase(ctx context.Context, s *devstack.Stack, name string) error {
	if err := killOnPgBouncer(ctx, s, name); err != nil {
		return err
	}
	if err := execDirect(ctx, s, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w", name, err)
	}
	return nil
}

// killOnPgBouncer makes PgBouncer close its connections to database name.
// PgBouncer knows only databases some client used through it; others are
// "no such database", which is fine.
func killOnPgBouncer(ctx context.Context, s *devstack.Stack, name string) error {
	conn, err := connectAdmin(ctx, s.PgBouncerAdminURL)
	if err != nil {
		return fmt.Errorf("pgbouncer admin console: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "KILL "+name); err != nil && !strings.Contains(err.Error(), "no such database") {
		return fmt.Errorf("pgbouncer: KILL %s: %w", name, err)
	}
	return nil
}

// ConnectAdmin connects to PgBouncer's admin console (database "pgbouncer"),
// which speaks only the simple query protocol. The caller closes the
// connection.
func ConnectAdmin(t testing.TB) *pgx.Conn {
	t.Helper()
	s := Stack(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := connectAdmin(ctx, s.PgBouncerAdminURL)
	if err != nil {
		t.Fatalf("testenv: pgbouncer admin console: %v", err)
	}
	return conn
}

func connectAdmin(ctx context.Context, adminURL string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return nil, err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	return pgx.ConnectConfig(ctx, cfg)
}

// execDirect runs one statement on a new direct connection to the stack's
// database. A new connection each time keeps the harness working across
// RestartPostgres.
func execDirect(ctx context.Context, s *devstack.Stack, sql string) error {
	conn, err := pgx.Connect(ctx, s.DirectURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

// databaseName makes a unique, lower-case PostgreSQL identifier (no quoting
// needed, here or on PgBouncer's console) that shows which test it belongs to.
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	underscore := true
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 44 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			underscore = false
		} else if !underscore {
			b.WriteByte('_')
			underscore = true
		}
	}
	if !underscore {
		b.WriteByte('_')
	}
	var random [6]byte
	rand.Read(random[:])
	b.WriteString(hex.EncodeToString(random[:]))
	return b.String()
}

// withDatabase returns a postgres:// URL naming another database.
func withDatabase(rawURL, database string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(fmt.Sprintf("testenv: bad URL from devstack: %v", err))
	}
	u.Path = "/" + database
	return u.String()
}

// NewRedis starts a redis-server of the test's own on a free port and returns
// its redis:// URL; the server is stopped when the test ends. Use it rather
// than the shared Redis (Stack(t).RedisURL) for cache and pub/sub tests, which
// must not see each other's keys or messages.
func NewRedis(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("testenv: needs Redis; skipped with -short")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	address, stop, err := devstack.StartRedisServer(ctx, t.TempDir(), 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("testenv: stopping redis: %v", err)
		}
	})
	return "redis://" + address + "/0"
}

// Temporary directories of test binaries are named dirPrefix* and hold
// ownerFile, flock(2)-locked by the owning binary for as long as it runs: the
// kernel drops the lock when the process dies, however it dies.
const (
	dirPrefix = "threadline-testenv-"
	ownerFile = "owner.lock"
)

// claimDir creates dir's owner file already locked (locked under another
// name, then renamed), so that no other binary ever sees it unlocked.
func claimDir(dir string) (*os.File, error) {
	tmp := filepath.Join(dir, ownerFile+".new")
	f, err := os.Create(tmp)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", tmp, err)
	}
	fmt.Fprintln(f, os.Getpid())
	if err := os.Rename(tmp, filepath.Join(dir, ownerFile)); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// stateRoot is where the stack's files go: /dev/shm when it is a tmpfs with
// room to spare, since PostgreSQL on a disk file system spends most of a
// CREATE DATABASE in open(2) (about 250 ms against 10-25 ms on tmpfs, as
// measured on an ext4 virtual disk), and otherwise os.TempDir().
func stateRoot() string {
	const tmpfsMagic = 0x01021994
	var st syscall.Statfs_t
	if err := syscall.Statfs(shmDir, &st); err == nil && st.Type == tmpfsMagic &&
		st.Bavail*uint64(st.Bsize) >= 1<<30 && syscall.Access(shmDir, 0o2 /* W_OK */) == nil {
		return shmDir
	}
	return os.TempDir()
}

const shmDir = "/dev/shm"

var cleanOnce sync.Once

// removeAbandonedDirs removes the directories of test binaries that died
// without cleaning up (a panic, a timeout, SIGKILL): their servers died with
// them, but their data would fill the disk over time.
func removeAbandonedDirs() {
	cleanOnce.Do(func() {
		var dirs []string
		for _, root := range []string{shmDir, os.TempDir()} {
			m, _ := filepath.Glob(filepath.Join(root, dirPrefix+"*"))
			dirs = append(dirs, m...)
		}
		for _, d := range dirs {
			f, err := os.Open(filepath.Join(d, ownerFile))
			if err != nil {
				continue // being created, or not ours
			}
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if err == nil {
				// Its owner is gone: its servers died with it (they get a
				// parent-death signal); Stop makes sure.
				devstack.Stop(d)
				os.RemoveAll(d)
			}
			f.Close()
		}
	})
}

var (
	atExitMu sync.Mutex
	atExit   []func()
)

// AtExit registers fn to run when Main's tests have finished, before the stack stops (files a
// test binary made for all its tests, such as a built server binary).
func AtExit(fn func()) {
	atExitMu.Lock()
	atExit = append(atExit, fn)
	atExitMu.Unlock()
}

func runAtExit() {
	atExitMu.Lock()
	fns := atExit
	atExit = nil
	atExitMu.Unlock()
	for i := len(fns) - 1; i >= 0; i-- {
		fns[i]()
	}
}
