package redisclient

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestBreakerFailing follows a breaker through calls that succeed and fail: Failing from the
// first failure, while the breaker is open, and until a call succeeds again.
func TestBreakerFailing(t *testing.T) {
	b := NewBreaker(BreakerConfig{FailureThreshold: 2, OpenTimeout: 50 * time.Millisecond})
	ok := func(context.Context) error { return nil }
	fail := func(context.Context) error { return errors.New("down") }
	var got []bool
	for _, step := range []func(context.Context) error{ok, fail, ok, fail, fail, nil, ok} {
		if step == nil {
			time.Sleep(60 * time.Millisecond) // past OpenTimeout: the next call is a probe
			continue
		}
		_ = b.Do(context.Background(), step)
		got = append(got, b.Failing())
	}
	if diff := cmp.Diff([]bool{false, true, false, true, true, false}, got); diff != "" {
		t.Errorf("Failing after each call (-want +got):\n%s", diff)
	}
}
