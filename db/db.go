// Package db is the PostgreSQL adapter: it opens the pgx pool that goes through PgBouncer, runs
// migrations over the direct URL, and implements chat.Store with the sqlc-generated queries in
// package dbsqlc (whose SQL lives in db/query/*.sql), and two statements written by hand, over
// functions sqlc cannot describe (pages.go, send.go).
//
// PgBouncer runs in transaction pooling mode and, at version 1.18, does not support
// protocol-level prepared statements. The pool therefore uses pgx's QueryExecModeExec unless the
// URL names another default_query_exec_mode: each statement is sent with the extended protocol's
// unnamed statement, so nothing outlives a transaction on a server connection. No session state
// is used on pooled connections (no SET without LOCAL, no LISTEN, no session advisory locks).
//
// PostgreSQL therefore plans every statement on every call. The page of history, the statement
// most requests that miss the caches send, and a send, the costliest statement to plan, call
// PL/pgSQL functions instead (migrations/00005_conversation_pages.sql and pages.go,
// migrations/00006_message_send.sql and send.go), whose plans PostgreSQL keeps per server
// connection: a plan is not session state a client can see, so a function behaves the same
// whichever server connection PgBouncer lends, and it is planned once per server connection
// rather than once per call.
//
// A Store may also have a streaming replica (NewStoreWithReplica), which serves the reads that
// may lag, and only once it has replayed the writes they must see: see replica.go.
package db

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig tunes the pgx pool. Zero values keep pgx's defaults.
type PoolConfig struct {
	MaxConns          int32
	MinConns          int32
	MaxConnLifetime   time.Duration
	MaxConnIdleTime   time.Duration
	HealthCheckPeriod time.Duration
	ConnectTimeout    time.Duration
	// Tracer sees every statement (metrics, statement counting in tests). May be nil.
	Tracer pgx.QueryTracer
	// ShouldPing decides whether an acquired connection is pinged first; nil keeps pgx's
	// default (ping one that was idle for over a second).
	ShouldPing func(context.Context, pgxpool.ShouldPingParams) bool
	// DialFunc opens the network connections; nil keeps pgx's dialer (tests count round trips
	// with it).
	DialFunc pgconn.DialFunc
}

// OpenPool opens a pool over url (normally PgBouncer) without waiting for a connection.
func OpenPool(ctx context.Context, url string, pc PoolConfig) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can quote the URL, password included: keep them out of logs.
		return nil, errors.New("db: invalid database URL")
	}
	if !strings.Contains(url, "default_query_exec_mode") {
		cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeExec
	}
	setPositive(&cfg.MaxConns, pc.MaxConns)
	setPositive(&cfg.MinConns, pc.MinConns)
	setPositive(&cfg.MaxConnLifetime, pc.MaxConnLifetime)
	setPositive(&cfg.MaxConnIdleTime, pc.MaxConnIdleTime)
	setPositive(&cfg.HealthCheckPeriod, pc.HealthCheckPeriod)
	setPositive(&cfg.ConnConfig.ConnectTimeout, pc.ConnectTimeout)
	cfg.ConnConfig.Tracer = pc.Tracer
	if pc.ShouldPing != nil {
		cfg.ShouldPing = pc.ShouldPing
	}
	if pc.DialFunc != nil {
		cfg.ConnConfig.DialFunc = pc.DialFunc
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

// setPositive sets *setting to v when v is positive: PoolConfig's zero values keep pgx's
// defaults.
func setPositive[T int32 | time.Duration](setting *T, v T) {
	if v > 0 {
		*setting = v
	}
}
