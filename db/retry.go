package db

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/threadline/threadline/internal/apperr"
)

// readBackoff is how long readRetrier waits before each new attempt: about a third of a
// second in all, which covers a PgBouncer restart (0.1-0.4 s measured), during which new
// connections are refused.
var readBackoff = []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 250 * time.Millisecond}

// readRetrier is the DBTX of the Store's statements outside transactions, which are all reads
// (every write goes through inTx, whose statements it never sees). A read that failed because
// its pooled connection was broken (PgBouncer or PostgreSQL restarted since the pool last used
// it: pgx pings only connections idle for over a second) is sent again, on another connection:
// it changed nothing, and the pool has already dropped the broken one. Attempts are spaced out
// (readBackoff) so that a restart in progress can finish. Errors PostgreSQL reported about the
// statement itself, and a done context, end it at once. Measured in
// TestFaultPgBouncerRestart: the reads caught by a PgBouncer restart no longer fail; only writes
// caught in it do (a write's outcome is unknown, so the client retries it with its
// clientMessageId).
type readRetrier struct{ *pgxpool.Pool }

func (r readRetrier) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := r.Pool.Query(ctx, sql, args...)
	for _, wait := range readBackoff {
		if err == nil || !connectionLost(err) {
			break
		}
		select {
		case <-ctx.Done():
			return rows, err
		case <-time.After(wait):
		}
		rows, err = r.Pool.Query(ctx, sql, args...)
	}
	return rows, err
}

// Unavailable maps an error of the database path that means "no connection to be had in time"
// to the public SERVICE_UNAVAILABLE: PgBouncer's query_wait_timeout (a client waited in its
// queue for a server connection longer than that) and its pool-full refusals, and the request's
// deadline passing while it waited. It returns nil for every other error.
func Unavailable(err error) *apperr.Error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (strings.Contains(pgErr.Message, "query_wait_timeout") ||
		strings.Contains(pgErr.Message, "no more connections allowed")):
		return errNoConnection
	case errors.Is(err, context.DeadlineExceeded):
		return errNoTime
	}
	return nil
}

var (
	errNoConnection = apperr.New(apperr.ServiceUnavailable, "no database connection became free in time: retry shortly")
	errNoTime       = apperr.New(apperr.ServiceUnavailable, "the request ran out of time: retry shortly")
)

// connectionLost reports whether err means the statement's connection failed rather than the
// statement: a network or protocol error, or PostgreSQL/PgBouncer's connection-exception
// (class 08) and shutdown (57P01..57P03) codes.
func connectionLost(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return len(pgErr.Code) == 5 && (pgErr.Code[:2] == "08" || pgErr.Code == "57P01" || pgErr.Code == "57P02" || pgErr.Code == "57P03")
	}
	return true
}
