package fsm

import (
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Audit actions of backup plan changes.
const (
	AuditPlanSet    = "backup-plan-set"
	AuditPlanDelete = "backup-plan-delete"
)

// A backup plan is stored as a PlanRecord: the plan as validated by the
// server that received it, stamped with who set it and when, plus its
// schedule's state (last fired), which replacing the plan keeps so that a
// re-set plan neither fires an instant twice nor forgets one.

func (f *FSM) applySetBackupPlan(index uint64, cmd *pb.SetBackupPlanCommand) (proto.Message, error) {
	p := cmd.GetPlan()
	if p.GetName() == "" {
		return nil, fmt.Errorf("%w: backup plan without name", ErrInvalidCommand)
	}
	stored := clone(p)
	stored.UpdatedAt = clone(cmd.GetAt())
	stored.UpdatedBy = cmd.GetActor()
	rec, replaced := f.st.plans[p.GetName()]
	if replaced {
		rec = clone(rec)
		rec.Plan = stored
	} else {
		rec = &pb.PlanRecord{Plan: stored}
	}
	f.st.plans[p.GetName()] = rec
	verb := "created"
	if replaced {
		verb = "replaced"
	}
	f.audit(index, AuditPlanSet, cmd.GetActor(), "", fmt.Sprintf("backup plan %s %s (%s)", p.GetName(), verb, describePlan(stored)), cmd.GetAt())
	return clone(rec), nil
}

func (f *FSM) applyDeleteBackupPlan(index uint64, cmd *pb.DeleteBackupPlanCommand) (proto.Message, error) {
	rec, ok := f.st.plans[cmd.GetName()]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrPlanNotFound, cmd.GetName())
	}
	delete(f.st.plans, cmd.GetName())
	f.audit(index, AuditPlanDelete, cmd.GetActor(), "", fmt.Sprintf("backup plan %s deleted (%s)", cmd.GetName(), describePlan(rec.GetPlan())), cmd.GetAt())
	return rec, nil
}

// describePlan is a one-line summary for the audit log.
func describePlan(p *pb.BackupPlan) string {
	clusters := "the Ledger cluster"
	if len(p.GetClusters()) > 0 {
		clusters = "clusters " + strings.Join(p.GetClusters(), ",")
	}
	groups := make([]string, 0, len(p.GetGroups()))
	for _, g := range p.GetGroups() {
		groups = append(groups, fmt.Sprintf("%s:%d", g.GetName(), len(g.GetHooks())))
	}
	s := fmt.Sprintf("pauses %s; groups %s; %d after hooks; %d databases", clusters, strings.Join(groups, " "), len(p.GetAfter()), len(p.GetDatabases()))
	if p.GetSchedule() != "" {
		s += fmt.Sprintf("; schedule %q", p.GetSchedule())
		if z := p.GetScheduleTimeZone(); z != "" {
			s += " " + z
		}
	}
	return s
}

// Plan returns one stored backup plan.
func (f *FSM) Plan(name string) (*pb.PlanRecord, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	rec, ok := f.st.plans[name]
	if !ok {
		return nil, false
	}
	return clone(rec), true
}

// Plans lists the stored backup plans sorted by name.
func (f *FSM) Plans() []*pb.PlanRecord {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]*pb.PlanRecord, 0, len(f.st.plans))
	for _, name := range sortedKeys(f.st.plans) {
		out = append(out, clone(f.st.plans[name]))
	}
	return out
}
