package graph

import (
	"maps"
	"slices"
	"testing"
)

// Every plain field (no resolver, no argument, not an interface) of the types the fast path
// writes is known to it; a new one would otherwise quietly send those lists back to gqlgen.
func TestFastMarshalKnowsEveryPlainField(t *testing.T) {
	for typeName, fields := range known {
		shape, ok := objectShapes[typeName]
		if !ok {
			t.Fatalf("no shape for %s", typeName)
		}
		for name, f := range shape.fields {
			if f.concurrent || f.abstract {
				continue
			}
			if _, ok := fields[name]; !ok {
				t.Errorf("%s.%s is a plain field the fast path does not write", typeName, name)
			}
			if f.object != "" && children[name] != f.object {
				t.Errorf("%s.%s is a %s, the fast path writes it as a %q", typeName, name, f.object, children[name])
			}
		}
		for name := range fields {
			if f, ok := shape.fields[name]; name != "__typename" && (!ok || f.concurrent) {
				t.Errorf("the fast path writes %s.%s, which is not a plain field of the schema", typeName, name)
			}
		}
	}
	if got := slices.Sorted(maps.Keys(known)); !slices.Equal(got, []string{"Message", "MessageEdge", "Reaction", "User"}) {
		t.Fatalf("known types %v", got)
	}
}
