// Command gqlgen generates the GraphQL executor (graph/generated.go and friends) with gqlgen,
// exactly as `gqlgen generate` does, then marshals some lists serially.
//
// gqlgen marshals every list of objects with one goroutine per element
// (graphql.MarshalSliceConcurrently), whether or not anything in an element could wait. For a
// 50-message page that is 50 goroutines whose stacks grow and are copied on every request: about
// a fifth of the executed path's CPU. Where the element type, and every object reachable from it
// through its fields, has no field that runs concurrently (no resolver, no method taking a
// context), nothing in an element can block, so this command rewrites that list's marshal
// function to call marshalSliceSerially (graph/marshal_lists.go) instead. Where some field below
// can run concurrently (User.online, Reaction.viewerReacted), the list calls marshalSliceFor,
// which marshals serially when the request selects none of those fields below the list and
// concurrently otherwise, so that their loads still batch. The object shapes it reads are
// written to graph/shapes_gen.go.
//
// The marshallers of message lists (and message edges) try the hand-written writers of
// graph/fastjson.go first: when the request selects only plain fields on them they write the
// whole list into one buffer, and gqlgen's per-field machinery does not run.
//
// It also makes the marshaller of every subscription field's events call shareEvent
// (graph/fanout.go): subscribers of the same event whose operations agree share one execution
// and its bytes.
//
// Run it as `go run ./ops/gqlgen` (make generate); regenerating changes nothing.
package main

import (
	"fmt"
	"go/format"
	"go/types"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/plugin"
	"github.com/vektah/gqlparser/v2/ast"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gqlgen:", err)
		os.Exit(1)
	}
}

// capture is a plugin that keeps gqlgen's build data for the rewrite.
type capture struct{ data *codegen.Data }

var _ plugin.CodeGenerator = (*capture)(nil)

func (*capture) Name() string                            { return "serial-lists" }
func (c *capture) GenerateCode(data *codegen.Data) error { c.data = data; return nil }

func run() error {
	cfg, err := config.LoadConfigFromDefaultLocations()
	if err != nil {
		return err
	}
	c := &capture{}
	if err := api.Generate(cfg, api.AddPlugin(c)); err != nil {
		return err
	}
	shapes := objectShapes(c.data)
	path := cfg.Exec.Filename
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, n := rewrite(string(src), goTypeNames(c.data), shapes)
	if n == 0 {
		return fmt.Errorf("no list marshaller rewritten in %s: did gqlgen's output change?", path)
	}
	if out, n = fastLists(out); n != len(fastListFuncs) {
		return fmt.Errorf("%d of %d fast list marshallers hooked in %s: did gqlgen's output change?", n, len(fastListFuncs), path)
	}
	out, n = rewriteStreams(out)
	if want := len(c.data.Schema.Subscription.Fields); n != want {
		return fmt.Errorf("%d of %d subscription marshallers rewritten in %s: did gqlgen's output change?", n, want, path)
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		return err
	}
	table, err := format.Source([]byte(shapeTable(shapes)))
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(filepath.Dir(path), "shapes_gen.go"), table, 0o644)
}

// A shape is what the list rewrite needs to know of an object type: for each field, whether it
// runs concurrently (a resolver, or a method taking a context) and, for a field of object type,
// that type's name ("" for scalars and enums); abstract is set for fields of interface or union
// type.
type shape struct {
	implements []string
	fields     map[string]fieldShape
}

type fieldShape struct {
	concurrent, abstract bool
	object               string
}

func objectShapes(data *codegen.Data) map[string]shape {
	out := map[string]shape{}
	for _, o := range data.Objects {
		if o.Root || strings.HasPrefix(o.Name, "__") {
			continue
		}
		sh := shape{fields: map[string]fieldShape{}}
		for _, i := range o.Implements {
			sh.implements = append(sh.implements, i.Name)
		}
		for _, f := range o.Fields {
			fs := fieldShape{concurrent: f.IsConcurrent()}
			switch def := f.TypeReference.Definition; def.Kind {
			case ast.Object:
				fs.object = def.Name
			case ast.Interface, ast.Union:
				fs.abstract = true
			}
			sh.fields[f.Name] = fs
		}
		out[o.Name] = sh
	}
	return out
}

// static reports whether nothing in an object of type name, or below it, can run concurrently
// whatever the selection.
func static(shapes map[string]shape, name string, seen map[string]bool) bool {
	if seen[name] {
		return true // a cycle: decided by the other fields
	}
	seen[name] = true
	sh, ok := shapes[name]
	if !ok {
		return false
	}
	for _, f := range sh.fields {
		if f.concurrent || f.abstract || (f.object != "" && !static(shapes, f.object, seen)) {
			return false
		}
	}
	return true
}

// goTypeNames maps the Go type of each object (as written in generated.go, e.g.
// "chat.Message") to its GraphQL name, for the types bound to exactly one object.
func goTypeNames(data *codegen.Data) map[string]string {
	out, dup := map[string]string{}, map[string]bool{}
	for _, o := range data.Objects {
		if o.Root || strings.HasPrefix(o.Name, "__") {
			continue
		}
		t := types.TypeString(o.Type, shortQualifier)
		if _, ok := out[t]; ok {
			dup[t] = true
		}
		out[t] = o.Name
	}
	for t := range dup {
		delete(out, t)
	}
	return out
}

