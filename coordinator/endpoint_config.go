package coordinator

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// GetConfig returns the runtime config in force.
func (s *Server) GetConfig(ctx context.Context, req *pb.GetConfigRequest) (*pb.GetConfigResponse, error) {
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.GetConfig); done {
		return resp, err
	}
	return &pb.GetConfigResponse{Config: s.fsm.Config()}, nil
}

// UpdateConfig replaces the whole runtime config (read it with GetConfig,
// change fields, send it back). Invalid configs are refused with every
// problem listed; the change is audited with the actor.
func (s *Server) UpdateConfig(ctx context.Context, req *pb.UpdateConfigRequest) (*pb.UpdateConfigResponse, error) {
	if err := errors.Join(fsm.ValidateRuntimeConfig(req.GetConfig()), fsm.CheckRetiredFields(req.GetConfig())); err != nil {
		return nil, apiError(codes.InvalidArgument, pb.ErrorReason_ERROR_REASON_INVALID_CONFIG, nil, "server %s refused the config: %v", s.cfg.NodeID, err)
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.UpdateConfig); done {
		return resp, err
	}
	c := s.callerOf(ctx, req.GetRequestedBy())
	out, err := s.Apply(ctx, &pb.SetConfigCommand{Config: req.GetConfig(), Actor: c.GetActor(), Caller: c, At: s.Stamp()})
	if err != nil {
		return nil, s.toStatus(err)
	}
	return &pb.UpdateConfigResponse{Config: out.(*pb.RuntimeConfig)}, nil
}

// ListAlarms lists active alarms (and cleared ones on request).
func (s *Server) ListAlarms(ctx context.Context, req *pb.ListAlarmsRequest) (*pb.ListAlarmsResponse, error) {
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListAlarms); done {
		return resp, err
	}
	return &pb.ListAlarmsResponse{Alarms: s.fsm.Alarms(req.GetIncludeCleared())}, nil
}

// ListAudit lists the newest audit records first (limit 0: all).
func (s *Server) ListAudit(ctx context.Context, req *pb.ListAuditRequest) (*pb.ListAuditResponse, error) {
	if err := ValidateListAudit(req); err != nil {
		return nil, err
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListAudit); done {
		return resp, err
	}
	if req.GetSince() == nil {
		return &pb.ListAuditResponse{Records: s.fsm.Audit(int(req.GetLimit()))}, nil
	}
	since := req.GetSince().AsTime()
	var out []*pb.AuditRecord
	for _, r := range s.fsm.Audit(0) { // newest first
		if r.GetAt().GetLocalTime().AsTime().Before(since) {
			continue // stamps of different leaders need not be in index order
		}
		out = append(out, r)
		if req.GetLimit() > 0 && len(out) == int(req.GetLimit()) {
			break
		}
	}
	return &pb.ListAuditResponse{Records: out}, nil
}

// ValidateListAudit checks an audit query.
func ValidateListAudit(req *pb.ListAuditRequest) error {
	if req.GetLimit() < 0 {
		return invalidArgument("limit", "limit %d is negative", req.GetLimit())
	}
	if req.GetSince() != nil {
		if err := req.GetSince().CheckValid(); err != nil {
			return invalidArgument("since", "since: %v", err)
		}
	}
	return nil
}
