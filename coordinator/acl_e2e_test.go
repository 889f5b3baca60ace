package coordinator_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func withToken(ctx context.Context, secret string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+secret)
}

// wantRefused checks err's code and message, and that the leader audited a
// refusal of method with that code.
func wantRefused(t *testing.T, c *testcluster.Cluster, err error, code codes.Code, msg, method string) {
	t.Helper()
	if status.Code(err) != code || !strings.Contains(status.Convert(err).Message(), msg) {
		t.Fatalf("got %v, want %s containing %q", err, code, msg)
	}
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		for _, r := range c.WaitForLeader(t).FSM().Audit(0) {
			if r.GetAction() == coordinator.AuditRefused && strings.HasSuffix(r.GetMethod(), "/"+method) && r.GetRefusedCode() == code.String() {
				return true, ""
			}
		}
		return false, "no refused " + method + " record with code " + code.String()
	})
}

// TestACLEnforcement: with ACLs enabled, a missing token, a read token
// calling pause and a revoked token are each refused with a clear code and
// message, audited, and pause nothing; bootstrap happens once; a client
// claiming to be a forwarding server is refused.
func TestACLEnforcement(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithServerConfig(func(_ int, cfg *coordinator.Config) { cfg.ACL.Enabled = true }))
	leader := c.WaitForLeader(t)
	fi := c.Index(c.Followers()[0])
	cl, d := dialWithAddr(t, c.Server(fi).GRPCAddr())
	ctx := ctxT(t, 60*time.Second)

	_, err := cl.ListMembers(ctx, &pb.ListMembersRequest{})
	wantRefused(t, c, err, codes.Unauthenticated, "acl bootstrap", "ListMembers")

	boot, err := cl.ACLBootstrap(ctx, &pb.ACLBootstrapRequest{Note: "first"})
	if err != nil {
		t.Fatalf("bootstrap via follower: %v", err)
	}
	if boot.GetToken().GetSecretSha256() != nil || !strings.HasPrefix(boot.GetSecret(), "spt_") {
		t.Fatalf("bootstrap answer = %v", boot)
	}
	if _, err := cl.ACLBootstrap(ctx, &pb.ACLBootstrapRequest{}); status.Code(err) != codes.AlreadyExists {
		t.Fatalf("second bootstrap: %v", err)
	}
	admin := withToken(ctx, boot.GetSecret())
	read, err := cl.CreateACLToken(admin, &pb.CreateACLTokenRequest{Name: "dashboards", Role: pb.ACLRole_ACL_ROLE_READ})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cl.ListMembers(withToken(ctx, read.GetSecret()), &pb.ListMembersRequest{}); err != nil {
		t.Fatalf("read token listing members: %v", err)
	}

	pause := &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 10, RequestId: "acl-1"}
	_, err = cl.StartPause(ctx, pause)
	wantRefused(t, c, err, codes.Unauthenticated, "StartPause needs a token with role operate", "StartPause")

	_, err = cl.StartPause(withToken(ctx, read.GetSecret()), pause)
	wantRefused(t, c, err, codes.PermissionDenied, "has role read; StartPause needs role operate", "StartPause")

	if _, err := cl.RevokeACLToken(admin, &pb.RevokeACLTokenRequest{AccessorId: read.GetToken().GetAccessorId(), Note: "rotated"}); err != nil {
		t.Fatal(err)
	}
	_, err = cl.ListMembers(withToken(ctx, read.GetSecret()), &pb.ListMembersRequest{})
	wantRefused(t, c, err, codes.Unauthenticated, "unknown or revoked", "ListMembers")

	_, err = cl.StartPause(withToken(ctx, "spt_not-a-real-secret"), pause)
	wantRefused(t, c, err, codes.Unauthenticated, "malformed bearer token", "StartPause")

	// A client cannot pass for a forwarding server.
	forged := metadata.AppendToOutgoingContext(ctx, "x-stillpoint-forwarded-by", "server-9", "x-stillpoint-caller", "AAAA")
	_, err = pb.NewCoordinatorServiceClient(mustConn(t, leader.GRPCAddr())).StartPause(forged, pause)
	wantRefused(t, c, err, codes.PermissionDenied, "not from an authenticated server", "StartPause")

	if ops := leader.FSM().Operations("", 0); len(ops) != 0 {
		t.Fatalf("refused calls created operations: %v", ops)
	}
	// The refusals name the caller's address as the follower saw it.
	for _, r := range leader.FSM().Audit(0) {
		if r.GetAction() == coordinator.AuditRefused && strings.HasSuffix(r.GetMethod(), "/StartPause") && r.GetRefusedCode() == codes.PermissionDenied.String() && r.GetCaller().GetTokenName() == "dashboards" {
			if r.GetCaller().GetRemoteAddr() != d.addr() || r.GetCaller().GetReceivedBy() != c.Server(fi).ID() {
				t.Fatalf("refusal caller = %v, want remote %s received by %s", r.GetCaller(), d.addr(), c.Server(fi).ID())
			}
		}
	}
	toks, err := cl.ListACLTokens(admin, &pb.ListACLTokensRequest{})
	if err != nil || len(toks.GetTokens()) != 1 || toks.GetTokens()[0].GetRole() != pb.ACLRole_ACL_ROLE_ADMIN {
		t.Fatalf("tokens after revoke = %v, %v", toks, err)
	}
	if rec := findAudit(leader, fsm.AuditACLTokenRevoke); rec == nil || rec.GetCaller().GetTokenAccessor() != boot.GetToken().GetAccessorId() || rec.GetCaller().GetNote() != "rotated" {
		t.Fatalf("revoke audited as %v", rec)
	}
}

func mustConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpcx.NewClient(addr, grpcx.TLS{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}
