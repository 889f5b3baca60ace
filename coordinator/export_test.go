package coordinator

import (
	"context"
	"fmt"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// MinHold is the runner's hold formula (SPEC "Pause protocol" step 4), for
// the e2e tests' exact check of a recorded hold against its ack bounds.
var MinHold = minHold

// ToStatusForTest is a server's toStatus of err (the reasons test calls
// the producers it cannot provoke through the API).
func ToStatusForTest(err error) error {
	s := &Server{cfg: Config{NodeID: "unit"}}
	return s.toStatus(err)
}

// RefusalLimitedForTest is the refusal of a relayed refusal over the
// limit.
func RefusalLimitedForTest() error {
	s := &Server{cfg: Config{NodeID: "unit"}}
	return s.refusalLimited()
}

// PanicForTest is what a client gets from a handler that panics behind
// the server's interceptors.
func PanicForTest() error {
	s := &Server{cfg: Config{NodeID: "unit"}, log: zap.NewNop()}
	unary, _ := s.interceptorOptions()
	h := func(context.Context, any) (any, error) { panic("reasons test") }
	for i := len(unary) - 1; i >= 0; i-- {
		in, next := unary[i], h
		h = func(ctx context.Context, req any) (any, error) {
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/stillpoint.v1.CoordinatorService/GetOperation"}, next)
		}
	}
	_, err := h(context.Background(), &pb.GetOperationRequest{OpId: "op-1"})
	return err
}

// RaftLogBytes is how many entries of s's Raft log lie in [from, to] and
// the total size of their data (the commands the FSM applies), read from
// the log store: the scale benchmark's FSM bytes per op.
func RaftLogBytes(s *Server, from, to uint64) (entries int, bytes int64, err error) {
	for i := from; i <= to; i++ {
		var l raft.Log
		if err := s.rp.wal.GetLog(i, &l); err != nil {
			return entries, bytes, fmt.Errorf("raft log entry %d: %w", i, err)
		}
		entries++
		bytes += int64(len(l.Data))
	}
	return entries, bytes, nil
}
