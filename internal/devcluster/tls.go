package devcluster

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
)

// devPKI is an ephemeral CA under the cluster's directory that issues
// every component its role certificate as files (so they reload like a
// deployment's).
type devPKI struct {
	dir    string
	ca     *tlsx.KeyPair
	caFile string
}

func newDevPKI(dir string) (*devPKI, error) {
	ca, err := tlsx.NewCA(tlsx.CAOptions{Name: "Stillpoint dev CA"})
	if err != nil {
		return nil, err
	}
	p := &devPKI{dir: dir, ca: ca, caFile: filepath.Join(dir, "ca.pem")}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.caFile, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// issue writes <role>-<name>.pem and -key.pem and returns the TLS section
// using them with the CA.
func (p *devPKI) issue(role, name string) (grpcx.TLS, error) {
	kp, err := p.ca.Issue(tlsx.LeafOptions{Role: role, Name: name})
	if err != nil {
		return grpcx.TLS{}, fmt.Errorf("dev cluster: %s certificate for %s: %w", role, name, err)
	}
	cert, key := filepath.Join(p.dir, role+"-"+name+".pem"), filepath.Join(p.dir, role+"-"+name+"-key.pem")
	if err := tlsx.WriteKeyPair(kp, cert, key, true); err != nil {
		return grpcx.TLS{}, fmt.Errorf("dev cluster: %w", err)
	}
	return grpcx.TLS{CertFile: cert, KeyFile: key, CAFile: p.caFile}, nil
}

// ClientTLS is what a client of the cluster dials with: a client
// certificate of the cluster's CA when Config.TLS, else plaintext.
func (c *Cluster) ClientTLS() grpcx.TLS { return c.clientTLS }
