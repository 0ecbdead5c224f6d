// Package migrations holds the database schema as numbered SQL files, embedded in the binary.
//
// Files are named NNNNN_description.sql (zero-padded so that they sort) and written for
// pressly/goose. They are applied over DATABASE_DIRECT_URL, straight to PostgreSQL, never through
// PgBouncer: DDL and goose's advisory lock need a session. sqlc reads the same folder as its
// schema, so the generated queries always match what the migrations build.
package migrations

import "embed"

// FS holds every migration file.
//
//go:embed *.sql
var FS embed.FS
