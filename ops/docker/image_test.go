// Package docker tests the Docker image's binaries: built as the Dockerfile builds them, they
// are static (the image's distroless base has no libc) and they serve.
package docker

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

// The build takes minutes on a cold cache: the test is one of the slow tests (testenv.SlowTests).
func TestMain(m *testing.M) { testenv.MainSlow(m, testenv.Options{Migrate: db.Migrate}) }

// buildCommand returns the shell command of the Dockerfile's RUN step that builds the binaries
// into /out, continuation lines joined.
func buildCommand(t *testing.T, dockerfile string) string {
	t.Helper()
	b, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	var cur strings.Builder
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		steps = append(steps, cur.String())
		cur.Reset()
	}
	var found []string
	for _, s := range steps {
		if cmd, ok := strings.CutPrefix(s, "RUN "); ok && strings.Contains(cmd, "go build") && strings.Contains(cmd, "/out/threadline") {
			found = append(found, strings.TrimSpace(cmd))
		}
	}
	if len(found) != 1 {
		t.Fatalf("the Dockerfile has %d RUN steps building /out/threadline, want 1: %q", len(found), found)
	}
	return found[0]
}

// TestBuildCommand reads the Dockerfile's build step.
func TestBuildCommand(t *testing.T) {
	cmd := buildCommand(t, "../../Dockerfile")
	for _, builds := range strings.Split(cmd, "&&") {
		if !strings.HasPrefix(strings.TrimSpace(builds), "CGO_ENABLED=0 ") {
			t.Errorf("%q: every build in the image runs with CGO_ENABLED=0 (the base has no libc)", builds)
		}
	}
	if !strings.Contains(cmd, "-o /out/healthcheck ./ops/docker/healthcheck") {
		t.Errorf("%q does not build the healthcheck", cmd)
	}
}

// checkStatic fails the test unless path is an ELF executable without a program interpreter
// (PT_INTERP: the dynamic loader) or dynamic section (PT_DYNAMIC: shared libraries to load).
func checkStatic(t *testing.T, path string) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: not a static binary", path, p.Type)
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil || len(libs) > 0 {
		t.Errorf("%s imports %v (%v)", path, libs, err)
	}
}

// TestImageBinaries runs the Dockerfile's build step, with /out in a temporary directory, checks
// that both binaries are static, serves the server over the tests' PostgreSQL, PgBouncer and
// Redis, and has the image's healthcheck read its /readyz.
func TestImageBinaries(t *testing.T) {
	testenv.SkipSlow(t, "builds the binaries from scratch (minutes on a cold cache)")
	out := t.TempDir()
	cmd := strings.ReplaceAll(buildCommand(t, "../../Dockerfile"), "/out/", out+"/")
	build := exec.Command("sh", "-c", cmd)
	build.Dir = "../.." // the Dockerfile's WORKDIR holds the module
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, b)
	}
	server, healthcheck := filepath.Join(out, "threadline"), filepath.Join(out, "healthcheck")
	checkStatic(t, server)
	checkStatic(t, healthcheck)

	d := testenv.NewDatabase(t)
	env := apptest.Env(t, d, testenv.NewRedis(t))
	serve := exec.Command(server, "serve")
	for k, v := range env {
		serve.Env = append(serve.Env, k+"="+v)
	}
	logs := &apptest.Buffer{}
	serve.Stdout, serve.Stderr = logs, logs
	if err := serve.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		serve.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		serve.Process.Kill()
		<-done
	})
	base := "http://" + env["ADDR"]
	ok := false
	defer func() {
		if !ok {
			t.Logf("threadline serve:\n%s", logs)
		}
	}()
	apptest.WaitReady(t, base, done)
	if b, err := exec.Command(healthcheck, base+"/readyz").CombinedOutput(); err != nil {
		t.Fatalf("healthcheck %s/readyz: %v\n%s", base, err, b)
	}
	ok = true
}
