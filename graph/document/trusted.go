package document

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"
)

// Manifest is a trusted-document manifest: the SHA-256 of each document, in lower-case hex, to
// the document's text, byte for byte as a client sends it. Its file is a JSON object of exactly
// that (the format of Relay's persisted-query output), for example
//
//	{"3b1f…": "query Viewer {\n  me { id name }\n}"}
//
// trusted.json beside this file is the manifest of this repository's clients, written by
// `go run ./ops/trusted` from what the Go client (graph/client/generated.go) and the
// TypeScript client (ops/clients/ts/src/generated/graphql.ts) send; ops/check-generated.sh and
// a test of ops/trusted check that it is current.
type Manifest map[string]string

// ParseManifest reads a manifest and checks that every key is the SHA-256 of its document.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("document: the manifest is not a JSON object of strings: %w", err)
	}
	for hash, text := range m {
		if sha256Hex(text) != hash {
			return nil, fmt.Errorf("document: manifest entry %.16s… is not the SHA-256 of its document", hash)
		}
	}
	return m, nil
}

// Marshal writes m as its file: keys sorted, one entry per line, so that regenerating it
// gives the same bytes and a change reads as a diff.
func (m Manifest) Marshal() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // documents as written: `<` stays `<`
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]string(m)); err != nil { // sorts the keys
		return nil, err
	}
	return b.Bytes(), nil
}

//go:embed trusted.json
var trustedJSON []byte

// Trusted returns the manifest of this repository's clients (trusted.json), the same map on
// every call: do not modify it.
var Trusted = sync.OnceValue(func() Manifest {
	m, err := ParseManifest(trustedJSON)
	if err != nil {
		panic(err) // TestTrustedManifest checks the embedded file
	}
	return m
})

// SHA256 is the key of text in a manifest: its SHA-256 in lower-case hex, as the APQ protocol
// sends it.
func SHA256(text string) string { return sha256Hex(text) }
