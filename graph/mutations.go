package graph

import (
	"context"
	"errors"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/apperr"
)

// DefaultMaxMutations is the most mutation fields one operation may carry.
const DefaultMaxMutations = 10

// SetTypingCost is what a setTyping field costs of the viewer's rate limit, in requests. A client
// that types without pause calls it every 2 to 3 s: 3 to 5 requests a second of the default
// 50 (RATE_LIMIT), never limited, with room for everything else it does. More than 5 calls a
// second, sustained (RATE_LIMIT / SetTypingCost), are refused with RATE_LIMITED once the burst
// (RATE_LIMIT_BURST / SetTypingCost: 10 calls) is spent: each call publishes to every instance
// that has a subscriber of the conversation.
const SetTypingCost = 10

// MutationLimits keep one request from multiplying writes: an operation carries at most Max
// mutation fields (beyond, it is refused as a whole with BAD_USER_INPUT and nothing runs),
// each mutation field costs one request of the viewer's rate limit (setTyping SetTypingCost), of
// which the request itself paid one, and each createConversation also draws on a budget of its
// own (Create), lower than the request rate: new conversations land in every member's list.
type MutationLimits struct {
	Max int // default DefaultMaxMutations
	// Charge takes n requests from the viewer's rate limit; a non-nil error (RATE_LIMITED)
	// refuses the operation. Nil: not charged.
	Charge func(ctx context.Context, n int) error
	// Create takes n conversation creations from the viewer's creation budget. Nil: none.
	Create func(ctx context.Context, n int) error
}

type mutationLimits struct{ MutationLimits }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationInterceptor
} = mutationLimits{}

func (mutationLimits) ExtensionName() string                   { return "MutationLimits" }
func (mutationLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (m mutationLimits) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	opCtx := graphql.GetOperationContext(ctx)
	if opCtx.Operation == nil || opCtx.Operation.Operation != ast.Mutation {
		return next(ctx)
	}
	fields := graphql.CollectFields(opCtx, opCtx.Operation.SelectionSet, []string{"Mutation"})
	max := m.Max
	if max <= 0 {
		max = DefaultMaxMutations
	}
	if len(fields) > max {
		return refuseOperation(apperr.Invalid("mutation", "at most %d mutation fields in one operation (MAX_MUTATIONS_PER_OPERATION)", max))
	}
	creations, cost := 0, 0
	for _, f := range fields {
		switch f.Name {
		case "createConversation":
			creations++
		case "setTyping":
			cost += SetTypingCost - 1
		}
		cost++
	}
	if m.Charge != nil && cost > 1 {
		if err := m.Charge(ctx, cost-1); err != nil {
			return refuseOperation(err)
		}
	}
	if m.Create != nil && creations > 0 {
		if err := m.Create(ctx, creations); err != nil {
			return refuseOperation(err)
		}
	}
	return next(ctx)
}

// refuseOperation answers an operation with err and runs nothing of it.
func refuseOperation(err error) graphql.ResponseHandler {
	return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{publicGQLError(err)}})
}

// publicGQLError is err as a client may see it: a *gqlerror.Error (already public) as it is, an
// apperr with its code, anything else as an internal error.
func publicGQLError(err error) *gqlerror.Error {
	var ge *gqlerror.Error
	if errors.As(err, &ge) {
		return ge
	}
	if pub := apperr.Public(err); pub != nil {
		return &gqlerror.Error{Message: pub.Message, Extensions: map[string]any{"code": string(pub.Code)}}
	}
	return &gqlerror.Error{Message: "internal error", Extensions: map[string]any{"code": string(apperr.Internal)}}
}
