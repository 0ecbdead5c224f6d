package admission

import (
	"math"
	"testing"
	"time"
)

// sim drives a gradient window by window with a fake clock.
type sim struct {
	t   *testing.T
	g   gradient
	now time.Time
}

func newSim(t *testing.T, minLimit, maxLimit, initial int) *sim {
	return &sim{t: t, g: newGradient(minLimit, maxLimit, initial), now: time.Unix(1e9, 0)}
}

// window feeds one whole window: windowSamples operations, drops of them dropped, the others
// taking lat, with inflight operations running at once; the last one lands windowTime after the
// first, so the window closes on it.
func (s *sim) window(inflight int, lat time.Duration, drops int) {
	s.t.Helper()
	for i := range windowSamples {
		if i == windowSamples-1 {
			s.now = s.now.Add(windowTime)
		}
		s.g.admitted(inflight)
		closed := s.g.observe(s.now, lat, i < drops, inflight-1)
		if closed != (i == windowSamples-1) {
			s.t.Fatalf("sample %d of %d: window closed = %v", i+1, windowSamples, closed)
		}
	}
}

// saturated feeds a window with the limit in use, operations taking lat(limit).
func (s *sim) saturated(lat func(limit int) time.Duration) {
	s.window(s.g.current(), lat(s.g.current()), 0)
}

func constant(d time.Duration) func(int) time.Duration { return func(int) time.Duration { return d } }

// cpuBound models saturated cores: up to 4 operations in flight each takes base, past that the
// cores are shared and latency grows with the number in flight.
func cpuBound(base time.Duration) func(int) time.Duration {
	return func(limit int) time.Duration { return base * time.Duration(max(4, limit)) / 4 }
}

func TestWindowNeedsTimeAndSamples(t *testing.T) {
	g := newGradient(4, 64, 20)
	now := time.Unix(1e9, 0)
	for i := range 10 * windowSamples { // many samples, no time: no window closes
		if g.observe(now, time.Millisecond, false, 1) {
			t.Fatalf("window closed after %d samples in no time", i+1)
		}
	}
	g = newGradient(4, 64, 20)
	for i := range windowSamples - 1 { // plenty of time, too few samples
		now = now.Add(time.Second)
		if g.observe(now, time.Millisecond, false, 1) {
			t.Fatalf("window closed after %d samples", i+1)
		}
	}
	if !g.observe(now.Add(time.Second), time.Millisecond, false, 1) {
		t.Fatal("window with enough samples and time did not close")
	}
}

func TestLimitGrowsWhileLatencyStaysNearBaseline(t *testing.T) {
	s := newSim(t, 4, 64, 20)
	s.window(1, 2*time.Millisecond, 0) // app-limited: the baseline
	if !near(s.g.baseline, 0.002) || s.g.current() != 20 {
		t.Fatalf("after an app-limited window: baseline %v, limit %d; want 0.002, 20", s.g.baseline, s.g.current())
	}
	// Latency rises with the limit but stays within 1.5 times the baseline.
	lat := func(limit int) time.Duration { return 2*time.Millisecond + time.Duration(limit)*10*time.Microsecond }
	for i := 0; s.g.current() < 64; i++ {
		before := s.g.limit
		s.saturated(lat)
		if s.g.limit <= before && s.g.limit < 64 {
			t.Fatalf("window %d: limit %v → %v, want growth", i, before, s.g.limit)
		}
		if i == 200 {
			t.Fatalf("limit %v after 200 windows near the baseline", s.g.limit)
		}
	}
	s.saturated(lat)
	if s.g.limit != 64 {
		t.Fatalf("limit %v, want it held at MaxLimit 64", s.g.limit)
	}
}

func TestLimitShrinksAsLatencyRises(t *testing.T) {
	s := newSim(t, 4, 64, 64)
	s.window(1, 2*time.Millisecond, 0)
	for i := 0; s.g.current() > 4; i++ {
		before := s.g.limit
		s.saturated(constant(8 * time.Millisecond)) // four times the baseline
		if s.g.limit >= before || s.g.limit < 0.9*before-1e-9 {
			t.Fatalf("window %d: limit %v → %v, want a shrink of at most a tenth", i, before, s.g.limit)
		}
		if i == 200 {
			t.Fatalf("limit %v after 200 windows at four times the baseline", s.g.limit)
		}
	}
	// At MinLimit the latency is still 8 ms: that is what operations now take without
	// queueing, so it becomes the baseline, and the limit climbs again.
	s.saturated(constant(8 * time.Millisecond))
	if !near(s.g.baseline, 0.008) {
		t.Fatalf("baseline %v after a window at MinLimit, want 0.008", s.g.baseline)
	}
	for range 20 {
		s.saturated(constant(8 * time.Millisecond))
	}
	if s.g.current() <= 5 {
		t.Fatalf("limit %v, want it climbing again", s.g.limit)
	}
}

