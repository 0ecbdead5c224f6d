package devstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Backups of the stack's PostgreSQL, for `make backup` and `make restore` (ops/stack):
// continuous WAL archiving plus base backups, restored to a point in time into a new data
// directory. Under the stack directory:
//
//	backup/wal/              archived WAL segments (archive_command copies each one here)
//	backup/base/<finished>/  base backups (pg_basebackup, plain format), named by when they
//	                         finished, UTC (20261201T184501.123456Z)
//	restore/<target>/        restored clusters, named by their target time, with <target>.log
//
// A restore is exact: PostgreSQL replays the archived WAL from the newest base backup that
// finished before the target and stops before the first transaction that committed after it
// (recovery_target_time, inclusive), so every transaction committed at or before the target is
// there and none after. A base backup is only usable for targets after it finished (before
// that its files are not consistent), which is why backups are named by their end.

// baseBackupLayout is the time format of base backup and restore directory names: sortable,
// without characters a shell or PostgreSQL's configuration would need quoted.
const baseBackupLayout = "20060102T150405.000000Z"

// WALArchiveDir is where the stack's PostgreSQL archives its WAL once EnableWALArchive has run.
func (s *Stack) WALArchiveDir() string { return s.path("backup", "wal") }

// BaseBackupsDir holds the base backups, one directory each.
func (s *Stack) BaseBackupsDir() string { return s.path("backup", "base") }

