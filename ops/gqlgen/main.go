// Command gqlgen generates the GraphQL executor (graph/generated.go and friends) with gqlgen,
// exactly as `gqlgen generate` does, then marshals some lists serially.
//
// gqlgen marshals every list of objects with one goroutine per element
// (graphql.MarshalSliceConcurrently), whether or not anything in an element could wait. For a
// 50-message page that is 50 goroutines whose stacks grow and are copied on every request: about
// a fifth of the executed path's CPU. Where the element type, and every object reachable from it
// through its fields, has no field that runs concurrently (no resolver, no method taking a
// context), nothing in an element can block, so this command rewrites that list's marshal
// function to call marshalSliceSerially (graph/marshal_lists.go) instead. Lists whose elements may wait
// on a loader (conversations) stay concurrent, so their loads still batch.
//
// Run it as `go run ./ops/gqlgen` (make generate); regenerating changes nothing.
package main

import (
	"fmt"
	"go/types"
	"os"
	"regexp"
	"strings"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/plugin"
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
	serial := serialTypes(c.data)
	path := cfg.Exec.Filename
	src, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, n := rewrite(string(src), serial)
	if n == 0 {
		return fmt.Errorf("no list marshaller rewritten in %s: did gqlgen's output change?", path)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// serialTypes returns the Go type names (as written in generated.go, e.g. "chat.Message") of the
// objects whose lists may be marshalled serially.
func serialTypes(data *codegen.Data) map[string]bool {
	byName := map[string]*codegen.Object{}
	for _, o := range data.Objects {
		byName[o.Name] = o
	}
	memo := map[string]bool{}
	var safe func(o *codegen.Object, seen map[string]bool) bool
	safe = func(o *codegen.Object, seen map[string]bool) bool {
		if v, ok := memo[o.Name]; ok {
			return v
		}
		if seen[o.Name] {
			return true // a cycle: decided by the other fields
		}
		seen[o.Name] = true
		ok := true
		for _, f := range o.Fields {
			if f.IsConcurrent() {
				ok = false
				break
			}
			if child, isObj := byName[f.TypeReference.Definition.Name]; isObj && !safe(child, seen) {
				ok = false
				break
			}
			if f.TypeReference.Definition.Kind != "OBJECT" && f.TypeReference.Definition.Kind != "SCALAR" && f.TypeReference.Definition.Kind != "ENUM" {
				ok = false // interfaces and unions: keep gqlgen's behaviour
				break
			}
		}
		memo[o.Name] = ok
		return ok
	}
	out := map[string]bool{}
	for _, o := range data.Objects {
		if o.Root || o.Name == "__Schema" || strings.HasPrefix(o.Name, "__") {
			continue
		}
		if safe(o, map[string]bool{}) {
			out[types.TypeString(o.Type, shortQualifier)] = true
		}
	}
	return out
}

func shortQualifier(p *types.Package) string { return p.Name() }

var listMarshaller = regexp.MustCompile(`(?m)^func \(ec \*executionContext\) marshal[^(]+\(ctx context\.Context, sel ast\.SelectionSet, v \[\]\*([\w.]+)\) graphql\.Marshaler \{\n\tret := graphql\.MarshalSliceConcurrently\(ctx, len\(v\), \d+, (?:true|false), func`)

// rewrite replaces the concurrent marshalling of the lists of serial types.
func rewrite(src string, serial map[string]bool) (string, int) {
	n := 0
	out := listMarshaller.ReplaceAllStringFunc(src, func(m string) string {
		elem := listMarshaller.FindStringSubmatch(m)[1]
		if !serial[elem] {
			return m
		}
		n++
		i := strings.Index(m, "graphql.MarshalSliceConcurrently(")
		j := strings.Index(m[i:], ", func") + i
		return m[:i] + "marshalSliceSerially(ctx, len(v)" + m[j:]
	})
	return out, n
}
