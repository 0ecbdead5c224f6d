package devstack

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config says where a stack lives and how it is reached. The zero value of
// every field but Dir is usable.
type Config struct {
	// Dir holds everything: data, configuration, logs and pid files. It is
	// created if missing. Required.
	Dir string

	// Ports on 127.0.0.1. Zero means: the port a stack under Dir used before
	// if it is still free, otherwise any free port.
	PostgresPort, PgBouncerPort, RedisPort int

	// Database is created if missing. Default "threadline".
	Database string
	// User is the PostgreSQL superuser created by initdb, PgBouncer's only
	// user and its admin. Defaults "threadline" / "threadline".
	User, Password string

	// Ephemeral trades durability for speed, for throwaway stacks such as the
	// tests': PostgreSQL runs with fsync, synchronous_commit and
	// full_page_writes off (dynamic shared memory lives in the data
	// directory), and initdb skips its fsync. Never set it for data
	// you want to keep across a machine crash.
	Ephemeral bool

	// Detach lets the services outlive this process (ops/stack up): they run
	// in their own session. When false, they are killed if this process dies,
	// so a crashed or killed test binary leaves nothing running.
	Detach bool

	// TLS, when set, makes every service speak TLS only, with these
	// certificates (see TLS; GenerateTLS makes a set). The stack keeps copies
	// under Dir/tls. Nil: plain TCP, sslmode=disable.
	TLS *TLS

	// Log receives one line per step (nil: discarded). The services' own logs
	// are files under Dir/log.
	Log io.Writer
}

func (c Config) withDefaults() (Config, error) {
	if c.Dir == "" {
		return c, errors.New("devstack: Config.Dir is required")
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return c, fmt.Errorf("devstack: %w", err)
	}
	c.Dir = dir
	if c.Database == "" {
		c.Database = "threadline"
	}
	if c.User == "" {
		c.User = "threadline"
	}
	if c.Password == "" {
		c.Password = "threadline"
	}
	if c.Log == nil {
		c.Log = io.Discard
	}
	for _, p := range []struct {
		name string
		port int
	}{{"postgres", c.PostgresPort}, {"pgbouncer", c.PgBouncerPort}, {"redis", c.RedisPort}} {
		if p.port < 0 || p.port > 65535 {
			return c, fmt.Errorf("devstack: %s: invalid port %d", p.name, p.port)
		}
	}
	return c, nil
}

// Stack is a running PostgreSQL + PgBouncer + Redis under one directory.
// Its methods are safe for concurrent use.
type Stack struct {
	Dir string

	// DatabaseURL reaches Database through PgBouncer (transaction pooling),
	// DirectURL straight through PostgreSQL, PgBouncerAdminURL PgBouncer's
	// admin console (database "pgbouncer"; pgx needs
	// QueryExecModeSimpleProtocol there). All are postgres:// URLs with
	// sslmode=disable. RedisURL is redis://127.0.0.1:port/0. With TLS, the
	// postgres:// URLs say sslmode=verify-full and name TLS's CA and client
	// certificate, and RedisURL is rediss://127.0.0.1:port/0.
	DatabaseURL, DirectURL, RedisURL, PgBouncerAdminURL string

	// TLS is the stack's copies of its certificates (under Dir/tls), or nil
	// when its services speak plain TCP.
	TLS *TLS

	PostgresPort, PgBouncerPort, RedisPort int
	Database, User, Password               string

	mu       sync.Mutex
	cfg      Config
	acct     *account
	redisTLS *tls.Config // the stack's own Redis probes, with TLS
}

// The services of a stack, in start order.
type service int

const (
	postgresSvc service = iota
	pgbouncerSvc
	redisSvc
)

var services = []service{postgresSvc, pgbouncerSvc, redisSvc}

func (v service) String() string { return [...]string{"postgres", "pgbouncer", "redis"}[v] }

// comm is the process name the kernel reports for the service.
func (v service) comm() string { return [...]string{"postgres", "pgbouncer", "redis-server"}[v] }

func (v service) stopSteps() []stopStep {
	switch v {
	case postgresSvc:
		// SIGINT is PostgreSQL's fast shutdown; SIGQUIT its immediate one.
		return []stopStep{{syscall.SIGINT, 60 * time.Second}, {syscall.SIGQUIT, 5 * time.Second}}
	default:
		// PgBouncer 1.18: SIGTERM is an immediate shutdown. Redis: SIGTERM
		// shuts down (nothing to save: persistence is off).
		return []stopStep{{syscall.SIGTERM, 10 * time.Second}}
	}
}

