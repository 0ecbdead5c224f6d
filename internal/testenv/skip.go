package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// SkipShort skips t under -short, which leaves out every test that starts servers, runs tools or
// takes long; what says what t does ("runs promtool"), for the skip message.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip(what + "; skipped with -short")
	}
}

// SlowTests reports whether the slow tests run: those that start a cluster of processes or
// build from scratch, a minute or more each. They run with CLUSTER_TESTS=1, which the CI sets.
func SlowTests() bool { return os.Getenv("CLUSTER_TESTS") == "1" }

// MainSlow is Main for a package whose tests with services are all slow: without
// CLUSTER_TESTS=1 it starts no services and runs only the tests that need none (the slow ones
// skip themselves with SkipSlow).
func MainSlow(m *testing.M, opts Options) {
	if !SlowTests() {
		os.Exit(m.Run())
	}
	Main(m, opts)
}

// SkipSlow skips t unless the slow tests run (CLUSTER_TESTS=1, and not -short); what says what
// t does, for the skip message.
func SkipSlow(t testing.TB, what string) {
	t.Helper()
	if !SlowTests() || testing.Short() {
		t.Skip(what + ": set CLUSTER_TESTS=1")
	}
}

// LookPath finds the command name for t. A missing command fails t in CI (CI set), where make
// ops-deps has installed every tool, and skips it elsewhere; install says how to install it.
func LookPath(t testing.TB, name, install string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%v: %s", err, install)
	}
	t.Skipf("%v: %s", err, install)
	return ""
}
