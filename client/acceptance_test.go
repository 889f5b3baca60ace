package client

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/devcluster"
	"github.com/stillpoint-dev/stillpoint/internal/logging/logtest"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// startDev starts a plaintext dev cluster (3 servers, ledger-1..3,
// auditor-1..2) with limits a loaded box's loopback clocks meet.
func startDev(t *testing.T, tls, acl bool) *devcluster.Cluster {
	t.Helper()
	cfg := devcluster.DefaultConfig()
	cfg.APIAddr = "127.0.0.1:0"
	cfg.NTPPoll = 500 * time.Millisecond
	cfg.DataDir = t.TempDir()
	cfg.TLS, cfg.ACL = tls, acl
	cfg.Logger = logtest.New(t, zap.ErrorLevel)
	cfg.Runtime = func(rc *pb.RuntimeConfig) {
		rc.MaxErrorBoundNs = int64(time.Second)
		rc.MaxDriftNs = int64(300 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := devcluster.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(context.Background()) })
	return c
}

// opsOfRequest lists, straight from a live server (no proxy), the ops
// started by request id id.
func opsOfRequest(ctx context.Context, c *devcluster.Cluster, id string) ([]*pb.Operation, error) {
	direct, err := c.Client(-1)
	if err != nil {
		return nil, err
	}
	resp, err := direct.ListOperations(ctx, &pb.ListOperationsRequest{})
	if err != nil {
		return nil, err
	}
	var out []*pb.Operation
	for _, op := range resp.GetOperations() {
		if op.GetRequestId() == id {
			out = append(out, op)
		}
	}
	return out, nil
}

// Issue 19 acceptance, against a real dev cluster: a StartPause whose
// answer is lost (the connection drops after the server served it) is
// retried with the same request id and returns the same op; another
// request id is refused CLUSTER_LOCKED while that op holds the cluster; a
// watch of the op whose server is killed resumes on another server and
// ends with the final record, never going backwards.
func TestStartPauseRetryAndWatchResumeOnDevCluster(t *testing.T) {
	dev := startDev(t, false, false)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	st := &dropState{method: pb.CoordinatorService_StartPause_FullMethodName}
	var addrs []string
	for _, s := range dev.Servers() {
		addrs = append(addrs, startDropProxy(t, s.GRPCAddr(), st).Addr())
	}
	c, err := Dial(Options{Addrs: addrs, Timeout: 20 * time.Second, Logger: logtest.New(t, zap.InfoLevel)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ListMembers(ctx, &pb.ListMembersRequest{}); err != nil { // connect through proxy 0
		t.Fatalf("list members: %v", err)
	}

	// 1. The answer of the StartPause the server serves is dropped (the
	// op is recorded); the client's retry returns that op.
	id := "acceptance-" + NewRequestID()
	type listed struct {
		ops []*pb.Operation
		err error
	}
	dropped := make(chan listed, 1)
	st.arm(func() {
		ops, err := opsOfRequest(ctx, dev, id)
		dropped <- listed{ops, err}
	})
	resp, err := c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: id, UntilUnpaused: true, RequestedBy: "client acceptance"})
	if err != nil {
		t.Fatalf("StartPause: %v", err)
	}
	op := resp.GetOperation()
	// Two requests: the served one and its retry. A leader change under
	// load can add attempts answered NOT_APPLIED (logged by the client).
	if seen, drops := st.counts(); drops != 1 || seen < 2 {
		t.Fatalf("the servers got %d StartPause requests with %d answers dropped; want 2 and 1", seen, drops)
	} else if seen > 2 {
		t.Logf("%d StartPause requests: the call met a leader change", seen)
	}
	at := <-dropped
	atDrop := at.ops
	if at.err != nil || len(atDrop) != 1 {
		t.Fatalf("when the answer was dropped, %d ops of request %s existed (%v); want 1 (the attempt whose answer was dropped was served)", len(atDrop), id, at.err)
	}
	ops, err := opsOfRequest(ctx, dev, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 1 || op.GetOpId() != atDrop[0].GetOpId() || ops[0].GetOpId() != op.GetOpId() {
		t.Fatalf("the retry returned %s; the dropped attempt started %s; ops of the request now: %d", op.GetOpId(), atDrop[0].GetOpId(), len(ops))
	}

	// 2. Another request id while the op holds the cluster: refused.
	_, err = c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: "acceptance-other-" + NewRequestID()})
	if status.Code(err) != codes.FailedPrecondition || ReasonOf(err) != pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED {
		t.Fatalf("a second pause of ledger: %v (reason %v); want FAILED_PRECONDITION CLUSTER_LOCKED", err, ReasonOf(err))
	}
	if holder := MetadataOf(err)["op_id"]; holder != op.GetOpId() {
		t.Errorf("CLUSTER_LOCKED names holder op_id %q, want %s", holder, op.GetOpId())
	}

	// 3. Watch the op; once it holds, kill the server the stream is on,
	// then end the hold: the watch resumes elsewhere and sees the end.
	holding := make(chan struct{})
	var records []*pb.Operation
	type result struct {
		op  *pb.Operation
		err error
	}
	done := make(chan result, 1)
	go func() {
		final, err := c.WatchOperation(ctx, op.GetOpId(), func(o *pb.Operation) error {
			records = append(records, o)
			if o.GetState() == pb.OperationState_OPERATION_STATE_HOLDING && len(records) > 0 {
				select {
				case <-holding:
				default:
					close(holding)
				}
			}
			return nil
		})
		done <- result{final, err}
	}()
	select {
	case <-holding:
	case r := <-done:
		t.Fatalf("watch ended before the op held: %v, %v", r.op.GetState(), r.err)
	case <-ctx.Done():
		t.Fatal("the op never held")
	}
	c.conn.mu.Lock()
	serving := c.conn.cur // the server the stream was opened on
	c.conn.mu.Unlock()
	t.Logf("killing server %d, which serves the watch", serving+1)
	dev.KillServer(serving)
	for {
		_, err := c.ForceUnpause(ctx, &pb.ForceUnpauseRequest{OpId: op.GetOpId(), Reason: "client acceptance"})
		if err == nil {
			break
		}
		if ctx.Err() != nil || (status.Code(err) != codes.Unavailable && status.Code(err) != codes.Unknown && status.Code(err) != codes.DeadlineExceeded) {
			t.Fatalf("unpause: %v", err)
		}
		t.Logf("unpause not served yet (election?): %v", err)
	}
	var r result
	select {
	case r = <-done:
	case <-ctx.Done():
		t.Fatal("the watch did not end")
	}
	if r.err != nil || !Ended(r.op.GetState()) {
		t.Fatalf("watch: %v, final state %v", r.err, r.op.GetState())
	}
	for i := 1; i < len(records); i++ {
		if compareProgress(records[i], records[i-1]) < 0 {
			t.Errorf("record %d (%v) is behind record %d (%v)", i, records[i].GetState(), i-1, records[i-1].GetState())
		}
	}
	got, err := c.GetOperation(ctx, &pb.GetOperationRequest{OpId: op.GetOpId()})
	if err != nil || got.GetOperation().GetState() != r.op.GetState() {
		t.Fatalf("get operation: %v, state %v; the watch ended %v", err, got.GetOperation().GetState(), r.op.GetState())
	}
	t.Logf("watch: %d records, ended %v on another server", len(records), r.op.GetState())
}
