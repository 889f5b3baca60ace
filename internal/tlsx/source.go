package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Files name one side's key material. CAPEM stands in for CAFile (tests,
// dev mode).
type Files struct {
	CertFile string
	KeyFile  string
	CAFile   string
	CAPEM    []byte
}

// material is one consistent load of Files.
type material struct {
	pair   *tls.Certificate // nil without CertFile/KeyFile
	leaf   *x509.Certificate
	roots  *x509.CertPool // nil without a CA
	mtimes map[string]time.Time
}

// Source holds one side's certificate, key and CA, and swaps them
// atomically on Reload: a handshake always sees a consistent set, and a
// bad new file leaves the old set in force.
type Source struct {
	files Files
	mu    sync.Mutex // serializes Reload
	cur   atomic.Pointer[material]
	// Now reads the clock for verification (default time.Now).
	Now func() time.Time
}

// NewSource loads files; it fails naming the file that cannot be used.
func NewSource(f Files) (*Source, error) {
	s := &Source{files: f, Now: time.Now}
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s.cur.Store(m)
	return s, nil
}

// Files returns what the source reads.
func (s *Source) Files() Files { return s.files }

func load(f Files) (*material, error) {
	m := &material{mtimes: map[string]time.Time{}}
	stat := func(name string) {
		if fi, err := os.Stat(name); err == nil {
			m.mtimes[name] = fi.ModTime()
		}
	}
	switch {
	case f.CertFile == "" && f.KeyFile == "":
	case f.CertFile == "" || f.KeyFile == "":
		return nil, errors.New("TLS needs both cert_file and key_file")
	default:
		stat(f.CertFile)
		stat(f.KeyFile)
		certPEM, err := os.ReadFile(f.CertFile)
		if err != nil {
			return nil, fmt.Errorf("cert_file: %w", err)
		}
		keyPEM, err := os.ReadFile(f.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("key_file: %w", err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("load TLS key pair cert_file %s, key_file %s: %w", f.CertFile, f.KeyFile, err)
		}
		m.pair, m.leaf = &pair, pair.Leaf
	}
	caPEM := f.CAPEM
	if f.CAFile != "" {
		stat(f.CAFile)
		b, err := os.ReadFile(f.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		caPEM = b
	}
	if len(caPEM) > 0 {
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(caPEM) {
			if f.CAFile != "" {
				return nil, fmt.Errorf("ca_file %s holds no PEM certificate", f.CAFile)
			}
			return nil, errors.New("CA PEM holds no certificate")
		}
	}
	return m, nil
}

// Reload reads the files again and swaps them in. On any error the
// certificates in force stay, and the error names the file.
func (s *Source) Reload() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, err := load(s.files)
	if err != nil {
		return err
	}
	s.cur.Store(m)
	return nil
}

// Changed reports whether any file's modification time differs from the
// load in force.
func (s *Source) Changed() bool {
	m := s.cur.Load()
	for _, name := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		if name == "" {
			continue
		}
		fi, err := os.Stat(name)
		if err != nil {
			return true // gone or unreadable: Reload says which
		}
		if !fi.ModTime().Equal(m.mtimes[name]) {
			return true
		}
	}
	return false
}

// Watch reloads whenever a file changes, checking every interval until ctx
// ends; report receives each reload's outcome (nil: reloaded). A change is
// acted on once it has held still for one interval (a certificate and its
// key are rarely replaced in the same instant); a failed reload is retried
// only when the files change again.
func (s *Source) Watch(ctx context.Context, every time.Duration, report func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	var failed, pending map[string]time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.Changed() {
			pending = nil
			continue
		}
		now := s.mtimesNow()
		if failed != nil && mapsEqual(failed, now) {
			continue
		}
		if pending == nil || !mapsEqual(pending, now) {
			pending = now // wait for it to hold still
			continue
		}
		pending = nil
		err := s.Reload()
		if err != nil {
			failed = now
		} else {
			failed = nil
		}
		report(err)
	}
}

