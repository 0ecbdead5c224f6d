package chat

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/threadline/threadline/internal/apperr"
)

// Cursors are opaque to clients: base64url of a short tagged text. A message cursor holds a
// seq ("m:<seq>"); a conversation cursor holds the list's sort key ("c:<unix-nanos>:<id>"); a
// search cursor the results' sort key ("s:<unix-micros>:<id>").
// Decoding is strict: anything else is BAD_USER_INPUT.

// EncodeMessageCursor returns the cursor of the message with the given seq.
func EncodeMessageCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("m:" + strconv.FormatInt(seq, 10)))
}

// DecodeMessageCursor returns the seq held by a message cursor.
func DecodeMessageCursor(field, cursor string) (int64, error) {
	text, ok := decodeCursor(cursor, "m:")
	if !ok {
		return 0, apperr.Invalid(field, "is not a valid cursor")
	}
	seq, err := strconv.ParseInt(text, 10, 64)
	if err != nil || seq < 1 || strconv.FormatInt(seq, 10) != text {
		return 0, apperr.Invalid(field, "is not a valid cursor")
	}
	return seq, nil
}

// EncodeConversationCursor returns the cursor of a conversation in a conversation list.
func EncodeConversationCursor(c ConversationCursor) string {
	return encodeKeyCursor("c:", c.LastMessageAt.UnixNano(), c.ID)
}

// DecodeConversationCursor returns the position held by a conversation cursor.
func DecodeConversationCursor(field, cursor string) (ConversationCursor, error) {
	nanos, id, ok := decodeKeyCursor(cursor, "c:")
	if !ok {
		return ConversationCursor{}, apperr.Invalid(field, "is not a valid cursor")
	}
	return ConversationCursor{LastMessageAt: time.Unix(0, nanos).UTC(), ID: id}, nil
}

// EncodeUserCursor returns the cursor of a user in the directory: "u:<id>:<lower-case name>".
func EncodeUserCursor(c UserCursor) string {
	return base64.RawURLEncoding.EncodeToString([]byte("u:" + strconv.FormatInt(c.ID, 10) + ":" + c.Name))
}

// DecodeUserCursor returns the position held by a user cursor.
func DecodeUserCursor(field, cursor string) (UserCursor, error) {
	bad := apperr.Invalid(field, "is not a valid cursor")
	text, ok := decodeLongCursor(cursor, "u:", 1200)
	if !ok {
		return UserCursor{}, bad
	}
	idText, name, ok := strings.Cut(text, ":")
	id, err := strconv.ParseInt(idText, 10, 64)
	if !ok || err != nil || id < 1 || strconv.FormatInt(id, 10) != idText || !utf8.ValidString(name) || name != strings.ToLower(name) {
		return UserCursor{}, bad
	}
	return UserCursor{Name: name, ID: id}, nil
}

// EncodeSearchCursor returns the cursor of a search hit: "s:<unix-micros>:<id>" (PostgreSQL
// keeps microseconds).
func EncodeSearchCursor(c SearchCursor) string {
	return encodeKeyCursor("s:", c.CreatedAt.UnixMicro(), c.ID)
}

// DecodeSearchCursor returns the position held by a search cursor.
func DecodeSearchCursor(field, cursor string) (SearchCursor, error) {
	micros, id, ok := decodeKeyCursor(cursor, "s:")
	if !ok || micros < minCursorMicros || micros > maxCursorMicros {
		return SearchCursor{}, apperr.Invalid(field, "is not a valid cursor")
	}
	return SearchCursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}, nil
}

// A search cursor's time lies within years 1 to 9999, well inside what PostgreSQL stores: a
// forged one never reaches the database as a timestamp it refuses.
var (
	minCursorMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxCursorMicros = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

// encodeKeyCursor returns the cursor "<tag><at>:<id>" of a row in a list sorted by (at, id),
// where at is a time as an integer.
func encodeKeyCursor(tag string, at, id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(tag + strconv.FormatInt(at, 10) + ":" + strconv.FormatInt(id, 10)))
}

// decodeKeyCursor reads a cursor made by encodeKeyCursor with tag: both numbers in their one
// decimal spelling, id at least 1.
func decodeKeyCursor(cursor, tag string) (at, id int64, ok bool) {
	text, ok := decodeCursor(cursor, tag)
	if !ok {
		return 0, 0, false
	}
	atText, idText, ok := strings.Cut(text, ":")
	if !ok {
		return 0, 0, false
	}
	at, err1 := strconv.ParseInt(atText, 10, 64)
	id, err2 := strconv.ParseInt(idText, 10, 64)
	if err1 != nil || err2 != nil || id < 1 || strconv.FormatInt(at, 10) != atText || strconv.FormatInt(id, 10) != idText {
		return 0, 0, false
	}
	return at, id, true
}

func decodeCursor(cursor, tag string) (string, bool) { return decodeLongCursor(cursor, tag, 64) }

func decodeLongCursor(cursor, tag string, maxLen int) (string, bool) {
	if len(cursor) == 0 || len(cursor) > maxLen {
		return "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	// One spelling per cursor: the decoder skips newlines and ignores stray padding bits.
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != cursor {
		return "", false
	}
	text, ok := strings.CutPrefix(string(raw), tag)
	return text, ok
}
