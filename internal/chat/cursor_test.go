package chat

import (
	"testing"
	"time"

	"github.com/threadline/threadline/internal/apperr"
)

func TestMessageCursorRoundTrip(t *testing.T) {
	for _, seq := range []int64{1, 2, 99, 1 << 40} {
		got, err := DecodeMessageCursor("before", EncodeMessageCursor(seq))
		if err != nil || got != seq {
			t.Fatalf("seq %d: got %d, %v", seq, got, err)
		}
	}
}

func TestConversationCursorRoundTrip(t *testing.T) {
	c := ConversationCursor{LastMessageAt: time.Date(2026, 11, 25, 20, 5, 54, 123456000, time.UTC), ID: 42}
	got, err := DecodeConversationCursor("after", EncodeConversationCursor(c))
	if err != nil || !got.LastMessageAt.Equal(c.LastMessageAt) || got.ID != c.ID {
		t.Fatalf("got %+v, %v", got, err)
	}
}

func TestBadCursorsAreBadUserInput(t *testing.T) {
	for _, cursor := range []string{
		"", "!!!", "bTow" /* m:0 */, "bTotMQ" /* m:-1 */, "bTowMQ" /* m:01 */, "bTp4", /* m:x */
		"YzoxOjE" /* c:1:1, a conversation cursor */, EncodeMessageCursor(1) + "=",
		"bTo5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", /* overflow */
	} {
		if _, err := DecodeMessageCursor("before", cursor); codeOf(err) != apperr.BadUserInput {
			t.Errorf("message cursor %q: %v", cursor, err)
		}
	}
	for _, cursor := range []string{
		"", "bTox", "YzoxOngg", "YzoxOjA", "Yzp4OjE",
		"YzowMTox" /* c:01:1 */, "YzoxOjAx" /* c:1:01 */, "YzorMTox", /* c:+1:1 */
	} {
		if _, err := DecodeConversationCursor("after", cursor); codeOf(err) != apperr.BadUserInput {
			t.Errorf("conversation cursor %q: %v", cursor, err)
		}
	}
}

func TestNormalizeBody(t *testing.T) {
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"hi", "hi", true},
		{"  padded \n", "padded", true},
		{"", "", false},
		{" \t\n ", "", false},
		{string(make([]rune, 0)), "", false},
		{"a\x00b", "", false},
		{"\xff", "", false},
		{string(repeatRune('é', 4000)), string(repeatRune('é', 4000)), true},
		{string(repeatRune('é', 4001)), "", false},
	}
	for _, tc := range cases {
		got, err := NormalizeBody(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("NormalizeBody(%.20q) = %.20q, %v", tc.in, got, err)
		}
		if err != nil && codeOf(err) != apperr.BadUserInput {
			t.Errorf("code %v", codeOf(err))
		}
	}
}

func repeatRune(r rune, n int) []rune {
	out := make([]rune, n)
	for i := range out {
		out[i] = r
	}
	return out
}

// codeOf is err's public code ("" when err is not public).
func codeOf(err error) apperr.Code {
	if pub := apperr.Public(err); pub != nil {
		return pub.Code
	}
	return ""
}
