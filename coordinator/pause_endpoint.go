package coordinator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MaxHold caps a requested hold: a pause is minutes at most. The CLI
// checks --hold against it before sending.
const MaxHold = time.Hour

// maxHoldMs is MaxHold in StartPauseRequest.hold_ms's unit.
const maxHoldMs = int64(MaxHold / time.Millisecond)

// maxRequestIDLen bounds StartPauseRequest.request_id.
const maxRequestIDLen = 128

// newOpID returns a sortable, unique operation id (≤ 40 bytes).
func newOpID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "op-" + now.UTC().Format("20060102T150405.000Z") + "-" + hex.EncodeToString(b[:])
}

// StartPause admits, records and starts a pause of one cluster (SPEC steps
// 1-2). It returns as soon as the operation is recorded; follow it with
// WatchOperation.
func (s *Server) StartPause(ctx context.Context, req *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	if err := ValidateStartPause(req); err != nil {
		return nil, err
	}
	names, _ := requestClusters(req)
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.StartPause); done {
		return resp, err
	}
	return s.startOp(ctx, opSpec{
		clusters: names, holdMs: req.GetHoldMs(), untilUnpaused: req.GetUntilUnpaused(),
		requestID: req.GetRequestId(), requestedBy: req.GetRequestedBy(),
	})
}

// ValidateStartPause checks a pause request (INVALID_ARGUMENT naming every
// problem).
func ValidateStartPause(req *pb.StartPauseRequest) error {
	_, bad := requestClusters(req)
	if h := req.GetHoldMs(); h < 0 || h > maxHoldMs {
		bad = append(bad, fmt.Sprintf("hold_ms %d is outside 0..%d", h, maxHoldMs))
	}
	if id := req.GetRequestId(); len(id) > maxRequestIDLen {
		bad = append(bad, fmt.Sprintf("request_id is %d bytes; at most %d", len(id), maxRequestIDLen))
	}
	if err := validateNote(req.GetRequestedBy()); err != nil {
		bad = append(bad, "requested_by "+err.Error())
	}
	if len(bad) > 0 {
		return badRequest(bad)
	}
	return nil
}

// opSpec is what StartPause and StartBackup ask of an op.
type opSpec struct {
	clusters      []string
	holdMs        int64
	untilUnpaused bool
	requestID     string
	requestedBy   string
	// backup is set for an op started from a plan.
	backup *pb.BackupRun
}

