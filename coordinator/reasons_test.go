package coordinator_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	"github.com/stillpoint-dev/stillpoint/coordinator/fsm"
	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	"github.com/stillpoint-dev/stillpoint/internal/testcluster"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// reasonScenario provokes one ErrorReason and says what the error must
// carry: its code and the ErrorInfo metadata keys. api scenarios go
// through a real server's gRPC API (the answer also names the "server");
// the others call the producing function directly, each saying why.
type reasonScenario struct {
	reason  pb.ErrorReason
	code    codes.Code
	keys    []string
	api     bool
	provoke func(t *testing.T, r *reasonRig) error
}

// reasonRig is one dev cluster (one server, mTLS and ACLs on) with a
// cluster per refusal: ledger (one node, backups), skewed (two nodes, one
// 500ms off), gone (its agent is stopped) and down (its node is stopped).
type reasonRig struct {
	c    *devcluster.Cluster
	cl   pb.CoordinatorServiceClient // admin token, client certificate
	ctx  context.Context
	held *pb.Operation // the backup holding ledger in the held phase
}

func startReasonRig(t *testing.T) *reasonRig {
	def := func(name string) hook.Definition {
		return hook.Definition{Name: name, Command: "true", Timeout: time.Second}
	}
	c := startDev(t, func(cfg *devcluster.Config) {
		cfg.Servers = 1
		cfg.TLS, cfg.ACL = true, true
		cfg.Nodes = []devcluster.NodeSpec{{Name: "ledger-1", Role: "ledger", Cluster: "ledger"},
			{Name: "skew-1", Role: "auditor", Cluster: "skewed"}, {Name: "skew-2", Role: "auditor", Cluster: "skewed"},
			{Name: "gone-1", Role: "auditor", Cluster: "gone"}, {Name: "down-1", Role: "auditor", Cluster: "down"}}
		cfg.Skews = map[string]time.Duration{"skew-2": 500 * time.Millisecond}
		cfg.Workload.Enabled = false
		cfg.ExtraHooks = func(devcluster.NodeSpec, string) []hook.Definition { return []hook.Definition{def("pg-dump")} }
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		l := c.Leader()
		return l >= 0 && len(c.Servers()[l].FSM().Roster("")) == 5, "roster incomplete"
	})
	if err := c.WaitSynchronized(ctx); err != nil {
		t.Fatal(err)
	}
	return &reasonRig{c: c, cl: client(t, c, 0), ctx: ctx}
}

