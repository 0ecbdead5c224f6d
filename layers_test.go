package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The layers of the module, lowest first. A package may import packages of its own layer and of
// the layers below it, never one above: the parts (internal/...) know nothing of PostgreSQL's
// adapter, the adapter nothing of GraphQL, GraphQL nothing of how the server is assembled, and
// no server code anything of the tools and checks under ops/ (and web/, the web app's sources and
// browser tests). The program (server.go) sits on top. Test files count too, with two
// exceptions: tests under internal/ may use the PostgreSQL adapter (db.Migrate, db/dbtest
// fixtures), and graph's tests run through the assembled server (app/apptest).
var layers = []struct {
	name     string
	prefixes []string // relative to the module; "" is the root package
}{
	{"parts", []string{"internal", "migrations"}},
	{"db", []string{"db"}},
	{"graph", []string{"graph"}},
	{"app", []string{"app"}},
	{"ops", []string{"ops", "web"}},
	{"program", []string{""}},
}

// testMayReach is the highest layer a package's tests may import, by the package's layer, where
// it is above the package's own.
var testMayReach = map[string]string{"parts": "db", "graph": "app"}

const modulePath = "github.com/threadline/threadline"

// layerOf returns the index in layers of a package of the module, or -1.
func layerOf(pkg string) int {
	rel, ok := strings.CutPrefix(pkg, modulePath)
	if !ok || (rel != "" && rel[0] != '/') {
		return -1
	}
	rel = strings.TrimPrefix(rel, "/")
	for i, l := range layers {
		for _, p := range l.prefixes {
			if rel == p || (p != "" && strings.HasPrefix(rel, p+"/")) {
				return i
			}
		}
	}
	return -1
}

func layerIndex(name string) int {
	for i, l := range layers {
		if l.name == name {
			return i
		}
	}
	return -1
}

// listedPackage is what `go list -test -json` says of a package or of one of its test variants.
type listedPackage struct {
	ImportPath string
	ForTest    string // set for a package's tests: the package they test
	Imports    []string
	Error      *struct{ Err string }
	DepsErrors []*struct{ Err string }
}

// layerViolations lists the imports of pkgs that break the layering, and the errors go list
// reports (an import cycle among them).
func layerViolations(pkgs []listedPackage) []string {
	var out []string
	for _, p := range pkgs {
		if p.Error != nil {
			out = append(out, fmt.Sprintf("%s: %s", p.ImportPath, p.Error.Err))
		}
		for _, e := range p.DepsErrors {
			out = append(out, fmt.Sprintf("%s: %s", p.ImportPath, e.Err))
		}
		if strings.HasSuffix(p.ImportPath, ".test") {
			continue // the generated main of a test binary
		}
		pkg, test := p.ImportPath, p.ForTest != ""
		if test {
			pkg = p.ForTest
		}
		from := layerOf(pkg)
		if from < 0 {
			out = append(out, fmt.Sprintf("%s is in no layer: add its directory to layers", pkg))
			continue
		}
		reach := from
		if test {
			reach = max(reach, layerIndex(testMayReach[layers[from].name]))
		}
		for _, imp := range p.Imports {
			imp, _, _ = strings.Cut(imp, " ") // "pkg [pkg.test]": a package recompiled for a test
			to := layerOf(imp)
			if to <= reach {
				continue
			}
			what := pkg
			if test {
				what += " (tests)"
			}
			out = append(out, fmt.Sprintf("%s imports %s: layer %s imports layer %s, above it", what, imp, layers[from].name, layers[to].name))
		}
	}
	return out
}

