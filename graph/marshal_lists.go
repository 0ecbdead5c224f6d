package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// marshalSliceSerially marshals a list's elements one after another in the calling goroutine.
// ops/gqlgen rewrites the generated marshaller of a list to call it in place of
// graphql.MarshalSliceConcurrently when nothing in an element can block (no resolver, no context
// method, in the element or below it), where a goroutine per element only costs: stack growth,
// scheduling and their garbage. Each element gets its own field context and panic handling, as
// with gqlgen's version.
func marshalSliceSerially(ctx context.Context, n int, marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	ret := make(graphql.Array, n)
	for i := range n {
		fc := &graphql.FieldContext{Index: &i}
		childCtx := graphql.WithFieldContext(ctx, fc)
		func() {
			defer func() {
				if r := recover(); r != nil {
					graphql.AddError(childCtx, graphql.Recover(childCtx, r))
					ret[i] = graphql.Null
				}
			}()
			ret[i] = marshal(childCtx, i)
		}()
	}
	return ret
}

// An objectShape describes an object type's fields for marshalSliceFor; ops/gqlgen writes them
// all to shapes_gen.go.
type objectShape struct {
	implements []string
	fields     map[string]fieldShape
}

// fieldShape: whether the field runs concurrently (a resolver, or a method taking a context),
// whether its type is an interface or a union, and its object type's name ("" for scalars and
// enums).
type fieldShape struct {
	concurrent, abstract bool
	object               string
}

// marshalSliceFor marshals a list of objects of type typeName serially when the request's
// selection of its elements (sel, with fragments and @skip/@include applied) reaches no field
// that runs concurrently, and with gqlgen's concurrent marshalling otherwise. The check walks
// the selection once per list, not once per element.
func marshalSliceFor(ctx context.Context, sel ast.SelectionSet, typeName string, n int, workers int64, omitPanicHandler bool, marshal func(ctx context.Context, i int) graphql.Marshaler) graphql.Array {
	if n > 1 && serialSelection(graphql.GetOperationContext(ctx), sel, typeName, 0) {
		return marshalSliceSerially(ctx, n, marshal)
	}
	return graphql.MarshalSliceConcurrently(ctx, n, workers, omitPanicHandler, marshal)
}

// maxShapeDepth bounds the walk (the document gate bounds depth well below it).
const maxShapeDepth = 32

// serialSelection reports whether selecting sel on an object of type typeName runs no field
// concurrently, at any depth.
func serialSelection(opCtx *graphql.OperationContext, sel ast.SelectionSet, typeName string, depth int) bool {
	shape, ok := objectShapes[typeName]
	if !ok || depth > maxShapeDepth || opCtx == nil {
		return false
	}
	satisfies := append([]string{typeName}, shape.implements...)
	for _, f := range graphql.CollectFields(opCtx, sel, satisfies) {
		if f.Name == "__typename" {
			continue
		}
		fs, ok := shape.fields[f.Name]
		if !ok || fs.concurrent || fs.abstract {
			return false
		}
		if fs.object != "" && !serialSelection(opCtx, f.Selections, fs.object, depth+1) {
			return false
		}
	}
	return true
}