func shortQualifier(p *types.Package) string { return p.Name() }

var listMarshaller = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) marshal[^(]+\(ctx context\.Context, sel ast\.SelectionSet, v \[\]\*?([\w.]+)\) graphql\.Marshaler \{\n\tret := graphql\.MarshalSliceConcurrently\(ctx, len\(v\), (\d+), (true|false), func`)

// rewrite replaces gqlgen's concurrent marshalling of object lists: by marshalSliceSerially
// where nothing below the element type can run concurrently, and by marshalSliceFor (which
// decides from the request's selection) where something can.
func rewrite(src string, names map[string]string, shapes map[string]shape) (string, int) {
	n := 0
	out := listMarshaller.ReplaceAllStringFunc(src, func(m string) string {
		sub := listMarshaller.FindStringSubmatch(m)
		name, ok := names[sub[1]]
		if !ok {
			return m
		}
		n++
		i := strings.Index(m, "graphql.MarshalSliceConcurrently(")
		j := strings.Index(m[i:], ", func") + i
		if static(shapes, name, map[string]bool{}) {
			return m[:i] + "marshalSliceSerially(ctx, len(v)" + m[j:]
		}
		return m[:i] + fmt.Sprintf("marshalSliceFor(ctx, sel, %q, len(v), %s, %s", name, sub[2], sub[3]) + m[j:]
	})
	return out, n
}

// fastListFuncs are the hand-written writers of whole lists (graph/fastjson.go), by the Go
// element type of the lists they write.
var fastListFuncs = map[string]string{
	"*chat.Message":      "fastMessages",
	"*model.MessageEdge": "fastMessageEdges",
}

// fastLists makes the generated marshallers of the lists in fastListFuncs try their fast
// writer first: it answers ok=false for a selection it does not handle, and gqlgen's code
// runs as before.
func fastLists(src string) (string, int) {
	n := 0
	for elem, fn := range fastListFuncs {
		re := regexp.MustCompile(`(?m)^func \(ec \*executionContext\) marshal[^(]+\(ctx context\.Context, sel ast\.SelectionSet, v \[\]` +
			regexp.QuoteMeta(elem) + `\) graphql\.Marshaler \{\n`)
		src = re.ReplaceAllStringFunc(src, func(m string) string {
			n++
			return m + "\tif m, ok := " + fn + "(ctx, ec.OperationContext, sel, v); ok {\n\t\treturn m\n\t}\n"
		})
	}
	return src, n
}

var streamMarshaller = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) _Subscription_(\w+)\(ctx context\.Context, field graphql\.CollectedField\) \(ret func\(ctx context\.Context\) graphql\.Marshaler\) \{\n\treturn graphql\.ResolveFieldStream\((?s:.*?)\n\t\tfunc\(ctx context\.Context, selections ast\.SelectionSet, v ([^)]+)\) graphql\.Marshaler \{\n\t\t\treturn (ec\.marshal[^(]+\(ctx, selections, v\))\n\t\t\},\n`)

// rewriteStreams makes the marshaller of each subscription field's events go through
// shareEvent (graph/fanout.go), which executes an event once for all the subscribers whose
// operations (and, for a selection that depends on it, viewers) are the same.
func rewriteStreams(src string) (string, int) {
	n := 0
	out := streamMarshaller.ReplaceAllStringFunc(src, func(m string) string {
		sub := streamMarshaller.FindStringSubmatch(m)
		n++
		call := sub[3]
		i := strings.LastIndex(m, "\t\t\treturn "+call)
		return m[:i] + fmt.Sprintf("\t\t\treturn shareEvent(ctx, ec.Resolvers, %q, selections, v, func(ctx context.Context) graphql.Marshaler {\n\t\t\t\treturn %s\n\t\t\t})\n\t\t},\n", sub[1], call)
	})
	return out, n
}

// shapeTable writes the shapes as Go source for graph/shapes_gen.go.
func shapeTable(shapes map[string]shape) string {
	var b strings.Builder
	b.WriteString("// Code generated by ops/gqlgen, DO NOT EDIT.\n\npackage graph\n\n")
	b.WriteString("// objectShapes describes every object type for marshalSliceFor (see graph/marshal_lists.go).\n")
	b.WriteString("var objectShapes = map[string]objectShape{\n")
	for _, name := range slices.Sorted(maps.Keys(shapes)) {
		sh := shapes[name]
		fmt.Fprintf(&b, "\t%q: {\n", name)
		if len(sh.implements) > 0 {
			fmt.Fprintf(&b, "\t\timplements: %#v,\n", sh.implements)
		}
		b.WriteString("\t\tfields: map[string]fieldShape{\n")
		for _, f := range slices.Sorted(maps.Keys(sh.fields)) {
			fs := sh.fields[f]
			fmt.Fprintf(&b, "\t\t\t%q: {concurrent: %t, abstract: %t, object: %q},\n", f, fs.concurrent, fs.abstract, fs.object)
		}
		b.WriteString("\t\t},\n\t},\n")
	}
	b.WriteString("}\n")
	return b.String()
}
