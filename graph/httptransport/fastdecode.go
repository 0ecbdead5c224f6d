package httptransport

import (
	"encoding/json"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/99designs/gqlgen/graphql"
)

// fastDecode decodes b, a POST body, into p, a new RawParams, as decodeJSON would, without
// encoding/json's reflection, for the common shape of a GraphQL request. It reports whether it
// did; when it returns false it has left p untouched, and the caller decodes b with
// decodeJSON, which stays the definitive decoder (and gives the error of an invalid body).
//
// It accepts a JSON object, with whitespace around it and nothing else, whose keys are, byte
// for byte, among "query", "operationName", "variables" and "extensions", each at most once:
// query and operationName a string or null, variables and extensions an object or null, its
// values any JSON nested at most maxFastDepth deep. Objects become map[string]any (a key given
// twice: the last value, as encoding/json), arrays []any, numbers json.Number with the literal
// text (decodeJSON's UseNumber), strings string, and null nil; a null leaves a string field
// alone and sets a map to nil. Strings are copied out of b (the caller reuses b), escapes
// decoded as encoding/json does.
//
// It gives up on everything whose decoding by encoding/json is less plain: any other key,
// including a key encoding/json would match case-insensitively ("Query") or that has escapes;
// a key of p given twice (encoding/json merges two objects); a value of the wrong type (an
// error); invalid UTF-8 or an escaped lone surrogate (encoding/json writes U+FFFD); deeper
// nesting; and anything that is not valid JSON. So whenever it returns true, decodeJSON
// would have succeeded with the same p, and otherwise decodeJSON decides.
func fastDecode(b []byte, p *graphql.RawParams) bool {
	d := fastDecoder{b: b}
	d.skipSpace()
	if !d.eat('{') {
		return false
	}
	const (
		hasQuery = 1 << iota
		hasOperationName
		hasVariables
		hasExtensions
	)
	var (
		seen, null           int // the keys given, the keys given null
		query, operationName string
		variables            map[string]any
		extensions           map[string]any
	)
	d.skipSpace()
	if !d.eat('}') {
		for {
			if !d.eat('"') {
				return false
			}
			start := d.i
			for d.i < len(b) && b[d.i] != '"' && b[d.i] != '\\' {
				d.i++
			}
			if !d.eat('"') {
				return false // an escape, or the end of b
			}
			var field int
			switch string(b[start : d.i-1]) {
			case "query":
				field = hasQuery
			case "operationName":
				field = hasOperationName
			case "variables":
				field = hasVariables
			case "extensions":
				field = hasExtensions
			default:
				return false
			}
			if seen&field != 0 {
				return false
			}
			seen |= field
			d.skipSpace()
			if !d.eat(':') {
				return false
			}
			d.skipSpace()
			ok := true
			switch {
			case d.literal("null"):
				null |= field
			case field == hasQuery:
				query, ok = d.stringValue()
			case field == hasOperationName:
				operationName, ok = d.stringValue()
			case field == hasVariables:
				variables, ok = d.objectValue()
			case field == hasExtensions:
				extensions, ok = d.objectValue()
			}
			if !ok {
				return false
			}
			d.skipSpace()
			if d.eat('}') {
				break
			}
			if !d.eat(',') {
				return false
			}
			d.skipSpace()
		}
	}
	d.skipSpace()
	if d.i != len(b) {
		return false
	}
	// A key that is absent leaves its field alone, and so does null for a string
	// (encoding/json ignores it); null for a map sets it to nil.
	if seen&^null&hasQuery != 0 {
		p.Query = query
	}
	if seen&^null&hasOperationName != 0 {
		p.OperationName = operationName
	}
	if seen&hasVariables != 0 {
		p.Variables = variables
	}
	if seen&hasExtensions != 0 {
		p.Extensions = extensions
	}
	return true
}

// maxFastDepth bounds the nesting of the values fastDecode decodes (the request's object is
// depth 1, variables 2); deeper ones go to encoding/json, whose bound is 10,000.
const maxFastDepth = 64

// fastDecoder reads JSON from b at i. Its methods return false on anything they do not decode
// exactly as encoding/json would, leaving i wherever it got.
type fastDecoder struct {
	b []byte
	i int
}

func (d *fastDecoder) skipSpace() {
	for d.i < len(d.b) {
		switch d.b[d.i] {
		case ' ', '\t', '\n', '\r':
			d.i++
		default:
			return
		}
	}
}

// eat consumes c if it is next.
func (d *fastDecoder) eat(c byte) bool {
	if d.i < len(d.b) && d.b[d.i] == c {
		d.i++
		return true
	}
	return false
}

// literal consumes lit (true, false, null) if it is next.
func (d *fastDecoder) literal(lit string) bool {
	if len(d.b)-d.i >= len(lit) && string(d.b[d.i:d.i+len(lit)]) == lit {
		d.i += len(lit)
		return true
	}
	return false
}

// stringValue reads a string (not another value).
func (d *fastDecoder) stringValue() (string, bool) {
	if d.i < len(d.b) && d.b[d.i] == '"' {
		return d.string()
	}
	return "", false
}

// objectValue reads an object (not another value) at depth 2, a field of the request.
func (d *fastDecoder) objectValue() (map[string]any, bool) {
	if d.i < len(d.b) && d.b[d.i] == '{' {
		return d.object(2)
	}
	return nil, false
}

// value reads any JSON value nested at depth (of its container).
func (d *fastDecoder) value(depth int) (any, bool) {
	if d.i >= len(d.b) {
		return nil, false
	}
	switch c := d.b[d.i]; c {
	case '"':
		return d.string()
	case '{':
		m, ok := d.object(depth + 1)
		return m, ok
	case '[':
		return d.array(depth + 1)
	case 't':
		return true, d.literal("true")
	case 'f':
		return false, d.literal("false")
	case 'n':
		return nil, d.literal("null")
	default:
		return d.number()
	}
}

