package coordinator

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
		return nil, status.Errorf(codes.InvalidArgument, "server %s refused the config: %v", s.cfg.NodeID, err)
	}
	if !isForwarded(ctx) {
		req = proto.Clone(req).(*pb.UpdateConfigRequest)
		req.RequestedBy = actor(ctx, req.GetRequestedBy())
	}
	if resp, done, err := forward(ctx, s, req, pb.CoordinatorServiceClient.UpdateConfig); done {
		return resp, err
	}
	out, err := s.Apply(ctx, &pb.SetConfigCommand{Config: req.GetConfig(), Actor: req.GetRequestedBy(), At: s.Stamp()})
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
	if req.GetLimit() < 0 {
		return nil, status.Errorf(codes.InvalidArgument, "limit %d is negative", req.GetLimit())
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListAudit); done {
		return resp, err
	}
	return &pb.ListAuditResponse{Records: s.fsm.Audit(int(req.GetLimit()))}, nil
}
