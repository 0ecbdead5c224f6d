package chat

import "context"

// A WAL position is a place in PostgreSQL's write-ahead log (an LSN), in bytes from its start:
// what a streaming replica must have replayed to show a write. Positions only grow.
//
// A write records, in its Change, a position at or past its commit record (Change.Position);
// the history cache keeps it with the conversation's generation token; a read that may be
// served by a replica carries in its context the position the replica must have reached
// (WithReadPosition), and the store sends it to the primary when the replica is behind it, or
// when no position was given.

type positionKey struct{}

// WithReadPosition returns ctx carrying pos: a read under it may be served by a replica that
// has replayed the write-ahead log up to pos, and by the primary otherwise. A read without a
// position is served by the primary.
func WithReadPosition(ctx context.Context, pos uint64) context.Context {
	return context.WithValue(ctx, positionKey{}, pos)
}

// ReadPosition returns the position ctx carries (WithReadPosition), if any.
func ReadPosition(ctx context.Context) (pos uint64, ok bool) {
	pos, ok = ctx.Value(positionKey{}).(uint64)
	return pos, ok
}
