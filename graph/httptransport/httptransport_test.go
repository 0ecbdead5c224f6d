package httptransport_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph/httptransport"
)

const (
	gqlJSON   = "application/graphql-response+json; charset=utf-8"
	plainJSON = "application/json; charset=utf-8"
)

// server is a gqlgen server over a small schema, served by the transports under test.
type server struct {
	h         http.Handler
	mutations atomic.Int32 // mutations executed
}

func newServer(t testing.TB) *server {
	t.Helper()
	schema := gqlparser.MustLoadSchema(&ast.Source{Input: `
		type Query { hello: String!  broken: String  echo(n: Int!): Int! }
		type Mutation { send: String! }
		type Subscription { tick: String! }
	`})
	s := &server{}
	srv := handler.New(&graphql.ExecutableSchemaMock{
		SchemaFunc:     func() *ast.Schema { return schema },
		ComplexityFunc: func(context.Context, string, string, int, map[string]any) (int, bool) { return 0, false },
		ExecFunc: func(ctx context.Context) graphql.ResponseHandler {
			op := graphql.GetOperationContext(ctx)
			return graphql.OneShot(s.exec(ctx, op))
		},
	})
	srv.AddTransport(httptransport.GET{})
	srv.AddTransport(httptransport.POST{})
	srv.AddTransport(httptransport.Methods{})
	s.h = srv
	return s
}

// exec stands in for generated code: a field error on "broken", otherwise fixed data.
func (s *server) exec(ctx context.Context, op *graphql.OperationContext) *graphql.Response {
	switch {
	case op.Operation.Operation == ast.Mutation:
		s.mutations.Add(1)
		return &graphql.Response{Data: []byte(`{"send":"sent"}`)}
	case strings.Contains(op.RawQuery, "broken"):
		return &graphql.Response{
			Data:   []byte(`{"broken":null}`),
			Errors: gqlerror.List{{Message: "boom", Path: ast.Path{ast.PathName("broken")}}},
		}
	case strings.Contains(op.RawQuery, "echo"):
		return &graphql.Response{Data: []byte(`{"echo":` + string(mustJSON(op.Variables["n"])) + `}`)}
	}
	return &graphql.Response{Data: []byte(`{"hello":"world"}`)}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

type result struct {
	status int
	header http.Header
	body   map[string]json.RawMessage
	raw    string
}

func (s *server) do(t *testing.T, req *http.Request) result {
	t.Helper()
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	res := result{status: rec.Code, header: rec.Header(), raw: rec.Body.String()}
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &res.body); err != nil {
			t.Fatalf("response is not a JSON object: %v\n%s", err, rec.Body.String())
		}
	}
	return res
}

func post(body, contentType, accept string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return req
}

