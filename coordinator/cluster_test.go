package coordinator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func configWithMargin(ns int64) *pb.RuntimeConfig {
	c := fsm.DefaultRuntimeConfig()
	c.MarginNs = ns
	return c
}

// TestClusterFailover: 3 servers elect a leader; a write sent to a follower
// succeeds; killing the leader yields a new one that lost no committed
// entry; the killed server restarts from its data dir and catches up.
func TestClusterFailover(t *testing.T) {
	c := testcluster.New(t, 3)
	leader := c.WaitForLeader(t)
	epoch1, _ := leader.LeaderEpoch()
	if epoch1 == 0 {
		t.Fatal("leader established without bumping the epoch")
	}

	follower := c.Followers()[0]
	fi := c.Index(follower)
	resp, err := c.Client(fi).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(2e6), RequestedBy: "alice"})
	if err != nil {
		t.Fatalf("UpdateConfig via follower %s: %v", follower.ID(), err)
	}
	if resp.GetConfig().GetMarginNs() != 2e6 {
		t.Fatalf("response config margin = %d", resp.GetConfig().GetMarginNs())
	}
	// Committed on the leader the moment it answered.
	if got := leader.FSM().Config().GetMarginNs(); got != 2e6 {
		t.Fatalf("leader margin = %d after the follower's write", got)
	}
	audit := leader.FSM().Audit(1)
	if len(audit) != 1 || audit[0].GetAction() != fsm.AuditConfigChange || audit[0].GetCaller().GetNote() != "alice" {
		t.Fatalf("audit after config change = %v", audit)
	}

	// A second write, then kill the leader.
	if _, err := c.Client(fi).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(3e6)}); err != nil {
		t.Fatal(err)
	}
	li := c.Index(leader)
	c.Kill(li)
	newLeader := c.WaitForLeader(t)
	if newLeader.ID() == leader.ID() {
		t.Fatalf("leader %s still leads after being killed", leader.ID())
	}
	epoch2, _ := newLeader.LeaderEpoch()
	if epoch2 <= epoch1 {
		t.Fatalf("new leader epoch %d not above old %d", epoch2, epoch1)
	}
	if got := newLeader.FSM().Config().GetMarginNs(); got != 3e6 {
		t.Fatalf("new leader %s lost a committed entry: margin = %d, want 3e6", newLeader.ID(), got)
	}
	if n := len(newLeader.FSM().Audit(0)); n != 2 {
		t.Fatalf("new leader has %d audit records, want 2", n)
	}
	// A write through the remaining follower still works.
	other := -1
	for _, s := range c.Servers() {
		if s != newLeader {
			other = c.Index(s)
		}
	}
	if _, err := c.Client(other).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(4e6)}); err != nil {
		t.Fatalf("write via follower after failover: %v", err)
	}

	restarted := c.Restart(li)
	testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
		got := restarted.FSM().Config().GetMarginNs()
		epoch := restarted.FSM().Epoch()
		return got == 4e6 && epoch == epoch2, fmt.Sprintf("restarted %s: margin %d (want 4e6), epoch %d (want %d)", restarted.ID(), got, epoch, epoch2)
	})
	// It serves forwarded writes again.
	if _, err := c.Client(li).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(5e6)}); err != nil {
		t.Fatalf("write via restarted server: %v", err)
	}
	for _, s := range c.Servers() {
		testcluster.WaitFor(t, testcluster.DefaultTimeout, func() (bool, string) {
			got := s.FSM().Config().GetMarginNs()
			return got == 5e6, fmt.Sprintf("%s margin %d", s.ID(), got)
		})
	}
}

// TestStaleAndLeaderReads: reads from a follower are served by the leader,
// or locally with stale.
func TestStaleAndLeaderReads(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitForLeader(t)
	f := c.Index(c.Followers()[0])
	if _, err := c.Client(f).UpdateConfig(ctxT(t, 10*time.Second), &pb.UpdateConfigRequest{Config: configWithMargin(7e6)}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Client(f).GetConfig(ctxT(t, 10*time.Second), &pb.GetConfigRequest{})
	if err != nil || got.GetConfig().GetMarginNs() != 7e6 {
		t.Fatalf("GetConfig via follower = %v, %v", got, err)
	}
	audit, err := c.Client(f).ListAudit(ctxT(t, 10*time.Second), &pb.ListAuditRequest{Stale: true})
	if err != nil {
		t.Fatal(err)
	}
	// A stale read may lag but must not fail.
	if len(audit.GetRecords()) > 1 {
		t.Fatalf("stale audit = %v", audit)
	}
	peers, err := c.Client(f).ListRaftPeers(ctxT(t, 10*time.Second), &pb.ListRaftPeersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	leaders := 0
	for _, p := range peers.GetPeers() {
		if p.GetLeader() {
			leaders++
		}
	}
	if len(peers.GetPeers()) != 3 || leaders != 1 || peers.GetServedBy() != c.WaitForLeader(t).ID() {
		t.Fatalf("peers = %v", peers)
	}
}

func TestAPIErrors(t *testing.T) {
	c := testcluster.New(t, 3)
	c.WaitForLeader(t)
	f := c.Index(c.Followers()[0])
	cl := c.Client(f)
	bad := configWithMargin(-1)
	bad.LeaseNs = 0
	tests := []struct {
		name     string
		call     func(ctx context.Context) error
		code     codes.Code
		contains string
	}{
		{"invalid config names every problem", func(ctx context.Context) error {
			_, err := cl.UpdateConfig(ctx, &pb.UpdateConfigRequest{Config: bad})
			return err
		}, codes.InvalidArgument, "margin_ns"},
		{"unknown operation", func(ctx context.Context) error {
			_, err := cl.GetOperation(ctx, &pb.GetOperationRequest{OpId: "op-missing"})
			return err
		}, codes.NotFound, "op-missing"},
		{"missing op id", func(ctx context.Context) error {
			_, err := cl.GetRestorePoint(ctx, &pb.GetRestorePointRequest{})
			return err
		}, codes.InvalidArgument, "op_id"},
		{"remove unknown peer", func(ctx context.Context) error {
			_, err := cl.RemoveRaftPeer(ctx, &pb.RemoveRaftPeerRequest{Id: "server-9"})
			return err
		}, codes.NotFound, "server-9"},
		{"pause of a cluster without agents", func(ctx context.Context) error {
			_, err := cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger"})
			return err
		}, codes.NotFound, `cluster "ledger" has no agents`}, // UNKNOWN_CLUSTER
		{"pause without cluster", func(ctx context.Context) error {
			_, err := cl.StartPause(ctx, &pb.StartPauseRequest{HoldMs: -1})
			return err
		}, codes.InvalidArgument, "cluster is required; hold_ms -1"},
		{"force unpause of unknown op", func(ctx context.Context) error {
			_, err := cl.ForceUnpause(ctx, &pb.ForceUnpauseRequest{OpId: "op-nope"})
			return err
		}, codes.NotFound, "op-nope"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(ctxT(t, 10*time.Second))
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("code = %v (%v), want %v", st.Code(), err, tc.code)
			}
			if tc.contains != "" && !strings.Contains(st.Message(), tc.contains) {
				t.Fatalf("message %q does not mention %q", st.Message(), tc.contains)
			}
		})
	}
	if cfg := c.WaitForLeader(t).FSM().Config(); !proto.Equal(cfg, fsm.DefaultRuntimeConfig()) {
		t.Fatalf("refused requests changed the config: %v", cfg)
	}
}
