package sdl

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/vektah/gqlparser/v2/ast"
)

// Level rates a change by what it does to existing clients.
type Level int

const (
	// Safe changes keep every existing operation valid, with responses of the same shape.
	Safe Level = iota
	// Dangerous changes keep operations valid but may give clients values they did not expect
	// (a new enum value or union member, a changed default).
	Dangerous
	// Breaking changes make a valid operation invalid, or change the shape of its response.
	Breaking
)

func (l Level) String() string {
	switch l {
	case Safe:
		return "safe"
	case Dangerous:
		return "dangerous"
	default:
		return "BREAKING"
	}
}

// Change is one difference between two schemas.
type Change struct {
	Level Level
	// Path names what changed: "Type", "Type.field", "Type.field(arg:)", "@directive".
	Path    string
	Message string
}

func (c Change) String() string { return fmt.Sprintf("%s %s: %s", c.Level, c.Path, c.Message) }

// Report lists changes for people, one a line, each indented by two spaces.
func Report(changes []Change) string {
	var b strings.Builder
	for _, c := range changes {
		b.WriteString("  " + c.String() + "\n")
	}
	return b.String()
}

// BreakingChanges returns the breaking changes among changes.
func BreakingChanges(changes []Change) []Change {
	var out []Change
	for _, c := range changes {
		if c.Level == Breaking {
			out = append(out, c)
		}
	}
	return out
}

// Compare lists the changes from old to new, sorted by path. Built-in scalars, directives and
// introspection types are not compared.
func Compare(old, new *ast.Schema) []Change {
	c := &comparer{}
	for _, root := range []struct {
		name     string
		old, new *ast.Definition
	}{{"query", old.Query, new.Query}, {"mutation", old.Mutation, new.Mutation}, {"subscription", old.Subscription, new.Subscription}} {
		switch o, n := nameOf(root.old), nameOf(root.new); {
		case o == n:
		case o == "":
			c.add(Safe, "schema."+root.name, "root type %s added", n)
		case n == "":
			c.add(Breaking, "schema."+root.name, "root type %s removed", o)
		default:
			c.add(Breaking, "schema."+root.name, "root type changed from %s to %s", o, n)
		}
	}
	for name, o := range old.Types {
		if !userType(o) {
			continue
		}
		n := new.Types[name]
		if n == nil {
			c.add(Breaking, name, "%s %s removed", kindName(o.Kind), name)
			continue
		}
		c.definition(o, n)
	}
	for name, n := range new.Types {
		if userType(n) && old.Types[name] == nil {
			c.add(Safe, name, "%s %s added", kindName(n.Kind), name)
		}
	}
	for name, o := range old.Directives {
		if builtinDirectives[name] {
			continue
		}
		n := new.Directives[name]
		if n == nil {
			c.add(Breaking, "@"+name, "directive removed")
			continue
		}
		c.directive(o, n)
	}
	for name := range new.Directives {
		if !builtinDirectives[name] && old.Directives[name] == nil {
			c.add(Safe, "@"+name, "directive added")
		}
	}
	slices.SortFunc(c.changes, func(a, b Change) int {
		return cmp.Or(cmp.Compare(a.Path, b.Path), cmp.Compare(b.Level, a.Level), cmp.Compare(a.Message, b.Message))
	})
	return c.changes
}

type comparer struct {
	changes []Change
}

func (c *comparer) add(level Level, path, format string, args ...any) {
	c.changes = append(c.changes, Change{Level: level, Path: path, Message: fmt.Sprintf(format, args...)})
}

func kindName(k ast.DefinitionKind) string {
	switch k {
	case ast.Scalar:
		return "scalar"
	case ast.Object:
		return "type"
	case ast.Interface:
		return "interface"
	case ast.Union:
		return "union"
	case ast.Enum:
		return "enum"
	case ast.InputObject:
		return "input"
	}
	return strings.ToLower(string(k))
}

// members compares a type's interfaces or a union's member types: one removed is breaking (a
// fragment on it no longer applies), one added dangerous (clients may meet a type they do not
// handle). The formats say so, given the name.
func (c *comparer) members(path string, o, n []string, removed, added string) {
	for _, m := range o {
		if !slices.Contains(n, m) {
			c.add(Breaking, path, removed, m)
		}
	}
	for _, m := range n {
		if !slices.Contains(o, m) {
			c.add(Dangerous, path, added, m)
		}
	}
}

func (c *comparer) definition(o, n *ast.Definition) {
	name := o.Name
	if o.Kind != n.Kind {
		c.add(Breaking, name, "changed from %s to %s", kindName(o.Kind), kindName(n.Kind))
		return
	}
	switch o.Kind {
	case ast.Object, ast.Interface:
		c.members(name, o.Interfaces, n.Interfaces, "no longer implements %s", "now implements %s")
		c.outputFields(name, o.Fields, n.Fields)
	case ast.Union:
		c.members(name, o.Types, n.Types, "member %s removed", "member %s added")
	case ast.Enum:
		for _, v := range o.EnumValues {
			if n.EnumValues.ForName(v.Name) == nil {
				c.add(Breaking, name+"."+v.Name, "enum value removed")
			}
		}
		for _, v := range n.EnumValues {
			if o.EnumValues.ForName(v.Name) == nil {
				c.add(Dangerous, name+"."+v.Name, "enum value added")
			}
		}
	case ast.InputObject:
		if o.Directives.ForName("oneOf") == nil && n.Directives.ForName("oneOf") != nil {
			c.add(Breaking, name, "became @oneOf")
		}
		for _, of := range o.Fields {
			path := name + "." + of.Name
			nf := n.Fields.ForName(of.Name)
			if nf == nil {
				c.add(Breaking, path, "input field removed")
				continue
			}
			c.inputValue(path, "input field", of.Type, nf.Type, of.DefaultValue, nf.DefaultValue)
		}
		for _, nf := range n.Fields {
			if o.Fields.ForName(nf.Name) == nil {
				c.added(name+"."+nf.Name, "input field", nf.Type, nf.DefaultValue)
			}
		}
	}
}

