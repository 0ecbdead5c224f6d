package httptransport

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// fastDecodeSeeds cover every branch of fastDecode: what it takes, and what it leaves to
// decodeJSON, valid or not.
var fastDecodeSeeds = []string{
	// Realistic requests.
	pageRequest,
	`{"query":"mutation SendMessage($input: SendMessageInput!) { sendMessage(input: $input) { id seq } }","operationName":"SendMessage","variables":{"input":{"conversationId":"42","body":"hello, world","clientId":"c-7f3a","attachments":[]}}}`,
	`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}},"variables":{"conversationId":"1"},"operationName":"MessagesPage"}`,
	`{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`,
	`{"query":"{ user(name: \"Alice\") { id } }"}`,
	`{"query":"{ hello }"}`,
	"  \t\r\n{ \"query\" : \"{ hello }\" ,\n\t\"variables\" :\r{ \"a\" : [ 1 , 2 ] } }\n ",
	`{}`,
	` {} `,
	`{"query":"","operationName":"","variables":{},"extensions":{}}`,
	// Null values.
	`{"query":null,"operationName":null,"variables":null,"extensions":null}`,
	`{"query":"{ hello }","variables":{"a":null,"b":[null,null],"c":{"d":null}}}`,
	// Nested arrays and objects, every literal.
	`{"variables":{"a":[[[]],[{}],[1,"x",true,false,null,{"b":[{"c":[]}]}]]}}`,
	`{"variables":{"t":true,"f":false,"n":null,"s":"","o":{},"a":[]}}`,
	// Numbers of every form.
	`{"variables":{"a":0,"b":-0,"c":1,"d":-1,"e":1234567890123456789012345678901234567890,"f":0.5,"g":-0.25,"h":1e10,"i":1E10,"j":1e+10,"k":1e-10,"l":-1.5E-300,"m":0e0,"n":9007199254740993}}`,
	`{"variables":{"a":[0,-0,1.0,10,1e1,1E+1,1e-1,0.0000001]}}`,
	`{"variables":{"a":01}}`,
	`{"variables":{"a":1.}}`,
	`{"variables":{"a":.5}}`,
	`{"variables":{"a":+1}}`,
	`{"variables":{"a":1e}}`,
	`{"variables":{"a":1e+}}`,
	`{"variables":{"a":-}}`,
	`{"variables":{"a":0x10}}`,
	`{"variables":{"a":NaN}}`,
	`{"variables":{"a":Infinity}}`,
	`{"variables":{"a":1.5.5}}`,
	`{"variables":{"a":--1}}`,
	// Escapes and unicode.
	`{"query":"a\"b\\c\/d\be\ff\ng\rh\ti"}`,
	`{"query":"\u0041\u00e9\u4e2d\uD83D\uDE00\ud83d\ude00\u0000\u001f\uFFFD"}`,
	`{"variables":{"k\"ey":"v\u00e9","\u0041":"x"}}`,
	`{"query":"café 中文 😀"}`,
	"{\"query\":\"caf\xc3\xa9 \\n\"}",
	`{"query":"\ud800"}`,
	`{"query":"\udc00"}`,
	`{"query":"\ud800\u0041"}`,
	`{"query":"\ud800x"}`,
	`{"query":"\ud83d\\ude00"}`,
	`{"query":"\x"}`,
	`{"query":"\'"}`,
	`{"query":"\u12"}`,
	`{"query":"\u12G4"}`,
	`{"query":"\"}`,
	"{\"query\":\"a\x01b\"}",
	"{\"query\":\"a\x7fb\"}",
	"{\"query\":\"a\tb\"}",
	"{\"query\":\"\xff\"}",
	"{\"query\":\"\xed\xa0\x80\"}",
	"{\"query\":\"\\n\xff\"}",
	"{\"query\":\"\xff\\n\"}",
	"{\"query\":\"\xef\xbf\xbd\"}",
	"{\"query\":\"\\n\x01\"}",
	`{"query":"\t é 中 😀 \u00e9"}`,
	`{"query":"\ud800\uZZZZ"}`,
	`{"query":"\ud800\u12"}`,
	`{"query":"\`,
	`{"query":"\n\`,
	`{"query":"\n`,
	"{\"variables\":{\"\xff\":1}}",
	// Duplicate keys.
	`{"query":"a","query":"b"}`,
	`{"variables":{"a":1},"variables":{"b":2}}`,
	`{"variables":{"a":1},"variables":null}`,
	`{"query":null,"query":"b"}`,
	`{"variables":{"a":1,"a":2}}`,
	`{"variables":{"a":{"x":1},"a":{"y":2}}}`,
	`{"variables":{"a":1,"\u0061":2}}`,
	// Keys of other cases and spellings, and other keys.
	`{"Query":"{ hello }"}`,
	`{"QUERY":"{ hello }"}`,
	`{"operationname":"A","OperationName":"B"}`,
	`{"Variables":{"a":1}}`,
	`{"EXTENSIONS":{}}`,
	`{"\u0071uery":"{ hello }"}`,
	`{"query ":"{ hello }"}`,
	`{"headers":{"a":"b"}}`,
	`{"id":"1","query":"{ hello }"}`,
	`{"query":"{ hello }","variables":{},"extra":[1,2,3]}`,
	"{\"qu\x00ery\":\"x\"}",
	`{"quer`,
	`{"query`,
	// Values of the wrong type.
	`{"query":1}`,
	`{"query":true}`,
	`{"query":{}}`,
	`{"query":[]}`,
	`{"operationName":["A"]}`,
	`{"variables":"{\"a\":1}"}`,
	`{"variables":[]}`,
	`{"variables":1}`,
	`{"variables":true}`,
	`{"extensions":"x"}`,
	// Not an object.
	`null`,
	`[]`,
	`"query"`,
	`1`,
	``,
	` `,
	`{`,
	`}`,
	// Trailing garbage, truncation, bad punctuation.
	`{"query":"{ hello }"}x`,
	`{"query":"{ hello }"}{}`,
	`{"query":"{ hello }"} null`,
	`{"query":"{ hello }"}}`,
	"{\"query\":\"{ hello }\"}\x00",
	"\ufeff{\"query\":\"{ hello }\"}",
	"{\"query\":\"{ hello }\"}\v",
	"{\"query\":\"{ hello }\"}\f",
	`{"query":"{ hello }",}`,
	`{"query":"{ hello }",,"operationName":"A"}`,
	`{,"query":"{ hello }"}`,
	`{"query" "{ hello }"}`,
	`{"query"::"{ hello }"}`,
	`{"query":"{ hello }" "operationName":"A"}`,
	`{'query':'{ hello }'}`,
	`{query:"{ hello }"}`,
	`{"query":"{ hello }"`,
	`{"query":"{ hello }`,
	`{"query":`,
	`{"query"`,
	`{"variables":{"a":[1,2,]}}`,
	`{"variables":{"a":[,1]}}`,
	`{"variables":{"a":[1 2]}}`,
	`{"variables":{"a":1,}}`,
	`{"variables":{"a"}}`,
	`{"variables":{"a":}}`,
	`{"variables":{1:1}}`,
	`{"variables":{"a":[}}`,
	`{"variables":{"a":{]}}`,
	`{"variables":{"a":tru}}`,
	`{"variables":{"a":truex}}`,
	`{"variables":{"a":nul}}`,
	`{"variables":{"a":nulll}}`,
	`{"variables":{"a":False}}`,
	`{"variables":{"a":undefined}}`,
	`{"variables":{"a":1}`,
	`{"variables":{"a":[1]`,
	`{"variables":{"a":`,
	`{"variables":{"a":[`,
	`{"variables":{"a":[1,`,
	// Deep nesting: at fastDecode's bound, past it, unbalanced.
	`{"variables":{"a":` + strings.Repeat("[", 62) + strings.Repeat("]", 62) + `}}`,
	`{"variables":{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}}`,
	`{"variables":{"a":` + strings.Repeat(`{"b":`, 70) + `1` + strings.Repeat("}", 70) + `}}`,
	`{"variables":{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 99) + `}}`,
	// Past encoding/json's bound, which it refuses.
	`{"variables":{"a":` + strings.Repeat("[", 10001) + strings.Repeat("]", 10001) + `}}`,
}

func decodeWithJSON(b []byte) (graphql.RawParams, error) {
	var p graphql.RawParams
	err := decodeJSON(b, &p)
	return p, err
}

// FuzzFastDecode: whenever fastDecode decodes a body, decodeJSON decodes it to the same
// RawParams; when it does not, it leaves its RawParams alone.
func FuzzFastDecode(f *testing.F) {
	for _, s := range fastDecodeSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got graphql.RawParams
		if !fastDecode(b, &got) {
			if !reflect.DeepEqual(got, graphql.RawParams{}) {
				t.Fatalf("fastDecode(%q) gave up but wrote %#v", b, got)
			}
			return
		}
		want, err := decodeWithJSON(b)
		if err != nil {
			t.Fatalf("fastDecode(%q) decoded what decodeJSON refuses (%v): %#v", b, err, got)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("fastDecode(%q):\n got %#v\nwant %#v", b, got, want)
		}
	})
}

// TestFastDecodeTakes: the requests clients send are decoded by fastDecode, not left to
// encoding/json.
func TestFastDecodeTakes(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		want graphql.RawParams
	}{
		{"page", pageRequest, graphql.RawParams{
			Query:         "query MessagesPage($conversationId: ID!, $limit: Int, $offset: Int) { conversation(id: $conversationId) { messages(limit: $limit, offset: $offset) { items { id } } } }",
			OperationName: "MessagesPage",
			Variables:     map[string]any{"conversationId": "1", "limit": json.Number("50"), "offset": json.Number("0")},
		}},
		{"sendMessage", `{"query":"mutation SendMessage($input: SendMessageInput!) { sendMessage(input: $input) { id } }","operationName":"SendMessage","variables":{"input":{"conversationId":"42","body":"héllo 😀","clientId":"c-1","replyTo":null,"tags":["a",1.5e3,true]}}}`, graphql.RawParams{
			Query:         "mutation SendMessage($input: SendMessageInput!) { sendMessage(input: $input) { id } }",
			OperationName: "SendMessage",
			Variables: map[string]any{"input": map[string]any{
				"conversationId": "42", "body": "héllo 😀", "clientId": "c-1", "replyTo": nil,
				"tags": []any{"a", json.Number("1.5e3"), true},
			}},
		}},
		{"persisted query", `{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38"}}}`, graphql.RawParams{
			Extensions: map[string]any{"persistedQuery": map[string]any{
				"version": json.Number("1"), "sha256Hash": "ecf4edb46db40b5132295c0291d62fb65d6759a9eedfa4d5d612dd5ec54a6b38",
			}},
		}},
		{"escapes", `{"query":"{ user(name: \"Al\\ice\") { id } }\n","variables":{"s":"\u00e9\ud83d\ude00\tç中"}}`, graphql.RawParams{
			Query:     "{ user(name: \"Al\\ice\") { id } }\n",
			Variables: map[string]any{"s": "é😀\tç中"},
		}},
		{"nulls and whitespace", " {\n\t\"query\" : \"{ hello }\" , \"operationName\":null,\r\n\"variables\":null } ", graphql.RawParams{
			Query: "{ hello }",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got graphql.RawParams
			if !fastDecode([]byte(tc.body), &got) {
				t.Fatalf("fastDecode gave up on %s", tc.body)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v\nwant %#v", got, tc.want)
			}
			if want, err := decodeWithJSON([]byte(tc.body)); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("decodeJSON: %#v, %v", want, err)
			}
		})
	}
}

// TestFastDecodeGivesUp: what encoding/json decodes otherwise than plainly, or refuses, is
// left to it.
func TestFastDecodeGivesUp(t *testing.T) {
	for _, body := range []string{
		`{"Query":"{ hello }"}`,                // encoding/json matches keys case-insensitively
		`{"\u0071uery":"{ hello }"}`,           // and unescapes them
		`{"query":"a","query":"b"}`,            // a key given twice
		`{"variables":{"a":1},"variables":{}}`, // encoding/json merges the two
		`{"id":"1","query":"{ hello }"}`,       // a key RawParams does not have
		`{"variables":"{}"}`,                   // an error
		`{"query":"\ud800"}`,                   // encoding/json writes U+FFFD
		"{\"query\":\"\xff\"}",                 // so too
		`{"variables":{"a":01}}`,               // not JSON
		`{"query":"{ hello }"} x`,              // so too
		`null`,                                 // not an object: no query, which ReadPOST says
		`{"variables":{"a":` + strings.Repeat("[", 63) + strings.Repeat("]", 63) + `}}`, // too deep
	} {
		var p graphql.RawParams
		if fastDecode([]byte(body), &p) {
			t.Errorf("fastDecode took %s", body)
		}
	}
}
