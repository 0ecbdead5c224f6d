package graph_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/threadline/threadline/db/dbtest"
)

// TestGraphQLOverHTTP runs the GraphQL-over-HTTP cases through the whole server: middleware,
// authentication, the transports of package httptransport and the real resolvers. Package
// httptransport's own tests cover every case one by one.
func TestGraphQLOverHTTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := newFixture(t, e, 5)
	bearer := "Bearer " + e.token(f.alice)
	const (
		gqlJSON   = "application/graphql-response+json; charset=utf-8"
		plainJSON = "application/json; charset=utf-8"
	)
	messagesBefore := dbtest.Count(t, e.direct, "SELECT count(*) FROM messages")
	sendMessage := fmt.Sprintf(`mutation { sendMessage(input: {conversationId: "%d", body: "over GET", clientMessageId: "get-1"}) { id } }`, f.conv)
	page := fmt.Sprintf(`{ conversation(id: "%d") { messages(limit: 2) { items { seq body } hasMore } } }`, f.conv)

	for _, tc := range []struct {
		name        string
		method      string
		body        string     // the query of a POST body
		rawBody     string     // a POST body as is, instead
		params      url.Values // GET parameters
		contentType string
		accept      string
		authz       string
		status      int
		wantType    string
		wantData    bool
		wantCode    string // extensions.code of the first error, "" for none
		allow       string
	}{
		{name: "POST query", method: "POST", body: page, accept: "application/graphql-response+json", authz: bearer,
			status: 200, wantType: gqlJSON, wantData: true},
		{name: "POST query, no Accept", method: "POST", body: page, authz: bearer,
			status: 200, wantType: plainJSON, wantData: true},
		{name: "anonymous __typename", method: "POST", body: `{ __typename }`, accept: "application/graphql-response+json",
			status: 200, wantType: gqlJSON, wantData: true},
		// A field error (the viewer is missing) nulls the data; the request was executed: 200.
		{name: "field error", method: "POST", body: `{ me { id } }`, accept: "application/graphql-response+json",
			status: 200, wantType: gqlJSON, wantData: true, wantCode: "UNAUTHENTICATED"},
		{name: "validation error, graphql-response+json", method: "POST", body: `{ me { nope } }`, accept: "application/graphql-response+json", authz: bearer,
			status: 400, wantType: gqlJSON, wantCode: "BAD_USER_INPUT"},
		{name: "validation error, json", method: "POST", body: `{ me { nope } }`, accept: "application/json", authz: bearer,
			status: 200, wantType: plainJSON, wantCode: "BAD_USER_INPUT"},
		{name: "parse error, graphql-response+json", method: "POST", body: `{ me `, accept: "application/graphql-response+json", authz: bearer,
			status: 400, wantType: gqlJSON, wantCode: "BAD_USER_INPUT"},
		{name: "malformed JSON", method: "POST", rawBody: `{"query": `, accept: "application/graphql-response+json",
			status: 400, wantType: gqlJSON, wantCode: "BAD_USER_INPUT"},
		{name: "unsupported Content-Type", method: "POST", body: page, contentType: "text/plain", authz: bearer,
			status: 415, wantType: plainJSON, wantCode: "BAD_USER_INPUT"},
		{name: "GET query", method: "GET", params: url.Values{"query": {page}}, accept: "application/graphql-response+json", authz: bearer,
			status: 200, wantType: gqlJSON, wantData: true},
		{name: "GET mutation", method: "GET", params: url.Values{"query": {sendMessage}}, accept: "application/graphql-response+json", authz: bearer,
			status: 405, wantType: gqlJSON, wantCode: "BAD_USER_INPUT", allow: "POST"},
		{name: "GET mutation, json", method: "GET", params: url.Values{"query": {sendMessage}}, authz: bearer,
			status: 405, wantType: plainJSON, wantCode: "BAD_USER_INPUT", allow: "POST"},
		{name: "PUT", method: "PUT", body: sendMessage, authz: bearer,
			status: 405, wantType: plainJSON, wantCode: "BAD_USER_INPUT", allow: "GET, POST, OPTIONS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target := e.URL + "/query"
			var body io.Reader
			switch {
			case tc.method == "GET":
				target += "?" + tc.params.Encode()
			case tc.rawBody != "":
				body = strings.NewReader(tc.rawBody)
			default:
				b, _ := json.Marshal(map[string]string{"query": tc.body})
				body = strings.NewReader(string(b))
			}
			req, _ := http.NewRequest(tc.method, target, body)
			ct := tc.contentType
			if ct == "" && body != nil {
				ct = "application/json"
			}
			if ct != "" {
				req.Header.Set("Content-Type", ct)
			}
			if tc.accept != "" {
				req.Header.Set("Accept", tc.accept)
			}
			if tc.authz != "" {
				req.Header.Set("Authorization", tc.authz)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status {
				t.Errorf("status = %d, want %d\n%s", res.StatusCode, tc.status, raw)
			}
			if got := res.Header.Get("Content-Type"); got != tc.wantType {
				t.Errorf("Content-Type = %q, want %q", got, tc.wantType)
			}
			if got := res.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow = %q, want %q", got, tc.allow)
			}
			var out struct {
				Data   json.RawMessage `json:"data"`
				Errors []gqlError      `json:"errors"`
			}
			if err := json.Unmarshal(raw, &out); err != nil {
				t.Fatalf("not a GraphQL response: %v\n%s", err, raw)
			}
			if (out.Data != nil) != tc.wantData {
				t.Errorf("data present = %v, want %v\n%s", out.Data != nil, tc.wantData, raw)
			}
			code := ""
			if len(out.Errors) > 0 {
				code, _ = out.Errors[0].Extensions["code"].(string)
			}
			if code != tc.wantCode {
				t.Errorf("error code = %q, want %q\n%s", code, tc.wantCode, raw)
			}
			if tc.wantData && tc.wantCode == "" && strings.Contains(tc.body+tc.params.Get("query"), "messages") && !strings.Contains(string(raw), `"seq":5`) {
				t.Errorf("no messages in %s", raw)
			}
		})
	}
	if n := dbtest.Count(t, e.direct, "SELECT count(*) FROM messages"); n != messagesBefore {
		t.Errorf("messages: %d, want %d: a mutation ran over GET or PUT", n, messagesBefore)
	}
}
