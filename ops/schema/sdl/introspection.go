package sdl

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// IntrospectionQuery asks a server for its whole schema: everything [FromIntrospection] needs.
const IntrospectionQuery = `query IntrospectionQuery {
  __schema {
    queryType { name }
    mutationType { name }
    subscriptionType { name }
    types { ...FullType }
    directives {
      name
      description
      isRepeatable
      locations
      args(includeDeprecated: true) { ...InputValue }
    }
  }
}

fragment FullType on __Type {
  kind
  name
  description
  specifiedByURL
  isOneOf
  fields(includeDeprecated: true) {
    name
    description
    args(includeDeprecated: true) { ...InputValue }
    type { ...TypeRef }
    isDeprecated
    deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) {
    name
    description
    isDeprecated
    deprecationReason
  }
  possibleTypes { ...TypeRef }
}

fragment InputValue on __InputValue {
  name
  description
  type { ...TypeRef }
  defaultValue
  isDeprecated
  deprecationReason
}

fragment TypeRef on __Type {
  kind
  name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } }
}
`

type introspection struct {
	Schema struct {
		QueryType        *named          `json:"queryType"`
		MutationType     *named          `json:"mutationType"`
		SubscriptionType *named          `json:"subscriptionType"`
		Types            []fullType      `json:"types"`
		Directives       []directiveInfo `json:"directives"`
	} `json:"__schema"`
}

type named struct {
	Name string `json:"name"`
}

type fullType struct {
	Kind           string       `json:"kind"`
	Name           string       `json:"name"`
	Description    *string      `json:"description"`
	SpecifiedByURL *string      `json:"specifiedByURL"`
	IsOneOf        bool         `json:"isOneOf"`
	Fields         []fieldInfo  `json:"fields"`
	InputFields    []inputValue `json:"inputFields"`
	Interfaces     []typeRef    `json:"interfaces"`
	EnumValues     []element    `json:"enumValues"`
	PossibleTypes  []typeRef    `json:"possibleTypes"`
}

// element is what introspection says of every field, argument, input field and enum value:
// its name, description and deprecation.
type element struct {
	Name              string  `json:"name"`
	Description       *string `json:"description"`
	IsDeprecated      bool    `json:"isDeprecated"`
	DeprecationReason *string `json:"deprecationReason"`
}

type fieldInfo struct {
	element
	Args []inputValue `json:"args"`
	Type typeRef      `json:"type"`
}

type inputValue struct {
	element
	Type         typeRef `json:"type"`
	DefaultValue *string `json:"defaultValue"`
}

type directiveInfo struct {
	Name         string       `json:"name"`
	Description  *string      `json:"description"`
	IsRepeatable bool         `json:"isRepeatable"`
	Locations    []string     `json:"locations"`
	Args         []inputValue `json:"args"`
}

type typeRef struct {
	Kind   string   `json:"kind"`
	Name   *string  `json:"name"`
	OfType *typeRef `json:"ofType"`
}

func (t typeRef) String() string {
	switch t.Kind {
	case "NON_NULL":
		if t.OfType != nil {
			return t.OfType.String() + "!"
		}
	case "LIST":
		if t.OfType != nil {
			return "[" + t.OfType.String() + "]"
		}
	default:
		if t.Name != nil {
			return *t.Name
		}
	}
	return "?"
}

