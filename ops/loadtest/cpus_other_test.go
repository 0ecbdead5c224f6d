//go:build !linux

package loadtest

import "testing"

// isolateCPUs is Linux-only (sched_setaffinity over /proc); elsewhere the load generator shares
// the CPUs with the system under test.
func isolateCPUs(t *testing.T) {
	t.Logf("CPU isolation is Linux-only: the load generator shares the CPUs with the system under test")
}
