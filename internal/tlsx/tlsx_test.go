package tlsx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func mustCA(t *testing.T, name string) *KeyPair {
	t.Helper()
	ca, err := NewCA(CAOptions{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func mustIssue(t *testing.T, ca *KeyPair, o LeafOptions) *KeyPair {
	t.Helper()
	kp, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func pool(cas ...*KeyPair) *x509.CertPool {
	p := x509.NewCertPool()
	for _, c := range cas {
		p.AddCert(c.Cert)
	}
	return p
}

func TestIssuedChainsVerifyAndCarryTheirRole(t *testing.T) {
	ca := mustCA(t, "test CA")
	if !ca.Cert.IsCA || ca.Cert.KeyUsage&x509.KeyUsageCertSign == 0 || !ca.Cert.MaxPathLenZero {
		t.Fatalf("CA: IsCA %v, key usage %v, MaxPathLenZero %v", ca.Cert.IsCA, ca.Cert.KeyUsage, ca.Cert.MaxPathLenZero)
	}
	if d := time.Until(ca.Cert.NotAfter); d < DefaultCAValidity-time.Hour || d > DefaultCAValidity {
		t.Fatalf("CA lifetime %v, want about %v", d, DefaultCAValidity)
	}
	for _, tc := range []struct {
		role       string
		serverAuth bool
	}{{RoleServer, true}, {RoleAgent, true}, {RoleClient, false}} {
		t.Run(tc.role, func(t *testing.T) {
			o := LeafOptions{Role: tc.role, Name: "n-" + tc.role}
			if tc.role != RoleClient {
				o.DNS, o.IPs = []string{"node.example"}, []net.IP{net.ParseIP("10.0.0.7")}
			}
			kp := mustIssue(t, ca, o)
			id, err := VerifyPeer([]*x509.Certificate{kp.Cert}, pool(ca), time.Now(), x509.ExtKeyUsageClientAuth)
			if err != nil {
				t.Fatalf("as client: %v", err)
			}
			if id.Role != tc.role || id.Name != "n-"+tc.role || id.Serial != kp.Cert.SerialNumber.Text(16) {
				t.Fatalf("identity %+v", id)
			}
			_, err = VerifyPeer([]*x509.Certificate{kp.Cert}, pool(ca), time.Now(), x509.ExtKeyUsageServerAuth)
			if tc.serverAuth && err != nil {
				t.Fatalf("as server: %v", err)
			}
			if !tc.serverAuth {
				if !errors.Is(err, ErrWrongUsage) || !strings.Contains(err.Error(), "server authentication") {
					t.Fatalf("client certificate as a server: %v, want ErrWrongUsage", err)
				}
				if len(kp.Cert.DNSNames)+len(kp.Cert.IPAddresses) != 0 {
					t.Fatalf("client certificate has host SANs %v %v", kp.Cert.DNSNames, kp.Cert.IPAddresses)
				}
				return
			}
			for _, h := range []string{"node.example", "10.0.0.7", "localhost", "127.0.0.1", "::1", "n-" + tc.role} {
				if err := kp.Cert.VerifyHostname(h); err != nil {
					t.Errorf("SAN %s: %v", h, err)
				}
			}
			if d := time.Until(kp.Cert.NotAfter); d < DefaultLeafValidity-time.Hour || d > DefaultLeafValidity {
				t.Fatalf("leaf lifetime %v", d)
			}
			// The parsed PEM is the same pair.
			back, err := ParseKeyPair(kp.CertPEM, kp.KeyPEM)
			if err != nil || !back.Cert.Equal(kp.Cert) {
				t.Fatalf("ParseKeyPair: %v", err)
			}
		})
	}
	other := mustIssue(t, ca, LeafOptions{Role: RoleServer, Name: "x", NoLocalhost: true})
	if err := other.Cert.VerifyHostname("localhost"); err == nil {
		t.Fatal("NoLocalhost certificate is valid for localhost")
	}
	if _, err := ParseKeyPair(other.CertPEM, mustIssue(t, ca, LeafOptions{Role: RoleClient, Name: "y"}).KeyPEM); err == nil {
		t.Fatal("ParseKeyPair accepted a key of another certificate")
	}
}

func TestVerifyPeerRefusals(t *testing.T) {
	ca, otherCA := mustCA(t, "cluster CA"), mustCA(t, "other CA")
	now := time.Now()
	for _, tc := range []struct {
		name     string
		chain    func() []*x509.Certificate
		want     error
		contains []string
	}{
		{"none", func() []*x509.Certificate { return nil }, ErrNoCertificate, nil},
		{"other CA", func() []*x509.Certificate {
			return []*x509.Certificate{mustIssue(t, otherCA, LeafOptions{Role: RoleClient, Name: "mallory"}).Cert}
		}, ErrUnknownCA, []string{"mallory", `issued by "CN=other CA`, `trusted: "CN=cluster CA`}},
		{"expired", func() []*x509.Certificate {
			return []*x509.Certificate{mustIssue(t, ca, LeafOptions{Role: RoleClient, Name: "old", NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-time.Hour)}).Cert}
		}, ErrExpired, []string{"old", "expired at"}},
		{"not yet valid", func() []*x509.Certificate {
			return []*x509.Certificate{mustIssue(t, ca, LeafOptions{Role: RoleClient, Name: "future", NotBefore: now.Add(time.Hour), NotAfter: now.Add(48 * time.Hour)}).Cert}
		}, ErrExpired, []string{"valid from"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := VerifyPeer(tc.chain(), pool(ca), now, x509.ExtKeyUsageClientAuth)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, s := range tc.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("%q does not mention %q", err, s)
				}
			}
		})
	}
}

func TestLeafOptionsValidate(t *testing.T) {
	ca := mustCA(t, "")
	for _, o := range []LeafOptions{
		{Role: "admin", Name: "x"},
		{Role: RoleServer, Name: ""},
		{Role: RoleServer, Name: "a/b"},
		{Role: RoleClient, Name: "c", DNS: []string{"c.example"}},
		{Role: RoleServer, Name: "s", DNS: []string{"bad name"}},
	} {
		if _, err := ca.Issue(o); err == nil {
			t.Errorf("Issue(%+v) succeeded", o)
		}
	}
}

func TestWriteKeyPairRefusesOverwriteAndKeepsKeysPrivate(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "")
	cert, key := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if err := WriteKeyPair(ca, cert, key, false); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(key); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", fi.Mode().Perm())
	}
	err := WriteKeyPair(mustCA(t, ""), cert, key, false)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "ca.pem") {
		t.Fatalf("second write: %v", err)
	}
	back, err := LoadKeyPairFiles(cert, key)
	if err != nil || !back.Cert.Equal(ca.Cert) {
		t.Fatalf("after refused overwrite: %v", err)
	}
	if err := WriteKeyPair(mustCA(t, ""), cert, key, true); err != nil {
		t.Fatal(err)
	}
	if back, _ := LoadKeyPairFiles(cert, key); back.Cert.Equal(ca.Cert) {
		t.Fatal("force did not overwrite")
	}
}

