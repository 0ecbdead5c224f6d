package document_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/threadline/threadline/graph/document"
)

// astShapes are documents of different densities: what the clients send, and the shapes whose
// ASTs are largest for their length. Each takes an index, to make its documents distinct.
var astShapes = []struct {
	name string
	doc  func(i int) string
}{
	{"clients", func(i int) string {
		for _, text := range document.Trusted() {
			return fmt.Sprintf("# %d\n%s", i, text)
		}
		return ""
	}},
	{"tiny", func(i int) string { return fmt.Sprintf("query Q%d { __typename }", i) }},
	{"dense fields", func(i int) string {
		return fmt.Sprintf("query Q%d { %s}", i, repeat(90, "a%d: me { "+strings.Repeat("id ", 10)+"} "))
	}},
	{"inline fragments", func(i int) string {
		return fmt.Sprintf("query Q%d { %s}", i, repeat(45, "a%d: me { "+strings.Repeat("...{id}", 10)+"} "))
	}},
	{"aliases", func(i int) string { return fmt.Sprintf("query Q%d { %s}", i, repeat(99, "a%d: me { id } ")) }},
	{"arguments", func(i int) string {
		return fmt.Sprintf("query Q%d { %s}", i, repeat(9, "conversation(id: 1) { messages(limit: 1, offset: 2) { hasMore } history(first: 3, before: \"x\") { edges { cursor } } } "))
	}},
	{"variables", func(i int) string {
		return fmt.Sprintf("query Q%d(%s) { %s}", i, repeat(49, "$v%d: Boolean = true "), repeat(49, "a%[1]d: __typename @include(if: $v%[1]d) "))
	}},
	{"list values", func(i int) string {
		return fmt.Sprintf(`mutation M%d { createConversation(input: {title: "t", memberIds: [%s]}) { id } }`, i, strings.Repeat("1 ", 4000))
	}},
	{"comments", func(i int) string { return fmt.Sprintf("query Q%d { __typename }\n%s", i, strings.Repeat("#\n", 5000)) }},
	{"deep", func(i int) string {
		return fmt.Sprintf("query Q%d { __schema { types { fields { type %s } } } }", i, strings.Repeat("{ kind name ofType ", 15)+"{ name }"+strings.Repeat(" }", 15))
	}},
}

// TestEntryBytesBoundsTheHeap measures the live heap of cached documents of each shape and
// checks that EntryBytes does not underestimate it: the byte bound of the cache is a bound on
// its memory. It logs the measured bytes per byte of document, the factor behind ASTFactor.
func TestEntryBytesBoundsTheHeap(t *testing.T) {
	const n = 100
	for _, shape := range astShapes {
		t.Run(shape.name, func(t *testing.T) {
			g := newGate(t, document.Config{
				Introspection: true, Cache: document.CacheConfig{Bytes: 1 << 40, Entries: n}})
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var length, estimate int64
			for i := range n {
				q := shape.doc(i)
				if _, errs := g.Check(q); len(errs) > 0 {
					t.Fatalf("refused: %v\n%.300s", errs, q)
				}
				length += int64(len(q))
				estimate += document.EntryBytes(q)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			if s := g.Stats(); s.Entries != n {
				t.Fatalf("%d entries cached, want %d", s.Entries, n)
			}
			live := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			t.Logf("%d documents of %d bytes: %d bytes live, %.1f per byte of document; estimated %d",
				n, length/n, live, float64(live)/float64(length), estimate)
			if live > estimate {
				t.Errorf("the cache holds %d bytes, EntryBytes says %d", live, estimate)
			}
			runtime.KeepAlive(g)
		})
	}
}
