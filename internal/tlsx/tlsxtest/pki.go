// Package tlsxtest is a throwaway cluster PKI for tests: a CA in a temp
// directory and role certificates issued from it as files.
package tlsxtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// PKI is a CA whose certificate is CAFile.
type PKI struct {
	t      testing.TB
	Dir    string
	CA     *tlsx.KeyPair
	CAFile string
}

// New creates a CA named name in a temp directory.
func New(t testing.TB, name string) *PKI {
	t.Helper()
	ca, err := tlsx.NewCA(tlsx.CAOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	p := &PKI{t: t, Dir: t.TempDir(), CA: ca}
	p.CAFile = filepath.Join(p.Dir, "ca.pem")
	if err := os.WriteFile(p.CAFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Issue issues a certificate of role for name (mutate adjusts the
// options, e.g. an expired NotAfter) and writes it as <role>-<name>.pem and
// <role>-<name>-key.pem, replacing earlier files.
func (p *PKI) Issue(role, name string, mutate ...func(*tlsx.LeafOptions)) (certFile, keyFile string, kp *tlsx.KeyPair) {
	p.t.Helper()
	o := tlsx.LeafOptions{Role: role, Name: name}
	for _, f := range mutate {
		f(&o)
	}
	kp, err := p.CA.Issue(o)
	if err != nil {
		p.t.Fatal(err)
	}
	certFile = filepath.Join(p.Dir, role+"-"+name+".pem")
	keyFile = filepath.Join(p.Dir, role+"-"+name+"-key.pem")
	if err := tlsx.WriteKeyPair(kp, certFile, keyFile, true); err != nil {
		p.t.Fatal(err)
	}
	return certFile, keyFile, kp
}

// TLS issues a certificate of role for name and returns the TLS section
// using it with this CA.
func (p *PKI) TLS(role, name string, mutate ...func(*tlsx.LeafOptions)) grpcx.TLS {
	p.t.Helper()
	c, k, _ := p.Issue(role, name, mutate...)
	return grpcx.TLS{CertFile: c, KeyFile: k, CAFile: p.CAFile}
}

// CAOnly is a TLS section that verifies servers against this CA and
// presents no certificate.
func (p *PKI) CAOnly() grpcx.TLS { return grpcx.TLS{CAFile: p.CAFile} }
