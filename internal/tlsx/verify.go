package tlsx

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinels of VerifyPeer's errors (errors.Is).
var (
	ErrNoCertificate = errors.New("no client certificate")
	ErrExpired       = errors.New("certificate expired or not yet valid")
	ErrUnknownCA     = errors.New("certificate not signed by the cluster CA")
	ErrWrongUsage    = errors.New("certificate not valid for this use")
	ErrNoRole        = errors.New("certificate carries no Stillpoint role")
)

// VerifyPeer verifies a peer's certificate chain (leaf first, as sent in
// the handshake) against roots at now for usage (ExtKeyUsageClientAuth for
// a caller, ServerAuth for a server) and returns the role it carries. Its
// errors say which certificate, why, and what to do.
func VerifyPeer(chain []*x509.Certificate, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage) (Identity, error) {
	if len(chain) == 0 {
		return Identity{}, ErrNoCertificate
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return Identity{}, explain(leaf, roots, now, usage, err)
	}
	id, ok := IdentityOfCert(leaf)
	if !ok {
		return Identity{}, fmt.Errorf("%w: %s has no URI SAN spiffe://%s/<server|agent|client>/<name>; issue one with `stillpoint tls cert create`",
			ErrNoRole, Describe(leaf), TrustDomain)
	}
	return id, nil
}

func explain(leaf *x509.Certificate, roots *x509.CertPool, now time.Time, usage x509.ExtKeyUsage, err error) error {
	var inv x509.CertificateInvalidError
	var unknown x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		if now.Before(leaf.NotBefore) {
			return fmt.Errorf("%w: %s is valid from %s, it is now %s (check the clocks)", ErrExpired, Describe(leaf),
				leaf.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.After(leaf.NotAfter) {
			return fmt.Errorf("%w: %s expired at %s, it is now %s; issue a new one with `stillpoint tls cert create`", ErrExpired, Describe(leaf),
				leaf.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		return fmt.Errorf("%w: %s: its issuer is expired or not yet valid: %v", ErrExpired, Describe(leaf), err)
	case errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage:
		return fmt.Errorf("%w: %s may not be used for %s (its extended key usage: %s)", ErrWrongUsage, Describe(leaf), usageName(usage), usages(leaf))
	case errors.As(err, &unknown):
		return fmt.Errorf("%w: %s is not signed by a CA this peer trusts (%s)", ErrUnknownCA, Describe(leaf), trusted(roots))
	}
	return fmt.Errorf("%s: %w", Describe(leaf), err)
}

func usageName(u x509.ExtKeyUsage) string {
	switch u {
	case x509.ExtKeyUsageClientAuth:
		return "client authentication"
	case x509.ExtKeyUsageServerAuth:
		return "server authentication"
	}
	return fmt.Sprintf("usage %d", u)
}

func usages(c *x509.Certificate) string {
	var out []string
	for _, u := range c.ExtKeyUsage {
		out = append(out, usageName(u))
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// trusted names the CAs in roots, for an error message.
func trusted(roots *x509.CertPool) string {
	if roots == nil {
		return "the system roots"
	}
	subs := roots.Subjects() //lint:ignore SA1019 deprecated only for system pools; ours are built from PEM
	if len(subs) == 0 {
		return "no CA"
	}
	var names []string
	for _, der := range subs {
		var rdn pkix.RDNSequence
		if _, err := asn1.Unmarshal(der, &rdn); err != nil {
			continue
		}
		var n pkix.Name
		n.FillFromRDNSequence(&rdn)
		names = append(names, fmt.Sprintf("%q", n.String()))
	}
	return "trusted: " + strings.Join(names, ", ")
}
