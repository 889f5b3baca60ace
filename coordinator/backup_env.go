package coordinator

import (
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The environment every hook of a backup gets (STILLPOINT_*). A hook's own
// config may add variables; these are the backup's.
const (
	EnvOpID                    = "STILLPOINT_OP_ID"
	EnvPlan                    = "STILLPOINT_PLAN"
	EnvClusters                = "STILLPOINT_CLUSTERS"
	EnvHookGroup               = "STILLPOINT_HOOK_GROUP"
	EnvStepID                  = "STILLPOINT_STEP_ID"
	EnvWindowStart             = "STILLPOINT_WINDOW_START"
	EnvWindowStartMS           = "STILLPOINT_WINDOW_START_MS"
	EnvWindowEnd               = "STILLPOINT_WINDOW_END"
	EnvWindowEndMS             = "STILLPOINT_WINDOW_END_MS"
	EnvRestorePoint            = "STILLPOINT_RESTORE_POINT"
	EnvRestorePointMS          = "STILLPOINT_RESTORE_POINT_MS"
	EnvRestorePointUncertainty = "STILLPOINT_RESTORE_POINT_UNCERTAINTY_NS"
)

// windowStartSoFar is where the window starts, already known while the
// targets are held: the latest true time any target can have acked,
// max over targets of ack + θ + ε. ok is false when a target has no
// certified ack.
func windowStartSoFar(op *pb.Operation) (time.Time, bool) {
	var start time.Time
	for _, t := range op.GetTargets() {
		if clock.ValidateStamp(t.GetAckedAt()) != nil {
			return time.Time{}, false
		}
		if _, hi := clock.TrueInterval(t.GetAckedAt()); hi.After(start) {
			start = hi
		}
	}
	return start, !start.IsZero()
}

// hookEnv is the environment of one hook step of op: its identity, the
// window so far and, for an `after` hook of a completed op, the restore
// point and the window's end.
func hookEnv(op *pb.Operation, run *pb.HookRun) map[string]string {
	env := map[string]string{
		EnvOpID:      op.GetOpId(),
		EnvPlan:      op.GetBackup().GetPlan().GetName(),
		EnvClusters:  strings.Join(fsm.Clusters(op), ","),
		EnvHookGroup: run.GetGroup(),
		EnvStepID:    run.GetStepId(),
	}
	if w := op.GetWindow(); w.GetRestorePoint() != nil {
		put := func(name string, t time.Time) {
			env[name] = timefmt.UTC(t)
			env[name+"_MS"] = strconv.FormatInt(timefmt.EpochMillis(t), 10)
		}
		put(EnvWindowStart, w.GetStart().AsTime())
		put(EnvWindowEnd, w.GetEnd().AsTime())
		put(EnvRestorePoint, w.GetRestorePoint().AsTime())
		env[EnvRestorePointUncertainty] = strconv.FormatInt(w.GetUncertaintyNs(), 10)
		return env
	}
	if start, ok := windowStartSoFar(op); ok {
		env[EnvWindowStart] = timefmt.UTC(start)
		env[EnvWindowStartMS] = strconv.FormatInt(timefmt.EpochMillis(start), 10)
	}
	return env
}
