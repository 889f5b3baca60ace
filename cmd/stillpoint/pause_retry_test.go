package main

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// slowFirstCoordinator leaves the first StartPause unanswered until the
// caller gives up on it, then serves (the op of the first request id, which
// the watch shows completed), recording every request id.
type slowFirstCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	mu  sync.Mutex
	ids []string
}

func (s *slowFirstCoordinator) StartPause(ctx context.Context, req *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	s.mu.Lock()
	s.ids = append(s.ids, req.GetRequestId())
	first := len(s.ids) == 1
	s.mu.Unlock()
	if first {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return &pb.StartPauseResponse{Operation: &pb.Operation{OpId: "op-1", RequestId: req.GetRequestId(), State: pb.OperationState_OPERATION_STATE_PENDING}}, nil
}

func (s *slowFirstCoordinator) WatchOperation(req *pb.WatchOperationRequest, st grpc.ServerStreamingServer[pb.WatchOperationResponse]) error {
	return st.Send(&pb.WatchOperationResponse{Operation: &pb.Operation{OpId: req.GetOpId(), State: pb.OperationState_OPERATION_STATE_COMPLETED}})
}

func (s *slowFirstCoordinator) requestIDs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ids...)
}

// An attempt of `pause` that times out is retried within --timeout, with
// the same request id, which starts with "cli-" (the audit log tells a
// CLI pause by it).
func TestPauseRetriesATimedOutAttemptWithinTimeout(t *testing.T) {
	s := &slowFirstCoordinator{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	out, err := runCoordCLI(t, "pause", "--cluster", "ledger", "--addr", lis.Addr().String(), "--timeout", "8s", "-o", "json")
	ids := s.requestIDs()
	if err != nil {
		t.Fatalf("pause: %v (request ids %q)\n%s", err, ids, out)
	}
	if len(ids) != 2 || ids[1] != ids[0] || !strings.HasPrefix(ids[0], "cli-") {
		t.Errorf("StartPause attempts carried %q: want two attempts with one cli- id", ids)
	}
}
