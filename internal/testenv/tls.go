package testenv

import (
	"testing"

	"github.com/threadline/threadline/internal/devstack"
)

// TLS makes a private CA of the test's own, with a server certificate and a client certificate
// for the user "threadline" (devstack.GenerateTLS), in a directory removed when the test ends.
// Two calls make two CAs that do not trust each other's certificates.
func TLS(t testing.TB) devstack.TLS {
	t.Helper()
	certs, err := devstack.GenerateTLS(t.TempDir(), "threadline")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return certs
}
