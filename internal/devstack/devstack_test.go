package devstack

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func needServers(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts PostgreSQL, PgBouncer and Redis; skipped with -short")
	}
}

// stackDir is a temporary directory the postgres user can reach when the
// tests run as root (t.TempDir's parent is private to root).
func stackDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "devstack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := Stop(dir); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	return dir
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestFreePort(t *testing.T) {
	p, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if p <= 0 || p > 65535 || !portFree(p) {
		t.Fatalf("FreePort() = %d, not a free port", p)
	}
	// Below the kernel's ephemeral range, where no outgoing connection takes it.
	if lo, ok := ephemeralLow(); ok && (p >= lo || p < lo-belowEphemeral) {
		t.Fatalf("FreePort() = %d, want one of the %d ports below the ephemeral range's %d", p, belowEphemeral, lo)
	}
	// Never the same port twice, though none of them is bound yet (500 draws at random from
	// 20,000 ports repeat one with a probability of 99.8%).
	seen := map[int]bool{p: true}
	for range 500 {
		q, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[q] {
			t.Fatalf("FreePort() returned %d twice", q)
		}
		seen[q] = true
	}
}

func TestStackLifecycle(t *testing.T) {
	needServers(t)
	ctx := testContext(t)
	dir := stackDir(t)
	// Not Ephemeral: the data must survive the SIGKILL below.
	s, err := Start(ctx, Config{Dir: dir, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}

	// Env and the env file.
	env := s.Env()
	for i, key := range []string{"DATABASE_URL=", "DATABASE_DIRECT_URL=", "REDIS_URL=", "PGBOUNCER_ADMIN_URL="} {
		if !strings.HasPrefix(env[i], key) {
			t.Errorf("Env()[%d] = %q, want %s...", i, env[i], key)
		}
	}
	envFile := filepath.Join(dir, "stack.env")
	if err := s.WriteEnvFile(envFile); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(envFile); string(b) != strings.Join(env, "\n")+"\n" {
		t.Errorf("env file:\n%s\nwant the Env() lines", b)
	}
	if s.DatabaseURL != "postgres://threadline:threadline@127.0.0.1:"+portString(s.PgBouncerPort)+"/threadline?sslmode=disable" {
		t.Errorf("DatabaseURL = %s", s.DatabaseURL)
	}

	// Every service answers, and data written directly is visible through PgBouncer.
	direct, err := pgx.Connect(ctx, s.DirectURL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := direct.Exec(ctx, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	direct.Close(ctx)
	checkPooledValue(t, ctx, s, 42)
	if err := pingPgBouncer(ctx, s.PgBouncerAdminURL); err != nil {
		t.Fatal(err)
	}
	if err := pingRedis(ctx, addr(s.RedisPort), nil); err != nil {
		t.Fatal(err)
	}

	// A second Start reuses the running services.
	pids := servicePids(t, dir)
	again, err := Start(ctx, Config{Dir: dir, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if again.DatabaseURL != s.DatabaseURL || again.DirectURL != s.DirectURL || again.RedisURL != s.RedisURL {
		t.Errorf("second Start moved the stack:\n%v\n%v", again.Env(), s.Env())
	}
	if got := servicePids(t, dir); got != pids {
		t.Errorf("second Start restarted services: pids %v, then %v", pids, got)
	}
	// Asking for another port while the stack runs is an error.
	if _, err := Start(ctx, Config{Dir: dir, RedisPort: s.RedisPort + 1}); err == nil || !strings.Contains(err.Error(), "already runs") {
		t.Errorf("Start with another redis port: err = %v, want 'already runs'", err)
	}

	// Attach finds it.
	att, err := Attach(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if att.DatabaseURL != s.DatabaseURL || att.PgBouncerAdminURL != s.PgBouncerAdminURL {
		t.Errorf("Attach: %v, want %v", att.Env(), s.Env())
	}

	// Services killed hard are restarted by the next Start, on the same ports.
	for _, pid := range []int{pids[postgresSvc], pids[redisSvc]} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	revived, err := Start(ctx, Config{Dir: dir, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if revived.DatabaseURL != s.DatabaseURL || revived.RedisURL != s.RedisURL || revived.DirectURL != s.DirectURL {
		t.Errorf("Start after kill moved the stack:\n%v\n%v", revived.Env(), s.Env())
	}
	checkPooledValue(t, ctx, revived, 42)

	// Stop stops everything; stopping again is fine; Attach then fails.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	for v, pid := range servicePids(t, dir) {
		if pid != 0 {
			t.Errorf("%s still runs after Stop", service(v))
		}
	}
	if err := Stop(dir); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := Attach(ctx, dir); err == nil {
		t.Error("Attach succeeded on a stopped stack")
	}

	// Other credentials on the same cluster are refused.
	if _, err := Start(ctx, Config{Dir: dir, Password: "other"}); err == nil || !strings.Contains(err.Error(), "credentials") {
		t.Errorf("Start with another password: err = %v", err)
	}

	// Start after Stop: same ports, data kept.
	restarted, err := Start(ctx, Config{Dir: dir, Log: testWriter{t}})
	if err != nil {
		t.Fatal(err)
	}
	if restarted.DatabaseURL != s.DatabaseURL || restarted.RedisURL != s.RedisURL {
		t.Errorf("restarted stack moved:\n%v\n%v", restarted.Env(), s.Env())
	}
	checkPooledValue(t, ctx, restarted, 42)
}

func checkPooledValue(t *testing.T, ctx context.Context, s *Stack, want int) {
	t.Helper()
	cfg, err := pgx.ParseConfig(s.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var got int
	if err := conn.QueryRow(ctx, "SELECT v FROM kept WHERE v = $1", want).Scan(&got); err != nil {
		t.Fatal(err)
	}
}

func servicePids(t *testing.T, dir string) [3]int {
	t.Helper()
	var pids [3]int
	for _, v := range services {
		pids[v] = runningPid(dir, v)
	}
	return pids
}

func TestPortInUse(t *testing.T) {
	needServers(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	dir := stackDir(t)
	_, err = Start(testContext(t), Config{Dir: dir, PgBouncerPort: port})
	var inUse *PortInUseError
	if !errors.As(err, &inUse) || inUse.Service != "pgbouncer" || inUse.Port != port {
		t.Fatalf("err = %v, want a PortInUseError for pgbouncer on %d", err, port)
	}
	if !strings.Contains(err.Error(), "pgbouncer") || !strings.Contains(err.Error(), portString(port)) {
		t.Errorf("message %q names neither service nor port", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "postgres")); err == nil {
		t.Error("initdb ran although a port was taken")
	}
}

func TestUnreachableDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root hands the directory to the postgres user")
	}
	needServers(t)
	private := t.TempDir() // mode 0700, owned by root
	_, err := Start(testContext(t), Config{Dir: filepath.Join(private, "stack")})
	if err == nil || !strings.Contains(err.Error(), "cannot enter") {
		t.Fatalf("err = %v, want one saying postgres cannot enter the directory", err)
	}
}

func TestStartRedisServer(t *testing.T) {
	needServers(t)
	ctx := testContext(t)
	address, stop, err := StartRedisServer(ctx, t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := pingRedis(ctx, address, nil); err != nil {
		t.Fatal(err)
	}
	if reply, err := redisDo(ctx, address, nil, "SET", "k", "v v"); err != nil || reply != "OK" {
		t.Fatalf("SET: %q, %v", reply, err)
	}
	if reply, err := redisDo(ctx, address, nil, "GET", "k"); err != nil || reply != "v v" {
		t.Fatalf("GET: %q, %v", reply, err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := pingRedis(ctx, address, nil); err == nil {
		t.Error("redis answers after stop")
	}
}

func TestDisallowedClusterPort(t *testing.T) {
	_, _, err := StartRedisCluster(t.Context(), t.TempDir(), [3]int{60000, 0, 0})
	if err == nil || !strings.Contains(err.Error(), "55535") {
		t.Errorf("err = %v, want a port range error", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
