package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/db/dbtest"
)

// The sidebar's selection of a conversation, every per-viewer field included.
const sidebarConversationFields = `id title lastEventSeq unreadCount viewerLastReadSeq
	lastMessage { id seq body createdAt sender { id name } reactions { emoji count viewerReacted } }`

const (
	sidebarFanoutSub = `subscription { viewerEvents { __typename position
	  ... on ConversationActivityEvent { conversation { ` + sidebarConversationFields + ` } }
	  ... on ConversationLeftEvent { conversationId } } }`
	sidebarConversationQuery = `query($id: ID!) { conversation(id: $id) { ` + sidebarConversationFields + ` } }`
)

// TestSidebarSubscribersEachSeeTheirOwn: many subscribers of one conversation on one instance,
// whose reads of each event's conversation go out together (one statement per batch), each
// receive exactly the bytes their own query of the conversation answers right after: their own
// unread count and read position, the shared last message. One viewer holds two streams. A
// member removed gets their ConversationLeftEvent and nothing after it.
func TestSidebarSubscribersEachSeeTheirOwn(t *testing.T) {
	t.Parallel()
	d := newDeployment(t)
	names := []string{"Writer"}
	for i := range 10 {
		names = append(names, fmt.Sprint("Reader ", i))
	}
	u := dbtest.Users(t, d.direct, names...)
	writer, readers := u[0], u[1:]
	conv := dbtest.Conversation(t, d.direct, "busy", u...)
	dbtest.Messages(t, d.direct, conv, []int64{writer, readers[0]}, 6) // Reader 0 sent some: not unread for them
	for i, r := range readers {
		if seq := i % 7; seq > 0 {
			gql(t, d.a, r, markReadMut, vars{"c": apptest.ID(conv), "s": seq}, nil)
		}
	}

	type stream struct {
		viewer int64
		ws     *apptest.WS
	}
	var streams []stream
	for i, r := range readers {
		streams = append(streams, stream{r, d.b.Dial(t, r)})
		if i == 1 { // a second device
			streams = append(streams, stream{r, d.b.Dial(t, r)})
		}
	}
	for _, s := range streams {
		s.ws.Subscribe("side", sidebarFanoutSub, nil)
	}
	waitMetric(t, d.b, "threadline_subscriptions_active", float64(len(streams)))

	// next reads the stream's next event: its type and its conversation as sent.
	next := func(s stream) (string, json.RawMessage) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		m, err := s.ws.Read(ctx)
		if err != nil || m.Type != "next" {
			t.Fatalf("viewer %d: %s %s (%v)", s.viewer, m.Type, m.Payload, err)
		}
		var p struct {
			Data struct {
				ViewerEvents struct {
					Typename     string          `json:"__typename"`
					Conversation json.RawMessage `json:"conversation"`
				} `json:"viewerEvents"`
			} `json:"data"`
			Errors []apptest.Error `json:"errors"`
		}
		if err := json.Unmarshal(m.Payload, &p); err != nil || len(p.Errors) > 0 {
			t.Fatalf("viewer %d: payload %s (%v)", s.viewer, m.Payload, err)
		}
		return p.Data.ViewerEvents.Typename, p.Data.ViewerEvents.Conversation
	}
	// checkActivity reads an activity event from each stream and compares its conversation
	// with what the viewer's own query answers (nothing changes in between).
	checkActivity := func(streams []stream) {
		t.Helper()
		for _, s := range streams {
			typ, got := next(s)
			if typ != "ConversationActivityEvent" {
				t.Fatalf("viewer %d got a %s", s.viewer, typ)
			}
			res := d.b.Client(s.viewer).Must(t, sidebarConversationQuery, vars{"id": apptest.ID(conv)})
			var q struct {
				Conversation json.RawMessage `json:"conversation"`
			}
			if err := json.Unmarshal(res.Data, &q); err != nil || len(res.Errors) > 0 {
				t.Fatalf("query as %d: %s %+v (%v)", s.viewer, res.Data, res.Errors, err)
			}
			if !bytes.Equal(got, q.Conversation) {
				t.Errorf("viewer %d:\nevent %s\nquery %s", s.viewer, got, q.Conversation)
			}
		}
	}

	gql(t, d.a, writer, sendMut, vars{"c": apptest.ID(conv), "b": "first"}, nil)
	checkActivity(streams)

	removed := readers[3]
	gql(t, d.a, writer, removeMemberMut, vars{"c": apptest.ID(conv), "u": apptest.ID(removed)}, nil)
	var rest []stream
	for _, s := range streams {
		if s.viewer != removed {
			rest = append(rest, s)
			continue
		}
		if typ, _ := next(s); typ != "ConversationLeftEvent" {
			t.Fatalf("the removed member got a %s", typ)
		}
		defer s.ws.Quiet(300 * time.Millisecond) // after the next message: nothing more
	}
	gql(t, d.a, writer, sendMut, vars{"c": apptest.ID(conv), "b": "second"}, nil)
	checkActivity(rest)
}
