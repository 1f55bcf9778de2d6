package postgres

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/larkhq/lark/ops/migrations"
)

// migrateLockKey is the advisory lock that serialises migrations across
// processes ("lark.mig" in ASCII).
const migrateLockKey int64 = 0x6c61726b2e6d6967

// Migrate applies Lark's migrations (ops/migrations) that the database has
// not seen yet. See MigrateFS.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	_, err := MigrateFS(ctx, pool, migrations.FS)
	return err
}

// MigrateFS applies the *.sql files at the root of fsys in name order, each
// in its own transaction together with the row that records its name in
// schema_migrations, and returns the names it applied. Every transaction
// first takes a transaction-scoped advisory lock, so processes migrating at
// once apply each file exactly once; a failing file is rolled back whole and
// stops the run (earlier files stay applied). A file runs as one
// multi-statement simple-protocol Exec, so it may hold several statements
// but nothing that refuses to run in a transaction (CREATE INDEX
// CONCURRENTLY, VACUUM).
func MigrateFS(ctx context.Context, pool *pgxpool.Pool, fsys fs.FS) ([]string, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	var applied []string
	for _, name := range names {
		body, err := fs.ReadFile(fsys, name)
		if err != nil {
			return applied, fmt.Errorf("read migration %s: %w", name, err)
		}
		ran, err := applyOne(ctx, pool, name, string(body))
		if err != nil {
			return applied, err
		}
		if ran {
			applied = append(applied, name)
		}
	}
	return applied, nil
}

func applyOne(ctx context.Context, pool *pgxpool.Pool, name, body string) (ran bool, err error) {
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
			return fmt.Errorf("take migration lock: %w", err)
		}
		// Under the lock, so concurrent first runs do not race on it.
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			name       text PRIMARY KEY,
			applied_at timestamptz NOT NULL DEFAULT now()
		)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		var done bool
		if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)", name).Scan(&done); err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		if done {
			return nil
		}
		if strings.TrimSpace(body) != "" {
			if _, err := tx.Exec(ctx, body); err != nil {
				return fmt.Errorf("apply migration %s: %w", path.Base(name), err)
			}
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (name) VALUES ($1)", name); err != nil {
			return fmt.Errorf("record migration %s: %w", name, err)
		}
		ran = true
		return nil
	})
	if err != nil {
		return false, err
	}
	return ran, nil
}

// AppliedMigrations lists the names recorded in schema_migrations, in order;
// empty (and no error) when nothing has been migrated yet.
func AppliedMigrations(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var exists bool
	if err := pool.QueryRow(ctx, "SELECT to_regclass('schema_migrations') IS NOT NULL").Scan(&exists); err != nil {
		return nil, fmt.Errorf("look for schema_migrations: %w", err)
	}
	if !exists {
		return nil, nil
	}
	rows, err := pool.Query(ctx, "SELECT name FROM schema_migrations ORDER BY name")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	return names, nil
}
