package document_test

import (
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/threadline/threadline/graph/document"
)

// Admitted says yes only to what the gate itself would admit, without Redis or a parse: a
// document it admitted before, named as the gate takes it; with trusted documents only, a
// manifest document. Everything else must go through the gate.
func TestAdmitted(t *testing.T) {
	trusted := "query Viewer { me { id name } }"
	other := "query Other { me { id } }"
	never := "query Never { me { name } }"
	manifest := document.Manifest{document.SHA256(trusted): trusted}

	for _, mode := range []struct {
		name        string
		trustedOnly bool
	}{{"open", false}, {"trusted only", true}} {
		t.Run(mode.name, func(t *testing.T) {
			g := newGate(t, document.Config{Trusted: manifest, TrustedOnly: mode.trustedOnly, Limits: document.Limits{DocumentBytes: 100}})
			for _, q := range []string{trusted, other} { // admit what the gate admits
				_ = g.MutateOperationParameters(opContext(), &graphql.RawParams{Query: q})
			}
			for _, c := range []struct {
				name string
				p    graphql.RawParams
				want string // the document admitted, "" for not ok
			}{
				{"text", graphql.RawParams{Query: trusted}, trusted},
				{"hash alone, in the manifest", graphql.RawParams{Extensions: persisted(document.SHA256(trusted))}, trusted},
				{"hash with its text, in the manifest", graphql.RawParams{Query: trusted, Extensions: persisted(document.SHA256(trusted))}, trusted},
				{"hash with another text", graphql.RawParams{Query: other, Extensions: persisted(document.SHA256(trusted))}, ""},
				{"hash not in the manifest (APQ)", graphql.RawParams{Query: other, Extensions: persisted(document.SHA256(other))}, ""},
				{"hash alone, not in the manifest", graphql.RawParams{Extensions: persisted(document.SHA256(other))}, ""},
				{"malformed persisted query", graphql.RawParams{Query: trusted, Extensions: map[string]any{"persistedQuery": "x"}}, ""},
				{"never admitted", graphql.RawParams{Query: never}, ""},
				{"over the size limit", graphql.RawParams{Query: trusted + strings.Repeat(" ", 100)}, ""},
				{"no document", graphql.RawParams{}, ""},
				{"not in the manifest", graphql.RawParams{Query: other}, map[bool]string{false: other, true: ""}[mode.trustedOnly]},
			} {
				query, doc, ok := g.Admitted(&c.p)
				if got := map[bool]string{true: query}[ok]; got != c.want {
					t.Errorf("%s: admitted %q, want %q", c.name, got, c.want)
				}
				if ok && (doc == nil || len(doc.Operations) != 1) {
					t.Errorf("%s: document %+v", c.name, doc)
				}
			}
		})
	}
}
