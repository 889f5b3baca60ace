package agent_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx/tlsxtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// tlsClient dials the agent with t (a fresh connection each time).
func tlsClient(t *testing.T, a *agent.Agent, tl grpcx.TLS) pb.AgentServiceClient {
	t.Helper()
	cc, err := grpcx.NewClient(a.GRPCAddr(), tl)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewAgentServiceClient(cc)
}

// TestAgentServesOnlyServerCertificates: with mTLS on the AgentService, a
// caller without a certificate, with one of another CA, with an expired
// one, or with a client or agent certificate is refused with a status that
// says why — and the node is never paused. A server certificate pauses it.
func TestAgentServesOnlyServerCertificates(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	other := tlsxtest.New(t, "other CA")
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	cfg := testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil)
	cfg.GRPC.TLS = pki.TLS(tlsx.RoleAgent, "n1")
	a := startAgent(t, cfg)
	waitSynchronized(t, a)
	expired := func(o *tlsx.LeafOptions) {
		o.NotBefore, o.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Hour)
	}
	for _, tc := range []struct {
		name     string
		tls      grpcx.TLS
		code     codes.Code
		contains []string
	}{
		{"no client certificate", pki.CAOnly(), codes.Unauthenticated, []string{"agent n1", "no client certificate"}},
		{"another CA", withCA(other.TLS(tlsx.RoleServer, "s1"), pki.CAFile), codes.Unauthenticated, []string{"not signed by a CA", "other CA"}},
		{"expired server certificate", pki.TLS(tlsx.RoleServer, "old", expired), codes.Unauthenticated, []string{"expired at"}},
		{"client certificate", pki.TLS(tlsx.RoleClient, "alice"), codes.PermissionDenied, []string{"agent n1", "only from a certificate with role [server]", "alice", "role client"}},
		{"agent certificate", pki.TLS(tlsx.RoleAgent, "n2"), codes.PermissionDenied, []string{"role agent"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := tlsClient(t, a, tc.tls)
			for _, call := range []struct {
				method string
				do     func() error
			}{
				{"Pause", func() error {
					_, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-evil", Epoch: 9, LeaseMs: 10_000, WaitOutstanding: true})
					return err
				}},
				{"Unpause", func() error {
					_, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-evil", Epoch: 9})
					return err
				}},
				{"RenewLease", func() error {
					_, err := c.RenewLease(rpcCtx(t), &pb.RenewLeaseRequest{OpId: "op-evil", Epoch: 9, LeaseMs: 10_000})
					return err
				}},
				{"Status", func() error { _, err := c.Status(rpcCtx(t), &pb.StatusRequest{}); return err }},
			} {
				err := call.do()
				st := status.Convert(err)
				if st.Code() != tc.code {
					t.Fatalf("%s: code %v (%v), want %v", call.method, st.Code(), err, tc.code)
				}
				for _, s := range tc.contains {
					if !strings.Contains(st.Message(), s) {
						t.Errorf("%s: message %q does not mention %q", call.method, st.Message(), s)
					}
				}
			}
			if sim.Paused() || len(sim.PausedIntervals()) != 0 {
				t.Fatalf("the node was paused by a refused caller: %v", sim.PausedIntervals())
			}
		})
	}
	c := tlsClient(t, a, pki.TLS(tlsx.RoleServer, "server-1"))
	resp, err := c.Pause(rpcCtx(t), &pb.PauseRequest{OpId: "op-1", Epoch: 1, LeaseMs: 10_000, WaitOutstanding: true})
	if err != nil || resp.GetOutcome() != pb.NodeOutcome_NODE_OUTCOME_PAUSED || !sim.Paused() {
		t.Fatalf("pause by a server certificate = %v, %v (node paused: %v)", resp, err, sim.Paused())
	}
	if _, err := c.Unpause(rpcCtx(t), &pb.UnpauseRequest{OpId: "op-1", Epoch: 1}); err != nil {
		t.Fatal(err)
	}
}

func withCA(t grpcx.TLS, caFile string) grpcx.TLS {
	t.CAFile = caFile
	return t
}

// servedSerial makes a new connection to the agent and returns the serial
// of the certificate it presents.
func servedSerial(t *testing.T, a *agent.Agent, tl grpcx.TLS) string {
	t.Helper()
	var p peer.Peer
	if _, err := tlsClient(t, a, tl).Status(rpcCtx(t), &pb.StatusRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	certs := p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates
	return certs[0].SerialNumber.Text(16)
}

// TestAgentReloadsItsCertificate: new key files plus ReloadTLS (what
// SIGHUP calls) make new connections see the new certificate; a bad file
// keeps the old one and names the file.
func TestAgentReloadsItsCertificate(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	sim := startSim(t, "n1", nil)
	cfg := testConfig("n1", sim.Addr(), t.TempDir(), startNTP(t, 1), nil)
	cfg.GRPC.TLS = pki.TLS(tlsx.RoleAgent, "n1")
	a := startAgent(t, cfg)
	srv := pki.TLS(tlsx.RoleServer, "server-1")
	before := servedSerial(t, a, srv)
	_, _, next := pki.Issue(tlsx.RoleAgent, "n1") // same files, new certificate
	if err := a.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got, want := servedSerial(t, a, srv), next.Cert.SerialNumber.Text(16); got != want || got == before {
		t.Fatalf("after reload the agent serves serial %s, want the new %s (old %s)", got, want, before)
	}
	if err := writeFile(cfg.GRPC.TLS.KeyFile, "garbage"); err != nil {
		t.Fatal(err)
	}
	err := a.ReloadTLS()
	if err == nil || !strings.Contains(err.Error(), cfg.GRPC.TLS.KeyFile) {
		t.Fatalf("reload of a bad key: %v, want an error naming %s", err, cfg.GRPC.TLS.KeyFile)
	}
	if got := servedSerial(t, a, srv); got != next.Cert.SerialNumber.Text(16) {
		t.Fatalf("a bad reload changed the served certificate to %s", got)
	}
}

func writeFile(name, content string) error { return os.WriteFile(name, []byte(content), 0o600) }
