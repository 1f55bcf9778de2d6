package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"
)

// Superuser is the role the private cluster is initialised with.
const Superuser = "postgres"

// Options tune StartClusterWith. The zero value is the durable default used
// by `lark serve`.
type Options struct {
	// Logger receives start, reuse and stop events; nil discards them.
	Logger *slog.Logger
	// BinDir holds initdb, pg_ctl and postgres; empty means FindBinDir.
	BinDir string
	// Settings are extra postgresql.conf parameters applied on every start
	// by this process (e.g. fsync=off for throwaway test clusters). A
	// cluster that is reused keeps the settings it was started with.
	Settings map[string]string
	// StartTimeout bounds pg_ctl start and stop; zero means 60 s.
	StartTimeout time.Duration
}

// Cluster is a private Postgres cluster made from the system's binaries
// under a directory. It is safe for concurrent use.
type Cluster struct {
	dir, dataDir string
	port         int
	binDir       string
	user         osUser
	logger       *slog.Logger
	timeout      time.Duration
	started      bool     // this Cluster ran pg_ctl start
	larkStarted  bool     // some Lark process ran pg_ctl start for the running server
	users        *os.File // shared flock on dir/users.lock while in use; nil after Stop
}

// StartCluster initdb's dir on first use, starts the cluster on a free
// loopback port, or reuses it if it is already running from the same dir,
// and returns once it accepts connections. See StartClusterWith.
func StartCluster(ctx context.Context, dir string, logger *slog.Logger) (*Cluster, error) {
	return StartClusterWith(ctx, dir, Options{Logger: logger})
}

// StartClusterWith is StartCluster with options.
//
// When running as root, Postgres runs as the postgres OS user: dir is handed
// to it and every parent of dir must be traversable by it (the error says
// which is not). A stale postmaster.pid left by a crash is recognised and
// removed, lingering children of the dead server are waited for. Processes
// starting the same dir at once serialise on an flock in dir: one starts the
// server, the others reuse it.
func StartClusterWith(ctx context.Context, dir string, opts Options) (*Cluster, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("cluster directory %q: %w", dir, err)
	}
	if parent, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(parent, filepath.Base(abs))
	}
	binDir := opts.BinDir
	if binDir == "" {
		if binDir, err = FindBinDir(); err != nil {
			return nil, err
		}
	} else if !hasServerBinaries(binDir) {
		return nil, fmt.Errorf("%s lacks initdb, pg_ctl or postgres: %w", binDir, ErrNoBinaries)
	}
	u, err := serverUser()
	if err != nil {
		return nil, err
	}
	if err := checkTraversable(u, abs); err != nil {
		return nil, err
	}
	if err := prepareDir(u, abs); err != nil {
		return nil, err
	}
	c := &Cluster{
		dir: abs, dataDir: filepath.Join(abs, "data"), binDir: binDir, user: u,
		logger: logger.With("cluster", abs), timeout: opts.StartTimeout,
	}
	if c.timeout <= 0 {
		c.timeout = 60 * time.Second
	}

	// start.lock is held exclusively while starting or stopping;
	// users.lock is held shared by every Cluster in use, so Stop can tell
	// whether it is the last user.
	startLock, err := lockFile(ctx, filepath.Join(abs, "start.lock"), syscall.LOCK_EX)
	if err != nil {
		return nil, fmt.Errorf("lock cluster %s: %w", abs, err)
	}
	defer startLock.Close() // releases the flock
	if err := c.startLocked(ctx, opts.Settings); err != nil {
		return nil, err
	}
	// No one holds users.lock exclusively without start.lock, which we hold.
	users, err := lockFile(ctx, filepath.Join(abs, "users.lock"), syscall.LOCK_SH)
	if err != nil {
		return nil, fmt.Errorf("lock cluster %s: %w", abs, err)
	}
	c.users = users
	return c, nil
}

