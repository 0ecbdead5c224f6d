// Command stack starts and stops Threadline's private development stack:
// PostgreSQL, PgBouncer and Redis on 127.0.0.1, all under one directory
// (default .data), by way of internal/devstack.
//
//	go run ./ops/stack up   [-dir .data] [-pg-port 55432] [-pgbouncer-port 56432] [-redis-port 56379]
//	go run ./ops/stack down [-dir .data]
//	go run ./ops/stack env  [-dir .data]
//	go run ./ops/stack backup  [-dir .data]
//	go run ./ops/stack restore [-dir .data] -target-time 2026-12-01T18:45:00Z [-restore-dir DIR] [-restore-port N]
//
// up starts the stack, or reuses what already runs under the directory,
// prints where each service listens and writes <dir>/stack.env with
// DATABASE_URL (through PgBouncer), DATABASE_DIRECT_URL, REDIS_URL and
// PGBOUNCER_ADMIN_URL as KEY=VALUE lines. The services outlive the command;
// down stops them (data stays for the next up). env prints the running
// stack's KEY=VALUE lines.
//
// backup turns on WAL archiving into <dir>/backup/wal (once: PostgreSQL restarts) and takes a
// base backup with pg_basebackup into <dir>/backup/base. restore restores the backups into a
// new data directory (default <dir>/restore/<target>) as PostgreSQL was at the target time (RFC
// 3339), starts it on a free port and prints its URL; the stack keeps running beside it. See
// internal/devstack's Restore.
//
// The ports default to 55432, 56432 and 56379, away from the system services'
// 5432, 6432 and 6379; the environment variables STACK_PG_PORT,
// STACK_PGBOUNCER_PORT and STACK_REDIS_PORT change the defaults and the flags
// override both. Port 0 picks a free port (remembered for the next up).
//
// The servers must be installed: ops/stack/install-deps.sh installs whatever
// is missing on Debian/Ubuntu.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/threadline/threadline/internal/command"
	"github.com/threadline/threadline/internal/devstack"
)

func main() {
	os.Exit(command.Main("stack", run))
}

const usage = `usage: go run ./ops/stack up|down|env|backup|restore [flags]

  up    start (or reuse) PostgreSQL, PgBouncer and Redis under -dir; write <dir>/stack.env
  down  stop them
  env   print the running stack's DATABASE_URL, DATABASE_DIRECT_URL, REDIS_URL, PGBOUNCER_ADMIN_URL
  backup   turn on WAL archiving (once) and take a base backup, under <dir>/backup
  restore  restore to -target-time into a new data directory and start it on a free port

flags:
`

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := command.NewFlagSet("stack", usage, stderr)
	dir := fs.String("dir", ".data", "state `directory` (data, configuration, logs)")
	var ports [3]int
	for i, p := range []struct{ flag, env string }{
		{"pg-port", "STACK_PG_PORT"},
		{"pgbouncer-port", "STACK_PGBOUNCER_PORT"},
		{"redis-port", "STACK_REDIS_PORT"},
	} {
		def := [...]int{55432, 56432, 56379}[i]
		if v := getenv(p.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 65535 {
				return fmt.Errorf("%s=%q is not a port", p.env, v)
			}
			def = n
		}
		fs.IntVar(&ports[i], p.flag, def, fmt.Sprintf("port on 127.0.0.1, 0 = any free port (env %s)", p.env))
	}
	targetTime := fs.String("target-time", "", "restore: the point in `time` to restore to, RFC 3339 (2026-12-01T18:45:00Z, or with a space for the T)")
	restoreDir := fs.String("restore-dir", "", "restore: the new data `directory` (default <dir>/restore/<target time>)")
	restorePort := fs.Int("restore-port", 0, "restore: `port` of the restored PostgreSQL on 127.0.0.1, 0 = any free port")
	cmd, err := command.Subcommand(fs, args, "up", "down", "env", "backup", "restore")
	if err != nil {
		return err
	}

	switch cmd {
	case "up":
		s, err := devstack.Start(ctx, devstack.Config{
			Dir:          *dir,
			PostgresPort: ports[0], PgBouncerPort: ports[1], RedisPort: ports[2],
			Detach: true,
			Log:    stderr,
		})
		if err != nil {
			return err
		}
		envFile := filepath.Join(s.Dir, "stack.env")
		if err := s.WriteEnvFile(envFile); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "PostgreSQL  127.0.0.1:%d   DATABASE_DIRECT_URL=%s\n", s.PostgresPort, s.DirectURL)
		fmt.Fprintf(stdout, "PgBouncer   127.0.0.1:%d   DATABASE_URL=%s\n", s.PgBouncerPort, s.DatabaseURL)
		fmt.Fprintf(stdout, "            admin console    PGBOUNCER_ADMIN_URL=%s\n", s.PgBouncerAdminURL)
		fmt.Fprintf(stdout, "Redis       127.0.0.1:%d   REDIS_URL=%s\n", s.RedisPort, s.RedisURL)
		fmt.Fprintf(stdout, "wrote %s; logs in %s; stop with: go run ./ops/stack down -dir %s\n",
			envFile, filepath.Join(s.Dir, "log"), *dir)
		return nil
	case "down":
		if err := devstack.Stop(*dir); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "stopped the stack under %s\n", *dir)
		return nil
	case "env":
		s, err := devstack.Attach(ctx, *dir)
		if err != nil {
			return fmt.Errorf("%w (start it with: go run ./ops/stack up -dir %s)", err, *dir)
		}
		for _, kv := range s.Env() {
			fmt.Fprintln(stdout, kv)
		}
		return nil
	case "backup":
		s, err := devstack.Attach(ctx, *dir)
		if err != nil {
			return fmt.Errorf("%w (start it with: go run ./ops/stack up -dir %s, or make run)", err, *dir)
		}
		restarted, err := s.EnableWALArchive(ctx)
		if err != nil {
			return err
		}
		if restarted {
			fmt.Fprintf(stdout, "WAL archiving on (PostgreSQL restarted once), into %s\n", s.WALArchiveDir())
		}
		backup, finished, err := s.BaseBackup(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "base backup %s, restorable to any time after %s\n", backup, finished.Format(time.RFC3339Nano))
		return nil
	case "restore":
		if *targetTime == "" {
			return errors.New("restore: -target-time is required (make restore TARGET_TIME=2026-12-01T18:45:00Z)")
		}
		target, err := time.Parse(time.RFC3339Nano, strings.Replace(strings.TrimSpace(*targetTime), " ", "T", 1))
		if err != nil {
			return fmt.Errorf("restore: -target-time %q: want RFC 3339 with a zone, like 2026-12-01T18:45:00Z: %w", *targetTime, err)
		}
		// What was committed up to now reaches the archive first, when the stack runs: a
		// target later than the archive's last commit cannot be reached.
		if s, err := devstack.Attach(ctx, *dir); err == nil {
			if err := s.ArchiveCurrentWAL(ctx); err != nil {
				return err
			}
		}
		r, err := devstack.Restore(ctx, devstack.RestoreConfig{
			StackDir: *dir, TargetTime: target, DataDir: *restoreDir, Port: *restorePort,
			Detach: true, Log: stderr,
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "restored %s (from %s) to %s\n", r.DataDir, r.BaseBackup, target.UTC().Format(time.RFC3339Nano))
		fmt.Fprintf(stdout, "DATABASE_DIRECT_URL=%s\n", r.URL)
		fmt.Fprintf(stdout, "log %s; stop it with: kill -INT $(head -1 %s)\n", r.LogPath, filepath.Join(r.DataDir, "postmaster.pid"))
	}
	return nil
}
