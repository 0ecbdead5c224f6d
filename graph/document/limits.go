package document

import (
	"fmt"

	"github.com/vektah/gqlparser/v2/ast"
)

// Limits bound what one document may hold. Every limit is checked on the parsed document before
// it is validated (the token limit while it is parsed, the size before): validation, whose cost
// grows with the square of some shapes, only ever sees a document inside all of them. A zero
// field takes its default.
type Limits struct {
	// DocumentBytes is the longest document, in bytes; a longer one is refused unread.
	DocumentBytes int
	// Tokens is the most lexical tokens in one document; the parser stops at the first one more.
	Tokens int
	// Depth is the deepest nesting of fields, fragments expanded.
	Depth int
	// Fields is the most selections: fields, fragment spreads and inline fragments, each
	// fragment counted at every spread (so a spread costs a step even when the fragment is
	// empty or already being expanded), over every operation and every fragment no operation
	// spreads.
	Fields int
	// Aliases is the most aliased fields, counted as Fields are.
	Aliases int
	// SameName is how many times one response name may be selected in one selection set,
	// fragments expanded into it. Validation compares every two fields of the same response
	// name in a set (OverlappingFieldsCanBeMerged), so this bounds its quadratic part.
	SameName int
	// Operations is the most operation definitions in one document.
	Operations int
	// FragmentDefinitions is the most fragment definitions in one document.
	FragmentDefinitions int
	// FragmentSpreads is the most fragment spreads written in one document (each counted once
	// here; Fields counts them at every expansion).
	FragmentSpreads int
	// Directives is the most directives written in one document.
	Directives int
	// Variables is the most variable definitions in one document, all operations together.
	Variables int
}

// The default limits. They admit every document the clients send (graph/client/operations as
// the Go and TypeScript clients send them, GraphiQL's example query, an introspection query
// with 9 levels of ofType, 15 fields deep), with room to spare, and refuse what no client
// needs. The size matches the default request body limit (MAX_BODY_BYTES), which already
// bounds a POST; it bounds a GET's URL and a persisted query's text too. The largest client
// document is about 1 KB, 4 fragments, 5 spreads, 3 variables and no directive.
const (
	DefaultDocumentBytes       = 64 << 10
	DefaultTokens              = 10000
	DefaultDepth               = 20
	DefaultFields              = 1000
	DefaultAliases             = 100
	DefaultSameName            = 10
	DefaultOperations          = 10
	DefaultFragmentDefinitions = 100
	DefaultFragmentSpreads     = 200
	DefaultDirectives          = 50
	DefaultVariables           = 50
)

// WithDefaults returns l with every zero or negative field set to its default.
func (l Limits) WithDefaults() Limits {
	for _, f := range []struct {
		v   *int
		def int
	}{
		{&l.DocumentBytes, DefaultDocumentBytes}, {&l.Tokens, DefaultTokens}, {&l.Depth, DefaultDepth},
		{&l.Fields, DefaultFields}, {&l.Aliases, DefaultAliases}, {&l.SameName, DefaultSameName},
		{&l.Operations, DefaultOperations}, {&l.FragmentDefinitions, DefaultFragmentDefinitions},
		{&l.FragmentSpreads, DefaultFragmentSpreads}, {&l.Directives, DefaultDirectives},
		{&l.Variables, DefaultVariables},
	} {
		if *f.v <= 0 {
			*f.v = f.def
		}
	}
	return l
}

// shape is what the walk over a parsed document found: the first limit exceeded (or "") and
// whether it selects introspection fields.
type shape struct {
	exceeded      string
	introspection bool
}

// checkShape checks doc against every limit but the size and the token limit, refuses
// incremental delivery and finds introspection, with work bounded by the limits.
//
// It first counts what is written (operations, fragment definitions, spreads, directives,
// variables: linear in the document, which the token limit bounds), refusing @defer and @stream
// on the way. Then it walks every operation with fragments expanded at each spread, and then
// every fragment definition no operation reached (validation walks those too), all against one
// budget of Fields steps: every field, spread and inline fragment is a step, and the walk stops
// at the first limit exceeded, so fragments that multiply cost at most Fields steps. A spread
// of a fragment that is already being expanded on the current path (a cycle, which validation
// refuses later) is a step but is not entered again, so the walk terminates without spending
// the budget on it. A response name repeated more than SameName times in a selection set is
// reported only when the walk ends within the other limits, which are the better-known ones.
func checkShape(doc *ast.QueryDocument, l Limits) shape {
	w := walker{limits: l}
	w.count(doc)
	if w.exceeded != "" {
		return shape{exceeded: w.exceeded, introspection: w.introspection}
	}
	w.fragments = make(map[string]int, len(doc.Fragments))
	for i, f := range doc.Fragments {
		if _, dup := w.fragments[f.Name]; !dup { // validation uses the first of duplicates too
			w.fragments[f.Name] = i
		}
	}
	w.doc = doc
	w.active = make([]bool, len(doc.Fragments))
	w.reached = make([]bool, len(doc.Fragments))
	w.sameName = make(map[scopedName]int)
	for _, op := range doc.Operations {
		w.root(op.SelectionSet)
	}
	for i, f := range doc.Fragments {
		if !w.reached[i] {
			w.reached[i] = true
			w.active[i] = true
			w.root(f.SelectionSet)
			w.active[i] = false
		}
	}
	if w.sameNameExceeded {
		w.fail("a selection set selects one response name more than %d times", l.SameName)
	}
	return shape{exceeded: w.exceeded, introspection: w.introspection}
}

