// Package db is the PostgreSQL adapter: it opens the pgx pool that goes through PgBouncer, runs
// migrations over the direct URL, and implements chat.Store with the sqlc-generated queries in
// package dbsqlc (whose SQL lives in db/query/*.sql).
//
// PgBouncer runs in transaction pooling mode and, at version 1.18, does not support
// protocol-level prepared statements. The pool therefore uses pgx's QueryExecModeExec unless the
// URL names another default_query_exec_mode: each statement is sent with the extended protocol's
// unnamed statement, so nothing outlives a transaction on a server connection. No session state
// is used on pooled connections (no SET without LOCAL, no LISTEN, no session advisory locks).
//
// One statement is sent in QueryExecModeCacheDescribe instead, whatever the default: the page of
// history (ConversationPagesForMember, pages.go), the statement most requests that miss the
// caches send, whose 50 rows then come back in binary, with no text formatting of numbers and
// timestamps in PostgreSQL and no parsing here (measured: about a quarter less client CPU per
// page). The mode is safe through PgBouncer in transaction mode because it, too, uses only the
// unnamed statement, and each of its round trips ends with Sync, so PgBouncer may give each to
// a different server connection: the first time a pooled connection sends the statement, pgx
// asks for its description (Parse of the unnamed statement, Describe, Sync) and keeps the
// result types it is told; every execution then sends Parse, Bind, Describe, Execute and Sync
// together, so the statement is parsed afresh on whichever server connection runs it and
// nothing is left there (the next Parse replaces the unnamed statement). The kept description
// is only the result's column types, the same on every server connection of the database; it
// could go stale only if a migration changed the types of the function's columns while servers
// ran, and such a change is made as a new function under another name.
//
// That statement calls a PL/pgSQL function (migrations/00005_conversation_pages.sql), whose
// plan PostgreSQL keeps per server connection: plans are not session state a client can see, so
// the function behaves the same whichever connection PgBouncer lends.
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
	return pgxpool.NewWithConfig(ctx, cfg)
}

// setPositive sets *setting to v when v is positive: PoolConfig's zero values keep pgx's
// defaults.
func setPositive[T int32 | time.Duration](setting *T, v T) {
	if v > 0 {
		*setting = v
	}
}
