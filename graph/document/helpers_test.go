package document_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/graph/document"
)

// graphSchema is the schema gqlgen generated from graph/*.graphqls.
func graphSchema() *ast.Schema { return graph.NewExecutableSchema(graph.Config{}).Schema() }

// servedSchema is the schema graph.NewHandler serves: the generated one without @defer.
var servedSchema = sync.OnceValue(func() *ast.Schema { return document.WithoutIncrementalDelivery(graphSchema()) })

func newGate(t testing.TB, cfg document.Config) *document.Gate {
	t.Helper()
	if cfg.Schema == nil {
		cfg.Schema = servedSchema()
	}
	g, err := document.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// repeat joins n copies of format, each formatted with its index.
func repeat(n int, format string) string {
	var b strings.Builder
	for i := range n {
		if strings.Contains(format, "%") {
			fmt.Fprintf(&b, format, i)
		} else {
			b.WriteString(format)
		}
	}
	return b.String()
}

// Bombs seen against production: many fields that conflict with each other.
var (
	// 1,990 alternating `x: me { id }` / `x: __typename`: 22 KB, every pair a conflict.
	aliasBomb = "{ " + repeat(995, "x: me { id } x: __typename ") + "}"
	// 1,000 `conversation(id: N) { id }`: one name, a different argument each.
	argumentBomb = "{ " + repeat(1000, "conversation(id: %d) { id } ") + "}"
	// As many conflicting fields as the field limit lets through.
	smallAliasBomb = "{ " + repeat(333, "x: me { id } x: __typename ") + "}"
)

func codes(errs gqlerror.List) []string {
	var out []string
	for _, e := range errs {
		c, _ := e.Extensions["code"].(string)
		out = append(out, c)
	}
	return out
}
