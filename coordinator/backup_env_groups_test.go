package coordinator

import (
	"testing"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
)

// The agent tells the groups that run outside the hold by these names
// (it refuses a during hook of an op that ended on it).
func TestHookGroupNamesAgreeWithTheAgent(t *testing.T) {
	if fsm.AfterGroup != hook.GroupAfter || DeleteHookGroup != hook.GroupDelete || EnvHookGroup != hook.EnvHookGroup {
		t.Fatalf("after %q/%q, delete %q/%q, env %q/%q", fsm.AfterGroup, hook.GroupAfter, DeleteHookGroup, hook.GroupDelete, EnvHookGroup, hook.EnvHookGroup)
	}
}
