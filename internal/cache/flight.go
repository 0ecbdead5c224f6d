package cache

import (
	"context"
	"sync"
	"time"

	"github.com/threadline/threadline/internal/chat"
)

// flightGroup is a singleflight over many keys at once: a caller leads the keys nobody is
// reading yet (and reads them all in one statement) and waits for the others. A finished
// flight lingers for a moment, so that a caller that missed in Redis just before the leader's
// fill landed shares the result instead of reading again. Keys include the generation token, so
// a lingering result is exactly as fresh as the cached page it stands for.
type flightGroup struct {
	linger time.Duration
	mu     sync.Mutex
	m      map[string]*flight
}

type flight struct {
	done chan struct{}
	page chat.Page
	err  error
}

// flightRef is a caller's handle on one key's flight.
type flightRef struct {
	index int // position in the caller's key list
	key   string
	f     *flight
}

// begin returns the flights the caller must lead and those it must wait for.
func (g *flightGroup) begin(keys []string) (led, joined []*flightRef) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	for i, k := range keys {
		if f, ok := g.m[k]; ok {
			joined = append(joined, &flightRef{index: i, key: k, f: f})
			continue
		}
		f := &flight{done: make(chan struct{})}
		g.m[k] = f
		led = append(led, &flightRef{index: i, key: k, f: f})
	}
	return led, joined
}

// finish publishes a led flight's result. A failure is forgotten at once; a success lingers.
func (g *flightGroup) finish(r *flightRef, p chat.Page, err error) {
	r.f.page, r.f.err = p, err
	close(r.f.done)
	forget := func() {
		g.mu.Lock()
		if g.m[r.key] == r.f {
			delete(g.m, r.key)
		}
		g.mu.Unlock()
	}
	if err != nil || g.linger <= 0 {
		forget()
		return
	}
	time.AfterFunc(g.linger, forget)
}

// wait returns a joined flight's result.
func (r *flightRef) wait(ctx context.Context) (chat.Page, error) {
	select {
	case <-r.f.done:
		return r.f.page, r.f.err
	case <-ctx.Done():
		return chat.Page{}, ctx.Err()
	}
}
