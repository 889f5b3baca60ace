package coordinator

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// ErrApplyTimeout: the deadline passed before Raft reported the outcome of
// an apply. The entry may still be committed.
var ErrApplyTimeout = errors.New("timed out waiting for the Raft commit; the write may still be committed")

// Apply replicates one FSM command through Raft and returns the FSM's
// result. It must run on the leader (raft.ErrNotLeader otherwise). The wait
// is bounded by ctx (or Config.ApplyTimeout without a deadline): Raft's
// future can block forever without a quorum. A rejection by the FSM is
// returned as its error (see the fsm package's sentinels); the command
// then changed nothing.
func (s *Server) Apply(ctx context.Context, cmd proto.Message) (proto.Message, error) {
	b, err := fsm.Encode(cmd)
	if err != nil {
		return nil, err
	}
	resp, err := s.applyRaw(ctx, b)
	if err != nil {
		return nil, err
	}
	return resp.Value, resp.Err
}

func (s *Server) applyRaw(ctx context.Context, b []byte) (*fsm.Response, error) {
	timeout := s.cfg.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("server %s: apply: %w", s.cfg.NodeID, context.DeadlineExceeded)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f := s.raft.Apply(b, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		if errors.Is(ctx.Err(), context.Canceled) {
			return nil, fmt.Errorf("server %s: apply cancelled; the write may still be committed: %w", s.cfg.NodeID, ctx.Err())
		}
		return nil, fmt.Errorf("server %s: %w (waited %v)", s.cfg.NodeID, ErrApplyTimeout, timeout.Round(time.Millisecond))
	case <-s.shutdownCh:
		return nil, raft.ErrRaftShutdown
	}
	resp, ok := f.Response().(*fsm.Response)
	if !ok {
		return nil, fmt.Errorf("server %s: apply returned %T, want *fsm.Response", s.cfg.NodeID, f.Response())
	}
	return resp, nil
}

// Stamp is the server's wall time now with the clock estimate it was read
// under (absent when the server has no NTP sampler).
func (s *Server) Stamp() *pb.StampedTime {
	if c := s.cfg.Clock; c != nil {
		now := c.Now()
		return c.Current().Stamp(now)
	}
	return &pb.StampedTime{LocalTime: timestamppb.New(s.cfg.Now())}
}