// dial is a client of the server with tl and no token.
func (r *reasonRig) dial(t *testing.T, tl grpcx.TLS) pb.CoordinatorServiceClient {
	t.Helper()
	cc, err := grpcx.NewClient(r.c.Servers()[0].GRPCAddr(), tl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewCoordinatorServiceClient(cc)
}

// untokened is a client with the client certificate and no token.
func (r *reasonRig) untokened(t *testing.T) pb.CoordinatorServiceClient {
	return r.dial(t, r.c.ClientTLS())
}

// unit is a server value for the producers called directly.
func unitErr(err error) func(*testing.T, *reasonRig) error {
	return func(*testing.T, *reasonRig) error { return coordinator.ToStatusForTest(err) }
}

// refusedPause polls StartPause of cluster until it is refused with
// reason (a gossip or node change takes a moment to be seen).
func (r *reasonRig) refusedPause(t *testing.T, cluster string, reason pb.ErrorReason) error {
	var last error
	testcluster.WaitFor(t, 60*time.Second, func() (bool, string) {
		resp, err := r.cl.StartPause(r.ctx, &pb.StartPauseRequest{Cluster: cluster, HoldMs: 10})
		if err == nil {
			_, _ = r.cl.ForceUnpause(r.ctx, &pb.ForceUnpauseRequest{OpId: resp.GetOperation().GetOpId(), Abort: true})
			return false, "pause of " + cluster + " admitted"
		}
		last = err
		return coordinator.ReasonOf(err) == reason.Reason(), err.Error()
	})
	return last
}

// backup runs plan to its end and returns the op.
func (r *reasonRig) backup(t *testing.T, plan string) *pb.Operation {
	t.Helper()
	resp, err := r.cl.StartBackup(r.ctx, &pb.StartBackupRequest{Plan: plan, RequestedBy: "reasons"})
	if err != nil {
		t.Fatal(err)
	}
	return waitOp(t, r.c, resp.GetOperation().GetOpId(), func(op *pb.Operation) bool { return fsm.IsTerminal(op.GetState()) })
}

func snapPlan(name string, minHoldMs int64) *pb.BackupPlan {
	ref := &pb.HookRef{Agent: "ledger-1", Hook: "pg-dump"}
	return &pb.BackupPlan{
		Name: name, Clusters: []string{"ledger"}, MinHoldMs: minHoldMs,
		Groups: []*pb.HookGroup{{Name: "ledger-databases", Hooks: []*pb.HookRef{ref}}},
		Databases: []*pb.PlanDatabase{{Name: "ledger-pg", Service: "ledger", Kind: pb.DatabaseKind_DATABASE_KIND_POSTGRES,
			Method: pb.RestoreMethod_RESTORE_METHOD_DUMP, TimeZone: "UTC", Hook: ref}},
	}
}

// hold starts the backup that holds ledger for the held phase.
func (r *reasonRig) hold(t *testing.T) *pb.Operation {
	t.Helper()
	if r.held != nil {
		return r.held
	}
	if _, err := r.cl.SetBackupPlan(r.ctx, &pb.SetBackupPlanRequest{Plan: snapPlan("hold", 120_000)}); err != nil {
		t.Fatal(err)
	}
	resp, err := r.cl.StartBackup(r.ctx, &pb.StartBackupRequest{Plan: "hold", RequestId: "reasons-hold"})
	if err != nil {
		t.Fatal(err)
	}
	r.held = waitOp(t, r.c, resp.GetOperation().GetOpId(), func(op *pb.Operation) bool {
		return op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING || fsm.IsTerminal(op.GetState())
	})
	if r.held.GetState() != pb.OperationState_OPERATION_STATE_HOLDING {
		t.Fatalf("hold backup ended: %v", r.held)
	}
	return r.held
}

// reasonScenarios is in run order: stateless refusals, then the ones that
// run backups, then the ones that stop an agent or a node.
var reasonScenarios = []reasonScenario{
	// Producers called directly: a one-server test cluster has no
	// follower, no lost leadership, no slow commit and no shutdown to
	// provoke on demand; these are toStatus's mapping of the Raft and
	// context errors (forward_test and the failover tests cover the paths).
	{reason: pb.ErrorReason_ERROR_REASON_NOT_APPLIED, code: codes.Unavailable, provoke: unitErr(raft.ErrNotLeader)},
	{reason: pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN, code: codes.Unknown, provoke: unitErr(raft.ErrLeadershipLost)},
	{reason: pb.ErrorReason_ERROR_REASON_APPLY_TIMEOUT, code: codes.DeadlineExceeded, provoke: unitErr(coordinator.ErrApplyTimeout)},
	{reason: pb.ErrorReason_ERROR_REASON_SHUTTING_DOWN, code: codes.Unavailable, provoke: unitErr(raft.ErrRaftShutdown)},
	{reason: pb.ErrorReason_ERROR_REASON_CANCELED, code: codes.Canceled, provoke: unitErr(context.Canceled)},
	// No API method ends an operation with an error (ForceUnpause of an
	// ended op returns its record); the runner meets it on a stale epoch.
	{reason: pb.ErrorReason_ERROR_REASON_OPERATION_ENDED, code: codes.FailedPrecondition, provoke: unitErr(fmt.Errorf("ack: %w", fsm.ErrOperationEnded))},
	// No API method names an alarm by id (alarms resolve themselves).
	{reason: pb.ErrorReason_ERROR_REASON_ALARM_NOT_FOUND, code: codes.NotFound, provoke: unitErr(fsm.ErrAlarmNotFound)},
	// Relayed refusals are rate limited only from an unauthenticated
	// peer, which a secure cluster refuses first: the limiter's answer.
	{reason: pb.ErrorReason_ERROR_REASON_RATE_LIMITED, code: codes.ResourceExhausted, keys: []string{"retry_after_ms"},
		provoke: func(*testing.T, *reasonRig) error { return coordinator.RefusalLimitedForTest() }},
	// A panicking handler behind the server's recovery interceptor.
	{reason: pb.ErrorReason_ERROR_REASON_INTERNAL, code: codes.Internal, keys: []string{"op_id", "server"},
		provoke: func(*testing.T, *reasonRig) error { return coordinator.PanicForTest() }},

	{reason: pb.ErrorReason_ERROR_REASON_INVALID_ARGUMENT, code: codes.InvalidArgument, keys: []string{"field"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.GetOperation(r.ctx, &pb.GetOperationRequest{})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_INVALID_CONFIG, code: codes.InvalidArgument, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			got, err := r.cl.GetConfig(r.ctx, &pb.GetConfigRequest{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := got.GetConfig()
			cfg.MaxDriftNs = -1
			_, err = r.cl.UpdateConfig(r.ctx, &pb.UpdateConfigRequest{Config: cfg})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_INVALID_PLAN, code: codes.InvalidArgument, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			p := snapPlan("bad", 0)
			p.Groups[0].Hooks[0].Hook = "no-such-hook"
			_, err := r.cl.SetBackupPlan(r.ctx, &pb.SetBackupPlanRequest{Plan: p})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_UNKNOWN_CLUSTER, code: codes.NotFound, keys: []string{"cluster"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.StartPause(r.ctx, &pb.StartPauseRequest{Cluster: "ledgr", HoldMs: 10})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND, code: codes.NotFound, keys: []string{"op_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.GetOperation(r.ctx, &pb.GetOperationRequest{OpId: "op-nope"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PLAN_NOT_FOUND, code: codes.NotFound, keys: []string{"plan"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.GetBackupPlan(r.ctx, &pb.GetBackupPlanRequest{Name: "nope"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_BACKUP_NOT_FOUND, code: codes.NotFound, keys: []string{"backup_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.GetBackup(r.ctx, &pb.GetBackupRequest{BackupId: "op-nope"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_MEMBER_NOT_FOUND, code: codes.NotFound, keys: []string{"node"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.RemoveRosterMember(r.ctx, &pb.RemoveRosterMemberRequest{Name: "nobody"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PEER_NOT_FOUND, code: codes.NotFound, keys: []string{"node"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.RemoveRaftPeer(r.ctx, &pb.RemoveRaftPeerRequest{Id: "server-9"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN, code: codes.Unauthenticated, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.untokened(t).ListMembers(r.ctx, &pb.ListMembersRequest{})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_ROLE, code: codes.PermissionDenied, keys: []string{"role", "needed_role"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			tok, err := r.cl.CreateACLToken(r.ctx, &pb.CreateACLTokenRequest{Name: "reader", Role: pb.ACLRole_ACL_ROLE_READ})
			if err != nil {
				t.Fatal(err)
			}
			ctx := metadata.AppendToOutgoingContext(r.ctx, "authorization", "Bearer "+tok.GetSecret())
			_, err = r.untokened(t).StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 10})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_SERVER_ONLY, code: codes.PermissionDenied, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			ctx := metadata.AppendToOutgoingContext(r.ctx, "x-stillpoint-forwarded-by", "server-9")
			_, err := r.cl.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 10})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_ACL_BOOTSTRAP, code: codes.AlreadyExists, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.untokened(t).ACLBootstrap(r.ctx, &pb.ACLBootstrapRequest{})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_TOKEN, code: codes.NotFound, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.cl.RevokeACLToken(r.ctx, &pb.RevokeACLTokenRequest{AccessorId: "0000000000000000"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_KEYRING, code: codes.FailedPrecondition, keys: []string{"nodes"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			_, err := r.cl.Keyring(r.ctx, &pb.KeyringRequest{Op: pb.KeyringOp_KEYRING_OP_USE, Key: base64.StdEncoding.EncodeToString(key)})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_CERTIFICATE, code: codes.Unauthenticated, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			_, err := r.dial(t, grpcx.TLS{CAFile: r.c.ClientTLS().CAFile}).ListMembers(r.ctx, &pb.ListMembersRequest{})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_CERTIFICATE, code: codes.PermissionDenied, keys: []string{"role", "needed_role"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			dir := filepath.Dir(r.c.ClientTLS().CAFile)
			agentTLS := grpcx.TLS{CAFile: r.c.ClientTLS().CAFile,
				CertFile: filepath.Join(dir, tlsx.RoleAgent+"-ledger-1.pem"), KeyFile: filepath.Join(dir, tlsx.RoleAgent+"-ledger-1-key.pem")}
			_, err := r.dial(t, agentTLS).ListMembers(r.ctx, &pb.ListMembersRequest{})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT, code: codes.FailedPrecondition, keys: []string{"cluster", "nodes", "figure_ns", "bound_ns"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			return r.refusedPause(t, "skewed", pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT)
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK, code: codes.FailedPrecondition, keys: []string{"cluster", "nodes", "figure_ns", "bound_ns"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			var was int64
			if err := r.c.UpdateRuntime(r.ctx, func(rc *pb.RuntimeConfig) { was, rc.MaxErrorBoundNs = rc.GetMaxErrorBoundNs(), 1 }); err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := r.c.UpdateRuntime(r.ctx, func(rc *pb.RuntimeConfig) { rc.MaxErrorBoundNs = was }); err != nil {
					t.Fatal(err)
				}
			}()
			return r.refusedPause(t, "ledger", pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK)
		}},

	{reason: pb.ErrorReason_ERROR_REASON_RESTORE_REFUSED, code: codes.FailedPrecondition, keys: []string{"backup_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			if _, err := r.cl.SetBackupPlan(r.ctx, &pb.SetBackupPlanRequest{Plan: snapPlan("snap", 0)}); err != nil {
				t.Fatal(err)
			}
			a, b := r.backup(t, "snap"), r.backup(t, "snap")
			_, err := r.cl.GetRestorePlan(r.ctx, &pb.GetRestorePlanRequest{BackupIds: []string{a.GetOpId(), b.GetOpId()}})
			return err
		}},

	{reason: pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED, code: codes.FailedPrecondition, keys: []string{"cluster", "op_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			r.hold(t)
			_, err := r.cl.StartPause(r.ctx, &pb.StartPauseRequest{Cluster: "ledger", HoldMs: 10})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_REQUEST_ID_CONFLICT, code: codes.InvalidArgument, keys: []string{"op_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			r.hold(t)
			_, err := r.cl.StartPause(r.ctx, &pb.StartPauseRequest{Cluster: "skewed", HoldMs: 10, RequestId: "reasons-hold"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PLAN_IN_USE, code: codes.FailedPrecondition, keys: []string{"plan", "op_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			r.hold(t)
			_, err := r.cl.DeleteBackupPlan(r.ctx, &pb.DeleteBackupPlanRequest{Name: "hold"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_MEMBER_BUSY, code: codes.FailedPrecondition, keys: []string{"node"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			r.hold(t)
			_, err := r.cl.RemoveRosterMember(r.ctx, &pb.RemoveRosterMemberRequest{Name: "ledger-1"})
			return err
		}},
	{reason: pb.ErrorReason_ERROR_REASON_NO_RESTORE_POINT, code: codes.NotFound, keys: []string{"op_id"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			op := r.hold(t)
			_, err := r.cl.GetRestorePoint(r.ctx, &pb.GetRestorePointRequest{OpId: op.GetOpId()})
			if _, uerr := r.cl.ForceUnpause(r.ctx, &pb.ForceUnpauseRequest{OpId: op.GetOpId(), Abort: true}); uerr != nil {
				t.Fatal(uerr)
			}
			return err
		}},

	{reason: pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT, code: codes.FailedPrecondition, keys: []string{"cluster", "nodes"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			if err := r.c.StopAgent(r.ctx, "gone-1"); err != nil {
				t.Fatal(err)
			}
			return r.refusedPause(t, "gone", pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT)
		}},
	{reason: pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT, code: codes.FailedPrecondition, keys: []string{"cluster", "nodes"}, api: true,
		provoke: func(t *testing.T, r *reasonRig) error {
			r.c.Node("down-1").Sim.Stop()
			return r.refusedPause(t, "down", pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_AGENT)
		}},
}

// TestEveryErrorReason walks the ErrorReason catalog: every value has a
// scenario here (a reason added without one fails), and each scenario's
// error carries the reason, its documented code and metadata keys.
func TestEveryErrorReason(t *testing.T) {
	have := map[pb.ErrorReason]bool{}
	for _, sc := range reasonScenarios {
		if have[sc.reason] {
			t.Errorf("%s has two scenarios", sc.reason)
		}
		have[sc.reason] = true
	}
	var missing []string
	for n, name := range pb.ErrorReason_name {
		if r := pb.ErrorReason(n); r != pb.ErrorReason_ERROR_REASON_UNSPECIFIED && !have[r] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("reasons without a scenario: %v", missing)
	}
	r := startReasonRig(t)
	var got []string
	for _, sc := range reasonScenarios {
		t.Run(sc.reason.Reason(), func(t *testing.T) {
			err := sc.provoke(t, r)
			info := coordinator.ErrorInfoOf(err)
			if status.Code(err) != sc.code || info.GetReason() != sc.reason.Reason() {
				t.Fatalf("got %v %q (%v), want %v %s", status.Code(err), info.GetReason(), err, sc.code, sc.reason.Reason())
			}
			keys := sc.keys
			if sc.api {
				keys = append(slices.Clone(keys), "server")
			}
			for _, k := range keys {
				if info.GetMetadata()[k] == "" {
					t.Errorf("metadata %v lacks %q (%v)", info.GetMetadata(), k, err)
				}
			}
			got = append(got, sc.reason.Reason())
		})
	}
	if t.Failed() {
		t.Logf("reasons produced as documented: %v", got)
	}
}