func get(params url.Values, accept string) *http.Request {
	req := httptest.NewRequest(http.MethodGet, "/query?"+params.Encode(), nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	return req
}

const gqlAccept = "application/graphql-response+json"

// want describes an expected response: status, Content-Type, whether "data" is present and
// whether "errors" is.
type want struct {
	status      int
	contentType string
	data        bool
	errors      bool
}

func (w want) check(t *testing.T, res result) {
	t.Helper()
	if res.status != w.status {
		t.Errorf("status = %d, want %d\n%s", res.status, w.status, res.raw)
	}
	if got := res.header.Get("Content-Type"); got != w.contentType {
		t.Errorf("Content-Type = %q, want %q", got, w.contentType)
	}
	if _, ok := res.body["data"]; ok != w.data {
		t.Errorf("data present = %v, want %v\n%s", ok, w.data, res.raw)
	}
	if _, ok := res.body["errors"]; ok != w.errors {
		t.Errorf("errors present = %v, want %v\n%s", ok, w.errors, res.raw)
	}
	if res.header.Get("Content-Length") == "" {
		t.Error("no Content-Length")
	}
}

func TestPOST(t *testing.T) {
	s := newServer(t)
	ok := func(ct string) want { return want{200, ct, true, false} }
	for _, tc := range []struct {
		name, body, contentType, accept string
		want                            want
	}{
		// Media types.
		{"no Accept", `{"query":"{ hello }"}`, "application/json", "", ok(plainJSON)},
		{"Accept graphql-response+json", `{"query":"{ hello }"}`, "application/json", gqlAccept, ok(gqlJSON)},
		{"Accept json", `{"query":"{ hello }"}`, "application/json", "application/json", ok(plainJSON)},
		{"Accept */*", `{"query":"{ hello }"}`, "application/json", "*/*", ok(plainJSON)},
		{"Accept application/*", `{"query":"{ hello }"}`, "application/json", "application/*", ok(plainJSON)},
		{"graphql-response+json preferred", `{"query":"{ hello }"}`, "application/json", "application/graphql-response+json, application/json;q=0.9", ok(gqlJSON)},
		{"json preferred", `{"query":"{ hello }"}`, "application/json", "application/json, application/graphql-response+json;q=0.5", ok(plainJSON)},
		{"equal quality", `{"query":"{ hello }"}`, "application/json", "application/json;q=0.5, application/graphql-response+json;q=0.5", ok(gqlJSON)},
		{"nothing acceptable", `{"query":"{ hello }"}`, "application/json", "text/html", ok(plainJSON)},
		{"other charset", `{"query":"{ hello }"}`, "application/json", "application/graphql-response+json; charset=iso-8859-1", ok(plainJSON)},
		{"Content-Type with charset", `{"query":"{ hello }"}`, "application/json; charset=utf-8", gqlAccept, ok(gqlJSON)},
		{"mutation", `{"query":"mutation { send }"}`, "application/json", gqlAccept, ok(gqlJSON)},
		{"variables", `{"query":"query($n: Int!) { echo(n: $n) }","variables":{"n":9007199254740993}}`, "application/json", gqlAccept, ok(gqlJSON)},
		{"operationName", `{"query":"query A { hello } query B { hello }","operationName":"B"}`, "application/json", gqlAccept, ok(gqlJSON)},

		// A field error: the request was executed.
		{"field error, graphql-response+json", `{"query":"{ broken }"}`, "application/json", gqlAccept, want{200, gqlJSON, true, true}},
		{"field error, json", `{"query":"{ broken }"}`, "application/json", "", want{200, plainJSON, true, true}},

		// Well-formed but not executed: 400 with graphql-response+json, 200 with json.
		{"parse error, graphql-response+json", `{"query":"{ hello"}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"parse error, json", `{"query":"{ hello"}`, "application/json", "", want{200, plainJSON, false, true}},
		{"validation error, graphql-response+json", `{"query":"{ nope }"}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"validation error, json", `{"query":"{ nope }"}`, "application/json", "application/json", want{200, plainJSON, false, true}},
		{"bad variable, graphql-response+json", `{"query":"query($n: Int!) { echo(n: $n) }","variables":{"n":"x"}}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"bad variable, json", `{"query":"query($n: Int!) { echo(n: $n) }","variables":{"n":"x"}}`, "application/json", "", want{200, plainJSON, false, true}},
		{"missing variable, graphql-response+json", `{"query":"query($n: Int!) { echo(n: $n) }"}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"unknown operation, graphql-response+json", `{"query":"query A { hello }","operationName":"B"}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"ambiguous operation, json", `{"query":"query A { hello } query B { hello }"}`, "application/json", "", want{200, plainJSON, false, true}},

		// Not a well-formed GraphQL-over-HTTP request: 400 whatever the media type.
		{"malformed JSON", `{"query":`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"malformed JSON, json", `nonsense`, "application/json", "", want{400, plainJSON, false, true}},
		{"empty body", ``, "application/json", "", want{400, plainJSON, false, true}},
		{"JSON array", `[{"query":"{ hello }"}]`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"JSON null", `null`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"trailing data", `{"query":"{ hello }"} {}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"missing query", `{"variables":{}}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"missing query, json", `{}`, "application/json", "application/json", want{400, plainJSON, false, true}},
		{"query not a string", `{"query":42}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"variables not an object", `{"query":"{ hello }","variables":"{}"}`, "application/json", gqlAccept, want{400, gqlJSON, false, true}},
		{"extensions not an object", `{"query":"{ hello }","extensions":[]}`, "application/json", "", want{400, plainJSON, false, true}},
		{"operationName not a string", `{"query":"{ hello }","operationName":1}`, "application/json", "", want{400, plainJSON, false, true}},

		// Unsupported Content-Type: 415.
		{"text/plain", `{"query":"{ hello }"}`, "text/plain", gqlAccept, want{415, gqlJSON, false, true}},
		{"no Content-Type", `{"query":"{ hello }"}`, "", "", want{415, plainJSON, false, true}},
		{"application/graphql", `{ hello }`, "application/graphql", "", want{415, plainJSON, false, true}},
		{"form", `query=%7B+hello+%7D`, "application/x-www-form-urlencoded", "", want{415, plainJSON, false, true}},
		{"json in another charset", `{"query":"{ hello }"}`, "application/json; charset=utf-16", "", want{415, plainJSON, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do(t, post(tc.body, tc.contentType, tc.accept))
			tc.want.check(t, res)
			if res.status == 415 && res.header.Get("Accept-Post") != "application/json" {
				t.Errorf("415 without Accept-Post: application/json")
			}
			if res.header.Get("Vary") != "Accept" {
				t.Errorf("Vary = %q, want Accept", res.header.Get("Vary"))
			}
		})
	}
}

// A token in the URL is taken only by the event stream (graph/streaming), from a GET: a POST
// carrying one is refused, not served anonymously.
func TestPOSTRefusesAccessToken(t *testing.T) {
	s := newServer(t)
	req := post(`{"query":"{ hello }"}`, "application/json", "")
	req.URL.RawQuery = "access_token=a.b.c"
	res := s.do(t, req)
	want{400, plainJSON, false, true}.check(t, res)
	if !strings.Contains(res.raw, "access_token is accepted only") {
		t.Errorf("refused with %s", res.raw)
	}
}

func TestPOSTVariablesKeepPrecision(t *testing.T) {
	s := newServer(t)
	res := s.do(t, post(`{"query":"query($n: Int!) { echo(n: $n) }","variables":{"n":9007199254740993}}`, "application/json", ""))
	if got := string(res.body["data"]); got != `{"echo":9007199254740993}` {
		t.Errorf("data = %s: the variable lost digits on the way", got)
	}
}

func TestPOSTBodyTooLarge(t *testing.T) {
	s := newServer(t)
	body := `{"query":"{ hello }","variables":{"pad":"` + strings.Repeat("x", 2000) + `"}}`
	for _, accept := range []string{"", gqlAccept} {
		req := post(body, "application/json", accept)
		rec := httptest.NewRecorder()
		req.Body = http.MaxBytesReader(rec, req.Body, 1000)
		s.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("Accept %q: status %d, want 413\n%s", accept, rec.Code, rec.Body.String())
		}
		if !json.Valid(rec.Body.Bytes()) || !strings.Contains(rec.Body.String(), "too large") {
			t.Errorf("Accept %q: body %s", accept, rec.Body.String())
		}
	}
}

func TestGET(t *testing.T) {
	s := newServer(t)
	q := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		params url.Values
		accept string
		want   want
	}{
		{"query", q("query", "{ hello }"), "", want{200, plainJSON, true, false}},
		{"query, graphql-response+json", q("query", "{ hello }"), gqlAccept, want{200, gqlJSON, true, false}},
		{"variables", q("query", "query($n: Int!) { echo(n: $n) }", "variables", `{"n":3}`), gqlAccept, want{200, gqlJSON, true, false}},
		{"operationName picks the query", q("query", "query A { hello } mutation B { send }", "operationName", "A"), gqlAccept, want{200, gqlJSON, true, false}},
		{"field error", q("query", "{ broken }"), gqlAccept, want{200, gqlJSON, true, true}},
		{"parse error, graphql-response+json", q("query", "{"), gqlAccept, want{400, gqlJSON, false, true}},
		{"parse error, json", q("query", "{"), "", want{200, plainJSON, false, true}},
		{"validation error, graphql-response+json", q("query", "{ nope }"), gqlAccept, want{400, gqlJSON, false, true}},
		{"no query", q(), gqlAccept, want{400, gqlJSON, false, true}},
		{"no query, json", q("operationName", "A"), "", want{400, plainJSON, false, true}},
		{"variables not JSON", q("query", "{ hello }", "variables", "{n:1}"), gqlAccept, want{400, gqlJSON, false, true}},
		{"variables not an object", q("query", "{ hello }", "variables", "[1]"), "", want{400, plainJSON, false, true}},
		{"extensions not JSON", q("query", "{ hello }", "extensions", "x"), gqlAccept, want{400, gqlJSON, false, true}},
		{"access_token", q("query", "{ hello }", "access_token", "a.b.c"), gqlAccept, want{400, gqlJSON, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.check(t, s.do(t, get(tc.params, tc.accept)))
		})
	}

	t.Run("malformed query string", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodGet, "/query?query=%zz", nil)
		want{400, plainJSON, false, true}.check(t, s.do(t, req))
	})
}

