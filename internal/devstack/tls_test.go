package devstack

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestGenerateTLS: the server certificate verifies for 127.0.0.1 and localhost, the client
// certificate as a client, both under the CA of their call only.
func TestGenerateTLS(t *testing.T) {
	certs, err := GenerateTLS(t.TempDir(), "threadline")
	if err != nil {
		t.Fatal(err)
	}
	other, err := GenerateTLS(t.TempDir(), "threadline")
	if err != nil {
		t.Fatal(err)
	}
	pool := func(caFile string) *x509.CertPool {
		p := x509.NewCertPool()
		b, err := os.ReadFile(caFile)
		if err != nil || !p.AppendCertsFromPEM(b) {
			t.Fatalf("CA %s: %v", caFile, err)
		}
		return p
	}
	leaf := func(certFile, keyFile string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	server, client := leaf(certs.CertFile, certs.KeyFile), leaf(certs.ClientCertFile, certs.ClientKeyFile)
	for _, name := range []string{"127.0.0.1", "localhost", "::1"} {
		if _, err := server.Verify(x509.VerifyOptions{Roots: pool(certs.CAFile), DNSName: name}); err != nil {
			t.Errorf("server certificate for %s: %v", name, err)
		}
	}
	if _, err := client.Verify(x509.VerifyOptions{Roots: pool(certs.CAFile), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate: %v", err)
	}
	var unknown x509.UnknownAuthorityError
	if _, err := server.Verify(x509.VerifyOptions{Roots: pool(other.CAFile), DNSName: "127.0.0.1"}); !errors.As(err, &unknown) {
		t.Errorf("server certificate under another CA: %v, want an unknown authority", err)
	}
	for _, key := range []string{certs.KeyFile, certs.ClientKeyFile} {
		if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", key, fi.Mode(), err)
		}
	}
}

// TestStackTLS starts a stack whose services speak TLS only: its URLs (verify-full, rediss://)
// reach every service, and plain connections, or TLS without the client certificate, are refused.
func TestStackTLS(t *testing.T) {
	needServers(t)
	ctx := testContext(t)
	certs, err := GenerateTLS(t.TempDir(), "threadline")
	if err != nil {
		t.Fatal(err)
	}
	dir := stackDir(t)
	s, err := Start(ctx, Config{Dir: dir, Ephemeral: true, TLS: &certs, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.RedisURL, "rediss://") || !strings.Contains(s.DatabaseURL, "sslmode=verify-full") {
		t.Fatalf("URLs: %v", s.Env())
	}
	env := s.Env()
	for _, want := range []string{"REDIS_TLS_CA_FILE=" + s.TLS.CAFile, "REDIS_TLS_CERT_FILE=" + s.TLS.ClientCertFile, "REDIS_TLS_KEY_FILE=" + s.TLS.ClientKeyFile} {
		if !slices.Contains(env, want) {
			t.Errorf("Env() lacks %s: %v", want, env)
		}
	}

	// Directly and through PgBouncer, over TLS both ways.
	for _, u := range []string{s.DirectURL, s.DatabaseURL} {
		cfg, err := pgx.ParseConfig(u)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil || !ssl {
			t.Errorf("%s: the server connection is not TLS (%v, %v)", u, ssl, err)
		}
		if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
			t.Errorf("%s: the client connection is not TLS", u)
		}
		conn.Close(ctx)
	}
	if err := pingRedis(ctx, addr(s.RedisPort), s.redisTLS); err != nil {
		t.Fatal(err)
	}

	// Refused: plain text, and TLS without a client certificate.
	noClientCert := func(u string) string {
		parsed, _ := url.Parse(u)
		q := parsed.Query()
		q.Del("sslcert")
		q.Del("sslkey")
		parsed.RawQuery = q.Encode()
		return parsed.String()
	}
	for name, u := range map[string]string{
		"direct, plain":             strings.Replace(s.DirectURL, "sslmode=verify-full", "sslmode=disable", 1),
		"pgbouncer, plain":          strings.Replace(s.DatabaseURL, "sslmode=verify-full", "sslmode=disable", 1),
		"direct, no client cert":    noClientCert(s.DirectURL),
		"pgbouncer, no client cert": noClientCert(s.DatabaseURL),
	} {
		if err := pingPostgres(ctx, u); err == nil {
			t.Errorf("%s: connected", name)
		}
	}
	if err := pingRedis(ctx, addr(s.RedisPort), nil); err == nil {
		t.Error("redis answered in plain text")
	}
	noCert := s.redisTLS.Clone()
	noCert.Certificates = nil
	if err := pingRedis(ctx, addr(s.RedisPort), noCert); err == nil {
		t.Error("redis answered a client without a certificate")
	}

	// Attach finds the TLS stack; a Start without TLS restarts it in plain text.
	att, err := Attach(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if att.DatabaseURL != s.DatabaseURL || att.RedisURL != s.RedisURL {
		t.Errorf("Attach: %v, want %v", att.Env(), s.Env())
	}
	plain, err := Start(ctx, Config{Dir: dir, Ephemeral: true, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if plain.TLS != nil || !strings.HasPrefix(plain.RedisURL, "redis://") || pingPostgres(ctx, plain.DatabaseURL) != nil {
		t.Errorf("restarted without TLS: %v", plain.Env())
	}
}

// TestStartRedisTLS: a standalone Redis and a cluster, each on TLS ports only, answer a client
// with the CA and the client certificate, and nobody else.
func TestStartRedisTLS(t *testing.T) {
	needServers(t)
	ctx := testContext(t)
	certs, err := GenerateTLS(t.TempDir(), "threadline")
	if err != nil {
		t.Fatal(err)
	}
	client, err := certs.clientTLS()
	if err != nil {
		t.Fatal(err)
	}
	address, stop, err := StartRedisServerTLS(ctx, t.TempDir(), 0, certs)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	addrs, stopCluster, err := StartRedisClusterTLS(ctx, t.TempDir(), [3]int{}, certs)
	if err != nil {
		t.Fatal(err)
	}
	defer stopCluster()
	for _, a := range append([]string{address}, addrs...) {
		if err := pingRedis(ctx, a, client); err != nil {
			t.Errorf("%s: %v", a, err)
		}
		if err := pingRedis(ctx, a, nil); err == nil {
			t.Errorf("%s answered in plain text", a)
		}
	}
	if info, err := redisDo(ctx, addrs[0], client, "CLUSTER", "INFO"); err != nil || !strings.Contains(info, "cluster_known_nodes:3") {
		t.Errorf("CLUSTER INFO: %v\n%s", err, info)
	}
}
