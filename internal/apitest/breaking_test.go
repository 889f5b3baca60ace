package apitest

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestBufBreaking runs the repository's buf breaking configuration (buf.yaml,
// the FILE rules `make lint` applies against the last release) over a copy of
// the proto tree: unchanged it passes; with a field deleted from a request
// message it fails, naming the field and the message.
func TestBufBreaking(t *testing.T) {
	root := repoRoot(t)
	buf := bufBin(t, root)
	tmp := t.TempDir()
	for _, tree := range []string{"orig", "same", "removed"} {
		if err := copyFile(filepath.Join(root, "buf.yaml"), filepath.Join(tmp, tree, "buf.yaml")); err != nil {
			t.Fatal(err)
		}
		copyProtos(t, filepath.Join(root, "proto"), filepath.Join(tmp, tree, "proto"))
	}
	deleteField(t, filepath.Join(tmp, "removed", "proto", "stillpoint", "v1", "coordinator.proto"),
		"StartPauseRequest", "string request_id = 4;")

	t.Run("unchanged", func(t *testing.T) {
		if out, code := runBuf(t, buf, tmp, "breaking", "same", "--against", "orig"); code != 0 {
			t.Fatalf("buf breaking on an unchanged tree: exit %d\n%s", code, out)
		}
	})
	t.Run("field removed", func(t *testing.T) {
		out, code := runBuf(t, buf, tmp, "breaking", "removed", "--against", "orig")
		t.Logf("buf breaking (exit %d):\n%s", code, out)
		if code == 0 {
			t.Fatal("buf breaking passed with StartPauseRequest.request_id deleted")
		}
		for _, want := range []string{`"request_id"`, `"StartPauseRequest"`, "coordinator.proto"} {
			if !strings.Contains(out, want) {
				t.Errorf("buf breaking output does not name %s", want)
			}
		}
	})
}
