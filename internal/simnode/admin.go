package simnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// ErrorDomain is the ErrorInfo domain of the scalar-admin protocol.
const ErrorDomain = "com.scalar.dl.admin"

// ErrorInfo reasons sent by newer (v2) servers.
const (
	ReasonPauseInProgress     = "PAUSE_IN_PROGRESS"
	ReasonGateOpen            = "GATE_OPEN"
	ReasonTimedOut            = "TIMED_OUT"
	ReasonTimedOutStillPaused = "TIMED_OUT_STILL_PAUSED"
)

// adminServer is one server generation's rpc.Admin; stop closes when that
// generation dies (restart or stop).
type adminServer struct {
	rpc.UnimplementedAdminServer
	n    *Node
	stop <-chan struct{}
}

var _ rpc.AdminServer = (*adminServer)(nil)

// Pause implements rpc.Admin/Pause. The drain runs on the server's own
// timer: like the real servers, a client that gives up does not cancel it.
func (s *adminServer) Pause(_ context.Context, req *rpc.PauseRequest) (*emptypb.Empty, error) {
	n := s.n
	wait := req.GetWaitOutstanding()
	maxWait := n.cfg.DefaultMaxPauseWait
	if req.MaxPauseWaitTime != nil {
		ms := req.GetMaxPauseWaitTime()
		if wait && ms <= 0 {
			n.log.Warn("pause rejected", zap.Int64("max_pause_wait_ms", ms))
			return nil, status.Errorf(codes.InvalidArgument,
				"node %s: max_pause_wait_time %d ms must be positive when wait_outstanding is set", n.cfg.ID, ms)
		}
		maxWait = time.Duration(ms) * time.Millisecond
	}
	log := n.log.With(zap.String("op", "pause"), zap.Bool("wait_outstanding", wait), zap.Int64("max_pause_wait_ms", maxWait.Milliseconds()))
	began := time.Now()
	err := n.gate.pause(wait, maxWait, s.stop)
	took := zap.Int64("took_ms", time.Since(began).Milliseconds())
	switch {
	case err == nil:
		log.Info("paused", took, zap.Int("in_flight", n.gate.inFlight()))
		return &emptypb.Empty{}, nil
	case errors.Is(err, errTimedOut):
		log.Warn("pause drain timed out: gate reopened", took, zap.Int("in_flight", n.gate.inFlight()))
		return nil, s.status(codes.FailedPrecondition, ReasonTimedOut,
			"node %s: in-flight requests did not drain within %d ms; gate reopened", n.cfg.ID, maxWait.Milliseconds())
	case errors.Is(err, errTimedOutStillPaused):
		log.Warn("pause drain timed out: earlier pause still holds the gate", took, zap.Int("in_flight", n.gate.inFlight()))
		return nil, s.status(codes.FailedPrecondition, ReasonTimedOutStillPaused,
			"node %s: in-flight requests did not drain within %d ms; an earlier pause still holds the gate", n.cfg.ID, maxWait.Milliseconds())
	case errors.Is(err, errGateOpened):
		log.Warn("pause aborted: unpaused during the drain", took)
		return nil, s.status(codes.Aborted, ReasonGateOpen, "node %s: the gate was opened by an unpause during the drain", n.cfg.ID)
	case errors.Is(err, errPauseInProgress):
		log.Warn("pause aborted: another pause is draining", took)
		return nil, s.status(codes.Aborted, ReasonPauseInProgress, "node %s: another pause is in progress", n.cfg.ID)
	case errors.Is(err, ErrStopped):
		return nil, status.Errorf(codes.Unavailable, "node %s: stopping", n.cfg.ID)
	default:
		return nil, status.Errorf(codes.Internal, "node %s: pause: %v", n.cfg.ID, err)
	}
}

// status builds an error status; v2 servers attach an ErrorInfo, v1 servers
// send the bare code.
func (s *adminServer) status(code codes.Code, reason, format string, args ...any) error {
	st := status.New(code, fmt.Sprintf(format, args...))
	if s.n.cfg.V1 {
		return st.Err()
	}
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{
		Reason:   reason,
		Domain:   ErrorDomain,
		Metadata: map[string]string{"node_id": s.n.cfg.ID},
	})
	if err != nil {
		return st.Err()
	}
	return withInfo.Err()
}

// Unpause implements rpc.Admin/Unpause (idempotent).
func (s *adminServer) Unpause(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	was := s.n.gate.unpause()
	s.n.log.Info("unpaused", zap.String("op", "unpause"), zap.Bool("was_paused", was))
	return &emptypb.Empty{}, nil
}

// CheckPaused implements rpc.Admin/CheckPaused (v2 only).
func (s *adminServer) CheckPaused(context.Context, *emptypb.Empty) (*rpc.CheckPausedResponse, error) {
	if s.n.cfg.V1 {
		return nil, status.Error(codes.Unimplemented, "method CheckPaused not implemented")
	}
	return &rpc.CheckPausedResponse{Paused: s.n.gate.paused()}, nil
}

// statsJSON is the v1 Stats payload.
type statsJSON struct {
	NodeID    string `json:"node_id"`
	Mode      string `json:"mode"`
	Paused    bool   `json:"paused"`
	InFlight  int    `json:"in_flight"`
	Committed int64  `json:"committed"`
	Rejected  int64  `json:"rejected"`
	Failed    int64  `json:"failed"`
}

// Stats implements rpc.Admin/Stats (v1 only).
func (s *adminServer) Stats(context.Context, *emptypb.Empty) (*rpc.StatsResponse, error) {
	n := s.n
	if !n.cfg.V1 {
		return nil, status.Error(codes.Unimplemented, "method Stats not implemented")
	}
	st := n.Stats()
	b, err := json.Marshal(statsJSON{
		NodeID: n.cfg.ID, Mode: n.cfg.Mode.String(), Paused: n.gate.paused(), InFlight: n.gate.inFlight(),
		Committed: st.Committed, Rejected: st.Rejected, Failed: st.Failed,
	})
	if err != nil {
		return nil, status.Errorf(codes.Internal, "node %s: stats: %v", n.cfg.ID, err)
	}
	return &rpc.StatsResponse{Stats: string(b)}, nil
}
