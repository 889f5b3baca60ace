package pgtest

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

// tools every cluster needs, found in one directory.
var tools = []string{"initdb", "pg_ctl", "postgres", "pg_basebackup"}

// searchGlob is where Debian installs the server binaries (a variable so a
// test can point it at an empty place).
var searchGlob = "/usr/lib/postgresql/*/bin"

// errNoBinaries says what to install.
var errNoBinaries = errors.New("PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) not found in PATH or /usr/lib/postgresql/*/bin: install the Debian package postgresql")

// findBinDir returns the directory holding the server tools: the one of
// initdb in PATH, else the newest /usr/lib/postgresql/<version>/bin.
func findBinDir(override string) (string, error) {
	if override != "" {
		if hasTools(override) {
			return override, nil
		}
		return "", fmt.Errorf("BinDir %s lacks one of %s: %w", override, strings.Join(tools, ", "), errNoBinaries)
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if dir := filepath.Dir(p); hasTools(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob(searchGlob)
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if hasTools(d) {
			return d, nil
		}
	}
	return "", errNoBinaries
}

func hasTools(dir string) bool {
	for _, t := range tools {
		if fi, err := os.Stat(filepath.Join(dir, t)); err != nil || fi.IsDir() {
			return false
		}
	}
	return true
}

// version reads the major version from /usr/lib/postgresql/<v>/bin.
func version(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}
