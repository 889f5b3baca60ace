package apitest

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/stillpoint-dev/stillpoint"

// repoRoot walks up from the test's directory to the go.mod of this module.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module "+module+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no go.mod of module %s above the test's directory", module)
		}
		dir = parent
	}
}

// bufBin is the buf `make tools` installs (.bin/buf), else one on PATH. A
// missing buf skips the test, except under CI=true where it fails.
func bufBin(t *testing.T, root string) string {
	t.Helper()
	p := filepath.Join(root, ".bin", "buf")
	if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return p
	}
	if p, err := exec.LookPath("buf"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("buf not found at %s or on PATH (CI=true: buf is required; run `make tools`)", p)
	}
	t.Skipf("buf not found at %s or on PATH: run `make tools` (under CI=true this fails)", p)
	return ""
}

// runBuf runs buf in dir and returns its combined output and exit code.
func runBuf(t *testing.T, buf, dir string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(buf, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	default:
		t.Fatalf("buf %s: %v\n%s", strings.Join(args, " "), err, out)
		return "", -1
	}
}

// copyProtos copies every .proto file under src to the same relative path
// under dst.
func copyProtos(t *testing.T, src, dst string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".proto" {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		n++
		return copyFile(p, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no .proto files under %s", src)
	}
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

// deleteField removes the declaration line of field decl (e.g.
// "string request_id = 4;") from message msg in the file at path, and fails
// the test when the message or the field is not there: the test must not pass
// because it edited nothing.
func deleteField(t *testing.T, path, msg, decl string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	in := false
	for i, l := range lines {
		switch {
		case strings.HasPrefix(l, "message "+msg+" {"):
			in = true
		case in && l == "}":
			t.Fatalf("%s: message %s has no field %q", path, msg, decl)
		case in && strings.TrimSpace(l) == decl:
			lines = append(lines[:i], lines[i+1:]...)
			if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatalf("%s: no message %s", path, msg)
}
