package agent

import (
	"context"
	"fmt"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// service is the AgentService gRPC edge: it converts agent errors to
// status codes and nothing else.
type service struct {
	pb.UnimplementedAgentServiceServer
	a *Agent
}

var _ pb.AgentServiceServer = (*service)(nil)

func (s *service) Pause(ctx context.Context, req *pb.PauseRequest) (*pb.PauseResponse, error) {
	resp, err := s.a.core.Pause(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

func (s *service) RenewLease(ctx context.Context, req *pb.RenewLeaseRequest) (*pb.RenewLeaseResponse, error) {
	resp, err := s.a.core.RenewLease(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

func (s *service) Unpause(ctx context.Context, req *pb.UnpauseRequest) (*pb.UnpauseResponse, error) {
	resp, err := s.a.core.Unpause(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

func (s *service) Status(context.Context, *pb.StatusRequest) (*pb.StatusResponse, error) {
	return &pb.StatusResponse{State: s.a.State()}, nil
}

func (s *service) RunHook(ctx context.Context, req *pb.RunHookRequest) (*pb.RunHookResponse, error) {
	resp, err := s.a.hooks.RunHook(ctx, req)
	s.a.kickGossip()
	return resp, toStatus(s.a.cfg.NodeName, err)
}

// KeyringFileName is the agent's gossip keyring file in its data dir.
const KeyringFileName = "gossip.keyring"

// Keyring lists or changes the agent's gossip keyring. Only coordinator
// servers send it: with mTLS on, the server-certificate check of the
// AgentService covers it; without TLS anyone who reaches the agent's port
// can call it, as they can Pause.
func (s *service) Keyring(_ context.Context, req *pb.AgentServiceKeyringRequest) (*pb.AgentServiceKeyringResponse, error) {
	pool := s.a.poolRef()
	if pool == nil {
		return nil, toStatus(s.a.cfg.NodeName, fmt.Errorf("%w: agent %s has not started gossip yet; retry shortly", ErrNotReady, s.a.cfg.NodeName))
	}
	res := pool.ApplyKeyring(req.GetOp(), req.GetKey())
	res.Role = s.a.cfg.Role
	return &pb.AgentServiceKeyringResponse{Result: res}, nil
}
