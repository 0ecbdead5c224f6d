// Package devstack runs a private PostgreSQL, PgBouncer and Redis on
// 127.0.0.1, all under one state directory, for `make run` and `make bench`
// (through the ops/stack command) and for the tests (through internal/testenv).
//
// Everything comes from a Config; the package reads no environment variables.
//
// # Layout of the state directory
//
//	stack.json        ports and credentials, so a later Start or Attach finds them
//	stack.lock        flock(2) lock: one Start/Stop at a time per directory
//	postgres/         the PostgreSQL cluster (initdb on first Start)
//	pgbouncer/        pgbouncer.ini rendered from the package's template, userlist.txt
//	redis/            redis.conf
//	log/              initdb.log, postgres.log, pgbouncer.log, redis.log
//	run/              one pid file per service
//	backup/wal/       archived WAL, once EnableWALArchive has run (make backup)
//	backup/base/      base backups, one directory each, named by when they finished
//	restore/          clusters restored to a point in time (Restore, make restore)
//	tls/              with Config.TLS: copies of the certificates, and pg_hba.conf
//
// # Decisions
//
//   - The servers are found in /usr/lib/postgresql/15/bin (then other versions,
//     newest first), /usr/sbin and /usr/bin, then PATH; ops/stack/install-deps.sh
//     installs them on Debian/Ubuntu.
//   - initdb and PostgreSQL, and PgBouncer, refuse to run as root. When this
//     process is root they run as the "postgres" system user (exec with
//     SysProcAttr.Credential) and their directories are chowned to it; the
//     state directory gets o+x if it lacks it, and a parent directory that
//     user cannot enter is reported as an error. Otherwise everything runs as
//     the current user. Redis runs as the current user either way.
//   - PostgreSQL listens on 127.0.0.1 only, without a unix socket (so stacks do
//     not collide on socket or lock files), with max_connections=200 (500 when Ephemeral) and
//     wal_keep_size=256MB (a stopped replica catches up without a replication slot). initdb
//     makes cfg.User the superuser with scram-sha-256 authentication and the
//     C.UTF-8 locale where available. Config.Ephemeral turns fsync,
//     synchronous_commit and full_page_writes off and keeps dynamic shared
//     memory in the data directory (so a killed server leaves nothing in
//     /dev/shm); only the tests set it.
//   - PgBouncer (1.18) runs with the package's own pgbouncer.ini, whose settings
//     are those of the Docker configuration (ops/pgbouncer, which checks that
//     they agree) but for addresses, files and users. It runs in transaction
//     mode with a wildcard database entry,
//     so every database name, including the tests' per-test databases, routes
//     to the one PostgreSQL. Its userlist holds the password in clear (in a
//     0600 file owned by the service user): PgBouncer needs either the clear
//     password or the very SCRAM secret stored in PostgreSQL to log in to a
//     scram-sha-256 server, and the clear password is the simple choice for a
//     private development stack. cfg.User is also admin_users and stats_users,
//     so SHOW POOLS, SHOW STATS and KILL work on the "pgbouncer" admin
//     database. PgBouncer 1.18 does not support prepared statements in
//     transaction mode: pgx clients must use QueryExecModeExec (or the simple
//     protocol, which the admin console requires).
//   - Redis keeps nothing on disk (save "", appendonly no) and runs with
//     protected-mode off, bound to 127.0.0.1.
//   - Services are child processes writing to log files, not self-daemonizing
//     servers, so their pids are known exactly. With Config.Detach they run in
//     their own session and outlive the starting process (ops/stack up);
//     without it they get a parent-death signal (SIGKILL), forked from one
//     locked OS thread that never exits, so a test binary that crashes or is
//     killed on timeout leaves no servers behind.
//   - Children inherit this process's raised file descriptor limit (Go raises
//     the soft limit to the hard one; os/exec would hand children the
//     original, often 1024), so PgBouncer can hold max_client_conn=10000.
//   - Start reuses services that already run under the directory (pid file
//     alive, process name matches, port answers), restarts those that run but
//     do not answer, and starts the rest, preferring the ports used last time.
//     Pid files are checked against /proc/<pid>/stat's process name before any
//     signal, so a stale pid reused by another program is never signalled.
//   - A port asked for explicitly that is taken is a *PortInUseError naming
//     the service and port, reported before any slow step. A port picked by
//     the package that is lost to another process in the race between picking
//     and listening is replaced by another one.
//   - Config.TLS (certificates from GenerateTLS, a private CA made with
//     crypto/x509) makes every service speak TLS only and require a client
//     certificate the CA signed: PostgreSQL with ssl=on and a pg_hba.conf of
//     hostssl lines (clientcert=verify-ca, then the password), PgBouncer with
//     client_tls_sslmode=verify-ca and server_tls_sslmode=verify-full, Redis
//     on a TLS port only (port 0, tls-auth-clients yes). The URLs then say
//     sslmode=verify-full with sslrootcert, sslcert and sslkey, and rediss://;
//     Env adds REDIS_TLS_CA_FILE, REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE.
//     A Start that changes TLS on or off restarts every service.
//   - Readiness is checked with the real protocols: a PostgreSQL login, a login
//     to PgBouncer's admin console, Redis PING, and finally one query through
//     PgBouncer into the database.
//   - For several instances of the application (ops/cluster): NginxConfig
//     runs /usr/sbin/nginx as the service account with its prefix, pid file
//     and temporary files under its own directory, always with a master
//     process, so that Reload (SIGHUP) changes the upstreams without dropping
//     a connection; not detached, the master gets SIGTERM, not SIGKILL, when
//     this process dies, and stops its workers. RedisClusterConfig starts a
//     three-master Redis Cluster (ports at most 55535: bus port = port +
//     10000), detached if asked (StopRedisCluster). Spawn starts the
//     application's own servers the same way, with pid files.
//
// # A streaming replica
//
// Stack.StartReplica adds a hot-standby replica of the stack's PostgreSQL under Dir/replica
// (pg_basebackup -R as the account PostgreSQL runs as, then postgres over that copy on a free
// port, with the primary's settings), and a PgBouncer database entry per replicated database,
// named ReplicaEntry(database) ("<database>_ro"), written into a second [databases] section of
// pgbouncer.ini and loaded with RELOAD. Replica.DatabaseURL is what DATABASE_REPLICA_URL takes
// (Replica.Env); Replica.AddDatabase adds an entry for another database (the tests' own);
// Replica.Stop and Start take it down and bring it back; Stop stops it with the stack.
//
// The fault-injection methods (StopRedis, StartRedis, RestartPgBouncer,
// RestartPostgres) and StartRedisServer / StartRedisCluster (and their TLS
// variants) exist for tests.
package devstack
