package streaming

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/google/go-cmp/cmp"
)

// The next message framed without encoding/json (appendNextFrame) is byte for byte the one
// json.Marshal writes, for data as gqlgen's marshallers write it: compact, strings escaped by
// graphql.MarshalString (which leaves '<', '>', '&', U+2028 and U+2029 alone), on both
// subprotocols and for ids that need escaping.
func TestNextFrameMatchesEncodingJSON(t *testing.T) {
	ids := []string{"1", "sub-42", `"quoted"\id`, "<script>&", "tab\tand\u2028line", "é💬", "\xff\xfe"}
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(t *testing.T, proto, id string, data []byte) {
		t.Helper()
		c := &wsConn{proto: proto}
		sink := newWSSink(c, id)
		payload, err := json.Marshal(&graphql.Response{Data: data})
		if err != nil {
			t.Fatalf("data %q is not JSON: %v", data, err)
		}
		typ := "next"
		if proto == ProtocolLegacyWS {
			typ = "data"
		}
		want, err := json.Marshal(wsMessage{Type: typ, ID: id, Payload: payload})
		if err != nil {
			t.Fatal(err)
		}
		got := appendNextFrame([]byte("kept"), sink.nextPrefix, data)
		if diff := cmp.Diff(string(want), strings.TrimPrefix(string(got), "kept")); diff != "" || !bytes.HasPrefix(got, []byte("kept")) {
			t.Errorf("data %q (-want +got):\n%s", data, diff)
		}
		// Escaped once by the maker of a shared result (Direct), framed without escaping again.
		escaped := AppendEscaped(nil, data)
		got = appendEscapedNextFrame([]byte("kept"), sink.nextPrefix, escaped)
		if diff := cmp.Diff(string(want), strings.TrimPrefix(string(got), "kept")); diff != "" || !bytes.HasPrefix(got, []byte("kept")) {
			t.Errorf("data %q escaped first (-want +got):\n%s", data, diff)
		}
		// Escaping is idempotent: data escaped already is framed by either path alike.
		if diff := cmp.Diff(string(escaped), string(AppendEscaped(nil, escaped))); diff != "" {
			t.Errorf("data %q escaped twice (-once +twice):\n%s", data, diff)
		}

	}
	for _, proto := range []string{ProtocolTransportWS, ProtocolLegacyWS} {
		t.Run(proto, func(t *testing.T) {
			for _, id := range ids {
				t.Run("table/"+strconv.Quote(id), func(t *testing.T) {
					for _, data := range []string{
						`{"messageAdded":{"id":"1","body":"hi"}}`,
						`{"a":"<b>&amp;</b>"}`,
						`{"a":"\u2028\u2029"}`,
						"{\"a\":\"\u2028x\u2029\xe2\x80\"}",
						`{"a":"\u00e2\u0080"}`,
						`{"a":null,"b":[1,2.5,-3e7,true,false],"c":{}}`,
						`{"x":"` + "\xe2\x80\xa8" + `"}`,
						`{"x":"` + "\xe2" + `"}`,
						`{"x":"` + "\xff" + `"}`,
						`null`,
					} {
						check(t, proto, id, []byte(data))
					}
				})
			}
			t.Run("random", func(t *testing.T) {
				for range 2000 {
					var buf bytes.Buffer
					writeRandomValue(&buf, rng, 0)
					check(t, proto, ids[rng.IntN(len(ids))], buf.Bytes())
				}
			})
		})
	}
}

// writeRandomValue writes a random JSON value as gqlgen's marshallers write values.
func writeRandomValue(buf *bytes.Buffer, rng *rand.Rand, depth int) {
	n := 4
	if depth < 3 {
		n = 6
	}
	switch rng.IntN(n) {
	case 0:
		graphql.MarshalString(randomString(rng)).MarshalGQL(buf)
	case 1:
		graphql.MarshalInt64(rng.Int64N(1<<40) - 1<<39).MarshalGQL(buf)
	case 2:
		graphql.MarshalBoolean(rng.IntN(2) == 0).MarshalGQL(buf)
	case 3:
		graphql.Null.MarshalGQL(buf)
	case 4:
		buf.WriteByte('{')
		for i := range rng.IntN(5) {
			if i > 0 {
				buf.WriteByte(',')
			}
			graphql.MarshalString(randomString(rng)).MarshalGQL(buf)
			buf.WriteByte(':')
			writeRandomValue(buf, rng, depth+1)
		}
		buf.WriteByte('}')
	default:
		buf.WriteByte('[')
		for i := range rng.IntN(5) {
			if i > 0 {
				buf.WriteByte(',')
			}
			writeRandomValue(buf, rng, depth+1)
		}
		buf.WriteByte(']')
	}
}

func randomString(rng *rand.Rand) string {
	pieces := []string{"a", "Z", "0", " ", "<", ">", "&", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f",
		"\u2028", "\u2029", "\u2027", "\u202a", "é", "€", "💬", "\xe2", "\xe2\x80", "\xff", "\u00e2\u0080"}
	var b strings.Builder
	for range rng.IntN(12) {
		b.WriteString(pieces[rng.IntN(len(pieces))])
	}
	return b.String()
}

// BenchmarkNextFrame: framing one result of a typical messageAdded subscription for one
// subscriber, from data as the executor writes it (appendNextFrame: escaped per subscriber)
// and from data escaped once for all the subscribers of a shared result
// (appendEscapedNextFrame).
//
//	go test ./graph/streaming -run XXX -bench NextFrame -benchmem
func BenchmarkNextFrame(b *testing.B) {
	data := []byte(`{"messageAdded":{"id":"TWVzc2FnZToxMjM0NTY=","seq":1234,"conversationId":"42","body":"load 17: a message of some length, as people write them <b>now & then</b>","createdAt":"2026-12-02T00:31:08.123456Z","sender":{"id":"VXNlcjo5ODc2","name":"Reader 9876"}}}`)
	prefix := newWSSink(&wsConn{proto: ProtocolTransportWS}, "1").nextPrefix
	escaped := AppendEscaped(nil, data)
	buf := make([]byte, 0, 1024)
	b.Run("escaped-per-subscriber", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf = appendNextFrame(buf[:0], prefix, data)
		}
	})
	b.Run("escaped-once", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			buf = appendEscapedNextFrame(buf[:0], prefix, escaped)
		}
	})
}
