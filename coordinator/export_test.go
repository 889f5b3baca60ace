package coordinator

import (
	"context"

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
			return in(ctx, req, &grpc.UnaryServerInfo{FullMethod: "/test/Panic"}, next)
		}
	}
	_, err := h(context.Background(), &pb.GetOperationRequest{OpId: "op-1"})
	return err
}
