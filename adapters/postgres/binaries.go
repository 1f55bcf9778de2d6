package postgres

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoBinaries is returned when no Postgres server binaries are installed.
var ErrNoBinaries = errors.New("postgres server binaries (initdb, pg_ctl, postgres) not found; install postgresql: apt-get install postgresql")

// serverBinaries are the programs the private cluster needs.
var serverBinaries = []string{"initdb", "pg_ctl", "postgres"}

// FindBinDir returns the directory holding initdb, pg_ctl and postgres:
// `pg_config --bindir` when it names a directory with the server installed,
// else the newest /usr/lib/postgresql/*/bin, else the directory initdb on
// PATH resolves to.
func FindBinDir() (string, error) {
	var looked []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		looked = append(looked, d)
		if hasServerBinaries(d) {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		looked = append(looked, d)
		if hasServerBinaries(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			d := filepath.Dir(r)
			looked = append(looked, d)
			if hasServerBinaries(d) {
				return d, nil
			}
		}
	}
	if len(looked) == 0 {
		return "", ErrNoBinaries
	}
	return "", fmt.Errorf("looked in %s: %w", strings.Join(looked, ", "), ErrNoBinaries)
}

func hasServerBinaries(dir string) bool {
	for _, b := range serverBinaries {
		fi, err := os.Stat(filepath.Join(dir, b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return false
		}
	}
	return true
}

// pgVersion extracts the major version from /usr/lib/postgresql/NN/bin.
func pgVersion(binDir string) float64 {
	v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	if err != nil {
		return -1
	}
	return v
}
