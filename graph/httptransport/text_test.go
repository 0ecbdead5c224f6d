package httptransport_test

import (
	"testing"

	"github.com/threadline/threadline/graph/httptransport"
)

func TestValidText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{`{"query":"{ me { id } }"}`, true},
		{`{"b":"caf\u00e9 \ud83d\ude00"}`, true}, // a surrogate pair
		{`{"b":"\\ud800"}`, true},                // an escaped backslash, then text
		{`{"b":"\\\ud83d\ude00"}`, true},         // an escaped backslash, then a pair
		{"{\"b\":\"caf\xc3\xa9\"}", true},        // UTF-8
		{"{\"b\":\"\xff\"}", false},              // not UTF-8
		{"{\"b\":\"\xed\xa0\x80\"}", false},      // a surrogate encoded in UTF-8 (CESU)
		{`{"b":"\ud800"}`, false},                // a high surrogate alone
		{`{"b":"\udc00"}`, false},                // a low surrogate alone
		{`{"b":"\ud800\u0041"}`, false},          // high, then not a low one
		{`{"b":"\ud800x"}`, false},               // high, then text
		{`{"b":"\uD800\uDC00"}`, true},           // upper-case hex
		{`{"b":"\\\ud800"}`, false},              // a backslash, then a lone surrogate
	} {
		if got := httptransport.ValidText([]byte(tc.in)); got != tc.want {
			t.Errorf("ValidText(%s) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
