package document_test

import (
	"strings"
	"testing"

	"github.com/threadline/threadline/graph/document"
)

// BenchmarkBombs measures what the gate spends on each bomb (time and allocation per document;
// refused documents are never cached, so each iteration does all the work again), and on the
// largest documents the limits let through to validation.
func BenchmarkBombs(b *testing.B) {
	nested := "{ " + strings.Repeat("conversation(id: 1) { "+repeat(9, "messages(limit: %d) { hasMore } ")+"} ", 9) + "}"
	for _, bc := range []struct{ name, query string }{
		{"aliases-1990", aliasBomb},
		{"arguments-1000", argumentBomb},
		{"aliases-666", smallAliasBomb},
		{"comment-900KB", "{ __typename } #" + strings.Repeat("c", 900<<10)},
		{"validated-nested-conflicts", nested},
		{"validated-1000-unknown-fields", "{ " + repeat(1000, "f%d ") + "}"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			g := newGate(b, document.Config{})
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := g.Check(bc.query); len(errs) == 0 {
					b.Fatal("admitted")
				}
			}
		})
	}
}

// BenchmarkClientDocuments measures a client document admitted from the cache, and parsed and
// validated (a cache that holds nothing).
func BenchmarkClientDocuments(b *testing.B) {
	var q string
	for _, text := range document.Trusted() {
		if strings.Contains(text, "LatestConversations") {
			q = text
		}
	}
	for name, cache := range map[string]document.CacheConfig{"cached": {}, "parsed": {Bytes: 1}} {
		b.Run(name, func(b *testing.B) {
			g := newGate(b, document.Config{Cache: cache})
			b.ReportAllocs()
			for b.Loop() {
				if _, errs := g.Check(q); len(errs) > 0 {
					b.Fatal(errs)
				}
			}
		})
	}
}
