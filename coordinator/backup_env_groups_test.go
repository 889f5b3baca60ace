package coordinator

import (
	"testing"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
)

// The agent tells the groups that run outside the hold by hook's names
// (it refuses a during hook of an op that ended on it). The coordinator
// uses those names directly; the FSM keeps its own copy of the after
// group's (it does not import the hook executor), which must agree.
func TestHookGroupNamesAgreeWithTheAgent(t *testing.T) {
	if fsm.AfterGroup != hook.GroupAfter {
		t.Fatalf("after group: fsm %q, hook %q", fsm.AfterGroup, hook.GroupAfter)
	}
}
