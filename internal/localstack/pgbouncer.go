package localstack

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/threadline/threadline/ops/pgbouncer"
)

// pgbouncerSpec renders ops/pgbouncer/pgbouncer.ini and the userlist into
// Dir/pgbouncer (readable only by the service account: the userlist holds the
// password in clear, which PgBouncer needs to log in to PostgreSQL with SCRAM).
func (s *Stack) pgbouncerSpec() (procSpec, error) {
	bin, err := lookPgBouncer()
	if err != nil {
		return procSpec{}, err
	}
	dir := s.path("pgbouncer")
	if err := s.acct.mkdirOwned(dir, 0o700); err != nil {
		return procSpec{}, err
	}
	userlist := s.path("pgbouncer", "userlist.txt")
	if err := s.acct.writeOwned(userlist, []byte(bouncerQuote(s.User)+" "+bouncerQuote(s.Password)+"\n")); err != nil {
		return procSpec{}, err
	}
	ini, err := pgbouncer.Render(map[string]string{
		"LISTEN_ADDR": "127.0.0.1",
		"LISTEN_PORT": portString(s.PgBouncerPort),
		"PG_HOST":     "127.0.0.1",
		"PG_PORT":     portString(s.PostgresPort),
		"AUTH_FILE":   userlist,
		"ADMIN_USER":  s.User,
	})
	if err != nil {
		return procSpec{}, fmt.Errorf("localstack: %w", err)
	}
	iniPath := s.path("pgbouncer", "pgbouncer.ini")
	if err := s.acct.writeOwned(iniPath, []byte(ini)); err != nil {
		return procSpec{}, err
	}
	return procSpec{
		service: "pgbouncer", path: bin, args: []string{iniPath}, dir: dir,
		logPath: s.logFile(pgbouncerSvc), cred: s.acct.cred, detach: s.cfg.Detach,
	}, nil
}

// bouncerQuote quotes a userlist field: double quotes, inner quotes doubled.
func bouncerQuote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// pingPgBouncer logs in to PgBouncer's admin console. The console speaks only
// the simple query protocol.
func pingPgBouncer(ctx context.Context, adminURL string) error {
	cfg, err := pgx.ParseConfig(adminURL)
	if err != nil {
		return err
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeSimpleProtocol
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}