func TestGETRefusesMutations(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		name   string
		params url.Values
	}{
		{"mutation", url.Values{"query": {"mutation { send }"}}},
		{"mutation by operationName", url.Values{"query": {"query A { hello } mutation B { send }"}, "operationName": {"B"}}},
		{"subscription", url.Values{"query": {"subscription { tick }"}}},
	} {
		for _, accept := range []string{"", gqlAccept} {
			t.Run(tc.name+" "+accept, func(t *testing.T) {
				res := s.do(t, get(tc.params, accept))
				ct := plainJSON
				if accept != "" {
					ct = gqlJSON
				}
				want{405, ct, false, true}.check(t, res)
				if got := res.header.Get("Allow"); got != "POST" {
					t.Errorf("Allow = %q, want POST", got)
				}
			})
		}
	}
	if n := s.mutations.Load(); n != 0 {
		t.Errorf("%d mutations ran over GET", n)
	}
	// The same mutation by POST runs.
	s.do(t, post(`{"query":"mutation { send }"}`, "application/json", ""))
	if n := s.mutations.Load(); n != 1 {
		t.Errorf("POST mutation: %d ran, want 1", n)
	}
}

func TestOtherMethods(t *testing.T) {
	s := newServer(t)
	for _, method := range []string{http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodHead, "PROPFIND"} {
		t.Run(method, func(t *testing.T) {
			req := httptest.NewRequest(method, "/query", strings.NewReader(`{"query":"mutation { send }"}`))
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			s.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusMethodNotAllowed {
				t.Errorf("status %d, want 405", rec.Code)
			}
			if got := rec.Header().Get("Allow"); got != "GET, POST, OPTIONS" {
				t.Errorf("Allow = %q", got)
			}
		})
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, httptest.NewRequest(http.MethodOptions, "/query", nil))
	if rec.Code != http.StatusNoContent || rec.Header().Get("Allow") != "GET, POST, OPTIONS" {
		t.Errorf("OPTIONS: status %d, Allow %q; want 204, GET, POST, OPTIONS", rec.Code, rec.Header().Get("Allow"))
	}
	if n := s.mutations.Load(); n != 0 {
		t.Errorf("%d mutations ran", n)
	}
}