// EnableWALArchive turns on continuous archiving into WALArchiveDir (ALTER SYSTEM:
// archive_mode, archive_command), restarting PostgreSQL when archive_mode was off, which only
// a restart changes: PgBouncer's clients see their server connections drop once. It reports
// whether it restarted. The archive command never overwrites a segment already archived.
func (s *Stack) EnableWALArchive(ctx context.Context) (restarted bool, err error) {
	if err := s.acct.mkdirOwned(s.path("backup"), 0o700); err != nil {
		return false, err
	}
	if err := s.acct.mkdirOwned(s.WALArchiveDir(), 0o700); err != nil {
		return false, err
	}
	conn, err := pgx.Connect(ctx, s.postgresURL(s.PostgresPort, "postgres"))
	if err != nil {
		return false, fmt.Errorf("devstack: postgres: %w", err)
	}
	defer conn.Close(context.Background())
	archive := s.WALArchiveDir()
	if strings.ContainsAny(archive, `'"\`) {
		return false, fmt.Errorf("devstack: the WAL archive's path %q has a quote or backslash, which archive_command cannot hold", archive)
	}
	command := fmt.Sprintf(`test ! -f "%s/%%f" && cp "%%p" "%s/%%f"`, archive, archive)
	var mode string
	if err := conn.QueryRow(ctx, "SHOW archive_mode").Scan(&mode); err != nil {
		return false, fmt.Errorf("devstack: postgres: %w", err)
	}
	for _, stmt := range []string{
		"ALTER SYSTEM SET archive_mode = 'on'",
		"ALTER SYSTEM SET archive_command = " + quoteLiteral(command),
		"SELECT pg_reload_conf()",
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return false, fmt.Errorf("devstack: postgres: %s: %w", stmt, err)
		}
	}
	if mode == "on" {
		return false, nil
	}
	conn.Close(context.Background())
	s.logf("postgres: restarting to turn archive_mode on (archive: %s)", archive)
	if err := s.restart(ctx, postgresSvc, true, true); err != nil {
		return false, err
	}
	return true, nil
}

// BaseBackup takes a base backup with pg_basebackup, run as the user PostgreSQL runs as (so
// that its files are that user's, as a data directory's must be), into a new directory under
// BaseBackupsDir named by the time it finished, and returns that directory and time. It waits
// for the WAL that makes the backup consistent to be archived too: a backup whose end is not
// in the archive cannot be restored.
func (s *Stack) BaseBackup(ctx context.Context) (dir string, finished time.Time, err error) {
	bin, err := lookPostgres("pg_basebackup")
	if err != nil {
		return "", time.Time{}, err
	}
	if err := s.acct.mkdirOwned(s.BaseBackupsDir(), 0o700); err != nil {
		return "", time.Time{}, err
	}
	partial := filepath.Join(s.BaseBackupsDir(), "in-progress")
	if err := os.RemoveAll(partial); err != nil {
		return "", time.Time{}, fmt.Errorf("devstack: %w", err)
	}
	args := []string{
		"--pgdata=" + partial, "--format=plain", "--wal-method=stream", "--checkpoint=fast",
		"--label=devstack", "--dbname=" + s.postgresURL(s.PostgresPort, "postgres"),
	}
	if s.cfg.Ephemeral {
		args = append(args, "--no-sync")
	}
	s.logf("postgres: pg_basebackup into %s", s.BaseBackupsDir())
	if err := ctx.Err(); err != nil {
		return "", time.Time{}, err
	}
	if err := runProc(procSpec{
		service: "pg_basebackup", path: bin, args: args, dir: s.Dir,
		logPath: s.path("log", "pg_basebackup.log"), cred: s.acct.cred,
	}); err != nil {
		return "", time.Time{}, err
	}
	// pg_basebackup has asked for the segment holding the backup's end to be archived; wait
	// until it is, so that the backup is restorable when this returns.
	if err := s.ArchiveCurrentWAL(ctx); err != nil {
		return "", time.Time{}, err
	}
	finished = time.Now().UTC()
	dir = filepath.Join(s.BaseBackupsDir(), finished.Format(baseBackupLayout))
	if err := os.Rename(partial, dir); err != nil {
		return "", time.Time{}, fmt.Errorf("devstack: %w", err)
	}
	s.logf("postgres: base backup %s", dir)
	return dir, finished, nil
}

// ArchiveCurrentWAL makes everything committed so far restorable: it commits a transaction of
// its own (so that the WAL holds a commit timestamp later than every earlier one, which a
// restore to any earlier time stops at), switches to a new WAL segment and waits until the
// finished one is archived.
func (s *Stack) ArchiveCurrentWAL(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, s.postgresURL(s.PostgresPort, "postgres"))
	if err != nil {
		return fmt.Errorf("devstack: postgres: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		return fmt.Errorf("devstack: postgres: %w", err)
	}
	var segment string
	if err := conn.QueryRow(ctx, "SELECT pg_walfile_name(pg_switch_wal() - 1::numeric)").Scan(&segment); err != nil {
		return fmt.Errorf("devstack: postgres: switching WAL: %w", err)
	}
	for {
		var archived, failed string
		var mode string
		err := conn.QueryRow(ctx, `SELECT coalesce(last_archived_wal, ''), coalesce(last_failed_wal, ''),
			current_setting('archive_mode') FROM pg_stat_archiver`).Scan(&archived, &failed, &mode)
		if err != nil {
			return fmt.Errorf("devstack: postgres: %w", err)
		}
		if mode != "on" {
			return errors.New("devstack: WAL archiving is off: take a backup first (make backup)")
		}
		// Segment names of one timeline sort in WAL order.
		if len(archived) == len(segment) && archived >= segment {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("devstack: WAL segment %s not archived (last archived %q, last failed %q; see %s): %w",
				segment, archived, failed, s.logFile(postgresSvc), ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// RestoreConfig says what to restore and where.
type RestoreConfig struct {
	// StackDir is the stack whose backups are restored (its backup/ directory). The stack need
	// not run.
	StackDir string
	// TargetTime is the point in time: the restored cluster has every transaction committed at
	// or before it, and none after.
	TargetTime time.Time
	// DataDir is the new data directory, which must not exist. Default:
	// StackDir/restore/<target time>.
	DataDir string
	// Port on 127.0.0.1; 0 picks a free one.
	Port int
	// Detach lets the restored PostgreSQL outlive this process (make restore); otherwise it is
	// killed when this process dies.
	Detach bool
	// Log receives one line per step (nil: discarded).
	Log io.Writer
}

// Restored is a PostgreSQL started from a backup, at its target time, promoted: it accepts
// writes on a timeline of its own, and archives nothing (its WAL is not the stack's history).
type Restored struct {
	DataDir, LogPath string
	Port             int
	// URL reaches the stack's database on the restored server, with the stack's credentials.
	URL        string
	BaseBackup string // the base backup it was restored from
}

// Restore restores the stack's PostgreSQL into a new data directory as it was at
// cfg.TargetTime: it copies the newest base backup that finished before that time, has
// PostgreSQL replay the archived WAL up to it (restore_command, recovery_target_time), and
// starts it on cfg.Port. It returns once the server has reached the target and been promoted.
// Run ArchiveCurrentWAL on the stack first when the target is recent: a target past the end
// of the archive fails ("recovery ended before configured recovery target was reached").
func Restore(ctx context.Context, cfg RestoreConfig) (*Restored, error) {
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Log, "devstack: "+format+"\n", args...) }
	stackDir, st, err := existingState(cfg.StackDir)
	if err != nil {
		return nil, err
	}
	if cfg.TargetTime.IsZero() {
		return nil, errors.New("devstack: restore: no target time")
	}
	target := cfg.TargetTime.UTC()
	if target.After(time.Now()) {
		return nil, fmt.Errorf("devstack: restore: the target time %s is in the future", target.Format(time.RFC3339Nano))
	}
	acct, err := serviceAccount()
	if err != nil {
		return nil, err
	}

	// The newest base backup that finished before the target.
	baseDir := filepath.Join(stackDir, "backup", "base")
	entries, err := os.ReadDir(baseDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	var names []string
	for _, e := range entries {
		if t, err := time.Parse(baseBackupLayout, e.Name()); err == nil && e.IsDir() && t.Before(target) {
			names = append(names, e.Name())
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("devstack: restore: no base backup under %s finished before %s (take one with make backup; a backup restores only to times after it finished)", baseDir, target.Format(time.RFC3339Nano))
	}
	base := filepath.Join(baseDir, slices.Max(names))

	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(stackDir, "restore", target.Format(baseBackupLayout))
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	if _, err := os.Stat(dataDir); err == nil {
		return nil, fmt.Errorf("devstack: restore: %s exists: restore into a new directory", dataDir)
	}
	if err := acct.mkdirOwned(filepath.Dir(dataDir), 0o700); err != nil {
		return nil, err
	}
	if err := acct.ensureReachable(filepath.Dir(dataDir)); err != nil {
		return nil, err
	}
	logPath := dataDir + ".log"
	logf("restore: copying base backup %s to %s", base, dataDir)
	if err := runProc(procSpec{
		service: "restore", path: "/bin/cp", args: []string{"-a", base, dataDir},
		dir: filepath.Dir(dataDir), logPath: logPath, cred: acct.cred,
	}); err != nil {
		return nil, err
	}

	archive := filepath.Join(stackDir, "backup", "wal")
	if strings.ContainsAny(archive, `'"\`) {
		return nil, fmt.Errorf("devstack: the WAL archive's path %q has a quote or backslash, which restore_command cannot hold", archive)
	}
	// Appended to postgresql.auto.conf (later lines win): the recovery target, and no
	// archiving, so that the restored server, once promoted, never writes into the stack's
	// archive. recovery.signal makes PostgreSQL start in targeted recovery.
	settings := strings.Join([]string{
		"",
		"# Written by devstack's Restore.",
		"restore_command = " + quoteLiteral(fmt.Sprintf(`cp "%s/%%f" "%%p"`, archive)),
		"recovery_target_time = " + quoteLiteral(target.Format("2006-01-02 15:04:05.999999")+"+00"),
		"recovery_target_inclusive = on",
		"recovery_target_action = 'promote'",
		"archive_mode = 'off'",
		"",
	}, "\n")
	auto := filepath.Join(dataDir, "postgresql.auto.conf")
	old, err := os.ReadFile(auto)
	if err != nil {
		return nil, fmt.Errorf("devstack: %w", err)
	}
	if err := acct.writeOwned(auto, append(old, settings...)); err != nil {
		return nil, err
	}
	if err := acct.writeOwned(filepath.Join(dataDir, "recovery.signal"), nil); err != nil {
		return nil, err
	}

	port := cfg.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	if !portFree(port) {
		return nil, &PortInUseError{Service: "postgres (restored)", Port: port}
	}
	bin, err := lookPostgres("postgres")
	if err != nil {
		return nil, err
	}
	p, err := startProc(procSpec{
		service: "postgres (restored)", path: bin, dir: filepath.Dir(dataDir), logPath: logPath,
		cred: acct.cred, detach: cfg.Detach,
		args: []string{
			"-D", dataDir,
			"-c", "listen_addresses=127.0.0.1",
			"-c", "port=" + portString(port),
			"-c", "unix_socket_directories=",
			// Recovery refuses to run with fewer connections than the server whose WAL it
			// replays had: the most a stack runs with (an Ephemeral one's).
			"-c", "max_connections=500",
		},
	})
	if err != nil {
		return nil, err
	}
	logf("restore: replaying the archived WAL up to %s (pid %d, log %s)", target.Format(time.RFC3339Nano), p.pid, logPath)
	r := &Restored{
		DataDir: dataDir, LogPath: logPath, Port: port, BaseBackup: base,
		URL: plainPostgresURL(st.User, st.Password, port, st.Database),
	}
	// Ready when it accepts connections and is out of recovery (promoted at the target).
	err = waitReady(ctx, p, "postgres (restored)", "postgres", port, func(ctx context.Context) error {
		conn, err := pgx.Connect(ctx, plainPostgresURL(st.User, st.Password, port, "postgres"))
		if err != nil {
			return err
		}
		defer conn.Close(context.Background())
		var recovering bool
		if err := conn.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovering); err != nil {
			return err
		}
		if recovering {
			return errors.New("still in recovery")
		}
		return nil
	})
	if err != nil {
		stopPid(p.pid, "postgres", postgresSvc.stopSteps()...)
		return nil, err
	}
	logf("restore: PostgreSQL restored to %s listening on %s", target.Format(time.RFC3339Nano), addr(port))
	return r, nil
}

// StopRestored stops the PostgreSQL running on the restored data directory dataDir (its
// postmaster.pid names it). Nothing running is not an error; the directory stays.
func StopRestored(dataDir string) error {
	pid := readPid(filepath.Join(dataDir, "postmaster.pid"))
	if pid == 0 {
		return nil
	}
	return stopPid(pid, "postgres", postgresSvc.stopSteps()...)
}

// quoteLiteral quotes s as a PostgreSQL string literal.
func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// plainPostgresURL is the URL of database on 127.0.0.1:port as user, without TLS: a restored
// cluster is a copy of a plain stack's (restore does not start TLS).
func plainPostgresURL(user, password string, port int, database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(user, password),
		Host:     addr(port),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}
