package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestUpEnvDown(t *testing.T) {
	testenv.SkipShort(t, "starts PostgreSQL, PgBouncer and Redis")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// Not t.TempDir: when root, the postgres user must be able to enter it.
	dir, err := os.MkdirTemp("", "stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		devstack.Stop(dir)
		os.RemoveAll(dir)
	})
	getenv := env(map[string]string{"STACK_PG_PORT": "0", "STACK_PGBOUNCER_PORT": "0", "STACK_REDIS_PORT": "0"})

	var out, errOut bytes.Buffer
	if err := run(ctx, []string{"up", "-dir", dir}, getenv, &out, &errOut); err != nil {
		t.Fatalf("up: %v\n%s", err, errOut.String())
	}
	for _, want := range []string{"PostgreSQL  127.0.0.1:", "PgBouncer   127.0.0.1:", "Redis       127.0.0.1:", "stack.env"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("up printed no %q:\n%s", want, out.String())
		}
	}
	envFile, err := os.ReadFile(filepath.Join(dir, "stack.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"DATABASE_URL=postgres://", "DATABASE_DIRECT_URL=postgres://", "REDIS_URL=redis://", "PGBOUNCER_ADMIN_URL=postgres://"} {
		if !strings.Contains(string(envFile), "\n"+key) && !strings.HasPrefix(string(envFile), key) {
			t.Errorf("stack.env lacks %s:\n%s", key, envFile)
		}
	}

	// env prints the same lines; a second up reuses the stack.
	out.Reset()
	if err := run(ctx, []string{"env", "-dir", dir}, getenv, &out, &errOut); err != nil {
		t.Fatalf("env: %v", err)
	}
	if out.String() != string(envFile) {
		t.Errorf("env printed:\n%s\nstack.env holds:\n%s", out.String(), envFile)
	}
	errOut.Reset()
	if err := run(ctx, []string{"up", "-dir", dir}, getenv, &out, &errOut); err != nil {
		t.Fatalf("second up: %v", err)
	}
	if !strings.Contains(errOut.String(), "reusing") {
		t.Errorf("second up did not reuse the stack:\n%s", errOut.String())
	}

	// The services run in their own session, so that they outlive the command
	// and a Ctrl-C in its terminal.
	for _, svc := range []string{"postgres", "pgbouncer", "redis"} {
		pid, _ := os.ReadFile(filepath.Join(dir, "run", svc+".pid"))
		if sid, mine := session(t, strings.TrimSpace(string(pid))), session(t, "self"); sid == mine {
			t.Errorf("%s runs in this process's session %s", svc, sid)
		}
	}

	if err := run(ctx, []string{"down", "-dir", dir}, getenv, &out, &errOut); err != nil {
		t.Fatalf("down: %v", err)
	}
	if err := run(ctx, []string{"env", "-dir", dir}, getenv, &out, &errOut); err == nil {
		t.Error("env succeeded after down")
	}
}

func TestUpPortTaken(t *testing.T) {
	testenv.SkipShort(t, "needs the servers installed")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	dir, err := os.MkdirTemp("", "stack-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	var out, errOut bytes.Buffer
	err = run(context.Background(), []string{"up", "-dir", dir, "-pg-port", "0", "-pgbouncer-port", "0"},
		env(map[string]string{"STACK_REDIS_PORT": port}), &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "redis") || !strings.Contains(err.Error(), port) {
		t.Fatalf("err = %v, want one naming redis and port %s", err, port)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, "missing subcommand"},
		{[]string{"sideways"}, nil, "unknown subcommand"},
		{[]string{"up", "extra"}, nil, "unexpected arguments"},
		{[]string{"up"}, map[string]string{"STACK_PG_PORT": "high"}, "STACK_PG_PORT"},
	} {
		var out, errOut bytes.Buffer
		err := run(context.Background(), tc.args, env(tc.env), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q): err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestInstallDepsIsQuietWhenAllPresent(t *testing.T) {
	for _, bin := range []string{"pgbouncer", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err != nil {
				t.Skipf("%s is not installed; the script would run apt-get", bin)
			}
		}
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb"); len(m) == 0 {
		t.Skip("PostgreSQL is not installed; the script would run apt-get")
	}
	out, err := exec.Command("sh", "install-deps.sh").CombinedOutput()
	if err != nil || len(out) != 0 {
		t.Errorf("install-deps.sh: err %v, output %q; want silence", err, out)
	}
}

// session returns the session id of a process ("self" for this one).
func session(t *testing.T, pid string) string {
	t.Helper()
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp session ...
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return fields[3]
}