// writeFiles writes a CA and a leaf into dir and returns the Files.
func writeFiles(t *testing.T, dir string, ca, leaf *KeyPair) Files {
	t.Helper()
	f := Files{CertFile: filepath.Join(dir, "leaf.pem"), KeyFile: filepath.Join(dir, "leaf-key.pem"), CAFile: filepath.Join(dir, "ca.pem")}
	if err := WriteKeyPair(leaf, f.CertFile, f.KeyFile, true); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.CAFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestSourceReloadKeepsOldOnBadFile(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "")
	first := mustIssue(t, ca, LeafOptions{Role: RoleServer, Name: "s1"})
	f := writeFiles(t, dir, ca, first)
	src, err := NewSource(f)
	if err != nil {
		t.Fatal(err)
	}
	if src.Changed() {
		t.Fatal("Changed right after load")
	}
	if err := os.WriteFile(f.CertFile, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = src.Reload()
	if err == nil || !strings.Contains(err.Error(), f.CertFile) {
		t.Fatalf("bad reload: %v, want an error naming %s", err, f.CertFile)
	}
	if !src.Certificate().Equal(first.Cert) {
		t.Fatal("a failed reload replaced the certificate")
	}
	second := mustIssue(t, ca, LeafOptions{Role: RoleServer, Name: "s1"})
	writeFiles(t, dir, ca, second)
	if err := src.Reload(); err != nil {
		t.Fatal(err)
	}
	if !src.Certificate().Equal(second.Cert) {
		t.Fatal("reload did not swap the certificate")
	}
}

// handshake runs a TLS handshake between a server and a client config over
// loopback and returns the client's and the server's errors.
func handshake(t *testing.T, srv, cli *tls.Config) (state tls.ConnectionState, clientErr error) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	done := make(chan tls.ConnectionState, 1)
	go func() {
		c, err := lis.Accept()
		if err != nil {
			done <- tls.ConnectionState{}
			return
		}
		defer c.Close()
		tc := tls.Server(c, srv)
		_ = tc.Handshake()
		_, _ = tc.Read(make([]byte, 1)) // TLS 1.3: client errors surface here
		done <- tc.ConnectionState()
	}()
	c, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(c, cli)
	clientErr = tc.Handshake()
	_ = tc.Close()
	return <-done, clientErr
}

