package coordinator

import (
	"fmt"
	"path/filepath"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
)

// setupGossip joins the memberlist pool as role "server". Servers gossip
// their gRPC address; their Raft address is asked over gRPC
// (GetServerInfo), so the metadata stays small.
func (s *Server) setupGossip() error {
	gc := s.cfg.Gossip
	gc.Name = s.cfg.NodeID
	if gc.Logger == nil {
		gc.Logger = s.cfg.Logger
	}
	if gc.KeyringFile == "" {
		// Keys installed at run time (`stillpoint keyring`) survive a restart.
		gc.KeyringFile = filepath.Join(s.cfg.DataDir, KeyringFileName)
	}
	incarnation := gossip.NewIncarnation()
	meta := gossip.Meta{Role: RoleServer, GRPCAddr: s.grpcAddr, Incarnation: incarnation}
	pool, err := gossip.New(gc, func() gossip.Meta { return meta })
	if err != nil {
		return fmt.Errorf("server %s: %w", s.cfg.NodeID, err)
	}
	s.pool = pool
	events, cancel := pool.Subscribe(256)
	s.unsubPool = cancel
	s.wg.Add(1)
	go s.pumpEvents(events)
	return nil
}

// pumpEvents hands gossip events to the leader's reconcile loop and the
// bootstrap loop without ever blocking: a dropped event is healed by the
// next full reconcile.
func (s *Server) pumpEvents(events <-chan gossip.Event) {
	defer s.wg.Done()
	for ev := range events {
		select {
		case s.reconcileCh <- ev.Member:
		default:
		}
		select {
		case s.bootstrapKick <- struct{}{}:
		default:
		}
		select {
		case s.alarmKick <- struct{}{}:
		default:
		}
	}
}

// Members is the live gossip view of every member (agents and servers),
// sorted by name: clock estimates and node states as last gossiped.
func (s *Server) Members() []gossip.Member { return s.pool.Members() }

// Member is one member of the live gossip view.
func (s *Server) Member(name string) (gossip.Member, bool) { return s.pool.Member(name) }

// JoinGossip contacts the given gossip addresses.
func (s *Server) JoinGossip(addrs []string) (int, error) { return s.pool.Join(addrs) }
