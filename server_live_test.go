package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/auth"
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
	} {
		cfg, err := loadConfig(func(k string) string { return c.env[k] })
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", name, err)
		}
		if name == "defaults" && (cfg.SubscriberBuffer != 256 || cfg.WSPingInterval != 15*time.Second || cfg.WSInitTimeout != 10*time.Second || len(cfg.WSAllowedOrigins) != 0) {
			t.Errorf("defaults: %+v", cfg)
		}
		if name == "origins" && strings.Join(cfg.WSAllowedOrigins, " ") != "https://app.example.com http://localhost:3000" {
			t.Errorf("origins: %q", cfg.WSAllowedOrigins)
		}
	}
}

// TestServeLiveAndGoingAway runs the server as main does: a subscriber over WebSocket gets a
// message sent over HTTP, and the graceful shutdown closes its connection with 1001.
func TestServeLiveAndGoingAway(t *testing.T) {
	stack := testenv.Stack(t)
	d := testenv.NewDatabase(t)
	addr := freeAddr(t)
	const secret = "server-test-secret-0123456789"
	env := map[string]string{
		"ADDR": addr, "DATABASE_URL": d.PooledURL, "DATABASE_DIRECT_URL": d.DirectURL,
		"REDIS_URL": stack.RedisURL, "JWT_SECRET": secret, "SHUTDOWN_TIMEOUT": "5s",
		"HTTP_READ_TIMEOUT": "1s", "HTTP_WRITE_TIMEOUT": "1s",
	}
	getenv := func(k string) string { return env[k] }
	var out, errs syncBuffer
	if err := run(context.Background(), []string{"migrate"}, getenv, &out, &errs); err != nil {
		t.Fatal(err)
	}
	direct := dbtest.Open(t, d.DirectURL)
	users := dbtest.Users(t, direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, direct, "General", users...)
	keys, _ := auth.NewKeys(secret)
	token := func(id int64) string { tok, _ := keys.Sign(id, time.Hour); return tok }

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, getenv, &out, &errs) }()
	base := "http://" + addr
	for i := 0; ; i++ {
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				break
			}
		}
		if i == 300 {
			t.Fatalf("not ready: %v\n%s", err, errs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer wcancel()
	conn, _, err := websocket.Dial(wctx, "ws://"+addr+"/query", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	write := func(v any) {
		b, _ := json.Marshal(v)
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	var readErr error
	read := func() (typ string, payload string) {
		for {
			_, b, err := conn.Read(wctx)
			if err != nil {
				readErr = err
				return "", err.Error()
			}
			var m struct {
				Type    string          `json:"type"`
				Payload json.RawMessage `json:"payload"`
			}
			_ = json.Unmarshal(b, &m)
			if m.Type == "ping" {
				write(map[string]string{"type": "pong"})
				continue
			}
			return m.Type, string(m.Payload)
		}
	}
	write(map[string]any{"type": "connection_init", "payload": map[string]string{"Authorization": "Bearer " + token(users[1])}})
	if typ, p := read(); typ != "connection_ack" {
		t.Fatalf("init: %s %s", typ, p)
	}
	write(map[string]any{"type": "subscribe", "id": "1", "payload": map[string]any{
		"query": fmt.Sprintf(`subscription { messageAdded(conversationId: %d, afterSeq: 0) { seq body sender { name } } }`, conv),
	}})
	time.Sleep(1500 * time.Millisecond) // past the HTTP server's read and write timeouts

	body, _ := json.Marshal(map[string]any{"query": fmt.Sprintf(`mutation { sendMessage(input: {conversationId: %d, body: "hi"}) { seq } }`, conv)})
	req, _ := http.NewRequest(http.MethodPost, base+"/query", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token(users[0]))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if typ, p := read(); typ != "next" || p != `{"data":{"messageAdded":{"seq":1,"body":"hi","sender":{"name":"Alice"}}}}` {
		t.Fatalf("subscription: %s %s", typ, p)
	}

	cancel() // SIGTERM
	if typ, p := read(); websocket.CloseStatus(readErr) != websocket.StatusGoingAway {
		t.Fatalf("after shutdown: %s %s, want a 1001 going-away close", typ, p)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
