package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/plan"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// ErrorInfo reasons of backup plan refusals.
var (
	// ReasonInvalidPlan: the plan failed validation; a BadRequest detail
	// lists every problem with its field.
	ReasonInvalidPlan = pb.ErrorReason_ERROR_REASON_INVALID_PLAN.Reason()
	// ReasonPlanNotFound: no plan has this name.
	ReasonPlanNotFound = pb.ErrorReason_ERROR_REASON_PLAN_NOT_FOUND.Reason()
	// ReasonPlanInUse: an op of the plan is running.
	ReasonPlanInUse = pb.ErrorReason_ERROR_REASON_PLAN_IN_USE.Reason()
)

// SetBackupPlan validates a plan — every problem at once, each naming its
// field — and stores it (creating or replacing it; a replaced plan keeps
// its schedule state). Hook names are checked against each named agent's
// own config (AgentService.Status) and, for agent "coordinator", against
// this server's. A refused plan changes nothing. Audited with the actor.
func (s *Server) SetBackupPlan(ctx context.Context, req *pb.SetBackupPlanRequest) (*pb.SetBackupPlanResponse, error) {
	if req.GetPlan() == nil {
		return nil, invalidArgument("plan", "plan is required (write one from `stillpoint backup plan example`)")
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.SetBackupPlan); done {
		return resp, err
	}
	who := s.callerOf(ctx, req.GetRequestedBy()).GetActor()
	p := proto.Clone(req.GetPlan()).(*pb.BackupPlan)
	p.UpdatedAt, p.UpdatedBy = nil, ""
	if err := plan.Validate(p, s.planEnv(ctx, p)); err != nil {
		s.log.Info("backup plan refused", zap.String("plan", p.GetName()), zap.String("actor", who), zap.Error(err))
		return nil, s.planStatus(err)
	}
	out, err := s.Apply(ctx, &pb.SetBackupPlanCommand{Plan: p, Actor: who, At: s.Stamp()})
	if err != nil {
		return nil, s.toStatus(err)
	}
	s.log.Info("backup plan stored", zap.String("plan", p.GetName()), zap.String("actor", who))
	return &pb.SetBackupPlanResponse{Plan: out.(*pb.PlanRecord)}, nil
}

// planStatus is INVALID_ARGUMENT with every problem in the message and as
// BadRequest field violations.
func (s *Server) planStatus(err error) error {
	var pe *plan.Error
	if !errors.As(err, &pe) {
		return s.toStatus(err)
	}
	br := &errdetails.BadRequest{}
	for _, p := range pe.Problems {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{Field: p.Field, Description: p.Message})
	}
	md := map[string]string{"plan": pe.Plan}
	if len(pe.Problems) > 0 {
		md["field"] = pe.Problems[0].Field
	}
	st := status.Newf(codes.InvalidArgument, "server %s refused the plan; nothing was stored: %v", s.cfg.NodeID, err)
	return withInfo(st, pb.ErrorReason_ERROR_REASON_INVALID_PLAN, md, br).Err()
}

// planEnv gathers what validation needs: the roster, the runtime config's
// maximum hold, and the hook names of every agent the plan names (asked
// in parallel) and of this server.
func (s *Server) planEnv(ctx context.Context, p *pb.BackupPlan) *plan.Env {
	env := &plan.Env{
		Members:     s.fsm.Members(),
		Hooks:       map[string][]string{plan.CoordinatorAgent: hook.Names(s.cfg.Hooks)},
		Unreachable: map[string]string{},
		MaxHold:     fsm.MaxHold(s.fsm.Config()),
	}
	timeout := s.cfg.StatusTimeout
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range plan.Agents(p) {
		rec, ok := s.fsm.Member(name)
		if !ok || rec.GetRole() == RoleServer {
			continue // validation says it is on no roster
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			names, err := s.agentHooks(ctx, rec, timeout)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				env.Unreachable[name] = err.Error()
				return
			}
			env.Hooks[name] = names
		}()
	}
	wg.Wait()
	return env
}

// agentHooks asks one roster agent for the hook names in its config.
func (s *Server) agentHooks(ctx context.Context, rec *pb.MemberRecord, timeout time.Duration) ([]string, error) {
	addr := rec.GetGrpcAddress()
	if m, ok := s.pool.Member(rec.GetName()); ok {
		switch m.Status {
		case gossip.StatusLeft:
			return nil, errors.New("its agent left gossip (it was stopped)")
		case gossip.StatusDead:
			return nil, errors.New("its agent failed (gossip declared it dead)")
		}
		if m.Meta.GRPCAddr != "" {
			addr = m.Meta.GRPCAddr
		}
	} else {
		return nil, errors.New("its agent is not in the gossip view")
	}
	cl, err := agentConns{s}.agent(addr)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := cl.Status(cctx, &pb.StatusRequest{})
	if err != nil {
		return nil, fmt.Errorf("its agent at %s did not answer Status: %s", addr, status.Convert(err).Message())
	}
	return resp.GetState().GetHooks(), nil
}

