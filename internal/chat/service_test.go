package chat_test

import (
	"context"
	"testing"

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
