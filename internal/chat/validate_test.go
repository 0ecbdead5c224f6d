package chat_test

import (
	"testing"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

func TestNormalizeBody(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		ok             bool
	}{
		{"trimmed", "  hello \n", "hello", true},
		{"newline and tab kept", "a\n\tb", "a\n\tb", true},
		{"CRLF becomes LF", "a\r\nb", "a\nb", true},
		{"emoji", "👍🏽", "👍🏽", true},
		{"accent on a letter", "e\u0301", "e\u0301", true},
		{"literal replacement character", "\uFFFD", "\uFFFD", true},
		{"empty", "", "", false},
		{"white space only", " \n\t ", "", false},
		{"zero-width space only", "\u200B\u200B", "", false},
		{"joiners and BOM only", "\u200D\u2060\uFEFF", "", false},
		{"combining marks only", "\u0301\u0302", "", false},
		{"variation selector only", "\uFE0F", "", false},
		{"Hangul filler only", "\u3164", "", false},
		{"braille blank only", "\u2800 \u2800", "", false},
		{"NUL", "a\x00b", "", false},
		{"bell", "a\x07b", "", false},
		{"lone CR", "a\rb", "", false},
		{"escape", "a\x1b[31mb", "", false},
		{"C1 control", "a\u0085b", "", false},
		{"invalid UTF-8", "a\xffb", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chat.NormalizeBody(tc.in)
			if tc.ok {
				if err != nil || got != tc.want {
					t.Fatalf("NormalizeBody(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
				}
				return
			}
			if pub := apperr.Public(err); pub == nil || pub.Code != apperr.BadUserInput {
				t.Fatalf("NormalizeBody(%q) = %q, %v; want BAD_USER_INPUT", tc.in, got, err)
			}
			if _, err := chat.NormalizeTitle(tc.in); err == nil {
				t.Fatalf("NormalizeTitle(%q) accepted", tc.in)
			}
		})
	}
}
