package apptest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/threadline/threadline/internal/testenv"
)

// Env is the environment of a `threadline serve` process over database and redisURL, in
// development mode on a free port, with the operations endpoints on a free port of their own
// too: the base that tests add their settings to.
func Env(t testing.TB, database testenv.Database, redisURL string) map[string]string {
	return map[string]string{
		"APP_ENV": "development", "ADDR": FreeAddr(t), "OPS_ADDR": FreeAddr(t),
		"DATABASE_URL": database.PooledURL, "DATABASE_DIRECT_URL": database.DirectURL, "REDIS_URL": redisURL,
		"JWT_SECRET": Secret, "SHUTDOWN_TIMEOUT": "5s", "LOG_FORMAT": "text",
	}
}

// Process is the real binary serving for a test.
type Process struct {
	Endpoint // its URL, and the clients that reach it
	Cmd      *exec.Cmd
	Env      map[string]string
	logs     *Buffer

	done    chan struct{} // closed when the process has exited
	exitErr error         // its exit error, once done is closed
}

// Binary returns the path of the threadline binary, built once per test binary with `go build`
// (the module's main package, as the Dockerfile builds it but for the static flags).
func Binary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		var dir string
		if dir, buildErr = os.MkdirTemp("", "threadline-apptest-"); buildErr != nil {
			return
		}
		testenv.AtExit(func() { os.RemoveAll(dir) })
		binPath = filepath.Join(dir, "threadline")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/threadline/threadline").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("apptest: %v", buildErr)
	}
	return binPath
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// Run runs the binary with args (migrate, seed, token …) and env, and returns its standard
// output; it fails the test if the command fails.
func Run(t testing.TB, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	cmd.Env = environ(env)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("threadline %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// StartProcess starts `threadline serve` with env (see Env) and waits until it is ready. The
// process is killed when the test ends if it still runs.
func StartProcess(t testing.TB, env map[string]string) *Process {
	t.Helper()
	p := StartProcessNoWait(t, env)
	ready := false
	defer func() {
		if !ready { // WaitReady failed the test
			t.Logf("threadline serve:\n%s", p.Logs())
		}
	}()
	WaitReady(t, p.URL, p.done)
	ready = true
	return p
}

// StartProcessNoWait starts `threadline serve` with env and returns at once.
func StartProcessNoWait(t testing.TB, env map[string]string) *Process {
	t.Helper()
	cmd := exec.Command(Binary(t), "serve")
	cmd.Env = environ(env)
	logs := &Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("apptest: %v", err)
	}
	p := &Process{
		Endpoint: *opsEndpoint(NewEndpoint(t, "http://"+env["ADDR"], env["JWT_SECRET"]), env["OPS_ADDR"]),
		Cmd:      cmd, Env: env, logs: logs, done: make(chan struct{}),
	}
	go func() {
		p.exitErr = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Signal sends sig to the process.
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.Cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("apptest: signal: %v", err)
	}
}

// Wait waits until the process exits or ctx ends; exited tells which, err is the exit error.
func (p *Process) Wait(ctx context.Context) (exited bool, err error) {
	select {
	case <-p.done:
		return true, p.exitErr
	case <-ctx.Done():
		return false, nil
	}
}

// Logs returns what the process has written so far.
func (p *Process) Logs() string { return p.logs.String() }

func environ(env map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// opsEndpoint sets e's operations URL to opsAddr's, when the process has an operations listener.
func opsEndpoint(e *Endpoint, opsAddr string) *Endpoint {
	if opsAddr != "" {
		e.OpsURL = "http://" + opsAddr
	}
	return e
}
