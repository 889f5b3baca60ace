package coordinator

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"

	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// raftTLS secures the Raft transport with the peer links' key pair
// (peer_tls): both ends present a server certificate of the cluster CA,
// verified against the CA in force at each handshake (so a reload reaches
// the next connection). Anyone who could write to a plaintext Raft port
// could rewrite the replicated state.
type raftTLS struct {
	src        *tlsx.Source
	serverName string // peer_tls.server_name; empty: the host dialled
	log        *zap.Logger
}

// raftTLS is the Raft transport's TLS when peer_tls has a certificate and
// a CA, else nil (plaintext).
func (s *Server) raftTLS() *raftTLS {
	p := s.tls.peer
	if p == nil || !p.HasCertificate() || !p.HasCA() {
		if s.tls.listener != nil {
			s.log.Warn("Raft transport is plaintext: peer_tls needs cert_file, key_file and ca_file to secure it", zap.String("raft", s.cfg.RaftBindAddr))
		}
		return nil
	}
	return &raftTLS{src: p, serverName: s.cfg.ClientTLS.ServerName, log: s.log.With(zap.String("component", "raft-tls"))}
}

// server wraps an accepted connection; the handshake runs on its first
// read, in Raft's handler.
func (r *raftTLS) server(c net.Conn) net.Conn {
	cfg, err := r.src.ServerConfig()
	if err != nil { // the source has a certificate: cannot happen
		r.log.Error("Raft TLS config", zap.Error(err))
		_ = c.Close()
		return c
	}
	cfg.ClientAuth = tls.RequireAnyClientCert
	remote := c.RemoteAddr().String()
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		id, err := tlsx.VerifyPeer(cs.PeerCertificates, r.src.Roots(), r.src.Now(), x509.ExtKeyUsageClientAuth)
		if err == nil && id.Role != tlsx.RoleServer {
			err = fmt.Errorf("raft accepts only server certificates; %s has role %s", tlsx.Describe(cs.PeerCertificates[0]), id.Role)
		}
		if err != nil {
			r.log.Warn("Raft connection refused", zap.String("remote", remote), zap.Error(err))
		}
		return err
	}
	return tls.Server(c, cfg)
}

// client runs the handshake on a dialled connection within timeout.
func (r *raftTLS) client(c net.Conn, address string, timeout time.Duration) (net.Conn, error) {
	name := r.serverName
	if name == "" {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			host = address
		}
		name = host
	}
	tc := tls.Client(c, r.src.ClientConfig(tlsx.ClientOptions{ServerName: name, PeerRoles: []string{tlsx.RoleServer}}))
	_ = tc.SetDeadline(time.Now().Add(timeout))
	if err := tc.Handshake(); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("raft TLS to %s: %w", address, err)
	}
	_ = tc.SetDeadline(time.Time{})
	return tc, nil
}
