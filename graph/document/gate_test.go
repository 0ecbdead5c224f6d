package document_test

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/threadline/threadline/graph/document"
)

// What the clients send passes the default limits, with introspection off, and the deepest
// introspection query a client sends passes with it on.
func TestClientDocumentsPass(t *testing.T) {
	g := newGate(t, document.Config{})
	if len(document.Trusted()) == 0 {
		t.Fatal("the trusted manifest is empty")
	}
	for hash, text := range document.Trusted() {
		if _, errs := g.Check(text); len(errs) > 0 {
			t.Errorf("trusted document %.12s refused: %v\n%s", hash, errs, text)
		}
	}
	typeRef := `{ __schema { types { fields { args { type ` + strings.Repeat(`{ kind name ofType `, 9) +
		`{ kind name }` + strings.Repeat(` }`, 9) + ` } } } } }`
	introspecting := newGate(t, document.Config{Introspection: true})
	// The full introspection query GraphiQL and the schema tools send is admitted too: ops/schema's
	// TestIntrospectionMatchesPublishedSchema runs it through the server.
	for name, q := range map[string]string{"9 levels of ofType": typeRef} {
		if _, errs := introspecting.Check(q); len(errs) > 0 {
			t.Errorf("%s refused: %v", name, errs)
		}
	}
}

// Each limit refuses a document just over it, with BAD_USER_INPUT and a message naming it,
// before validation (the documents over a limit are valid otherwise, or their validation
// error would show).
func TestLimits(t *testing.T) {
	// Fragments that double at each level: 2^12 fields from a document of a few hundred bytes.
	var doubling strings.Builder
	doubling.WriteString(`{ me { ...F12 } } fragment F0 on User { id name }`)
	for i := 1; i <= 12; i++ {
		fmt.Fprintf(&doubling, " fragment F%d on User { ...F%d ...F%d }", i, i-1, i-1)
	}
	deep := `{ __schema { types { fields { type ` + strings.Repeat(`{ ofType `, 20) + `{ name }` + strings.Repeat(` }`, 20) + ` } } } }`
	for _, tc := range []struct {
		name, query, want string
	}{
		{"size", `{ __typename }` + strings.Repeat(" ", 64<<10), "larger than 65536 bytes"},
		{"tokens", `{ me { ` + strings.Repeat(`id `, 10001) + `} }`, "token limit"},
		{"depth", deep, "deeper than 20"},
		{"fields", `{ me { ` + strings.Repeat("id ", 1001) + `} }`, "more than 1000 fields"},
		{"fields through fragments", doubling.String(), "more than 1000 fields"},
		{"aliases", `{ ` + repeat(101, "a%d: me { id } ") + `}`, "more than 100 aliases"},
		{"same name", `{ me { ` + strings.Repeat("id ", 11) + `} }`, "response name more than 10 times"},
		{"same name through fragments", `{ me { ` + strings.Repeat("...U ", 11) + `} } fragment U on User { id name }`, "response name more than 10 times"},
		{"same name in an unused fragment", `{ __typename } fragment F on Query { ` + repeat(6, "x: me { id } x: __typename ") + `}`, "response name more than 10 times"},
		{"operations", repeat(11, "query Q%d { __typename } "), "more than 10 operations"},
		{"fragment definitions", `{ __typename } ` + repeat(101, "fragment F%d on Query { __typename } "), "more than 100 fragment definitions"},
		{"fragment spreads", `{ ...F } fragment F on Query { __typename } fragment G on Query { ` + strings.Repeat("...F ", 200) + `}`, "more than 200 fragment spreads"},
		{"directives", `{ ` + repeat(51, "a%d: __typename @include(if: true) ") + `}`, "more than 50 directives"},
		{"variables", `query(` + repeat(51, "$v%d: Int ") + `) { __typename }`, "more than 50 variable definitions"},
		{"defer", `{ me { ... @defer { id } } }`, "@defer is not supported"},
		{"stream", `{ conversations { edges @stream(initialCount: 1) { cursor } } }`, "@stream is not supported"},
		{"introspection", `{ __schema { types { name } } }`, "introspection is disabled"},
		{"__type", `{ __type(name: "User") { name } }`, "introspection is disabled"},
		{"introspection in a fragment", `{ ...I } fragment I on Query { __schema { queryType { name } } }`, "introspection is disabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newGate(t, document.Config{})
			_, errs := g.Check(tc.query)
			if len(errs) != 1 || !strings.Contains(errs[0].Message, tc.want) || codes(errs)[0] != "BAD_USER_INPUT" {
				t.Fatalf("errors %v %v, want one BAD_USER_INPUT about %q", errs, codes(errs), tc.want)
			}
			if s := g.Stats(); s.Entries != 0 {
				t.Errorf("a refused document was cached: %+v", s)
			}
		})
	}
}

