package coordinator

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	planpkg "github.com/stillpoint-dev/stillpoint/internal/plan"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// planClusters is what p pauses: its clusters, or the Ledger cluster (the
// one cluster whose roster members have role ledger, as plan validation
// resolved it).
func planClusters(p *pb.BackupPlan, members []*pb.MemberRecord) ([]string, error) {
	return planpkg.Clusters(p, members)
}

// StartBackup starts a backup from a stored plan: an op that pauses the
// plan's clusters until its hooks have run (at least the minimum hold the
// clocks require and the plan's min_hold_ms, at most the runtime config's
// maximum hold), with every step of the plan PENDING. It returns once the
// op is recorded; follow it with WatchOperation.
func (s *Server) StartBackup(ctx context.Context, req *pb.StartBackupRequest) (*pb.StartBackupResponse, error) {
	if req.GetPlan() == "" {
		return nil, invalidArgument("plan", "plan is required (list them with `stillpoint backup plan list`)")
	}
	if id := req.GetRequestId(); len(id) > maxRequestIDLen {
		return nil, invalidArgument("request_id", "request_id is %d bytes; at most %d", len(id), maxRequestIDLen)
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.StartBackup); done {
		return resp, err
	}
	op, err := s.startBackup(ctx, req.GetPlan(), req.GetRequestId(), req.GetRequestedBy(), nil)
	if err != nil {
		return nil, err
	}
	return &pb.StartBackupResponse{Operation: op}, nil
}

// startBackup starts, on the leader, a backup op of the stored plan named
// name (StartBackup, and the scheduler with the instant it fires for). It
// is idempotent on requestID: a retry returns the op the first call
// started, whatever became of it, even after the plan was deleted.
func (s *Server) startBackup(ctx context.Context, name, requestID, requestedBy string, scheduledFor *timestamppb.Timestamp) (*pb.Operation, error) {
	rec, ok := s.fsm.Plan(name)
	if !ok {
		if prev, found := s.fsm.OperationByRequest(requestID); found && requestID != "" && prev.GetBackup().GetPlan().GetName() == name {
			// Retried after the plan was deleted: the op it started.
			return prev, nil
		}
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_PLAN_NOT_FOUND, map[string]string{"plan": name}, "no backup plan named %q (list them with `stillpoint backup plan list`)", name)
	}
	plan := rec.GetPlan()
	minHold := plan.GetMinHoldMs()
	if minHold < 0 || minHold > maxHoldMs {
		return nil, apiError(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_INVALID_PLAN, map[string]string{"plan": plan.GetName(), "field": "min_hold_ms"}, "plan %s: min_hold_ms %d is outside 0..%d", plan.GetName(), minHold, maxHoldMs)
	}
	clusters, err := planClusters(plan, s.fsm.Members())
	if err != nil {
		return nil, apiError(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_INVALID_PLAN, map[string]string{"plan": plan.GetName(), "field": "clusters"}, "%v: name them in the plan's clusters", err)
	}
	run := newBackupRun(plan)
	run.ScheduledFor = scheduledFor
	resp, err := s.startOp(ctx, opSpec{
		clusters: clusters, holdMs: minHold, untilUnpaused: true,
		requestID: requestID, requestedBy: requestedBy,
		backup: run,
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("backup started", zap.String("op_id", resp.GetOperation().GetOpId()), zap.String("plan", plan.GetName()))
	return resp.GetOperation(), nil
}

// ListBackups lists the catalog entries of backups, newest first, of one
// plan or all.
func (s *Server) ListBackups(ctx context.Context, req *pb.ListBackupsRequest) (*pb.ListBackupsResponse, error) {
	if req.GetLimit() < 0 {
		return nil, invalidArgument("limit", "limit %d is negative", req.GetLimit())
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListBackups); done {
		return resp, err
	}
	out := &pb.ListBackupsResponse{}
	for _, rp := range s.fsm.RestorePoints("", 0) {
		if rp.GetBackup() == nil || (req.GetPlan() != "" && rp.GetBackup().GetPlan().GetName() != req.GetPlan()) {
			continue
		}
		if req.GetLimit() > 0 && len(out.Backups) >= int(req.GetLimit()) {
			break
		}
		out.Backups = append(out.Backups, rp)
	}
	return out, nil
}

// GetBackup returns one backup's catalog entry (its id is its op id).
func (s *Server) GetBackup(ctx context.Context, req *pb.GetBackupRequest) (*pb.GetBackupResponse, error) {
	if req.GetBackupId() == "" {
		return nil, invalidArgument("backup_id", "backup_id is required")
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.GetBackup); done {
		return resp, err
	}
	rp, ok := s.fsm.RestorePoint(req.GetBackupId())
	if ok && rp.GetBackup() != nil {
		return &pb.GetBackupResponse{Backup: rp}, nil
	}
	if op, found := s.fsm.Operation(req.GetBackupId()); found {
		if op.GetBackup() == nil {
			return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_BACKUP_NOT_FOUND, map[string]string{"backup_id": op.GetOpId(), "op_id": op.GetOpId()}, "operation %s is a pause, not a backup (see `stillpoint ops show %s`)", op.GetOpId(), op.GetOpId())
		}
		if op.GetState() == pb.OperationState_OPERATION_STATE_COMPLETED {
			return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_BACKUP_NOT_FOUND, map[string]string{"backup_id": op.GetOpId(), "op_id": op.GetOpId(), "plan": op.GetBackup().GetPlan().GetName()}, "backup %s completed but its catalog entry was pruned by plan %s's retention; its op stays in the history: `stillpoint ops show %s`", op.GetOpId(), op.GetBackup().GetPlan().GetName(), op.GetOpId())
		}
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_BACKUP_NOT_FOUND, map[string]string{"backup_id": op.GetOpId(), "op_id": op.GetOpId()}, "backup %s has no catalog entry: it is %s (%s); see `stillpoint ops show %s`", op.GetOpId(), op.GetState(), op.GetReason(), op.GetOpId())
	}
	return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_BACKUP_NOT_FOUND, map[string]string{"backup_id": req.GetBackupId()}, "no backup %s on server %s (list them with `stillpoint backup list`)", req.GetBackupId(), s.cfg.NodeID)
}
