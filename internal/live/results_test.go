package live

import (
	"testing"
	"time"

	"github.com/threadline/threadline/internal/testenv"
)

// SharedForm hands out a result another subscriber made, only while Result keeps it and only
// when it was shareable; it never computes or keeps anything itself.
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
			formed := 0
			form := func(b []byte) []byte { formed++; return append([]byte("form of "), b...) }
			b, f, ok := h.SharedForm(tc.key, form)
			want := ""
			if tc.ok {
				want = "form of " + tc.want
			}
			if string(b) != tc.want || string(f) != want || ok != tc.ok {
				t.Errorf("SharedForm = %q, %q, %v; want %q, %q, %v", b, f, ok, tc.want, want, tc.ok)
			}
			if tc.ok != (formed == 1) {
				t.Errorf("form called %d times for a result that is shareable: %v", formed, tc.ok)
			}
		})
	}
}

// SharedForm makes the form of a result once, hands the same bytes to every caller after the
// first (whatever form they pass), and counts them with the result until it is dropped.
func TestSharedFormMadeOnceAndCounted(t *testing.T) {
	t.Parallel()
	h := newTestHub(t, testenv.RedisClient(t, testenv.NewRedis(t)), storeOf(1))
	now := time.Now()
	h.results.now = func() time.Time { return now }
	type event struct{ n int }
	key := ResultKey{Event: &event{1}, Operation: [32]byte{1}}
	h.Result(key, func() ([]byte, bool) { return []byte(`{"n":1}`), true })
	bytesNow := func() int {
		h.results.mu.Lock()
		defer h.results.mu.Unlock()
		return h.results.bytes
	}
	if got := bytesNow(); got != len(`{"n":1}`) {
		t.Fatalf("%d bytes kept for the result, want %d", got, len(`{"n":1}`))
	}
	calls := 0
	for i := range 3 {
		b, f, ok := h.SharedForm(key, func(b []byte) []byte { calls++; return append([]byte(`{"x":`), append(b, '}')...) })
		if !ok || string(b) != `{"n":1}` || string(f) != `{"x":{"n":1}}` {
			t.Errorf("call %d: SharedForm = %q, %q, %v; want %q, %q, true", i, b, f, ok, `{"n":1}`, `{"x":{"n":1}}`)
		}
	}
	if calls != 1 {
		t.Errorf("form called %d times, want once", calls)
	}
	if got, want := bytesNow(), len(`{"n":1}`)+len(`{"x":{"n":1}}`); got != want {
		t.Errorf("%d bytes kept for the result and its form, want %d", got, want)
	}
	// Made again once past its time: the old result and its form are no longer counted.
	now = now.Add(resultTTL)
	h.Result(key, func() ([]byte, bool) { return []byte(`{"n":2}`), true })
	if got := bytesNow(); got != len(`{"n":2}`) {
		t.Errorf("%d bytes kept after the result was made again, want %d", got, len(`{"n":2}`))
	}
	if _, f, _ := h.SharedForm(key, func(b []byte) []byte { return append([]byte("new "), b...) }); string(f) != `new {"n":2}` {
		t.Errorf("SharedForm of the result made again = %q, want %q", f, `new {"n":2}`)
	}
}
