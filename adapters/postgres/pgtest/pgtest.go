// Package pgtest gives tests a real Postgres: a private cluster shared by a
// test binary's tests (started on first use in a temporary directory and
// removed when the tests end), or the server named by LARK_TEST_DATABASE_URL.
// Each test gets its own freshly migrated database, cloned from a template
// database migrated once per test binary (about 25 ms each), so tests can
// run in parallel.
//
// Test clusters live in /dev/shm when it is a writable tmpfs (else the
// temporary directory; LARK_TEST_PG_DIR overrides) and run with fsync,
// synchronous_commit and full_page_writes off: a test that needs durability
// across a crash starts its own cluster with postgres.StartCluster.
//
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		pool := pgtest.NewPool(t)
//		...
//	}
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/larkhq/lark/adapters/postgres"
)

// URLEnv names the variable that points the tests at an existing server
// instead of a private cluster. The URL's role must be allowed to create
// databases; its database is used only to create and drop others.
const URLEnv = "LARK_TEST_DATABASE_URL"

// FastSettings returns the settings of test clusters: durability traded for
// speed, which is fine for data thrown away when the tests end (never for
// the cluster `lark serve` runs).
func FastSettings() map[string]string {
	return map[string]string{
		"fsync":              "off",
		"synchronous_commit": "off",
		"full_page_writes":   "off",
		"max_connections":    "300",
		"shared_buffers":     "32MB",
		"log_min_messages":   "warning",
	}
}

// server is what a test binary's tests share. It is package-level state
// because NewDatabase(t) has nowhere else to find it; Main owns its life.
type server struct {
	mu       sync.Mutex
	inMain   bool
	ready    bool
	err      error
	tmpDir   string            // private cluster's temporary directory
	cluster  *postgres.Cluster // nil with URLEnv
	baseURL  string            // URL of the admin database
	admin    *pgxpool.Pool     // on baseURL: creates and drops databases
	template string            // migrated template database
}

var shared server

// scratchDirs are the cluster directories this test binary made, for the
// interrupt handler (which must not wait for server.mu).
type scratchDirs struct {
	mu   sync.Mutex
	dirs map[string]bool
}

var scratch scratchDirs

// make creates a temporary directory for a cluster, traversable by the
// postgres user and marked with this process's pid so that a later test
// binary can tell it was leaked.
func (s *scratchDirs) make(prefix string) (string, error) {
	base := scratchBase()
	reapLeaked(base)
	dir, err := os.MkdirTemp(base, prefix)
	if err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	// MkdirTemp makes 0700 directories; the postgres user must be able
	// to traverse it to reach the cluster inside.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		return "", fmt.Errorf("temporary directory: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirs == nil {
		s.dirs = map[string]bool{}
	}
	s.dirs[dir] = true
	return dir, nil
}

// remove stops the cluster in dir (if still running) and deletes dir.
func (s *scratchDirs) remove(dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := postgres.StopDir(ctx, filepath.Join(dir, "cluster"))
	if rerr := os.RemoveAll(dir); err == nil {
		err = rerr
	}
	s.mu.Lock()
	delete(s.dirs, dir)
	s.mu.Unlock()
	return err
}

func (s *scratchDirs) removeAll() {
	s.mu.Lock()
	dirs := make([]string, 0, len(s.dirs))
	for d := range s.dirs {
		dirs = append(dirs, d)
	}
	s.mu.Unlock()
	for _, d := range dirs {
		_ = s.remove(d)
	}
}

const ownerFile = "owner.pid"

// reapLeaked stops and removes test clusters under base whose test binary
// is gone.
func reapLeaked(base string) {
	dirs, _ := filepath.Glob(filepath.Join(base, "lark-pgtest-*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || processAlive(pid) {
			continue
		}
		_ = scratch.remove(d)
	}
}

func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

// Main runs the package's tests (m.Run) and then stops and removes the
// shared cluster, if a test started it, or drops the template database from
// the external server. It returns the exit code for os.Exit.
//
// Interrupted (SIGINT, SIGTERM), it stops the test clusters at once and
// exits; a test binary killed outright (or by -timeout's panic) leaves its
// cluster behind, and the next test binary that uses pgtest stops and
// removes it.
func Main(m *testing.M) int {
	shared.mu.Lock()
	shared.inMain = true
	shared.mu.Unlock()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			fmt.Fprintln(os.Stderr, "pgtest: interrupted; stopping test clusters")
			scratch.removeAll()
			os.Exit(1)
		}
	}()
	code := m.Run()
	signal.Stop(sigs)
	close(sigs)
	if err := shared.teardown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// get starts the shared server on first use.
func (s *server) get(t testing.TB) *server {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.inMain {
		t.Fatal("pgtest: call os.Exit(pgtest.Main(m)) from the package's TestMain (it stops the shared cluster when the tests end)")
	}
	if !s.ready {
		s.ready = true
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		s.err = s.setup(ctx)
		cancel()
	}
	if s.err != nil {
		t.Fatalf("pgtest: %v", s.err)
	}
	return s
}

