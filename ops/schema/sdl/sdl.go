// Package sdl reads, prints and compares GraphQL schemas: the published schema.graphql
// (`make schema`), the check that the running server's introspection matches it, and the
// breaking-change check against the last released schema.
//
//   - [Load] parses and validates SDL, [Print] writes a schema as SDL (types and directives
//     sorted by name, fields in declaration order, built-ins left out), and [Canonical] prints it
//     with fields, arguments, values and members sorted too: two schemas with the same canonical
//     text are the same schema to every client.
//   - [IntrospectionQuery] and [FromIntrospection] turn the answer of a running server back into
//     SDL, so that it can be compared with the committed schema.
//   - [Compare] lists what changed between two schemas, each change rated [Safe], [Dangerous]
//     (existing clients keep working but may meet values they did not expect) or [Breaking]
//     (a query that was valid before is invalid now, or gets a response of another shape).
package sdl

import (
	"bytes"
	"cmp"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/formatter"
)

// Load parses and validates a schema from SDL sources.
func Load(sources ...*ast.Source) (*ast.Schema, error) {
	s, err := gqlparser.LoadSchema(sources...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// LoadFiles loads a schema from the files that match the glob patterns, in name order.
func LoadFiles(patterns ...string) (*ast.Schema, error) {
	var names []string
	for _, p := range patterns {
		m, err := filepath.Glob(p)
		if err != nil {
			return nil, err
		}
		if len(m) == 0 {
			return nil, fmt.Errorf("sdl: no file matches %s", p)
		}
		names = append(names, m...)
	}
	slices.Sort(names)
	sources := make([]*ast.Source, len(names))
	for i, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, err
		}
		sources[i] = &ast.Source{Name: filepath.ToSlash(name), Input: string(b)}
	}
	return Load(sources...)
}

// Print returns schema as SDL: directives and types sorted by name, fields, arguments and
// enum values in declaration order, without built-in scalars, directives and introspection
// types, indented by two spaces, a blank line between definitions.
func Print(schema *ast.Schema) string {
	var parts []string
	emit := func(s *ast.Schema) {
		var buf bytes.Buffer
		formatter.NewFormatter(&buf, formatter.WithIndent("  ")).FormatSchema(s)
		if buf.Len() > 0 {
			parts = append(parts, buf.String())
		}
	}
	// The schema definition, when the root types are not named Query, Mutation, Subscription.
	emit(&ast.Schema{Query: schema.Query, Mutation: schema.Mutation, Subscription: schema.Subscription, SchemaDirectives: schema.SchemaDirectives})
	for _, name := range slices.Sorted(maps.Keys(schema.Directives)) {
		emit(&ast.Schema{Directives: map[string]*ast.DirectiveDefinition{name: schema.Directives[name]}})
	}
	for _, name := range slices.Sorted(maps.Keys(schema.Types)) {
		emit(&ast.Schema{Types: map[string]*ast.Definition{name: schema.Types[name]}})
	}
	return strings.Join(parts, "\n")
}

// Canonical returns schema as SDL in a canonical order: as [Print], with fields, arguments,
// enum values, input fields, interfaces and union members sorted by name. It does not modify
// schema.
func Canonical(schema *ast.Schema) string {
	c := *schema
	c.Types = make(map[string]*ast.Definition, len(schema.Types))
	for name, def := range schema.Types {
		c.Types[name] = sortedDefinition(def)
	}
	c.Directives = make(map[string]*ast.DirectiveDefinition, len(schema.Directives))
	for name, d := range schema.Directives {
		dc := *d
		dc.Arguments = sortedArgs(d.Arguments)
		dc.Locations = slices.Clone(d.Locations)
		slices.Sort(dc.Locations)
		c.Directives[name] = &dc
	}
	c.Query, c.Mutation, c.Subscription = c.Types[nameOf(schema.Query)], c.Types[nameOf(schema.Mutation)], c.Types[nameOf(schema.Subscription)]
	return Print(&c)
}

func nameOf(def *ast.Definition) string {
	if def == nil {
		return ""
	}
	return def.Name
}

func sortedDefinition(def *ast.Definition) *ast.Definition {
	d := *def
	d.Interfaces = slices.Sorted(slices.Values(def.Interfaces))
	d.Types = slices.Sorted(slices.Values(def.Types))
	d.Fields = make(ast.FieldList, len(def.Fields))
	for i, f := range def.Fields {
		fc := *f
		fc.Arguments = sortedArgs(f.Arguments)
		fc.Directives = explicitDeprecation(f.Directives)
		d.Fields[i] = &fc
	}
	slices.SortFunc(d.Fields, func(a, b *ast.FieldDefinition) int { return cmp.Compare(a.Name, b.Name) })
	d.EnumValues = make(ast.EnumValueList, len(def.EnumValues))
	for i, v := range def.EnumValues {
		vc := *v
		vc.Directives = explicitDeprecation(v.Directives)
		d.EnumValues[i] = &vc
	}
	slices.SortFunc(d.EnumValues, func(a, b *ast.EnumValueDefinition) int { return cmp.Compare(a.Name, b.Name) })
	return &d
}

func sortedArgs(args ast.ArgumentDefinitionList) ast.ArgumentDefinitionList {
	out := make(ast.ArgumentDefinitionList, len(args))
	for i, a := range args {
		ac := *a
		ac.Directives = explicitDeprecation(a.Directives)
		out[i] = &ac
	}
	slices.SortFunc(out, func(a, b *ast.ArgumentDefinition) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// defaultDeprecationReason is the default of @deprecated's reason argument.
const defaultDeprecationReason = "No longer supported"

// explicitDeprecation returns ds with a @deprecated without a reason given the default reason,
// which is what introspection reports for it.
func explicitDeprecation(ds ast.DirectiveList) ast.DirectiveList {
	i := slices.IndexFunc(ds, func(d *ast.Directive) bool { return d.Name == "deprecated" && d.Arguments.ForName("reason") == nil })
	if i < 0 {
		return ds
	}
	out := slices.Clone(ds)
	d := *ds[i]
	d.Arguments = append(slices.Clone(d.Arguments), &ast.Argument{Name: "reason", Value: &ast.Value{Kind: ast.StringValue, Raw: defaultDeprecationReason}})
	out[i] = &d
	return out
}

// builtinDirectives are the directives every schema has (gqlparser's prelude).
var builtinDirectives = map[string]bool{
	"include": true, "skip": true, "deprecated": true, "specifiedBy": true, "defer": true, "oneOf": true,
}

// builtinScalars are the scalars every schema has.
var builtinScalars = map[string]bool{"Int": true, "Float": true, "String": true, "Boolean": true, "ID": true}

// userType reports whether def is a type of the schema's own, not a built-in scalar or an
// introspection type.
func userType(def *ast.Definition) bool {
	return !def.BuiltIn && !strings.HasPrefix(def.Name, "__") && !(def.Kind == ast.Scalar && builtinScalars[def.Name])
}
