package graph_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// eventsNext is the payload of a conversationEvents next message.
type eventsNext struct {
	Data *struct {
		ConversationEvents *eventView `json:"conversationEvents"`
	} `json:"data"`
	Errors []apptest.Error `json:"errors"`
}

// conversationEvent decodes a conversationEvents result (a next message without errors).
func conversationEvent(m apptest.WSMessage) (eventView, error) {
	if m.Type != "next" {
		return eventView{}, fmt.Errorf("unexpected %s (id %q) %s", m.Type, m.ID, m.Payload)
	}
	var p eventsNext
	if err := json.Unmarshal(m.Payload, &p); err != nil || p.Data == nil || p.Data.ConversationEvents == nil || len(p.Errors) > 0 {
		return eventView{}, fmt.Errorf("next payload %s (%v)", m.Payload, err)
	}
	return *p.Data.ConversationEvents, nil
}

// TestConversationEventsResumeAcrossInstances: under a mixed load of sends, edits, deletes,
// reactions and membership changes through both instances, a subscriber that drops its
// connection twice and resubscribes each time with afterEventSeq = the last eventSeq it saw, on
// the other instance, receives every event once, in order; and Conversation.events(after:),
// paged through on either instance, is the same sequence.
func TestConversationEventsResumeAcrossInstances(t *testing.T) {
	t.Parallel()
	began := time.Now()
	d := newDeployment(t)
	u := dbtest.Users(t, d.direct, "Alice", "Bob", "Carol", "Dave", "Erin")
	alice, bob, carol, dave, erin := u[0], u[1], u[2], u[3], u[4]
	id := apptest.ID
	var created struct{ CreateConversation struct{ ID string } }
	gql(t, d.a, alice, createMut, vars{"t": "Busy", "m": []string{id(bob), id(carol)}}, &created)
	conv, err := strconv.ParseInt(created.CreateConversation.ID, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	c := created.CreateConversation.ID
	servers := []*apptest.Server{d.a, d.b}
	client := concurrentClients(t)

	// The subscriber (Bob, a member throughout) starts on B, from the beginning.
	first := d.b.Dial(t, bob)
	first.Subscribe("ev", eventsSub, vars{"c": c, "after": 0})
	first.Listen()
	waitMetric(t, d.b, "threadline_subscriptions_active", 1)

	// The load: each actor runs its own script, alternating instances.
	const rounds = 40
	load := sync.WaitGroup{}
	loadDone := make(chan struct{})
	messages := func(who int64, name string) func() error {
		return func() error {
			for r := range rounds {
				srv, other := servers[r%2], servers[(r+1)%2]
				var sent struct{ SendMessage struct{ ID string } }
				if err := mutate(client(srv, who), sendMut, vars{"c": c, "b": fmt.Sprintf("%s %d", name, r)}, &sent); err != nil {
					return err
				}
				m := sent.SendMessage.ID
				type step struct {
					srv   *apptest.Server
					query string
					v     vars
				}
				steps := []step{
					{other, editMut, vars{"id": m, "b": fmt.Sprintf("%s %d, edited", name, r)}},
					{srv, addReactionMut, vars{"id": m, "e": "👍"}},
				}
				if r%3 == 0 {
					steps = append(steps, step{other, deleteMut, vars{"id": m}})
				} else {
					steps = append(steps, step{other, addReactionMut, vars{"id": m, "e": "🎉"}}, step{srv, removeReactionMut, vars{"id": m, "e": "🎉"}})
				}
				for _, s := range steps {
					if err := mutate(client(s.srv, who), s.query, s.v, nil); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	actors := []func() error{
		messages(alice, "alice"),
		messages(bob, "bob"),
		func() error { // Carol sends and reacts to her own messages
			for r := range rounds {
				var sent struct{ SendMessage struct{ ID string } }
				if err := mutate(client(servers[r%2], carol), sendMut, vars{"c": c, "b": fmt.Sprint("carol ", r)}, &sent); err != nil {
					return err
				}
				if err := mutate(client(servers[(r+1)%2], carol), addReactionMut, vars{"id": sent.SendMessage.ID, "e": "❤️"}, nil); err != nil {
					return err
				}
			}
			return nil
		},
		func() error { // members come and go; the title changes
			for r := range 30 {
				for i, step := range []struct {
					query string
					v     vars
				}{
					{addMembersMut, vars{"c": c, "u": []string{id(dave), id(erin)}}},
					{removeMemberMut, vars{"c": c, "u": id(dave)}},
					{renameMut, vars{"c": c, "t": fmt.Sprint("Busy, round ", r)}},
					{removeMemberMut, vars{"c": c, "u": id(erin)}},
				} {
					if err := mutate(client(servers[(r+i)%2], alice), step.query, step.v, nil); err != nil {
						return err
					}
				}
			}
			return nil
		},
	}
	for _, act := range actors {
		load.Go(func() {
			if err := act(); err != nil {
				t.Errorf("load: %v", err)
			}
		})
	}
	go func() { load.Wait(); close(loadDone) }()
	defer func() { <-loadDone }() // the load reports to t: it must end before the test does

	// Three legs: B until 150 events, A until 350, then B again to the end. Each leg but the last
	// ends by dropping the connection, losing whatever was in flight.
	var got []eventView
	var last int64
	read := func(ws *apptest.WS, leg string, stopAt int) {
		t.Helper()
		final := int64(-1)
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if stopAt > 0 && len(got) >= stopAt {
				return
			}
			if final < 0 {
				select {
				case <-loadDone:
					final = lastEventSeq(t, d.direct, conv)
				default:
				}
			}
			if final >= 0 && last == final {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d events after 2 minutes, last %d (final %d)", leg, len(got), last, final)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			m, err := ws.Read(ctx)
			cancel()
			if errors.Is(err, context.DeadlineExceeded) {
				continue
			}
			if err != nil {
				t.Fatalf("%s: connection closed after event %d: %v", leg, last, err)
			}
			ev, err := conversationEvent(m)
			if err != nil {
				t.Fatalf("%s: after event %d: %v", leg, last, err)
			}
			if ev.EventSeq != last+1 {
				t.Fatalf("%s: event %d follows %d: every event once, in order", leg, ev.EventSeq, last)
			}
			if ev.ConversationID != c {
				t.Fatalf("%s: event of conversation %s", leg, ev.ConversationID)
			}
			got, last = append(got, ev), ev.EventSeq
		}
	}
	read(first, "first leg, on B", 150)
	first.Drop()
	for i, leg := range []struct {
		name   string
		srv    *apptest.Server
		stopAt int
	}{{"second leg, on A", d.a, 350}, {"third leg, on B", d.b, 0}} {
		// Offline for a while: the load commits events the subscriber must get from the replay.
		committed := lastEventSeq(t, d.direct, conv)
		for wait := time.Now().Add(10 * time.Second); committed < last+40 && time.Now().Before(wait); {
			time.Sleep(5 * time.Millisecond)
			committed = lastEventSeq(t, d.direct, conv)
		}
		ws := leg.srv.Dial(t, bob)
		ws.Subscribe("ev", eventsSub, vars{"c": c, "after": last})
		t.Logf("%s: resubscribed after event %d with %d committed", leg.name, last, committed)
		read(ws, leg.name, leg.stopAt)
		if i == 0 {
			ws.Drop()
		} else {
			ws.Quiet(200 * time.Millisecond)
		}
	}
	<-loadDone
	if t.Failed() {
		return
	}
	kinds := map[string]int{}
	for _, ev := range got {
		kinds[ev.Typename]++
	}
	t.Logf("%d events %v in %v", len(got), kinds, time.Since(began).Round(time.Millisecond))
	if len(kinds) != 7 {
		t.Fatalf("the load made %d kinds of event, want all 7: %v", len(kinds), kinds)
	}
	if got[0].Typename != "MembersAddedEvent" || got[0].EventSeq != 1 {
		t.Fatalf("first event: %+v", got[0])
	}

	// Catch-up by pages gives the same sequence, on either instance, whatever the page size.
	for _, p := range []struct {
		srv   *apptest.Server
		first int
	}{{d.a, 100}, {d.b, 37}} {
		paged := allEvents(t, p.srv, carol, conv, p.first)
		if diff := cmp.Diff(got, paged); diff != "" {
			t.Fatalf("events(after:) by %d differs from the subscription (-subscription +paged):\n%s", p.first, diff)
		}
	}
}

// arrival is a WebSocket message with the time it was read.
type arrival struct {
	m   apptest.WSMessage
	at  time.Time
	err error
}

// arrivals reads ws in the background, timing each message; the channel closes with the
// connection.
func arrivals(ws *apptest.WS) <-chan arrival {
	ch := make(chan arrival, 64)
	go func() {
		defer close(ch)
		for {
			m, err := ws.Read(context.Background())
			ch <- arrival{m, time.Now(), err}
			if err != nil {
				return
			}
		}
	}()
	return ch
}

func nextArrival(t *testing.T, ch <-chan arrival, what string) arrival {
	t.Helper()
	select {
	case a, ok := <-ch:
		if !ok || a.err != nil {
			t.Fatalf("%s: the connection closed: %v", what, a.err)
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: nothing within 10s", what)
	}
	return arrival{}
}

// streamEnd checks that a is the error message that ends subscription id with NOT_FOUND, on the
// subscription's own path.
func streamEnd(t *testing.T, a arrival, id, field string) {
	t.Helper()
	if a.m.Type != "error" || a.m.ID != id {
		t.Fatalf("%s: got %s (id %q) %s, want the error that ends it", field, a.m.Type, a.m.ID, a.m.Payload)
	}
	var errs []apptest.Error
	if err := json.Unmarshal(a.m.Payload, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("%s: error payload %s", field, a.m.Payload)
	}
	if errs[0].Code() != "NOT_FOUND" || !cmp.Equal(errs[0].Path, []any{field}) {
		t.Fatalf("%s ended with %+v, want NOT_FOUND at path [%s]", field, errs[0], field)
	}
}

// TestRemovedMemberLosesEverything: a member removed while holding a messageAdded subscription on
// one instance and a conversationEvents subscription on the other sees both end with NOT_FOUND
// within 1 s (the events stream first receives the MemberRemovedEvent about them); their next
// conversation(id) is null; and a response stored for them before the removal is never served
// again.
func TestRemovedMemberLosesEverything(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	alice, bob, carol := aliceBobCarol(t, d.direct)
	conv := dbtest.Conversation(t, d.direct, "Team", alice, bob, carol)
	dbtest.Messages(t, d.direct, conv, []int64{alice, bob, carol}, 12)
	c, id := apptest.ID(conv), apptest.ID

	// Bob's responses, stored before the removal: on each instance, through the shared Redis.
	full := `query($id: ID!) { conversation(id: $id) { id title lastEventSeq messages(limit: 5) { items { id body } } memberships { user { id } role } } }`
	titleOnly := `query($id: ID!) { conversation(id: $id) { title } }`
	for _, q := range []string{full, titleOnly} {
		if data := storedRead(t, d.a, bob, q, vars{"id": conv}); !strings.Contains(data, `"title":"Team"`) {
			t.Fatalf("before the removal: %s", data)
		}
	}

	onA := d.a.Dial(t, bob)
	onA.Subscribe("messages", apptest.MessageAddedQuery, vars{"c": c})
	onB := d.b.Dial(t, bob)
	onB.Subscribe("events", eventsSub, vars{"c": c})
	waitMetric(t, d.a, "threadline_subscriptions_active", 1)
	waitMetric(t, d.b, "threadline_subscriptions_active", 1)
	messagesA, eventsB := arrivals(onA), arrivals(onB)
	gql(t, d.a, carol, sendMut, vars{"c": c, "b": "still here?"}, nil)
	if m, err := nextArrival(t, messagesA, "messageAdded").m.MessageAdded(); err != nil || m.Seq != 13 {
		t.Fatalf("messageAdded before the removal: %+v %v", m, err)
	}
	if ev, err := conversationEvent(nextArrival(t, eventsB, "conversationEvents").m); err != nil || ev.EventSeq != 13 {
		t.Fatalf("conversationEvents before the removal: %+v %v", ev, err)
	}

	staleBefore := responseStats(t, d.b).StaleRejected
	gql(t, d.a, alice, removeMemberMut, vars{"c": c, "u": id(bob)}, nil)
	removed := time.Now()

	a := nextArrival(t, eventsB, "conversationEvents")
	ev, err := conversationEvent(a.m)
	if err != nil || ev.Typename != "MemberRemovedEvent" || ev.User == nil || ev.User.ID != id(bob) || ev.Actor.ID != id(alice) || ev.EventSeq != 14 {
		t.Fatalf("conversationEvents after the removal: %+v %v", ev, err)
	}
	for _, s := range []struct {
		ch        <-chan arrival
		id, field string
	}{{eventsB, "events", "conversationEvents"}, {messagesA, "messages", "messageAdded"}} {
		end := nextArrival(t, s.ch, s.field)
		streamEnd(t, end, s.id, s.field)
		// Negative when the stream ended before the mutation's answer arrived.
		if took := end.at.Sub(removed); took > time.Second {
			t.Errorf("%s ended %v after removeMember answered, want within 1s", s.field, took)
		} else {
			t.Logf("%s ended %v after removeMember answered (negative: before)", s.field, took.Round(time.Microsecond))
		}
	}
	// Nothing more reaches Bob: a message sent now is not his to see.
	gql(t, d.b, carol, sendMut, vars{"c": c, "b": "after Bob left"}, nil)
	for name, ch := range map[string]<-chan arrival{"messageAdded": messagesA, "conversationEvents": eventsB} {
		select {
		case a := <-ch:
			t.Fatalf("%s after the end: %s %s", name, a.m.Type, a.m.Payload)
		case <-time.After(300 * time.Millisecond):
		}
	}
	waitMetric(t, d.a, "threadline_subscriptions_active", 0)
	waitMetric(t, d.b, "threadline_subscriptions_active", 0)

	// His next conversation(id) is null: the stored responses are refused as stale, on the other
	// instance as on the one that stored them.
	for i, read := range []struct {
		srv   *apptest.Server
		query string
	}{{d.b, full}, {d.a, titleOnly}, {d.a, full}, {d.b, titleOnly}} {
		before := responseStats(t, read.srv)
		res := read.srv.Client(bob).Must(t, read.query, vars{"id": conv})
		after := responseStats(t, read.srv)
		if !res.OK() || string(res.Data) != `{"conversation":null}` {
			t.Fatalf("read %d after the removal: %s %+v", i, res.Data, res.Errors)
		}
		if i < 2 && (after.StaleRejected != before.StaleRejected+1 || after.Hits != before.Hits) {
			t.Fatalf("read %d: the stored response was not refused as stale: %+v then %+v", i, before, after)
		}
	}
	if n := responseStats(t, d.b).StaleRejected - staleBefore; n < 1 {
		t.Fatalf("staleRejected on B moved by %d", n)
	}
	_, metrics := d.a.GetOps("/metrics")
	if !strings.Contains(metrics, "threadline_response_cache_stale_rejected_total") {
		t.Fatal("/metrics has no threadline_response_cache_stale_rejected_total")
	}

	// He is a stranger now: a new subscription is refused as for a missing conversation, and so
	// is a message.
	again := d.b.Dial(t, bob)
	again.Subscribe("again", eventsSub, vars{"c": c, "after": 0})
	if m, _ := again.Next(10 * time.Second); m.Type != "next" || !strings.Contains(string(m.Payload), `"NOT_FOUND"`) {
		t.Fatalf("resubscribing after the removal: %s %s", m.Type, m.Payload)
	}
	gqlRefused(t, d.a, bob, sendMut, vars{"c": c, "b": "let me back"}, "NOT_FOUND")
}
