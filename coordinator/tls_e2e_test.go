package coordinator_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx/tlsxtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestTLSClusterRefusesWhoItShould: a 3-server cluster with mTLS on every
// link elects a leader and forwards a write over server-to-server mTLS;
// then every caller it must refuse is refused with a status that says why,
// and nothing is written and nothing paused.
func TestTLSClusterRefusesWhoItShould(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	other := tlsxtest.New(t, "other CA")
	c := testcluster.New(t, 3, testcluster.WithTLS(pki))
	leader := c.WaitForLeader(t)
	f := c.Index(c.Followers()[0])
	if _, err := c.Client(f).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(2e6)}); err != nil {
		t.Fatalf("write through follower over mTLS: %v", err)
	}
	want := proto.Clone(leader.FSM().Config()).(*pb.RuntimeConfig)
	audits := len(leader.FSM().Audit(0))

	expired := func(o *tlsx.LeafOptions) {
		o.NotBefore, o.NotAfter = time.Now().Add(-48*time.Hour), time.Now().Add(-time.Minute)
	}
	foreign := other.TLS(tlsx.RoleClient, "mallory")
	foreign.CAFile = pki.CAFile // it trusts the cluster's servers; they do not trust it
	forged := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "x-stillpoint-forwarded-by", "server-9")
	}
	for _, tc := range []struct {
		name     string
		tls      grpcx.TLS
		ctx      func(context.Context) context.Context
		code     codes.Code
		contains []string
	}{
		{"no client certificate", pki.CAOnly(), nil, codes.Unauthenticated, []string{"no client certificate", "verify_incoming", "stillpoint tls cert create"}},
		{"another CA", foreign, nil, codes.Unauthenticated, []string{"mallory", "not signed by a CA", "other CA", "cluster CA"}},
		{"expired certificate", pki.TLS(tlsx.RoleClient, "old", expired), nil, codes.Unauthenticated, []string{"old", "expired at"}},
		{"agent certificate", pki.TLS(tlsx.RoleAgent, "ledger-1"), nil, codes.PermissionDenied, []string{"role agent", "[client server]"}},
		{"client forging a forwarded call", pki.TLS(tlsx.RoleClient, "alice"), forged, codes.PermissionDenied, []string{"alice", "role client", "[server]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := c.Dial(t, f, tc.tls)
			ctx := ctxT(t, 10*time.Second)
			if tc.ctx != nil {
				ctx = tc.ctx(ctx)
			}
			_, errCfg := cl.UpdateConfig(ctx, &pb.UpdateConfigRequest{Config: configWithMargin(9e6)})
			_, errPause := cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: "evil"})
			for _, err := range []error{errCfg, errPause} {
				st := status.Convert(err)
				if st.Code() != tc.code {
					t.Fatalf("code %v (%v), want %v", st.Code(), err, tc.code)
				}
				for _, s := range tc.contains {
					if !strings.Contains(st.Message(), s) {
						t.Errorf("message %q does not mention %q", st.Message(), s)
					}
				}
			}
		})
	}
	// Streams are authenticated too.
	ws, err := c.Dial(t, f, pki.CAOnly()).WatchAlarms(ctxT(t, 10*time.Second), &pb.WatchAlarmsRequest{})
	if err == nil {
		_, err = ws.Recv()
	}
	if st := status.Convert(err); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), "no client certificate") {
		t.Fatalf("WatchAlarms without a certificate: %v", err)
	}
	// An agent certificate may not read GetServerInfo; a client
	// certificate may (`stillpoint ui` reads the HTTP address from it).
	_, err = c.Dial(t, f, pki.TLS(tlsx.RoleAgent, "ledger-9")).GetServerInfo(ctxT(t, 10*time.Second), &pb.GetServerInfoRequest{})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "agent") {
		t.Fatalf("GetServerInfo with an agent certificate: %v", err)
	}
	if info, err := c.Dial(t, f, pki.TLS(tlsx.RoleClient, "alice")).GetServerInfo(ctxT(t, 10*time.Second), &pb.GetServerInfoRequest{}); err != nil || info.GetNodeId() == "" {
		t.Fatalf("GetServerInfo with a client certificate: %v, %v", info, err)
	}
	// The Raft port speaks TLS and takes only server certificates.
	for _, tc := range []struct {
		name     string
		tls      grpcx.TLS
		accepted bool
	}{
		{"server certificate", pki.TLS(tlsx.RoleServer, "server-9"), true},
		{"client certificate", pki.TLS(tlsx.RoleClient, "alice"), false},
		{"no certificate", pki.CAOnly(), false},
		{"another CA", foreign, false},
	} {
		err := raftRead(t, leader.RaftAddr(), tc.tls)
		var ne net.Error
		timedOut := errors.As(err, &ne) && ne.Timeout()
		if timedOut != tc.accepted {
			t.Errorf("Raft port, %s: read %v; want accepted=%v (an accepted connection waits for a command)", tc.name, err, tc.accepted)
		}
	}
	if got := leader.FSM().Config(); !proto.Equal(got, want) {
		t.Fatalf("a refused caller changed the config: %v", got)
	}
	if ops := leader.FSM().Operations("", 0); len(ops) != 0 {
		t.Fatalf("a refused caller started %d operations: %v", len(ops), ops)
	}
	// Every refused call is audited (and nothing else was): 5 callers × 2
	// calls, the WatchAlarms stream and the GetServerInfo.
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		recs := leader.FSM().Audit(0)
		if len(recs)-audits != 12 {
			return false, fmt.Sprintf("%d records after the refusals, want %d", len(recs), audits+12)
		}
		for _, r := range recs[:len(recs)-audits] {
			if r.GetAction() != coordinator.AuditRefused || r.GetRefusedCode() == "" || r.GetCaller().GetRemoteAddr() == "" {
				return false, fmt.Sprintf("record %v is not a refusal with its code and caller", r)
			}
		}
		return true, ""
	})
}