// lockFile opens (creating) path and flocks it with how.
func lockFile(ctx context.Context, path string, how int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := flock(ctx, f, how); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// flock takes how (LOCK_EX or LOCK_SH) on f, polling so ctx can cancel.
func flock(ctx context.Context, f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// startLocked runs with the exclusive lock held.
func (c *Cluster) startLocked(ctx context.Context, settings map[string]string) error {
	if err := c.initdbIfNeeded(ctx); err != nil {
		return err
	}
	// Reuse a running server, wait out one that is starting or stopping,
	// clean up after one that crashed.
	deadline := time.Now().Add(c.timeout)
	for {
		pf, ok, err := readPidFile(c.dataDir)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		if !postmasterAlive(pf.pid, c.dataDir) {
			c.logger.Warn("postgres: removing stale postmaster.pid left by a crash", "pid", pf.pid)
			if err := waitOrphans(ctx, c.dataDir, 5*time.Second); err != nil {
				return err
			}
			if err := os.Remove(filepath.Join(c.dataDir, "postmaster.pid")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("remove stale postmaster.pid: %w", err)
			}
			// The socket and its lock file name the dead pid as well.
			stale, _ := filepath.Glob(filepath.Join(c.dir, ".s.PGSQL.*"))
			for _, f := range stale {
				if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("remove stale socket: %w", err)
				}
			}
			break
		}
		if pf.status == "ready" && pf.port > 0 {
			c.port = pf.port
			if err := c.ping(ctx); err == nil {
				c.larkStarted = readStarter(c.dir) == pf.pid
				c.logger.Info("postgres: reusing running cluster", "port", c.port, "pid", pf.pid)
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres (pid %d) in %s is running but not accepting connections (status %q) after %s; see %s",
				pf.pid, c.dataDir, pf.status, c.timeout, c.logPath())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return c.start(ctx, settings)
}

func (c *Cluster) logPath() string { return filepath.Join(c.dir, "postgres.log") }

// command builds an exec.Cmd running a Postgres program as the server user.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	// The server runs in its own session (pg_ctl calls setsid); Setpgid
	// keeps a terminal's Ctrl-C from reaching pg_ctl/initdb mid-way too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.user.cred}
	env := []string{"LC_ALL=C", "LANG=C"}
	for _, kv := range os.Environ() {
		// PG* variables (PGDATA, PGPORT, ...) would steer the tools away
		// from what the arguments say; LC_*/LANG are fixed above.
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		env = append(env, kv)
	}
	if c.user.home != "" {
		env = append(env, "HOME="+c.user.home)
	}
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// initdbIfNeeded creates the data directory. initdb writes into a scratch
// directory renamed into place at the end, so a crash mid-way never leaves a
// half-made cluster that looks real.
func (c *Cluster) initdbIfNeeded(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(c.dataDir, "PG_VERSION")); err == nil {
		return nil
	}
	if _, err := os.Stat(c.dataDir); err == nil {
		if ents, _ := os.ReadDir(c.dataDir); len(ents) > 0 {
			return fmt.Errorf("%s exists but is not a Postgres data directory (no PG_VERSION); move it away", c.dataDir)
		}
		if err := os.Remove(c.dataDir); err != nil {
			return fmt.Errorf("remove empty data directory: %w", err)
		}
	}
	scratch := filepath.Join(c.dir, "data.initdb")
	if err := os.RemoveAll(scratch); err != nil {
		return fmt.Errorf("remove leftover %s: %w", scratch, err)
	}
	c.logger.Info("postgres: initialising cluster", "bindir", c.binDir, "user", c.user.name)
	begin := time.Now()
	cmd := c.command(ctx, "initdb",
		"-D", scratch,
		"-U", Superuser,
		"--auth=trust", // listens on 127.0.0.1 and a socket in dir only; see package doc
		"--encoding=UTF8",
		"--locale=C",
		"--no-sync", // made durable by syncTree below
		"--no-instructions",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(scratch)
		return fmt.Errorf("initdb %s failed: %w\n%s", scratch, err, strings.TrimSpace(string(out)))
	}
	conf, err := os.OpenFile(filepath.Join(scratch, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("open postgresql.conf: %w", err)
	}
	_, err = io.WriteString(conf, "\n# Lark: settings rewritten on every start.\ninclude_if_exists = 'lark.conf'\n")
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write postgresql.conf: %w", err)
	}
	if err := syncTree(scratch); err != nil {
		return err
	}
	if err := os.Rename(scratch, c.dataDir); err != nil {
		return fmt.Errorf("move initialised cluster into place: %w", err)
	}
	if err := syncDir(c.dir); err != nil {
		return err
	}
	c.logger.Info("postgres: cluster initialised", "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// start runs pg_ctl start, retrying on another port if the chosen one was
// taken between choosing and binding.
func (c *Cluster) start(ctx context.Context, settings map[string]string) error {
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := c.choosePort(attempt == 0)
		if err != nil {
			return err
		}
		err = c.startOn(ctx, port, settings)
		if err == nil {
			return nil
		}
		lastErr = err
		if !errors.Is(err, errPortInUse) {
			return err
		}
		c.logger.Warn("postgres: port taken, trying another", "port", port)
	}
	return lastErr
}

var errPortInUse = errors.New("port in use")

// choosePort prefers the port of the previous start (stable for people
// pointing psql at it), else any free loopback port.
func (c *Cluster) choosePort(preferPrevious bool) (int, error) {
	if preferPrevious {
		if b, err := os.ReadFile(filepath.Join(c.dir, "port")); err == nil {
			if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && p > 0 && portFree(p) {
				return p, nil
			}
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// maxSocketPath is the longest Unix socket path the kernel accepts (108
// bytes including the terminating NUL).
const maxSocketPath = 107

func (c *Cluster) startOn(ctx context.Context, port int, settings map[string]string) error {
	socketDir := c.dir
	if len(filepath.Join(socketDir, ".s.PGSQL."+strconv.Itoa(port)+".lock")) > maxSocketPath {
		socketDir = "" // TCP only; the path would be too long for a socket
	}
	conf := map[string]string{
		"port":                    strconv.Itoa(port),
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": socketDir,
		"unix_socket_permissions": "0700",
	}
	for k, v := range settings {
		conf[k] = v
	}
	keys := make([]string, 0, len(conf))
	for k := range conf {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by Lark on every start of this cluster; edits are lost.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(conf[k], "'", "''"))
	}
	if err := writeFileAs(c.user, filepath.Join(c.dataDir, "lark.conf"), []byte(b.String())); err != nil {
		return err
	}

	logOffset := int64(0)
	if fi, err := os.Stat(c.logPath()); err == nil {
		logOffset = fi.Size()
	}
	begin := time.Now()
	cmd := c.command(ctx, "pg_ctl", "start",
		"-D", c.dataDir,
		"-l", c.logPath(),
		"-w", "-t", strconv.Itoa(int(c.timeout.Seconds())),
		"-s",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := readFrom(c.logPath(), logOffset)
		if strings.Contains(tail, "Address already in use") {
			return fmt.Errorf("postgres could not listen on 127.0.0.1:%d: %w", port, errPortInUse)
		}
		return fmt.Errorf("pg_ctl start (%s) failed: %w\n%s\nserver log %s:\n%s",
			c.dataDir, err, strings.TrimSpace(string(out)), c.logPath(), tail)
	}
	c.port = port
	c.started = true
	if err := c.ping(ctx); err != nil {
		return fmt.Errorf("postgres started on port %d but does not answer: %w", port, err)
	}
	_ = os.WriteFile(filepath.Join(c.dir, "port"), []byte(strconv.Itoa(port)+"\n"), 0o600)
	pf, _, _ := readPidFile(c.dataDir)
	c.larkStarted = true
	_ = os.WriteFile(filepath.Join(c.dir, starterFile), []byte(strconv.Itoa(pf.pid)+"\n"), 0o600)
	c.logger.Info("postgres: cluster started", "port", port, "pid", pf.pid, "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// ping connects to the postgres database and checks that the server there
// serves this cluster's data directory (not some other server that took the
// recorded port).
func (c *Cluster) ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var dd string
	if err := conn.QueryRow(ctx, "SELECT current_setting('data_directory')").Scan(&dd); err != nil {
		return err
	}
	if realPath(dd) != realPath(c.dataDir) {
		return fmt.Errorf("port %d serves %s, not %s", c.port, dd, c.dataDir)
	}
	return nil
}

// URL returns the connection URL of database on this cluster.
func (c *Cluster) URL(database string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, c.port, database)
}

// Port is the TCP port the cluster listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the cluster's directory.
func (c *Cluster) Dir() string { return c.dir }

// Started reports whether this Cluster started the server (rather than
// reusing one that was already running).
func (c *Cluster) Started() bool { return c.started }

// EnsureDatabase creates database name if it does not exist. Concurrent
// calls for the same name are safe.
func (c *Cluster) EnsureDatabase(ctx context.Context, name string) error {
	return EnsureDatabase(ctx, c.URL("postgres"), name)
}

// EnsureDatabase creates database name on the server at adminURL (any
// database of that server, reached as a role allowed to create databases)
// if it does not exist.
func EnsureDatabase(ctx context.Context, adminURL, name string) error {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return fmt.Errorf("connect to create database %q: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	// Lost a race with another creator: 42P04 duplicate_database, or
	// 23505 on pg_database's unique index when both got past the check.
	if errors.As(err, &pgErr) && (pgErr.Code == "42P04" || pgErr.Code == "23505") {
		return nil
	}
	if err != nil {
		return fmt.Errorf("create database %q: %w", name, err)
	}
	return nil
}

// Stop shuts the server down (pg_ctl stop -m fast) when Lark started it and
// no other process still uses it; otherwise it only lets go of the cluster.
// "Lark started it" means this Cluster did, or another Lark process did and
// this one reused it after that process went away (so a cluster whose owner
// crashed is still stopped by the next user, while a server someone started
// by hand is never stopped). Calling Stop again does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	if c.users == nil {
		return nil
	}
	defer func() {
		c.users.Close()
		c.users = nil
	}()
	// Under start.lock, so nobody starts to reuse the server while we
	// decide to stop it.
	startLock, err := lockFile(ctx, filepath.Join(c.dir, "start.lock"), syscall.LOCK_EX)
	if err != nil {
		return fmt.Errorf("lock cluster %s: %w", c.dir, err)
	}
	defer startLock.Close()
	// Exclusive on users.lock means nobody else holds it shared: we are
	// the last user.
	if err := syscall.Flock(int(c.users.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		c.logger.Info("postgres: leaving cluster running for the other processes using it")
		return nil
	}
	if !c.larkStarted {
		c.logger.Info("postgres: leaving running the server Lark did not start")
		return nil
	}
	return c.stopServer(ctx)
}

// StopDir stops the server running from cluster directory dir, whoever
// started it, with pg_ctl stop -m immediate (no shutdown checkpoint; crash
// recovery on the next start): for cleaning up after a process that died
// without calling Stop. It does nothing when no server runs there.
func StopDir(ctx context.Context, dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	c := &Cluster{dir: abs, dataDir: filepath.Join(abs, "data"), timeout: 60 * time.Second, logger: slog.New(slog.DiscardHandler)}
	if pf, ok, err := readPidFile(c.dataDir); err != nil || !ok || !postmasterAlive(pf.pid, c.dataDir) {
		return err
	}
	if c.binDir, err = FindBinDir(); err != nil {
		return err
	}
	if c.user, err = serverUser(); err != nil {
		return err
	}
	return c.stopServerMode(ctx, "immediate")
}

func (c *Cluster) stopServer(ctx context.Context) error { return c.stopServerMode(ctx, "fast") }

func (c *Cluster) stopServerMode(ctx context.Context, mode string) error {
	begin := time.Now()
	out, err := c.command(ctx, "pg_ctl", "stop", "-D", c.dataDir, "-m", mode, "-w",
		"-t", strconv.Itoa(int(c.timeout.Seconds())), "-s").CombinedOutput()
	if err != nil {
		if pf, ok, _ := readPidFile(c.dataDir); !ok || !postmasterAlive(pf.pid, c.dataDir) {
			return nil // already down (killed, or stopped by someone else)
		}
		return fmt.Errorf("pg_ctl stop (%s) failed: %w\n%s", c.dataDir, err, strings.TrimSpace(string(out)))
	}
	c.logger.Info("postgres: cluster stopped", "took", time.Since(begin).Round(time.Millisecond))
	return nil
}

// starterFile records the pid of the postmaster Lark last started in dir.
const starterFile = "lark-started.pid"

func readStarter(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, starterFile))
	if err != nil {
		return -1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return pid
}

func readFrom(path string, off int64) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	b, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return strings.TrimSpace(string(b))
}

// writeFileAs writes a file the server user owns.
func writeFileAs(u osUser, path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if u.cred != nil {
		if err := os.Chown(tmp, u.uid, u.gid); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// syncTree makes everything under root durable. initdb ran with --no-sync
// because its per-file fsyncs cost more than initdb itself here; one
// syncfs(2) of the filesystem does the same in a few milliseconds.
func syncTree(root string) error {
	f, err := os.Open(root)
	if err != nil {
		return fmt.Errorf("sync %s: %w", root, err)
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("sync %s: %w", root, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
