package admission

import (
	"container/list"
	"time"
)

// waiter is a request waiting for a slot. The Limiter's mutex guards every field but ready,
// which is closed (once, under the mutex) when the slot is granted.
type waiter struct {
	ready    chan struct{}
	granted  bool
	enqueued time.Time
	elem     *list.Element // in waitQueue.list while the waiter waits
}

// waitQueue is a doubly linked list of waiters, oldest at the front, so that a waiter that gives
// up leaves from wherever it is in O(1). It serves the oldest waiter first (FIFO) until it
// overflows, then the newest (LIFO) until it is empty again; the package doc argues why.
type waitQueue struct {
	list list.List // of *waiter
	len  int
	lifo bool
}

func (q *waitQueue) push(w *waiter) {
	w.elem = q.list.PushBack(w)
	q.len++
}

// remove takes w out of the queue; w must be in it.
func (q *waitQueue) remove(w *waiter) {
	q.list.Remove(w.elem)
	w.elem = nil
	q.len--
	if q.len == 0 {
		q.lifo = false
	}
}

// pop takes the next waiter to serve, or nil.
func (q *waitQueue) pop() *waiter {
	e := q.list.Front()
	if q.lifo {
		e = q.list.Back()
	}
	if e == nil {
		return nil
	}
	w := e.Value.(*waiter)
	q.remove(w)
	return w
}

// overflowed records that a waiter was refused (the queue was full, or a waiter waited its
// longest): serve the newest waiters until the queue drains.
func (q *waitQueue) overflowed() {
	if q.len > 0 {
		q.lifo = true
	}
}
