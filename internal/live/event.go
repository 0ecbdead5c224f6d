package live

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// event is the JSON published on a conversation's channel: the whole message, so that
// subscribers on other instances deliver it without reading PostgreSQL.
type event struct {
	ID              int64     `json:"id"`
	ConversationID  int64     `json:"conversationId"`
	Seq             int64     `json:"seq"`
	SenderID        int64     `json:"senderId"`
	SenderName      string    `json:"senderName"`
	Body            string    `json:"body"`
	CreatedAt       time.Time `json:"createdAt"`
	ClientMessageID *string   `json:"clientMessageId"`
}

func encodeEvent(m *chat.Message) ([]byte, error) {
	return json.Marshal(event{
		ID: m.ID, ConversationID: m.ConversationID, Seq: m.Seq, SenderID: m.SenderID,
		SenderName: m.SenderName, Body: m.Body, CreatedAt: m.CreatedAt, ClientMessageID: m.ClientMessageID,
	})
}

func decodeEvent(payload string) (*chat.Message, error) {
	var e event
	if err := json.Unmarshal([]byte(payload), &e); err != nil {
		return nil, err
	}
	if e.ConversationID < 1 || e.Seq < 1 || e.ID < 1 {
		return nil, errors.New("live: event without conversation, seq or id")
	}
	return &chat.Message{
		ID: e.ID, ConversationID: e.ConversationID, Seq: e.Seq, SenderID: e.SenderID,
		SenderName: e.SenderName, Body: e.Body, CreatedAt: e.CreatedAt, ClientMessageID: e.ClientMessageID,
	}, nil
}
