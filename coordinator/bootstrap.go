package coordinator

import (
	"context"
	"sort"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/gossip"
)

// bootstrapExpectLoop waits until BootstrapExpect servers are alive in the
// gossip pool, asks each whether it already has Raft state (then a cluster
// exists and its leader will add this server), and otherwise bootstraps
// the cluster from all of them. Every server computes the same
// configuration, so the duplicate bootstraps agree.
func (s *Server) bootstrapExpectLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.hasRaftState() {
			return
		}
		if s.tryBootstrap() {
			return
		}
		select {
		case <-s.shutdownCh:
			return
		case <-s.bootstrapKick:
		case <-tick.C:
		}
	}
}

func (s *Server) hasRaftState() bool {
	f := s.raft.GetConfiguration()
	return f.Error() == nil && len(f.Configuration().Servers) > 0
}

// tryBootstrap reports whether this server is done bootstrapping (it
// bootstrapped, or found an existing cluster to be added to).
func (s *Server) tryBootstrap() bool {
	var servers []gossip.Member
	for _, m := range s.pool.Members() {
		if m.Status == gossip.StatusAlive && m.MetaErr == nil && m.Meta.Role == RoleServer {
			servers = append(servers, m)
		}
	}
	if len(servers) < s.cfg.BootstrapExpect {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	go func() {
		select {
		case <-s.shutdownCh:
			cancel()
		case <-ctx.Done():
		}
	}()
	var cfg raft.Configuration
	for _, m := range servers {
		if m.Name == s.cfg.NodeID {
			cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(m.Name), Address: raft.ServerAddress(s.RaftAddr()), Suffrage: raft.Voter})
			continue
		}
		info, err := s.askServerInfo(ctx, m.Meta.GRPCAddr)
		if err != nil {
			s.log.Debug("bootstrap: peer not ready", zap.String("peer", m.Name), zap.Error(err))
			return false
		}
		if info.GetHasRaftState() {
			s.log.Info("bootstrap: a cluster already exists; waiting for its leader to add this server", zap.String("peer", m.Name))
			return true
		}
		cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(info.GetNodeId()), Address: raft.ServerAddress(info.GetRaftAddress()), Suffrage: raft.Voter})
	}
	sort.Slice(cfg.Servers, func(i, j int) bool { return cfg.Servers[i].ID < cfg.Servers[j].ID })
	if err := s.raft.BootstrapCluster(cfg).Error(); err != nil && err != raft.ErrCantBootstrap {
		s.log.Warn("bootstrap failed; retrying", zap.Error(err))
		return false
	}
	ids := make([]string, 0, len(cfg.Servers))
	for _, srv := range cfg.Servers {
		ids = append(ids, string(srv.ID))
	}
	s.log.Info("bootstrapped the Raft cluster", zap.Strings("servers", ids))
	return true
}
