package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/threadline/threadline/internal/apperr"
	"github.com/threadline/threadline/internal/chat"
)

// Limits bound what one operation may ask for. Every limit is checked after parsing and
// validation and before any resolver runs (so a refused operation reads nothing); a zero field
// takes its default below.
type Limits struct {
	// Complexity is the highest cost of an operation (COMPLEXITY_LIMIT_EXCEEDED beyond). Every
	// field costs 1 plus its selections; a list costs its length times its selections: the
	// limit of messages, the first of history and conversations, and chat.MaxMembers for
	// members.
	Complexity int
	// Depth is the deepest nesting of fields (BAD_USER_INPUT beyond).
	Depth int
	// Aliases is the most aliased fields in one operation (BAD_USER_INPUT beyond).
	Aliases int
	// Fields is the most fields in one operation, counting each fragment once per spread
	// (BAD_USER_INPUT beyond).
	Fields int
	// Tokens is the most lexical tokens in one document; the parser stops at the first one more
	// (BAD_USER_INPUT).
	Tokens int
}

// The default limits. They admit every query the clients, tests and GraphiQL send (50
// conversations with a 20-message page each, under 50 aliases, costs about 6,200; an
// introspection query with 9 levels of ofType is 15 fields deep) and refuse what no client
// needs.
const (
	DefaultMaxComplexity = 10000
	DefaultMaxDepth      = 20
	DefaultMaxAliases    = 100
	DefaultMaxFields     = 1000
	DefaultMaxTokens     = 10000
)

// DefaultLimits returns the default of every limit.
func DefaultLimits() Limits { return Limits{}.WithDefaults() }

func (l Limits) WithDefaults() Limits {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.Complexity, DefaultMaxComplexity}, {&l.Depth, DefaultMaxDepth}, {&l.Aliases, DefaultMaxAliases},
		{&l.Fields, DefaultMaxFields}, {&l.Tokens, DefaultMaxTokens},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// listCost is the cost of a list of n elements whose selections cost child each. n is clamped to
// the range a resolver accepts: an out-of-range limit is refused by the resolver itself with
// BAD_USER_INPUT, before it reads anything.
func listCost(n *int, def, child int) int {
	size := def
	if n != nil {
		size = min(max(*n, 1), chat.MaxPageSize)
	}
	return 1 + size*max(child, 1)
}

// complexityRoot costs the list fields of the schema by their length.
func complexityRoot() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Conversations = func(child int, first *int, _ *string) int { return listCost(first, 20, child) }
	c.Conversation.Messages = func(child int, limit, _ *int) int { return listCost(limit, chat.DefaultPageSize, child) }
	c.Conversation.History = func(child int, first *int, _ *string) int {
		return listCost(first, chat.DefaultPageSize, child)
	}
	c.Conversation.Members = func(child int) int { return 1 + chat.MaxMembers*max(child, 1) }
	return c
}

// shapeLimits refuses operations that are too deep, or have too many aliases or fields.
type shapeLimits struct{ Limits }

var _ interface {
	graphql.OperationContextMutator
	graphql.HandlerExtension
} = shapeLimits{}

func (shapeLimits) ExtensionName() string                   { return "ShapeLimits" }
func (shapeLimits) Validate(graphql.ExecutableSchema) error { return nil }

func (s shapeLimits) MutateOperationContext(_ context.Context, opCtx *graphql.OperationContext) *gqlerror.Error {
	if opCtx.Operation == nil {
		return nil
	}
	w := shapeWalker{limits: s.Limits}
	w.selections(opCtx.Operation.SelectionSet, 1)
	if w.err == "" {
		return nil
	}
	err := gqlerror.Errorf("%s", w.err)
	errcode.Set(err, string(apperr.BadUserInput))
	return err
}

type shapeWalker struct {
	limits          Limits
	fields, aliases int
	err             string // the first limit exceeded
}

// selections walks set at the given depth, expanding fragments, and stops at the first limit
// exceeded: the walk is bounded by the limits, however the fragments multiply.
func (w *shapeWalker) selections(set ast.SelectionSet, depth int) {
	for _, sel := range set {
		if w.err != "" {
			return
		}
		switch sel := sel.(type) {
		case *ast.Field:
			w.fields++
			if sel.Alias != "" && sel.Alias != sel.Name {
				w.aliases++
			}
			switch {
			case depth > w.limits.Depth:
				w.err = fmt.Sprintf("the operation is nested deeper than %d fields", w.limits.Depth)
			case w.fields > w.limits.Fields:
				w.err = fmt.Sprintf("the operation has more than %d fields", w.limits.Fields)
			case w.aliases > w.limits.Aliases:
				w.err = fmt.Sprintf("the operation has more than %d aliases", w.limits.Aliases)
			default:
				w.selections(sel.SelectionSet, depth+1)
			}
		case *ast.InlineFragment:
			w.selections(sel.SelectionSet, depth)
		case *ast.FragmentSpread:
			if sel.Definition != nil {
				w.fields++ // a spread costs a step, so that spreads of spreads stay bounded too
				w.selections(sel.Definition.SelectionSet, depth)
			}
		}
	}
}
