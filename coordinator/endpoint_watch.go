package coordinator

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// WatchOperation streams the operation from this server's replica on
// every change until it ends.
func (s *Server) WatchOperation(req *pb.WatchOperationRequest, stream pb.CoordinatorService_WatchOperationServer) error {
	if req.GetOpId() == "" {
		return invalidArgument("op_id", "op_id is required")
	}
	ctx := stream.Context()
	notFound := time.NewTimer(s.cfg.LeaderWait)
	defer notFound.Stop()
	var last *pb.Operation
	for {
		ch := s.fsm.Changed()
		op, ok := s.fsm.Operation(req.GetOpId())
		if ok && !proto.Equal(op, last) {
			if err := stream.Send(&pb.WatchOperationResponse{Operation: op}); err != nil {
				return err
			}
			last = op
			if fsm.IsTerminal(op.GetState()) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return s.toStatus(ctx.Err())
		case <-notFound.C:
			if last == nil {
				return apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND, map[string]string{"op_id": req.GetOpId()}, "operation %s not found on server %s", req.GetOpId(), s.cfg.NodeID)
			}
		case <-ch:
		}
	}
}
