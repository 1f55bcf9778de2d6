package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pidFile is what postmaster.pid says about a (possibly dead) server.
type pidFile struct {
	pid    int
	port   int
	status string // "starting", "ready", "stopping", "standby", or "" (old servers)
}

// readPidFile parses dataDir/postmaster.pid; ok is false when there is none.
// The file's lines are: pid, data dir, start time, port, socket dir, listen
// address, shared memory key, status.
func readPidFile(dataDir string) (pf pidFile, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if errors.Is(err, fs.ErrNotExist) {
		return pidFile{}, false, nil
	}
	if err != nil {
		return pidFile{}, false, fmt.Errorf("read postmaster.pid: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 1 {
		return pidFile{}, true, nil
	}
	pf.pid, _ = strconv.Atoi(strings.TrimSpace(lines[0]))
	if len(lines) > 3 {
		pf.port, _ = strconv.Atoi(strings.TrimSpace(lines[3]))
	}
	if len(lines) > 7 {
		pf.status = strings.TrimSpace(lines[7])
	}
	return pf, true, nil
}

// postmasterAlive reports whether pid is a live (not zombie) process whose
// working directory is dataDir: the postmaster chdirs into its data
// directory, so this tells a live server from a stale pid file whose pid the
// kernel has since given to another process, or to a zombie nobody reaps
// (kill(pid, 0) says both are alive, which is why Postgres's own check can
// refuse to start after a crash).
func postmasterAlive(pid int, dataDir string) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if zombie(pid) {
		return false
	}
	cwd, err := os.Readlink(fmt.Sprintf("/proc/%d/cwd", pid))
	if err != nil {
		// Cannot tell (no /proc, or not permitted): a live process with
		// that pid exists, so assume it is the server rather than risk
		// starting a second one on the same files.
		return !errors.Is(err, fs.ErrNotExist)
	}
	return cwd == realPath(dataDir)
}

// realPath resolves symlinks, as /proc/PID/cwd shows the resolved path.
func realPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}

func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...; comm may contain spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] == 'Z' || s[i+2] == 'X'
}

// serverProcesses lists live processes working in dataDir: after the
// postmaster is killed its children linger for a moment and keep the shared
// memory attached, and Postgres refuses to start until they are gone.
func serverProcesses(dataDir string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	dataDir = realPath(dataDir)
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink("/proc/" + e.Name() + "/cwd")
		if err != nil || cwd != dataDir || zombie(pid) {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// waitOrphans waits for the leftover processes of a dead postmaster to exit,
// killing them (SIGKILL) if they are still there after grace.
func waitOrphans(ctx context.Context, dataDir string, grace time.Duration) error {
	deadline := time.Now().Add(grace)
	for {
		pids := serverProcesses(dataDir)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
			deadline = time.Now().Add(grace)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for processes of the crashed server (%v) to exit: %w", pids, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
