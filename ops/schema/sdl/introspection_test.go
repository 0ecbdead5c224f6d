package sdl_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql/introspection"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/ops/schema/sdl"
)

// introspect answers sdl.IntrospectionQuery for schema the way a gqlgen server does: with the
// introspection package that gqlgen's generated code serves.
func introspect(t *testing.T, schema *ast.Schema) []byte {
	t.Helper()
	s := introspection.WrapSchema(schema)
	var typeRef func(*introspection.Type) any
	typeRef = func(tp *introspection.Type) any {
		if tp == nil {
			return nil
		}
		return map[string]any{"kind": tp.Kind(), "name": tp.Name(), "ofType": typeRef(tp.OfType())}
	}
	inputValues := func(vs []introspection.InputValue) []any {
		out := []any{}
		for _, v := range vs {
			out = append(out, map[string]any{
				"name": v.Name, "description": v.Description(), "type": typeRef(v.Type), "defaultValue": v.DefaultValue,
				"isDeprecated": v.IsDeprecated(), "deprecationReason": v.DeprecationReason(),
			})
		}
		return out
	}
	typeRefs := func(ts []introspection.Type) []any {
		out := []any{}
		for i := range ts {
			out = append(out, typeRef(&ts[i]))
		}
		return out
	}
	var types []any
	for _, tp := range s.Types() {
		m := map[string]any{
			"kind": tp.Kind(), "name": tp.Name(), "description": tp.Description(), "specifiedByURL": tp.SpecifiedByURL(),
			"isOneOf": tp.IsOneOf(), "inputFields": inputValues(tp.VisibleInputFields(true)),
			"interfaces": typeRefs(tp.Interfaces()), "possibleTypes": typeRefs(tp.PossibleTypes()),
		}
		var fields []any
		for _, f := range tp.Fields(true) {
			fields = append(fields, map[string]any{
				"name": f.Name, "description": f.Description(), "args": inputValues(f.VisibleArgs(true)), "type": typeRef(f.Type),
				"isDeprecated": f.IsDeprecated(), "deprecationReason": f.DeprecationReason(),
			})
		}
		m["fields"] = fields
		var values []any
		for _, v := range tp.EnumValues(true) {
			values = append(values, map[string]any{
				"name": v.Name, "description": v.Description(), "isDeprecated": v.IsDeprecated(), "deprecationReason": v.DeprecationReason(),
			})
		}
		m["enumValues"] = values
		types = append(types, m)
	}
	var directives []any
	for _, d := range s.Directives() {
		directives = append(directives, map[string]any{
			"name": d.Name, "description": d.Description(), "isRepeatable": d.IsRepeatable, "locations": d.Locations,
			"args": inputValues(d.VisibleArgs(true)),
		})
	}
	name := func(tp *introspection.Type) any {
		if tp == nil {
			return nil
		}
		return map[string]any{"name": tp.Name()}
	}
	b, err := json.Marshal(map[string]any{"data": map[string]any{"__schema": map[string]any{
		"queryType": name(s.QueryType()), "mutationType": name(s.MutationType()), "subscriptionType": name(s.SubscriptionType()),
		"types": types, "directives": directives,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFromIntrospectionRoundTrip(t *testing.T) {
	for name, src := range map[string]string{
		"base": base,
		"everything else": `
			schema { query: Root  mutation: Change }
			"""
			Multi-line
			  description with "quotes", a \ backslash and <html> & unicode: é ✓
			"""
			type Root implements Node & Named {
			  "field doc"
			  id: ID!
			  title: String!
			  old: String @deprecated
			  older: String @deprecated(reason: "gone \"soon\"")
			  search(
			    "arg doc"
			    text: String! = "a\nb"
			    tags: [String!] = ["x", "y"]
			    where: Where = {kind: BIG, near: {lat: 1.5, lng: -2}}
			  ): [Thing]
			}
			type Change { reset(to: Int = 0): Boolean }
			interface Node { id: ID! }
			interface Named implements Node { id: ID!  title: String! }
			union Thing = Root | Other
			type Other { n: Float }
			enum Kind { BIG SMALL @deprecated(reason: "too small")  "documented" MEDIUM }
			input Where { kind: Kind = SMALL  near: Point  legacy: Int @deprecated }
			input Point { lat: Float!  lng: Float! }
			input Pick @oneOf { a: Int  b: String }
			scalar URL @specifiedBy(url: "https://example.com/url")
			"a directive"
			directive @cost(weight: Int! = 1) repeatable on FIELD_DEFINITION | OBJECT
			type Extra { pick(p: Pick): URL @cost(weight: 2) }
		`,
	} {
		t.Run(name, func(t *testing.T) {
			want := load(t, src)
			text, err := sdl.FromIntrospection(introspect(t, want))
			if err != nil {
				t.Fatal(err)
			}
			got := load(t, text)
			// Applied directives other than @deprecated are not in introspection; neither
			// the canonical text nor the comparison looks at them on fields.
			if w, g := sdl.Canonical(strip(want)), sdl.Canonical(got); w != g {
				t.Errorf("round trip changed the schema.\nwant:\n%s\ngot:\n%s\nSDL from introspection:\n%s", w, g, text)
			}
			if changes := sdl.Compare(want, got); len(changes) != 0 {
				t.Errorf("changes after the round trip:\n%s", sdl.Report(changes))
			}
		})
	}
}

// strip removes applied directives that introspection does not show (all but @deprecated,
// @oneOf and @specifiedBy).
func strip(s *ast.Schema) *ast.Schema {
	keep := func(ds ast.DirectiveList) ast.DirectiveList {
		var out ast.DirectiveList
		for _, d := range ds {
			if d.Name == "deprecated" || d.Name == "oneOf" || d.Name == "specifiedBy" {
				out = append(out, d)
			}
		}
		return out
	}
	c := *s
	c.Types = map[string]*ast.Definition{}
	for n, def := range s.Types {
		d := *def
		d.Directives = keep(def.Directives)
		d.Fields = nil
		for _, f := range def.Fields {
			fc := *f
			fc.Directives = keep(f.Directives)
			d.Fields = append(d.Fields, &fc)
		}
		c.Types[n] = &d
	}
	c.Query, c.Mutation, c.Subscription = c.Types[nameOrEmpty(s.Query)], c.Types[nameOrEmpty(s.Mutation)], c.Types[nameOrEmpty(s.Subscription)]
	return &c
}

func nameOrEmpty(d *ast.Definition) string {
	if d == nil {
		return ""
	}
	return d.Name
}

func TestFromIntrospectionErrors(t *testing.T) {
	for _, in := range []string{`not json`, `{}`, `{"data":{"__schema":null}}`, `{"__schema":{"queryType":{"name":"Q"},"types":[{"kind":"WEIRD","name":"X"}]}}`} {
		if _, err := sdl.FromIntrospection([]byte(in)); err == nil {
			t.Errorf("FromIntrospection(%s): no error", in)
		}
	}
	// The "data" of a response works as well as the whole response.
	whole := introspect(t, load(t, base))
	var env struct{ Data json.RawMessage }
	if err := json.Unmarshal(whole, &env); err != nil {
		t.Fatal(err)
	}
	a, errA := sdl.FromIntrospection(whole)
	b, errB := sdl.FromIntrospection(env.Data)
	if errA != nil || errB != nil || a != b || !strings.Contains(a, "type User") {
		t.Errorf("whole response and data give different SDL (%v, %v)", errA, errB)
	}
}