func (c *comparer) outputFields(typeName string, old, new ast.FieldList) {
	for _, of := range old {
		if strings.HasPrefix(of.Name, "__") {
			continue
		}
		path := typeName + "." + of.Name
		nf := new.ForName(of.Name)
		if nf == nil {
			if of.Directives.ForName("deprecated") != nil {
				c.add(Breaking, path, "field removed (it was deprecated)")
			} else {
				c.add(Breaking, path, "field removed")
			}
			continue
		}
		switch {
		case !safeOutput(of.Type, nf.Type):
			c.add(Breaking, path, "type changed from %s to %s", of.Type, nf.Type)
		case of.Type.String() != nf.Type.String():
			c.add(Safe, path, "type changed from %s to %s", of.Type, nf.Type)
		}
		if of.Directives.ForName("deprecated") == nil && nf.Directives.ForName("deprecated") != nil {
			c.add(Safe, path, "field deprecated")
		}
		c.arguments(path, of.Arguments, nf.Arguments)
	}
	for _, nf := range new {
		if !strings.HasPrefix(nf.Name, "__") && old.ForName(nf.Name) == nil {
			c.add(Safe, typeName+"."+nf.Name, "field added")
		}
	}
}

func (c *comparer) arguments(path string, old, new ast.ArgumentDefinitionList) {
	for _, oa := range old {
		apath := path + "(" + oa.Name + ":)"
		na := new.ForName(oa.Name)
		if na == nil {
			c.add(Breaking, apath, "argument removed")
			continue
		}
		c.inputValue(apath, "argument", oa.Type, na.Type, oa.DefaultValue, na.DefaultValue)
	}
	for _, na := range new {
		if old.ForName(na.Name) == nil {
			c.added(path+"("+na.Name+":)", "argument", na.Type, na.DefaultValue)
		}
	}
}

// inputValue compares an argument or input field that both schemas have.
func (c *comparer) inputValue(path, what string, ot, nt *ast.Type, od, nd *ast.Value) {
	switch {
	case !safeInput(ot, nt):
		c.add(Breaking, path, "%s type changed from %s to %s", what, ot, nt)
	case ot.String() != nt.String():
		c.add(Safe, path, "%s type changed from %s to %s", what, ot, nt)
	}
	if ov, nv := valueString(od), valueString(nd); ov != nv {
		c.add(Dangerous, path, "default value changed from %s to %s", ov, nv)
	}
}

// added rates a new argument or input field: required (non-null without a default) breaks
// every operation that does not pass it.
func (c *comparer) added(path, what string, t *ast.Type, def *ast.Value) {
	if t.NonNull && def == nil {
		c.add(Breaking, path, "required %s added", what)
	} else {
		c.add(Safe, path, "optional %s added", what)
	}
}

func (c *comparer) directive(o, n *ast.DirectiveDefinition) {
	path := "@" + o.Name
	c.arguments(path, o.Arguments, n.Arguments)
	for _, l := range o.Locations {
		if !slices.Contains(n.Locations, l) {
			c.add(Breaking, path, "location %s removed", l)
		}
	}
	for _, l := range n.Locations {
		if !slices.Contains(o.Locations, l) {
			c.add(Safe, path, "location %s added", l)
		}
	}
	if o.IsRepeatable && !n.IsRepeatable {
		c.add(Breaking, path, "no longer repeatable")
	}
}

func valueString(v *ast.Value) string {
	if v == nil {
		return "(none)"
	}
	return v.String()
}

// safeOutput reports whether a field of type old can become type new without changing what
// clients can receive: the same named type, with at most nullability taken away.
func safeOutput(old, new *ast.Type) bool {
	if old.NonNull {
		return new.NonNull && safeOutput(nullable(old), nullable(new))
	}
	if new.NonNull {
		return safeOutput(old, nullable(new))
	}
	if old.Elem != nil || new.Elem != nil {
		return old.Elem != nil && new.Elem != nil && safeOutput(old.Elem, new.Elem)
	}
	return old.NamedType == new.NamedType
}

// safeInput reports whether an argument or input field of type old can become type new while
// every value clients send stays valid: the same named type, with at most nullability added.
func safeInput(old, new *ast.Type) bool {
	if new.NonNull {
		return old.NonNull && safeInput(nullable(old), nullable(new))
	}
	if old.NonNull {
		return safeInput(nullable(old), new)
	}
	if old.Elem != nil || new.Elem != nil {
		return old.Elem != nil && new.Elem != nil && safeInput(old.Elem, new.Elem)
	}
	return old.NamedType == new.NamedType
}

func nullable(t *ast.Type) *ast.Type {
	c := *t
	c.NonNull = false
	return &c
}
