package admission

import "time"

// waiter is a request waiting for a slot. The Limiter's mutex guards every field but ready,
// which is closed (once, under the mutex) when the slot is granted.
type waiter struct {
	ready      chan struct{}
	granted    bool
	enqueued   time.Time
	prev, next *waiter
}

// waitQueue is a doubly linked list of waiters, oldest at the front, so that a waiter that gives
// up leaves from wherever it is in O(1). It serves the oldest waiter first (FIFO) until it
// overflows, then the newest (LIFO) until it is empty again; the package doc argues why.
type waitQueue struct {
	front, back *waiter
	len         int
	lifo        bool
}

func (q *waitQueue) push(w *waiter) {
	w.prev, w.next = q.back, nil
	if q.back != nil {
		q.back.next = w
	} else {
		q.front = w
	}
	q.back = w
	q.len++
}

// remove takes w out of the queue; w must be in it.
func (q *waitQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.front = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.back = w.prev
	}
	w.prev, w.next = nil, nil
	q.len--
	if q.len == 0 {
		q.lifo = false
	}
}

// pop takes the next waiter to serve, or nil.
func (q *waitQueue) pop() *waiter {
	w := q.front
	if q.lifo {
		w = q.back
	}
	if w != nil {
		q.remove(w)
	}
	return w
}

// overflowed records that a waiter was refused (the queue was full, or a waiter waited its
// longest): serve the newest waiters until the queue drains.
func (q *waitQueue) overflowed() {
	if q.len > 0 {
		q.lifo = true
	}
}
