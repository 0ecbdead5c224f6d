package cache

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

func samplePage() chat.Page {
	p := chat.Page{HasMore: true}
	cid := "client-7"
	for i := range 50 {
		m := chat.Message{
			ID: int64(1000 + i), ConversationID: 42, Seq: int64(200 - i), SenderID: int64(i%5 + 1),
			SenderName: fmt.Sprint("Sender ", i%5), Body: "deploy cache page query latency message thread review ship merge test fix",
			CreatedAt: time.Date(2026, 11, 25, 20, 0, i, 123456000, time.UTC),
		}
		if i%7 == 0 {
			m.ClientMessageID = &cid
		}
		m.Version = 1
		if i%5 == 0 {
			edited := m.CreatedAt.Add(time.Minute)
			m.EditedAt, m.Version = &edited, 2
		}
		if i%11 == 0 {
			deleted := m.CreatedAt.Add(time.Hour)
			m.DeletedAt, m.Body, m.Version = &deleted, "", m.Version+1
		} else if i%3 == 0 {
			m.Reactions = []chat.Reaction{{ConversationID: 42, MessageID: m.ID, Emoji: "👍", Count: 3}, {ConversationID: 42, MessageID: m.ID, Emoji: ":shipit:", Count: 1}}
		}
		p.Messages = append(p.Messages, m)
	}
	return p
}

func TestCodecRoundTrip(t *testing.T) {
	p := samplePage()
	got, err := decodePage(encodePage(p), 42)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip changed the page:\n%v\n%v", got, p)
	}
	raw := encodePage(p)
	for _, bad := range [][]byte{nil, {}, {9, 0}, raw[:len(raw)-1], append(append([]byte{}, raw...), 0), []byte(`{"m":[]}`)} {
		if _, err := decodePage(bad, 42); err == nil {
			t.Fatalf("a malformed page decoded: %q", bad)
		}
	}
}

// BenchmarkDecodePage decodes a stored 50-message page, as every history-cache hit does.
func BenchmarkDecodePage(b *testing.B) {
	raw := encodePage(samplePage())
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodePage(raw, 42); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzDecodePage: no input makes the decoder panic or read out of bounds, and what decodes
// encodes back to the same bytes.
func FuzzDecodePage(f *testing.F) {
	f.Add(encodePage(samplePage()))
	f.Add(encodePage(chat.Page{}))
	f.Add([]byte{1, 1, 200, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := decodePage(b, 7)
		if err != nil {
			return
		}
		if again := encodePage(p); string(again) != string(b) {
			// Varints may be encoded non-minimally in the input; decoding must still agree.
			q, err := decodePage(again, 7)
			if err != nil || !reflect.DeepEqual(p, q) {
				t.Fatalf("re-encoding changed the page")
			}
		}
	})
}
