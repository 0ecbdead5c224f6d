package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

func TestLiveConfig(t *testing.T) {
	for name, c := range map[string]struct {
		env map[string]string
		ok  bool
	}{
		"defaults":                {map[string]string{}, true},
		"origins":                 {map[string]string{"WS_ALLOWED_ORIGINS": "https://app.example.com, http://localhost:3000/"}, true},
		"any origin, development": {map[string]string{"APP_ENV": "development", "WS_ALLOWED_ORIGINS": "*"}, true},
		"any origin, production":  {map[string]string{"WS_ALLOWED_ORIGINS": "*"}, false},
		"origin with a path":      {map[string]string{"WS_ALLOWED_ORIGINS": "https://app.example.com/chat"}, false},
		"origin without scheme":   {map[string]string{"WS_ALLOWED_ORIGINS": "app.example.com"}, false},
		"other scheme":            {map[string]string{"WS_ALLOWED_ORIGINS": "ftp://app.example.com"}, false},
		"zero buffer":             {map[string]string{"SUBSCRIBER_BUFFER": "0"}, false},
		"bad ping interval":       {map[string]string{"WS_PING_INTERVAL": "often"}, false},
		"bad init timeout":        {map[string]string{"WS_INIT_TIMEOUT": "-1s"}, false},
		"bad keep-alive":          {map[string]string{"SSE_KEEPALIVE_INTERVAL": "often"}, false},
	} {
		cfg, err := loadConfig(func(k string) string { return c.env[k] })
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
		if name == "defaults" && (cfg.SubscriberBuffer != 256 || cfg.WSPingInterval != 15*time.Second || cfg.WSInitTimeout != 10*time.Second || len(cfg.WSAllowedOrigins) != 0 ||
			cfg.SSEKeepAlive != 15*time.Second) {
			t.Errorf("defaults: %+v", cfg)
		}
		if name == "origins" && strings.Join(cfg.WSAllowedOrigins, " ") != "https://app.example.com http://localhost:3000" {
			t.Errorf("origins: %q", cfg.WSAllowedOrigins)
		}
	}
}

// TestServeLiveAndGoingAway runs the server as main does: a subscriber over WebSocket, past the
// HTTP server's read and write timeouts, gets a message sent over HTTP, and the graceful
// shutdown closes its connection with 1001.
func TestServeLiveAndGoingAway(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	env := apptest.Env(t, d, testenv.NewRedis(t))
	env["APP_ENV"], env["HTTP_READ_TIMEOUT"], env["HTTP_WRITE_TIMEOUT"] = "production", "1s", "1s"
	direct := dbtest.Open(t, d.DirectURL)
	users := dbtest.Users(t, direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, direct, "General", users...)
	srv := startRun(t, env)

	c := srv.Dial(t, users[1])
	c.Subscribe("1", fmt.Sprintf(`subscription { messageAdded(conversationId: %d, afterSeq: 0) { seq body sender { name } } }`, conv), nil)
	time.Sleep(1500 * time.Millisecond) // past the HTTP server's read and write timeouts
	srv.Client(users[0]).Query(t, fmt.Sprintf(`mutation { sendMessage(input: {conversationId: %d, body: "hi"}) { seq } }`, conv), nil, nil)
	if m, _ := c.Next(10 * time.Second); m.Type != "next" || string(m.Payload) != `{"data":{"messageAdded":{"seq":1,"body":"hi","sender":{"name":"Alice"}}}}` {
		t.Fatalf("subscription: %s %s", m.Type, m.Payload)
	}

	if err := srv.stop(t); err != nil { // SIGTERM
		t.Fatalf("serve: %v", err)
	}
	if code, reason := c.CloseStatus(5 * time.Second); code != websocket.StatusGoingAway {
		t.Fatalf("after shutdown: %v %s, want a 1001 going-away close", code, reason)
	}
}

// TestServeEventStream runs the server as main does, logging at debug level: an event stream
// asked for as a browser's EventSource asks (GET, the token in access_token) outlives the HTTP
// server's read and write timeouts, gets a message sent over HTTP, and ends without complete
// at SIGTERM; no token sent in a URL, accepted or refused, reaches the logs.
func TestServeEventStream(t *testing.T) {
	t.Parallel()
	d := testenv.NewDatabase(t)
	env := apptest.Env(t, d, testenv.NewRedis(t))
	env["APP_ENV"], env["HTTP_READ_TIMEOUT"], env["HTTP_WRITE_TIMEOUT"], env["LOG_LEVEL"] = "production", "1s", "1s", "debug"
	direct := dbtest.Open(t, d.DirectURL)
	users := dbtest.Users(t, direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, direct, "General", users...)
	srv := startRun(t, env)
	vars := map[string]any{"c": apptest.ID(conv)}

	token := srv.Token(users[1])
	sse := srv.Stream(t, 0, apptest.MessageAddedQuery, vars, apptest.SSEOptions{Method: http.MethodGet, AccessToken: token})
	if sse.Status != http.StatusOK {
		t.Fatalf("event stream: %d %v", sse.Status, sse.Refusal)
	}
	// Tokens refused, for every reason a URL may carry one.
	refusedTokens := map[string]string{
		"another secret": apptest.Token(t, "another-secret-0123456789abcdef", users[1], time.Hour),
		"expired":        apptest.Token(t, env["JWT_SECRET"], users[1], -time.Hour),
		"malformed":      "not-a-jwt-5f2b9c",
	}
	for name, tok := range refusedTokens {
		bad := srv.Stream(t, 0, apptest.MessageAddedQuery, vars, apptest.SSEOptions{Method: http.MethodGet, AccessToken: tok})
		events := bad.Ended(t, 5*time.Second)
		if len(events) != 2 || !strings.Contains(string(events[0].Data), "UNAUTHENTICATED") {
			t.Errorf("%s token: %+v", name, events)
		}
	}
	plain, err := http.Get(srv.URL + "/query?query=%7B+me+%7B+id+%7D+%7D&access_token=" + token)
	if err != nil {
		t.Fatal(err)
	}
	plain.Body.Close()
	if plain.StatusCode != http.StatusBadRequest {
		t.Errorf("access_token on a JSON GET: %d, want 400", plain.StatusCode)
	}

	time.Sleep(1500 * time.Millisecond) // past the HTTP server's read and write timeouts
	srv.Client(users[0]).Query(t, fmt.Sprintf(`mutation { sendMessage(input: {conversationId: %d, body: "hi"}) { seq } }`, conv), nil, nil)
	if got := sse.Messages(t, 1, 10*time.Second); got[0].Seq != 1 || got[0].Body != "hi" || got[0].Sender.Name != "Alice" {
		t.Fatalf("subscription: %+v", got)
	}

	if err := srv.stop(t); err != nil { // SIGTERM
		t.Fatalf("serve: %v", err)
	}
	if events := sse.Ended(t, 5*time.Second); len(events) != 0 {
		t.Fatalf("after shutdown: %+v, want the stream ended without an event", events)
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, "token refused") {
		t.Fatalf("the logs lack the refusals (debug level):\n%s", logs)
	}
	for name, tok := range map[string]string{"accepted": token, "another secret": refusedTokens["another secret"], "expired": refusedTokens["expired"], "malformed": refusedTokens["malformed"]} {
		if strings.Contains(logs, tok) {
			t.Errorf("the %s token is in the logs", name)
		}
	}
	if strings.Contains(logs, "access_token") {
		t.Errorf("the logs mention access_token:\n%s", logs)
	}
}
