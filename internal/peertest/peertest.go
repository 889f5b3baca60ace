// Package peertest finds the real peers that tests start beside our code:
// programs from Debian's packages (chronyd, promtool, prometheus,
// alertmanager, ...). Outside CI a machine without one skips the test that
// needs it; under CI=true a missing one fails it, because .ci/run installs
// every such package. Only tests import this package.
package peertest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// sbinDirs are searched after PATH: a root shell's PATH may lack them, and
// Debian puts daemons there.
var sbinDirs = []string{"/usr/sbin", "/sbin"}

// Binary returns the path of name, shipped by the Debian package pkg.
func Binary(t testing.TB, name, pkg string) string {
	t.Helper()
	if p, err := lookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found under CI=true (Debian package %s, installed by .ci/run)", name, pkg)
	}
	t.Skipf("%s not found (apt-get install %s)", name, pkg)
	return ""
}

func lookPath(name string) (string, error) {
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range sbinDirs {
		c := filepath.Join(dir, name)
		if st, serr := os.Stat(c); serr == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return c, nil
		}
	}
	return "", err
}
