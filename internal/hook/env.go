package hook

import (
	"os"
	"sort"

	"github.com/stillpoint-dev/stillpoint/internal/config"
)

// EnvPrefix starts every variable a backup passes to a hook; a caller
// may pass no other. It is the prefix of Stillpoint's own configuration
// variables too, which is why a hook inherits none of the agent's.
const EnvPrefix = config.EnvPrefix + "_"

// Variables a hook sees. The runner that asks for a hook passes those
// that apply (RunHookRequest.env); the agent sets STILLPOINT_OP_ID,
// STILLPOINT_STEP_ID, STILLPOINT_HOOK and STILLPOINT_NODE itself from the
// request, so a hook can always rely on them.
const (
	// EnvOpID is the backup op's id (safe in a file name).
	EnvOpID = "STILLPOINT_OP_ID"
	// EnvStepID is the step within the op (HookRun.step_id).
	EnvStepID = "STILLPOINT_STEP_ID"
	// EnvHook is the hook's own name.
	EnvHook = "STILLPOINT_HOOK"
	// EnvNode is the node name of the agent running the hook ("coordinator"
	// style names for a server).
	EnvNode = "STILLPOINT_NODE"
	// EnvPlan is the backup plan's name.
	EnvPlan = "STILLPOINT_PLAN"
	// EnvClusters is the comma-separated list of paused clusters.
	EnvClusters = "STILLPOINT_CLUSTERS"
	// EnvWindowStart is where the restore window starts, already known
	// while the targets are held (RFC 3339, UTC, ns); EnvWindowStartMS
	// the same in Unix epoch ms.
	EnvWindowStart   = "STILLPOINT_WINDOW_START"
	EnvWindowStartMS = "STILLPOINT_WINDOW_START_MS"
	// EnvWindowEnd is where the window ends, for `after` hooks.
	EnvWindowEnd   = "STILLPOINT_WINDOW_END"
	EnvWindowEndMS = "STILLPOINT_WINDOW_END_MS"
	// EnvRestorePoint is the restore point in RFC 3339 (UTC, ns), for
	// `after` hooks; EnvRestorePointMS the same in Unix epoch ms, and
	// EnvRestorePointUncertainty its ± in ns.
	EnvRestorePoint            = "STILLPOINT_RESTORE_POINT"
	EnvRestorePointMS          = "STILLPOINT_RESTORE_POINT_MS"
	EnvRestorePointUncertainty = "STILLPOINT_RESTORE_POINT_UNCERTAINTY_NS"
	// EnvBackupID is the catalog entry a delete hook prunes.
	EnvBackupID = "STILLPOINT_BACKUP_ID"
	// EnvHookGroup is the step's group: a plan's group (run while the
	// targets are held), GroupAfter or GroupDelete.
	EnvHookGroup = "STILLPOINT_HOOK_GROUP"
)

// The groups of hooks that run outside the hold: a completed backup's
// after hooks and retention's delete hooks. Plans may not name a group so.
const (
	GroupAfter  = "after"
	GroupDelete = "delete"
)

// DefaultPath is the hook's PATH when the process running it has none.
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// baseVars are the only variables a hook inherits from the process that
// runs it. Everything else (notably the agent's own STILLPOINT_*
// configuration, which may hold a gossip key) stays out; a hook that needs
// more sets it in its definition's env.
var baseVars = []string{"PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// Environ builds a hook's environment, later entries winning:
//
//  1. PATH, HOME, USER, LOGNAME, LANG, LC_ALL, TZ and TMPDIR from the
//     running process, when set (PATH defaults to DefaultPath);
//  2. the definition's env;
//  3. the caller's STILLPOINT_* variables.
//
// The result is sorted (a stable environment for the same inputs).
func Environ(lookup func(string) (string, bool), def map[string]string, req map[string]string) []string {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	m := make(map[string]string, len(baseVars)+len(def)+len(req))
	for _, k := range baseVars {
		if v, ok := lookup(k); ok {
			m[k] = v
		}
	}
	if m["PATH"] == "" {
		m["PATH"] = DefaultPath
	}
	for k, v := range def {
		m[k] = v
	}
	for k, v := range req {
		m[k] = v
	}
	out := make([]string, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
