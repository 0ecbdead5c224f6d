package chat_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/chat"
)

// insertOnly is a chat.Store whose InsertMessage answers as a store does for a retried
// clientMessageId: the original message, created=false.
type insertOnly struct {
	chat.Store
	created bool
}

func (s insertOnly) InsertMessage(_ context.Context, m chat.NewMessage) (chat.Change, bool, error) {
	msg := &chat.Message{ID: 7, ConversationID: m.ConversationID, Seq: 3, SenderID: m.SenderID, Body: m.Body, ClientMessageID: m.ClientMessageID}
	ev := &chat.MessageAdded{EventHeader: chat.EventHeader{EventSeq: 5, ConversationID: m.ConversationID}, Message: msg}
	return chat.Change{ConversationID: m.ConversationID, Event: ev, Members: []int64{m.SenderID}}, s.created, nil
}

// A retry that returns the original runs the after-send hooks as a first send does: the
// original's own request may have failed after its commit, before running them.
func TestSendMessageHooksRunForRetries(t *testing.T) {
	for _, created := range []bool{true, false} {
		var got []int64
		svc := chat.NewService(insertOnly{created: created}, chat.Hook{Name: "record", Run: func(_ context.Context, c chat.Change) {
			got = append(got, chat.EventMessage(c.Event).Seq)
		}})
		id := "client-1"
		m, err := svc.SendMessage(context.Background(), 1, chat.NewMessage{ConversationID: 2, Body: "hi", ClientMessageID: &id})
		if err != nil || m.ID != 7 {
			t.Fatalf("created=%v: %+v %v", created, m, err)
		}
		if len(got) != 1 || got[0] != 3 {
			t.Errorf("created=%v: hooks saw %v, want seq 3 once", created, got)
		}
	}
}

// TestAfterCommitWait runs the hooks of a send behind a blocked one: with a Wait, while Bounded
// says so, the send answers without them, every hook that had not returned is told so before
// the answer (Late), in order, and the hooks then finish in the background, in order; without a
// Wait, or while Bounded says no, it waits.
func TestAfterCommitWait(t *testing.T) {
	for _, tc := range []struct {
		name    string
		wait    time.Duration
		bounded bool // what ServiceConfig.Bounded says
		// answersFirst: the send answers while the second hook is blocked.
		answersFirst bool
		wantLate     []string
	}{
		{name: "no wait", wait: 0, bounded: true, answersFirst: false, wantLate: nil},
		{name: "wait, redis answering", wait: 20 * time.Millisecond, bounded: false, answersFirst: false, wantLate: nil},
		{name: "wait, redis failing", wait: 20 * time.Millisecond, bounded: true, answersFirst: true, wantLate: []string{"blocked", "after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var ran, late []string
			var observed []int
			record := func(list *[]string, name string) {
				mu.Lock()
				*list = append(*list, name)
				mu.Unlock()
			}
			release := make(chan struct{})
			hook := func(name string, block bool) chat.Hook {
				return chat.Hook{
					Name: name,
					Run: func(context.Context, chat.Change) {
						if block {
							<-release
						}
						record(&ran, name)
					},
					Late: func(chat.Change) { record(&late, name) },
				}
			}
			finished := make(chan struct{})
			svc := chat.NewServiceConfig(insertOnly{created: true}, chat.ServiceConfig{
				Hooks:   []chat.Hook{hook("first", false), hook("blocked", true), hook("after", false)},
				Wait:    tc.wait,
				Bounded: func() bool { return tc.bounded },
				Observe: func(d int) {
					mu.Lock()
					observed = append(observed, d)
					mu.Unlock()
					if d < 0 {
						close(finished)
					}
				},
			})
			answered := make(chan struct{})
			go func() {
				defer close(answered)
				if _, err := svc.SendMessage(context.Background(), 1, chat.NewMessage{ConversationID: 2, Body: "hi"}); err != nil {
					t.Error(err)
				}
			}()
			select {
			case <-answered:
				if !tc.answersFirst {
					t.Fatal("answered before its hooks returned, without a wait")
				}
			case <-time.After(200 * time.Millisecond): // ten times the wait
				if tc.answersFirst {
					t.Fatal("still waiting for a blocked hook long past the wait")
				}
			}
			mu.Lock()
			if diff := cmp.Diff(tc.wantLate, late); diff != "" {
				t.Errorf("hooks told they are late, at the answer (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{"first"}, ran); diff != "" {
				t.Errorf("hooks run while the second is blocked (-want +got):\n%s", diff)
			}
			mu.Unlock()
			close(release)
			<-answered
			if tc.answersFirst {
				<-finished
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff([]string{"first", "blocked", "after"}, ran); diff != "" {
				t.Errorf("hooks run (-want +got):\n%s", diff)
			}
			var wantObserved []int
			if tc.answersFirst {
				wantObserved = []int{1, -1}
			}
			if diff := cmp.Diff(wantObserved, observed); diff != "" {
				t.Errorf("observed (-want +got):\n%s", diff)
			}
		})
	}
}
