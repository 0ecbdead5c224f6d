package document_test

import (
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vektah/gqlparser/v2/ast"

	"github.com/threadline/threadline/graph/document"
)

// The budget of one document: what the gate may spend on it before it refuses or admits it.
const (
	maxAllocPerDocument = 10 << 20
	maxCPUPerDocument   = 50 * time.Millisecond
)

// fuzzGates are the gates under fuzzing, with introspection off and on, shared by the inputs
// of a run as a server shares one gate between requests (so the cache plays its part).
var fuzzGates = sync.OnceValue(func() [2]*document.Gate {
	var gs [2]*document.Gate
	for i := range gs {
		g, err := document.New(document.Config{Schema: servedSchema(), Introspection: i == 1})
		if err != nil {
			panic(err)
		}
		gs[i] = g
	}
	return gs
})

// FuzzGate drives a generator of GraphQL documents over the served schema with the fuzzer's
// bytes, and checks each document against the gate alone (no execution): whether it is
// refused or admitted, it costs at most 10 MB of allocation and 50 ms of CPU, and a refusal is
// at most MaxValidationErrors+1 short BAD_USER_INPUT errors.
//
// The generator (docGen) follows the grammar of executable documents, choosing by the bytes
// among the schema's real fields, arguments and types: operations of each kind with variables
// and directives, fields with aliases and arguments (right and wrong values), nested selection
// sets, inline fragments, fragment definitions and spreads (cycles, fan-out), @include, @skip,
// @defer, @stream and unknown directives, introspection, deep nesting, and repetitions of a
// selection up to a few thousand times (the bombs); then it may mutate the text (cut,
// duplicate, insert). The first byte chooses: bit 0, introspection on or off; bit 1, the rest
// of the bytes is the document itself instead (the seeds testdata/fuzz/FuzzGate/bomb-* are the
// documents of attacks seen against production, written so).
//
// How the cost is measured, serially, around the gate's Check only: allocation is
// runtime.MemStats.TotalAlloc before and after (every byte allocated, however short-lived;
// nothing else allocates meanwhile in a fuzz worker, which runs one input at a time). CPU is
// the CPU time of the OS thread the goroutine is locked to (threadCPU, getrusage
// RUSAGE_THREAD): it counts the gate's own work and the garbage-collection assists charged to
// it, and not the time the thread waits for a core on a busy machine, which a wall clock would
// count and which says nothing of the document. GC work done by background workers on other
// threads is left out; it is proportional to the allocation, which is bounded separately.
func FuzzGate(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var mode byte
		if len(data) > 0 {
			mode = data[0]
		}
		g := fuzzGates()[mode&1]
		var doc string
		if mode&2 != 0 {
			doc = string(data[1:]) // the rest is the document itself
		} else {
			doc = generate(data)
		}

		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		cpu := threadCPU()
		admitted, errs := g.Check(doc)
		cpu = threadCPU() - cpu
		runtime.ReadMemStats(&after)

		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxAllocPerDocument {
			t.Errorf("%d bytes allocated for a document of %d bytes:\n%.2000s", alloc, len(doc), doc)
		}
		if cpu > maxCPUPerDocument {
			t.Errorf("%v of CPU for a document of %d bytes:\n%.2000s", cpu, len(doc), doc)
		}
		if len(errs) == 0 {
			if admitted == nil || len(admitted.Operations) == 0 {
				t.Fatalf("admitted without an operation:\n%.2000s", doc)
			}
			return
		}
		if len(errs) > document.MaxValidationErrors+1 {
			t.Errorf("%d errors", len(errs))
		}
		for _, e := range errs {
			if c, _ := e.Extensions["code"].(string); c != "BAD_USER_INPUT" || len(e.Message) > 400 {
				t.Errorf("error %q (%d bytes), code %q", e.Message, len(e.Message), c)
			}
		}
	})
}

// docGen writes a document from the bytes it is given, each choice taking one byte (zero
// when they run out, which always leads to the shortest way to finish). Most choices keep the
// document valid, so that validation runs and documents are admitted too; the others break it
// in the ways a client or an attacker might.
type docGen struct {
	data   []byte
	pos    int
	schema *ast.Schema
	out    strings.Builder
	// fragments maps each fragment the document defines to its type condition.
	fragments map[string]*ast.Definition
	// vars is the number of variables the operation being written defines ($v0, $v1, …).
	vars int
	// repetition is set while the first copy of a repeated selection is written: argument
	// values may then hold the copy's index, so that the copies differ (the argument bombs).
	repetition bool
}

