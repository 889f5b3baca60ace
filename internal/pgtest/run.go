package pgtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
)

// runner runs the server tools, as the postgres user when we are root
// (PostgreSQL refuses to run as root).
type runner struct {
	binDir   string
	asUser   bool // run via runuser -u postgres
	uid, gid int
	workDir  string
}

func newRunner(binDir string) (*runner, error) {
	r := &runner{binDir: binDir, uid: -1, gid: -1}
	if os.Geteuid() != 0 {
		return r, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL needs the postgres user to run as: %w", err)
	}
	if _, err := exec.LookPath("runuser"); err != nil {
		return nil, fmt.Errorf("running as root, need runuser to start PostgreSQL as postgres: %w", err)
	}
	r.asUser = true
	r.uid, _ = strconv.Atoi(u.Uid)
	r.gid, _ = strconv.Atoi(u.Gid)
	return r, nil
}

// command builds a command for a server tool (or any program when tool is
// an absolute path or a plain command like cp).
func (r *runner) command(tool string, args ...string) *exec.Cmd {
	path := tool
	if !filepath.IsAbs(tool) && hasTool(r.binDir, tool) {
		path = filepath.Join(r.binDir, tool)
	}
	var cmd *exec.Cmd
	if r.asUser {
		cmd = exec.Command("runuser", append([]string{"-u", "postgres", "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = r.workDir
	cmd.Env = append(os.Environ(), "LC_ALL=C", "PGTZ=UTC")
	return cmd
}

// run runs a tool and returns an error with its output on failure.
func (r *runner) run(tool string, args ...string) error {
	cmd := r.command(tool, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// mkdir creates dir (mode 0700) owned by the user the server runs as.
func (r *runner) mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return r.own(dir)
}

// own hands path to the postgres user when we are root.
func (r *runner) own(path string) error {
	if !r.asUser {
		return nil
	}
	return os.Chown(path, r.uid, r.gid)
}

func hasTool(dir, tool string) bool {
	fi, err := os.Stat(filepath.Join(dir, tool))
	return err == nil && !fi.IsDir()
}
