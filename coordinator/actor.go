package coordinator

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// actor names who made a request, for the audit log: the requested_by the
// client stated, else its TLS client certificate's common name, else its
// address. A request forwarded by another server already carries the
// actor resolved there.
func actor(ctx context.Context, requested string) string {
	if requested != "" {
		return requested
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "unknown"
	}
	if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
		if certs := ti.State.PeerCertificates; len(certs) > 0 {
			if name := certName(certs[0]); name != "" {
				return name
			}
		}
	}
	if p.Addr != nil {
		return "anonymous@" + p.Addr.String()
	}
	return "unknown"
}

func certName(c *x509.Certificate) string {
	if c.Subject.CommonName != "" {
		return c.Subject.CommonName
	}
	if len(c.DNSNames) > 0 {
		return c.DNSNames[0]
	}
	return ""
}

// isForwarded reports whether another server forwarded this request.
func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedHeader)) > 0
}
