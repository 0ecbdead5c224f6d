package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
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
