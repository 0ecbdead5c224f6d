package devstack

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"text/template"

	"github.com/jackc/pgx/v5"
)

// pgbouncerTemplate is pgbouncer.ini, the template of the stack's PgBouncer configuration: a
// text/template over pgbouncerVars.
//
//go:embed pgbouncer.ini
var pgbouncerTemplate string

var pgbouncerINI = template.Must(template.New("pgbouncer.ini").Parse(pgbouncerTemplate))

// pgbouncerVars are what differs from one stack to another.
type pgbouncerVars struct {
	ListenPort, PostgresPort int
	AuthFile, User           string
}

// PgBouncerConfig renders pgbouncer.ini for a PgBouncer on 127.0.0.1:listenPort in front of
// the PostgreSQL on 127.0.0.1:postgresPort, with authFile as its userlist and user as its admin.
func PgBouncerConfig(listenPort, postgresPort int, authFile, user string) (string, error) {
	var b strings.Builder
	err := pgbouncerINI.Execute(&b, pgbouncerVars{ListenPort: listenPort, PostgresPort: postgresPort, AuthFile: authFile, User: user})
	if err != nil {
		return "", fmt.Errorf("devstack: %w", err)
	}
	return b.String(), nil
}

// pgbouncerSpec renders pgbouncer.ini and the userlist into Dir/pgbouncer (readable only by the
// service account: the userlist holds the password in clear, which PgBouncer needs to log in to
// PostgreSQL with SCRAM).
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
	ini, err := PgBouncerConfig(s.PgBouncerPort, s.PostgresPort, userlist, s.User)
	if err != nil {
		return procSpec{}, err
	}
	if s.TLS != nil {
		ini += pgbouncerTLS(s.TLS)
	}
	ini += replicaDatabases(s.Dir) // the replica's entries, if it has any (replica.go)
	iniPath := s.path("pgbouncer", "pgbouncer.ini")
	if err := s.acct.writeOwned(iniPath, []byte(ini)); err != nil {
		return procSpec{}, err
	}
	return procSpec{
		service: "pgbouncer", path: bin, args: []string{iniPath}, dir: dir,
		logPath: s.logFile(pgbouncerSvc), cred: s.acct.cred, detach: s.cfg.Detach,
	}, nil
}

// pgbouncerTLS is the TLS section added at the end of pgbouncer.ini (its [pgbouncer] section)
// for a stack with TLS: clients must speak TLS and present a certificate the stack's CA signed
// (PgBouncer's verify-ca and verify-full are the same for clients); PgBouncer speaks TLS to
// PostgreSQL, verifies its certificate and name, and presents the client certificate.
func pgbouncerTLS(t *TLS) string {
	return fmt.Sprintf(`
;; TLS on both sides (devstack.Config.TLS).
client_tls_sslmode = verify-ca
client_tls_ca_file = %s
client_tls_cert_file = %s
client_tls_key_file = %s
server_tls_sslmode = verify-full
server_tls_ca_file = %s
server_tls_cert_file = %s
server_tls_key_file = %s
`, t.CAFile, t.CertFile, t.KeyFile, t.CAFile, t.ClientCertFile, t.ClientKeyFile)
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
