package ts

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
)

// TestGraphQLSSEClient runs src/sse.ts, the official graphql-sse client in Node, against two
// server instances of one deployment: it subscribes to messageAdded over Server-Sent Events on
// B and receives what is sent through A; it disconnects, and once it resubscribes with afterSeq
// it receives exactly what was sent meanwhile, then what follows live, each message once.
func TestGraphQLSSEClient(t *testing.T) {
	t.Parallel()
	n, a, users, conv := startWithConversation(t, apptest.Options{}, "General")
	b := apptest.Start(t, apptest.Options{Database: &a.Database, RedisURL: a.Config.RedisURL})
	send := func(n int, what string) { a.Client(users[0]).SendNumbered(t, conv, n, what) }

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const before, missed, live = 5, 7, 1
	cmd := n.command(ctx, "sse.js", b.URL, b.Token(users[1]), apptest.ID(conv), strconv.Itoa(before), strconv.Itoa(missed+live))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var seqs []int64
	// until reads the client's output until a line starting with prefix (to its end for ""),
	// keeping the seqs.
	until := func(prefix string) {
		t.Helper()
		for {
			select {
			case line, ok := <-lines:
				if !ok && prefix == "" {
					return
				}
				if !ok {
					t.Fatalf("the client exited before %q: %v\n%s", prefix, cmd.Wait(), stderr.String())
				}
				if prefix != "" && strings.HasPrefix(line, prefix) {
					return
				}
				var seq int64
				if _, err := fmt.Sscanf(line, "seq %d", &seq); err != nil {
					t.Fatalf("unexpected output %q", line)
				}
				seqs = append(seqs, seq)
			case <-ctx.Done():
				t.Fatalf("no %q from the client: %v\n%s", prefix, ctx.Err(), stderr.String())
			}
		}
	}

	waitSubscriptions(t, b, 1)
	send(before, "before")
	until(fmt.Sprintf("disconnected after seq %d", before))
	waitSubscriptions(t, b, 0)
	send(missed, "missed")
	if _, err := io.WriteString(stdin, "\n"); err != nil {
		t.Fatal(err)
	}
	until(fmt.Sprintf("resuming after seq %d", before))
	waitSubscriptions(t, b, 1)
	send(live, "live")
	until("")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the client: %v\n%s", err, stderr.String())
	}
	apptest.CheckSeqs(t, "graphql-sse client", seqs, 1, before+missed+live)
}

// waitSubscriptions waits until srv runs n subscriptions.
func waitSubscriptions(t *testing.T, srv *apptest.Server, n float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gauge(t, srv, "threadline_subscriptions_active")
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v subscriptions active, want %v", got, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func gauge(t *testing.T, srv *apptest.Server, name string) float64 {
	t.Helper()
	mfs, err := srv.App.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