// maxGenerated stops the generator from writing more (a little over the size limit, so that
// refusals by size are generated too); what is open is closed.
const maxGenerated = 80 << 10

func generate(data []byte) string {
	g := &docGen{data: data, schema: servedSchema(), fragments: map[string]*ast.Definition{}}
	if len(data) > 0 {
		g.pos = 1 // the first byte chose the gate
	}
	g.document()
	return g.mutate(g.out.String())
}

func (g *docGen) next() int {
	if g.pos >= len(g.data) {
		return 0
	}
	b := g.data[g.pos]
	g.pos++
	return int(b)
}

// pick returns a choice in [0, n).
func (g *docGen) pick(n int) int {
	if n <= 1 {
		return 0
	}
	return g.next() % n
}

// rarely is true once in n choices (never when the bytes have run out).
func (g *docGen) rarely(n int) bool { return g.pick(n) == n-1 }

func (g *docGen) full() bool { return g.out.Len() > maxGenerated }

func (g *docGen) w(s ...string) {
	for _, x := range s {
		g.out.WriteString(x)
	}
}

var fragmentNames = []string{"F0", "F1", "F2", "F3", "F4", "F5"}

// document writes the fragment definitions first (so that spreads can match their types),
// then the operations.
func (g *docGen) document() {
	frags := 0
	if g.rarely(3) {
		frags = 1 + g.pick(len(fragmentNames))
	}
	for _, name := range fragmentNames[:frags] {
		on := g.schema.Query
		if g.pick(2) == 1 {
			on = g.compositeType()
		}
		g.fragments[name] = on
	}
	for _, name := range fragmentNames[:frags] {
		if !g.full() {
			g.fragment(name, g.fragments[name])
		}
	}
	ops := 1
	if g.rarely(4) {
		ops = 1 + g.pick(3)
		if g.rarely(8) {
			ops = g.next() // many operations
		}
	}
	for i := 0; i < ops && !g.full(); i++ {
		g.operation(i, ops > 1)
	}
}

func (g *docGen) operation(i int, named bool) {
	root, rootFields := g.schema.Query, 0
	switch g.pick(8) {
	case 5:
		g.w("mutation")
		root = g.schema.Mutation
	case 6:
		g.w("subscription")
		root, rootFields = g.schema.Subscription, 1
	case 7:
		if !named {
			g.w("{") // shorthand query
			g.selections(root, 1, 0)
			g.w("}\n")
			return
		}
		g.w("query")
	default:
		g.w("query")
	}
	if named || g.pick(2) == 1 {
		g.w(" Op", strconv.Itoa(i))
	}
	g.vars = 0
	if g.rarely(6) {
		g.vars = 1 + g.pick(3)
		g.w("(")
		for v := range g.vars {
			g.w("$v", strconv.Itoa(v), ": ", variableTypes[g.pick(len(variableTypes))])
			if g.pick(3) == 0 {
				g.w(" = ")
				g.value(g.schema.Types["Boolean"], false, 0)
			}
			g.w(" ")
		}
		g.w(")")
	}
	g.directives()
	g.w(" {")
	g.selections(root, 1, rootFields)
	g.w("}\n")
}

var variableTypes = []string{"Boolean", "Boolean!", "Int", "ID!", "String", "[ID!]", "SendMessageInput!", "Nope"}

func (g *docGen) fragment(name string, on *ast.Definition) {
	g.w("fragment ", name, " on ", on.Name)
	g.directives()
	g.w(" {")
	g.selections(on, 1, 0)
	g.w("}\n")
}

// compositeTypes are the object types of the schema, introspection's included, in a fixed
// order.
var compositeTypes = sync.OnceValue(func() []*ast.Definition {
	var defs []*ast.Definition
	for _, d := range servedSchema().Types {
		if d.Kind == ast.Object {
			defs = append(defs, d)
		}
	}
	slices.SortFunc(defs, func(a, b *ast.Definition) int { return strings.Compare(a.Name, b.Name) })
	return defs
})

func (g *docGen) compositeType() *ast.Definition {
	defs := compositeTypes()
	return defs[g.pick(len(defs))]
}

