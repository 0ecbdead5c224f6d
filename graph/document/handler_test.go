package document_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/graph/document"
)

// serve returns gqlgen's handler with the gate installed as graph.NewHandler installs it, and
// a parser token limit of 1 for gqlgen itself: any document gqlgen parsed on its own would fail.
func serve(t *testing.T, cfg document.Config) (*handler.Server, *document.Gate) {
	t.Helper()
	cfg.Schema = servedSchema()
	g := newGate(t, cfg)
	srv := handler.New(graph.NewExecutableSchema(graph.Config{Schema: cfg.Schema, Resolvers: &graph.Resolver{}}))
	srv.AddTransport(transport.POST{})
	srv.SetQueryCache(g.QueryCache())
	srv.SetParserTokenLimit(1)
	srv.Use(g)
	return srv, g
}

type response struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func post(t *testing.T, h http.Handler, body map[string]any) response {
	t.Helper()
	b, _ := json.Marshal(body)
	req := httptest.NewRequest(http.MethodPost, "/query", strings.NewReader(string(b)))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out response
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body)
	}
	return out
}

// Through gqlgen's executor: what the gate admitted runs without gqlgen parsing it (its own
// token limit of 1 would refuse it), evicted from the cache or not; a refusal with many
// validation errors reaches the client whole.
func TestGqlgenNeverParses(t *testing.T) {
	srv, g := serve(t, document.Config{Cache: document.CacheConfig{Bytes: 1}}) // caches nothing
	for range 2 {
		if r := post(t, srv, map[string]any{"query": "query Q { __typename }"}); len(r.Errors) > 0 || string(r.Data) != `{"__typename":"Query"}` {
			t.Fatalf("%s %+v", r.Data, r.Errors)
		}
	}
	if s := g.Stats(); s.Parses != 2 || s.Entries != 0 {
		t.Fatalf("%+v", s)
	}

	r := post(t, srv, map[string]any{"query": `{ ` + repeat(30, "unknown%d ") + `}`})
	if len(r.Errors) != document.MaxValidationErrors+1 || !strings.Contains(r.Errors[len(r.Errors)-1].Message, "too many") {
		t.Fatalf("%d errors: %+v", len(r.Errors), r.Errors)
	}
	for _, e := range r.Errors {
		if e.Extensions["code"] != "BAD_USER_INPUT" {
			t.Fatalf("%+v", e)
		}
	}
	// The next refusal has its own errors only.
	if r := post(t, srv, map[string]any{"query": `{ unknown }`}); len(r.Errors) != 1 {
		t.Fatalf("%+v", r.Errors)
	}
}

// With introspection off, __schema is a client error, not a resolver's internal error; @defer
// is refused, not answered with its first payload.
func TestIntrospectionOffAndDeferThroughGqlgen(t *testing.T) {
	srv, _ := serve(t, document.Config{})
	for q, want := range map[string]string{
		`{ __schema { types { name } } }`:          "introspection is disabled",
		`{ __typename ... @defer { __typename } }`: "@defer is not supported",
	} {
		r := post(t, srv, map[string]any{"query": q})
		if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "BAD_USER_INPUT" || !strings.HasPrefix(r.Errors[0].Message, want) {
			t.Errorf("%s: %s %+v", q, r.Data, r.Errors)
		}
	}
}