func (s *server) setup(ctx context.Context) error {
	if u := os.Getenv(URLEnv); u != "" {
		s.baseURL = u
	} else {
		dir, err := scratch.make("lark-pgtest-")
		if err != nil {
			return err
		}
		s.tmpDir = dir
		c, err := postgres.StartClusterWith(ctx, filepath.Join(dir, "cluster"), postgres.Options{
			Logger:   slog.New(slog.DiscardHandler),
			Settings: FastSettings(),
		})
		if err != nil {
			return fmt.Errorf("start test cluster: %w", err)
		}
		s.cluster = c
		s.baseURL = c.URL("postgres")
	}
	admin, err := postgres.Connect(ctx, s.baseURL)
	if err != nil {
		return fmt.Errorf("test server: %w", err)
	}
	s.admin = admin
	s.template = "lark_tmpl_" + randomHex(6)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(s.template)); err != nil {
		return fmt.Errorf("create template database: %w", err)
	}
	tmplURL, err := DatabaseURL(s.baseURL, s.template)
	if err != nil {
		return err
	}
	pool, err := postgres.Connect(ctx, tmplURL)
	if err != nil {
		return fmt.Errorf("template database: %w", err)
	}
	err = postgres.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate template database: %w", err)
	}
	// Nobody may connect to the template: CREATE DATABASE ... TEMPLATE
	// fails while anyone is.
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+ident(s.template)+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return fmt.Errorf("seal template database: %w", err)
	}
	return nil
}

func (s *server) teardown() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if s.admin != nil {
		if s.cluster == nil && s.template != "" {
			// External server: leave nothing behind. (A private cluster
			// is removed whole below.)
			if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(s.template)+" WITH (FORCE)"); err != nil {
				errs = append(errs, fmt.Errorf("drop template database: %w", err))
			}
		}
		s.admin.Close()
		s.admin = nil
	}
	if s.cluster != nil {
		if err := s.cluster.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop test cluster: %w", err))
		}
		s.cluster = nil
	}
	if s.tmpDir != "" {
		if err := scratch.remove(s.tmpDir); err != nil {
			errs = append(errs, fmt.Errorf("remove test cluster: %w", err))
		}
		s.tmpDir = ""
	}
	s.ready, s.err = false, nil
	return errors.Join(errs...)
}

// NewDatabase creates a fresh, migrated database for t (a copy of the
// template), drops it when t ends, and returns its URL.
func NewDatabase(t testing.TB) string {
	t.Helper()
	s := shared.get(t)
	return s.create(t, s.template)
}

// NewEmptyDatabase creates an empty, unmigrated database for t, dropped
// when t ends, and returns its URL: for tests of migrating itself.
func NewEmptyDatabase(t testing.TB) string {
	t.Helper()
	return shared.get(t).create(t, "")
}

// create makes a database for t from template (template0's copy, empty,
// when template is "") and schedules its drop.
func (s *server) create(t testing.TB, template string) string {
	t.Helper()
	name := databaseName(t.Name())
	sql := "CREATE DATABASE " + ident(name)
	if template != "" {
		sql += " TEMPLATE " + ident(template)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.admin.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a connection the test leaked must not keep it alive.
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	u, err := DatabaseURL(s.baseURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// NewPool is NewDatabase plus postgres.Connect; the pool is closed when t
// ends (before the database is dropped).
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := NewDatabase(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pool, err := postgres.Connect(ctx, u)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Cluster returns the shared test cluster, for tests that create extra
// databases on it. With LARK_TEST_DATABASE_URL set there is none and the
// test is skipped. Do not stop it: the package's other tests use it; a test
// that stops Postgres wants NewCluster.
func Cluster(t testing.TB) *postgres.Cluster {
	t.Helper()
	s := shared.get(t)
	if s.cluster == nil {
		t.Skipf("pgtest: %s is set; there is no private test cluster", URLEnv)
	}
	return s.cluster
}

// AdminURL returns the URL of the shared server's maintenance database (a
// superuser connection on the private cluster), for tests that create or
// drop databases themselves.
func AdminURL(t testing.TB) string {
	t.Helper()
	return shared.get(t).baseURL
}

// NewCluster starts a private cluster of t's own (with FastSettings) in a
// temporary directory, stopped and removed when t ends: for tests that stop,
// kill or restart Postgres. It costs an initdb (about a second).
func NewCluster(t testing.TB) *postgres.Cluster {
	t.Helper()
	dir, err := scratch.make("lark-pgtest-own-")
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		if err := scratch.remove(dir); err != nil {
			t.Errorf("pgtest: remove %s: %v", dir, err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := postgres.StartClusterWith(ctx, filepath.Join(dir, "cluster"), postgres.Options{
		Logger:   slog.New(slog.DiscardHandler),
		Settings: FastSettings(),
	})
	if err != nil {
		t.Fatalf("pgtest: start cluster: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("pgtest: stop cluster: %v", err)
		}
	})
	return c
}

// DirEnv names the variable that chooses where test clusters live.
const DirEnv = "LARK_TEST_PG_DIR"

// scratchBase is where test clusters go: $LARK_TEST_PG_DIR, else /dev/shm
// when it is a writable tmpfs with room (CREATE DATABASE there is about 5x
// faster than on ext4 even with fsync off: 25 ms against 220 ms measured),
// else the system's temporary directory.
func scratchBase() string {
	if d := os.Getenv(DirEnv); d != "" {
		return d
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs("/dev/shm", &st); err == nil && uint64(st.Bavail)*uint64(st.Bsize) >= 1<<30 {
		if f, err := os.CreateTemp("/dev/shm", "lark-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}

// DatabaseURL returns base (a postgres:// URL or a key=value DSN) with its
// database replaced by name.
func DatabaseURL(base, name string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parse %s: %w", URLEnv, err)
		}
		u.Path = "/" + name
		u.RawPath = ""
		return u.String(), nil
	}
	// key=value: a later key wins.
	return base + " dbname=" + name, nil
}

// databaseName makes a unique, recognisable database name from a test name.
func databaseName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	b.WriteString("_")
	b.WriteString(randomHex(5))
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
