package devstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/jackc/pgx/v5"
)

func (s *Stack) pgData() string { return s.path("postgres") }

// initdb creates the PostgreSQL cluster unless Dir already holds one.
func (s *Stack) initdb(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.pgData(), "PG_VERSION")); err == nil {
		return nil
	}
	bin, err := lookPostgres("initdb")
	if err != nil {
		return err
	}
	if err := s.acct.mkdirOwned(s.pgData(), 0o700); err != nil {
		return err
	}
	pwfile := s.path("run", "initdb-password")
	if err := s.acct.writeOwned(pwfile, []byte(s.Password+"\n")); err != nil {
		return err
	}
	defer os.Remove(pwfile)
	args := []string{
		"--pgdata=" + s.pgData(),
		"--username=" + s.User,
		"--pwfile=" + pwfile,
		"--auth=scram-sha-256",
		"--encoding=UTF8",
		"--locale=" + clusterLocale(),
	}
	if s.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	s.logf("postgres: initializing a cluster in %s (superuser %s)", s.pgData(), s.User)
	if err := ctx.Err(); err != nil {
		return err
	}
	return runProc(procSpec{
		service: "postgres", path: bin, args: args, dir: s.Dir,
		logPath: s.path("log", "initdb.log"), cred: s.acct.cred,
	})
}

// clusterLocale is C.UTF-8 where the C library has it (Debian 12, Ubuntu),
// giving byte-order collation with UTF-8 character classes; plain C elsewhere.
func clusterLocale() string {
	for _, d := range []string{"/usr/lib/locale/C.utf8", "/usr/lib/locale/C.UTF-8"} {
		if _, err := os.Stat(d); err == nil {
			return "C.UTF-8"
		}
	}
	return "C"
}

func (s *Stack) postgresSpec() (procSpec, error) {
	return s.postgresSpecFor(s.pgData(), s.PostgresPort, s.logFile(postgresSvc))
}

// postgresSpecFor is the command of a PostgreSQL server over the data directory data (the
// stack's own, or its replica's) on port, logging to logPath.
func (s *Stack) postgresSpecFor(data string, port int, logPath string) (procSpec, error) {
	bin, err := lookPostgres("postgres")
	if err != nil {
		return procSpec{}, err
	}
	args := []string{
		"-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port=" + portString(port),
		"-c", "unix_socket_directories=", // TCP only: no socket lock files to collide on
		// The WAL a stopped replica (Replica.Stop) needs to catch up after Start: with no
		// replication slot, checkpoints (every CREATE DATABASE ... FILE_COPY makes two) would
		// otherwise recycle it within seconds while other work goes on.
		"-c", "wal_keep_size=256MB",
		"-c", "max_connections=200",
	}
	if s.cfg.Ephemeral {
		// Test stacks serve many databases at once, and PgBouncer keeps min_pool_size (10)
		// server connections for each: 200 runs out when a test binary has twenty databases open.
		args[len(args)-1] = "max_connections=500"
		args = append(args,
			"-c", "fsync=off",
			"-c", "synchronous_commit=off",
			"-c", "full_page_writes=off",
			// Dynamic shared memory in files under the data directory rather
			// than /dev/shm: a server killed with its test binary leaves no
			// segments behind outside the directory that gets removed.
			"-c", "dynamic_shared_memory_type=mmap",
		)
	}
	if s.TLS != nil {
		tlsArgs, err := s.postgresTLSArgs()
		if err != nil {
			return procSpec{}, err
		}
		args = append(args, tlsArgs...)
	}
	return procSpec{
		service: "postgres", path: bin, args: args, dir: s.Dir,
		logPath: logPath, cred: s.acct.cred, detach: s.cfg.Detach,
	}, nil
}

// postgresHBA admits TLS connections only, from clients whose certificate the stack's CA
// signed, with a password on top.
const postgresHBA = "hostssl all all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n"

// postgresTLSArgs turns TLS on with the stack's certificates, and writes the pg_hba.conf that
// refuses anything but TLS with a client certificate.
func (s *Stack) postgresTLSArgs() ([]string, error) {
	hba := filepath.Join(tlsDir(s.Dir), "pg_hba.conf")
	if err := s.acct.writeOwned(hba, []byte(postgresHBA)); err != nil {
		return nil, err
	}
	return []string{
		"-c", "ssl=on",
		"-c", "ssl_cert_file=" + s.TLS.CertFile,
		"-c", "ssl_key_file=" + s.TLS.KeyFile,
		"-c", "ssl_ca_file=" + s.TLS.CAFile,
		"-c", "hba_file=" + hba,
	}, nil
}

// clearStaleLock removes postmaster.pid when the pid it names is a zombie: a
// dead postmaster whose parent has not reaped it (for instance a container
// init that never reaps) would otherwise block every later start, since
// PostgreSQL takes any existing pid as a live server.
func (s *Stack) clearStaleLock() {
	lock := filepath.Join(s.pgData(), "postmaster.pid")
	if pid := readPid(lock); pid > 0 && isZombie(pid) {
		os.Remove(lock)
	}
}

func pingPostgres(ctx context.Context, url string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

// createDatabase creates the stack's database unless it exists.
func (s *Stack) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.postgresURL(s.PostgresPort, "postgres"))
	if err != nil {
		return fmt.Errorf("devstack: postgres: %w", err)
	}
	defer conn.Close(context.Background())
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", s.Database).Scan(&exists); err != nil {
		return fmt.Errorf("devstack: postgres: %w", err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{s.Database}.Sanitize()); err != nil {
		return fmt.Errorf("devstack: postgres: creating database %s: %w", s.Database, err)
	}
	s.logf("postgres: created database %s", s.Database)
	return nil
}

// checkPooled runs one query through PgBouncer into the database, so that a
// broken PgBouncer-to-PostgreSQL login shows up now rather than in the first
// request.
func (s *Stack) checkPooled(ctx context.Context) error {
	cfg, err := pgx.ParseConfig(s.DatabaseURL)
	if err != nil {
		return fmt.Errorf("devstack: %w", err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fmt.Errorf("devstack: connecting through pgbouncer: %w", err)
	}
	defer conn.Close(context.Background())
	var one int
	if err := conn.QueryRow(ctx, "SELECT $1::int", 1).Scan(&one); err != nil || one != 1 {
		return fmt.Errorf("devstack: query through pgbouncer: %w", errors.Join(err, errors.New("see "+s.logFile(pgbouncerSvc))))
	}
	return nil
}