func TestDropsBackOff(t *testing.T) {
	s := newSim(t, 4, 64, 40)
	s.window(1, 2*time.Millisecond, 0)
	for _, drops := range []int{1, 1, windowSamples} {
		before := s.g.limit
		s.window(s.g.current(), 2*time.Millisecond, drops) // latency at the baseline, but drops
		if want := before * backoff; !near(s.g.limit, want) {
			t.Fatalf("%d drops: limit %v → %v, want %v", drops, before, s.g.limit, want)
		}
	}
	// Drops count even when the load stays far below the limit.
	before := s.g.limit
	s.window(1, 2*time.Millisecond, 1)
	if want := before * backoff; !near(s.g.limit, want) {
		t.Fatalf("app-limited window with a drop: limit %v → %v, want %v", before, s.g.limit, want)
	}
}

func TestAppLimitedWindowsLeaveTheLimit(t *testing.T) {
	s := newSim(t, 4, 64, 20)
	s.window(1, 2*time.Millisecond, 0)
	// The baseline is the latest app-limited window's average, whichever way it moved.
	for _, lat := range []time.Duration{time.Millisecond, 2 * time.Millisecond, 50 * time.Millisecond} {
		s.window(9, lat, 0) // 9 < 20/2
		if s.g.limit != 20 || !near(s.g.baseline, lat.Seconds()) {
			t.Fatalf("app-limited window at %v: limit %v, baseline %v; want 20, %v", lat, s.g.limit, s.g.baseline, lat.Seconds())
		}
	}
}

func TestBaselineFallsButDoesNotRiseUnderLoad(t *testing.T) {
	s := newSim(t, 4, 64, 32)
	s.window(1, 4*time.Millisecond, 0)
	s.saturated(constant(2 * time.Millisecond))
	if !near(s.g.baseline, 0.003) {
		t.Fatalf("baseline %v after a saturated window at half of it, want 0.003 (halfway)", s.g.baseline)
	}
	s.saturated(constant(20 * time.Millisecond))
	if !near(s.g.baseline, 0.003) {
		t.Fatalf("baseline %v after a saturated window above it, want it unchanged at 0.003", s.g.baseline)
	}
}

// A server started under full load has no baseline: the limit backs off to MinLimit, learns the
// baseline there, and climbs to where latency is about 3 times it.
func TestColdStartUnderLoad(t *testing.T) {
	s := newSim(t, 4, 64, 20)
	lat := cpuBound(time.Millisecond)
	reachedMin := false
	for range 100 {
		s.saturated(lat)
		if s.g.current() == 4 {
			reachedMin = true
			break
		}
	}
	if !reachedMin {
		t.Fatalf("limit %v after 100 saturated windows without a baseline, want MinLimit 4", s.g.limit)
	}
	for range 1000 {
		s.saturated(lat)
	}
	if !near(s.g.baseline, 0.001) {
		t.Fatalf("baseline %v, want 0.001 (latency at MinLimit)", s.g.baseline)
	}
	if l := s.g.current(); l < 10 || l > 15 {
		t.Fatalf("limit %d after 1000 saturated windows, want it settled near 12 (latency ≈ 3 × baseline)", l)
	}
}

// Under overload that never ends, the limit settles and stays: no baseline creeping up with the
// latency it is compared with.
func TestNoCreepUnderSustainedOverload(t *testing.T) {
	s := newSim(t, 4, 64, 4)
	lat := cpuBound(time.Millisecond)
	lowest, highest := 64, 0
	for i := range 20000 { // 1000 s of 50 ms windows
		s.saturated(lat)
		if i >= 1000 {
			lowest, highest = min(lowest, s.g.current()), max(highest, s.g.current())
		}
	}
	if lowest < 10 || highest > 15 {
		t.Fatalf("limit ranged over [%d, %d] under sustained overload, want it within [10, 15] (settled near 12)", lowest, highest)
	}
}

// When every operation becomes slower, the limit falls to MinLimit, the baseline is learned again
// there, and the limit climbs back instead of staying at MinLimit.
func TestSlowerOperationsRelearnTheBaseline(t *testing.T) {
	s := newSim(t, 4, 64, 4)
	for range 1000 {
		s.saturated(cpuBound(time.Millisecond))
	}
	reachedMin := false
	for range 1000 {
		s.saturated(cpuBound(3 * time.Millisecond))
		reachedMin = reachedMin || s.g.current() == 4
	}
	if !reachedMin {
		t.Fatal("limit never fell to MinLimit after operations became three times slower")
	}
	if !near(s.g.baseline, 0.003) {
		t.Fatalf("baseline %v, want 0.003", s.g.baseline)
	}
	if l := s.g.current(); l < 10 || l > 15 {
		t.Fatalf("limit %d, want it back near 12", l)
	}
}

func near(got, want float64) bool { return math.Abs(got-want) <= 1e-9*math.Abs(want) }
