package coordinator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Server is one coordinator server: a Raft node over the FSM, a gossip
// member with role "server", and the CoordinatorService gRPC endpoint.
//
// Code in this package builds new RPCs on four seams: Apply (replicate a
// command), AddLeaderDuty (run while leader), Members/Member and FSM (the
// live gossip view and the replicated state), and forward (send a write to
// the leader).
type Server struct {
	pb.UnimplementedCoordinatorServiceServer

	cfg  Config
	log  *zap.Logger
	fsm  *fsm.FSM
	rp   *raftParts
	raft *raft.Raft

	grpcSrv  *grpc.Server
	grpcLis  net.Listener
	grpcAddr string
	health   *health.Server
	conns    *connPool
	// agentConns holds client links to agents (AgentTLS).
	agentConns *connPool
	// tls holds the reloadable key pairs: the listener's, the peer links'
	// and the agent links' (nil: plaintext).
	tls       serverTLS
	pauses    pauseDriver
	pool      *gossip.Pool
	unsubPool func()

	leader leaderState

	metricsReg *prometheus.Registry
	httpSrv    *http.Server
	httpLis    net.Listener

	// reconcileCh carries gossip members to the leader's reconcile loop;
	// sends never block (a full channel is healed by the periodic full
	// reconcile).
	reconcileCh chan gossip.Member
	// watch is the leader's watch duty's memory (watch.go).
	watch watchState
	// bootstrapKick wakes the bootstrap_expect loop on gossip changes.
	bootstrapKick chan struct{}
	// alarmKick wakes the leader's alarm evaluator on gossip updates.
	alarmKick chan struct{}
	infos     infoCache
	// refusals bounds the refused calls recorded in the audit log.
	refusals refusalLimiter

	shutdownCh   chan struct{}
	shutdownOnce sync.Once
	wg           sync.WaitGroup
}

var _ pb.CoordinatorServiceServer = (*Server)(nil)

// NewServer starts a server: Raft (bootstrapping when configured), the gRPC
// listener and the gossip pool. Stop it with Shutdown.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server %s: %w", cfg.NodeID, err)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger.With(zap.String("node", cfg.NodeID), zap.String("component", "coordinator"))
	s := &Server{
		cfg:           cfg,
		log:           log,
		fsm:           fsm.New(log),
		reconcileCh:   make(chan gossip.Member, 256),
		bootstrapKick: make(chan struct{}, 1),
		alarmKick:     make(chan struct{}, 1),
		infos:         infoCache{m: map[string]*pb.GetServerInfoResponse{}},
		shutdownCh:    make(chan struct{}),
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("server %s: create data dir: %w", cfg.NodeID, err)
	}
	if err := s.loadTLS(); err != nil {
		return nil, fmt.Errorf("server %s: %w", cfg.NodeID, err)
	}
	s.AddLeaderDuty("pause", s.pauseDuty)
	s.AddLeaderDuty("alarms", s.alarmDuty)
	s.AddLeaderDuty("notify", s.notifyDuty)
	s.AddLeaderDuty("watch", s.watchDuty)
	s.AddLeaderDuty("schedule", s.scheduleDuty)
	s.AddLeaderDuty("retention", s.retentionDuty)
	var err error
	if s.grpcLis, err = net.Listen("tcp", cfg.GRPCAddr); err != nil {
		return nil, fmt.Errorf("server %s: gRPC listen on %s: %w", cfg.NodeID, cfg.GRPCAddr, err)
	}
	s.grpcAddr = cfg.GRPCAdvertiseAddr
	if s.grpcAddr == "" {
		s.grpcAddr = s.grpcLis.Addr().String()
	}
	if s.rp, err = s.setupRaft(); err != nil {
		_ = s.grpcLis.Close()
		return nil, err
	}
	s.raft = s.rp.raft
	if err := s.setupGRPC(); err != nil {
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	if err := s.setupGossip(); err != nil {
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	if err := s.setupHTTP(); err != nil {
		_ = s.Shutdown(context.Background())
		return nil, err
	}
	s.serveGRPC()
	s.wg.Add(1)
	go s.watchTLS()
	s.wg.Add(1)
	go s.monitorLeadership()
	if cfg.BootstrapExpect > 0 {
		s.wg.Add(1)
		go s.bootstrapExpectLoop()
	}
	if !cfg.ACL.Enabled {
		log.Warn("ACLs are disabled: anyone who reaches the API may pause, unpause and change the cluster (enable acl.enabled and run `stillpoint acl bootstrap`)")
	}
	log.Info("coordinator server started", zap.String("grpc", s.grpcAddr), zap.String("raft", string(s.rp.transport.LocalAddr())),
		zap.String("gossip", s.pool.AdvertiseAddr()), zap.Bool("bootstrap", cfg.Bootstrap), zap.Int("bootstrap_expect", cfg.BootstrapExpect))
	return s, nil
}

func (s *Server) setupGRPC() error {
	srv, err := s.newGRPCServer()
	if err != nil {
		return fmt.Errorf("server %s: gRPC server: %w", s.cfg.NodeID, err)
	}
	s.grpcSrv = srv
	pb.RegisterCoordinatorServiceServer(srv, s)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(srv, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(pb.CoordinatorService_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	// Reflection serves the descriptors with their comments, so a generic
	// client shows the API reference (grpcurl describe).
	files, err := pb.ReflectionResolver()
	if err != nil {
		return fmt.Errorf("server %s: reflection: %w", s.cfg.NodeID, err)
	}
	refl := reflection.NewServerV1(reflection.ServerOptions{Services: srv, DescriptorResolver: files})
	reflectionv1.RegisterServerReflectionServer(srv, refl)
	reflectionv1alpha.RegisterServerReflectionServer(srv, reflection.NewServer(reflection.ServerOptions{Services: srv, DescriptorResolver: files}))
	return nil
}

// serveGRPC starts serving once every field the handlers read is set.
func (s *Server) serveGRPC() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.grpcSrv.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.log.Error("gRPC server stopped", zap.Error(err))
		}
	}()
}