// GetBackupPlan returns one stored plan.
func (s *Server) GetBackupPlan(ctx context.Context, req *pb.GetBackupPlanRequest) (*pb.GetBackupPlanResponse, error) {
	if req.GetName() == "" {
		return nil, invalidArgument("name", "name is required (list the plans with `stillpoint backup plan list`)")
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.GetBackupPlan); done {
		return resp, err
	}
	rec, ok := s.fsm.Plan(req.GetName())
	if !ok {
		return nil, s.planNotFound(req.GetName())
	}
	return &pb.GetBackupPlanResponse{Plan: rec}, nil
}

func (s *Server) planNotFound(name string) error {
	var names []string
	for _, r := range s.fsm.Plans() {
		names = append(names, r.GetPlan().GetName())
	}
	known := "none"
	if len(names) > 0 {
		known = strings.Join(names, ", ")
	}
	return apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_PLAN_NOT_FOUND, map[string]string{"plan": name},
		"no backup plan is named %q (plans: %s)", name, known)
}

// ListBackupPlans lists the stored plans by name.
func (s *Server) ListBackupPlans(ctx context.Context, req *pb.ListBackupPlansRequest) (*pb.ListBackupPlansResponse, error) {
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListBackupPlans); done {
		return resp, err
	}
	return &pb.ListBackupPlansResponse{Plans: s.fsm.Plans()}, nil
}

// DeleteBackupPlan removes a plan; refused while an op of the plan is
// running. Catalog entries made by the plan stay (each keeps the plan as
// it was). Audited with the actor.
func (s *Server) DeleteBackupPlan(ctx context.Context, req *pb.DeleteBackupPlanRequest) (*pb.DeleteBackupPlanResponse, error) {
	if req.GetName() == "" {
		return nil, invalidArgument("name", "name is required (list the plans with `stillpoint backup plan list`)")
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.DeleteBackupPlan); done {
		return resp, err
	}
	who := s.callerOf(ctx, req.GetRequestedBy()).GetActor()
	if _, ok := s.fsm.Plan(req.GetName()); !ok {
		return nil, s.planNotFound(req.GetName())
	}
	if err := planInUse(s.fsm.ActiveOperations(), req.GetName()); err != nil {
		return nil, err
	}
	if _, err := s.Apply(ctx, &pb.DeleteBackupPlanCommand{Name: req.GetName(), Actor: who, At: s.Stamp()}); err != nil {
		if errors.Is(err, fsm.ErrPlanNotFound) {
			return nil, s.planNotFound(req.GetName())
		}
		return nil, s.toStatus(err)
	}
	s.log.Info("backup plan deleted", zap.String("plan", req.GetName()), zap.String("actor", who))
	return &pb.DeleteBackupPlanResponse{}, nil
}

// planInUse refuses (FAILED_PRECONDITION, PLAN_IN_USE) when one of the
// active ops runs the plan, naming it.
func planInUse(active []*pb.Operation, name string) error {
	for _, op := range active {
		if op.GetBackup().GetPlan().GetName() == name {
			return apiError(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_PLAN_IN_USE, map[string]string{"plan": name, "op_id": op.GetOpId()},
				"backup plan %s is running in op %s (%s): wait for it to end (`stillpoint ops watch %s`) or abort it (`stillpoint unpause --op %s --abort`), then delete the plan",
				name, op.GetOpId(), enumname.Of(op.GetState()), op.GetOpId(), op.GetOpId())
		}
	}
	return nil
}

// ReasonRestoreRefused: the named backups cannot make one restore plan (a
// mix of pauses, an invalid entry, a pause that ran no plan).
var ReasonRestoreRefused = pb.ErrorReason_ERROR_REASON_RESTORE_REFUSED.Reason()

// GetRestorePlan lists what to restore, to which time, in the guide's
// order, for backups that must all come from one pause.
func (s *Server) GetRestorePlan(ctx context.Context, req *pb.GetRestorePlanRequest) (*pb.GetRestorePlanResponse, error) {
	ids := plan.DedupIDs(req.GetBackupIds())
	if len(ids) == 0 {
		return nil, invalidArgument("backup_ids", "backup_ids: name at least one backup (list them with `stillpoint backup list`)")
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.GetRestorePlan); done {
		return resp, err
	}
	var entries []*pb.RestorePoint
	var missing, missingIDs []string
	for _, id := range ids {
		rp, ok := s.fsm.RestorePoint(id)
		if !ok {
			why := "no catalog entry"
			if op, ok := s.fsm.Operation(id); ok {
				why = fmt.Sprintf("op %s is %s and left no catalog entry", id, enumname.Of(op.GetState()))
			}
			missing = append(missing, fmt.Sprintf("%s (%s)", id, why))
			missingIDs = append(missingIDs, id)
			continue
		}
		entries = append(entries, rp)
	}
	if len(missing) > 0 {
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_BACKUP_NOT_FOUND, map[string]string{"backup_id": strings.Join(missingIDs, ",")}, "no backup %s (list them with `stillpoint backup list`)", strings.Join(missing, ", "))
	}
	out, err := plan.Restore(entries)
	if err != nil {
		return nil, apiStatus(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_RESTORE_REFUSED, map[string]string{"backup_id": strings.Join(ids, ",")}, err.Error()).Err()
	}
	return &pb.GetRestorePlanResponse{Plan: out}, nil
}
