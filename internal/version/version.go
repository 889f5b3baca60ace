// Package version holds the build's version, set by the linker, and what
// the Go toolchain stamped into the binary (commit, Go version).
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set with -ldflags "-X .../internal/version.Version=...".
var Version = "dev"

// Info is the version of this binary, for `stillpoint version -o json`.
type Info struct {
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from ("" when the
	// build did not record it, e.g. in tests).
	Commit string `json:"commit,omitempty"`
	// Modified: the work tree had uncommitted changes.
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get reads the version and the build information.
func Get() Info {
	i := Info{Version: Version, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				i.Commit = s.Value
			case "vcs.modified":
				i.Modified = s.Value == "true"
			}
		}
	}
	return i
}

// String is the one-line form: "dev (commit 1a2b3c4d5e6f, go1.26.0 linux/amd64)".
func (i Info) String() string {
	s := i.Version + " ("
	if i.Commit != "" {
		c := i.Commit
		if len(c) > 12 {
			c = c[:12]
		}
		if i.Modified {
			c += "-dirty"
		}
		s += "commit " + c + ", "
	}
	return s + fmt.Sprintf("%s %s)", i.GoVersion, i.Platform)
}
