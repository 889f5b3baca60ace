package fsm

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Audit actions of schedules and retention.
const (
	AuditScheduleFire = "backup-schedule-fire"
	AuditBackupsPrune = "backup-prune"
)

// ErrAlreadyFired: a scheduled instant not after the plan's last fired one
// (firing it again would double a run, or skip back in time).
var ErrAlreadyFired = errors.New("scheduled instant already fired")

// A plan's schedule state moves forward only. The leader records a fire
// before it starts the op (instant > last_fired, no op id yet: the fire is
// pending), then the op's id, or why no op was started, for that same
// instant. A pending fire found by a new leader is completed by it: the
// op's request id is derived from the plan and the instant, so starting it
// again returns the op that was started, or starts it once.

// applyRecordScheduleFire records that the leader fired a plan's scheduled
// instant, or completes the pending fire of last_fired with its op id or
// reason.
func (f *FSM) applyRecordScheduleFire(index uint64, cmd *pb.RecordScheduleFireCommand) (proto.Message, error) {
	name := cmd.GetPlan()
	rec, ok := f.st.plans[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrPlanNotFound, name)
	}
	if cmd.GetInstant() == nil || cmd.GetInstant().CheckValid() != nil {
		return nil, fmt.Errorf("%w: schedule fire of plan %s without a valid instant", ErrInvalidCommand, name)
	}
	if cmd.GetOpId() != "" && cmd.GetReason() != "" {
		return nil, fmt.Errorf("%w: schedule fire of plan %s has both op %s and reason %q", ErrInvalidCommand, name, cmd.GetOpId(), cmd.GetReason())
	}
	instant := cmd.GetInstant().AsTime()
	if last := rec.GetLastFired(); last != nil {
		lastT := last.AsTime()
		switch {
		case instant.Before(lastT):
			return nil, fmt.Errorf("%w: plan %s instant %s is before its last fired instant %s", ErrAlreadyFired, name, timefmt.UTC(instant), timefmt.UTC(lastT))
		case instant.Equal(lastT):
			return f.completeFireLocked(index, rec, cmd)
		}
	}
	if cmd.GetMissedCount() < 0 {
		return nil, fmt.Errorf("%w: plan %s: missed_count %d is negative", ErrInvalidCommand, name, cmd.GetMissedCount())
	}
	rec = clone(rec)
	rec.LastFired = clone(cmd.GetInstant())
	rec.LastFiredOpId = cmd.GetOpId()
	rec.LastFiredReason = cmd.GetReason()
	f.st.plans[name] = rec
	detail := fmt.Sprintf("plan %s fired %s: %s", name, timefmt.UTC(instant), fireOutcome(cmd.GetOpId(), cmd.GetReason()))
	if n := cmd.GetMissedCount(); n > 0 {
		detail += fmt.Sprintf("; %d earlier instants missed from %s", n, timefmt.UTC(cmd.GetFirstMissed().AsTime()))
	}
	f.audit(index, AuditScheduleFire, "scheduler", cmd.GetOpId(), detail, cmd.GetAt())
	return clone(rec), nil
}

// completeFireLocked gives the pending fire of last_fired its outcome. The
// same outcome again is a no-op; another one is refused.
func (f *FSM) completeFireLocked(index uint64, rec *pb.PlanRecord, cmd *pb.RecordScheduleFireCommand) (proto.Message, error) {
	name := rec.GetPlan().GetName()
	instant := timefmt.UTC(cmd.GetInstant().AsTime())
	if rec.GetLastFiredOpId() == cmd.GetOpId() && rec.GetLastFiredReason() == cmd.GetReason() {
		if cmd.GetOpId() == "" && cmd.GetReason() == "" {
			return nil, fmt.Errorf("%w: plan %s instant %s is already recorded as fired", ErrAlreadyFired, name, instant)
		}
		return clone(rec), nil
	}
	if rec.GetLastFiredOpId() != "" || rec.GetLastFiredReason() != "" {
		return nil, fmt.Errorf("%w: plan %s instant %s already ended: %s", ErrAlreadyFired, name, instant, fireOutcome(rec.GetLastFiredOpId(), rec.GetLastFiredReason()))
	}
	if cmd.GetOpId() == "" && cmd.GetReason() == "" {
		return nil, fmt.Errorf("%w: plan %s instant %s is already recorded as fired", ErrAlreadyFired, name, instant)
	}
	rec = clone(rec)
	rec.LastFiredOpId = cmd.GetOpId()
	rec.LastFiredReason = cmd.GetReason()
	f.st.plans[name] = rec
	f.audit(index, AuditScheduleFire, "scheduler", cmd.GetOpId(),
		fmt.Sprintf("plan %s instant %s: %s", name, instant, fireOutcome(cmd.GetOpId(), cmd.GetReason())), cmd.GetAt())
	return clone(rec), nil
}