// selections writes the selections of a set on type t at the given depth: n of them, or
// between one and four when n is 0.
func (g *docGen) selections(t *ast.Definition, depth, n int) {
	if n == 0 && depth <= 2 {
		n = 1 + g.pick(4)
	} else if n == 0 {
		n = 1 + g.pick(2) // trees stay small unless the bytes say otherwise (repeat)
	}
	for i := 0; i < n && !g.full(); i++ {
		g.selection(t, depth)
	}
	if g.full() {
		g.w(" __typename ")
	}
}

func (g *docGen) selection(t *ast.Definition, depth int) {
	if depth > 60 { // the generator's own bound; the gate's is far lower
		g.w(" __typename ")
		return
	}
	switch g.pick(16) {
	case 11:
		g.w(" ...")
		on := t
		if g.rarely(4) {
			on = g.compositeType()
		}
		if g.pick(2) == 1 {
			g.w(" on ", on.Name)
		}
		g.directives()
		g.w(" {")
		g.selections(on, depth, 0)
		g.w("}")
	case 10, 12:
		if len(g.fragments) == 0 && !g.rarely(8) {
			g.field(t, depth)
			return
		}
		g.w(" ...", g.spread(t))
		g.directives()
		g.w(" ")
	case 13:
		g.repeat(t, depth)
	case 14:
		if t == g.schema.Query || g.rarely(8) {
			g.introspection()
		} else {
			g.field(t, depth)
		}
	case 15:
		// Inline fragments nested without fields in between: a few, or very many.
		n := 1 + g.pick(4)
		if g.rarely(8) {
			n = g.next() * 8
		}
		g.w(strings.Repeat(" ...{", n))
		g.field(t, depth)
		g.w(strings.Repeat("}", n))
	default: // 0 too: when the bytes have run out, fields end the document
		g.field(t, depth)
	}
}

// spread names a fragment, most often one defined on t.
func (g *docGen) spread(t *ast.Definition) string {
	if !g.rarely(4) {
		for _, name := range fragmentNames[g.pick(len(fragmentNames)):] {
			if g.fragments[name] == t {
				return name
			}
		}
		for _, name := range fragmentNames {
			if g.fragments[name] != nil {
				return name
			}
		}
	}
	return fragmentNames[g.pick(len(fragmentNames))]
}

// repeat writes one selection many times: the same text (fields that merge, or aliases that
// conflict), or with the copy's index in its argument values (arguments that conflict).
func (g *docGen) repeat(t *ast.Definition, depth int) {
	n := 2 + g.pick(8)
	if g.rarely(16) {
		n = 1 + g.next()*g.next()/16 // up to 4,000
	}
	start := g.out.Len()
	outer := g.repetition
	g.repetition = true
	g.selection(t, depth)
	g.repetition = outer
	one := g.out.String()[start:]
	for i := 2; i <= n && !g.full(); i++ {
		g.w(strings.ReplaceAll(one, "%N%", strconv.Itoa(i)))
	}
	if !outer && strings.Contains(one, "%N%") {
		text := g.out.String()
		g.out.Reset()
		g.w(text[:start], strings.ReplaceAll(text[start:], "%N%", "1"))
	}
}

var aliases = []string{"x", "a", "id", "me", "node"}

func (g *docGen) field(t *ast.Definition, depth int) {
	fields := []*ast.FieldDefinition{{Name: "__typename", Type: ast.NamedType("String", nil)}}
	for _, f := range t.Fields {
		if !strings.HasPrefix(f.Name, "__") {
			fields = append(fields, f)
		}
	}
	f := fields[g.pick(len(fields)+1)%len(fields)] // the extra choice is __typename again
	g.w(" ")
	if g.rarely(4) {
		g.w(aliases[g.pick(len(aliases))], ": ")
	}
	g.w(f.Name)
	g.arguments(f)
	g.directives()
	typ := g.schema.Types[f.Type.Name()]
	switch {
	case typ != nil && typ.Kind == ast.Object:
		g.w(" {")
		g.selections(typ, depth+1, 0)
		g.w("}")
	case g.rarely(32): // a selection set on a scalar
		g.w(" { id }")
	}
}

