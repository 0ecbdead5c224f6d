package graph_test

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// deliveries reads n results of one subscription, each as the raw payload of its message:
// over WebSocket the payload of each next (graphql-ws: data) message, over an event stream
// the data of each next event.
type deliveries func(t *testing.T, n int) []string

func wsDeliveries(s *liveStack, in *instance, proto string, userID int64, query string, vars map[string]any) deliveries {
	s.t.Helper()
	c, _, err := apptest.DialWS(s.t, in.url, apptest.DialOptions{Protocol: proto})
	if err != nil {
		s.t.Fatal(err)
	}
	if err := c.Init(map[string]any{"Authorization": "Bearer " + s.token(userID)}); err != nil {
		s.t.Fatalf("connect: %v", err)
	}
	c.Subscribe("1", query, vars)
	c.Listen()
	return func(t *testing.T, n int) []string {
		t.Helper()
		var out []string
		for len(out) < n {
			m, ok := c.Next(10 * time.Second)
			if !ok {
				t.Fatalf("%s: connection ended after %d results", proto, len(out))
			}
			if m.Type != "next" && m.Type != "data" {
				t.Fatalf("%s: got a %s message (%s), want a result", proto, m.Type, m.Payload)
			}
			out = append(out, string(m.Payload))
		}
		return out
	}
}

func sseDeliveries(s *liveStack, in *instance, userID int64, query string, vars map[string]any) deliveries {
	s.t.Helper()
	sse, err := apptest.OpenSSE(s.t, in.srv.URL+"/query", query, vars, apptest.SSEOptions{Method: http.MethodPost, Authorization: "Bearer " + s.token(userID)})
	if err != nil {
		s.t.Fatal(err)
	}
	if sse.Refusal != nil {
		s.t.Fatalf("event stream refused: %d %s", sse.Status, sse.Refusal.Body)
	}
	return func(t *testing.T, n int) []string {
		t.Helper()
		var out []string
		for len(out) < n {
			ev, ok := sse.Next(t, 10*time.Second)
			if !ok {
				t.Fatalf("event stream ended after %d results", len(out))
			}
			if ev.Event != "next" {
				t.Fatalf("got a %s event (%s), want next", ev.Event, ev.Data)
			}
			out = append(out, string(ev.Data))
		}
		return out
	}
}

// A result delivered from another subscriber's execution (fanout.go: shared bytes, sent by the
// transport without the executor from the second event of a subscription on) is byte for byte
// the result an execution of its own delivers: for each subscription whose events are shared
// and each transport, subscribers of one operation receive exactly what a subscriber of the
// same selection in a document of its own (executed for itself alone) receives, message
// bodies with characters the transports escape included. Each operation is executed once per
// event, whatever its number of subscribers.
func TestSharedDeliveryIsTheExecutedOne(t *testing.T) {
	t.Parallel()
	s := newLiveStack(t)
	users := dbtest.Users(t, s.direct, "Alice", "Bob")
	in := s.instance()
	active := 0.0
	for _, sub := range []struct{ name, query string }{
		{"messageAdded", apptest.MessageAddedQuery},
		{"conversationEvents", eventsSub},
	} {
		t.Run(sub.name, func(t *testing.T) {
			// A conversation of its own: the subscribers of the cases before see none of its
			// events.
			conv := dbtest.Conversation(t, s.direct, sub.name, users...)
			convVars := map[string]any{"c": strconv.FormatInt(conv, 10)}
			// Per transport: two subscribers of the shared operation, and one of the same
			// selection in a document of its own.
			type stream struct {
				name   string
				read   deliveries
				shared bool
			}
			var streams []stream
			alone := func(name string) string { return sub.query + "\n# executed alone: " + name }
			for _, proto := range []string{"graphql-transport-ws", "graphql-ws"} {
				for i := range 2 {
					streams = append(streams, stream{fmt.Sprintf("%s shared %d", proto, i), wsDeliveries(s, in, proto, users[1], sub.query, convVars), true})
				}
				streams = append(streams, stream{proto + " alone", wsDeliveries(s, in, proto, users[1], alone(proto), convVars), false})
			}
			for i := range 2 {
				streams = append(streams, stream{fmt.Sprintf("sse shared %d", i), sseDeliveries(s, in, users[1], sub.query, convVars), true})
			}
			streams = append(streams, stream{"sse alone", sseDeliveries(s, in, users[1], alone("sse"), convVars), false})
			active += float64(len(streams))
			in.waitSubscribed(t, active)

			executions := in.metric(t, "threadline_subscription_executions_total")
			const events = 3
			for i := range events {
				s.send(in, users[0], conv, fmt.Sprintf("%s %d: <b>&amp;</b> \u2028 \"quoted\" é", sub.name, i), "")
			}
			got := map[string][]string{}
			for _, st := range streams {
				got[st.name] = st.read(t, events)
			}
			for _, proto := range []string{"graphql-transport-ws", "graphql-ws", "sse"} {
				want := got[proto+" alone"]
				for i := range 2 {
					name := fmt.Sprintf("%s shared %d", proto, i)
					if diff := cmp.Diff(want, got[name]); diff != "" {
						t.Errorf("%s, against an execution of its own (-want +got):\n%s", name, diff)
					}
				}
			}
			// The shared operation and the three documents of their own: four executions per
			// event.
			if n := in.metric(t, "threadline_subscription_executions_total") - executions; n != 4*events {
				t.Errorf("%v executions for %d events, want %d", n, events, 4*events)
			}
		})
	}
}

// A selection that depends on the viewer is never shared between viewers: each viewer's
// subscriptions share one execution per event, and another viewer's do not use it.
func TestViewerDependentDeliveryIsPerViewer(t *testing.T) {
	t.Parallel()
	s, users, conv := newLiveConv(t)
	in := s.instance()
	const query = `subscription($c: ID!) { messageAdded(conversationId: $c) { id body reactions { emoji count viewerReacted } } }`
	vars := map[string]any{"c": strconv.FormatInt(conv, 10)}
	var streams []deliveries
	for _, viewer := range users {
		for range 2 {
			streams = append(streams, wsDeliveries(s, in, "graphql-transport-ws", viewer, query, vars))
		}
	}
	in.waitSubscribed(t, float64(len(streams)))
	executions := in.metric(t, "threadline_subscription_executions_total")
	shared := in.metric(t, "threadline_subscription_shared_results_total")
	const events = 3
	for i := range events {
		s.send(in, users[0], conv, fmt.Sprintf("per viewer %d", i), "")
	}
	var got [][]string
	for _, read := range streams {
		got = append(got, read(t, events))
	}
	if diff := cmp.Diff(got[0], got[1]); diff != "" {
		t.Errorf("one viewer's two subscriptions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(got[2], got[3]); diff != "" {
		t.Errorf("the other viewer's two subscriptions (-want +got):\n%s", diff)
	}
	if n := in.metric(t, "threadline_subscription_executions_total") - executions; n != float64(len(users)*events) {
		t.Errorf("%v executions for %d events of %d viewers, want one per viewer and event", n, events, len(users))
	}
	if n := in.metric(t, "threadline_subscription_shared_results_total") - shared; n != float64(len(users)*events) {
		t.Errorf("%v shared results for %d events of %d viewers with two subscriptions each, want one per viewer and event", n, events, len(users))
	}
}
