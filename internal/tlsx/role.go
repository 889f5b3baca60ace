// Package tlsx is Stillpoint's certificate tooling and identity: it issues
// the cluster CA and role-carrying leaf certificates (`stillpoint tls`),
// reads the role back from a verified peer certificate, verifies client
// chains with errors a person can act on, and holds reloadable key pairs.
//
// A certificate carries its role in one URI SAN,
// spiffe://stillpoint/<role>/<name> (role server, agent or client); RoleOf
// is the one place a peer's role is read.
package tlsx

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Roles a certificate can carry.
const (
	RoleServer = "server" // coordinator servers: serve the API, dial each other and the agents
	RoleAgent  = "agent"  // agents: serve the AgentService to the servers
	RoleClient = "client" // operators and automation: the CLI
)

// Roles are the valid roles, in a stable order.
var Roles = []string{RoleServer, RoleAgent, RoleClient}

// TrustDomain is the host of every role URI.
const TrustDomain = "stillpoint"

// RoleURI is the URI SAN that carries role and name.
func RoleURI(role, name string) *url.URL {
	return &url.URL{Scheme: "spiffe", Host: TrustDomain, Path: "/" + role + "/" + name}
}

// Identity is who a verified certificate names.
type Identity struct {
	Role string // server, agent or client
	Name string // the name the certificate was issued to (--name)
	// Subject is the certificate's subject ("CN=...,OU=...").
	Subject string
	// Serial is the certificate's serial number in hex.
	Serial string
}

// String is "role/name" for logs and audit records.
func (id Identity) String() string { return id.Role + "/" + id.Name }

// IdentityOfCert reads the role and name from a certificate's Stillpoint
// role URI; ok=false when it carries none (or more than one).
func IdentityOfCert(c *x509.Certificate) (Identity, bool) {
	var found []Identity
	for _, u := range c.URIs {
		if u.Scheme != "spiffe" || u.Host != TrustDomain {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(u.Path, "/"), "/")
		if len(parts) != 2 || parts[1] == "" || !validRole(parts[0]) {
			continue
		}
		found = append(found, Identity{Role: parts[0], Name: parts[1], Subject: c.Subject.String(), Serial: c.SerialNumber.Text(16)})
	}
	if len(found) != 1 {
		return Identity{}, false
	}
	return found[0], true
}

func validRole(r string) bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

type identityKey struct{}

// ContextWithIdentity records the identity the server's interceptor
// verified for this call. Only the authenticating interceptor calls it.
func ContextWithIdentity(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, identityKey{}, id)
}

// IdentityOf returns the verified identity of the caller: the one the
// authenticating interceptor recorded, else the role URI of a peer
// certificate the TLS handshake itself verified. ok=false for a caller
// without a verified, role-carrying certificate (plaintext, no client
// certificate, a foreign certificate).
func IdentityOf(ctx context.Context) (Identity, bool) {
	if id, ok := ctx.Value(identityKey{}).(Identity); ok {
		return id, true
	}
	p, ok := peer.FromContext(ctx)
	if !ok {
		return Identity{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	return IdentityOfCert(ti.State.VerifiedChains[0][0])
}

// RoleOf returns the role and subject (the certificate's name) of the
// caller's verified certificate; ok=false when there is none.
func RoleOf(ctx context.Context) (role, subject string, ok bool) {
	id, ok := IdentityOf(ctx)
	if !ok {
		return "", "", false
	}
	return id.Role, id.Name, true
}

// Describe names a certificate for an error message: its subject, role
// URI (if any), serial and issuer.
func Describe(c *x509.Certificate) string {
	s := fmt.Sprintf("certificate %q (serial %s, issued by %q", c.Subject.String(), c.SerialNumber.Text(16), c.Issuer.String())
	if id, ok := IdentityOfCert(c); ok {
		s += ", role " + id.Role
	}
	return s + ")"
}