// object reads an object at depth, at its '{'.
func (d *fastDecoder) object(depth int) (map[string]any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	d.i++
	m := make(map[string]any)
	d.skipSpace()
	if d.eat('}') {
		return m, true
	}
	for {
		if d.i >= len(d.b) || d.b[d.i] != '"' {
			return nil, false
		}
		k, ok := d.string()
		if !ok {
			return nil, false
		}
		d.skipSpace()
		if !d.eat(':') {
			return nil, false
		}
		d.skipSpace()
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		m[k] = v // a key given twice: the last value, as encoding/json
		d.skipSpace()
		if d.eat('}') {
			return m, true
		}
		if !d.eat(',') {
			return nil, false
		}
		d.skipSpace()
	}
}

// array reads an array at depth, at its '['.
func (d *fastDecoder) array(depth int) ([]any, bool) {
	if depth > maxFastDepth {
		return nil, false
	}
	d.i++
	a := make([]any, 0) // empty, not nil, as encoding/json
	d.skipSpace()
	if d.eat(']') {
		return a, true
	}
	for {
		v, ok := d.value(depth)
		if !ok {
			return nil, false
		}
		a = append(a, v)
		d.skipSpace()
		if d.eat(']') {
			return a, true
		}
		if !d.eat(',') {
			return nil, false
		}
		d.skipSpace()
	}
}

// number reads a number in the JSON grammar, -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?,
// as its literal text. What follows it is the caller's to check.
func (d *fastDecoder) number() (json.Number, bool) {
	b, start := d.b, d.i
	d.eat('-')
	switch {
	case d.eat('0'):
	case d.i < len(b) && b[d.i] >= '1' && b[d.i] <= '9':
		d.digits()
	default:
		return "", false
	}
	if d.eat('.') && !d.digits() {
		return "", false
	}
	if d.eat('e') || d.eat('E') {
		if !d.eat('+') {
			d.eat('-')
		}
		if !d.digits() {
			return "", false
		}
	}
	return json.Number(b[start:d.i]), true
}

// digits consumes [0-9]* and reports whether there was one.
func (d *fastDecoder) digits() bool {
	start := d.i
	for d.i < len(d.b) && d.b[d.i] >= '0' && d.b[d.i] <= '9' {
		d.i++
	}
	return d.i > start
}

// string reads a string, at its opening quote, into a copy: the bytes between the quotes
// when they are valid UTF-8 without an escape or a control character, else unescape's.
func (d *fastDecoder) string() (string, bool) {
	b := d.b
	d.i++
	start := d.i
	ascii := true
	for d.i < len(b) {
		switch c := b[d.i]; {
		case c == '"':
			s := b[start:d.i]
			d.i++
			if !ascii && !utf8.Valid(s) {
				return "", false // encoding/json writes U+FFFD for an invalid byte
			}
			return string(s), true
		case c == '\\':
			return d.unescape(start)
		case c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		d.i++
	}
	return "", false
}

// unescape reads the rest of a string that has an escape at i, from its start (after the
// opening quote), decoding as encoding/json does but for an escaped lone surrogate, which it
// gives up on (encoding/json writes U+FFFD for it).
func (d *fastDecoder) unescape(start int) (string, bool) {
	b := d.b
	if !utf8.Valid(b[start:d.i]) {
		return "", false
	}
	// The string's length in b bounds its decoded length: one allocation.
	end := d.i
	for end < len(b) && b[end] != '"' {
		if b[end] == '\\' {
			end++
		}
		end++
	}
	var out strings.Builder
	out.Grow(min(end, len(b)) - start)
	out.Write(b[start:d.i])
	for d.i < len(b) {
		// A run of plain ASCII is copied at once: a document sent by a generated client has an
		// escape (\n, \t) every few bytes.
		j := d.i
		for j < len(b) && b[j] >= ' ' && b[j] < utf8.RuneSelf && b[j] != '"' && b[j] != '\\' {
			j++
		}
		out.Write(b[d.i:j])
		d.i = j
		if d.i == len(b) {
			break
		}
		c := b[d.i]
		switch {
		case c == '"':
			d.i++
			return out.String(), true
		case c < ' ':
			return "", false
		case c >= utf8.RuneSelf:
			r, size := utf8.DecodeRune(b[d.i:])
			if r == utf8.RuneError && size == 1 {
				return "", false
			}
			out.Write(b[d.i : d.i+size])
			d.i += size
		default: // a backslash
			if d.i+1 >= len(b) {
				return "", false
			}
			e := b[d.i+1]
			d.i += 2
			switch e {
			case '"', '\\', '/':
				out.WriteByte(e)
			case 'b':
				out.WriteByte('\b')
			case 'f':
				out.WriteByte('\f')
			case 'n':
				out.WriteByte('\n')
			case 'r':
				out.WriteByte('\r')
			case 't':
				out.WriteByte('\t')
			case 'u':
				r, ok := hex4(b, d.i)
				if !ok {
					return "", false
				}
				d.i += 4
				if utf16.IsSurrogate(r) {
					if d.i+6 > len(b) || b[d.i] != '\\' || b[d.i+1] != 'u' {
						return "", false
					}
					lo, ok := hex4(b, d.i+2)
					if !ok {
						return "", false
					}
					r = utf16.DecodeRune(r, lo)
					if r == utf8.RuneError {
						return "", false
					}
					d.i += 6
				}
				out.WriteRune(r)
			default:
				return "", false
			}
		}
	}
	return "", false
}