// TestImportLayers checks the layering of every package of the module, test files included,
// on what `go list` reports.
func TestImportLayers(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("go", "list", "-e", "-test", "-json=ImportPath,ForTest,Imports,Error,DepsErrors", "./...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	var pkgs []listedPackage
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 30 {
		t.Fatalf("go list listed %d packages", len(pkgs))
	}
	for _, v := range layerViolations(pkgs) {
		t.Error(v)
	}
}

func TestLayerViolations(t *testing.T) {
	const m = modulePath
	for name, tc := range map[string]struct {
		pkg  listedPackage
		want []string
	}{
		"down":                  {listedPackage{ImportPath: m + "/app", Imports: []string{m + "/graph", m + "/db", m + "/internal/chat", "net/http"}}, nil},
		"sideways":              {listedPackage{ImportPath: m + "/internal/cache", Imports: []string{m + "/internal/chat"}}, nil},
		"internal imports ops":  {listedPackage{ImportPath: m + "/internal/devstack", Imports: []string{m + "/ops/pgbouncer"}}, []string{m + "/internal/devstack imports " + m + "/ops/pgbouncer: layer parts imports layer ops, above it"}},
		"db imports graph":      {listedPackage{ImportPath: m + "/db", Imports: []string{m + "/graph/model"}}, []string{m + "/db imports " + m + "/graph/model: layer db imports layer graph, above it"}},
		"graph imports app":     {listedPackage{ImportPath: m + "/graph", Imports: []string{m + "/app"}}, []string{m + "/graph imports " + m + "/app: layer graph imports layer app, above it"}},
		"graph's tests use app": {listedPackage{ImportPath: m + "/graph_test", ForTest: m + "/graph", Imports: []string{m + "/app/apptest", m + "/graph [" + m + "/graph.test]"}}, nil},
		"graph's tests use ops": {listedPackage{ImportPath: m + "/graph_test", ForTest: m + "/graph", Imports: []string{m + "/ops/schema/sdl"}}, []string{m + "/graph (tests) imports " + m + "/ops/schema/sdl: layer graph imports layer ops, above it"}},
		"internal tests use db": {listedPackage{ImportPath: m + "/internal/cache_test", ForTest: m + "/internal/cache", Imports: []string{m + "/db/dbtest"}}, nil},
		"internal tests use app": {listedPackage{ImportPath: m + "/internal/cache [" + m + "/internal/cache.test]", ForTest: m + "/internal/cache", Imports: []string{m + "/app/apptest"}},
			[]string{m + "/internal/cache (tests) imports " + m + "/app/apptest: layer parts imports layer app, above it"}},
		"internal imports db":  {listedPackage{ImportPath: m + "/internal/cache", Imports: []string{m + "/db"}}, []string{m + "/internal/cache imports " + m + "/db: layer parts imports layer db, above it"}},
		"ops imports anything": {listedPackage{ImportPath: m + "/ops/loadtest", Imports: []string{m + "/app", m + "/graph/client"}}, nil},
		"a new directory":      {listedPackage{ImportPath: m + "/tools/x"}, []string{m + "/tools/x is in no layer: add its directory to layers"}},
		"a cycle":              {listedPackage{ImportPath: m + "/db", Error: &struct{ Err string }{"import cycle not allowed"}}, []string{m + "/db: import cycle not allowed"}},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, layerViolations([]listedPackage{tc.pkg})); diff != "" {
				t.Errorf("violations (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLayoutListsEveryPackage checks that README's "Layout" block has a line for every package of
// the module, and that every directory it names exists (it may name directories without Go code,
// such as the shared web build).
func TestLayoutListsEveryPackage(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "./...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, layout, ok := strings.Cut(string(readme), "\n## Layout\n")
	if !ok {
		t.Fatal(`README.md has no "## Layout" section`)
	}
	_, block, _ := strings.Cut(layout, "```\n")
	block, _, _ = strings.Cut(block, "```")
	listed := map[string]bool{}
	for l := range strings.Lines(block) {
		if f := strings.Fields(l); len(f) > 0 && strings.HasSuffix(f[0], "/") && l[0] != ' ' {
			listed[f[0]] = true
			if st, err := os.Stat(f[0]); err != nil || !st.IsDir() {
				t.Errorf("README Layout names %s, which is not a directory", f[0])
			}
		}
	}
	for _, p := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(p, modulePath+"/"); ok && !listed[rel+"/"] {
			t.Errorf("README Layout has no line for package %s", rel)
		}
	}
}
