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
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// TestTypeScriptExample compiles the TypeScript example client (this directory, whose npm
// packages make check-ts installs) and runs it with Node against a development server.
func TestTypeScriptExample(t *testing.T) {
	t.Parallel()
	s, example := startExample(t)
	// The same client against a server that runs only the trusted-document manifest: every
	// document the client sends is one of its generated operations, so all of them run.
	trusted := apptest.Start(t, apptest.Options{Seed: true, Configure: func(c *app.Config) {
		c.Env = "production"
		c.TrustedDocumentsOnly = true
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, srv := range []struct {
		name string
		s    *apptest.Server
	}{{"development", s}, {"trusted documents only", trusted}} {
		b, err := example(ctx, "example.js", srv.s.Token(1), "THREADLINE_URL="+srv.s.URL+"/query").CombinedOutput() // the last THREADLINE_URL wins
		if err != nil {
			t.Fatalf("%s: example: %v\n%s", srv.name, err, b)
		}
		for _, want := range []string{"signed in as Demo User (user 1)", "history page 2: seq", "sent message", "edited message", "(version 2,", "reaction "} {
			if !strings.Contains(string(b), want) {
				t.Errorf("%s: the example's output lacks %q:\n%s", srv.name, want, b)
			}
		}
	}

	// A bad token comes back as a GraphQL error with its code.
	b, err := example(ctx, "example.js", "not-a-token").CombinedOutput()
	if err == nil || !strings.Contains(string(b), "codes UNAUTHENTICATED") {
		t.Errorf("with a bad token: %v\n%s", err, b)
	}
}

// startExample compiles the examples (build) and starts a seeded development server. The
// function it returns gives the command that runs the compiled src/<script> with Node against
// that server, with THREADLINE_TOKEN=token and env added to the environment.
func startExample(t *testing.T) (*apptest.Server, func(ctx context.Context, script, token string, env ...string) *exec.Cmd) {
	t.Helper()
	n := build(t)
	s := apptest.Start(t, apptest.Options{Seed: true, Configure: func(c *app.Config) { c.Env = "development" }})
	return s, func(ctx context.Context, script, token string, env ...string) *exec.Cmd {
		cmd := n.command(ctx, script, s.URL, token)
		cmd.Env = append(cmd.Env, env...)
		return cmd
	}
}

// startWithConversation compiles the examples (build) and starts a server with o whose
// database has two users, Alice and Bob (users, in that order), members of a conversation named
// title (conv).
func startWithConversation(t *testing.T, o apptest.Options, title string) (n node, s *apptest.Server, users []int64, conv int64) {
	t.Helper()
	n = build(t)
	s = apptest.Start(t, o)
	users = dbtest.Users(t, s.Direct, "Alice", "Bob")
	return n, s, users, dbtest.Conversation(t, s.Direct, title, users...)
}

// node runs the examples that build compiled.
type node struct{ path, out string }

// command returns the command that runs the compiled src/<script> with args, with Node, against
// the server at url (THREADLINE_URL, its /query endpoint) as the holder of token
// (THREADLINE_TOKEN).
func (n node) command(ctx context.Context, script, url, token string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.path, append([]string{filepath.Join(n.out, "src", script)}, args...)...)
	cmd.Env = append(os.Environ(), "THREADLINE_URL="+url+"/query", "THREADLINE_TOKEN="+token)
	return cmd
}

// build skips the test under -short (it needs Node.js, and its callers the services); else it
// compiles this directory's TypeScript with the tsc that make check-ts installs (npm ci)
// into a directory of the test's own, and returns Node with that directory. The output is
// ES modules (package.json says "type": "module"); its node_modules is a link to this
// directory's, so that what it imports (@apollo/client) resolves.
func build(t *testing.T) node {
	t.Helper()
	testenv.SkipShort(t, "needs Node.js and the services")
	tsc := filepath.Join("node_modules", ".bin", "tsc")
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("%s is missing: run make check-ts (npm ci in ops/clients/ts) first", tsc)
	}
	path, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node not found: run make client-deps")
	}
	out := t.TempDir()
	if b, err := exec.Command(tsc, "-p", "tsconfig.json", "--outDir", out).CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
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
	return node{path, out}
}

// TestTypeScriptSidebar runs the sidebar example (src/sidebar.ts) against a development server:
// it lists the conversations with unread counts and holds one viewerEvents subscription, through
// which it hears of a conversation another user adds the viewer to and of a message there,
// which it marks read, and then of that read.
func TestTypeScriptSidebar(t *testing.T) {
	t.Parallel()
	s, example := startExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := example(ctx, "sidebar.js", s.Token(1), "SIDEBAR_EVENTS=3")
	var output apptest.Buffer
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for !strings.Contains(metrics(t, s), "threadline_subscriptions_active 1") {
		select {
		case err := <-done:
			t.Fatalf("the example ended before subscribing: %v\n%s", err, output.String())
		case <-time.After(20 * time.Millisecond):
		}
	}

	other := s.Client(2)
	var created struct{ CreateConversation struct{ ID string } }
	other.Query(t, `mutation { createConversation(input: {title: "Sidebar demo", memberIds: ["1"]}) { id } }`, nil, &created)
	other.Query(t, `mutation($c: ID!) { sendMessage(input: {conversationId: $c, body: "are you there?"}) { seq } }`,
		map[string]any{"c": created.CreateConversation.ID}, nil)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sidebar example: %v\n%s", err, output.String())
		}
	case <-ctx.Done():
		t.Fatalf("the example did not see 3 events:\n%s", output.String())
	}
	c := created.CreateConversation.ID
	for _, want := range []string{
		"conversations, ", "unread", "joined " + c, "activity in " + c, `Sidebar demo (` + c + `): 1 unread, last "are you there?"`,
		"marked read " + c + " up to 1: 0 unread", "read " + c + " up to 1", "resume after: ",
	} {
		if !strings.Contains(output.String(), want) {
			t.Errorf("the sidebar example's output lacks %q:\n%s", want, output.String())
		}
	}
}

// metrics returns the server's Prometheus metrics.
func metrics(t *testing.T, s *apptest.Server) string {
	t.Helper()
	status, body := s.GetOps("/metrics")
	if status != 200 {
		t.Fatalf("/metrics: %d", status)
	}
	return body
}
