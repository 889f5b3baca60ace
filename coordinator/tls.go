package coordinator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// tlsWatchInterval is how often the key files are checked for a change.
const tlsWatchInterval = 5 * time.Second

// serverTLS are a server's reloadable key pairs by config section.
type serverTLS struct {
	listener, peer, agent *tlsx.Source
}

func (t serverTLS) sections() []struct {
	name string
	src  *tlsx.Source
} {
	return []struct {
		name string
		src  *tlsx.Source
	}{{"grpc_tls", t.listener}, {"peer_tls", t.peer}, {"agent_tls", t.agent}}
}

// loadTLS loads the three TLS sections and the connection pools over them:
// a peer link must reach a server certificate, an agent link an agent's.
func (s *Server) loadTLS() error {
	var err error
	if s.tls.listener, err = s.cfg.TLS.Load(); err != nil {
		return fmt.Errorf("grpc_tls: %w", err)
	}
	if s.tls.peer, err = s.cfg.ClientTLS.Load(); err != nil {
		return fmt.Errorf("peer_tls: %w", err)
	}
	if s.tls.agent, err = s.cfg.AgentTLS.Load(); err != nil {
		return fmt.Errorf("agent_tls: %w", err)
	}
	s.conns = newConnPool(s.cfg.ClientTLS, s.tls.peer, tlsx.RoleServer)
	s.agentConns = newConnPool(s.cfg.AgentTLS, s.tls.agent, tlsx.RoleAgent)
	return nil
}

func (s *Server) newGRPCServer() (*grpc.Server, error) {
	unary, stream := s.interceptorOptions()
	return grpcx.NewSecureServer(grpcx.ServerSetup{
		Unary:     unary,
		Stream:    stream,
		Annotate:  annotateRefusal,
		Name:      "server " + s.cfg.NodeID,
		TLS:       s.cfg.TLS,
		Source:    s.tls.listener,
		Authorize: s.authorize,
		OnRefused: s.tlsRefused,
		Logger:    s.log.With(zap.String("component", "grpc")),
		// Tokens and roles (auth.go), after the certificate checks.
		Options: []grpc.ServerOption{grpc.ChainUnaryInterceptor(s.unaryAuth), grpc.ChainStreamInterceptor(s.streamAuth)},
	})
}

// serverOnly reports whether a call may come only from another server:
// any request forwarded to the leader (it carries what the forwarding
// server vouches for). GetServerInfo (bootstrap, reconcile) is not: it
// reads this server's addresses, which `stillpoint ui` needs from a client
// certificate; an agent's certificate is refused it like any API call.
func serverOnly(ctx context.Context) bool {
	return isForwarded(ctx)
}

// authorize is the coordinator's certificate policy when its listener has
// a CA: server-only calls need a server certificate; the API takes client
// and server certificates; an agent's certificate serves the coordinator
// and may call nothing but the health service. Without a CA there is no
// certificate to check (tokens, when configured, still apply).
func (s *Server) authorize(ctx context.Context, c grpcx.Call) error {
	if !c.MTLS {
		return nil
	}
	name := "server " + s.cfg.NodeID
	if serverOnly(ctx) {
		if !c.Verified {
			return apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_SERVER_ONLY, nil,
				"%s accepts %s (server-to-server) only from a server certificate; the caller presented none", name, c.Method)
		}
		if c.Identity.Role != tlsx.RoleServer {
			return apiError(codes.PermissionDenied, pb.ErrorReason_ERROR_REASON_SERVER_ONLY, map[string]string{"role": c.Identity.Role, "needed_role": tlsx.RoleServer},
				"%s accepts %s (server-to-server%s) only from a certificate with role [server]; the caller's certificate %q (serial %s) has role %s",
				name, c.Method, forwardedNote(ctx), c.Identity.Subject, c.Identity.Serial, c.Identity.Role)
		}
		return nil
	}
	if isHealth(c.Method) {
		return nil
	}
	if err := grpcx.RequireRoles(name, tlsx.RoleClient, tlsx.RoleServer)(ctx, c); err != nil {
		return withInfo(status.Convert(err), pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_CERTIFICATE,
			map[string]string{"role": c.Identity.Role, "needed_role": tlsx.RoleClient + "," + tlsx.RoleServer}).Err()
	}
	return nil
}

func forwardedNote(ctx context.Context) string {
	if isForwarded(ctx) {
		return ": it carries " + forwardedHeader
	}
	return ""
}

func isHealth(method string) bool {
	const prefix = "/grpc.health.v1.Health/"
	return len(method) > len(prefix) && method[:len(prefix)] == prefix
}

// ReloadTLS reads every TLS section's certificate, key and CA again
// (SIGHUP): connections made from now on — accepted and dialled — use
// them; open connections, Raft and gossip are untouched. A section whose
// files cannot be loaded keeps its old set, and the error names the file.
func (s *Server) ReloadTLS() error {
	var errs []error
	for _, sec := range s.tls.sections() {
		if sec.src == nil {
			continue
		}
		if err := sec.src.Reload(); err != nil {
			s.log.Error("TLS reload failed; keeping the certificates in force", zap.String("section", sec.name), zap.Error(err))
			errs = append(errs, fmt.Errorf("%s: %w", sec.name, err))
			continue
		}
		s.logReloaded(sec.name, sec.src)
	}
	return errors.Join(errs...)
}

// TLSCertificateSerial is the serial (hex) of the listener's certificate
// in force, "" without TLS.
func (s *Server) TLSCertificateSerial() string {
	if s.tls.listener == nil || s.tls.listener.Certificate() == nil {
		return ""
	}
	return s.tls.listener.Certificate().SerialNumber.Text(16)
}

func (s *Server) logReloaded(section string, src *tlsx.Source) {
	fields := []zap.Field{zap.String("section", section)}
	if c := src.Certificate(); c != nil {
		fields = append(fields, zap.String("serial", c.SerialNumber.Text(16)), zap.Time("not_after", c.NotAfter))
	}
	s.log.Info("TLS certificates reloaded", fields...)
}

// watchTLS reloads a section whose files changed, until shutdown.
func (s *Server) watchTLS() {
	defer s.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for _, sec := range s.tls.sections() {
		if sec.src == nil {
			continue
		}
		wg.Go(func() {
			sec.src.Watch(ctx, tlsWatchInterval, func(err error) {
				if err != nil {
					s.log.Error("TLS files changed but cannot be loaded; keeping the certificates in force", zap.String("section", sec.name), zap.Error(err))
					return
				}
				s.logReloaded(sec.name, sec.src)
			})
		})
	}
	<-s.shutdownCh
	cancel()
	wg.Wait()
}
