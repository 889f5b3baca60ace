package devcluster

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestDevHooks: the dev agents' hooks run for real: snapshot writes a file
// named after the op and step and prints its path last; fail fails.
func TestDevHooks(t *testing.T) {
	dir := t.TempDir()
	defs, err := DevHooks(dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(hook.Names(defs), ",") != "snapshot,fail" {
		t.Fatalf("dev hooks %v", hook.Names(defs))
	}
	env := map[string]string{"STILLPOINT_OP_ID": "op-1", "STILLPOINT_STEP_ID": "ledger-databases/0", "STILLPOINT_NODE": "ledger-1", "STILLPOINT_PLAN": "dev"}
	e := &hook.Executor{}
	run := e.Run(context.Background(), defs[0], env)
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("snapshot: %v %q %s", run.GetState(), run.GetMessage(), run.GetOutputTail())
	}
	lines := strings.Split(strings.TrimSpace(string(run.GetOutputTail())), "\n")
	want := filepath.Join(dir, "snapshots", "op-1-ledger-databases_0.txt")
	if lines[len(lines)-1] != want {
		t.Fatalf("last output line %q, want the artefact %q", lines[len(lines)-1], want)
	}
	b, err := os.ReadFile(want)
	if err != nil || !strings.Contains(string(b), "STILLPOINT_PLAN=dev\n") {
		t.Fatalf("artefact: %q, %v", b, err)
	}
	run = e.Run(context.Background(), defs[1], env)
	if run.GetState() != pb.HookState_HOOK_STATE_FAILED || run.GetExitCode() != 1 ||
		run.GetMessage() != `hook "fail" exited 1: dev hook on ledger-1 failed on purpose (op op-1)` {
		t.Fatalf("fail: %v %d %q", run.GetState(), run.GetExitCode(), run.GetMessage())
	}
}