// startOp admits, records and starts an op on the leader (SPEC steps 1-2).
func (s *Server) startOp(ctx context.Context, spec opSpec) (*pb.StartPauseResponse, error) {
	names := spec.clusters
	s.pauses.mu.Lock()
	epoch, leading := s.pauses.epoch, s.pauses.ctx != nil && s.pauses.ctx.Err() == nil
	s.pauses.mu.Unlock()
	if !leading {
		return nil, notAppliedError(nil, "server %s is still taking over as leader; retry", s.cfg.NodeID)
	}
	if prev, ok, err := s.retriedOp(spec); ok || err != nil {
		if err != nil {
			return nil, err
		}
		return &pb.StartPauseResponse{Operation: prev}, nil
	}
	if err := s.heldRefusal(names); err != nil {
		return nil, err
	}
	caller := s.callerOf(ctx, spec.requestedBy)
	who := caller.GetActor()
	cfg := s.fsm.Config()
	label := strings.Join(names, "+")
	targets, err := s.admitClusters(ctx, names, cfg, caller)
	if err != nil {
		return nil, err
	}
	now := s.Stamp()
	op := &pb.Operation{
		OpId:            newOpID(now.GetLocalTime().AsTime()),
		Cluster:         names[0],
		State:           pb.OperationState_OPERATION_STATE_PENDING,
		Epoch:           epoch,
		Targets:         targets,
		RequestedHoldMs: spec.holdMs,
		LeaseMs:         cfg.GetLeaseNs() / int64(time.Millisecond),
		RequestedBy:     who,
		CreatedAt:       now,
		Leader:          s.cfg.NodeID,
		Leaders:         []string{s.cfg.NodeID},
		RequestId:       spec.requestID,
	}
	if len(names) > 1 {
		op.Clusters = names
	}
	op.Backup = spec.backup
	if spec.untilUnpaused {
		op.UntilUnpaused = true
		op.MaxHoldNs = int64(fsm.MaxHold(cfg))
	}
	// The commit must not depend on the client staying: a cancel after
	// Raft took the entry would leave the op without a runner (the
	// re-drive loop would still find it, but the client would be told it
	// failed).
	cctx, cancel := commitContext(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	out, err := s.Apply(cctx, &pb.CreateOperationCommand{Operation: op, Actor: who, Caller: caller})
	if errors.Is(err, fsm.ErrClusterLocked) {
		// Taken since heldRefusal looked: name the holder.
		if herr := s.heldRefusal(names); herr != nil {
			return nil, herr
		}
	}
	if err != nil {
		return nil, s.toStatus(err)
	}
	stored, _ := out.(*pb.Operation)
	if stored == nil {
		stored = op
	}
	s.log.Info("pause admitted and recorded", zap.String("op_id", op.GetOpId()), zap.String("cluster", label),
		zap.Int("targets", len(targets)), zap.String("actor", who), zap.Uint64("epoch", epoch))
	if !s.startRunner(stored) {
		return nil, apiError(codes.Unknown, pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN, map[string]string{"op_id": op.GetOpId()},
			"server %s lost leadership after recording %s; the next leader takes it over (retry with the same request_id, or `stillpoint ops show %s`)", s.cfg.NodeID, op.GetOpId(), op.GetOpId())
	}
	return &pb.StartPauseResponse{Operation: stored}, nil
}

// retriedOp finds the op a recorded request with spec's request id
// started (ok), whatever became of it; a request id reused for another
// plan or other clusters is an error.
func (s *Server) retriedOp(spec opSpec) (prev *pb.Operation, ok bool, err error) {
	prev, ok = s.fsm.OperationByRequest(spec.requestID)
	if !ok {
		return nil, false, nil
	}
	if prevPlan, plan := prev.GetBackup().GetPlan().GetName(), spec.backup.GetPlan().GetName(); prevPlan != plan {
		return nil, false, apiError(codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_REQUEST_ID_CONFLICT, map[string]string{"op_id": prev.GetOpId(), "field": "request_id"},
			"request_id %q already started operation %s (plan %q), not one of plan %q",
			spec.requestID, prev.GetOpId(), prevPlan, plan)
	}
	if spec.backup == nil && !slices.Equal(fsm.Clusters(prev), spec.clusters) {
		return nil, false, apiError(codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_REQUEST_ID_CONFLICT, map[string]string{"op_id": prev.GetOpId(), "field": "request_id"},
			"request_id %q already started operation %s on cluster %s, not %s",
			spec.requestID, prev.GetOpId(), fsm.ClusterNames(prev), strings.Join(spec.clusters, ", "))
	}
	s.log.Info("StartPause retried; returning the op it started", zap.String("op_id", prev.GetOpId()), zap.String("request_id", spec.requestID))
	return prev, true, nil
}

// heldRefusal refuses a pause of names while any of them is held by an op.
func (s *Server) heldRefusal(names []string) error {
	var held, clusters, holders []string
	for _, c := range names {
		if holder, locked := s.fsm.Lock(c); locked {
			held = append(held, fmt.Sprintf("cluster %s is held by operation %s (watch it with `stillpoint ops watch %s`)", c, holder, holder))
			clusters = append(clusters, c)
			if !slices.Contains(holders, holder) {
				holders = append(holders, holder)
			}
		}
	}
	if len(held) > 0 {
		return apiError(codes.FailedPrecondition, pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED, map[string]string{"cluster": strings.Join(clusters, ","), "op_id": strings.Join(holders, ",")},
			"%s; one operation at a time per cluster, nothing was paused", strings.Join(held, "; "))
	}
	return nil
}

// admitClusters runs one admission over every cluster's roster (one window
// over all targets needs every clock within the bounds together) and
// returns the targets; a refusal is audited with caller.
func (s *Server) admitClusters(ctx context.Context, names []string, cfg *pb.RuntimeConfig, caller *pb.Caller) ([]*pb.TargetRecord, error) {
	var cands []candidate
	var empty []string
	for _, c := range names {
		cs := s.candidates(ctx, c)
		if len(cs) == 0 {
			empty = append(empty, c)
		}
		cands = append(cands, cs...)
	}
	label := strings.Join(names, "+")
	if err := s.flagReportedInterrupts(ctx, cands); err != nil {
		// Pausing now would make the agent forget its report.
		return nil, notAppliedError(map[string]string{"cluster": label}, "pause of %s not started: %v; retry", label, err)
	}
	targets, err := admit(label, cands, cfg)
	if len(empty) > 0 && len(names) > 1 {
		// Every cluster must have agents, not just all of them together.
		targets, err = nil, unknownClusterError{fmt.Errorf("%w for cluster %s: cluster %s has no agents", ErrRefused, label, strings.Join(empty, ", ")), strings.Join(empty, ",")}
	}
	if err != nil {
		who := caller.GetActor()
		s.log.Warn("pause refused", zap.String("cluster", label), zap.String("actor", who), zap.Error(err))
		actx, cancel := context.WithTimeout(ctx, s.cfg.ApplyTimeout)
		defer cancel()
		_, _ = s.Apply(actx, &pb.AppendAuditCommand{Record: &pb.AuditRecord{Action: "pause_refused", Actor: who, Caller: caller, Detail: err.Error(), At: s.Stamp()}})
		return nil, s.toStatus(err) // FAILED_PRECONDITION; NOT_FOUND UNKNOWN_CLUSTER for a name nobody joined
	}
	return targets, nil
}

// requestClusters is every cluster req names (cluster, then clusters),
// and what is wrong with them: none, an empty name, or one named twice
// (never silently collapsed).
func requestClusters(req *pb.StartPauseRequest) (names, bad []string) {
	if req.GetCluster() != "" {
		names = append(names, req.GetCluster())
	}
	names = append(names, req.GetClusters()...)
	if len(names) == 0 {
		return nil, []string{"cluster is required"}
	}
	seen := map[string]bool{}
	for _, c := range names {
		switch {
		case c == "":
			bad = append(bad, "clusters names an empty cluster")
		case seen[c]:
			bad = append(bad, fmt.Sprintf("cluster %s is named twice; name each cluster once", c))
		}
		seen[c] = true
	}
	return names, bad
}

// commitContext is ctx's values without its cancellation, bounded by the
// apply timeout: for a write that, once sent to Raft, must be seen through.
func commitContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), timeout)
}

