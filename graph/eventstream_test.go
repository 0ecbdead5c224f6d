package graph_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// sseSubscriber opens an event stream of messageAdded on conv, on the instance, as userID: a
// POST with the token in the Authorization header, or a GET with it in access_token, as a
// browser's EventSource sends it.
func (s *liveStack) sseSubscriber(in *instance, method string, userID, conv int64, afterSeq *int64) *apptest.SSE {
	s.t.Helper()
	o := apptest.SSEOptions{Method: method}
	if method == http.MethodGet {
		o.AccessToken = s.token(userID)
	} else {
		o.Authorization = "Bearer " + s.token(userID)
	}
	sse, err := apptest.OpenSSE(s.t, in.srv.URL+"/query", apptest.MessageAddedQuery, subVars(conv, afterSeq), o)
	if err != nil {
		s.t.Fatal(err)
	}
	if sse.Refusal != nil {
		s.t.Fatalf("event stream refused: %d %s", sse.Status, sse.Refusal.Body)
	}
	return sse
}

// Over Server-Sent Events as over WebSocket: a subscriber on instance B receives what is sent
// through instance A, past the HTTP server's read and write timeouts; it drops its stream,
// resubscribes with afterSeq = the last seq it saw (on the other instance) and receives exactly
// what it missed, each once, then what follows live. Both ways of asking: POST with an
// Authorization header (graphql-sse), GET with access_token (EventSource).
func TestEventStreamResumesAcrossInstances(t *testing.T) {
	t.Parallel()
	s := newLiveStack(t)
	users := dbtest.Users(t, s.direct, "Alice", "Bob")
	a, b := s.instance(instanceOptions{}), s.instance(instanceOptions{})

	for _, method := range []string{http.MethodPost, http.MethodGet} {
		t.Run(method, func(t *testing.T) {
			conv := dbtest.Conversation(t, s.direct, "General "+method, users...)
			first := s.sseSubscriber(b, method, users[1], conv, nil)
			for _, h := range []struct{ name, want string }{
				{"Content-Type", "text/event-stream; charset=utf-8"}, {"Cache-Control", "no-cache"}, {"X-Accel-Buffering", "no"},
			} {
				if got := first.Header.Get(h.name); got != h.want {
					t.Errorf("%s: %q, want %q", h.name, got, h.want)
				}
			}
			waitSubscriptions(t, b, 1)
			// Past the HTTP server's read and write timeouts: the stream lives on.
			time.Sleep(serverTimeout + 300*time.Millisecond)
			for i := range 10 {
				s.send(a, users[0], conv, fmt.Sprint("m", i), "")
			}
			seen := first.Messages(t, 10, 10*time.Second)
			apptest.CheckSeqs(t, "before the drop", apptest.Seqs(seen), 1, 10)
			if got := seen[0]; got.Body != "m0" || got.Sender.Name != "Alice" || got.ConversationID != apptest.ID(conv) {
				t.Fatalf("first message: %+v", got)
			}
			first.Close() // dropped: what was in flight is lost
			waitSubscriptions(t, b, 0)

			for i := range 15 {
				s.send(a, users[0], conv, fmt.Sprint("n", i), "")
			}
			again := s.sseSubscriber(a, method, users[1], conv, i64(10))
			apptest.CheckSeqs(t, "after resuming", apptest.Seqs(again.Messages(t, 15, 10*time.Second)), 11, 25)
			s.send(b, users[0], conv, "live again", "")
			apptest.CheckSeqs(t, "live after the replay", apptest.Seqs(again.Messages(t, 1, 10*time.Second)), 26, 26)
			quietStream(t, again, 300*time.Millisecond)
			again.Close()
			waitSubscriptions(t, a, 0)
		})
	}
}

// conversationEvents resumes over an event stream as over WebSocket: afterEventSeq = the last
// eventSeq seen gives every later event once, in order.
func TestEventStreamConversationEventsResume(t *testing.T) {
	t.Parallel()
	s := newLiveStack(t)
	users := dbtest.Users(t, s.direct, "Alice", "Bob")
	conv := dbtest.Conversation(t, s.direct, "General", users...)
	a, b := s.instance(instanceOptions{}), s.instance(instanceOptions{})
	c := apptest.ID(conv)
	last := func() int64 {
		var out struct{ Conversation struct{ LastEventSeq int64 } }
		b.srv.Client(users[1]).Query(t, `query($id: ID!) { conversation(id: $id) { lastEventSeq } }`, vars{"id": c}, &out)
		return out.Conversation.LastEventSeq
	}
	events := func(sse *apptest.SSE, n int) []eventView {
		t.Helper()
		var out []eventView
		for len(out) < n {
			ev, ok := sse.Next(t, 10*time.Second)
			if !ok {
				t.Fatalf("the stream ended after %d of %d events", len(out), n)
			}
			var p eventsNext
			if err := json.Unmarshal(ev.Data, &p); ev.Event != "next" || err != nil || p.Data == nil || p.Data.ConversationEvents == nil || len(p.Errors) > 0 {
				t.Fatalf("after %d events: %s %s", len(out), ev.Event, ev.Data)
			}
			out = append(out, *p.Data.ConversationEvents)
		}
		return out
	}
	checkSeqs := func(who string, got []eventView, from, to int64) {
		t.Helper()
		seqs := make([]int64, len(got))
		for i, e := range got {
			seqs[i] = e.EventSeq
		}
		apptest.CheckSeqs(t, who, seqs, from, to)
	}

	start := last()
	first := b.srv.Stream(t, users[1], eventsSub, vars{"c": c, "after": start}, apptest.SSEOptions{})
	waitSubscriptions(t, b, 1)
	for i := range 5 {
		s.send(a, users[0], conv, fmt.Sprint("m", i), "")
	}
	seen := events(first, 5)
	checkSeqs("before the drop", seen, start+1, start+5)
	if seen[0].Typename != "MessageAddedEvent" || seen[0].Actor.ID != apptest.ID(users[0]) {
		t.Fatalf("first event: %+v", seen[0])
	}
	first.Close()
	for i := range 7 {
		s.send(a, users[0], conv, fmt.Sprint("n", i), "")
	}
	again := a.srv.Stream(t, users[1], eventsSub, vars{"c": c, "after": start + 5}, apptest.SSEOptions{Method: http.MethodGet})
	checkSeqs("after resuming", events(again, 7), start+6, start+12)
	if end := last(); end != start+12 {
		t.Fatalf("lastEventSeq %d, want %d", end, start+12)
	}
	quietStream(t, again, 300*time.Millisecond)
}

// waitSubscriptions waits until the instance runs n subscriptions.
func waitSubscriptions(t testing.TB, in *instance, n float64) {
	t.Helper()
	for range 500 {
		if in.metric(t, "threadline_subscriptions_active") == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%v subscriptions active, want %v", in.metric(t, "threadline_subscriptions_active"), n)
}

// quietStream checks that no event arrives for a moment.
func quietStream(t testing.TB, sse *apptest.SSE, d time.Duration) {
	t.Helper()
	select {
	case <-time.After(d):
	case <-sse.Done():
		t.Fatal("the stream ended")
	}
	if ev, ok := sse.TryNext(); ok {
		t.Fatalf("unexpected %s %s", ev.Event, ev.Data)
	}
}
