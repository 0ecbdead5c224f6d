package db

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StatementObserver is told of every statement the pool runs: its sqlc query name (or "other"),
// how long it took, and its error.
type StatementObserver func(ctx context.Context, name string, took time.Duration, err error)

// Tracer is a pgx.QueryTracer and pgx.BatchTracer that reports statements to an observer
// (metrics, and the tests that count statements). A batch's statements are reported one by one,
// each with the time from when pgx began reading its result.
type Tracer struct {
	Observe StatementObserver
}

var (
	_ pgx.QueryTracer = (*Tracer)(nil)
	_ pgx.BatchTracer = (*Tracer)(nil)
)

type traceKey struct{}

type traceStart struct {
	name  string
	start time.Time
}

func (t *Tracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, traceKey{}, traceStart{name: StatementName(data.SQL), start: time.Now()})
}

func (t *Tracer) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	s, ok := ctx.Value(traceKey{}).(traceStart)
	if !ok {
		return
	}
	t.Observe(ctx, s.name, time.Since(s.start), data.Err)
}

func (t *Tracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}

func (t *Tracer) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchQueryData) {
	var took time.Duration
	if !data.ReadStartTime.IsZero() {
		took = time.Since(data.ReadStartTime)
	}
	t.Observe(ctx, StatementName(data.SQL), took, data.Err)
}

func (t *Tracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}

// StatementName returns the sqlc query name that a statement starts with ("-- name: X :kind"),
// "begin", "commit" or "rollback" for transaction control, and "other" for anything else.
func StatementName(sql string) string {
	if rest, ok := strings.CutPrefix(sql, "-- name: "); ok {
		if name, _, ok := strings.Cut(rest, " "); ok {
			return name
		}
	}
	switch s := strings.ToLower(strings.TrimSpace(sql)); {
	case strings.HasPrefix(s, "begin"):
		return "begin"
	case strings.HasPrefix(s, "commit"):
		return "commit"
	case strings.HasPrefix(s, "rollback"):
		return "rollback"
	}
	return "other"
}