// state is what Dir/stack.json remembers between runs, so that a later Start
// or Attach finds the same ports and credentials.
type state struct {
	User          string `json:"user"`
	Password      string `json:"password"`
	Database      string `json:"database"`
	PostgresPort  int    `json:"postgres_port"`
	PgBouncerPort int    `json:"pgbouncer_port"`
	RedisPort     int    `json:"redis_port"`
	Ephemeral     bool   `json:"ephemeral"`
	Detach        bool   `json:"detach"`
	TLS           bool   `json:"tls,omitempty"`
}

func loadState(dir string) (*state, error) {
	b, err := os.ReadFile(filepath.Join(dir, "stack.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("devstack: %s: %w", filepath.Join(dir, "stack.json"), err)
	}
	return &st, nil
}

// existingState returns dir as an absolute path and the state of the stack started under it,
// failing when no stack was started there.
func existingState(dir string) (string, *state, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", nil, fmt.Errorf("devstack: %w", err)
	}
	st, err := loadState(abs)
	if err != nil {
		return "", nil, err
	}
	if st == nil {
		return "", nil, fmt.Errorf("devstack: no stack under %s", abs)
	}
	return abs, st, nil
}

func (s *Stack) saveState() error {
	st := state{
		User: s.User, Password: s.Password, Database: s.Database,
		PostgresPort: s.PostgresPort, PgBouncerPort: s.PgBouncerPort, RedisPort: s.RedisPort,
		Ephemeral: s.cfg.Ephemeral, Detach: s.cfg.Detach, TLS: s.TLS != nil,
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.Dir, "stack.json"), append(b, '\n'), 0o600)
}

func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

func newStack(cfg Config) (*Stack, error) {
	acct, err := serviceAccount()
	if err != nil {
		return nil, err
	}
	s := &Stack{
		Dir: cfg.Dir, Database: cfg.Database, User: cfg.User, Password: cfg.Password,
		PostgresPort: cfg.PostgresPort, PgBouncerPort: cfg.PgBouncerPort, RedisPort: cfg.RedisPort,
		cfg: cfg, acct: acct,
	}
	s.setURLs()
	return s, nil
}

func (s *Stack) setURLs() {
	s.DatabaseURL = s.postgresURL(s.PgBouncerPort, s.Database)
	s.DirectURL = s.postgresURL(s.PostgresPort, s.Database)
	s.PgBouncerAdminURL = s.postgresURL(s.PgBouncerPort, "pgbouncer")
	scheme := "redis"
	if s.TLS != nil {
		scheme = "rediss"
	}
	s.RedisURL = fmt.Sprintf("%s://%s/0", scheme, addr(s.RedisPort))
}

// postgresURL is the URL of database on 127.0.0.1:port as the stack's user, over TLS when the
// stack has it.
func (s *Stack) postgresURL(port int, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(s.User, s.Password),
		Host:     addr(port),
		Path:     "/" + database,
		RawQuery: s.TLS.postgresTLSQuery(),
	}
	return u.String()
}

func (s *Stack) logf(format string, args ...any) {
	fmt.Fprintf(s.cfg.Log, "devstack: "+format+"\n", args...)
}

func (s *Stack) path(elem ...string) string {
	return filepath.Join(append([]string{s.Dir}, elem...)...)
}

func (s *Stack) port(v service) *int {
	return [...]*int{&s.PostgresPort, &s.PgBouncerPort, &s.RedisPort}[v]
}

func (s *Stack) pidFile(v service) string { return s.path("run", v.String()+".pid") }
func (s *Stack) logFile(v service) string { return s.path("log", v.String()+".log") }

// runningPid returns the pid of the service running under Dir, or 0.
func runningPid(dir string, v service) int {
	if pid := readPid(filepath.Join(dir, "run", v.String()+".pid")); running(pid, v.comm()) {
		return pid
	}
	if v == postgresSvc {
		// PostgreSQL's own lock file, in case our pid file is gone.
		if pid := readPid(filepath.Join(dir, "postgres", "postmaster.pid")); running(pid, v.comm()) {
			return pid
		}
	}
	return 0
}

