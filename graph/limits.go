package graph

import (
	"github.com/threadline/threadline/graph/document"
	"github.com/threadline/threadline/internal/chat"
)

// Limits bound what one operation may ask for. The cost limit is checked after validation and
// the others before it, by the document gate (graph/document), all before any resolver runs (so
// a refused operation reads nothing); a zero field takes its default below.
type Limits struct {
	// Complexity is the highest cost of an operation (COMPLEXITY_LIMIT_EXCEEDED beyond). Every
	// field costs 1 plus its selections; a list costs its length times its selections: the
	// limit of messages, the first of history and conversations, the first or last of
	// timeline, the window of historyAround, and chat.MaxMembers for members and typing.
	Complexity int
	// Depth is the deepest nesting of fields (BAD_USER_INPUT beyond).
	Depth int
	// Aliases is the most aliased fields in one document (BAD_USER_INPUT beyond).
	Aliases int
	// Fields is the most fields in one document, counting each fragment once per spread, and
	// each spread and inline fragment as a field too (BAD_USER_INPUT beyond).
	Fields int
	// Tokens is the most lexical tokens in one document; the parser stops at the first one more
	// (BAD_USER_INPUT).
	Tokens int
	// DocumentBytes, SameName, Operations, FragmentDefinitions, FragmentSpreads, Directives
	// and Variables are the limits of document.Limits of the same names (BAD_USER_INPUT
	// beyond); zero takes document's defaults.
	DocumentBytes, SameName, Operations, FragmentDefinitions, FragmentSpreads, Directives, Variables int
}

// The default limits. They admit every query the clients, tests and GraphiQL send (50
// conversations with a 20-message page each, under 50 aliases, costs about 6,200; an
// introspection query with 9 levels of ofType is 15 fields deep) and refuse what no client
// needs.
const (
	DefaultMaxComplexity = 10000
	DefaultMaxDepth      = document.DefaultDepth
	DefaultMaxAliases    = document.DefaultAliases
	DefaultMaxFields     = document.DefaultFields
	DefaultMaxTokens     = document.DefaultTokens
)

// DefaultLimits returns the default of every limit.
func DefaultLimits() Limits { return Limits{}.WithDefaults() }

// WithDefaults returns l with every zero limit at its default.
func (l Limits) WithDefaults() Limits {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.Complexity, DefaultMaxComplexity}, {&l.Depth, DefaultMaxDepth}, {&l.Aliases, DefaultMaxAliases},
		{&l.Fields, DefaultMaxFields}, {&l.Tokens, DefaultMaxTokens}, {&l.DocumentBytes, document.DefaultDocumentBytes},
		{&l.SameName, document.DefaultSameName}, {&l.Operations, document.DefaultOperations},
		{&l.FragmentDefinitions, document.DefaultFragmentDefinitions}, {&l.FragmentSpreads, document.DefaultFragmentSpreads},
		{&l.Directives, document.DefaultDirectives}, {&l.Variables, document.DefaultVariables},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// document returns the limits the document gate checks.
func (l Limits) document() document.Limits {
	return document.Limits{
		DocumentBytes: l.DocumentBytes, Tokens: l.Tokens, Depth: l.Depth, Fields: l.Fields, Aliases: l.Aliases,
		SameName: l.SameName, Operations: l.Operations, FragmentDefinitions: l.FragmentDefinitions,
		FragmentSpreads: l.FragmentSpreads, Directives: l.Directives, Variables: l.Variables,
	}.WithDefaults()
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
	c.Conversation.Timeline = func(child int, first *int, _ *string, last *int, _ *string) int {
		if first == nil {
			first = last
		}
		return listCost(first, chat.DefaultPageSize, child)
	}
	c.Conversation.HistoryAround = func(child int, _ int, before, after *int) int {
		side := func(n *int) int {
			if n == nil {
				return chat.DefaultWindowSide
			}
			return min(max(*n, 0), chat.MaxPageSize)
		}
		return 1 + (side(before)+1+side(after))*max(child, 1)
	}
	c.Conversation.Members = func(child int) int { return 1 + chat.MaxMembers*max(child, 1) }
	c.Conversation.Typing = func(child int) int { return 1 + chat.MaxMembers*max(child, 1) }
	c.Query.SearchMessages = func(child int, _ string, _ *int64, first *int, _ *string) int {
		return listCost(first, chat.DefaultSearchPageSize, child)
	}
	return c
}