// ForceUnpause ends an operation's hold now: every target is unpaused and
// the op completes with its window when the window is valid (INVALID with
// why when not), or with abort it ends ABORTED without a window. The
// intended end is recorded with the op, so a new leader ends it the same
// way. For an operation that already ended it returns the record.
func (s *Server) ForceUnpause(ctx context.Context, req *pb.ForceUnpauseRequest) (*pb.ForceUnpauseResponse, error) {
	if req.GetOpId() == "" {
		return nil, invalidArgument("op_id", "op_id is required")
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.ForceUnpause); done {
		return resp, err
	}
	op, ok := s.fsm.Operation(req.GetOpId())
	if !ok {
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND, map[string]string{"op_id": req.GetOpId()}, "operation %s not found (list them with `stillpoint ops list`)", req.GetOpId())
	}
	caller := s.callerOf(ctx, "")
	who := caller.GetActor()
	reason := fmt.Sprintf("by %s", who)
	if req.GetReason() != "" {
		reason += ": " + req.GetReason()
	}
	if fsm.IsTerminal(op.GetState()) {
		return &pb.ForceUnpauseResponse{Operation: op}, nil
	}
	s.pauses.mu.Lock()
	r := s.pauses.running[op.GetOpId()]
	s.pauses.mu.Unlock()
	if r == nil {
		return nil, notAppliedError(map[string]string{"op_id": op.GetOpId()}, "operation %s is not driven by leader %s yet; retry", op.GetOpId(), s.cfg.NodeID)
	}
	action := "unpause-requested"
	if req.GetAbort() {
		action = "abort-requested"
	}
	caller.Note = req.GetReason()
	actx, cancel := commitContext(ctx, s.cfg.ApplyTimeout)
	defer cancel()
	if _, err := s.Apply(actx, &pb.AppendAuditCommand{Record: &pb.AuditRecord{Action: action, Actor: who, Caller: caller, OpId: op.GetOpId(),
		Detail: fmt.Sprintf("cluster %s, state %s", fsm.ClusterNames(op), op.GetState()), At: s.Stamp()}}); err != nil {
		return nil, s.toStatus(err)
	}
	if req.GetAbort() {
		s.log.Warn("force unpause (abort) requested", zap.String("op_id", op.GetOpId()), zap.String("actor", who), zap.String("reason", req.GetReason()))
		r.forceUnpause(reason)
	} else {
		s.log.Info("end of hold requested", zap.String("op_id", op.GetOpId()), zap.String("actor", who), zap.String("reason", req.GetReason()))
		r.endHoldNow(reason)
	}
	final, err := s.waitTerminal(ctx, op.GetOpId())
	if err != nil {
		return nil, err
	}
	return &pb.ForceUnpauseResponse{Operation: final}, nil
}

// waitTerminal waits until the local FSM holds op in a terminal state.
func (s *Server) waitTerminal(ctx context.Context, opID string) (*pb.Operation, error) {
	for {
		ch := s.fsm.Changed()
		if op, ok := s.fsm.Operation(opID); ok && fsm.IsTerminal(op.GetState()) {
			return op, nil
		}
		select {
		case <-ctx.Done():
			return nil, s.toStatus(ctx.Err())
		case <-ch:
		}
	}
}