// lockDir takes an exclusive lock on dir/stack.lock, so that two commands
// do not start or stop the same stack at once.
func lockDir(ctx context.Context, dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, "stack.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("devstack: locking %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("devstack: waiting for another command working on %s: %w", dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Start starts PostgreSQL, PgBouncer and Redis under cfg.Dir and waits until
// each answers. Services already running under cfg.Dir (live pid file, port
// answering) are reused; the others are started. The first start initializes
// a PostgreSQL cluster whose superuser is cfg.User, with scram-sha-256
// password authentication.
//
// A port asked for explicitly that something else holds is an error
// (*PortInUseError). If ctx has no deadline, Start gives up after 2 minutes.
func Start(ctx context.Context, cfg Config) (*Stack, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	s, err := newStack(cfg)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{s.Dir, s.path("log"), s.path("run"), s.path("redis")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
	}
	if err := s.acct.ensureReachable(s.Dir); err != nil {
		return nil, err
	}
	if err := s.acct.chown(s.path("log")); err != nil {
		return nil, err
	}
	unlock, err := lockDir(ctx, s.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := loadState(s.Dir)
	if err != nil {
		return nil, err
	}
	if st != nil && (st.User != cfg.User || st.Password != cfg.Password) {
		return nil, fmt.Errorf("devstack: the stack under %s was created for PostgreSQL user %q with another password or user; use the same credentials, or stop it and remove the directory", s.Dir, st.User)
	}
	if st != nil && st.TLS != (cfg.TLS != nil) {
		// The services' configuration changes: none of them may be reused.
		for _, v := range services {
			if err := stopService(s.Dir, v); err != nil {
				return nil, err
			}
		}
	}
	if cfg.TLS != nil {
		if s.TLS, err = s.copyTLS(*cfg.TLS); err != nil {
			return nil, err
		}
		if s.redisTLS, err = s.TLS.clientTLS(); err != nil {
			return nil, err
		}
		s.setURLs()
	}
	var recorded [3]int
	if st != nil {
		recorded = [3]int{st.PostgresPort, st.PgBouncerPort, st.RedisPort}
	}
	want := [3]int{cfg.PostgresPort, cfg.PgBouncerPort, cfg.RedisPort}

	// Reuse what already runs and answers; stop what runs but does not answer.
	var reused [3]bool
	for _, v := range services {
		pid := runningPid(s.Dir, v)
		if pid == 0 {
			continue
		}
		port := recorded[v]
		if port != 0 && s.waitAnswer(ctx, v, pid, port, 10*time.Second) == nil {
			if want[v] != 0 && want[v] != port {
				return nil, fmt.Errorf("devstack: %s already runs under %s on port %d, not %d; stop the stack first", v, s.Dir, port, want[v])
			}
			*s.port(v) = port
			reused[v] = true
			s.logf("%s: reusing pid %d on %s", v, pid, addr(port))
			continue
		}
		s.logf("%s: pid %d does not answer on port %d; restarting it", v, pid, port)
		if err := stopPid(pid, v.comm(), v.stopSteps()...); err != nil {
			return nil, err
		}
	}
	// Fail fast, before initdb, when an explicitly requested port is taken.
	for _, v := range services {
		if !reused[v] && want[v] != 0 && !portFree(want[v]) {
			return nil, &PortInUseError{Service: v.String(), Port: want[v]}
		}
	}

	if !reused[postgresSvc] {
		if err := s.initdb(ctx); err != nil {
			return nil, err
		}
	}
	for _, v := range services {
		if v == pgbouncerSvc && reused[v] && s.PostgresPort != recorded[postgresSvc] {
			// PgBouncer's configuration names PostgreSQL's port.
			s.logf("pgbouncer: restarting it: postgres moved from port %d to %d", recorded[postgresSvc], s.PostgresPort)
			if err := stopService(s.Dir, v); err != nil {
				return nil, err
			}
			reused[v] = false
		}
		if !reused[v] {
			if err := s.startOnSomePort(ctx, v, want[v], recorded[v]); err != nil {
				return nil, err
			}
			// Record the port now, so that a later Start finds this service
			// even if a later step fails.
			if err := s.saveState(); err != nil {
				return nil, err
			}
		}
		s.setURLs()
		if v == postgresSvc {
			if err := s.createDatabase(ctx); err != nil {
				return nil, err
			}
		}
	}
	if err := s.checkPooled(ctx); err != nil {
		return nil, err
	}
	if err := s.saveState(); err != nil {
		return nil, err
	}
	return s, nil
}

// startOnSomePort starts service v on want, or when want is 0 on the recorded
// port if free, or on a free port; a picked port lost to another process in
// the meantime is replaced by another.
func (s *Stack) startOnSomePort(ctx context.Context, v service, want, recorded int) error {
	for attempt := 0; ; attempt++ {
		port := want
		if port == 0 {
			if attempt == 0 && recorded != 0 && portFree(recorded) {
				port = recorded
			} else {
				var err error
				if port, err = FreePort(); err != nil {
					return err
				}
			}
		}
		*s.port(v) = port
		s.setURLs()
		err := s.startService(ctx, v)
		var inUse *PortInUseError
		if errors.As(err, &inUse) && want == 0 && attempt < 5 {
			s.logf("%s: port %d was taken meanwhile; trying another", v, port)
			continue
		}
		return err
	}
}

// startService starts v on its port, records its pid and waits until it
// answers. A PostgreSQL killed moments ago may still have backends finishing
// (its lock file and shared memory still in use): that is waited out.
func (s *Stack) startService(ctx context.Context, v service) error {
	if v != postgresSvc {
		return s.startServiceOnce(ctx, v)
	}
	for {
		s.clearStaleLock()
		err := s.startServiceOnce(ctx, v)
		if err == nil || !isLeftoverPostgres(err) {
			return err
		}
		s.logf("postgres: the previous server is still exiting; retrying")
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func isLeftoverPostgres(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, `lock file "postmaster.pid" already exists`) ||
		strings.Contains(msg, "pre-existing shared memory block")
}

func (s *Stack) startServiceOnce(ctx context.Context, v service) error {
	port := *s.port(v)
	if !portFree(port) {
		return &PortInUseError{Service: v.String(), Port: port}
	}
	var spec procSpec
	var err error
	switch v {
	case postgresSvc:
		spec, err = s.postgresSpec()
	case pgbouncerSvc:
		spec, err = s.pgbouncerSpec()
	case redisSvc:
		spec, err = s.redisSpec()
	}
	if err != nil {
		return err
	}
	p, err := startProc(spec)
	if err != nil {
		return err
	}
	if err := writePid(s.pidFile(v), p.pid); err != nil {
		return err
	}
	if err := waitReady(ctx, p, v.String(), v.comm(), port, func(ctx context.Context) error {
		return s.probe(ctx, v, port)
	}); err != nil {
		stopPid(p.pid, v.comm(), v.stopSteps()...)
		return err
	}
	s.logf("%s: listening on %s (pid %d, log %s)", v, addr(port), p.pid, p.logPath)
	return nil
}

func (s *Stack) probe(ctx context.Context, v service, port int) error {
	switch v {
	case postgresSvc:
		return pingPostgres(ctx, s.postgresURL(port, "postgres"))
	case pgbouncerSvc:
		return pingPgBouncer(ctx, s.postgresURL(port, "pgbouncer"))
	default:
		return pingRedis(ctx, addr(port), s.redisTLS)
	}
}

// waitAnswer probes v (process pid) on port until it answers, the process
// is gone or the timeout passes: a server found running may still be starting.
func (s *Stack) waitAnswer(ctx context.Context, v service, pid, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.probe(pctx, v, port)
		pcancel()
		if err == nil {
			return nil
		}
		if !running(pid, v.comm()) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// waitReady polls probe until it succeeds, the process exits or ctx ends.
func waitReady(ctx context.Context, p *proc, svc, comm string, port int, probe func(context.Context) error) error {
	start := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := probe(pctx)
		cancel()
		if err == nil {
			return nil
		}
		if !running(p.pid, comm) {
			out := p.newLog()
			if strings.Contains(strings.ToLower(out), "already in use") {
				return &PortInUseError{Service: svc, Port: port}
			}
			return fmt.Errorf("devstack: %s exited while starting (log %s):\n%s", svc, p.logPath, out)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: %s did not answer on %s within %s: %v (log %s):\n%s",
				svc, addr(port), time.Since(start).Round(time.Millisecond), err, p.logPath, p.newLog())
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// stopService stops v if it runs under Dir and removes its pid file.
func stopService(dir string, v service) error {
	if pid := runningPid(dir, v); pid != 0 {
		if err := stopPid(pid, v.comm(), v.stopSteps()...); err != nil {
			return err
		}
	}
	err := os.Remove(filepath.Join(dir, "run", v.String()+".pid"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}

// Attach returns the stack running under dir, started earlier by Start
// (possibly by another process). It fails unless all three services answer.
func Attach(ctx context.Context, dir string) (*Stack, error) {
	abs, st, err := existingState(dir)
	if err != nil {
		return nil, err
	}
	s, err := newStack(Config{
		Dir: abs, Database: st.Database, User: st.User, Password: st.Password,
		PostgresPort: st.PostgresPort, PgBouncerPort: st.PgBouncerPort, RedisPort: st.RedisPort,
		Ephemeral: st.Ephemeral, Detach: st.Detach, Log: io.Discard,
	})
	if err != nil {
		return nil, err
	}
	if st.TLS {
		s.TLS = copiedTLS(abs)
		if s.redisTLS, err = s.TLS.clientTLS(); err != nil {
			return nil, err
		}
		s.setURLs()
	}
	var down []string
	for _, v := range services {
		port := *s.port(v)
		if runningPid(abs, v) == 0 {
			down = append(down, fmt.Sprintf("%s is not running", v))
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := s.probe(pctx, v, port)
		cancel()
		if err != nil {
			down = append(down, fmt.Sprintf("%s does not answer on %s: %v", v, addr(port), err))
		}
	}
	if len(down) > 0 {
		return nil, fmt.Errorf("devstack: stack under %s: %s", abs, strings.Join(down, "; "))
	}
	return s, nil
}

// Stop stops the stack: see the package function Stop.
func (s *Stack) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stop(s.Dir)
}

// Stop stops whatever runs under dir (PgBouncer, then PostgreSQL, then
// Redis), as recorded in its pid files. Data and configuration stay, so a
// later Start resumes with the same database and ports. Nothing running is
// not an error.
func Stop(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	if _, err := os.Stat(abs); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	unlock, err := lockDir(ctx, abs)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	for _, v := range []service{pgbouncerSvc, postgresSvc, redisSvc} {
		errs = append(errs, stopService(abs, v))
	}
	errs = append(errs, stopReplica(abs))
	return errors.Join(errs...)
}

// Env returns the stack's URLs as environment entries: DATABASE_URL (through
// PgBouncer), DATABASE_DIRECT_URL, REDIS_URL and PGBOUNCER_ADMIN_URL; with
// TLS also REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE.
func (s *Stack) Env() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	env := []string{
		"DATABASE_URL=" + s.DatabaseURL,
		"DATABASE_DIRECT_URL=" + s.DirectURL,
		"REDIS_URL=" + s.RedisURL,
		"PGBOUNCER_ADMIN_URL=" + s.PgBouncerAdminURL,
	}
	if s.TLS != nil {
		env = append(env,
			"REDIS_TLS_CA_FILE="+s.TLS.CAFile,
			"REDIS_TLS_CERT_FILE="+s.TLS.ClientCertFile,
			"REDIS_TLS_KEY_FILE="+s.TLS.ClientKeyFile)
	}
	return env
}

// WriteEnvFile writes Env as KEY=VALUE lines (mode 0600: the URLs hold the
// password).
func (s *Stack) WriteEnvFile(path string) error {
	return writeFileAtomic(path, []byte(strings.Join(s.Env(), "\n")+"\n"), 0o600)
}

// StopRedis stops the stack's Redis, to test how clients cope with Redis
// going away. StartRedis brings it back on the same port.
func (s *Stack) StopRedis(ctx context.Context) error {
	return s.restart(ctx, redisSvc, true, false)
}

// StartRedis starts the stack's Redis again on its port after StopRedis
// (an empty Redis: nothing is persisted). It does nothing if Redis runs.
func (s *Stack) StartRedis(ctx context.Context) error {
	return s.restart(ctx, redisSvc, false, true)
}

// RestartPgBouncer stops PgBouncer (dropping every client and server
// connection) and starts it again on the same port.
func (s *Stack) RestartPgBouncer(ctx context.Context) error {
	return s.restart(ctx, pgbouncerSvc, true, true)
}

// RestartPostgres stops PostgreSQL (fast shutdown: sessions are terminated)
// and starts it again on the same port; data is kept.
func (s *Stack) RestartPostgres(ctx context.Context) error {
	return s.restart(ctx, postgresSvc, true, true)
}

func (s *Stack) restart(ctx context.Context, v service, stop, start bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockDir(ctx, s.Dir)
	if err != nil {
		return err
	}
	defer unlock()
	if stop {
		if err := stopService(s.Dir, v); err != nil {
			return err
		}
		s.logf("%s: stopped", v)
	}
	if start && runningPid(s.Dir, v) == 0 {
		return s.startService(ctx, v)
	}
	return nil
}

// portString is strconv.Itoa, named for readability in config rendering.
func portString(port int) string { return strconv.Itoa(port) }
