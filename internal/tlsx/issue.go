package tlsx

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // subject key id only (RFC 5280 4.2.1.2 method 1)
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// Default lifetimes (Consul's): the CA five years, a leaf one year.
const (
	DefaultCAValidity   = 5 * 365 * 24 * time.Hour
	DefaultLeafValidity = 365 * 24 * time.Hour
	// backdate absorbs clock skew between the issuing host and the peers.
	backdate = time.Minute
)

// KeyPair is a certificate with its private key, parsed and as PEM.
type KeyPair struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// CAOptions shape a new cluster CA.
type CAOptions struct {
	// Name is the CA's common name (default "Stillpoint CA").
	Name string
	// Validity is how long it is valid (default DefaultCAValidity).
	Validity time.Duration
	// Now is the issue time (default time.Now()).
	Now time.Time
}

// NewCA creates a self-signed ECDSA P-256 CA that may sign leaves only
// (path length 0).
func NewCA(o CAOptions) (*KeyPair, error) {
	if o.Name == "" {
		o.Name = "Stillpoint CA"
	}
	if o.Validity <= 0 {
		o.Validity = DefaultCAValidity
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	skid, err := keyID(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: o.Name, Organization: []string{"Stillpoint"}},
		NotBefore:             o.Now.Add(-backdate),
		NotAfter:              o.Now.Add(o.Validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		SubjectKeyId:          skid,
	}
	return sign(tmpl, tmpl, key, key)
}

// LeafOptions shape a role certificate.
type LeafOptions struct {
	// Role is RoleServer, RoleAgent or RoleClient.
	Role string
	// Name names the holder (server id, agent node name, operator); it is
	// the common name and the last segment of the role URI.
	Name string
	// DNS and IPs are extra subject alternative names (server and agent
	// certificates; a client certificate takes none).
	DNS []string
	IPs []net.IP
	// NoLocalhost leaves out the localhost, 127.0.0.1 and ::1 SANs a
	// server or agent certificate gets by default.
	NoLocalhost bool
	// Validity is how long it is valid (default DefaultLeafValidity).
	Validity time.Duration
	// Now is the issue time (default time.Now()). NotBefore/NotAfter, when
	// set, override Now and Validity (tests issue expired certificates).
	Now       time.Time
	NotBefore time.Time
	NotAfter  time.Time
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$`)
var dnsLabelRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$`)

// Validate reports every problem with o.
func (o LeafOptions) Validate() error {
	var errs []error
	if !validRole(o.Role) {
		errs = append(errs, fmt.Errorf("role %q: want one of %v", o.Role, Roles))
	}
	if !nameRE.MatchString(o.Name) {
		errs = append(errs, fmt.Errorf("name %q: want 1-128 letters, digits, '.', '_', '@' or '-', starting with a letter or digit", o.Name))
	}
	if o.Role == RoleClient && (len(o.DNS) > 0 || len(o.IPs) > 0) {
		errs = append(errs, errors.New("a client certificate takes no --dns or --ip (it never serves)"))
	}
	for _, d := range o.DNS {
		if !dnsLabelRE.MatchString(d) && !(len(d) > 2 && d[:2] == "*." && dnsLabelRE.MatchString(d[2:])) {
			errs = append(errs, fmt.Errorf("dns %q is not a host name", d))
		}
	}
	if !o.NotBefore.IsZero() && !o.NotAfter.IsZero() && !o.NotAfter.After(o.NotBefore) {
		errs = append(errs, fmt.Errorf("not_after %s is not after not_before %s", o.NotAfter.Format(time.RFC3339), o.NotBefore.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// Issue signs a role certificate (ECDSA P-256) with the CA:
//   - server: ServerAuth and ClientAuth (serves the API; dials the other
//     servers and the agents), SANs: --dns/--ip, its name when it is a
//     host name, and localhost/127.0.0.1/::1 unless NoLocalhost;
//   - agent: ServerAuth and ClientAuth (serves the AgentService; may dial
//     its node's admin port with it), SANs as for a server;
//   - client: ClientAuth only, no DNS/IP SANs: it cannot serve.
//
// Every one carries the role URI spiffe://stillpoint/<role>/<name>.
func (ca *KeyPair) Issue(o LeafOptions) (*KeyPair, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if !ca.Cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", Describe(ca.Cert))
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Validity <= 0 {
		o.Validity = DefaultLeafValidity
	}
	notBefore, notAfter := o.Now.Add(-backdate), o.Now.Add(o.Validity)
	if !o.NotBefore.IsZero() {
		notBefore = o.NotBefore
	}
	if !o.NotAfter.IsZero() {
		notAfter = o.NotAfter
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:   serial,
		Subject:        pkix.Name{CommonName: o.Name, OrganizationalUnit: []string{o.Role}, Organization: []string{"Stillpoint"}},
		NotBefore:      notBefore,
		NotAfter:       notAfter,
		KeyUsage:       x509.KeyUsageDigitalSignature,
		URIs:           []*url.URL{RoleURI(o.Role, o.Name)},
		AuthorityKeyId: ca.Cert.SubjectKeyId,
	}
	switch o.Role {
	case RoleClient:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	default:
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
		dns := slices.Clone(o.DNS)
		if dnsLabelRE.MatchString(o.Name) {
			dns = append(dns, o.Name)
		}
		ips := slices.Clone(o.IPs)
		if !o.NoLocalhost {
			dns = append(dns, "localhost")
			ips = append(ips, net.IPv4(127, 0, 0, 1), net.IPv6loopback)
		}
		tmpl.DNSNames = dedupe(dns)
		tmpl.IPAddresses = ips
	}
	return sign(tmpl, ca.Cert, key, ca.Key)
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func sign(tmpl, parent *x509.Certificate, key *ecdsa.PrivateKey, signer crypto.Signer) (*KeyPair, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return nil, fmt.Errorf("sign certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &KeyPair{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

func newSerial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("serial: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}

func keyID(pub *ecdsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	sum := sha1.Sum(der) //nolint:gosec // identifier, not a security function
	return sum[:], nil
}

// ParseKeyPair parses a PEM certificate (the first block) and its PEM
// private key (PKCS#8, EC or PKCS#1), checking that they belong together.
func ParseKeyPair(certPEM, keyPEM []byte) (*KeyPair, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("no PEM private key block")
	}
	var key any
	switch kb.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(kb.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(kb.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(kb.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key", kb.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("private key of type %T cannot sign", key)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := signer.Public().(equaler); !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("private key does not match %s", Describe(cert))
	}
	return &KeyPair{Cert: cert, Key: signer, CertPEM: certPEM, KeyPEM: keyPEM}, nil
}
