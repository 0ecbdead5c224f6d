package localcache

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The tracking connection speaks RESP3 itself: it sends a handful of commands (HELLO, CLIENT
// TRACKING, PING) and reads replies and push messages in the order Redis wrote them, which is
// the order the barrier relies on. go-redis hides that order (push notifications are handled
// apart from replies), so this is a small reader of its own.

// reply is one RESP3 value: a string (simple, bulk, verbatim, error), a number, or an
// aggregate (array, set, map, push) of values.
type reply struct {
	kind  byte // the RESP3 type byte: '+', '-', ':', '$', '*', '%', '~', '>', '_', '#', ',', '(', '=', '!'
	str   string
	elems []reply
	null  bool
}

// isPush reports whether r is a push message of the given kind ("invalidate").
func (r reply) isPush(kind string) bool {
	return r.kind == '>' && len(r.elems) > 0 && r.elems[0].str == kind
}

// err returns the error a reply carries, if it is one.
func (r reply) err() error {
	if r.kind == '-' || r.kind == '!' {
		return errors.New("redis: " + r.str)
	}
	return nil
}

// maxAggregate bounds the elements of one aggregate read, and maxBulk the bytes of one string:
// far above anything Redis sends this connection (an invalidation carries the keys of one
// event-loop iteration).
const (
	maxAggregate = 1 << 20
	maxBulk      = 64 << 20
)

// readReply reads one value from rd, skipping RESP3 attributes.
func readReply(rd *bufio.Reader) (reply, error) {
	line, err := readLine(rd)
	if err != nil {
		return reply{}, err
	}
	if len(line) == 0 {
		return reply{}, errors.New("resp3: empty line")
	}
	kind, rest := line[0], string(line[1:])
	switch kind {
	case '+', '-', ':', '#', ',', '(':
		return reply{kind: kind, str: rest}, nil
	case '_':
		return reply{kind: kind, null: true}, nil
	case '$', '=', '!':
		n, err := strconv.Atoi(rest)
		if err != nil || n > maxBulk {
			return reply{}, fmt.Errorf("resp3: bad length %q", rest)
		}
		if n < 0 {
			return reply{kind: kind, null: true}, nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return reply{}, err
		}
		s := string(buf[:n])
		if kind == '=' && len(s) >= 4 { // verbatim: "txt:" then the text
			s = s[4:]
		}
		return reply{kind: kind, str: s}, nil
	case '*', '~', '>', '%', '|':
		n, err := strconv.Atoi(rest)
		if err != nil || n > maxAggregate {
			return reply{}, fmt.Errorf("resp3: bad length %q", rest)
		}
		if n < 0 {
			return reply{kind: kind, null: true}, nil
		}
		if kind == '%' || kind == '|' {
			n *= 2
		}
		r := reply{kind: kind, elems: make([]reply, 0, n)}
		for range n {
			e, err := readReply(rd)
			if err != nil {
				return reply{}, err
			}
			r.elems = append(r.elems, e)
		}
		if kind == '|' { // an attribute precedes the value it describes: skip it
			return readReply(rd)
		}
		return r, nil
	}
	return reply{}, fmt.Errorf("resp3: unknown type %q", kind)
}

// readLine reads one CRLF-terminated line without its terminator.
func readLine(rd *bufio.Reader) ([]byte, error) {
	line, err := rd.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("resp3: line too long")
		}
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return nil, errors.New("resp3: line without CRLF")
	}
	return line[:len(line)-2], nil
}

// appendCommand appends args as a RESP command (an array of bulk strings).
func appendCommand(dst []byte, args ...string) []byte {
	dst = append(dst, '*')
	dst = strconv.AppendInt(dst, int64(len(args)), 10)
	dst = append(dst, '\r', '\n')
	for _, a := range args {
		dst = append(dst, '$')
		dst = strconv.AppendInt(dst, int64(len(a)), 10)
		dst = append(dst, '\r', '\n')
		dst = append(dst, a...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}
