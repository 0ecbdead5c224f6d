package testenv_test

import (
	"testing"

	"github.com/threadline/threadline/internal/testenv"
)

// Outside CI a missing command skips the test, and without CLUSTER_TESTS=1 a slow test skips;
// a command that is there is found.
func TestSkips(t *testing.T) {
	t.Setenv("CI", "")
	t.Setenv("CLUSTER_TESTS", "")
	for _, tc := range []struct {
		name string
		test func(t *testing.T)
		skip bool
	}{
		{"missing command", func(t *testing.T) { testenv.LookPath(t, "threadline-no-such-command", "no way") }, true},
		{"present command", func(t *testing.T) {
			if testenv.LookPath(t, "sh", "no way") == "" {
				t.Error("no path for sh")
			}
		}, false},
		{"slow test", func(t *testing.T) { testenv.SkipSlow(t, "takes minutes") }, true},
	} {
		var skipped bool
		t.Run(tc.name, func(t *testing.T) {
			defer func() { skipped = t.Skipped() }()
			tc.test(t)
		})
		if skipped != tc.skip {
			t.Errorf("%s: skipped %v, want %v", tc.name, skipped, tc.skip)
		}
	}
}
