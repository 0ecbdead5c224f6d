package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
	"github.com/threadline/threadline/internal/testenv"
)

// TestTypingWithRedisDown stops Redis under a running server. Typing and presence live in Redis
// only, so: setTyping and new typing subscriptions are refused with SERVICE_UNAVAILABLE (no
// Redis text reaches the client); Conversation.typing reads empty and User.online false, the rest
// of the query served from PostgreSQL without an error; an open typing subscription stays open
// and still sees the typist stop when their 6 s run out. Redis back, typing works again without a
// restart and the open subscription receives again.
func TestTypingWithRedisDown(t *testing.T) {
	t.Parallel()
	testenv.Stack(t) // skips under -short
	rds := apptest.StartRedis(t)
	srv := apptest.Start(t, apptest.Options{RedisURL: rds.URL(), Configure: func(c *app.Config) {
		c.RedisBreakerOpen = 500 * time.Millisecond
	}})
	u := dbtest.Users(t, srv.Direct, "Alice", "Bob")
	alice, bob := u[0], u[1]
	conv := dbtest.Conversation(t, srv.Direct, "c", alice, bob)
	dbtest.Messages(t, srv.Direct, conv, u, 5)
	c := apptest.ID(conv)
	const (
		setTyping = `mutation($c: ID!) { setTyping(conversationId: $c, typing: true) }`
		sub       = `subscription($c: ID!) { typing(conversationId: $c) { user { name } typing } }`
		read      = `query($c: ID!) { conversation(id: $c) { title typing { id } members { name online } messages(limit: 5) { items { seq } } } }`
	)
	type event struct {
		Name   string
		Typing bool
	}
	next := func(ws *apptest.WS, timeout time.Duration) event {
		t.Helper()
		m, _ := ws.Next(timeout)
		var p struct {
			Data struct {
				Typing struct {
					User   struct{ Name string }
					Typing bool
				}
			}
		}
		if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil {
			t.Fatalf("want a typing event, got %s %s", m.Type, m.Payload)
		}
		return event{p.Data.Typing.User.Name, p.Data.Typing.Typing}
	}
	watch := srv.Dial(t, bob)
	watch.Subscribe("t", sub, vars{"c": c})
	if res := srv.Client(alice).Must(t, setTyping, vars{"c": c}); !res.OK() {
		t.Fatalf("setTyping before the outage: %d %+v", res.Status, res.Errors)
	}
	if diff := cmp.Diff(event{"Alice", true}, next(watch, 10*time.Second)); diff != "" {
		t.Fatalf("before the outage (-want +got):\n%s", diff)
	}
	stoppedAt := time.Now()
	rds.Stop(t)

	res := srv.Client(alice).Must(t, setTyping, vars{"c": c})
	if diff := cmp.Diff([]string{"SERVICE_UNAVAILABLE"}, res.Codes()); diff != "" {
		t.Fatalf("setTyping with Redis down (-want +got):\n%s\n%s", diff, res.Body)
	}
	for _, leak := range []string{"redis", "dial", "connection refused", "127.0.0.1"} {
		if strings.Contains(strings.ToLower(res.Errors[0].Message), leak) {
			t.Fatalf("the refusal leaks %q: %s", leak, res.Errors[0].Message)
		}
	}
	var got struct {
		Conversation struct {
			Title   string
			Typing  []struct{ ID string }
			Members []struct {
				Name   string
				Online bool
			}
			Messages struct{ Items []struct{ Seq int } }
		}
	}
	srv.Client(bob).Query(t, read, vars{"c": c}, &got) // fails on any error
	if len(got.Conversation.Typing) != 0 || len(got.Conversation.Messages.Items) != 5 || got.Conversation.Title != "c" {
		t.Fatalf("read with Redis down: %+v", got.Conversation)
	}
	for _, m := range got.Conversation.Members {
		if m.Online {
			t.Fatalf("%s online with Redis down", m.Name)
		}
	}
	late := srv.Dial(t, alice)
	late.Subscribe("late", sub, vars{"c": c})
	m, _ := late.Next(10 * time.Second)
	if m.Type != "next" || !strings.Contains(string(m.Payload), `"SERVICE_UNAVAILABLE"`) {
		t.Fatalf("subscribing with Redis down: %s %s", m.Type, m.Payload)
	}
	// Alice's 6 s run out during the outage: Bob's open subscription sees her stop.
	if diff := cmp.Diff(event{"Alice", false}, next(watch, 15*time.Second)); diff != "" {
		t.Fatalf("expiry during the outage (-want +got):\n%s", diff)
	}
	t.Logf("typing:false %v after Redis stopped", time.Since(stoppedAt).Round(time.Millisecond))

	rds.Restart(t)
	// Alice types on: once calls go through and Bob's subscription is back, he sees her.
	deadline := time.Now().Add(20 * time.Second)
	for {
		srv.Client(alice).Must(t, setTyping, vars{"c": c})
		if m, ok := watch.TryNext(); ok {
			var p struct {
				Data struct{ Typing struct{ Typing bool } }
			}
			if m.Type != "next" || json.Unmarshal(m.Payload, &p) != nil || !p.Data.Typing.Typing {
				t.Fatalf("after the outage: %s %s", m.Type, m.Payload)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no typing event 20s after Redis came back")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

type vars = map[string]any
