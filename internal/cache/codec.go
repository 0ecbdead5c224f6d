package cache

import (
	"encoding/json"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// A stored page is compact JSON: short field names, times as Unix microseconds, and no
// conversation id (the key holds it).
type storedPage struct {
	Messages []storedMessage `json:"m"`
	HasMore  bool            `json:"h,omitempty"`
}

type storedMessage struct {
	ID         int64   `json:"i"`
	Seq        int64   `json:"s"`
	SenderID   int64   `json:"u"`
	SenderName string  `json:"n"`
	Body       string  `json:"b"`
	CreatedAt  int64   `json:"t"`
	ClientID   *string `json:"c,omitempty"`
}

func encodePage(p chat.Page) []byte {
	sp := storedPage{Messages: make([]storedMessage, len(p.Messages)), HasMore: p.HasMore}
	for i, m := range p.Messages {
		sp.Messages[i] = storedMessage{
			ID: m.ID, Seq: m.Seq, SenderID: m.SenderID, SenderName: m.SenderName, Body: m.Body,
			CreatedAt: m.CreatedAt.UnixMicro(), ClientID: m.ClientMessageID,
		}
	}
	b, _ := json.Marshal(sp) // cannot fail: plain strings and numbers
	return b
}

func decodePage(b []byte, conversationID int64) (chat.Page, error) {
	var sp storedPage
	if err := json.Unmarshal(b, &sp); err != nil {
		return chat.Page{}, err
	}
	p := chat.Page{Messages: make([]chat.Message, len(sp.Messages)), HasMore: sp.HasMore}
	for i, m := range sp.Messages {
		p.Messages[i] = chat.Message{
			ID: m.ID, ConversationID: conversationID, Seq: m.Seq, SenderID: m.SenderID, SenderName: m.SenderName,
			Body: m.Body, CreatedAt: time.UnixMicro(m.CreatedAt).UTC(), ClientMessageID: m.ClientID,
		}
	}
	return p, nil
}
