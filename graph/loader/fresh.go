package loader

import (
	"context"
	"sync"
	"time"

	"github.com/graph-gophers/dataloader/v7"
)

// freshFor is how long a freshCache serves what it holds.
const freshFor = time.Second

// freshCache is a dataloader cache whose entries are served for freshFor only. Within a query it
// is the usual cache (one read per key, and prefetched keys are found); within a subscription,
// whose loaders live as long as it does, a value that changes by the second (presence, typing)
// is read again for each event rather than kept for the life of the subscription.
type freshCache[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]freshEntry[V]
}

type freshEntry[V any] struct {
	thunk dataloader.Thunk[V]
	at    time.Time
}

func newFreshCache[K comparable, V any]() *freshCache[K, V] {
	return &freshCache[K, V]{m: map[K]freshEntry[V]{}}
}

var _ dataloader.Cache[int64, bool] = (*freshCache[int64, bool])(nil)

func (c *freshCache[K, V]) Get(_ context.Context, k K) (dataloader.Thunk[V], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false
	}
	if time.Since(e.at) > freshFor {
		delete(c.m, k)
		return nil, false
	}
	return e.thunk, true
}

func (c *freshCache[K, V]) Set(_ context.Context, k K, thunk dataloader.Thunk[V]) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= 1024 { // a long subscription: forget what has gone stale
		for key, e := range c.m {
			if now.Sub(e.at) > freshFor {
				delete(c.m, key)
			}
		}
	}
	c.m[k] = freshEntry[V]{thunk: thunk, at: now}
}

func (c *freshCache[K, V]) Delete(_ context.Context, k K) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.m[k]
	delete(c.m, k)
	return ok
}

func (c *freshCache[K, V]) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.m)
}
