package postgres

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ServerUser is the OS user the cluster runs as when Lark runs as root.
const ServerUser = "postgres"

// osUser is who runs the Postgres programs; cred is nil when that is the
// current user (no switch needed).
type osUser struct {
	name     string
	uid, gid int
	home     string
	cred     *syscall.Credential
}

// serverUser picks the user Postgres runs as: the current user, unless that
// is root, which Postgres refuses; then the postgres user.
func serverUser() (osUser, error) {
	if os.Geteuid() != 0 {
		u := osUser{uid: os.Geteuid(), gid: os.Getegid(), home: os.Getenv("HOME")}
		if cu, err := user.Current(); err == nil {
			u.name = cu.Username
		}
		return u, nil
	}
	pu, err := user.Lookup(ServerUser)
	if err != nil {
		return osUser{}, fmt.Errorf("postgres refuses to run as root and there is no %q user to run it as (install postgresql, or useradd --system %s): %w", ServerUser, ServerUser, err)
	}
	uid, err := strconv.Atoi(pu.Uid)
	if err != nil {
		return osUser{}, fmt.Errorf("uid of %q: %w", ServerUser, err)
	}
	gid, err := strconv.Atoi(pu.Gid)
	if err != nil {
		return osUser{}, fmt.Errorf("gid of %q: %w", ServerUser, err)
	}
	return osUser{
		name: pu.Username, uid: uid, gid: gid, home: pu.HomeDir,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}},
	}, nil
}

// checkTraversable makes sure u can reach dir: every existing ancestor must
// grant u search (x) permission. A 0700 home or go test's t.TempDir() parent
// does not; rather than loosen permissions it does not own, it names the
// directory and the fix.
func checkTraversable(u osUser, dir string) error {
	if u.cred == nil {
		return nil // we are that user: we created or can reach dir ourselves
	}
	var blocked []string
	for p := filepath.Dir(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil && !canSearch(u, fi) {
			blocked = append(blocked, p)
		}
		if p == filepath.Dir(p) {
			break
		}
	}
	if len(blocked) > 0 {
		return fmt.Errorf("postgres runs as user %q, which cannot traverse %s (needed to reach %s): run `chmod o+x %s` or choose a data directory elsewhere (e.g. under /var/lib or /srv)",
			u.name, strings.Join(blocked, ", "), dir, strings.Join(blocked, " "))
	}
	return nil
}

func canSearch(u osUser, fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	m := fi.Mode().Perm()
	switch {
	case int(st.Uid) == u.uid:
		return m&0o100 != 0
	case int(st.Gid) == u.gid:
		return m&0o010 != 0
	default:
		return m&0o001 != 0
	}
}

// prepareDir creates dir and hands it to u.
func prepareDir(u osUser, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create cluster directory: %w", err)
	}
	if u.cred == nil {
		return nil
	}
	if err := chownIfNeeded(u, dir); err != nil {
		return err
	}
	// A data directory copied in by root (a restore, say) must belong to u
	// as a whole, or the server cannot open its files.
	data := filepath.Join(dir, "data")
	fi, err := os.Stat(data)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat data directory: %w", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != u.uid {
		return filepath.WalkDir(data, func(p string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := os.Lchown(p, u.uid, u.gid); err != nil {
				return fmt.Errorf("hand data directory to %s: %w", u.name, err)
			}
			return nil
		})
	}
	return nil
}

func chownIfNeeded(u osUser, p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("stat %s: %w", p, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == u.uid && int(st.Gid) == u.gid {
		return nil
	}
	if err := os.Chown(p, u.uid, u.gid); err != nil {
		return fmt.Errorf("hand %s to user %s: %w", p, u.name, err)
	}
	return nil
}
