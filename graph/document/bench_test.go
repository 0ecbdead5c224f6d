package document_test

import (
	"testing"

	"github.com/threadline/threadline/graph/document"
)

// BenchmarkBombs measures what a refused bomb costs the gate (time and allocation per
// document, the cache never hit: every document is refused).
func BenchmarkBombs(b *testing.B) {
	for _, bc := range []struct{ name, query string }{
		{"aliases-1990", aliasBomb},
		{"arguments-1000", argumentBomb},
		{"aliases-666", smallAliasBomb},
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
