package client

import (
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// replayWatch answers the n-th WatchOperation with streams[n]: the records
// in order, then the stream's end (nil: the op ended; else the error).
type replayWatch struct {
	pb.UnimplementedCoordinatorServiceServer
	mu      sync.Mutex
	streams []watchScript
	opened  int
}

type watchScript struct {
	states []pb.OperationState
	end    error
}

func (r *replayWatch) WatchOperation(req *pb.WatchOperationRequest, s grpc.ServerStreamingServer[pb.WatchOperationResponse]) error {
	r.mu.Lock()
	sc := r.streams[min(r.opened, len(r.streams)-1)]
	r.opened++
	r.mu.Unlock()
	for _, st := range sc.states {
		if err := s.Send(&pb.WatchOperationResponse{Operation: &pb.Operation{OpId: req.GetOpId(), State: st}}); err != nil {
			return err
		}
	}
	return sc.end
}

func (r *replayWatch) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened
}

func serveWatch(t *testing.T, r *replayWatch) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// A watch whose stream breaks is reopened; a lagging replica's older
// record and repeated records are not shown: the callback sees each state
// once, in order, and the watch ends with the final record.
func TestWatchOperationResumesAndNeverGoesBackwards(t *testing.T) {
	const (
		pending  = pb.OperationState_OPERATION_STATE_PENDING
		pausing  = pb.OperationState_OPERATION_STATE_PAUSING
		holding  = pb.OperationState_OPERATION_STATE_HOLDING
		complete = pb.OperationState_OPERATION_STATE_COMPLETED
	)
	r := &replayWatch{streams: []watchScript{
		{states: []pb.OperationState{pending, pausing, holding}, end: status.Error(codes.Unavailable, "server shutting down")},
		{states: []pb.OperationState{pausing, holding, holding, complete}}, // a lagging replica, then the end
	}}
	c := dial(t, serveWatch(t, r))
	var seen []pb.OperationState
	final, err := c.WatchOperation(testCtx(t), "op-1", func(op *pb.Operation) error {
		seen = append(seen, op.GetState())
		return nil
	})
	if err != nil || final.GetState() != complete {
		t.Fatalf("watch: %v, final %v", err, final.GetState())
	}
	want := []pb.OperationState{pending, pausing, holding, complete}
	if len(seen) != len(want) {
		t.Fatalf("callback saw %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("callback saw %v, want %v", seen, want)
		}
	}
	if n := r.count(); n != 2 {
		t.Errorf("%d streams opened, want 2 (one reopened after the break)", n)
	}

	// A refusal ends the watch at once.
	r = &replayWatch{streams: []watchScript{{end: status.Error(codes.NotFound, "operation op-2 not found")}}}
	c = dial(t, serveWatch(t, r))
	if _, err := c.WatchOperation(testCtx(t), "op-2", nil); status.Code(err) != codes.NotFound || r.count() != 1 {
		t.Errorf("watch of an unknown op: %v after %d streams, want NOT_FOUND after 1", err, r.count())
	}
}
