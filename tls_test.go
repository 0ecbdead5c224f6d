package main

import (
	"context"
	"io"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/internal/devstack"
	"github.com/threadline/threadline/internal/testenv"
)

// TestTLS runs the server as production runs it behind TLS: PostgreSQL with TLS only, reached
// through PgBouncer with TLS on both sides (client_tls and server_tls) and
// sslmode=verify-full against a private CA made here; Redis on a TLS port only that requires a
// client certificate, reached with rediss://, the private CA and a client certificate. The
// server answers a query and a sendMessage with the history cache in use. With another CA,
// /readyz and the start-up log name the unknown authority for both; plain redis:// against the
// TLS port is told to use rediss://.
func TestTLS(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skips under -short
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	certs, other := testenv.TLS(t), testenv.TLS(t)
	// A directory the service account can reach when the tests run as root.
	dir, err := os.MkdirTemp("", "threadline-tls-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := devstack.Stop(dir); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	stack, err := devstack.Start(ctx, devstack.Config{Dir: dir, Ephemeral: true, TLS: &certs})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{stack.DatabaseURL, stack.DirectURL} {
		if q := query(t, u); q.Get("sslmode") != "verify-full" || q.Get("sslrootcert") != stack.TLS.CAFile {
			t.Fatalf("%s is not verify-full with the private CA", u)
		}
	}
	env := apptest.Env(t, testenv.Database{DirectURL: stack.DirectURL, PooledURL: stack.DatabaseURL}, stack.RedisURL)
	maps.Copy(env, map[string]string{
		"REDIS_TLS_CA_FILE": stack.TLS.CAFile, "REDIS_TLS_CERT_FILE": stack.TLS.ClientCertFile, "REDIS_TLS_KEY_FILE": stack.TLS.ClientKeyFile,
	})
	apptest.Run(t, env, "migrate")
	apptest.Run(t, env, "seed")

	t.Run("serves", func(t *testing.T) {
		p := apptest.StartProcess(t, env)
		const page = `{ conversation(id: "1") { messages(limit: 5) { items { seq body } } } }`
		var before struct {
			Conversation struct {
				Messages struct{ Items []struct{ Seq int } }
			}
		}
		p.Client(1).Query(t, page, nil, &before)
		if len(before.Conversation.Messages.Items) == 0 {
			t.Fatal("no messages in conversation 1")
		}
		var sent struct{ SendMessage struct{ Seq int } }
		p.Client(1).Query(t, `mutation { sendMessage(input: {conversationId: "1", body: "over TLS", clientMessageId: "tls-1"}) { seq } }`, nil, &sent)
		var after struct {
			Conversation struct {
				Messages struct {
					Items []struct {
						Seq  int
						Body string
					}
				}
			}
		}
		// A miss that fills the history cache, then another document (which the response
		// cache does not answer) over the same page: a hit.
		p.Client(1).Query(t, page, nil, &after)
		p.Client(1).Query(t, `{ conversation(id: "1") { messages(limit: 5) { items { seq } } } }`, nil, nil)
		if top := after.Conversation.Messages.Items[0]; top.Seq != sent.SendMessage.Seq || top.Body != "over TLS" {
			t.Errorf("newest message %+v, want seq %d over TLS", top, sent.SendMessage.Seq)
		}
		if h := cacheHealthOf(t, &p.Endpoint); h.Hits == 0 || h.Breaker != "closed" {
			t.Errorf("history cache over TLS: %+v, want hits and a closed breaker", h)
		}
		for _, line := range []string{
			`msg="postgres connected" dependency=postgres addr=127.0.0.1:` + strconv.Itoa(stack.PgBouncerPort) + " tls=true",
			`msg="redis connected" dependency=redis addr=127.0.0.1:` + strconv.Itoa(stack.RedisPort) + " tls=true",
			// The response cache's in-process tier opens a connection of its own, with the same options.
			`msg="local cache: tracking established"`,
		} {
			waitLog(t, p, line)
		}
		if logs := p.Logs(); strings.Contains(logs, "level=WARN") || strings.Contains(logs, "level=ERROR") {
			t.Errorf("warnings over TLS:\n%s", logs)
		}
	})

	redisAddr := "127.0.0.1:" + strconv.Itoa(stack.RedisPort)
	pgAddr := "127.0.0.1:" + strconv.Itoa(stack.PgBouncerPort)
	for _, tc := range []struct {
		name   string
		change map[string]string
		checks map[string][]string // dependency: the reasons, any one of them, in /readyz and the log
	}{
		{"another CA", map[string]string{
			"DATABASE_URL":      withQuery(t, stack.DatabaseURL, "sslrootcert", other.CAFile),
			"REDIS_TLS_CA_FILE": other.CAFile,
		}, map[string][]string{
			"postgres": {"tls: certificate signed by unknown authority"},
			"redis":    {"tls: certificate signed by unknown authority"},
		}},
		{"plain redis:// on the TLS port", map[string]string{
			"REDIS_URL": "redis://" + redisAddr + "/0", "REDIS_TLS_CA_FILE": "", "REDIS_TLS_CERT_FILE": "", "REDIS_TLS_KEY_FILE": "",
		}, map[string][]string{
			"postgres": {"ok"},
			"redis":    {"closed the connection during the handshake: is it a TLS port? use rediss://"},
		}},
		{"no client certificate", map[string]string{
			"REDIS_TLS_CERT_FILE": "", "REDIS_TLS_KEY_FILE": "",
		}, map[string][]string{
			// With TLS 1.3 the client has finished its side of the handshake before Redis
			// checks the certificate: Redis then sends the alert and closes, and the client's
			// next write can meet the reset before it reads the alert (seen on a loaded machine).
			"redis": {"the server refused the TLS handshake: certificate required", "closed the connection during the TLS handshake"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := maps.Clone(env)
			maps.Copy(e, tc.change)
			p := apptest.StartProcessNoWait(t, e)
			addrs := map[string]string{"postgres": pgAddr, "redis": redisAddr}
			for dep, reasons := range tc.checks {
				if reasons[0] != "ok" {
					var lines []string
					for _, reason := range reasons {
						lines = append(lines, `msg="`+dep+" at "+addrs[dep]+": "+reason+`"`)
					}
					waitLog(t, p, lines...)
				}
			}
			deadline := time.Now().Add(15 * time.Second)
			for {
				// The log lines above come from a goroutine that starts before serve listens:
				// on a loaded machine the port may not be open yet.
				status, body, err := p.TryGet("/readyz")
				if err != nil {
					if time.Now().After(deadline) {
						t.Fatalf("/readyz: %v\n%s", err, p.Logs())
					}
					time.Sleep(100 * time.Millisecond)
					continue
				}
				ok := status == 503
				for dep, reasons := range tc.checks {
					ok = ok && slices.ContainsFunc(reasons, func(reason string) bool {
						return strings.Contains(body, `"`+dep+`":"`+reason+`"`)
					})
				}
				for _, secret := range []string{stack.Password + "@", "://127.0.0.1", stack.User, dir} {
					if strings.Contains(body, secret) {
						t.Fatalf("/readyz says %q: %s", secret, body)
					}
				}
				if ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("/readyz: %d %s, want 503 with %v\n%s", status, body, tc.checks, p.Logs())
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}

	// Files that cannot make a TLS configuration stop serve before it listens.
	for _, tc := range []struct {
		name   string
		change map[string]string
		want   string
	}{
		{"CA missing", map[string]string{"REDIS_TLS_CA_FILE": dir + "/missing.crt"}, "REDIS_TLS_CA_FILE: open " + dir + "/missing.crt: no such file or directory"},
		{"CA not PEM", map[string]string{"REDIS_TLS_CA_FILE": stack.TLS.ClientKeyFile}, "holds no PEM certificate"},
		{"key of another certificate", map[string]string{"REDIS_TLS_KEY_FILE": other.ClientKeyFile}, "private key does not match public key"},
		{"redis:// with TLS files", map[string]string{"REDIS_URL": "redis://" + redisAddr + "/0"}, "use rediss://"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := maps.Clone(env)
			maps.Copy(e, tc.change)
			err := run(ctx, nil, func(k string) string { return e[k] }, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

func query(t *testing.T, rawURL string) url.Values {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func withQuery(t *testing.T, rawURL, key, value string) string {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// waitLog waits until the process's log holds one of lines, failing the test after 15 s.
func waitLog(t *testing.T, p *apptest.Process, lines ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !slices.ContainsFunc(lines, func(line string) bool { return strings.Contains(p.Logs(), line) }) {
		if time.Now().After(deadline) {
			t.Fatalf("the log does not say %s:\n%s", strings.Join(lines, " or "), p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
