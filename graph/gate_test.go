package graph_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Attacks seen against production, sent to the whole handler (introspection off, as in
// production): each is refused with BAD_USER_INPUT in a small response, reads no SQL, and
// leaves nothing in Redis.
func TestDocumentGateRefusesTheReportedAttacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	var bomb strings.Builder
	bomb.WriteString("{ ")
	for range 995 {
		bomb.WriteString("x: me { id } x: __typename ")
	}
	bomb.WriteString("}")
	var args strings.Builder
	args.WriteString("{ ")
	for i := range 1000 {
		fmt.Fprintf(&args, "conversation(id: %d) { id } ", i)
	}
	args.WriteString("}")
	junk := strings.Repeat("this is not GraphQL ", 3000) // 60 KB

	for _, tc := range []struct {
		name string
		body map[string]any
		msg  string
	}{
		{"alias bomb", map[string]any{"query": bomb.String()}, "more than 100 aliases"},
		{"argument bomb", map[string]any{"query": args.String()}, "more than 1000 fields"},
		{"introspection", map[string]any{"query": `{ __schema { types { name } } }`}, "introspection is disabled"},
		{"defer", map[string]any{"query": `{ me { ... @defer { id } } }`}, "@defer is not supported"},
		{"junk persisted query", apqBody(junk, sha(junk)), "Unexpected Name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.resetStatements()
			_, _, resp := e.post("", tc.body)
			if codes := resp.codes(); len(codes) != 1 || codes[0] != "BAD_USER_INPUT" || !strings.Contains(resp.Errors[0].Message, tc.msg) {
				t.Fatalf("%+v, want one BAD_USER_INPUT about %q", resp.Errors, tc.msg)
			}
			if len(resp.Errors[0].Message) > 400 || strings.Contains(resp.Errors[0].Message, "not GraphQL this") {
				t.Fatalf("the message repeats the document: %s", resp.Errors[0].Message)
			}
			if s := e.statementsSeen(); len(s) != 0 {
				t.Fatalf("SQL: %v", s)
			}
		})
	}
	if keys, err := e.rdb.Keys(context.Background(), "apq:*").Result(); err != nil || len(keys) != 0 {
		t.Fatalf("APQ keys %v %v", keys, err)
	}

	// A GET whose query ends in a long comment is refused by size, whatever it selects.
	u := e.URL + "/query?query=" + url.QueryEscape("{ __typename } #"+strings.Repeat("c", 100<<10))
	res, err := http.DefaultClient.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if !strings.Contains(string(raw), "larger than 65536 bytes") || !strings.Contains(string(raw), "BAD_USER_INPUT") || res.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", res.StatusCode, raw)
	}
}
