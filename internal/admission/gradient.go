package admission

import (
	"math"
	"time"
)

// The limit algorithm's constants; the package doc argues for each.
const (
	windowTime    = 50 * time.Millisecond // a window lasts at least this long
	windowSamples = 50                    // and holds at least this many finished operations
	tolerance     = 3.0                   // latency up to tolerance × baseline counts as no queueing
	minGradient   = 0.5                   // the lowest target of a shrink, as a share of the limit
	smoothing     = 0.2                   // a window moves the limit a fifth of the way to its target
	backoff       = 0.9                   // a window with a dropped operation multiplies the limit by this
)

// gradient is the adaptive concurrency limit described in the package doc. It is not safe for
// concurrent use: the Limiter calls it under its mutex.
type gradient struct {
	min, max float64
	limit    float64
	baseline float64 // seconds; 0 until measured

	// The current window.
	start       time.Time
	samples     int     // finished operations, dropped or not
	ok          int     // finished operations not dropped
	sum         float64 // their latencies, in seconds
	drops       int     // dropped operations
	maxInflight int     // the most operations in flight at once
}

func newGradient(minLimit, maxLimit, initial int) gradient {
	return gradient{min: float64(minLimit), max: float64(maxLimit), limit: float64(initial)}
}

// current is the limit as a whole number of operations.
func (g *gradient) current() int { return int(g.limit) }

// admitted notes the number of operations in flight after an admission.
func (g *gradient) admitted(inflight int) {
	g.maxInflight = max(g.maxInflight, inflight)
}

// observe records an operation that finished at now after running for rtt (dropped: it ran out
// of time), with inflight operations still running. When this closes a window it updates the
// limit and reports true.
func (g *gradient) observe(now time.Time, rtt time.Duration, dropped bool, inflight int) bool {
	if g.start.IsZero() {
		g.start = now
	}
	g.samples++
	if dropped {
		g.drops++
	} else {
		g.ok++
		g.sum += rtt.Seconds()
	}
	if g.samples < windowSamples || now.Sub(g.start) < windowTime {
		return false
	}
	g.update()
	g.start = now
	g.samples, g.ok, g.drops, g.sum = 0, 0, 0, 0
	g.maxInflight = inflight
	return true
}

// update closes a window: first the baseline, then the limit.
func (g *gradient) update() {
	// appLimited: the load never came near the limit, so the window says nothing about whether
	// the limit is too high, and its latency is that of the current mix of operations without
	// queueing behind the limit. atMin: the limit cannot go lower, so its latency is the lowest
	// the Limiter can make the server show. Either is a measurement of the baseline; any other
	// window may only lower it (see the package doc).
	appLimited := float64(2*g.maxInflight) < g.limit
	atMin := g.limit < g.min+1
	var avg float64
	if g.ok > 0 {
		avg = g.sum / float64(g.ok)
		switch {
		case appLimited || atMin:
			g.baseline = avg
		case avg < g.baseline:
			g.baseline += (avg - g.baseline) / 2
		}
	}
	switch {
	case g.drops > 0 || g.baseline == 0:
		// Operations ran out of time, or the load has kept the limit busy since the start, so
		// no window has shown what latency without queueing is: back off, down to MinLimit if
		// need be, where the baseline is measured.
		g.limit *= backoff
	case appLimited:
	case avg <= tolerance*g.baseline:
		g.limit += smoothing * math.Sqrt(g.limit) // a fifth of the way to L + √L
	default:
		grad := max(minGradient, tolerance*g.baseline/avg)
		g.limit -= smoothing * (1 - grad) * g.limit // a fifth of the way to grad × L
	}
	g.limit = min(g.max, max(g.min, g.limit))
}