func (g *docGen) arguments(f *ast.FieldDefinition) {
	var written bool
	for _, a := range f.Arguments {
		if a.Type.NonNull || !g.rarely(3) {
			if !written {
				g.w("(")
				written = true
			}
			g.w(a.Name, ": ")
			g.value(g.schema.Types[a.Type.Name()], a.Type.Elem != nil, 0)
			g.w(" ")
		}
	}
	if g.rarely(16) {
		if !written {
			g.w("(")
			written = true
		}
		g.w("unknown: 1")
	}
	if written {
		g.w(")")
	}
}

// value writes a value of type t (a list of them when list), most often a right one.
func (g *docGen) value(t *ast.Definition, list bool, depth int) {
	if depth > 40 {
		g.w("1")
		return
	}
	if g.repetition && g.pick(2) == 0 && (t == nil || t.Kind == ast.Scalar) {
		g.w("%N%") // the copy's index
		return
	}
	switch g.pick(16) {
	case 12:
		if g.vars > 0 || g.rarely(8) {
			g.w("$v", strconv.Itoa(g.pick(max(g.vars, 1))))
			return
		}
	case 13:
		g.w("null")
		return
	case 14:
		g.w(`"`, strings.Repeat("s", g.next()), `"`) // most often the wrong type
		return
	case 15:
		list = !list
	}
	if list {
		g.w("[")
		for range g.pick(6) {
			g.value(t, false, depth+1)
			g.w(" ")
		}
		g.w("]")
		return
	}
	switch {
	case t == nil:
		g.w("1")
	case t.Kind == ast.InputObject:
		g.w("{")
		for _, f := range t.Fields {
			if f.Type.NonNull || g.pick(2) == 0 {
				g.w(f.Name, ": ")
				g.value(g.schema.Types[f.Type.Name()], f.Type.Elem != nil, depth+1)
				g.w(" ")
			}
		}
		g.w("}")
	case t.Name == "Boolean":
		g.w([]string{"true", "false"}[g.pick(2)])
	case t.Name == "String":
		g.w(`"`, strings.Repeat("s", g.pick(16)), `"`)
	default: // Int, ID, and the rest
		g.w(strconv.Itoa(1 + g.pick(100)))
	}
}

var directiveTexts = []string{
	"@include(if: true)", "@skip(if: false)", "@include(if: $v0)", "@skip(if: $v1)",
	"@defer", "@defer(label: \"l\")", "@stream(initialCount: 1)", "@unknown", "@deprecated",
	"@skip(if: true) @skip(if: false)",
}

func (g *docGen) directives() {
	if !g.rarely(8) {
		return
	}
	for range 1 + g.pick(2) {
		i := g.pick(len(directiveTexts))
		if i >= 4 && !g.rarely(6) {
			i %= 4 // the valid ones, most often
		}
		if (i == 2 || i == 3) && g.vars == 0 && !g.rarely(4) {
			i -= 2 // no variable to use
		}
		g.w(" ", directiveTexts[i])
	}
}

// introspection writes __schema or __type selections, ofType nested as deep as a byte says.
func (g *docGen) introspection() {
	levels := g.pick(20)
	if g.rarely(4) {
		levels = g.next()
	}
	ofType := strings.Repeat("{ kind name ofType ", levels) + "{ name }" + strings.Repeat(" }", levels)
	switch g.pick(3) {
	case 0:
		g.w(" __schema { types { name fields(includeDeprecated: true) { name args { name } type ", ofType, " } } directives { name } }")
	case 1:
		g.w(` __type(name: "User") { name fields { type `, ofType, " } }")
	default:
		g.w(" __schema { queryType { fields { type { fields { type { name } } } } } }")
	}
}

// mutate changes the generated text as raw bytes, as a byte fuzzer would: cut a range, copy
// a range many times, insert a byte.
func (g *docGen) mutate(s string) string {
	if !g.rarely(4) {
		return s
	}
	for range 1 + g.pick(3) {
		if len(s) == 0 {
			return s
		}
		at := g.next() * g.next() % len(s)
		n := g.next()
		switch g.pick(3) {
		case 0:
			s = s[:at] + s[min(at+n, len(s)):]
		case 1:
			part := s[at:min(at+n, len(s))]
			s = s[:at] + strings.Repeat(part, min(g.next()*4, maxGenerated/max(len(part), 1))) + s[at:]
		default:
			s = s[:at] + string(rune(g.next())) + s[at:]
		}
	}
	return s
}
