package main

import (
	"errors"
	"flag"
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/db"
	"github.com/threadline/threadline/graph"
	"github.com/threadline/threadline/internal/testenv"
	"github.com/threadline/threadline/ops/schema/sdl"
)

var update = flag.Bool("update", false, "release the current schema: rewrite "+releasedSchema)

// releasedSchema is the schema of the last release. Clients generated from it must keep
// working: TestSchemaHasNoBreakingChanges fails on a breaking change against it.
const releasedSchema = "testdata/schema.released.graphql"

const releasedHeader = "# The last released Threadline schema: the breaking-change check (ops/schema/schema_test.go)\n" +
	"# compares graph/*.graphqls with it. Update it on purpose, when releasing:\n" +
	"#   go test ./ops/schema -run TestSchemaHasNoBreakingChanges -update\n\n"

// published is the published schema, schema.graphql at the repository root (`make schema`).
const published = "../../schema.graphql"

func TestMain(m *testing.M) { testenv.Main(m, testenv.Options{Migrate: db.Migrate}) }

// servedSchema is the schema the server executes, compiled into graph from graph/*.graphqls.
func servedSchema() *ast.Schema {
	return graph.NewExecutableSchema(graph.Config{}).Schema()
}

func loadSchemaFile(t *testing.T, name string) *ast.Schema {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sdl.Load(&ast.Source{Name: name, Input: string(b)})
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return s
}

// TestPublishedSchemaIsCurrent checks that schema.graphql (`make schema`) is the schema that
// the server runs. (TestIntrospectionMatchesPublishedSchema checks it against the introspection
// of a running server; ops/check-generated.sh checks it byte for byte.)
func TestPublishedSchemaIsCurrent(t *testing.T) {
	publishedSchema := loadSchemaFile(t, published)
	if changes := sdl.Compare(publishedSchema, servedSchema()); len(changes) > 0 || sdl.Canonical(publishedSchema) != sdl.Canonical(servedSchema()) {
		t.Errorf("schema.graphql is not the schema of graph/*.graphqls; run make schema (and make generate). Changes:\n%s", sdl.Report(changes))
	}
}

// checkCompatible returns an error listing the breaking changes from released to current.
func checkCompatible(released, current *ast.Schema) error {
	br := sdl.BreakingChanges(sdl.Compare(released, current))
	if len(br) == 0 {
		return nil
	}
	return errors.New("breaking changes against the released schema (" + releasedSchema + "):\n" + sdl.Report(br) +
		"Clients generated from the released schema would break. Make the change compatible (add the new, deprecate\n" +
		"the old, remove it in a later release), or, if this release breaks them on purpose, record it with\n" +
		"  go test ./ops/schema -run TestSchemaHasNoBreakingChanges -update")
}

// TestSchemaHasNoBreakingChanges is the breaking-change check: the schema the server runs
// against the last released one. With -update it makes the current schema the released one.
func TestSchemaHasNoBreakingChanges(t *testing.T) {
	current := servedSchema()
	if *update {
		if err := os.WriteFile(releasedSchema, []byte(releasedHeader+sdl.Print(current)), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", releasedSchema)
		return
	}
	released := loadSchemaFile(t, releasedSchema)
	if err := checkCompatible(released, current); err != nil {
		t.Fatal(err)
	}
	if changes := sdl.Compare(released, current); len(changes) > 0 {
		t.Logf("compatible changes since the release:\n%s", sdl.Report(changes))
	}
}

// TestBreakingChangeCheckCatchesRemovedField removes Message.body from the current schema and
// runs the check on it.
func TestBreakingChangeCheckCatchesRemovedField(t *testing.T) {
	printed := sdl.Print(servedSchema())
	start := strings.Index(printed, "type Message {")
	end := start + strings.Index(printed[start:], "}")
	body := strings.Index(printed[start:end], "  body: String!\n")
	if start < 0 || body < 0 {
		t.Fatalf("no Message.body in the schema:\n%s", printed)
	}
	edited := printed[:start+body] + printed[start+body+len("  body: String!\n"):]
	candidate, err := sdl.Load(&ast.Source{Name: "edited.graphql", Input: edited})
	if err != nil {
		t.Fatal(err)
	}
	if candidate.Types["Message"].Fields.ForName("body") != nil {
		t.Fatal("the edit did not remove Message.body")
	}

	err = checkCompatible(loadSchemaFile(t, releasedSchema), candidate)
	if err == nil {
		t.Fatal("the check passed a schema without Message.body")
	}
	if !strings.Contains(err.Error(), "BREAKING Message.body: field removed") {
		t.Errorf("the check's report does not name the removed field:\n%v", err)
	}
	t.Logf("the check reports:\n%v", err)

	// Adding a field instead is compatible.
	added := strings.Replace(printed, "type Message {\n", "type Message {\n  edited: Boolean\n", 1)
	candidate, err = sdl.Load(&ast.Source{Name: "added.graphql", Input: added})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkCompatible(loadSchemaFile(t, releasedSchema), candidate); err != nil {
		t.Errorf("adding a field was called breaking: %v", err)
	}
}
