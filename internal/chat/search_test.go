package chat_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/threadline/threadline/internal/chat"
)

func TestSearchArgs(t *testing.T) {
	ptr := func(n int) *int { return &n }
	str := func(s string) *string { return &s }
	at := time.Date(2026, 11, 25, 20, 5, 54, 123456000, time.UTC)
	cursor := chat.EncodeSearchCursor(chat.SearchCursor{CreatedAt: at, ID: 42})
	for _, tc := range []struct {
		name  string
		query string
		first *int
		after *string
		want  chat.MessageSearch
		ok    bool
	}{
		{"defaults", "hello", nil, nil, chat.MessageSearch{Query: "hello", First: 20}, true},
		{"trimmed", "  \"big news\" OR -spam  ", ptr(1), nil, chat.MessageSearch{Query: `"big news" OR -spam`, First: 1}, true},
		{"first 100", "x", ptr(100), nil, chat.MessageSearch{Query: "x", First: 100}, true},
		{"after a cursor", "x", nil, &cursor, chat.MessageSearch{Query: "x", First: 20, After: &chat.SearchCursor{CreatedAt: at, ID: 42}}, true},
		{"200 characters", strings.Repeat("é", 200), nil, nil, chat.MessageSearch{Query: strings.Repeat("é", 200), First: 20}, true},
		{"only punctuation (matches nothing)", "!?*", nil, nil, chat.MessageSearch{Query: "!?*", First: 20}, true},
		{"first 0", "x", ptr(0), nil, chat.MessageSearch{}, false},
		{"first 101", "x", ptr(101), nil, chat.MessageSearch{}, false},
		{"empty", "", nil, nil, chat.MessageSearch{}, false},
		{"blank", "   ", nil, nil, chat.MessageSearch{}, false},
		{"201 characters", strings.Repeat("a", 201), nil, nil, chat.MessageSearch{}, false},
		{"a newline", "a\nb", nil, nil, chat.MessageSearch{}, false},
		{"a tab", "a\tb", nil, nil, chat.MessageSearch{}, false},
		{"a NUL", "a\x00b", nil, nil, chat.MessageSearch{}, false},
		{"not UTF-8", "a\xffb", nil, nil, chat.MessageSearch{}, false},
		{"a message cursor", "x", nil, str(chat.EncodeMessageCursor(3)), chat.MessageSearch{}, false},
		{"garbage cursor", "x", nil, str("not a cursor"), chat.MessageSearch{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := chat.SearchArgs(tc.query, tc.first, tc.after)
			if !tc.ok {
				badInput(t, tc.name, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSearchCursor(t *testing.T) {
	for _, c := range []chat.SearchCursor{
		{CreatedAt: time.Date(2026, 11, 25, 20, 5, 54, 123456000, time.UTC), ID: 1},
		{CreatedAt: time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC), ID: 1 << 62},
		{CreatedAt: time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC), ID: 7},
	} {
		got, err := chat.DecodeSearchCursor("after", chat.EncodeSearchCursor(c))
		if err != nil || !got.CreatedAt.Equal(c.CreatedAt) || got.ID != c.ID {
			t.Errorf("%+v: got %+v, %v", c, got, err)
		}
	}
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, cursor := range []string{
		"", "!!!", enc("s:1"), enc("s:1:0"), enc("s:1:-1"), enc("s:01:1"), enc("s:1:01"), enc("s:+1:1"),
		enc("s:x:1"), enc("s:1:1:1"), enc("m:1"), enc("c:1:1"),
		enc("s:-62135596800000001:1"), // before year 1
		enc("s:253402300800000000:1"), // year 10000
		enc("s:99999999999999999999:1"),
		chat.EncodeSearchCursor(chat.SearchCursor{CreatedAt: time.Unix(1, 0), ID: 1}) + "=",
	} {
		if _, err := chat.DecodeSearchCursor("after", cursor); err == nil {
			t.Errorf("cursor %q accepted", cursor)
		} else {
			badInput(t, cursor, err)
		}
	}
}

// mark puts the Store's match marks around each {braced} word.
func mark(s string) string {
	return strings.NewReplacer("{", string(chat.MatchStart), "}", string(chat.MatchEnd)).Replace(s)
}

func TestSnippet(t *testing.T) {
	long := strings.Repeat("lorem ipsum ", 30) // 360 characters
	for _, tc := range []struct {
		name, marked, want string
	}{
		{"a short body whole", "the {deploy} is done", "the **deploy** is done"},
		{"every match", "{Deploy} now, {deploy} later", "**Deploy** now, **deploy** later"},
		{"adjacent matches are one", "{foo}{bar} baz", "**foobar** baz"},
		{"the body's asterisks and backslashes escaped", `**bold** {word} a*b C:\dir \*`, `\*\*bold\*\* **word** a\*b C:\\dir \\\*`},
		{"a match in asterisks", `*{word}*`, `\***word**\*`},
		{"HTML and Markdown as written", `<b>{bold}</b> & <script>x</script> _{it}_ [link](http://x)`, `<b>**bold**</b> & <script>x</script> _**it**_ [link](http://x)`},
		{"white space collapsed", "\n  line\tone\n\n{two}  \n", "line one **two**"},
		{"no match marked: the beginning", "plain text", "plain text"},
		{"empty", "", ""},
		{"exactly SnippetChars", strings.Repeat("a", chat.SnippetChars), strings.Repeat("a", chat.SnippetChars)},
		{
			"a match far in: a window from a word boundary before it",
			long + "the {needle} is here " + long,
			"…lorem ipsum lorem ipsum lorem ipsum the **needle** is here" + strings.Repeat(" lorem ipsum", 8) + " lorem…",
		},
		{
			"a match at the start: cut at the end only",
			"{needle} " + long,
			"**needle**" + strings.Repeat(" lorem ipsum", 12) + " lorem…",
		},
		{
			"a match at the end",
			long + "{needle}",
			"…lorem ipsum lorem ipsum lorem ipsum **needle**",
		},
		{
			"no space before the match: starts at the match",
			strings.Repeat("x", 300) + "{needle} end",
			"…**needle** end",
		},
		{
			"a match longer than the window: cut and closed",
			"see {" + strings.Repeat("u", 300) + "}",
			"see **" + strings.Repeat("u", chat.SnippetChars-4) + "**…",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := chat.Snippet(mark(tc.marked))
			if got != tc.want {
				t.Errorf("(-want +got):\n%s", cmp.Diff(tc.want, got))
			}
			if n := utf8.RuneCountInString(unescapeSnippet(got)); n > chat.SnippetChars+2 {
				t.Errorf("%d characters shown", n)
			}
		})
	}
}

// unescapeSnippet returns a snippet's text as a reader sees it: markers gone, escapes undone.
func unescapeSnippet(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		case s[i] == '*' && i+1 < len(s) && s[i+1] == '*':
			i++
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func FuzzSnippet(f *testing.F) {
	f.Add("the {deploy} is **done**")
	f.Add(strings.Repeat("lorem ipsum ", 30) + `{needle} \*` + strings.Repeat(" dolor", 40))
	f.Fuzz(func(t *testing.T, marked string) {
		if !utf8.ValidString(marked) {
			return
		}
		s := chat.Snippet(mark(marked))
		// Markers pair up; every other asterisk and backslash is escaped.
		markers := 0
		for i := 0; i < len(s); i++ {
			switch {
			case s[i] == '\\':
				if i+1 == len(s) || (s[i+1] != '\\' && s[i+1] != '*') {
					t.Fatalf("%q: a lone backslash in %q", marked, s)
				}
				i++
			case s[i] == '*':
				if i+1 == len(s) || s[i+1] != '*' {
					t.Fatalf("%q: a lone asterisk in %q", marked, s)
				}
				markers++
				i++
			}
		}
		if markers%2 != 0 {
			t.Fatalf("%q: unpaired markers in %q", marked, s)
		}
		text := strings.TrimSuffix(strings.TrimPrefix(unescapeSnippet(s), "…"), "…")
		unmarked := strings.NewReplacer(string(chat.MatchStart), "", string(chat.MatchEnd), "").Replace(mark(marked))
		plain := strings.Join(strings.Fields(unmarked), " ")
		if !strings.Contains(plain, text) || utf8.RuneCountInString(text) > chat.SnippetChars {
			t.Fatalf("%q: snippet %q is not a window of %q", marked, s, plain)
		}
	})
}

func FuzzDecodeSearchCursor(f *testing.F) {
	f.Add(chat.EncodeSearchCursor(chat.SearchCursor{CreatedAt: time.Unix(1764100000, 123456000), ID: 9}))
	f.Fuzz(func(t *testing.T, cursor string) {
		c, err := chat.DecodeSearchCursor("after", cursor)
		if err != nil {
			badInput(t, cursor, err)
			return
		}
		if c.ID < 1 || chat.EncodeSearchCursor(c) != cursor {
			t.Fatalf("%q decodes to %+v, which encodes to %q", cursor, c, chat.EncodeSearchCursor(c))
		}
	})
}
