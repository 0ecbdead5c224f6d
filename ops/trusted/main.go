// Command trusted writes the trusted-document manifest, graph/document/trusted.json, from the
// documents this repository's clients send (`go run ./ops/trusted`, from the repository root;
// ops/check-generated.sh runs it and fails if the file changed).
//
// A client's document is hashed byte for byte as the client puts it on the wire, which is not
// the text of graph/client/operations/*.graphql:
//   - the Go client (genqlient) sends the constant <Operation>_Operation of
//     graph/client/generated.go, its own printing of the operation and its fragments;
//   - the TypeScript client sends document.toString() of each <Operation>Document in
//     ops/clients/ts/src/generated/graphql.ts: the template literal GraphQL Code Generator
//     wrote, its indentation and appended fragments included.
//
// Every operation of graph/client/operations must be in both, and nothing else: a stale
// generated client fails the command rather than giving a manifest that misses it.
//
//	go run ./ops/trusted [-root .]
package main

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	gqlast "github.com/vektah/gqlparser/v2/ast"
	gqlparser "github.com/vektah/gqlparser/v2/parser"

	"github.com/threadline/threadline/graph/document"
)

// The inputs and the output, relative to the repository root.
const (
	operationsGlob = "graph/client/operations/*.graphql"
	goClient       = "graph/client/generated.go"
	tsClient       = "ops/clients/ts/src/generated/graphql.ts"
	manifestFile   = "graph/document/trusted.json"
)

func main() {
	root := flag.String("root", ".", "the repository root")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "trusted:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	m, err := build(root)
	if err != nil {
		return err
	}
	b, err := m.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, manifestFile), b, 0o644)
}

// build returns the manifest of every document the clients send.
func build(root string) (document.Manifest, error) {
	names, err := operationNames(filepath.Join(root, operationsGlob))
	if err != nil {
		return nil, err
	}
	goDocs, err := goClientDocuments(filepath.Join(root, goClient))
	if err != nil {
		return nil, err
	}
	tsDocs, err := tsClientDocuments(filepath.Join(root, tsClient))
	if err != nil {
		return nil, err
	}
	m := document.Manifest{}
	for _, client := range []struct {
		file string
		docs map[string]string
	}{{goClient, goDocs}, {tsClient, tsDocs}} {
		if got := slices.Sorted(maps.Keys(client.docs)); !slices.Equal(got, names) {
			return nil, fmt.Errorf("%s has the operations %v, %s has %v: regenerate the clients (make generate, make check-ts)",
				client.file, got, operationsGlob, names)
		}
		for _, text := range client.docs {
			m[document.SHA256(text)] = text
		}
	}
	return m, nil
}

// operationNames returns the names of the operations defined in the files matching glob, sorted.
func operationNames(glob string) ([]string, error) {
	files, err := filepath.Glob(glob)
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no operations in %s (%v)", glob, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		doc, err := gqlparser.ParseQuery(&gqlast.Source{Name: f, Input: string(b)})
		if err != nil {
			return nil, err
		}
		for _, op := range doc.Operations {
			names = append(names, op.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// goClientDocuments returns the operation texts genqlient generated: operation name → the
// value of the constant <name>_Operation.
func goClientDocuments(file string) (map[string]string, error) {
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		return nil, err
	}
	docs := map[string]string{}
	for _, decl := range f.Decls {
		gen, ok := decl.(*ast.GenDecl)
		if !ok || gen.Tok != token.CONST {
			continue
		}
		for _, spec := range gen.Specs {
			vs := spec.(*ast.ValueSpec)
			for i, id := range vs.Names {
				name, ok := strings.CutSuffix(id.Name, "_Operation")
				if !ok || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					return nil, fmt.Errorf("%s: %s is not a string literal", file, id.Name)
				}
				text, err := strconv.Unquote(lit.Value)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: %w", file, id.Name, err)
				}
				docs[name] = text
			}
		}
	}
	return docs, nil
}

// tsDocument matches the start of an operation's TypedDocumentString in the TypeScript
// client's generated code; fragments are ...FragmentDoc and are never sent alone.
var tsDocument = regexp.MustCompile("(?m)^export const (\\w+)Document = new TypedDocumentString\\(`")

// tsClientDocuments returns the operation texts of the TypeScript client: operation name →
// the template literal of <name>Document, which toString() returns. A literal with an escape
// or a substitution is refused rather than interpreted: the generator writes neither.
func tsClientDocuments(file string) (map[string]string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	src := string(b)
	docs := map[string]string{}
	for _, loc := range tsDocument.FindAllStringSubmatchIndex(src, -1) {
		name := src[loc[2]:loc[3]]
		rest := src[loc[1]:]
		end := strings.IndexByte(rest, '`')
		if end < 0 {
			return nil, fmt.Errorf("%s: %sDocument: unterminated template literal", file, name)
		}
		text := rest[:end]
		if strings.Contains(text, `\`) || strings.Contains(text, "${") {
			return nil, fmt.Errorf("%s: %sDocument has an escape or a substitution", file, name)
		}
		docs[name] = text
	}
	return docs, nil
}
