package admission

import (
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// withClock gives b a fake clock and returns the function that moves it.
func withClock(b *Budget) (advance func(time.Duration)) {
	var now time.Duration
	b.now = func() time.Duration { return now }
	return func(d time.Duration) { now += d }
}

// spend calls Allow n times and returns how many were allowed.
func spend(b *Budget, n int) int {
	allowed := 0
	for range n {
		if b.Allow() {
			allowed++
		}
	}
	return allowed
}

func TestBudget(t *testing.T) {
	b := NewBudget(10, 5)
	advance := withClock(b)
	if got := spend(b, 100); got != 5 {
		t.Fatalf("at once: %d allowed, want the burst of 5", got)
	}
	advance(50 * time.Millisecond)
	if got := spend(b, 100); got != 0 {
		t.Fatalf("half an interval later: %d allowed, want 0", got)
	}
	advance(50 * time.Millisecond)
	if got := spend(b, 100); got != 1 {
		t.Fatalf("one interval later: %d allowed, want 1", got)
	}
	advance(time.Second)
	if got := spend(b, 100); got != 5 {
		t.Fatalf("a second later: %d allowed, want 5 (refilled to the burst, no more)", got)
	}
	// Sustained: one call every millisecond for ten seconds gets 10 a second, plus the burst.
	allowed := 0
	for range 10000 {
		advance(time.Millisecond)
		if b.Allow() {
			allowed++
		}
	}
	if allowed < 100 || allowed > 105 {
		t.Fatalf("ten seconds of steady calls: %d allowed, want 100 to 105", allowed)
	}
}

func TestBudgetEdges(t *testing.T) {
	for _, c := range []struct {
		name    string
		b       *Budget
		n, want int
	}{
		{"nil", nil, 10, 0},
		{"zero value", &Budget{}, 10, 0},
		{"zero rate", NewBudget(0, 100), 10, 0},
		{"negative rate", NewBudget(-1, 100), 10, 0},
		{"NaN rate", NewBudget(math.NaN(), 100), 10, 0},
		{"burst below one counts as one", NewBudget(1, 0), 10, 1},
		{"tiny rate", NewBudget(1e-30, 3), 10, 3},
		{"rate past a nanosecond a spend", NewBudget(2e9, 1), 1000, 1000},
		{"infinite rate", NewBudget(math.Inf(1), 1), 1000, 1000},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.b != nil {
				withClock(c.b)
			}
			if got := spend(c.b, c.n); got != c.want {
				t.Errorf("%d calls at once: %d allowed, want %d", c.n, got, c.want)
			}
		})
	}
}

// Goroutines spending at once never get more than the budget holds.
func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(1, 1000) // a refill every second: none during the test
	withClock(b)
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { allowed.Add(int64(spend(b, 200))) })
	}
	wg.Wait()
	if n := allowed.Load(); n != 1000 {
		t.Fatalf("%d allowed among 3200 concurrent calls, want the burst of 1000", n)
	}
}

func BenchmarkBudgetAllow(b *testing.B) {
	bud := NewBudget(1e6, 1000)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bud.Allow()
		}
	})
}
