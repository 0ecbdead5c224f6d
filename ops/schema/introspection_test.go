package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/app"
	"github.com/threadline/threadline/app/apptest"
	"github.com/threadline/threadline/ops/schema/sdl"
)

// TestIntrospectionMatchesPublishedSchema asks a running server for its schema by
// introspection and compares it with the committed schema.graphql (`make schema`): what
// clients generate their code from is what the server serves.
func TestIntrospectionMatchesPublishedSchema(t *testing.T) {
	t.Parallel()
	s := apptest.Start(t, apptest.Options{Configure: func(c *app.Config) { c.Introspection = true }})
	res := s.Client(0).Must(t, sdl.IntrospectionQuery, nil)
	if !res.OK() {
		t.Fatalf("introspection: %d %s", res.Status, res.Body)
	}
	raw := res.Body
	served, err := sdl.FromIntrospection(raw)
	if err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	introspected, err := sdl.Load(&ast.Source{Name: "introspection", Input: served})
	if err != nil {
		t.Fatalf("the introspected schema does not load: %v\n%s", err, served)
	}
	publishedSchema := loadSchemaFile(t, published)

	if changes := sdl.Compare(publishedSchema, introspected); len(changes) > 0 {
		for _, c := range changes {
			t.Errorf("served vs schema.graphql: %s", c)
		}
	}
	if want, got := sdl.Canonical(publishedSchema), sdl.Canonical(introspected); want != got {
		t.Errorf("the served schema differs from schema.graphql (run make schema):\n%s", lineDiff(want, got))
	}
	// The directives served are the specification's and those of schema.graphql: no @defer
	// (gqlparser's prelude declares it; the server refuses it), which sdl.Compare leaves out.
	var intro struct {
		Data struct {
			Schema struct {
				Directives []struct{ Name string } `json:"directives"`
			} `json:"__schema"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &intro); err != nil {
		t.Fatal(err)
	}
	var servedDirectives []string
	for _, d := range intro.Data.Schema.Directives {
		servedDirectives = append(servedDirectives, d.Name)
	}
	wantDirectives := []string{"deprecated", "include", "oneOf", "skip", "specifiedBy"}
	for name, d := range publishedSchema.Directives {
		if d.Position != nil && d.Position.Src != nil && !d.Position.Src.BuiltIn {
			wantDirectives = append(wantDirectives, name)
		}
	}
	slices.Sort(servedDirectives)
	slices.Sort(wantDirectives)
	if !slices.Equal(servedDirectives, wantDirectives) {
		t.Errorf("served directives %v, want %v", servedDirectives, wantDirectives)
	}
	// Sanity: the comparison sees the whole schema, descriptions included.
	if msg := introspected.Types["Message"]; msg == nil || msg.Fields.ForName("seq") == nil || msg.Fields.ForName("seq").Description == "" {
		t.Errorf("introspection lost Message.seq or its description:\n%s", served)
	}
}

// lineDiff lists the lines of a that b lacks (-) and of b that a lacks (+).
func lineDiff(a, b string) string {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out strings.Builder
	for _, l := range la {
		if !slices.Contains(lb, l) {
			out.WriteString("- " + l + "\n")
		}
	}
	for _, l := range lb {
		if !slices.Contains(la, l) {
			out.WriteString("+ " + l + "\n")
		}
	}
	return out.String()
}
