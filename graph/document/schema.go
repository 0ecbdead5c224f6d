package document

import (
	"maps"

	"github.com/vektah/gqlparser/v2/ast"
)

// WithoutIncrementalDelivery returns a copy of s that declares neither @defer nor @stream, for
// the executor to serve (graph.Config.Schema): gqlparser's prelude declares @defer on every
// schema, so introspection would offer a directive the published schema (schema.graphql) does
// not have, and a response over plain JSON would carry only the first of its payloads. Without
// the declaration, validation refuses both as unknown directives, and the gate refuses them by
// name before that; gqlgen's generated code only looks for @defer in a document, so nothing
// else changes. The copy is shallow: it shares every type with s.
func WithoutIncrementalDelivery(s *ast.Schema) *ast.Schema {
	c := *s
	c.Directives = maps.Clone(s.Directives)
	delete(c.Directives, "defer")
	delete(c.Directives, "stream")
	return &c
}
