package chat

import (
	"context"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/threadline/threadline/internal/apperr"
)

// Message search (searchMessages): full-text search over the messages of the conversations the
// viewer is a member of, newest first.
//
// The query is in PostgreSQL's websearch syntax (words, "quoted phrases", OR, -word) under the
// 'simple' configuration: words are lower-cased and matched whole, without stemming. Which
// messages match is the Store's business (db/query/search.sql); the service checks the
// arguments, pages, and cuts each hit's snippet.

// Search limits, part of the API contract.
const (
	MaxQueryChars = 200 // a search query, after trimming
	// DefaultSearchPageSize is the size of a search page when the client names none.
	DefaultSearchPageSize = 20
	// SnippetChars is the most characters of the body a snippet shows (markers, escapes and the
	// ellipses aside); SnippetLead is how many of them may precede the first match.
	SnippetChars = 160
	SnippetLead  = 40
)

// MatchStart and MatchEnd are what a Store puts around each matching word of SearchHit.Marked:
// control characters, which a message body never holds (NormalizeBody refuses them), so that
// they cannot be confused with the body's own text.
const (
	MatchStart = '\x01'
	MatchEnd   = '\x02'
)

// SearchCursor is a position in search results, which are ordered newest first by creation time
// then message id: a total order across conversations, so that every hit is on exactly one page.
type SearchCursor struct {
	CreatedAt time.Time
	ID        int64
}

// MessageSearch is a checked search (see SearchArgs).
type MessageSearch struct {
	Query string // trimmed, 1..MaxQueryChars characters, no control characters
	// ConversationID restricts the search to one conversation the viewer is a member of (the
	// caller has checked); 0 searches all of them.
	ConversationID int64
	After          *SearchCursor // nil: from the newest
	First          int
}

// SearchHit is one message that matched.
type SearchHit struct {
	Message Message
	// Marked is the body, as the Store read it, with each matching word between MatchStart and
	// MatchEnd.
	Marked string
	// Snippet is the part of the body shown with the hit (see Snippet); the service sets it.
	Snippet string
}

// SearchPage is one page of search results, newest first.
type SearchPage struct {
	Hits        []SearchHit
	HasNextPage bool
}

// SearchArgs checks the arguments of searchMessages but the conversation, nil standing for their
// defaults. A query is trimmed and must hold 1..MaxQueryChars characters and no control
// characters; the cursor must be one that a search returned.
func SearchArgs(query string, first *int, after *string) (MessageSearch, error) {
	s := MessageSearch{First: DefaultSearchPageSize}
	if first != nil {
		s.First = *first
	}
	if err := ValidatePageSize("first", s.First); err != nil {
		return MessageSearch{}, err
	}
	if !utf8.ValidString(query) || strings.ContainsFunc(query, unicode.IsControl) {
		return MessageSearch{}, apperr.Invalid("query", "must be text without control characters")
	}
	s.Query = strings.TrimSpace(query)
	if n := utf8.RuneCountInString(s.Query); n < 1 || n > MaxQueryChars {
		return MessageSearch{}, apperr.Invalid("query", "must be 1 to %d characters after trimming", MaxQueryChars)
	}
	if after != nil {
		c, err := DecodeSearchCursor("after", *after)
		if err != nil {
			return MessageSearch{}, err
		}
		s.After = &c
	}
	return s, nil
}

// SearchMessages runs a checked search for viewer and cuts each hit's snippet. A query with no
// word to look for (only punctuation, or only excluded words) finds nothing.
func (s *Service) SearchMessages(ctx context.Context, viewer int64, q MessageSearch) (SearchPage, error) {
	hits, err := s.store.SearchMessages(ctx, viewer, q.Query, q.ConversationID, q.After, q.First+1)
	if err != nil {
		return SearchPage{}, err
	}
	page := SearchPage{Hits: hits, HasNextPage: len(hits) > q.First}
	if page.HasNextPage {
		page.Hits = hits[:q.First]
	}
	for i := range page.Hits {
		page.Hits[i].Snippet = Snippet(page.Hits[i].Marked)
	}
	return page, nil
}

// Snippet cuts the part of a marked body (see SearchHit.Marked) shown with a search hit: plain
// text in which each match stands between "**" and "**".
//
//   - The body's own "*" and "\" are escaped as "\*" and "\\", so that "**" is never the body's
//     and a client splits the text unambiguously (a Markdown renderer shows it right as is).
//     Nothing else is escaped or interpreted: HTML and Markdown come back as the sender wrote
//     them, as text.
//   - White space (newlines included) is collapsed to single spaces.
//   - A body longer than SnippetChars characters is cut to a window of that many: from up to
//     SnippetLead characters before the first match, at word boundaries where there are some,
//     with "…" where text was cut. A match cut by the window's end is closed there.
func Snippet(marked string) string {
	type char struct {
		r     rune
		match bool
	}
	chars := make([]char, 0, len(marked))
	in, space := false, false
	for _, r := range marked {
		switch {
		case r == MatchStart:
			in = true
		case r == MatchEnd:
			in = false
		case unicode.IsSpace(r):
			space = len(chars) > 0
		default:
			if space {
				chars = append(chars, char{r: ' '})
				space = false
			}
			chars = append(chars, char{r: r, match: in})
		}
	}

	start, end := 0, len(chars)
	if len(chars) > SnippetChars {
		first := 0 // the first match, or the start when none is marked
		for first < len(chars) && !chars[first].match {
			first++
		}
		if first == len(chars) {
			first = 0
		}
		if start = max(0, first-SnippetLead); start > 0 {
			// Start after a space, if one lies before the match.
			for i := start - 1; i < first; i++ {
				if chars[i].r == ' ' {
					start = i + 1
					break
				}
			}
			if chars[start-1].r != ' ' {
				start = first
			}
		}
		if end = min(len(chars), start+SnippetChars); end < len(chars) && chars[end].r != ' ' {
			// End before a space, if one lies after the first match's start.
			for i := end - 1; i > first; i-- {
				if chars[i].r == ' ' {
					end = i
					break
				}
			}
		}
	}

	var b strings.Builder
	b.Grow(2 * (end - start + 8))
	if start > 0 {
		b.WriteString("…")
	}
	open := false
	for _, c := range chars[start:end] {
		if c.match != open {
			b.WriteString("**")
			open = c.match
		}
		if c.r == '*' || c.r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(c.r)
	}
	if open {
		b.WriteString("**")
	}
	if end < len(chars) {
		b.WriteString("…")
	}
	return b.String()
}
