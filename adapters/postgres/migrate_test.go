package postgres_test

import (
	"context"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/larkhq/lark/adapters/postgres"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
	"github.com/larkhq/lark/ops/migrations"
)

func emptyPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool, err := postgres.Connect(context.Background(), pgtest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func TestMigrateAppliesEveryFileOnceIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyPool(t)
	want, err := fs.Glob(migrations.FS, "*.sql")
	if err != nil || len(want) == 0 {
		t.Fatalf("no migrations in ops/migrations: %v", err)
	}
	sort.Strings(want)
	for range 2 {
		if err := postgres.Migrate(ctx, pool); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		got, err := postgres.AppliedMigrations(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("applied migrations (-want +got):\n%s", diff)
		}
	}
	// The second run applied nothing.
	again, err := postgres.MigrateFS(ctx, pool, migrations.FS)
	if err != nil || len(again) != 0 {
		t.Fatalf("third run applied %v (err %v), want nothing", again, err)
	}
}

// nonIdempotent fails if any file runs twice (CREATE TABLE without IF NOT
// EXISTS) and, through its order dependence, if files run out of order.
var nonIdempotent = fstest.MapFS{
	"0001_a.sql":     {Data: []byte("CREATE TABLE a (n int); INSERT INTO a VALUES (1);")},
	"0002_b.sql":     {Data: []byte("CREATE TABLE b (n int); INSERT INTO b SELECT n + 1 FROM a;")},
	"0010_c.sql":     {Data: []byte("ALTER TABLE b ADD COLUMN m int; UPDATE b SET m = n * 10;")},
	"README.md":      {Data: []byte("not a migration")},
	"sub/0003_x.sql": {Data: []byte("this is not applied: only the root's files are")},
	"0011_empty.sql": {Data: []byte("  \n-- nothing\n")},
}

func TestMigrateConcurrentProcesses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewEmptyDatabase(t)
	const n = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		applied []string
		errs    []error
	)
	for range n {
		// Each its own pool, as separate processes would have.
		pool, err := postgres.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		wg.Go(func() {
			names, err := postgres.MigrateFS(ctx, pool, nonIdempotent)
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, names...)
			if err != nil {
				errs = append(errs, err)
			}
		})
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("concurrent MigrateFS: %v", errs)
	}
	sort.Strings(applied)
	want := []string{"0001_a.sql", "0002_b.sql", "0010_c.sql", "0011_empty.sql"}
	if diff := cmp.Diff(want, applied); diff != "" {
		t.Errorf("files applied across all runs (-want +got):\n%s", diff)
	}
	got := mustQuery(t, url, "SELECT string_agg(n || ':' || m, ',') FROM b")
	if got != "2:20" {
		t.Errorf("b = %q, want %q (each file once, in order)", got, "2:20")
	}
}

func TestMigrateFailureRollsBackThatFileOnly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := emptyPool(t)
	broken := fstest.MapFS{
		"0001_ok.sql":     {Data: []byte("CREATE TABLE ok (n int);")},
		"0002_broken.sql": {Data: []byte("CREATE TABLE half (n int); SELECT * FROM no_such_table;")},
		"0003_later.sql":  {Data: []byte("CREATE TABLE later (n int);")},
	}
	applied, err := postgres.MigrateFS(ctx, pool, broken)
	if err == nil || !strings.Contains(err.Error(), "0002_broken.sql") || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("got %v, want an error naming the file and the cause", err)
	}
	if diff := cmp.Diff([]string{"0001_ok.sql"}, applied); diff != "" {
		t.Errorf("applied (-want +got):\n%s", diff)
	}
	var tables []string
	rows, err := pool.Query(ctx, "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		tables = append(tables, s)
	}
	if diff := cmp.Diff([]string{"ok", "schema_migrations"}, tables); diff != "" {
		t.Errorf("tables after the failure (-want +got):\n%s", diff)
	}

	// Fixed, the run resumes where it stopped.
	broken["0002_broken.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE half (n int);")}
	applied, err = postgres.MigrateFS(ctx, pool, broken)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"0002_broken.sql", "0003_later.sql"}, applied); diff != "" {
		t.Errorf("applied after the fix (-want +got):\n%s", diff)
	}
}

func TestMigrateCanceled(t *testing.T) {
	t.Parallel()
	pool := emptyPool(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := postgres.Migrate(ctx, pool); err == nil {
		t.Fatal("Migrate with a canceled context succeeded")
	}
	names, err := postgres.AppliedMigrations(context.Background(), pool)
	if err != nil || len(names) != 0 {
		t.Fatalf("after a canceled Migrate: applied %v (err %v), want none", names, err)
	}
}
