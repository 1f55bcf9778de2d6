package postgres_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/larkhq/lark/adapters/postgres"
	"github.com/larkhq/lark/adapters/postgres/pgtest"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperProcess())
	}
	os.Exit(pgtest.Main(m))
}

// clusterDir returns a directory for a cluster that the postgres user can
// reach (t.TempDir's parent is 0700), removed at cleanup.
func clusterDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "lark-pg-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	return filepath.Join(d, "cluster")
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// start starts a cluster in dir and makes sure it is stopped at cleanup,
// whatever the test did.
func start(t *testing.T, dir string) *postgres.Cluster {
	t.Helper()
	return startWith(t, dir, pgtest.FastSettings())
}

func startWith(t *testing.T, dir string, settings map[string]string) *postgres.Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := postgres.StartClusterWith(ctx, dir, postgres.Options{Logger: testLogger(t), Settings: settings})
	if err != nil {
		t.Fatalf("StartCluster: %v", err)
	}
	t.Cleanup(func() { stopHard(t, c.Dir()) })
	return c
}

// stopHard stops whatever server runs in dir, bypassing Cluster.Stop's
// bookkeeping, so a failing test leaves nothing running.
func stopHard(t *testing.T, dir string) {
	bin, err := postgres.FindBinDir()
	if err != nil {
		return
	}
	data := filepath.Join(dir, "data")
	if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err != nil {
		return
	}
	cmd := exec.Command("runuser", "-u", postgres.ServerUser, "--", filepath.Join(bin, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w", "-s")
	if os.Geteuid() != 0 {
		cmd = exec.Command(filepath.Join(bin, "pg_ctl"), "stop", "-D", data, "-m", "immediate", "-w", "-s")
	}
	_ = cmd.Run()
}

func query(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var s string
	err = conn.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

func mustQuery(t *testing.T, url, sql string) string {
	t.Helper()
	s, err := query(t, url, sql)
	if err != nil {
		t.Fatalf("%s on %s: %v", sql, url, err)
	}
	return s
}

func exec1(t *testing.T, url, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func pidOf(t *testing.T, dir string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("read postmaster.pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestClusterStartReuseStop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t)
	c1 := start(t, dir)
	if !c1.Started() {
		t.Fatal("first StartCluster did not start the server")
	}
	if got, want := c1.URL("x"), fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable", c1.Port()); got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	if got := mustQuery(t, c1.URL("postgres"), "SHOW fsync"); got != "off" {
		t.Errorf("fsync = %s, want off (from Options.Settings)", got)
	}
	for range 2 { // idempotent
		if err := c1.EnsureDatabase(ctx, "app db"); err != nil {
			t.Fatalf("EnsureDatabase: %v", err)
		}
	}
	exec1(t, c1.URL("app%20db"), "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('still here')")

	c2 := start(t, dir)
	if c2.Started() {
		t.Error("second StartCluster started a server; want reuse")
	}
	if c2.Port() != c1.Port() {
		t.Errorf("reused port %d, want %d", c2.Port(), c1.Port())
	}
	if err := c2.Stop(ctx); err != nil {
		t.Fatalf("c2.Stop: %v", err)
	}
	// c1 still uses it: c2's Stop must leave it running.
	mustQuery(t, c1.URL("postgres"), "SELECT 'alive'")

	if err := c1.Stop(ctx); err != nil {
		t.Fatalf("c1.Stop: %v", err)
	}
	if err := c1.Stop(ctx); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := query(t, c1.URL("postgres"), "SELECT 'alive'"); err == nil {
		t.Fatal("server still answers after the last Stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("postmaster.pid after Stop: %v, want not exist", err)
	}

	// Start again: same data, same port (recorded in dir).
	c3 := start(t, dir)
	if !c3.Started() {
		t.Error("StartCluster after Stop did not start the server")
	}
	if c3.Port() != c1.Port() {
		t.Errorf("restart port %d, want the previous %d", c3.Port(), c1.Port())
	}
	if got := mustQuery(t, c3.URL("app%20db"), "SELECT v FROM kept"); got != "still here" {
		t.Errorf("after restart got %q, want %q", got, "still here")
	}
	if err := c3.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClusterRestartsAfterKill9(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t)
	c := startWith(t, dir, nil) // durable defaults: the row must survive
	exec1(t, c.URL("postgres"), "CREATE TABLE survives (v text); INSERT INTO survives VALUES ('yes')")
	// Keep a backend connected so a child outlives the postmaster for a
	// moment, as in a real crash under load.
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	pid := pidOf(t, dir)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 %d: %v", pid, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "postmaster.pid")); err != nil {
		t.Fatalf("postmaster.pid should be left behind by kill -9: %v", err)
	}

	c2 := startWith(t, dir, nil)
	if !c2.Started() {
		t.Fatal("StartCluster after kill -9 reused a dead server")
	}
	if got := mustQuery(t, c2.URL("postgres"), "SELECT v FROM survives"); got != "yes" {
		t.Errorf("after crash got %q, want %q", got, "yes")
	}
	if pidOf(t, dir) == pid {
		t.Error("postmaster.pid still names the killed server")
	}
	if err := c2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// A stale postmaster.pid whose pid now belongs to another live process (pid
// reuse after a crash, common in containers) makes Postgres itself refuse to
// start; StartCluster must see that the process is not the server.
func TestClusterStalePidOfAnotherProcess(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t)
	c := start(t, dir)
	if err := c.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("%d\n%s\n1700000000\n%d\n\n127.0.0.1\n  1234567  7\nready   \n", os.Getpid(), filepath.Join(dir, "data"), c.Port())
	if err := os.WriteFile(filepath.Join(dir, "data", "postmaster.pid"), []byte(stale), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := start(t, dir)
	if !c2.Started() {
		t.Fatal("want a fresh start over the stale pid file")
	}
	mustQuery(t, c2.URL("postgres"), "SELECT 'ok'")
	if err := c2.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestClusterConcurrentStartSameDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := clusterDir(t)
	const n = 4
	var (
		wg       sync.WaitGroup
		clusters [n]*postgres.Cluster
		errs     [n]error
	)
	for i := range n {
		wg.Go(func() {
			clusters[i], errs[i] = postgres.StartCluster(ctx, dir, nil)
		})
	}
	wg.Wait()
	t.Cleanup(func() { stopHard(t, dir) })
	started := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("StartCluster #%d: %v", i, errs[i])
		}
		if clusters[i].Started() {
			started++
		}
		if clusters[i].Port() != clusters[0].Port() {
			t.Errorf("cluster #%d on port %d, #0 on %d", i, clusters[i].Port(), clusters[0].Port())
		}
	}
	if started != 1 {
		t.Fatalf("%d StartCluster calls started a server, want exactly 1", started)
	}
	// Stop in any order; the server goes down with the last user only.
	for i, c := range clusters {
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := query(t, clusters[0].URL("postgres"), "SELECT 'alive'")
		if last := i == n-1; (err == nil) == last {
			t.Fatalf("after %d of %d Stops: query error %v", i+1, n, err)
		}
	}
}

// helperEnv makes the test binary act as a separate process that starts a
// cluster, reports it, and stops it when its stdin closes.
const helperEnv = "LARK_PGTEST_HELPER_DIR"

func helperProcess() int {
	ctx := context.Background()
	c, err := postgres.StartCluster(ctx, os.Getenv(helperEnv), nil)
	if err != nil {
		fmt.Printf("error %v\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
	fmt.Printf("ok %d %t\n", c.Port(), c.Started())
	_, _ = io.Copy(io.Discard, os.Stdin)
	if err := c.Stop(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func TestClusterTwoProcessesStartSameDir(t *testing.T) {
	t.Parallel()
	dir := clusterDir(t)
	t.Cleanup(func() { stopHard(t, dir) })
	type proc struct {
		cmd   *exec.Cmd
		stdin io.WriteCloser
		line  chan string
	}
	procs := make([]*proc, 2)
	for i := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+dir)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd: cmd, stdin: stdin, line: make(chan string, 1)}
		procs[i] = p
		t.Cleanup(func() { stdin.Close(); _ = cmd.Wait() })
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			p.line <- strings.TrimSpace(line)
			_, _ = io.Copy(io.Discard, stdout)
		}()
	}
	var (
		port  [2]string
		lines [2]string
	)
	started := 0
	for i, p := range procs {
		select {
		case lines[i] = <-p.line:
		case <-time.After(time.Minute):
			t.Fatal("helper processes did not report")
		}
		f := strings.Fields(lines[i])
		if len(f) != 3 || f[0] != "ok" {
			t.Fatalf("process %d: %s", i, lines[i])
		}
		port[i] = f[1]
		if f[2] == "true" {
			started++
		}
	}
	if started != 1 || port[0] != port[1] {
		t.Fatalf("processes report %q and %q; want one start, one reuse, same port", lines[0], lines[1])
	}
	url := "postgres://postgres@127.0.0.1:" + port[0] + "/postgres?sslmode=disable"
	mustQuery(t, url, "SELECT 'ok'")
	for _, p := range procs {
		p.stdin.Close()
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("helper: %v", err)
		}
	}
	if _, err := query(t, url, "SELECT 'alive'"); err == nil {
		t.Fatal("server still running after both processes stopped")
	}
}

func TestClusterErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("missing binaries", func(t *testing.T) {
		_, err := postgres.StartClusterWith(ctx, clusterDir(t), postgres.Options{BinDir: t.TempDir()})
		if !errors.Is(err, postgres.ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install postgresql") {
			t.Fatalf("got %v, want ErrNoBinaries naming apt-get install postgresql", err)
		}
	})

	t.Run("untraversable parent", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root hands the cluster to another user")
		}
		parent := t.TempDir() // go test makes its parent 0700
		if err := os.Chmod(parent, 0o700); err != nil {
			t.Fatal(err)
		}
		_, err := postgres.StartCluster(ctx, filepath.Join(parent, "c"), nil)
		if err == nil || !strings.Contains(err.Error(), "cannot traverse") || !strings.Contains(err.Error(), "chmod o+x "+parent) {
			t.Fatalf("got %v, want an error naming %s and the chmod fix", err, parent)
		}
	})

	t.Run("data dir is something else", func(t *testing.T) {
		dir := clusterDir(t)
		if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "data", "precious.txt"), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := postgres.StartCluster(ctx, dir, nil)
		if err == nil || !strings.Contains(err.Error(), "not a Postgres data directory") {
			t.Fatalf("got %v, want a refusal to initdb over other files", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "data", "precious.txt")); err != nil {
			t.Fatalf("the foreign file is gone: %v", err)
		}
	})

	t.Run("initdb fails", func(t *testing.T) {
		// Simulated fault: a real initdb rarely fails on demand, so a
		// stand-in initdb prints a complaint and exits 1; pg_ctl and
		// postgres are the real ones.
		real, err := postgres.FindBinDir()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Dir(clusterDir(t)) // reachable by the postgres user
		for _, b := range []string{"pg_ctl", "postgres"} {
			if err := os.Symlink(filepath.Join(real, b), filepath.Join(bin, b)); err != nil {
				t.Fatal(err)
			}
		}
		script := "#!/bin/sh\necho 'initdb: error: simulated: could not create directory' >&2\nexit 1\n"
		if err := os.WriteFile(filepath.Join(bin, "initdb"), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		_, err = postgres.StartClusterWith(ctx, clusterDir(t), postgres.Options{BinDir: bin})
		if err == nil || !strings.Contains(err.Error(), "initdb") || !strings.Contains(err.Error(), "simulated: could not create directory") {
			t.Fatalf("got %v, want the initdb failure with its output", err)
		}
	})

	t.Run("recorded port taken", func(t *testing.T) {
		dir := clusterDir(t)
		c := start(t, dir)
		old := c.Port()
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", old))
		if err != nil {
			t.Skipf("port %d was taken by someone else meanwhile: %v", old, err)
		}
		defer l.Close()
		c2 := start(t, dir)
		if c2.Port() == old {
			t.Fatalf("started on the taken port %d", old)
		}
		mustQuery(t, c2.URL("postgres"), "SELECT 'ok'")
		if err := c2.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("connect to nothing", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		_, err = postgres.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/x?sslmode=disable&connect_timeout=2", port))
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d/x", port)) {
			t.Fatalf("got %v, want a connect error naming the address", err)
		}
		_, err = postgres.Connect(ctx, "postgres://user:secret@[bad")
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("got %v, want a parse error that hides the password", err)
		}
	})
}

// The same cluster reached through a symlink and through its real path is
// one cluster: the live server must not be mistaken for a stale pid file.
func TestClusterThroughSymlink(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	real := clusterDir(t)
	link := filepath.Join(filepath.Dir(real), "link")
	if err := os.MkdirAll(real, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	c1 := start(t, real)
	c2 := start(t, link)
	if c2.Started() || c2.Port() != c1.Port() {
		t.Fatalf("through the link: started %t on port %d, want reuse of port %d", c2.Started(), c2.Port(), c1.Port())
	}
	for _, c := range []*postgres.Cluster{c2, c1} {
		if err := c.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := query(t, c1.URL("postgres"), "SELECT 'alive'"); err == nil {
		t.Fatal("server still running after both Stops")
	}
}
