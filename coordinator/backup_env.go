package coordinator

import (
	"strconv"
	"strings"
	"time"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
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
		hook.EnvOpID:      op.GetOpId(),
		hook.EnvPlan:      op.GetBackup().GetPlan().GetName(),
		hook.EnvClusters:  strings.Join(fsm.Clusters(op), ","),
		hook.EnvHookGroup: run.GetGroup(),
		hook.EnvStepID:    run.GetStepId(),
	}
	if w := op.GetWindow(); w.GetRestorePoint() != nil {
		putInstant(env, hook.EnvWindowStart, w.GetStart().AsTime())
		putInstant(env, hook.EnvWindowEnd, w.GetEnd().AsTime())
		putInstant(env, hook.EnvRestorePoint, w.GetRestorePoint().AsTime())
		env[hook.EnvRestorePointUncertainty] = strconv.FormatInt(w.GetUncertaintyNs(), 10)
		return env
	}
	if start, ok := windowStartSoFar(op); ok {
		putInstant(env, hook.EnvWindowStart, start)
	}
	return env
}

// putInstant sets an instant's variable (RFC 3339, UTC, ns) and its _MS
// twin (Unix epoch ms), the pair every STILLPOINT_* time comes as.
func putInstant(env map[string]string, name string, t time.Time) {
	env[name] = timefmt.UTC(t)
	env[name+"_MS"] = strconv.FormatInt(timefmt.EpochMillis(t), 10)
}