// FromIntrospection returns the SDL of the schema described by data, the "data" of the
// response to [IntrospectionQuery] (or the whole response, {"data": ...}). Built-in scalars,
// directives and introspection types are left out, as [Print] leaves them out.
func FromIntrospection(data []byte) (string, error) {
	var envelope struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(data, &envelope); err == nil && len(envelope.Data) > 0 {
		data = envelope.Data
	}
	var in introspection
	if err := json.Unmarshal(data, &in); err != nil {
		return "", fmt.Errorf("sdl: not an introspection result: %w", err)
	}
	s := in.Schema
	if s.QueryType == nil || len(s.Types) == 0 {
		return "", errors.New("sdl: the introspection result has no __schema")
	}
	var b strings.Builder
	b.WriteString("schema {\n  query: " + s.QueryType.Name + "\n")
	if s.MutationType != nil {
		b.WriteString("  mutation: " + s.MutationType.Name + "\n")
	}
	if s.SubscriptionType != nil {
		b.WriteString("  subscription: " + s.SubscriptionType.Name + "\n")
	}
	b.WriteString("}\n")

	for _, d := range s.Directives {
		if builtinDirectives[d.Name] {
			continue
		}
		writeDescription(&b, "", d.Description)
		b.WriteString("directive @" + d.Name)
		writeArgs(&b, d.Args)
		if d.IsRepeatable {
			b.WriteString(" repeatable")
		}
		b.WriteString(" on " + strings.Join(d.Locations, " | ") + "\n")
	}

	for _, t := range s.Types {
		if strings.HasPrefix(t.Name, "__") || (t.Kind == "SCALAR" && builtinScalars[t.Name]) {
			continue
		}
		writeDescription(&b, "", t.Description)
		switch t.Kind {
		case "SCALAR":
			b.WriteString("scalar " + t.Name)
			if t.SpecifiedByURL != nil {
				b.WriteString(" @specifiedBy(url: " + quote(*t.SpecifiedByURL) + ")")
			}
			b.WriteString("\n")
		case "OBJECT", "INTERFACE":
			kw := "type"
			if t.Kind == "INTERFACE" {
				kw = "interface"
			}
			b.WriteString(kw + " " + t.Name)
			writeImplements(&b, t.Interfaces)
			writeFields(&b, t.Fields)
		case "UNION":
			b.WriteString("union " + t.Name)
			for i, p := range t.PossibleTypes {
				if i == 0 {
					b.WriteString(" = ")
				} else {
					b.WriteString(" | ")
				}
				b.WriteString(p.String())
			}
			b.WriteString("\n")
		case "ENUM":
			b.WriteString("enum " + t.Name + " {\n")
			for _, v := range t.EnumValues {
				writeDescription(&b, "  ", v.Description)
				b.WriteString("  " + v.Name + deprecated(v.IsDeprecated, v.DeprecationReason) + "\n")
			}
			b.WriteString("}\n")
		case "INPUT_OBJECT":
			b.WriteString("input " + t.Name)
			if t.IsOneOf {
				b.WriteString(" @oneOf")
			}
			b.WriteString(" {\n")
			for _, f := range t.InputFields {
				writeDescription(&b, "  ", f.Description)
				b.WriteString("  ")
				writeInputValue(&b, f)
				b.WriteString("\n")
			}
			b.WriteString("}\n")
		default:
			return "", fmt.Errorf("sdl: type %s has unknown kind %q", t.Name, t.Kind)
		}
	}
	return b.String(), nil
}

func writeImplements(b *strings.Builder, ifaces []typeRef) {
	for i, it := range ifaces {
		if i == 0 {
			b.WriteString(" implements ")
		} else {
			b.WriteString(" & ")
		}
		b.WriteString(it.String())
	}
}

func writeFields(b *strings.Builder, fields []fieldInfo) {
	b.WriteString(" {\n")
	for _, f := range fields {
		writeDescription(b, "  ", f.Description)
		b.WriteString("  " + f.Name)
		writeArgs(b, f.Args)
		b.WriteString(": " + f.Type.String() + deprecated(f.IsDeprecated, f.DeprecationReason) + "\n")
	}
	b.WriteString("}\n")
}

func writeArgs(b *strings.Builder, args []inputValue) {
	if len(args) == 0 {
		return
	}
	b.WriteString("(\n")
	for _, a := range args {
		writeDescription(b, "    ", a.Description)
		b.WriteString("    ")
		writeInputValue(b, a)
		b.WriteString("\n")
	}
	b.WriteString("  )")
}

func writeInputValue(b *strings.Builder, v inputValue) {
	b.WriteString(v.Name + ": " + v.Type.String())
	if v.DefaultValue != nil {
		b.WriteString(" = " + *v.DefaultValue)
	}
	b.WriteString(deprecated(v.IsDeprecated, v.DeprecationReason))
}

func writeDescription(b *strings.Builder, indent string, d *string) {
	if d == nil || *d == "" {
		return
	}
	b.WriteString(indent + quote(*d) + "\n")
}

func deprecated(is bool, reason *string) string {
	if !is {
		return ""
	}
	if reason == nil {
		return " @deprecated"
	}
	return " @deprecated(reason: " + quote(*reason) + ")"
}

// quote returns s as a GraphQL string literal. A JSON string is one: GraphQL's escapes are a
// superset of JSON's.
func quote(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}