type scopedName struct {
	scope int
	name  string
}

type walker struct {
	limits        Limits
	doc           *ast.QueryDocument
	fragments     map[string]int // name → index in doc.Fragments
	active        []bool         // fragments being expanded on the current path
	reached       []bool         // fragments some walk has entered
	steps         int
	aliases       int
	scopes        int                // selection sets entered so far; each has its own names
	sameName      map[scopedName]int // response names per selection set
	exceeded      string
	introspection bool
	// sameNameExceeded: some selection set repeats a response name more than SameName times.
	sameNameExceeded bool

	// counts of what is written
	spreads, directives int
}

func (w *walker) fail(format string, args ...any) {
	if w.exceeded == "" {
		w.exceeded = fmt.Sprintf(format, args...)
	}
}

// count checks the limits on what is written, once each.
func (w *walker) count(doc *ast.QueryDocument) {
	l := w.limits
	if len(doc.Operations) > l.Operations {
		w.fail("the document has more than %d operations", l.Operations)
		return
	}
	if len(doc.Fragments) > l.FragmentDefinitions {
		w.fail("the document has more than %d fragment definitions", l.FragmentDefinitions)
		return
	}
	variables := 0
	for _, op := range doc.Operations {
		variables += len(op.VariableDefinitions)
		w.countDirectives(op.Directives)
		for _, v := range op.VariableDefinitions {
			w.countDirectives(v.Directives)
		}
		w.countSet(op.SelectionSet)
	}
	if variables > l.Variables {
		w.fail("the document has more than %d variable definitions", l.Variables)
	}
	for _, f := range doc.Fragments {
		w.countDirectives(f.Directives)
		w.countSet(f.SelectionSet)
	}
	switch {
	case w.spreads > l.FragmentSpreads:
		w.fail("the document has more than %d fragment spreads", l.FragmentSpreads)
	case w.directives > l.Directives:
		w.fail("the document has more than %d directives", l.Directives)
	}
}

func (w *walker) countSet(set ast.SelectionSet) {
	for _, sel := range set {
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Name == "__schema" || sel.Name == "__type" {
				w.introspection = true
			}
			w.countDirectives(sel.Directives)
			w.countSet(sel.SelectionSet)
		case *ast.InlineFragment:
			w.countDirectives(sel.Directives)
			w.countSet(sel.SelectionSet)
		case *ast.FragmentSpread:
			w.spreads++
			w.countDirectives(sel.Directives)
		}
	}
}

func (w *walker) countDirectives(list ast.DirectiveList) {
	w.directives += len(list)
	for _, d := range list {
		if d.Name == "defer" || d.Name == "stream" {
			w.fail("@%s is not supported: every response is sent whole", d.Name)
		}
	}
}

// root walks the selection set of an operation or of a fragment definition at depth 1, in a
// selection set of its own.
func (w *walker) root(set ast.SelectionSet) {
	w.scopes++
	w.selections(set, 1, w.scopes)
}

// selections walks set at the given depth, its fields' response names counted in scope,
// expanding fragments, and stops at the first limit exceeded.
func (w *walker) selections(set ast.SelectionSet, depth, scope int) {
	l := w.limits
	for _, sel := range set {
		if w.exceeded != "" {
			return
		}
		w.steps++
		if w.steps > l.Fields {
			w.fail("the document has more than %d fields (fragment spreads and inline fragments included, each fragment counted at every spread)", l.Fields)
			return
		}
		switch sel := sel.(type) {
		case *ast.Field:
			if sel.Alias != "" && sel.Alias != sel.Name {
				w.aliases++
			}
			name := sel.Alias
			if name == "" {
				name = sel.Name
			}
			key := scopedName{scope, name}
			if w.sameName[key]++; w.sameName[key] > l.SameName {
				w.sameNameExceeded = true // reported after the other limits: see checkShape
			}
			switch {
			case depth > l.Depth:
				w.fail("the document is nested deeper than %d fields", l.Depth)
			case w.aliases > l.Aliases:
				w.fail("the document has more than %d aliases", l.Aliases)
			case len(sel.SelectionSet) > 0:
				w.scopes++
				w.selections(sel.SelectionSet, depth+1, w.scopes)
			}
		case *ast.InlineFragment:
			w.selections(sel.SelectionSet, depth, scope)
		case *ast.FragmentSpread:
			i, ok := w.fragments[sel.Name]
			if !ok || w.active[i] {
				continue // unknown, or a cycle: validation refuses both
			}
			w.reached[i] = true
			w.active[i] = true
			w.selections(w.doc.Fragments[i].SelectionSet, depth, scope)
			w.active[i] = false
		}
	}
}
