package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/threadline/threadline/migrations"
)

// Migrate applies every pending migration over directURL, which must reach PostgreSQL directly
// (not PgBouncer): goose takes a session-level advisory lock while it works.
func Migrate(ctx context.Context, directURL string) error {
	cfg, err := pgxConnConfig(directURL)
	if err != nil {
		return err
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS)
	if err != nil {
		return fmt.Errorf("db: migrations: %w", err)
	}
	if _, err := provider.Up(ctx); err != nil {
		return fmt.Errorf("db: migrate: %w", err)
	}
	return nil
}

// MigrationVersion returns the schema version applied to the database at directURL.
func MigrationVersion(ctx context.Context, directURL string) (int64, error) {
	cfg, err := pgxConnConfig(directURL)
	if err != nil {
		return 0, err
	}
	sqlDB := stdlib.OpenDB(*cfg)
	defer sqlDB.Close()
	return currentVersion(ctx, sqlDB)
}

func currentVersion(ctx context.Context, sqlDB *sql.DB) (int64, error) {
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, migrations.FS)
	if err != nil {
		return 0, err
	}
	return provider.GetDBVersion(ctx)
}

func pgxConnConfig(url string) (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, errors.New("db: invalid direct database URL")
	}
	return cfg, nil
}
