package chat

import (
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/threadline/threadline/internal/apperr"
)

// Input limits. They are part of the API contract and checked before anything is read or written.
const (
	MaxPageSize     = 100   // limit and first: 1..MaxPageSize
	MaxOffset       = 10000 // offset: 0..MaxOffset
	MaxBodyChars    = 4000  // message body, after trimming
	MaxTitleChars   = 200   // conversation title, after trimming
	MaxClientIDLen  = 100   // clientMessageId, in characters
	MaxMembers      = 100   // members named when creating a conversation, or added at once
	MaxEmojiChars   = 32    // a reaction's emoji
	MaxReactions    = 20    // distinct emojis on one message
	MaxSearchChars  = 100   // a user search
	DefaultPageSize = 50
	// DefaultEventPageSize is the size of a page of events when the client names none.
	DefaultEventPageSize = 100
)

// ValidatePageSize checks a limit or first argument.
func ValidatePageSize(field string, n int) error {
	if n < 1 || n > MaxPageSize {
		return apperr.Invalid(field, "must be between 1 and %d", MaxPageSize)
	}
	return nil
}

// ValidateOffset checks an offset argument.
func ValidateOffset(n int) error {
	if n < 0 || n > MaxOffset {
		return apperr.Invalid("offset", "must be between 0 and %d", MaxOffset)
	}
	return nil
}

// NormalizeBody trims a message body and checks its length.
func NormalizeBody(body string) (string, error) {
	return normalizeText("body", body, MaxBodyChars)
}

// NormalizeTitle trims a conversation title and checks its length.
func NormalizeTitle(title string) (string, error) {
	return normalizeText("title", title, MaxTitleChars)
}

// normalizeText checks user text: valid UTF-8, no control character but newline and tab
// (a CRLF line end becomes LF first), 1..maxChars characters after trimming white space, and
// at least one character that shows (not only white space, format characters such as zero-width
// spaces and joiners, combining marks, variation selectors or blank fillers).
func normalizeText(field, s string, maxChars int) (string, error) {
	if !utf8.ValidString(s) {
		return "", apperr.Invalid(field, "must be valid UTF-8 text")
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return "", apperr.Invalid(field, "must not contain control characters other than newline and tab")
		}
	}
	s = strings.TrimSpace(s)
	if n := utf8.RuneCountInString(s); n < 1 || n > maxChars {
		return "", apperr.Invalid(field, "must be 1 to %d characters after trimming", maxChars)
	}
	if !strings.ContainsFunc(s, visible) {
		return "", apperr.Invalid(field, "must contain a visible character")
	}
	return s, nil
}

// visible reports whether r renders as something a reader can see.
func visible(r rune) bool {
	switch {
	case unicode.IsSpace(r), unicode.Is(unicode.Cf, r), unicode.Is(unicode.Mn, r), unicode.Is(unicode.Me, r),
		unicode.Is(unicode.Variation_Selector, r):
		return false
	}
	switch r {
	case '\u115F', '\u1160', '\u3164', '\uFFA0', // Hangul fillers
		'\u2800',           // braille pattern blank
		'\u034F',           // combining grapheme joiner
		'\u180E', '\uFEFF': // Mongolian vowel separator, byte order mark
		return false
	}
	return true
}

// NormalizeEmoji checks a reaction: 1..MaxEmojiChars visible characters without white space
// or control characters (an emoji, or a short code such as ":shipit:").
func NormalizeEmoji(emoji string) (string, error) {
	if !utf8.ValidString(emoji) || strings.ContainsFunc(emoji, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", apperr.Invalid("emoji", "must be an emoji or a short code, without spaces")
	}
	if n := utf8.RuneCountInString(emoji); n < 1 || n > MaxEmojiChars || !strings.ContainsFunc(emoji, visible) {
		return "", apperr.Invalid("emoji", "must be 1 to %d characters", MaxEmojiChars)
	}
	return emoji, nil
}

// normalizeSearch trims a user search and lowers its case; "" matches everyone.
func normalizeSearch(s string) (string, error) {
	if !utf8.ValidString(s) || strings.ContainsFunc(s, unicode.IsControl) {
		return "", apperr.Invalid("search", "must be valid UTF-8 text")
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if utf8.RuneCountInString(s) > MaxSearchChars {
		return "", apperr.Invalid("search", "must be at most %d characters", MaxSearchChars)
	}
	// LIKE's wildcards are the user's letters here.
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s), nil
}

// distinctIDs checks a list of user ids: positive, at most max, and returns them without
// repeats, in order.
func distinctIDs(field string, ids []int64, max int) ([]int64, error) {
	if len(ids) > max {
		return nil, apperr.Invalid(field, "at most %d users", max)
	}
	out := make([]int64, 0, len(ids))
	for _, id := range ids {
		if id < 1 {
			return nil, apperr.Invalid(field, "must be positive integers")
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out, nil
}

// ValidateClientMessageID checks an optional client message id.
func ValidateClientMessageID(id *string) error {
	if id == nil {
		return nil
	}
	if !utf8.ValidString(*id) || strings.ContainsFunc(*id, unicode.IsControl) {
		return apperr.Invalid("clientMessageId", "must be valid UTF-8 text without control characters")
	}
	if n := utf8.RuneCountInString(*id); n < 1 || n > MaxClientIDLen {
		return apperr.Invalid("clientMessageId", "must be 1 to %d characters", MaxClientIDLen)
	}
	return nil
}
