package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/threadline/threadline/graph/document"
)

// The committed manifest is what the generator writes from the committed clients, and what the
// server embeds.
func TestManifestIsCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	m, err := build(root)
	if err != nil {
		t.Fatal(err)
	}
	want, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, manifestFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is not current: run go run ./ops/trusted and commit it", manifestFile)
	}
	if embedded := document.Trusted(); len(embedded) != len(m) {
		t.Fatalf("the embedded manifest has %d documents, the clients send %d", len(embedded), len(m))
	}
	// Two clients, each operation of graph/client/operations once each, each client's text its
	// own.
	files, err := filepath.Glob(filepath.Join(root, operationsGlob))
	if err != nil {
		t.Fatal(err)
	}
	ops := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ops += len(regexp.MustCompile(`(?m)^(query|mutation|subscription) `).FindAll(b, -1))
	}
	if len(m) != 2*ops {
		t.Errorf("%d documents in the manifest, want 2 × %d operations", len(m), ops)
	}
}

// A client whose generated code lacks an operation of graph/client/operations fails the
// generator instead of leaving it out of the manifest.
func TestStaleClientFails(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{operationsGlob, goClient, tsClient} {
		files, err := filepath.Glob(filepath.Join("..", "..", f))
		if err != nil || len(files) == 0 {
			t.Fatal(f, err)
		}
		for _, src := range files {
			rel, _ := filepath.Rel(filepath.Join("..", ".."), src)
			b, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if rel == filepath.FromSlash(tsClient) {
				b = bytes.Replace(b, []byte("export const ViewerDocument"), []byte("export const OldViewer"), 1)
			}
			dst := filepath.Join(root, rel)
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dst, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := build(root); err == nil {
		t.Fatal("a TypeScript client without Viewer built a manifest")
	}
}