// A walk over fragments that spread each other ends (the cycle is validation's to report, not a
// limit's), and fragments that spread themselves twice do not multiply.
func TestFragmentCyclesEndTheWalk(t *testing.T) {
	g := newGate(t, document.Config{})
	var loop strings.Builder // F0 → F1 → … → F99 → F0
	for i := range 100 {
		fmt.Fprintf(&loop, "fragment F%d on Query { a%[1]d: __typename ...F%d } ", i, (i+1)%100)
	}
	for name, q := range map[string]string{
		"two":       `{ ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }`,
		"self":      `{ ...A } fragment A on Query { __typename ...A ...A }`,
		"unused":    `{ __typename } fragment A on Query { ...A ...A ...A }`,
		"long loop": `{ ...F0 } ` + loop.String(),
	} {
		_, errs := g.Check(q)
		if len(errs) == 0 || !strings.Contains(errs[0].Message, "Cannot spread fragment") {
			t.Errorf("%s: %v, want a validation error about the cycle", name, errs)
		}
	}
}

// Validation reports at most MaxValidationErrors errors and one more saying so; its messages
// never quote more than a few dozen bytes of the document; suggestions only when asked for.
func TestValidationErrors(t *testing.T) {
	g := newGate(t, document.Config{})
	_, errs := g.Check(`{ ` + repeat(60, "unknown%d ") + `}`)
	if len(errs) != document.MaxValidationErrors+1 || !strings.Contains(errs[len(errs)-1].Message, "too many validation errors") {
		t.Fatalf("%d errors: %v", len(errs), errs)
	}
	for _, c := range codes(errs) {
		if c != "BAD_USER_INPUT" {
			t.Fatalf("codes %v", codes(errs))
		}
	}

	long := strings.Repeat("z", 10000)
	for name, q := range map[string]string{
		"syntax":       `{ me { id } } "` + long + `"`,
		"unknown name": `{ ` + long + ` }`,
		"value":        `{ conversation(id: {a: "` + long + `"}) { id } }`,
	} {
		_, errs := g.Check(q)
		if len(errs) == 0 || codes(errs)[0] != "BAD_USER_INPUT" {
			t.Fatalf("%s: %v %v", name, errs, codes(errs))
		}
		for _, e := range errs {
			if strings.Contains(e.Message, strings.Repeat("z", 50)) || len(e.Message) > 400 {
				t.Errorf("%s: the message repeats the document: %.500s", name, e.Message)
			}
		}
	}

	typo := `{ mee { id } }`
	if _, errs := g.Check(typo); len(errs) != 1 || strings.Contains(errs[0].Message, "Did you mean") {
		t.Errorf("without suggestions: %v", errs)
	}
	suggesting := newGate(t, document.Config{FieldSuggestions: true})
	if _, errs := suggesting.Check(typo); len(errs) != 1 || !strings.Contains(errs[0].Message, `Did you mean "me"?`) {
		t.Errorf("with suggestions: %v", errs)
	}
	if _, errs := g.Check(`fragment F on Query { __typename }`); len(errs) != 1 || errs[0].Message != "no operation provided" {
		t.Errorf("no operation: %v", errs)
	}
}

// The known bombs are refused with one short BAD_USER_INPUT error (BenchmarkBombs
// measures their time and allocation), and so is the 900 KB comment.
func TestBombsAreRefused(t *testing.T) {
	g := newGate(t, document.Config{})
	for name, q := range map[string]string{
		"1,990 conflicting aliases":     aliasBomb,
		"1,000 conflicting arguments":   argumentBomb,
		"666 conflicting aliases":       smallAliasBomb,
		"100 conflicting arguments":     "{ " + repeat(100, "conversation(id: %d) { id } ") + "}",
		"__typename with a 900 KB tail": "{ __typename } #" + strings.Repeat("c", 900<<10),
	} {
		_, errs := g.Check(q)
		size := 0
		for _, e := range errs {
			size += len(e.Message)
		}
		if len(errs) == 0 || len(errs) > document.MaxValidationErrors+1 || codes(errs)[0] != "BAD_USER_INPUT" || size > 10<<10 {
			t.Errorf("%s: %d errors, %d bytes of messages: %.300v", name, len(errs), size, errs)
		}
	}
}