func TestWebSocketUpgradeIsNotServed(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/query", nil)
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	if (httptransport.GET{}).Supports(req) || (httptransport.POST{}).Supports(req) || (httptransport.Methods{}).Supports(req) {
		t.Error("a transport claims a WebSocket upgrade")
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   httptransport.MediaType
	}{
		{nil, httptransport.JSON},
		{[]string{""}, httptransport.JSON},
		{[]string{"application/graphql-response+json"}, httptransport.GraphQLResponseJSON},
		{[]string{"Application/GraphQL-Response+JSON"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/graphql-response+json;charset=utf-8"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/graphql-response+json; charset=\"UTF-8\""}, httptransport.GraphQLResponseJSON},
		{[]string{"application/graphql-response+json;charset=latin1"}, httptransport.JSON},
		{[]string{"application/json"}, httptransport.JSON},
		{[]string{"*/*"}, httptransport.JSON},
		{[]string{"application/graphql-response+json, application/json;q=0.9"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/json, application/graphql-response+json"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/json", "application/graphql-response+json"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/json;q=1, application/graphql-response+json;q=0.9"}, httptransport.JSON},
		{[]string{"application/graphql-response+json;q=0.5, */*"}, httptransport.JSON},
		{[]string{"application/graphql-response+json;q=0.5, */*;q=0.1"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/graphql-response+json;q=0.5, application/json;q=0, */*"}, httptransport.GraphQLResponseJSON},
		{[]string{"application/graphql-response+json;q=0"}, httptransport.JSON},
		{[]string{"application/graphql-response+json;q=bad"}, httptransport.JSON},
		{[]string{"application/graphql-response+json, multipart/mixed;deferSpec=20220824"}, httptransport.GraphQLResponseJSON},
		{[]string{"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}, httptransport.JSON},
	} {
		if got := httptransport.Negotiate(tc.accept); got != tc.want {
			t.Errorf("Negotiate(%q) = %s, want %s", tc.accept, got, tc.want)
		}
	}
}

func TestAcceptsEventStream(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"text/event-stream"}, true}, // EventSource, graphql-sse
		{[]string{"Text/Event-Stream"}, true},
		{[]string{"text/event-stream;charset=utf-8"}, true},
		{[]string{"text/event-stream;charset=latin1"}, false},
		{[]string{"text/event-stream;q=0"}, false},
		{[]string{"application/json", "text/event-stream"}, true},
		{[]string{"text/event-stream, application/json;q=0.9"}, true},
		{[]string{"application/json, text/event-stream;q=0.5"}, false},
		{[]string{"application/graphql-response+json, text/event-stream;q=0.5"}, false},
		{[]string{"*/*"}, false},
		{[]string{"text/*"}, false},
		{[]string{"application/json"}, false},
	} {
		if got := httptransport.AcceptsEventStream(tc.accept); got != tc.want {
			t.Errorf("AcceptsEventStream(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestAppendResponse(t *testing.T) {
	hasNext := false
	for _, tc := range []struct {
		name string
		resp graphql.Response
		want string
	}{
		{"data only", graphql.Response{Data: []byte(`{"a":1}`)}, `{"data":{"a":1}}`},
		// The data bytes are the executor's, copied as they are: not re-encoded.
		{"data verbatim", graphql.Response{Data: []byte(`{"a": "<é>",  "b":[1, 2]}`)}, `{"data":{"a": "<é>",  "b":[1, 2]}}`},
		{"data null", graphql.Response{Data: []byte(`null`), Errors: gqlerror.List{{Message: "x", Path: ast.Path{ast.PathName("me")}}}},
			`{"errors":[{"message":"x","path":["me"]}],"data":null}`},
		{"no data", graphql.Response{Errors: gqlerror.List{{Message: "bad", Extensions: map[string]any{"code": "BAD_USER_INPUT"}}}},
			`{"errors":[{"message":"bad","extensions":{"code":"BAD_USER_INPUT"}}]}`},
		{"extensions", graphql.Response{Data: []byte(`{}`), Extensions: map[string]any{"cost": 3}}, `{"data":{},"extensions":{"cost":3}}`},
		{"incremental", graphql.Response{Data: []byte(`{}`), Label: "l", Path: ast.Path{ast.PathName("a"), ast.PathIndex(0)}, HasNext: &hasNext},
			`{"data":{},"label":"l","path":["a",0],"hasNext":false}`},
		{"empty", graphql.Response{}, `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := httptransport.AppendResponse([]byte("prefix"), &tc.resp)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != "prefix"+tc.want {
				t.Errorf("got  %s\nwant prefix%s", got, tc.want)
			}
		})
	}
	// Errors that encoding/json cannot encode are reported, not written half.
	_, err := httptransport.AppendResponse(nil, &graphql.Response{Extensions: map[string]any{"bad": make(chan int)}})
	if err == nil {
		t.Error("no error for an unencodable extension")
	}
}

func TestWriteResponseStatus(t *testing.T) {
	internal := gqlerror.List{{Message: "internal error", Extensions: map[string]any{"code": "INTERNAL_SERVER_ERROR"}}}
	bad := gqlerror.List{{Message: "bad", Extensions: map[string]any{"code": "BAD_USER_INPUT"}}}
	for _, tc := range []struct {
		m    httptransport.MediaType
		resp graphql.Response
		want int
	}{
		{httptransport.GraphQLResponseJSON, graphql.Response{Data: []byte(`{}`)}, 200},
		{httptransport.GraphQLResponseJSON, graphql.Response{Data: []byte(`null`), Errors: bad}, 200},
		{httptransport.GraphQLResponseJSON, graphql.Response{Errors: bad}, 400},
		{httptransport.GraphQLResponseJSON, graphql.Response{Errors: internal}, 500},
		{httptransport.JSON, graphql.Response{Errors: bad}, 200},
		{httptransport.JSON, graphql.Response{Errors: internal}, 200},
	} {
		rec := httptest.NewRecorder()
		httptransport.WriteResponse(rec, tc.m, &tc.resp)
		if rec.Code != tc.want || rec.Header().Get("Content-Type") != tc.m.ContentType() {
			t.Errorf("%s %+v: status %d, Content-Type %q; want %d", tc.m, tc.resp, rec.Code, rec.Header().Get("Content-Type"), tc.want)
		}
	}
}

func TestWriteEncoded(t *testing.T) {
	body, err := httptransport.AppendResponse(nil, &graphql.Response{Data: []byte(`{"hello":"world"}`)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	httptransport.WriteEncoded(rec, httptransport.GraphQLResponseJSON, http.StatusOK, body)
	if rec.Code != 200 || rec.Header().Get("Content-Type") != gqlJSON || !bytes.Equal(rec.Body.Bytes(), body) {
		t.Errorf("status %d, Content-Type %q, body %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
}

func BenchmarkPOST(b *testing.B) {
	s := newServer(b)
	body := []byte(`{"query":"{ hello }"}`)
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/query", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", gqlAccept)
		rec := httptest.NewRecorder()
		s.h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			b.Fatal(rec.Code)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	// A 50-message page's worth of data.
	var data bytes.Buffer
	data.WriteString(`{"conversation":{"messages":{"items":[`)
	for i := range 50 {
		if i > 0 {
			data.WriteByte(',')
		}
		data.WriteString(`{"id":"123456","seq":42,"body":"` + strings.Repeat("lorem ipsum ", 10) + `","sender":{"id":"7","name":"Alice"}}`)
	}
	data.WriteString(`],"hasMore":true}}}`)
	resp := &graphql.Response{Data: data.Bytes()}
	b.Run("AppendResponse", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 16<<10)
		for b.Loop() {
			buf, _ = httptransport.AppendResponse(buf[:0], resp)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(resp); err != nil {
				b.Fatal(err)
			}
		}
	})
}
