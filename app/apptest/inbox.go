package apptest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// inbox holds what a connection's background reader has received (WS messages, SSE events):
// in, in arrival order, and done, closed once the reader has stopped. The reader sends to in
// before it closes done, so once done is closed whatever in still holds came before the end:
// every read below drains in before it reports the end.
type inbox[T any] struct {
	in   chan T
	done chan struct{}
}

func newInbox[T any]() inbox[T] {
	return inbox[T]{in: make(chan T, 100000), done: make(chan struct{})}
}

// read returns the next item, or end() once the reader has stopped and nothing is left, or
// ctx's error.
func (b inbox[T]) read(ctx context.Context, end func() error) (T, error) {
	var zero T
	select {
	case v := <-b.in:
		return v, nil
	default:
	}
	select {
	case v := <-b.in:
		return v, nil
	case <-b.done:
		select {
		case v := <-b.in:
			return v, nil
		default:
			return zero, end()
		}
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// tryNext returns an item already received, if there is one.
func (b inbox[T]) tryNext() (T, bool) {
	select {
	case v := <-b.in:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// waitEnd waits until the reader has stopped, failing the test after timeout with "what is
// still open".
func (b inbox[T]) waitEnd(t testing.TB, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(timeout):
		t.Fatalf("%s is still open after %s", what, timeout)
	}
}

// collectAdded reads messageAdded results with next until it has n, or until one has body
// until (when not ""); ended names the end of the connection in the error. It may run off the
// test's goroutine.
func collectAdded(n int, timeout time.Duration, until, ended string, next func(context.Context) (LiveMessage, error)) ([]LiveMessage, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := make([]LiveMessage, 0, n)
	for len(out) < n {
		added, err := next(ctx)
		var decode decodeError
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return out, fmt.Errorf("timed out after %d of %d messages", len(out), n)
		case errors.As(err, &decode):
			return out, fmt.Errorf("after %d of %d messages: %w", len(out), n, decode.err)
		case err != nil:
			return out, fmt.Errorf("%s after %d of %d messages: %v", ended, len(out), n, err)
		}
		out = append(out, added)
		if until != "" && added.Body == until {
			break
		}
	}
	return out, nil
}

// decodeError is a read that arrived but is not the messageAdded result collectAdded wants.
type decodeError struct{ err error }

func (e decodeError) Error() string { return e.err.Error() }
