// Package ts's test runs the TypeScript example client against a server.
package ts

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// compile compiles the TypeScript example client (this directory, whose npm packages make
// check-ts installs) and returns where its output is, with the path of node.
func compile(t *testing.T) (out, node string) {
	t.Helper()
	tsc := filepath.Join("node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("%s is missing: run make check-ts (npm ci in ops/clients/ts) first", tsc)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run make client-deps")
	}
	out = t.TempDir()
	build := exec.Command(tsc, "-p", "tsconfig.json", "--outDir", out)
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	// The output is ES modules (package.json says "type": "module"); its runtime imports
	// (graphql-sse) resolve in this directory's node_modules.
	if err := os.WriteFile(filepath.Join(out, "package.json"), []byte(`{"type":"module"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	modules, err := filepath.Abs("node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(modules, filepath.Join(out, "node_modules")); err != nil {
		t.Fatal(err)
	}
	return out, node
}

// TestTypeScriptExample runs the TypeScript example client with Node against a development
// server.
func TestTypeScriptExample(t *testing.T) {
	if testing.Short() {
		t.Skip("needs Node.js and the services")
	}
	t.Parallel()
	out, node := compile(t)

	s := apptest.Start(t, apptest.Options{Seed: true, Configure: func(c *app.Config) { c.Env = "development" }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(out, "src", "example.js"))
	cmd.Env = append(os.Environ(), "THREADLINE_URL="+s.URL+"/query", "THREADLINE_TOKEN="+s.Token(1))
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("example: %v\n%s", err, b)
	}
	for _, want := range []string{"signed in as Demo User (user 1)", "history page 2: seq", "sent message"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the example's output lacks %q:\n%s", want, b)
		}
	}

	// A bad token comes back as a GraphQL error with its code.
	cmd = exec.CommandContext(ctx, node, filepath.Join(out, "src", "example.js"))
	cmd.Env = append(os.Environ(), "THREADLINE_URL="+s.URL+"/query", "THREADLINE_TOKEN=not-a-token")
	b, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(b), "codes UNAUTHENTICATED") {
		t.Errorf("with a bad token: %v\n%s", err, b)
	}
}
