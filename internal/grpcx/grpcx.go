// Package grpcx is the one place that builds gRPC servers and client
// connections, so TLS (and later mTLS) is switched on for every link at once.
package grpcx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// TLS describes one side of a TLS link. The zero value means plaintext.
type TLS struct {
	// Enabled switches TLS on. It is implied by any file or PEM below.
	Enabled bool `yaml:"enabled"`
	// CAFile / CAPEM: roots that verify the peer (server side: client certs,
	// which turns on mTLS).
	CAFile string `yaml:"ca_file"`
	CAPEM  []byte `yaml:"-"`
	// CertFile/KeyFile: this side's certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name verified in the server's certificate.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables verification (tests only); the same as
	// verify_outgoing: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// VerifyIncoming (listeners; Consul's verify_incoming): every caller
	// must present a certificate signed by the CA; one without is refused
	// UNAUTHENTICATED. Default: on whenever a CA is configured. Set false
	// to let callers without a certificate through (a certificate that is
	// presented is still verified and its role checked).
	VerifyIncoming *bool `yaml:"verify_incoming"`
	// VerifyOutgoing (dialers; Consul's verify_outgoing): the server's
	// certificate must chain to the CA (or the system roots) and name the
	// address dialled. Default on; false verifies nothing (tests only).
	VerifyOutgoing *bool `yaml:"verify_outgoing"`
}

// VerifiesIncoming reports whether a listener with t refuses callers
// without a client certificate.
func (t TLS) VerifiesIncoming() bool {
	if t.VerifyIncoming != nil {
		return *t.VerifyIncoming && t.hasCA()
	}
	return t.hasCA()
}

// VerifiesOutgoing reports whether a dialer with t verifies the server.
func (t TLS) VerifiesOutgoing() bool {
	return !t.InsecureSkipVerify && (t.VerifyOutgoing == nil || *t.VerifyOutgoing)
}

func (t TLS) hasCA() bool { return t.CAFile != "" || len(t.CAPEM) > 0 }

// errVerifyWithoutCA: verify_incoming asked for with nothing to verify
// against.
var errVerifyWithoutCA = errors.New("verify_incoming: true needs ca_file (the CA that signs the callers' certificates)")

// Load reads t's files into a reloadable source; nil for plaintext.
func (t TLS) Load() (*tlsx.Source, error) {
	if !t.Active() {
		return nil, nil
	}
	return tlsx.NewSource(tlsx.Files{CertFile: t.CertFile, KeyFile: t.KeyFile, CAFile: t.CAFile, CAPEM: t.CAPEM})
}

// Active reports whether TLS is configured.
func (t TLS) Active() bool {
	return t.Enabled || t.CAFile != "" || len(t.CAPEM) > 0 || t.CertFile != "" || t.KeyFile != ""
}

func (t TLS) roots() (*x509.CertPool, error) {
	pem := t.CAPEM
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pem = b
	}
	if len(pem) == 0 {
		return nil, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		if t.CAFile != "" {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		return nil, errors.New("CA PEM holds no certificate")
	}
	return pool, nil
}

func (t TLS) certificate() ([]tls.Certificate, error) {
	if t.CertFile == "" && t.KeyFile == "" {
		return nil, nil
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return nil, errors.New("TLS needs both cert_file and key_file")
	}
	c, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load TLS key pair %s/%s: %w", t.CertFile, t.KeyFile, err)
	}
	return []tls.Certificate{c}, nil
}

// ClientConfig returns the crypto/tls config for a client, or nil for plaintext.
func (t TLS) ClientConfig() (*tls.Config, error) {
	if !t.Active() {
		return nil, nil
	}
	roots, err := t.roots()
	if err != nil {
		return nil, err
	}
	certs, err := t.certificate()
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            roots,
		Certificates:       certs,
		ServerName:         t.ServerName,
		InsecureSkipVerify: !t.VerifiesOutgoing(), //nolint:gosec // tests only, opt-in
	}, nil
}

// ServerConfig returns the crypto/tls config for a server, or nil for
// plaintext. A CA turns on client-certificate verification (mTLS).
func (t TLS) ServerConfig() (*tls.Config, error) {
	if !t.Active() {
		return nil, nil
	}
	certs, err := t.certificate()
	if err != nil {
		return nil, err
	}
	if len(certs) == 0 {
		return nil, errors.New("a TLS server needs cert_file and key_file")
	}
	if t.VerifyIncoming != nil && *t.VerifyIncoming && !t.hasCA() {
		return nil, errVerifyWithoutCA
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: certs}
	roots, err := t.roots()
	if err != nil {
		return nil, err
	}
	if roots != nil {
		cfg.ClientCAs = roots
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if !t.VerifiesIncoming() {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg, nil
}

// Client keepalive stays within the server enforcement below, or the server
// closes the link with too_many_pings.
const (
	keepaliveTime      = 30 * time.Second
	keepaliveTimeout   = 10 * time.Second
	keepaliveMinServer = 15 * time.Second
)

// NewServer builds a gRPC server with the given TLS and options.
func NewServer(t TLS, opts ...grpc.ServerOption) (*grpc.Server, error) {
	cfg, err := t.ServerConfig()
	if err != nil {
		return nil, err
	}
	base := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinServer, PermitWithoutStream: true}),
	}
	if cfg != nil {
		base = append(base, grpc.Creds(credentials.NewTLS(cfg)))
	}
	return grpc.NewServer(append(base, opts...)...), nil
}

// NewClient builds a client connection to addr (host:port). It does no I/O;
// use per-call deadlines.
func NewClient(addr string, t TLS, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	src, err := t.Load()
	if err != nil {
		return nil, err
	}
	return NewClientFrom(addr, t, src, nil, opts...)
}

// NewClientFrom is NewClient over a loaded source (nil: plaintext): every
// new connection reads the certificate and CA in force, so a reload of src
// reaches the next connection. peerRoles, when set, require the server's
// certificate to carry one of these roles.
func NewClientFrom(addr string, t TLS, src *tlsx.Source, peerRoles []string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("empty address")
	}
	creds := insecure.NewCredentials()
	if src != nil {
		creds = &reloadingCreds{src: src, o: tlsx.ClientOptions{ServerName: t.ServerName, SkipVerify: !t.VerifiesOutgoing(), PeerRoles: peerRoles}}
	}
	base := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: keepaliveTime, Timeout: keepaliveTimeout, PermitWithoutStream: true}),
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("gRPC client for %s: %w", addr, err)
	}
	return cc, nil
}