func opContext() context.Context {
	return graphql.WithOperationContext(context.Background(), &graphql.OperationContext{})
}

func persisted(hash string) map[string]any {
	return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}
}

// Trusted documents: a hash alone resolves from the manifest; in trusted-only mode a document
// outside it is refused before it is parsed, whatever it holds.
func TestTrustedDocuments(t *testing.T) {
	manifest := document.Manifest{}
	viewer := "query Viewer { me { id name } }"
	manifest[document.SHA256(viewer)] = viewer

	g := newGate(t, document.Config{Trusted: manifest})
	p := &graphql.RawParams{Extensions: persisted(document.SHA256(viewer))}
	if err := g.MutateOperationParameters(opContext(), p); err != nil || p.Query != viewer {
		t.Fatalf("hash alone: %v, query %q", err, p.Query)
	}
	p = &graphql.RawParams{Query: "{ __typename }"}
	if err := g.MutateOperationParameters(opContext(), p); err != nil {
		t.Fatalf("any document, without TrustedOnly: %v", err)
	}

	only := newGate(t, document.Config{Trusted: manifest, TrustedOnly: true})
	for _, q := range []string{"{ __typename }", "{{{{ not GraphQL", `{ ` + repeat(500, "a%d: me { id } ") + `}`} {
		err := only.MutateOperationParameters(opContext(), &graphql.RawParams{Query: q})
		if err == nil || err.Message != "only trusted documents may run" || codes(gqlerror.List{err})[0] != "BAD_USER_INPUT" {
			t.Fatalf("%.40s: %v", q, err)
		}
	}
	if s := only.Stats(); s.Parses != 0 || s.Misses != 0 {
		t.Fatalf("documents outside the manifest were looked at: %+v", s)
	}
	for _, p := range []*graphql.RawParams{
		{Query: viewer},
		{Query: viewer, Extensions: persisted(document.SHA256(viewer))},
		{Extensions: persisted(document.SHA256(viewer))},
	} {
		if err := only.MutateOperationParameters(opContext(), p); err != nil || p.Query != viewer {
			t.Fatalf("trusted %+v: %v", p, err)
		}
	}
	if err := only.MutateOperationParameters(opContext(), &graphql.RawParams{Extensions: persisted(document.SHA256("{ __typename }"))}); err == nil ||
		codes(gqlerror.List{err})[0] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("unknown hash: %v", err)
	}
}

// The persisted-query extension is checked before anything else, and a hash that is not its
// query's SHA-256 is refused without repeating the query.
func TestPersistedQueryExtension(t *testing.T) {
	g := newGate(t, document.Config{})
	q := "{ __typename }"
	for name, tc := range map[string]struct {
		params *graphql.RawParams
		code   string
	}{
		"unknown hash":  {&graphql.RawParams{Extensions: persisted(document.SHA256(q))}, "PERSISTED_QUERY_NOT_FOUND"},
		"not a hash":    {&graphql.RawParams{Extensions: persisted("../../etc")}, "PERSISTED_QUERY_NOT_FOUND"},
		"wrong hash":    {&graphql.RawParams{Query: q, Extensions: persisted(document.SHA256("{ me { id } }"))}, "BAD_USER_INPUT"},
		"version 2":     {&graphql.RawParams{Query: q, Extensions: map[string]any{"persistedQuery": map[string]any{"version": 2, "sha256Hash": document.SHA256(q)}}}, "BAD_USER_INPUT"},
		"version \"1\"": {&graphql.RawParams{Query: q, Extensions: map[string]any{"persistedQuery": map[string]any{"version": "1", "sha256Hash": document.SHA256(q)}}}, "BAD_USER_INPUT"},
		"not an object": {&graphql.RawParams{Query: q, Extensions: map[string]any{"persistedQuery": "yes"}}, "BAD_USER_INPUT"},
		"no hash":       {&graphql.RawParams{Query: q, Extensions: map[string]any{"persistedQuery": map[string]any{"version": 1}}}, "BAD_USER_INPUT"},
	} {
		err := g.MutateOperationParameters(opContext(), tc.params)
		if err == nil || codes(gqlerror.List{err})[0] != tc.code || strings.Contains(err.Message, q) {
			t.Errorf("%s: %v, want %s", name, err, tc.code)
		}
	}
	p := &graphql.RawParams{Query: q, Extensions: persisted(document.SHA256(q))}
	if err := g.MutateOperationParameters(opContext(), p); err != nil {
		t.Errorf("hash with its query, no APQ store: %v", err)
	}
}