func TestSourceConfigsHandshake(t *testing.T) {
	ca, otherCA := mustCA(t, "cluster"), mustCA(t, "other")
	srvSrc := sourceOf(t, ca, mustIssue(t, ca, LeafOptions{Role: RoleServer, Name: "s1"}))
	agentSrc := sourceOf(t, ca, mustIssue(t, ca, LeafOptions{Role: RoleAgent, Name: "a1"}))
	cliSrc := sourceOf(t, ca, mustIssue(t, ca, LeafOptions{Role: RoleClient, Name: "alice"}))
	foreign := sourceOf(t, otherCA, mustIssue(t, otherCA, LeafOptions{Role: RoleServer, Name: "s1"}))
	srvCfg, err := srvSrc.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	// The client verifies the server's certificate for an IP address.
	st, err := handshake(t, srvCfg, cliSrc.ClientConfig(ClientOptions{ServerName: "127.0.0.1", PeerRoles: []string{RoleServer}}))
	if err != nil {
		t.Fatalf("client to server: %v", err)
	}
	if id, err := srvSrc.VerifyClient(st.PeerCertificates); err != nil || id.Role != RoleClient || id.Name != "alice" {
		t.Fatalf("server sees %+v, %v", id, err)
	}
	for _, tc := range []struct {
		name     string
		srv      *Source
		cli      ClientOptions
		contains string
	}{
		{"wrong host", srvSrc, ClientOptions{ServerName: "elsewhere.example"}, "not valid for name"},
		{"wrong role", agentSrc, ClientOptions{ServerName: "127.0.0.1", PeerRoles: []string{RoleServer}}, "does not carry role"},
		{"foreign CA", foreign, ClientOptions{ServerName: "127.0.0.1"}, "not signed by a CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := tc.srv.ServerConfig()
			if err != nil {
				t.Fatal(err)
			}
			_, err = handshake(t, sc, cliSrc.ClientConfig(tc.cli))
			if err == nil || !strings.Contains(err.Error(), tc.contains) {
				t.Fatalf("handshake: %v, want %q", err, tc.contains)
			}
		})
	}
	// A client certificate cannot serve: a client refuses it.
	cliAsServer, err := cliSrc.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	_, err = handshake(t, cliAsServer, srvSrc.ClientConfig(ClientOptions{ServerName: "alice"}))
	if err == nil || !strings.Contains(err.Error(), "role client") {
		t.Fatalf("client certificate as a server: %v", err)
	}
}

func sourceOf(t *testing.T, ca, leaf *KeyPair) *Source {
	t.Helper()
	s, err := NewSource(writeFiles(t, t.TempDir(), ca, leaf))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSourceWatchReloadsChangedFiles(t *testing.T) {
	dir := t.TempDir()
	ca := mustCA(t, "")
	f := writeFiles(t, dir, ca, mustIssue(t, ca, LeafOptions{Role: RoleAgent, Name: "a"}))
	src, err := NewSource(f)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reports := make(chan error, 10)
	go src.Watch(ctx, 5*time.Millisecond, func(err error) { reports <- err })
	next := mustIssue(t, ca, LeafOptions{Role: RoleAgent, Name: "a"})
	// A new mtime even on a coarse-grained file system.
	later := time.Now().Add(2 * time.Second)
	if err := WriteKeyPair(next, f.CertFile, f.KeyFile, true); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{f.CertFile, f.KeyFile} {
		if err := os.Chtimes(name, later, later); err != nil {
			t.Fatal(err)
		}
	}
	// With a 5 ms interval a reload may catch the key written before the
	// certificate (a reported error, the old pair kept); it settles.
	deadline := time.After(10 * time.Second)
	for !src.Certificate().Equal(next.Cert) {
		select {
		case err := <-reports:
			if err != nil {
				t.Logf("intermediate reload: %v", err)
			}
		case <-deadline:
			t.Fatal("no reload after the files changed")
		}
	}
	if !src.Certificate().Equal(next.Cert) {
		t.Fatal("watch reloaded but the certificate is the old one")
	}
}

// BenchmarkVerifyPeer is the cost a listener with a CA pays per call.
func BenchmarkVerifyPeer(b *testing.B) {
	ca, err := NewCA(CAOptions{})
	if err != nil {
		b.Fatal(err)
	}
	kp, err := ca.Issue(LeafOptions{Role: RoleServer, Name: "s1"})
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	chain := []*x509.Certificate{kp.Cert}
	now := time.Now()
	b.ResetTimer()
	for b.Loop() {
		if _, err := VerifyPeer(chain, roots, now, x509.ExtKeyUsageClientAuth); err != nil {
			b.Fatal(err)
		}
	}
}
