package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Replica is a streaming replica of a stack's PostgreSQL (a hot standby: it answers reads),
// reached directly or through the stack's PgBouncer, where each replicated database has an entry
// of its own named ReplicaEntry(database).
//
// Start one with Stack.StartReplica. Its files live under the stack's directory:
//
//	replica/data/      the standby's data directory (pg_basebackup -R of the primary)
//	replica/pgpass     the password file its WAL receiver logs in with
//	replica/state.json its port and the databases PgBouncer has an entry for
//	log/replica.log    its server log
//	run/replica.pid
//
// The stack's Stop stops it too; a later StartReplica copies the primary afresh and starts it on
// the same port when it is free. Replica.Stop and Start stop it and start it again over its
// data, catching up with the primary (for tests of a replica going away).
type Replica struct {
	// Port is the replica's PostgreSQL port on 127.0.0.1.
	Port int
	// DirectURL reaches the stack's database on the replica directly, DatabaseURL through the
	// stack's PgBouncer (entry ReplicaEntry(Database)).
	DirectURL, DatabaseURL string

	s *Stack
}

// replicaState is what replica/state.json remembers.
type replicaState struct {
	Port      int      `json:"port"`
	Databases []string `json:"databases"`
}

// ReplicaEntry is the name of PgBouncer's entry for database on the replica: database + "_ro".
// Keep database names to 60 bytes so that it fits PostgreSQL's and PgBouncer's 63.
func ReplicaEntry(database string) string { return database + "_ro" }

func replicaDir(dir string, elem ...string) string {
	return filepath.Join(append([]string{dir, "replica"}, elem...)...)
}