// The document the gate admitted is pinned to its operation: gqlgen's cache lookup finds it
// even after the cache evicted it, and gqlgen's Add stores nothing.
func TestQueryCachePinsTheAdmittedDocument(t *testing.T) {
	g := newGate(t, document.Config{Cache: document.CacheConfig{Entries: 1}})
	ctx := opContext()
	q := "query A { __typename }"
	if err := g.MutateOperationParameters(ctx, &graphql.RawParams{Query: q}); err != nil {
		t.Fatal(err)
	}
	if _, errs := g.Check("query B { __typename }"); len(errs) > 0 { // evicts A
		t.Fatal(errs)
	}
	qc := g.QueryCache()
	if doc, ok := qc.Get(ctx, q); !ok || doc.Operations[0].Name != "A" {
		t.Fatalf("pinned document: %v %v", doc, ok)
	}
	if _, ok := qc.Get(opContext(), q); ok {
		t.Fatal("another operation found the evicted document")
	}
	other := "query C { __typename }"
	doc, _ := parser.ParseQuery(&ast.Source{Input: other})
	qc.Add(ctx, other, doc)
	if _, ok := qc.Get(opContext(), other); ok {
		t.Fatal("gqlgen's Add stored a document the gate did not admit")
	}
}

// The cache: a document is parsed once; the byte bound holds whatever is added, evicting the
// least recently used; a document larger than the bound is never stored.
func TestCacheBounds(t *testing.T) {
	doc := func(i int) string { return fmt.Sprintf("query Q%d { __typename }", i) }
	bound := 5 * document.EntryBytes(doc(10))
	g := newGate(t, document.Config{Cache: document.CacheConfig{Bytes: bound}})
	for i := range 50 {
		if _, errs := g.Check(doc(i)); len(errs) > 0 {
			t.Fatal(errs)
		}
		if s := g.Stats(); s.Bytes > bound || s.Entries > 5 {
			t.Fatalf("after %d documents: %+v, bound %d", i+1, s, bound)
		}
		if _, errs := g.Check(doc(0)); len(errs) > 0 { // doc(0) stays the most recently used
			t.Fatal(errs)
		}
	}
	s := g.Stats()
	if s.Parses != 50 || s.Entries != 5 || s.Hits != 50 {
		t.Fatalf("%+v: want 50 parses (doc(0) once), 5 entries, 50 hits", s)
	}

	// Large documents, admitted by a larger size limit, are never stored in a cache whose
	// bound is smaller than one of them.
	big := newGate(t, document.Config{
		Limits: document.Limits{DocumentBytes: 1 << 20},
		Cache:  document.CacheConfig{Bytes: 16 << 20},
	})
	for i := range 100 {
		q := fmt.Sprintf("query Q%d { __typename } #%s", i, strings.Repeat("c", 900<<10))
		if _, errs := big.Check(q); len(errs) > 0 {
			t.Fatal(errs)
		}
		if document.EntryBytes(q) <= 16<<20 {
			t.Fatalf("EntryBytes of 900 KB is %d", document.EntryBytes(q))
		}
	}
	if s := big.Stats(); s.Entries != 0 || s.Bytes != 0 || s.Parses != 100 {
		t.Fatalf("900 KB documents: %+v", s)
	}
	// And the default size limit refuses them before anything else.
	if _, errs := g.Check("{ __typename } #" + strings.Repeat("c", 900<<10)); len(errs) != 1 || !strings.Contains(errs[0].Message, "larger than") {
		t.Fatalf("900 KB: %v", errs)
	}
}

// The schema served declares exactly the directives of the published schema and the
// specification's own: not gqlparser's @defer, nor @stream.
func TestServedDirectives(t *testing.T) {
	b, err := os.ReadFile("../../schema.graphql")
	if err != nil {
		t.Fatal(err)
	}
	published, err := parser.ParseSchema(&ast.Source{Name: "schema.graphql", Input: string(b)})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"deprecated", "include", "oneOf", "skip", "specifiedBy"}
	for _, d := range published.Directives {
		want = append(want, d.Name)
	}
	slices.Sort(want)
	if got := slices.Sorted(maps.Keys(servedSchema().Directives)); !slices.Equal(got, want) {
		t.Errorf("served directives %v, want %v", got, want)
	}
	if _, ok := graphSchema().Directives["defer"]; !ok {
		t.Error("the generated schema lost @defer: WithoutIncrementalDelivery must copy, not modify")
	}
}
