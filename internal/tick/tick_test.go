package tick

import (
	"testing"
	"time"
)

// Every calls f again and again, and returns when stop is closed.
func TestEvery(t *testing.T) {
	stop := make(chan struct{})
	called := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(stop, time.Millisecond, func() {
			select {
			case called <- struct{}{}:
			default:
			}
		})
	}()
	<-called
	<-called // f runs again after its first call
	close(stop)
	<-done // and Every returns once stop is closed
}