func loadReplicaState(dir string) (replicaState, error) {
	var st replicaState
	b, err := os.ReadFile(replicaDir(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("devstack: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("devstack: %s: %w", replicaDir(dir, "state.json"), err)
	}
	return st, nil
}

func saveReplicaState(dir string, st replicaState) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(replicaDir(dir, "state.json"), append(b, '\n'), 0o644)
}

// replicaDatabases is the part of pgbouncer.ini that routes the replica's entries: a second
// [databases] section (PgBouncer reads sections in order, as if they were one), or nothing when
// the stack has no replica. Entries with a name take precedence over the wildcard.
func replicaDatabases(dir string) string {
	st, err := loadReplicaState(dir)
	if err != nil || st.Port == 0 || len(st.Databases) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\n;; The streaming replica (replica.go): one entry per database, <database>_ro.\n[databases]\n")
	for _, d := range st.Databases {
		fmt.Fprintf(&b, "%s = host=127.0.0.1 port=%d dbname=%s\n", ReplicaEntry(d), st.Port, d)
	}
	return b.String()
}

// StartReplica starts a streaming replica of the stack's PostgreSQL, or returns the one
// already running under the stack's directory, and gives the stack's database an entry on
// PgBouncer (ReplicaEntry). A start copies the primary with pg_basebackup -R (as the account
// PostgreSQL runs as), which writes standby.signal; the replica then follows the
// primary's WAL over a replication connection and answers read-only queries (hot standby) once
// consistent, which StartReplica waits for.
//
// The replica runs with the primary's settings (Config.Ephemeral included) and outlives this
// process only with Config.Detach, as the other services do. make run-cluster and the tests
// (internal/testenv) call it; DATABASE_REPLICA_URL is Replica.DatabaseURL.
func (s *Stack) StartReplica(ctx context.Context) (*Replica, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := lockDir(ctx, s.Dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	st, err := loadReplicaState(s.Dir)
	if err != nil {
		return nil, err
	}
	if err := s.acct.mkdirOwned(replicaDir(s.Dir), 0o700); err != nil {
		return nil, err
	}
	pid := readPid(s.path("run", "replica.pid"))
	switch {
	case st.Port != 0 && running(pid, "postgres") && s.waitReplica(ctx, pid, st.Port, 10*time.Second) == nil:
		s.logf("replica: reusing pid %d on %s", pid, addr(st.Port))
	default:
		if running(pid, "postgres") {
			if err := stopPid(pid, "postgres", postgresSvc.stopSteps()...); err != nil {
				return nil, err
			}
		}
		// A fresh copy: the primary keeps no WAL for a replica that is gone (no replication
		// slot, so that a replica nobody starts again cannot fill the disk), and an old copy
		// may need WAL the primary has recycled since.
		if err := os.RemoveAll(replicaDir(s.Dir, "data")); err != nil {
			return nil, fmt.Errorf("devstack: %w", err)
		}
		if err := s.basebackup(ctx); err != nil {
			return nil, err
		}
		if st.Port, err = s.startReplicaProc(ctx, st.Port); err != nil {
			return nil, err
		}
	}
	if !slices.Contains(st.Databases, s.Database) {
		st.Databases = append(st.Databases, s.Database)
	}
	if err := saveReplicaState(s.Dir, st); err != nil {
		return nil, err
	}
	if err := s.reloadPgBouncer(ctx); err != nil {
		return nil, err
	}
	return &Replica{
		Port:        st.Port,
		DirectURL:   s.postgresURL(st.Port, s.Database),
		DatabaseURL: s.postgresURL(s.PgBouncerPort, ReplicaEntry(s.Database)),
		s:           s,
	}, nil
}

// basebackup copies the primary into replica/data, which must not exist.
func (s *Stack) basebackup(ctx context.Context) error {
	data := replicaDir(s.Dir, "data")
	bin, err := lookPostgres("pg_basebackup")
	if err != nil {
		return err
	}
	pgpass := replicaDir(s.Dir, "pgpass")
	// host:port:database:user:password, with ':' and '\' escaped.
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`)
	line := fmt.Sprintf("127.0.0.1:%d:*:%s:%s\n", s.PostgresPort, esc.Replace(s.User), esc.Replace(s.Password))
	if err := s.acct.writeOwned(pgpass, []byte(line)); err != nil {
		return err
	}
	args := []string{
		"--dbname=" + s.primaryConninfo(),
		"--pgdata=" + data,
		"--write-recovery-conf", // standby.signal and primary_conninfo
		"--wal-method=stream",
		"--checkpoint=fast",
	}
	if s.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	s.logf("replica: copying the primary into %s", data)
	if err := ctx.Err(); err != nil {
		return err
	}
	return runProc(procSpec{
		service: "replica", path: bin, args: args, dir: replicaDir(s.Dir),
		logPath: s.path("log", "replica-basebackup.log"), cred: s.acct.cred,
	})
}

// primaryConninfo is how the replica reaches the primary: the password comes from
// replica/pgpass, so it is in no command line.
func (s *Stack) primaryConninfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s passfile=%s sslmode=disable application_name=replica",
		s.PostgresPort, s.User, replicaDir(s.Dir, "pgpass"))
}

// startReplicaProc starts the replica's postgres on port (when free; another free port
// otherwise) and waits until it answers queries. primary_conninfo is given on the command line,
// so a primary that moved to another port is followed.
func (s *Stack) startReplicaProc(ctx context.Context, port int) (int, error) {
	for attempt := 0; ; attempt++ {
		if port == 0 || !portFree(port) || attempt > 0 {
			var err error
			if port, err = FreePort(); err != nil {
				return 0, err
			}
		}
		spec, err := s.postgresSpecFor(replicaDir(s.Dir, "data"), port, s.path("log", "replica.log"))
		if err != nil {
			return 0, err
		}
		spec.service = "replica"
		spec.args = append(spec.args,
			"-c", "primary_conninfo="+s.primaryConninfo(),
			"-c", "hot_standby=on",
			// Reads on the replica do not hold back the primary's vacuum, and are not
			// cancelled for the rows it removes (the replica reports what it still reads).
			"-c", "hot_standby_feedback=on",
		)
		s.clearStaleReplicaLock()
		p, err := startProc(spec)
		if err != nil {
			return 0, err
		}
		if err := writePid(s.path("run", "replica.pid"), p.pid); err != nil {
			return 0, err
		}
		err = waitReady(ctx, p, "replica", "postgres", port, func(ctx context.Context) error {
			return pingPostgres(ctx, s.postgresURL(port, "postgres"))
		})
		if err == nil {
			s.logf("replica: listening on %s (pid %d, log %s)", addr(port), p.pid, p.logPath)
			return port, nil
		}
		stopPid(p.pid, "postgres", postgresSvc.stopSteps()...)
		var inUse *PortInUseError
		if errors.As(err, &inUse) && attempt < 5 {
			continue
		}
		return 0, err
	}
}

func (s *Stack) clearStaleReplicaLock() {
	lock := replicaDir(s.Dir, "data", "postmaster.pid")
	if pid := readPid(lock); pid > 0 && (isZombie(pid) || !running(pid, "postgres")) {
		os.Remove(lock)
	}
}

func (s *Stack) waitReplica(ctx context.Context, pid, port int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := pingPostgres(ctx, s.postgresURL(port, "postgres"))
		if err == nil || !running(pid, "postgres") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// reloadPgBouncer renders pgbouncer.ini again (with the replica's entries) and has PgBouncer
// read it (RELOAD on its admin console): new entries take effect at once, connections stay.
func (s *Stack) reloadPgBouncer(ctx context.Context) error {
	if _, err := s.pgbouncerSpec(); err != nil {
		return err
	}
	cfg, err := pgx.ParseConfig(s.PgBouncerAdminURL)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("devstack: pgbouncer admin console: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "RELOAD"); err != nil {
		return fmt.Errorf("devstack: pgbouncer: RELOAD: %w", err)
	}
	return nil
}

// AddDatabase gives database (which must exist on the primary) an entry on PgBouncer,
// ReplicaEntry(database), waits until the replica has replayed its creation, and returns the
// URL that reaches it through PgBouncer. The tests' per-test databases use it.
func (r *Replica) AddDatabase(ctx context.Context, database string) (string, error) {
	s := r.s
	s.mu.Lock()
	err := func() error {
		unlock, err := lockDir(ctx, s.Dir)
		if err != nil {
			return err
		}
		defer unlock()
		st, err := loadReplicaState(s.Dir)
		if err != nil {
			return err
		}
		if !slices.Contains(st.Databases, database) {
			st.Databases = append(st.Databases, database)
			if err := saveReplicaState(s.Dir, st); err != nil {
				return err
			}
		}
		return s.reloadPgBouncer(ctx)
	}()
	s.mu.Unlock()
	if err != nil {
		return "", err
	}
	for {
		err := pingPostgres(ctx, r.URL(database))
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("devstack: replica: database %s did not appear: %w", database, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
	return s.postgresURL(s.PgBouncerPort, ReplicaEntry(database)), nil
}

// URL reaches database on the replica directly (for pg_wal_replay_pause and the like).
func (r *Replica) URL(database string) string {
	return r.s.postgresURL(r.Port, database)
}

// Stop stops the replica (fast shutdown). Its data stays: Start resumes it, and it catches up
// with the primary from where it stopped.
func (r *Replica) Stop() error {
	r.s.mu.Lock()
	defer r.s.mu.Unlock()
	return stopReplica(r.s.Dir)
}

// Start starts the replica again after Stop, on its port, and waits until it answers.
func (r *Replica) Start(ctx context.Context) error {
	s := r.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if running(readPid(s.path("run", "replica.pid")), "postgres") {
		return nil
	}
	if !portFree(r.Port) {
		return &PortInUseError{Service: "replica", Port: r.Port}
	}
	_, err := s.startReplicaProc(ctx, r.Port)
	return err
}

// ReplayLSN returns how far the replica has replayed the primary's WAL, as PostgreSQL prints an
// LSN, asked directly.
func (r *Replica) ReplayLSN(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, r.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var lsn string
	err = conn.QueryRow(ctx, "SELECT pg_last_wal_replay_lsn()::text").Scan(&lsn)
	return lsn, err
}

// Env returns DATABASE_REPLICA_URL=DatabaseURL, to add to Stack.Env.
func (r *Replica) Env() []string { return []string{"DATABASE_REPLICA_URL=" + r.DatabaseURL} }

// stopReplica stops the replica running under dir, if any, and removes its pid file.
func stopReplica(dir string) error {
	pidFile := filepath.Join(dir, "run", "replica.pid")
	if pid := readPid(pidFile); running(pid, "postgres") {
		if err := stopPid(pid, "postgres", postgresSvc.stopSteps()...); err != nil {
			return err
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("devstack: %w", err)
	}
	return nil
}
