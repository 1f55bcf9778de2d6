package pgtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/postgres"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// leakHelperEnv makes TestLeakHelper run: it starts the shared cluster,
// prints its directory and waits to be killed.
const leakHelperEnv = "LARK_PGTEST_LEAK_HELPER"

func TestLeakHelper(t *testing.T) {
	if os.Getenv(leakHelperEnv) == "" {
		t.Skip("helper process for TestKilledTestBinary")
	}
	pgtest.NewDatabase(t)
	fmt.Println("dir", filepath.Dir(pgtest.Cluster(t).Dir()))
	select {}
}

// startLeakHelper runs TestLeakHelper in a child test binary and returns it
// with the scratch directory of its cluster.
func startLeakHelper(t *testing.T) (*exec.Cmd, string) {
	t.Helper()
	if os.Getenv(pgtest.URLEnv) != "" {
		t.Skipf("%s is set: no private cluster to leak", pgtest.URLEnv)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLeakHelper$", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), leakHelperEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if d, ok := strings.CutPrefix(sc.Text(), "dir "); ok {
				lines <- d
			}
		}
		close(lines)
	}()
	select {
	case d, ok := <-lines:
		if !ok {
			t.Fatal("helper exited without starting a cluster")
		}
		return cmd, d
	case <-time.After(time.Minute):
		t.Fatal("helper did not start a cluster")
	}
	return nil, ""
}

func serverRunsIn(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cluster", "data", "postmaster.pid"))
	if err != nil {
		return false
	}
	pid, _ := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	return pid > 0 && syscall.Kill(pid, 0) == nil && !isZombie(pid)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i > 0 && i+2 < len(b) && b[i+2] == 'Z'
}

func TestInterruptedTestBinaryCleansUp(t *testing.T) {
	t.Parallel()
	cmd, dir := startLeakHelper(t)
	if !serverRunsIn(dir) {
		t.Fatalf("no server running in %s", dir)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if serverRunsIn(dir) {
		t.Error("server still running after SIGINT")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there after SIGINT (stat: %v)", dir, err)
	}
}

func TestKilledTestBinaryIsReapedLater(t *testing.T) {
	t.Parallel()
	cmd, dir := startLeakHelper(t)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if !serverRunsIn(dir) {
		t.Fatalf("the killed binary's server is gone already; nothing to reap in %s", dir)
	}
	pgtest.NewCluster(t) // making a scratch directory reaps leaked ones
	if serverRunsIn(dir) {
		t.Error("leaked server still running")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still there (stat: %v)", dir, err)
	}
}

func TestNewPoolIsMigrated(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewPool(t)
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("got %d applied migrations, want > 0", n)
	}
	var checkpoints bool
	if err := pool.QueryRow(context.Background(), "SELECT to_regclass('projection_checkpoints') IS NOT NULL").Scan(&checkpoints); err != nil || !checkpoints {
		t.Fatalf("projection_checkpoints missing (err %v)", err)
	}
}

func TestNewEmptyDatabaseIsEmpty(t *testing.T) {
	t.Parallel()
	conn, err := pgx.Connect(context.Background(), pgtest.NewEmptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("got %d tables, want 0", n)
	}
}

func TestDatabasesAreIsolatedAndDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var names []string
	t.Run("a", func(t *testing.T) {
		a, b := pgtest.NewPool(t), pgtest.NewPool(t)
		if _, err := a.Exec(ctx, "CREATE TABLE only_in_a (v text); INSERT INTO projection_checkpoints VALUES ('p', 1, 1)"); err != nil {
			t.Fatal(err)
		}
		var inB bool
		if err := b.QueryRow(ctx, "SELECT to_regclass('only_in_a') IS NOT NULL").Scan(&inB); err != nil {
			t.Fatal(err)
		}
		var rowsInB int
		if err := b.QueryRow(ctx, "SELECT count(*) FROM projection_checkpoints").Scan(&rowsInB); err != nil {
			t.Fatal(err)
		}
		if inB || rowsInB != 0 {
			t.Fatalf("database b sees a's table (%t) or rows (%d)", inB, rowsInB)
		}
		names = append(names, a.Config().ConnConfig.Database, b.Config().ConnConfig.Database)
		if names[0] == names[1] {
			t.Fatalf("both pools on database %s", names[0])
		}
	})
	// The subtest's cleanup dropped both databases.
	conn, err := pgx.Connect(ctx, pgtest.AdminURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var left int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if len(names) != 2 || left != 0 {
		t.Fatalf("databases %v: %d left after cleanup, want 0", names, left)
	}
}

