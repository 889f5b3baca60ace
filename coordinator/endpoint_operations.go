package coordinator

import (
	"context"

	"google.golang.org/grpc/codes"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// GetOperation returns one operation's stored record.
func (s *Server) GetOperation(ctx context.Context, req *pb.GetOperationRequest) (*pb.GetOperationResponse, error) {
	if req.GetOpId() == "" {
		return nil, invalidArgument("op_id", "op_id is required")
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.GetOperation); done {
		return resp, err
	}
	op, ok := s.fsm.Operation(req.GetOpId())
	if !ok {
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND, map[string]string{"op_id": req.GetOpId()}, "operation %s not found on server %s (list them with `stillpoint ops`)", req.GetOpId(), s.cfg.NodeID)
	}
	return &pb.GetOperationResponse{Operation: op}, nil
}

// ListOperations lists operations newest first.
func (s *Server) ListOperations(ctx context.Context, req *pb.ListOperationsRequest) (*pb.ListOperationsResponse, error) {
	if req.GetLimit() < 0 {
		return nil, invalidArgument("limit", "limit %d is negative", req.GetLimit())
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListOperations); done {
		return resp, err
	}
	return &pb.ListOperationsResponse{Operations: s.fsm.Operations(req.GetCluster(), int(req.GetLimit()))}, nil
}

// ListRestorePoints lists the catalog newest first.
func (s *Server) ListRestorePoints(ctx context.Context, req *pb.ListRestorePointsRequest) (*pb.ListRestorePointsResponse, error) {
	if req.GetLimit() < 0 {
		return nil, invalidArgument("limit", "limit %d is negative", req.GetLimit())
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.ListRestorePoints); done {
		return resp, err
	}
	return &pb.ListRestorePointsResponse{RestorePoints: s.fsm.RestorePoints(req.GetCluster(), int(req.GetLimit()))}, nil
}

// GetRestorePoint returns the catalog entry of one operation.
func (s *Server) GetRestorePoint(ctx context.Context, req *pb.GetRestorePointRequest) (*pb.GetRestorePointResponse, error) {
	if req.GetOpId() == "" {
		return nil, invalidArgument("op_id", "op_id is required")
	}
	if resp, done, err := forwardRead(ctx, s, req.GetStale(), req, pb.CoordinatorServiceClient.GetRestorePoint); done {
		return resp, err
	}
	rp, ok := s.fsm.RestorePoint(req.GetOpId())
	if !ok {
		if op, found := s.fsm.Operation(req.GetOpId()); found {
			return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_NO_RESTORE_POINT, map[string]string{"op_id": req.GetOpId()}, "operation %s has no restore point: it is %s (%s)", req.GetOpId(), op.GetState(), op.GetReason())
		}
		return nil, apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND, map[string]string{"op_id": req.GetOpId()}, "no operation %s on server %s, so no restore point (list them with `stillpoint ops`)", req.GetOpId(), s.cfg.NodeID)
	}
	return &pb.GetRestorePointResponse{RestorePoint: rp}, nil
}
