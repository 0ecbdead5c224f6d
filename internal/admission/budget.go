package admission

import (
	"math"
	"sync/atomic"
	"time"
)

// Budget is a token bucket: it allows perSecond spends a second on average and burst at once,
// and answers at once whether one may be spent now. It bounds how often something costly may
// happen, such as reading PostgreSQL when a Redis call timed out: without a bound, a Redis that
// times out on every call would push the whole load onto the path that costs ten times as much,
// which is how an outage of the cache becomes an outage of the database.
//
// It is the generic cell rate algorithm: one atomic integer holds the time at which the bucket
// will be full again (the theoretical arrival time, TAT, in nanoseconds since the Budget was
// made). A spend at now is allowed while TAT − now ≤ (burst − 1) × interval, and moves TAT to
// max(TAT, now) + interval, with a compare-and-swap: no lock, no goroutine, no allocation; Allow
// loops only while other goroutines are spending at the same instant.
//
// The zero Budget and a nil *Budget allow nothing.
type Budget struct {
	interval  int64 // nanoseconds per spend
	slack     int64 // (burst − 1) × interval
	unlimited bool  // a spend takes less than a nanosecond: allow everything
	base      time.Time
	tat       atomic.Int64
	now       func() time.Duration // since base; set by tests
}

// NewBudget returns a Budget of perSecond spends a second, of which up to burst may come at once
// (burst below 1 counts as 1). A perSecond of 0 or less allows nothing; one so high that a
// spend takes less than a nanosecond allows everything.
func NewBudget(perSecond float64, burst int) *Budget {
	b := &Budget{base: time.Now()}
	interval := float64(time.Second) / perSecond
	switch {
	case !(perSecond > 0): // also NaN
	case interval < 1:
		b.unlimited = true
	default:
		b.interval = int64(min(interval, float64(365*24*time.Hour)))
		b.slack = int64(min(float64(math.MaxInt64/4), float64(max(1, burst)-1)*float64(b.interval)))
	}
	return b
}

// Allow spends one if the budget has one to spend now, and reports whether it did.
func (b *Budget) Allow() bool {
	if b == nil {
		return false
	}
	if b.interval == 0 {
		return b.unlimited
	}
	var now int64
	if b.now != nil {
		now = int64(b.now())
	} else {
		now = int64(time.Since(b.base))
	}
	for {
		tat := b.tat.Load()
		from := max(tat, now)
		if from-now > b.slack {
			return false
		}
		if b.tat.CompareAndSwap(tat, from+b.interval) {
			return true
		}
	}
}
