package coordinator_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// addrDialer dials plain TCP and remembers the local address of the last
// connection, so a test knows the remote address the server sees.
type addrDialer struct {
	mu    sync.Mutex
	local string
}

func (d *addrDialer) dial(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err == nil {
		d.mu.Lock()
		d.local = c.LocalAddr().String()
		d.mu.Unlock()
	}
	return c, err
}

func (d *addrDialer) addr() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.local
}

// dialWithAddr connects to addr and reports the client's local address.
func dialWithAddr(t *testing.T, addr string) (pb.CoordinatorServiceClient, *addrDialer) {
	t.Helper()
	d := &addrDialer{}
	cc, err := grpcx.NewClient(addr, grpcx.TLS{}, grpc.WithContextDialer(d.dial))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewCoordinatorServiceClient(cc), d
}

// findAudit is the newest audit record with action on s's replica.
func findAudit(s interface{ FSM() *fsm.FSM }, action string) *pb.AuditRecord {
	for _, r := range s.FSM().Audit(0) {
		if r.GetAction() == action {
			return r
		}
	}
	return nil
}

// TestForwardedWriteRecordsTheCaller: a write sent to a follower is
// audited on the leader with the caller's identity (its own address, as
// the follower saw it), never the forwarding follower's, and never the
// name the client stated in requested_by.
func TestForwardedWriteRecordsTheCaller(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitForLeader(t)
	follower := c.Followers()[0]
	cl, d := dialWithAddr(t, follower.GRPCAddr())

	if _, err := cl.UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(3e6), RequestedBy: "admin@prod"}); err != nil {
		t.Fatalf("UpdateConfig via follower %s: %v", follower.ID(), err)
	}
	want := "anonymous@" + d.addr()
	rec := findAudit(leader, fsm.AuditConfigChange)
	if rec == nil || rec.GetActor() != want {
		t.Fatalf("config change audited as %q, want the caller %q (follower %s, client-stated admin@prod)", rec.GetActor(), want, follower.ID())
	}
	if rec.GetCaller().GetNote() != "admin@prod" || rec.GetCaller().GetReceivedBy() != follower.ID() {
		t.Fatalf("config change caller = %v, want note admin@prod received by %s", rec.GetCaller(), follower.ID())
	}

	_, err := cl.StartPause(ctxT(t, 10*time.Second), &pb.StartPauseRequest{Cluster: "nosuch", HoldMs: 10, RequestId: "r-1"})
	if status.Code(err) == codes.OK {
		t.Fatal("pause of a cluster without agents admitted")
	}
	rec = findAudit(leader, "pause_refused")
	if rec == nil || rec.GetActor() != want {
		t.Fatalf("refused pause audited as %q, want the caller %q (follower %s)", rec.GetActor(), want, follower.ID())
	}
}
