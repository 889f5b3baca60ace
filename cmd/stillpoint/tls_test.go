package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/gossip"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx/tlsxtest"
)

// TestTLSCommands: `tls ca create` and `tls cert create` write a CA and
// role certificates that chain, carry their role, keep keys 0600, and
// are never overwritten without --force.
func TestTLSCommands(t *testing.T) {
	dir := t.TempDir()
	if code, out, errOut := runMain(t, "tls", "ca", "create", "--dir", dir, "--name", "Test CA"); code != 0 || !strings.Contains(out, "ca-key.pem (0600)") {
		t.Fatalf("ca create: exit %d\n%s%s", code, out, errOut)
	}
	code, _, errOut := runMain(t, "tls", "ca", "create", "--dir", dir)
	if code == 0 || !strings.Contains(errOut, filepath.Join(dir, "ca.pem")) || !strings.Contains(errOut, "--force") {
		t.Fatalf("second ca create: exit %d, stderr %q; want a refusal naming ca.pem", code, errOut)
	}
	ca, err := tlsx.LoadKeyPairFiles(filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem"))
	if err != nil || ca.Cert.Subject.CommonName != "Test CA" {
		t.Fatalf("CA: %v", err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, tc := range []struct {
		args  []string
		role  string
		file  string
		usage x509.ExtKeyUsage
	}{
		{[]string{"--server", "--name", "s1", "--ip", "10.0.0.1", "--dns", "s1.example"}, tlsx.RoleServer, "server-s1", x509.ExtKeyUsageServerAuth},
		{[]string{"--agent", "--name", "ledger-1"}, tlsx.RoleAgent, "agent-ledger-1", x509.ExtKeyUsageServerAuth},
		{[]string{"--client", "--name", "alice", "--days", "30"}, tlsx.RoleClient, "client-alice", x509.ExtKeyUsageClientAuth},
	} {
		code, out, errOut := runMain(t, append([]string{"tls", "cert", "create", "--dir", dir}, tc.args...)...)
		if code != 0 || !strings.Contains(out, "spiffe://stillpoint/"+tc.role+"/") {
			t.Fatalf("%v: exit %d\n%s%s", tc.args, code, out, errOut)
		}
		certFile, keyFile := filepath.Join(dir, tc.file+".pem"), filepath.Join(dir, tc.file+"-key.pem")
		kp, err := tlsx.LoadKeyPairFiles(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(keyFile); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", keyFile, fi.Mode().Perm())
		}
		id, err := tlsx.VerifyPeer([]*x509.Certificate{kp.Cert}, roots, time.Now(), tc.usage)
		if err != nil || id.Role != tc.role {
			t.Fatalf("%s: %+v, %v", tc.file, id, err)
		}
	}
	if code, _, errOut := runMain(t, "tls", "cert", "create", "--dir", dir, "--client", "--name", "alice"); code == 0 || !strings.Contains(errOut, "client-alice.pem") {
		t.Fatalf("overwrite without --force: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runMain(t, "tls", "cert", "create", "--dir", dir, "--client", "--server", "--name", "x"); code != exitUsage || !strings.Contains(errOut, "exactly one of") {
		t.Fatalf("two roles: exit %d, %q", code, errOut)
	}
	if code, _, errOut := runMain(t, "tls", "cert", "create", "--dir", t.TempDir(), "--client", "--name", "x"); code == 0 || !strings.Contains(errOut, "tls ca create") {
		t.Fatalf("no CA: exit %d, %q", code, errOut)
	}
}

// TestServerReloadsOnSIGHUP: the server command's SIGHUP handler reloads
// the listener's certificate (the signal is sent to this process).
func TestServerReloadsOnSIGHUP(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	tl := pki.TLS(tlsx.RoleServer, "s1")
	cfg := coordinator.DefaultConfig()
	cfg.NodeID = "s1"
	cfg.DataDir = t.TempDir()
	cfg.RaftBindAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	cfg.Raft = coordinator.TestTimings()
	cfg.WALSegmentSize = 1 << 20
	cfg.Bootstrap = true
	cfg.Gossip = gossip.Config{Name: "s1", BindAddr: "127.0.0.1", Profile: gossip.ProfileTest}
	cfg.TLS, cfg.ClientTLS, cfg.AgentTLS = tl, tl, tl
	started := make(chan *coordinator.Server, 1)
	serverStarted = func(s *coordinator.Server) { started <- s }
	t.Cleanup(func() { serverStarted = nil })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, cfg, "", zap.NewNop()) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runServer: %v", err)
		}
	}()
	var s *coordinator.Server
	select {
	case s = <-started:
	case err := <-done:
		t.Fatalf("runServer ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("server did not start")
	}
	before := s.TLSCertificateSerial()
	_, _, next := pki.Issue(tlsx.RoleServer, "s1")
	want := next.Cert.SerialNumber.Text(16)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.TLSCertificateSerial() != want {
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP the server still serves %s (before %s), want %s", s.TLSCertificateSerial(), before, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCLIOverMTLS: the CLI reaches a cluster with mTLS on every link with
// --ca/--cert/--key; without a certificate it is refused, saying so; and
// pointed at an agent (a certificate of the cluster CA, but not a
// server's) it refuses to talk.
func TestCLIOverMTLS(t *testing.T) {
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.Servers = 1
	cfg.Nodes = cfg.Nodes[:1]
	cfg.DataDir = t.TempDir()
	cfg.TLS = true
	cfg.Logger = logtest.New(t, zap.ErrorLevel)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	tl := c.ClientTLS()
	out, errOut, err := runCLI3(t, "members", "--addr", c.APIAddr(), "--ca", tl.CAFile, "--cert", tl.CertFile, "--key", tl.KeyFile)
	if err != nil || !strings.Contains(out, "ledger-1") {
		t.Fatalf("members over mTLS: %v\n%s%s", err, out, errOut)
	}
	_, errOut, err = runCLI3(t, "members", "--addr", c.APIAddr(), "--ca", tl.CAFile)
	if err == nil || !strings.Contains(err.Error()+errOut, "no client certificate") {
		t.Fatalf("members without a certificate: %v %s", err, errOut)
	}
	t.Logf("without a certificate: %v", err)
	// `stillpoint dev` prints the export line; the CLI reads it.
	var banner bytes.Buffer
	dev := &cobra.Command{}
	dev.SetOut(&banner)
	if err := printDevSummary(dev, c, cfg, time.Second); err != nil {
		t.Fatal(err)
	}
	var export string
	for _, line := range strings.Split(banner.String(), "\n") {
		// "unset STILLPOINT_TOKEN; export STILLPOINT_ADDR=..." (ACLs off)
		if _, after, ok := strings.Cut(line, "export STILLPOINT_ADDR="); ok {
			export = "export STILLPOINT_ADDR=" + strings.TrimSpace(after)
		}
	}
	if export == "" {
		t.Fatalf("dev banner has no export line:\n%s", banner.String())
	}
	for _, kv := range strings.Fields(strings.TrimPrefix(export, "export ")) {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	if out, errOut, err := runCLI3(t, "members"); err != nil || !strings.Contains(out, "ledger-1") {
		t.Fatalf("members with the exported STILLPOINT_ADDR/CA/CERT/KEY: %v\n%s%s", err, out, errOut)
	}
	agentAddr := c.Node("ledger-1").Agent.GRPCAddr()
	_, errOut, err = runCLI3(t, "members", "--addr", agentAddr, "--ca", tl.CAFile, "--cert", tl.CertFile, "--key", tl.KeyFile, "--timeout", "3s")
	if err == nil || !strings.Contains(err.Error()+errOut, "does not carry role [server]") {
		t.Fatalf("members against an agent's port: %v %s", err, errOut)
	}
	t.Logf("against an agent: %v", err)
}

// verify_incoming / verify_outgoing are read from the config file.
func TestServerConfigVerifySwitches(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.yaml")
	yaml := `node_id: s1
data_dir: ` + dir + `
bootstrap: true
grpc_tls:
  ca_file: /etc/ca.pem
  verify_incoming: false
peer_tls:
  ca_file: /etc/ca.pem
  verify_outgoing: false
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	file, err := resolveServer(t, "--config", path)
	if err != nil {
		t.Fatal(err)
	}
	if file.GRPCTLS.VerifiesIncoming() || !file.AgentTLS.VerifiesOutgoing() || file.PeerTLS.VerifiesOutgoing() {
		t.Fatalf("grpc_tls verifies incoming %v, peer_tls verifies outgoing %v", file.GRPCTLS.VerifiesIncoming(), file.PeerTLS.VerifiesOutgoing())
	}
	file.GRPCTLS.VerifyIncoming = nil
	if !file.GRPCTLS.VerifiesIncoming() {
		t.Fatal("a listener with a CA does not verify incoming by default")
	}
}