func (s *Source) mtimesNow() map[string]time.Time {
	out := map[string]time.Time{}
	for _, name := range []string{s.files.CertFile, s.files.KeyFile, s.files.CAFile} {
		if fi, err := os.Stat(name); err == nil && name != "" {
			out[name] = fi.ModTime()
		}
	}
	return out
}

func mapsEqual(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !w.Equal(v) {
			return false
		}
	}
	return true
}

// Certificate is the leaf certificate in force (nil without one).
func (s *Source) Certificate() *x509.Certificate { return s.cur.Load().leaf }

// Roots is the CA pool in force (nil without a CA).
func (s *Source) Roots() *x509.CertPool { return s.cur.Load().roots }

// HasCA reports whether a CA is configured.
func (s *Source) HasCA() bool { return s.cur.Load().roots != nil }

// HasCertificate reports whether a certificate and key are configured.
func (s *Source) HasCertificate() bool { return s.cur.Load().pair != nil }

// VerifyClient verifies a caller's chain against the CA in force.
func (s *Source) VerifyClient(chain []*x509.Certificate) (Identity, error) {
	return VerifyPeer(chain, s.Roots(), s.Now(), x509.ExtKeyUsageClientAuth)
}

// ServerConfig is a listener's TLS config. The certificate is read from
// the source at each handshake. With a CA, a client certificate is
// requested but not verified here: the caller's interceptor verifies it
// (VerifyClient) so a refusal reaches the caller as a gRPC status with a
// message, and is logged and audited, instead of a bare handshake failure.
func (s *Source) ServerConfig() (*tls.Config, error) {
	if !s.HasCertificate() {
		return nil, errors.New("a TLS server needs cert_file and key_file")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.cur.Load().pair, nil
		},
	}
	if s.HasCA() {
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg, nil
}

// ClientOptions shape a client's TLS config.
type ClientOptions struct {
	// ServerName overrides the name verified in the server's certificate.
	ServerName string
	// SkipVerify verifies nothing about the server (tests; verify_outgoing
	// false).
	SkipVerify bool
	// PeerRoles, when set, require the server's certificate to carry one
	// of these roles (a coordinator dials servers, or agents).
	PeerRoles []string
}

// ClientConfig is a dialer's TLS config for one server name
// (o.ServerName, which must be set unless o.SkipVerify). Its certificate is read from the
// source at each handshake; the server's certificate is verified against
// the CA in force then (or the system roots without a CA).
func (s *Source) ClientConfig(o ClientOptions) *tls.Config {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
	if s.HasCertificate() {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.cur.Load().pair, nil
		}
	}
	if o.SkipVerify {
		cfg.InsecureSkipVerify = true //nolint:gosec // explicit opt-out (verify_outgoing: false)
		return cfg
	}
	if !s.HasCA() && len(o.PeerRoles) == 0 {
		return cfg // system roots, standard verification
	}
	// Verify by hand so the CA in force at this handshake is used (a
	// reload swaps it) and the server's role can be checked.
	cfg.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection below
	name := o.ServerName
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if name == "" {
			return errors.New("no server name to verify the server's certificate against")
		}
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server presented no certificate")
		}
		leaf := cs.PeerCertificates[0]
		inter := x509.NewCertPool()
		for _, c := range cs.PeerCertificates[1:] {
			inter.AddCert(c)
		}
		roots := s.Roots()
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: s.Now(),
			DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			var host x509.HostnameError
			if errors.As(err, &host) {
				return fmt.Errorf("server %s is not valid for name %q (it names %v %v): %w", Describe(leaf), name, leaf.DNSNames, leaf.IPAddresses, err)
			}
			return fmt.Errorf("server %w", explain(leaf, roots, s.Now(), x509.ExtKeyUsageServerAuth, err))
		}
		if len(o.PeerRoles) > 0 {
			id, ok := IdentityOfCert(leaf)
			if !ok || !slices.Contains(o.PeerRoles, id.Role) {
				return fmt.Errorf("server %s does not carry role %v", Describe(leaf), o.PeerRoles)
			}
		}
		return nil
	}
	return cfg
}
