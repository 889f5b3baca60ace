package coordinator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
)

func TestToStatus(t *testing.T) {
	s := &Server{cfg: Config{NodeID: "server-2"}}
	tests := []struct {
		err      error
		code     codes.Code
		contains string
	}{
		{fmt.Errorf("%w; 1 of 3 servers reachable", ErrNoLeader), codes.Unavailable, "1 of 3 servers reachable"},
		{raft.ErrNotLeader, codes.Unavailable, "server-2 is not the coordinator leader"},
		{raft.ErrLeadershipLost, codes.Unknown, "may or may not have been committed"},
		{fmt.Errorf("x: %w", ErrApplyTimeout), codes.DeadlineExceeded, "may still be committed"},
		{raft.ErrEnqueueTimeout, codes.Unavailable, "not applied"},
		{raft.ErrRaftShutdown, codes.Unavailable, "shutting down"},
		{fmt.Errorf("%w: op-1", fsm.ErrClusterLocked), codes.FailedPrecondition, "op-1"},
		{fmt.Errorf("%w: op-1", fsm.ErrOperationNotFound), codes.NotFound, "op-1"},
		{fmt.Errorf("%w: op-1", fsm.ErrOperationExists), codes.Internal, "op-1"},
		{fmt.Errorf("%w: lease", fsm.ErrInvalidConfig), codes.InvalidArgument, "lease"},
		{fmt.Errorf("%w: epoch 1 < 2", fsm.ErrStaleEpoch), codes.FailedPrecondition, "epoch"},
		{context.Canceled, codes.Canceled, ""},
		{status.Error(codes.PermissionDenied, "no"), codes.PermissionDenied, "no"},
		{errors.New("boom"), codes.Internal, "boom"},
	}
	for _, tc := range tests {
		t.Run(tc.err.Error(), func(t *testing.T) {
			st := status.Convert(s.toStatus(tc.err))
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.contains) {
				t.Fatalf("toStatus(%v) = %v %q, want %v containing %q", tc.err, st.Code(), st.Message(), tc.code, tc.contains)
			}
		})
	}
	if s.toStatus(nil) != nil {
		t.Fatal("toStatus(nil) != nil")
	}
}

// A refusal is FAILED_PRECONDITION with the reason of its kind; the
// refusal of a cluster nobody joined is NOT_FOUND with UNKNOWN_CLUSTER
// (errors.proto), which the CLI switches on.
func TestToStatusRefusals(t *testing.T) {
	s := &Server{cfg: Config{NodeID: "server-2"}}
	_, unknown := admit("ledgr", nil, admitCfg)
	_, skewed := admit("ledger", []candidate{{name: "a"}}, admitCfg)
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{{unknown, codes.NotFound, ReasonUnknownCluster}, {skewed, codes.FailedPrecondition, "PAUSE_REFUSED_AGENT"}} {
		err := s.toStatus(tc.err)
		if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.err.Error() || ReasonOf(err) != tc.reason {
			t.Errorf("toStatus(%v) = %v %q reason %q, want %v, the same message, reason %q", tc.err, st.Code(), st.Message(), ReasonOf(err), tc.code, tc.reason)
		}
	}
	if !errors.Is(unknown, ErrUnknownCluster) || !errors.Is(unknown, ErrRefused) || errors.Is(skewed, ErrUnknownCluster) {
		t.Errorf("sentinels: unknown %v, skewed %v", unknown, skewed)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := DefaultConfig()
	valid.NodeID = "s1"
	valid.Gossip.BindAddr = "127.0.0.1"
	if err := valid.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	bad := valid
	bad.NodeID = ""
	bad.DataDir = ""
	bad.RaftBindAddr = "0.0.0.0:7401"
	bad.GRPCAddr = "nope"
	bad.Bootstrap = true
	bad.BootstrapExpect = 3
	bad.Raft.HeartbeatTimeout = 0
	bad.SnapshotRetain = 0
	err := bad.Validate()
	for _, want := range []string{"node_id", "data_dir", "raft_advertise_addr: required", "grpc_addr", "exclusive", "raft.heartbeat_timeout", "snapshot_retain"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want a problem about %q", err, want)
		}
	}
}