// raftRead opens a TLS connection to a Raft port with tl and reads: an
// accepted connection times out waiting for a command, a refused one ends
// with the server's alert.
func raftRead(t *testing.T, addr string, tl grpcx.TLS) error {
	t.Helper()
	src, err := tl.Load()
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", addr, src.ClientConfig(tlsx.ClientOptions{ServerName: "127.0.0.1"}))
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	_, err = conn.Read(make([]byte, 1))
	return err
}

func writeBad(name string) error { return os.WriteFile(name, []byte("not a certificate"), 0o644) }

// servedSerial makes a new connection to server i and returns the serial
// of the certificate it presents.
func servedSerial(t *testing.T, c *testcluster.Cluster, i int, tl grpcx.TLS) string {
	t.Helper()
	var p peer.Peer
	if _, err := c.Dial(t, i, tl).ListRaftPeers(ctxT(t, 10*time.Second), &pb.ListRaftPeersRequest{}, grpc.Peer(&p)); err != nil {
		t.Fatal(err)
	}
	return p.AuthInfo.(credentials.TLSInfo).State.PeerCertificates[0].SerialNumber.Text(16)
}

// TestTLSCertificateReload: replacing the leader's certificate files and
// reloading (what SIGHUP calls) makes new connections see the new
// certificate, while the leader stays leader in the same term, and writes
// keep flowing through a follower.
func TestTLSCertificateReload(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	c := testcluster.New(t, 3, testcluster.WithTLS(pki))
	leader := c.WaitForLeader(t)
	li := c.Index(leader)
	epoch, _ := leader.LeaderEpoch()
	op := pki.TLS(tlsx.RoleClient, "operator-2")
	before := servedSerial(t, c, li, op)
	if before != leader.TLSCertificateSerial() {
		t.Fatalf("served serial %s, server reports %s", before, leader.TLSCertificateSerial())
	}
	_, _, next := pki.Issue(tlsx.RoleServer, leader.ID()) // replaces its files
	if err := leader.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	want := next.Cert.SerialNumber.Text(16)
	if got := servedSerial(t, c, li, op); got != want || got == before {
		t.Fatalf("after reload a new connection sees serial %s, want the new %s (old %s)", got, want, before)
	}
	f := c.Index(c.Followers()[0])
	if _, err := c.Client(f).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(4e6)}); err != nil {
		t.Fatalf("write through a follower after the reload: %v", err)
	}
	if now := c.WaitForLeader(t); now != leader {
		t.Fatalf("leader changed from %s to %s across the reload", leader.ID(), now.ID())
	}
	if e, _ := leader.LeaderEpoch(); e != epoch {
		t.Fatalf("leader epoch went from %d to %d across the reload", epoch, e)
	}
	// A follower restarted from its data dir rejoins over TLS Raft (new
	// connections, under the leader's new certificate) and catches up.
	c.Kill(f)
	if _, err := c.Client(li).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(6e6)}); err != nil {
		t.Fatalf("write with one follower down: %v", err)
	}
	restarted := c.Restart(f)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		got := restarted.FSM().Config().GetMarginNs()
		return got == 6e6, fmt.Sprintf("restarted %s: margin %d, want 6e6", restarted.ID(), got)
	})
	// A bad file keeps the certificate in force.
	certFile := pki.Dir + "/server-" + leader.ID() + ".pem"
	if err := writeBad(certFile); err != nil {
		t.Fatal(err)
	}
	if err := leader.ReloadTLS(); err == nil || !strings.Contains(err.Error(), certFile) {
		t.Fatalf("reload of a bad file: %v, want an error naming %s", err, certFile)
	}
	if got := servedSerial(t, c, li, op); got != want {
		t.Fatalf("a failed reload changed the served certificate to %s", got)
	}
}

// TestTLSPauseEndToEnd: a dev cluster with mTLS on every link (CLI →
// server, server ↔ server, server → agent with role checks both ways)
// completes a pause with a restore point; the same client certificate
// sent straight to an agent's Pause is refused and pauses nothing.
func TestTLSPauseEndToEnd(t *testing.T) {
	c := startDev(t, func(cfg *devcluster.Config) { cfg.TLS = true })
	f := c.Leader() + 1
	if f >= len(c.Servers()) {
		f = 0
	}
	op := startPause(t, c, client(t, c, f), &pb.StartPauseRequest{Cluster: "ledger"}, completed)
	if op.GetState() != pb.OperationState_OPERATION_STATE_COMPLETED || op.GetWindow() == nil {
		t.Fatalf("op over mTLS ended %v: %s", op.GetState(), op.GetReason())
	}
	n := c.Nodes()[0]
	before := len(n.Sim.PausedIntervals())
	cc, err := grpcx.NewClient(n.Agent.GRPCAddr(), c.ClientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = pb.NewAgentServiceClient(cc).Pause(ctxT(t, 10*time.Second), &pb.PauseRequest{OpId: "op-cli", Epoch: 1 << 40, LeaseMs: 10_000, WaitOutstanding: true})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "dev-operator") {
		t.Fatalf("client certificate calling agent %s Pause: %v, want PERMISSION_DENIED naming dev-operator", n.Spec.Name, err)
	}
	if n.Sim.Paused() || len(n.Sim.PausedIntervals()) != before {
		t.Fatalf("node %s paused by a refused client", n.Spec.Name)
	}
}
