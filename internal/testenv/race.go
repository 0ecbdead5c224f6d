package testenv

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

// Repeat starts n goroutines in wg, each calling fn again and again until stop is closed
// (looked at before every call) or fn returns false: the readers and writers of a race test.
func Repeat(wg *sync.WaitGroup, n int, stop <-chan struct{}, fn func() bool) {
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if !fn() {
					return
				}
			}
		})
	}
}

// StaleReads checks read-your-writes in a race of readers against writers, over versions that
// only grow: a writer calls Ack with the version its write made once the write has returned; a
// reader takes Acked before it starts reading and reports what it read with Saw. A read is stale
// when it saw a version older than one acknowledged before it started. It is safe for concurrent
// use.
type StaleReads struct {
	acked, reads, stale atomic.Int64
	first               atomic.Value // string: the first stale read
}

// Ack records that the write of version v has returned.
func (s *StaleReads) Ack(v int64) { s.acked.Store(v) }

// Acked returns the version last acknowledged.
func (s *StaleReads) Acked() int64 { return s.acked.Load() }

// Saw records a read that started when want was acknowledged and saw version got, and returns
// how many reads have been recorded.
func (s *StaleReads) Saw(want, got int64) int64 {
	if got < want {
		s.stale.Add(1)
		s.first.CompareAndSwap(nil, fmt.Sprintf("a read started after %d was acknowledged saw %d", want, got))
	}
	return s.reads.Add(1)
}

// Reads returns how many reads have been recorded.
func (s *StaleReads) Reads() int64 { return s.reads.Load() }

// Check fails the test if any recorded read was stale.
func (s *StaleReads) Check(t testing.TB) {
	t.Helper()
	if n := s.stale.Load(); n > 0 {
		t.Fatalf("%d stale reads of %d; first: %v", n, s.reads.Load(), s.first.Load())
	}
}
