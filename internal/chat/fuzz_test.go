package chat_test

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// Fuzz targets: go test -fuzz FuzzDecodeMessageCursor ./internal/chat (make fuzz-short runs each
// briefly). Seeds are in testdata/fuzz/.

func badInput(t *testing.T, what string, err error) {
	if pub := apperr.Public(err); pub == nil || pub.Code != apperr.BadUserInput {
		t.Fatalf("%s: error %v is not BAD_USER_INPUT", what, err)
	}
}

func FuzzDecodeMessageCursor(f *testing.F) {
	f.Add(chat.EncodeMessageCursor(1))
	f.Add(chat.EncodeMessageCursor(1 << 62))
	f.Fuzz(func(t *testing.T, cursor string) {
		seq, err := chat.DecodeMessageCursor("before", cursor)
		if err != nil {
			badInput(t, cursor, err)
			return
		}
		if seq < 1 || chat.EncodeMessageCursor(seq) != cursor {
			t.Fatalf("%q decodes to %d, which encodes to %q", cursor, seq, chat.EncodeMessageCursor(seq))
		}
	})
}

func FuzzDecodeConversationCursor(f *testing.F) {
	f.Add("Yzo1OjE")
	f.Fuzz(func(t *testing.T, cursor string) {
		c, err := chat.DecodeConversationCursor("after", cursor)
		if err != nil {
			badInput(t, cursor, err)
			return
		}
		if c.ID < 1 || chat.EncodeConversationCursor(c) != cursor {
			t.Fatalf("%q decodes to %+v, which encodes to %q", cursor, c, chat.EncodeConversationCursor(c))
		}
		again, err := chat.DecodeConversationCursor("after", cursor)
		if err != nil || !again.LastMessageAt.Equal(c.LastMessageAt) || again.ID != c.ID {
			t.Fatalf("%q: %+v does not round-trip: %+v %v", cursor, c, again, err)
		}
	})
}

func FuzzNormalizeText(f *testing.F) {
	f.Add("  hello  ", "title")
	f.Fuzz(func(t *testing.T, body, title string) {
		for _, tc := range []struct {
			in  string
			max int
			fn  func(string) (string, error)
		}{{body, chat.MaxBodyChars, chat.NormalizeBody}, {title, chat.MaxTitleChars, chat.NormalizeTitle}} {
			out, err := tc.fn(tc.in)
			if err != nil {
				badInput(t, tc.in, err)
				continue
			}
			if n := utf8.RuneCountInString(out); !utf8.ValidString(out) || n < 1 || n > tc.max ||
				strings.TrimSpace(out) != out || strings.ContainsFunc(out, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }) ||
				!strings.Contains(strings.ReplaceAll(tc.in, "\r\n", "\n"), out) {
				t.Fatalf("%q normalized to %q", tc.in, out)
			}
		}
		id := body
		if err := chat.ValidateClientMessageID(&id); err != nil {
			badInput(t, id, err)
		} else if n := utf8.RuneCountInString(id); !utf8.ValidString(id) || n < 1 || n > chat.MaxClientIDLen {
			t.Fatalf("client message id %q accepted", id)
		}
	})
}
