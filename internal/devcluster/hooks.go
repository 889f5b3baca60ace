package devcluster

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
)

// Names of the hooks every dev agent defines, for backup plans run
// against the dev cluster.
const (
	// HookSnapshot stands in for a database snapshot: it writes a file
	// named after the op and step into the node's snapshots directory
	// (Node.SnapshotDir) with the STILLPOINT_* variables it got, and
	// prints that file's path as its last output line.
	HookSnapshot = "snapshot"
	// HookFail prints an error and exits 1 (to try on_error policies).
	HookFail = "fail"
)

const snapshotScript = `#!/bin/sh
# stillpoint dev: a stand-in for a database snapshot. Harmless: it writes
# one small file under the dev cluster's temporary directory.
set -eu
mkdir -p "$SNAPSHOT_DIR"
step=$(printf '%s' "$STILLPOINT_STEP_ID" | tr '/' '_')
file="$SNAPSHOT_DIR/$STILLPOINT_OP_ID-$step.txt"
env | grep '^STILLPOINT_' | sort > "$file"
echo "snapshot of $STILLPOINT_NODE for op $STILLPOINT_OP_ID"
echo "$file"
`

const failScript = `#!/bin/sh
# stillpoint dev: a hook that fails, to try a plan's on_error policy.
echo "dev hook on $STILLPOINT_NODE failed on purpose (op $STILLPOINT_OP_ID)" >&2
exit 1
`

// DevHooks writes the dev hook scripts under dir/hooks and returns their
// definitions (HookSnapshot, HookFail), as a dev agent's config has them.
func DevHooks(dir string) ([]hook.Definition, error) {
	hooksDir := filepath.Join(dir, "hooks")
	if err := os.MkdirAll(hooksDir, 0o700); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	var defs []hook.Definition
	for _, h := range []struct{ name, script string }{{HookSnapshot, snapshotScript}, {HookFail, failScript}} {
		path := filepath.Join(abs, "hooks", h.name+".sh")
		if err := os.WriteFile(path, []byte(h.script), 0o700); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
		defs = append(defs, hook.Definition{
			Name: h.name, Command: path, Timeout: 30 * time.Second,
			Env: map[string]string{"SNAPSHOT_DIR": filepath.Join(abs, "snapshots")},
		})
	}
	return defs, hook.Validate(defs)
}
