package live

import (
	"reflect"
	"sync"
	"time"
)

// ResultKey names what one subscriber makes of one event.
type ResultKey struct {
	// Event is the event as the hub handed it to the subscriber: a pointer (a *chat.Message,
	// a chat.Event, …), compared by identity.
	Event any
	// Operation identifies the subscriber's operation: a collision-resistant hash of its
	// document, operation name and variables.
	Operation [32]byte
	// Viewer is the subscriber's viewer when the result depends on who views it, else 0.
	Viewer int64
}

// Bounds of the shared results.
const (
	resultTTL        = 2 * time.Second
	resultMaxEntries = 4096
	resultMaxBytes   = 16 << 20
)

type results struct {
	now func() time.Time

	mu      sync.Mutex
	entries map[ResultKey]*result
	fifo    []*result // in the order made; fifo[head:] are live or already dropped
	head    int
	bytes   int
}

type result struct {
	key  ResultKey
	made time.Time
	done chan struct{} // closed once b and ok are set; they do not change after
	b    []byte
	ok   bool // shareable
	// kept: in entries (and its bytes counted once it is done); r.mu.
	kept bool

	// formed is the form of b SharedForm made, once; formBytes its length once counted in
	// r.bytes (r.mu).
	formOnce  sync.Once
	formed    []byte
	formBytes int
}

// size is what e counts in r.bytes: its bytes once shareable, and its form once made. r.mu
// is held.
func (e *result) size() int {
	if !e.ok {
		return 0
	}
	return len(e.b) + e.formBytes
}

func newResults() *results {
	return &results{now: time.Now, entries: map[ResultKey]*result{}}
}

// Result returns the result of key: the one another subscriber made, if it is still kept and
// was shareable, else what compute makes. compute returns the result and whether it may be
// shared (false when making it raised errors). A key whose Event is not a pointer (or is nil)
// is computed and not kept. The returned bytes may be shared: read only.
func (h *Hub) Result(key ResultKey, compute func() ([]byte, bool)) []byte {
	if v := reflect.ValueOf(key.Event); v.Kind() != reflect.Pointer || v.IsNil() {
		h.m.executions.Inc()
		b, _ := compute()
		return b
	}
	r := h.results
	now := r.now()
	r.mu.Lock()
	if e := r.entries[key]; e != nil && now.Sub(e.made) < resultTTL {
		r.mu.Unlock()
		<-e.done
		if e.ok {
			h.m.sharedResults.Inc()
			return e.b
		}
		// Its maker's errors are its own: compute ours, unshared.
		h.m.executions.Inc()
		b, _ := compute()
		return b
	}
	e := &result{key: key, made: now, done: make(chan struct{}), kept: true}
	if old := r.entries[key]; old != nil {
		old.kept = false // past its time: replaced
		r.bytes -= old.size()
	}
	r.entries[key] = e
	r.fifo = append(r.fifo, e)
	r.evictLocked(now)
	r.mu.Unlock()

	h.m.executions.Inc()
	var b []byte
	ok := false
	defer func() { // also when compute panics: nobody waits forever
		r.mu.Lock()
		e.b, e.ok = b, ok
		switch {
		case e.kept && ok:
			r.bytes += len(b)
			r.evictLocked(r.now())
		case e.kept:
			e.kept = false
			delete(r.entries, key)
		}
		r.mu.Unlock()
		close(e.done)
	}()
	b, ok = compute()
	return b
}

// SharedForm returns the result b of key another subscriber made, if it is still kept and was
// shareable (waiting for it while it is being made), and form(b); false otherwise: then nothing
// is computed or kept, and the caller makes the result itself (through Result, which keeps it
// for the others). form is called once per kept result, by the first to ask, and what it made
// is handed to every caller after it (and kept, and counted, with the result). So form must make the same bytes
// of b for every caller of key: a function of the operation, which key names (the framing of
// the operation's result, say). The returned bytes may be shared: read only.
func (h *Hub) SharedForm(key ResultKey, form func(b []byte) []byte) (b, formed []byte, ok bool) {
	e := h.shared(key)
	if e == nil {
		return nil, nil, false
	}
	e.formOnce.Do(func() {
		f := form(e.b)
		r := h.results
		r.mu.Lock()
		e.formed = f
		if e.kept {
			e.formBytes = len(f)
			r.bytes += len(f)
			r.evictLocked(r.now())
		}
		r.mu.Unlock()
	})
	return e.b, e.formed, true
}

// shared returns the kept, shareable result of key, waiting for it while it is being made;
// nil when there is none.
func (h *Hub) shared(key ResultKey) *result {
	if v := reflect.ValueOf(key.Event); v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	r := h.results
	now := r.now()
	r.mu.Lock()
	e := r.entries[key]
	r.mu.Unlock()
	if e == nil || now.Sub(e.made) >= resultTTL {
		return nil
	}
	<-e.done
	if !e.ok {
		return nil
	}
	h.m.sharedResults.Inc()
	return e
}

// evictLocked drops the results past their time, then the oldest while there are too many or
// they are too large. A result dropped while it is being made is still handed to those
// waiting for it. r.mu is held.
func (r *results) evictLocked(now time.Time) {
	for r.head < len(r.fifo) {
		e := r.fifo[r.head]
		if e.kept && now.Sub(e.made) < resultTTL && len(r.entries) <= resultMaxEntries && r.bytes <= resultMaxBytes {
			break
		}
		r.fifo[r.head] = nil
		r.head++
		if e.kept {
			e.kept = false
			r.bytes -= e.size()
			delete(r.entries, e.key)
		}
	}
	if r.head > 64 && r.head > len(r.fifo)/2 { // compact, so that the slice does not grow forever
		n := copy(r.fifo, r.fifo[r.head:])
		clear(r.fifo[n:])
		r.fifo, r.head = r.fifo[:n], 0
	}
}