func TestManyParallelDatabases(t *testing.T) {
	t.Parallel()
	const n = 16
	begin := time.Now()
	for i := range n {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			pool := pgtest.NewPool(t)
			if _, err := pool.Exec(context.Background(), "INSERT INTO projection_checkpoints VALUES ($1, $2, $2)", "p", i); err != nil {
				t.Fatal(err)
			}
			var got int
			if err := pool.QueryRow(context.Background(), "SELECT sum(commit_position)::int FROM projection_checkpoints").Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != i {
				t.Fatalf("got %d, want %d: another test's rows are visible", got, i)
			}
		})
	}
	t.Cleanup(func() { t.Logf("%d parallel databases: %s", n, time.Since(begin)) })
}

func TestLongTestNamesGiveValidDatabaseNames(t *testing.T) {
	t.Parallel()
	t.Run(strings.Repeat("Very Long/Sub-test Name ", 10), func(t *testing.T) {
		pool := pgtest.NewPool(t)
		name := pool.Config().ConnConfig.Database
		if len(name) > 63 || strings.ContainsAny(name, " /-") {
			t.Fatalf("database name %q: want ≤ 63 bytes of [a-z0-9_]", name)
		}
	})
}

func TestClusterIsShared(t *testing.T) {
	t.Parallel()
	c := pgtest.Cluster(t)
	if err := c.EnsureDatabase(context.Background(), "extra_for_"+fmt.Sprint(os.Getpid())); err != nil {
		t.Fatal(err)
	}
	if got, want := c.URL("postgres"), pgtest.AdminURL(t); got != want {
		t.Errorf("Cluster URL %q, AdminURL %q: want the same server", got, want)
	}
}

// A test's own cluster can be stopped and started again on the same port,
// and a pool opened before reconnects.
func TestNewClusterStopRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := pgtest.NewCluster(t)
	pool, err := postgres.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err == nil {
		t.Fatal("ping succeeded with the server stopped")
	}
	c2, err := postgres.StartClusterWith(ctx, c.Dir(), postgres.Options{Settings: pgtest.FastSettings()})
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Stop(ctx)
	if c2.Port() != c.Port() {
		t.Fatalf("restarted on port %d, want %d", c2.Port(), c.Port())
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("pool did not reconnect: %v", err)
	}
}

func TestDatabaseURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		base, want string
	}{
		{"postgres://u:p@h:5432/postgres?sslmode=disable", "postgres://u:p@h:5432/x?sslmode=disable"},
		{"postgresql://h/", "postgresql://h/x"},
		{"postgres://h", "postgres://h/x"},
		{"host=h user=u dbname=postgres", "host=h user=u dbname=postgres dbname=x"},
	}
	for _, tt := range tests {
		got, err := pgtest.DatabaseURL(tt.base, "x")
		if err != nil {
			t.Fatalf("DatabaseURL(%q): %v", tt.base, err)
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("DatabaseURL(%q) (-want +got):\n%s", tt.base, diff)
		}
	}
	// The key=value form really selects the later dbname.
	cfg, err := pgx.ParseConfig("host=h user=u dbname=postgres dbname=x")
	if err != nil || cfg.Database != "x" {
		t.Errorf("pgx reads the DSN's database as %q (err %v), want x", cfg.Database, err)
	}
}

// BenchmarkNewDatabase measures creating a test database from the template
// (the drops run at cleanup, untimed).
func BenchmarkNewDatabase(b *testing.B) {
	pgtest.NewDatabase(b) // start the cluster and migrate the template untimed
	b.ResetTimer()
	for b.Loop() {
		pgtest.NewDatabase(b)
	}
}