// fireOutcome says what became of a fire, for the audit log.
func fireOutcome(opID, reason string) string {
	switch {
	case opID != "":
		return "started op " + opID
	case reason != "":
		return "no op: " + reason
	}
	return "op starting"
}

// applyPruneBackups removes catalog entries of a plan that its retention
// no longer keeps; their ops stay in the op history. Every id must be a
// backup of that plan; one already pruned is skipped (a retried prune), any
// other refuses the whole command.
func (f *FSM) applyPruneBackups(index uint64, cmd *pb.PruneBackupsCommand) (proto.Message, error) {
	name := cmd.GetPlan()
	if name == "" || len(cmd.GetBackupIds()) == 0 {
		return nil, fmt.Errorf("%w: prune needs a plan and backup ids (got %q, %d ids)", ErrInvalidCommand, name, len(cmd.GetBackupIds()))
	}
	var remove []string
	seen := map[string]bool{}
	for _, id := range cmd.GetBackupIds() {
		if seen[id] {
			return nil, fmt.Errorf("%w: prune of plan %s names backup %s twice", ErrInvalidCommand, name, id)
		}
		seen[id] = true
		if rp, ok := f.st.restorePoints[id]; ok {
			if got := rp.GetBackup().GetPlan().GetName(); rp.GetBackup() == nil || got != name {
				return nil, fmt.Errorf("%w: catalog entry %s is not a backup of plan %s (plan %q)", ErrInvalidCommand, id, name, got)
			}
			remove = append(remove, id)
			continue
		}
		op, ok := f.st.ops[id]
		if !ok {
			return nil, fmt.Errorf("%w: prune of plan %s: no backup %s", ErrOperationNotFound, name, id)
		}
		if op.GetBackup().GetPlan().GetName() != name {
			return nil, fmt.Errorf("%w: operation %s is not a backup of plan %s", ErrInvalidCommand, id, name)
		}
		// Pruned already (a retry after a lost answer).
	}
	out := clone(cmd)
	out.BackupIds = remove
	if len(remove) == 0 {
		return out, nil
	}
	gone := map[string]bool{}
	for _, id := range remove {
		delete(f.st.restorePoints, id)
		gone[id] = true
	}
	kept := f.st.rpOrder[:0:0]
	for _, id := range f.st.rpOrder {
		if !gone[id] {
			kept = append(kept, id)
		}
	}
	f.st.rpOrder = kept
	detail := fmt.Sprintf("plan %s: pruned %d catalog entries (%s)", name, len(remove), strings.Join(remove, ", "))
	if cmd.GetReason() != "" {
		detail += ": " + cmd.GetReason()
	}
	f.audit(index, AuditBackupsPrune, "retention", "", detail, cmd.GetAt())
	return out, nil
}

// CatalogVersion changes whenever an entry is added to or removed from the
// catalog (entry count and newest id): a cheap test for the retention
// duty.
func (f *FSM) CatalogVersion() string {
	f.mu.RLock()
	defer f.mu.RUnlock()
	n := len(f.st.rpOrder)
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d/%s", n, f.st.rpOrder[n-1])
}

// PlanBackups lists the catalog entries of one plan, newest first.
func (f *FSM) PlanBackups(plan string) []*pb.RestorePoint {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var out []*pb.RestorePoint
	for i := len(f.st.rpOrder) - 1; i >= 0; i-- {
		rp := f.st.restorePoints[f.st.rpOrder[i]]
		if rp.GetBackup() != nil && rp.GetBackup().GetPlan().GetName() == plan {
			out = append(out, clone(rp))
		}
	}
	return out
}