// Shutdown leaves the gossip pool, stops gRPC (bounded by ctx), Raft and
// the log. Safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	var err error
	s.shutdownOnce.Do(func() {
		close(s.shutdownCh)
		s.log.Info("coordinator server shutting down")
		if s.health != nil {
			s.health.Shutdown()
		}
		if s.unsubPool != nil {
			s.unsubPool()
		}
		if s.pool != nil {
			if s.cfg.LeaveOnShutdown {
				_ = s.pool.Leave(time.Second)
			}
			if e := s.pool.Shutdown(); e != nil {
				err = errors.Join(err, e)
			}
		}
		if s.grpcSrv != nil {
			stopped := make(chan struct{})
			go func() { s.grpcSrv.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-ctx.Done():
				s.grpcSrv.Stop()
				<-stopped
			}
		}
		if s.grpcLis != nil {
			_ = s.grpcLis.Close() // when Serve never started
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Shutdown(ctx)
		}
		s.stopLeadingWithin(dutyStopTimeout)
		if s.rp != nil {
			if e := s.rp.close(); e != nil {
				err = errors.Join(err, fmt.Errorf("server %s: raft shutdown: %w", s.cfg.NodeID, e))
			}
		}
		s.wg.Wait()
		s.stopLeadingWithin(dutyStopTimeout)
		s.conns.close()
		s.agentConns.close()
	})
	return err
}

// Kill stops the server abruptly, as a crash would (no gossip leave, no
// graceful gRPC stop). The data dir stays usable for a restart.
func (s *Server) Kill() {
	s.shutdownOnce.Do(func() {
		close(s.shutdownCh)
		if s.unsubPool != nil {
			s.unsubPool()
		}
		if s.pool != nil {
			_ = s.pool.Shutdown()
		}
		if s.grpcSrv != nil {
			s.grpcSrv.Stop()
		}
		if s.grpcLis != nil {
			_ = s.grpcLis.Close()
		}
		if s.httpSrv != nil {
			_ = s.httpSrv.Close()
		}
		s.stopLeadingWithin(dutyStopTimeout)
		if s.rp != nil {
			_ = s.rp.close()
		}
		s.wg.Wait()
		s.stopLeadingWithin(dutyStopTimeout)
		s.conns.close()
		s.agentConns.close()
	})
}

// ID is this server's node id (Raft server ID and gossip name).
func (s *Server) ID() string { return s.cfg.NodeID }

// GRPCAddr is the address clients reach this server's API on.
func (s *Server) GRPCAddr() string { return s.grpcAddr }

// RaftAddr is this server's Raft transport address.
func (s *Server) RaftAddr() string { return string(s.rp.transport.LocalAddr()) }

// GossipAddr is this server's gossip address (give it to others' Join).
func (s *Server) GossipAddr() string { return s.pool.AdvertiseAddr() }

// Gossip is this server's gossip pool.
func (s *Server) Gossip() *gossip.Pool { return s.pool }

// FSM is the replicated state (read-only accessors).
func (s *Server) FSM() *fsm.FSM { return s.fsm }

// Raft is the underlying Raft node (operator commands, tests).
func (s *Server) Raft() *raft.Raft { return s.raft }

// IsLeader reports whether this server is the Raft leader now.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// Logger is the server's logger (node id attached).
func (s *Server) Logger() *zap.Logger { return s.log }

// Now is the server's wall clock.
func (s *Server) Now() time.Time { return s.cfg.Now() }
