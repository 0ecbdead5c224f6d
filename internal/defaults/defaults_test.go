package defaults

import (
	"testing"
	"time"
)

func TestPositive(t *testing.T) {
	for _, tc := range []struct {
		name    string
		v, want time.Duration
	}{
		{"zero takes the default", 0, time.Second},
		{"negative takes the default", -time.Millisecond, time.Second},
		{"positive stays", time.Millisecond, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Positive(tc.v, time.Second); got != tc.want {
				t.Errorf("Positive(%v, 1s) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
	if got := Positive(-3, 100); got != 100 {
		t.Errorf("Positive(-3, 100) = %d, want 100", got)
	}
}
