package live

import (
	"testing"
	"time"

	"github.com/threadline/threadline/internal/testenv"
)

// Shared hands out a result another subscriber made, only while Result keeps it and only when
// it was shareable; it never computes or keeps anything itself.
func TestSharedReturnsOnlyKeptShareableResults(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, testenv.RedisClient(t, testenv.NewRedis(t)), storeOf(1))
	now := time.Now()
	h.results.now = func() time.Time { return now }
	type event struct{ n int }
	made, failed, absent, old := &event{1}, &event{2}, &event{3}, &event{4}
	op := [32]byte{1}
	h.Result(ResultKey{Event: made, Operation: op}, func() ([]byte, bool) { return []byte(`{"n":1}`), true })
	h.Result(ResultKey{Event: failed, Operation: op}, func() ([]byte, bool) { return []byte(`null`), false })
	h.Result(ResultKey{Event: old, Operation: op}, func() ([]byte, bool) { return []byte(`{"n":4}`), true })
	later := now.Add(resultTTL)
	h.results.now = func() time.Time { return later }
	h.Result(ResultKey{Event: made, Operation: op}, func() ([]byte, bool) { return []byte(`{"n":1}`), true }) // made again, fresh
	for _, tc := range []struct {
		name string
		key  ResultKey
		want string
		ok   bool
	}{
		{"made and shareable", ResultKey{Event: made, Operation: op}, `{"n":1}`, true},
		{"made with errors", ResultKey{Event: failed, Operation: op}, "", false},
		{"never made", ResultKey{Event: absent, Operation: op}, "", false},
		{"past its time", ResultKey{Event: old, Operation: op}, "", false},
		{"another operation", ResultKey{Event: made, Operation: [32]byte{2}}, "", false},
		{"another viewer", ResultKey{Event: made, Operation: op, Viewer: 7}, "", false},
		{"not a pointer", ResultKey{Event: 1, Operation: op}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, ok := h.Shared(tc.key)
			if string(b) != tc.want || ok != tc.ok {
				t.Errorf("Shared = %q, %v; want %q, %v", b, ok, tc.want, tc.ok)
			}
		})
	}
}
