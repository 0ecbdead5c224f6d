// Command schema writes the published schema, schema.graphql at the repository root, from the
// one source of the schema, graph/*.graphqls: the whole SDL, types sorted by name
// (`make schema`, run from the repository root).
//
//	go run ./ops/schema [-out schema.graphql] [-in 'graph/*.graphqls']
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/threadline/threadline/ops/schema/sdl"
)

// header starts the published schema.
const header = "# The Threadline GraphQL schema. Generated from graph/*.graphqls by `make schema`: do not edit.\n\n"

func main() {
	out := flag.String("out", "schema.graphql", "the file to write")
	in := flag.String("in", "graph/*.graphqls", "the schema sources (a glob)")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintln(os.Stderr, "schema:", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	s, err := sdl.LoadFiles(in)
	if err != nil {
		return err
	}
	return os.WriteFile(out, []byte(header+sdl.Print(s)), 0o644)
}
