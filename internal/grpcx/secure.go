package grpcx

import (
	"context"
	"crypto/x509"
	"errors"
	"net"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// Call is what an Authorizer decides on.
type Call struct {
	// Method is the full gRPC method, /package.Service/Method.
	Method string
	// Identity is the caller's verified certificate identity, when
	// Verified.
	Identity tlsx.Identity
	Verified bool
	// MTLS: the listener verifies client certificates (a CA is configured).
	MTLS bool
}

// Authorizer decides whether a call may proceed; its error is returned to
// the caller (a status error keeps its code, anything else becomes
// PERMISSION_DENIED).
type Authorizer func(ctx context.Context, c Call) error

// ServerSetup configures NewSecureServer.
type ServerSetup struct {
	// Name says whose listener this is in refusals ("agent ledger-1").
	Name string
	TLS  TLS
	// Source is TLS loaded (TLS.Load); nil for plaintext.
	Source *tlsx.Source
	// Authorize, when set, runs for every call after authentication.
	Authorize Authorizer
	// OnRefused is told of every refused call (audit).
	OnRefused func(ctx context.Context, c Call, err error)
	Logger    *zap.Logger
	Options   []grpc.ServerOption
	// Unary and Stream run before authentication, outermost first (a
	// service's error safety net and panic recovery).
	Unary  []grpc.UnaryServerInterceptor
	Stream []grpc.StreamServerInterceptor
	// Annotate, when set, rewrites every refusal before it is returned
	// (a service attaches its ErrorInfo reason).
	Annotate func(error) error
}

// NewSecureServer builds a gRPC server whose TLS certificate is read from
// s.Source at each handshake (reloadable), and which authenticates every
// call (unary and stream) itself: with a CA, the caller's certificate is
// verified against the CA in force, and a refusal is a gRPC status the
// caller can read — UNAUTHENTICATED with what was wrong (no certificate,
// another CA, expired, not a client certificate) — logged, and reported to
// OnRefused; then Authorize decides on the caller's role.
func NewSecureServer(s ServerSetup) (*grpc.Server, error) {
	if s.Logger == nil {
		s.Logger = zap.NewNop()
	}
	if s.TLS.VerifyIncoming != nil && *s.TLS.VerifyIncoming && (s.Source == nil || !s.Source.HasCA()) {
		return nil, errVerifyWithoutCA
	}
	a := &authn{s: s, required: s.TLS.VerifiesIncoming() && s.Source != nil && s.Source.HasCA()}
	base := []grpc.ServerOption{
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: keepaliveMinServer, PermitWithoutStream: true}),
		grpc.ChainUnaryInterceptor(append(append([]grpc.UnaryServerInterceptor(nil), s.Unary...), a.unary)...),
		grpc.ChainStreamInterceptor(append(append([]grpc.StreamServerInterceptor(nil), s.Stream...), a.stream)...),
	}
	if s.Source != nil {
		cfg, err := s.Source.ServerConfig()
		if err != nil {
			return nil, err
		}
		base = append(base, grpc.Creds(credentials.NewTLS(cfg)))
	}
	return grpc.NewServer(append(base, s.Options...)...), nil
}

type authn struct {
	s        ServerSetup
	required bool
}

func (a *authn) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	ctx, err := a.check(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return h(ctx, req)
}

func (a *authn) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	ctx, err := a.check(ss.Context(), info.FullMethod)
	if err != nil {
		return err
	}
	return h(srv, &ctxStream{ServerStream: ss, ctx: ctx})
}

type ctxStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *ctxStream) Context() context.Context { return s.ctx }

// check authenticates and authorizes one call.
func (a *authn) check(ctx context.Context, method string) (context.Context, error) {
	c := Call{Method: method, MTLS: a.s.Source != nil && a.s.Source.HasCA()}
	if c.MTLS {
		chain := peerChain(ctx)
		switch {
		case len(chain) > 0:
			id, err := a.s.Source.VerifyClient(chain)
			if err != nil {
				return ctx, a.refuse(ctx, c, status.Errorf(codes.Unauthenticated, "%s refused %s: %v", a.s.Name, method, err))
			}
			c.Identity, c.Verified = id, true
			ctx = tlsx.ContextWithIdentity(ctx, id)
		case a.required:
			return ctx, a.refuse(ctx, c, status.Errorf(codes.Unauthenticated,
				"%s refused %s: no client certificate; this listener requires one signed by the cluster CA (verify_incoming): pass --cert and --key (issue one with `stillpoint tls cert create --client --name NAME`)",
				a.s.Name, method))
		}
	}
	if a.s.Authorize != nil {
		if err := a.s.Authorize(ctx, c); err != nil {
			if _, ok := status.FromError(err); !ok {
				err = status.Error(codes.PermissionDenied, err.Error())
			}
			return ctx, a.refuse(ctx, c, err)
		}
	}
	return ctx, nil
}

func (a *authn) refuse(ctx context.Context, c Call, err error) error {
	fields := []zap.Field{zap.String("method", c.Method), zap.String("remote", remoteAddr(ctx)), zap.Stringer("code", status.Code(err)), zap.Error(err)}
	if c.Verified {
		fields = append(fields, zap.String("role", c.Identity.Role), zap.String("subject", c.Identity.Subject), zap.String("serial", c.Identity.Serial))
	}
	a.s.Logger.Warn("call refused", fields...)
	if a.s.Annotate != nil {
		err = a.s.Annotate(err)
	}
	if a.s.OnRefused != nil {
		a.s.OnRefused(ctx, c, err)
	}
	return err
}

func peerChain(ctx context.Context) []*x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return nil
	}
	return ti.State.PeerCertificates
}

func remoteAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return ""
}

// RequireRoles is an Authorizer admitting a verified caller only with one
// of roles. A caller without a verified certificate passes only where the
// listener lets it (no CA, or verify_incoming false): there is nothing to
// check it against.
func RequireRoles(name string, roles ...string) Authorizer {
	return func(_ context.Context, c Call) error {
		if !c.Verified {
			return nil
		}
		for _, r := range roles {
			if c.Identity.Role == r {
				return nil
			}
		}
		return status.Errorf(codes.PermissionDenied, "%s accepts %s only from a certificate with role %v; the caller's certificate %q (serial %s) has role %s",
			name, c.Method, roles, c.Identity.Subject, c.Identity.Serial, c.Identity.Role)
	}
}

// reloadingCreds are client TLS credentials that build the TLS config from
// the source at each handshake, for the name dialled.
type reloadingCreds struct {
	src *tlsx.Source
	o   tlsx.ClientOptions
}

var _ credentials.TransportCredentials = (*reloadingCreds)(nil)

func (c *reloadingCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	o := c.o
	if o.ServerName == "" {
		host, _, err := net.SplitHostPort(authority)
		if err != nil {
			host = authority
		}
		o.ServerName = host
	}
	return credentials.NewTLS(c.src.ClientConfig(o)).ClientHandshake(ctx, authority, raw)
}

func (c *reloadingCreds) ServerHandshake(net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return nil, nil, errors.New("client-only credentials")
}

func (c *reloadingCreds) Info() credentials.ProtocolInfo {
	return credentials.ProtocolInfo{SecurityProtocol: "tls"}
}

func (c *reloadingCreds) Clone() credentials.TransportCredentials {
	cp := *c
	return &cp
}

//nolint:staticcheck // part of the interface
func (c *reloadingCreds) OverrideServerName(name string) error {
	c.o.ServerName = name
	return nil
}
