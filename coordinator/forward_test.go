package coordinator

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// fakeLeader is a leader's CoordinatorService whose StartPause answers
// its n-th call (from 1) with answer(n): an error, or nil for success.
type fakeLeader struct {
	pb.UnimplementedCoordinatorServiceServer
	answer func(n int) error
	mu     sync.Mutex
	calls  int
}

func (f *fakeLeader) StartPause(context.Context, *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	f.mu.Lock()
	f.calls++
	n := f.calls
	f.mu.Unlock()
	if err := f.answer(n); err != nil {
		return nil, err
	}
	return &pb.StartPauseResponse{Operation: &pb.Operation{OpId: "op-1"}}, nil
}

func (f *fakeLeader) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// startFakeLeader serves f on loopback and returns its address.
func startFakeLeader(t *testing.T, f *fakeLeader) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, f)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// testForwarder forwards from follower "server-2" to whatever leaderAddr
// returns.
func testForwarder(t *testing.T, leaderAddr func() string) forwarder {
	var mu sync.Mutex
	conns := map[string]*grpc.ClientConn{}
	t.Cleanup(func() {
		for _, cc := range conns {
			_ = cc.Close()
		}
	})
	s := &Server{cfg: Config{NodeID: "server-2"}}
	return forwarder{
		self: "server-2", log: zap.NewNop(),
		hold:   func(context.Context) time.Time { return time.Now().Add(5 * time.Second) },
		leader: func(context.Context, time.Time) (string, string, error) { return "server-1", leaderAddr(), nil },
		conn: func(addr string) (*grpc.ClientConn, error) {
			mu.Lock()
			defer mu.Unlock()
			if cc, ok := conns[addr]; ok {
				return cc, nil
			}
			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err == nil {
				conns[addr] = cc
			}
			return cc, err
		},
		applyTimeout: 5 * time.Second,
		toStatus:     s.toStatus,
	}
}

func forwardStartPause(t *testing.T, f forwarder) (*pb.StartPauseResponse, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, done, err := forwardVia(ctx, f, &pb.StartPauseRequest{Cluster: "ledger"}, pb.CoordinatorServiceClient.StartPause)
	if !done {
		t.Fatal("forwarder served the request itself")
	}
	return resp, err
}

// A write whose reply was lost after the leader took it (UNAVAILABLE
// without NOT_APPLIED) may have been applied: it is returned, not retried
// into "held by op-1" where op-1 is the caller's own op.
func TestForwardDoesNotRetryAWriteThatMayHaveApplied(t *testing.T) {
	leader := &fakeLeader{answer: func(n int) error {
		if n == 1 {
			return status.Error(codes.Unavailable, "server server-1 lost leadership after recording op-1; the next leader takes it over")
		}
		return status.Error(codes.FailedPrecondition, "cluster ledger is held by operation op-1; one operation at a time per cluster")
	}}
	addr := startFakeLeader(t, leader)
	_, err := forwardStartPause(t, testForwarder(t, func() string { return addr }))
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want the leader's UNAVAILABLE", err)
	}
	if n := leader.callCount(); n != 1 {
		t.Fatalf("leader got %d StartPause calls, want 1 (a blind retry applies a write twice)", n)
	}
}

// A refusal that says nothing was applied is retried, keeping its reason
// across the forward.
func TestForwardRetriesNotApplied(t *testing.T) {
	leader := &fakeLeader{answer: func(n int) error {
		if n == 1 {
			return notAppliedError(nil, "server server-1 is still taking over as leader; retry")
		}
		return nil
	}}
	addr := startFakeLeader(t, leader)
	resp, err := forwardStartPause(t, testForwarder(t, func() string { return addr }))
	if err != nil || resp.GetOperation().GetOpId() != "op-1" {
		t.Fatalf("resp %v, err %v; want op-1 after one retry", resp, err)
	}
	if n := leader.callCount(); n != 2 {
		t.Fatalf("leader got %d calls, want 2", n)
	}
}

// A request that could not be sent (the leader it knew of is gone) is
// sent to the next leader.
func TestForwardRetriesNotSent(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	leader := &fakeLeader{answer: func(int) error { return nil }}
	addr := startFakeLeader(t, leader)
	var mu sync.Mutex
	lookups := 0
	resp, err := forwardStartPause(t, testForwarder(t, func() string {
		mu.Lock()
		defer mu.Unlock()
		if lookups++; lookups == 1 {
			return deadAddr
		}
		return addr
	}))
	if err != nil || resp.GetOperation().GetOpId() != "op-1" || leader.callCount() != 1 {
		t.Fatalf("resp %v, err %v, %d calls; want op-1 from the live leader", resp, err, leader.callCount())
	}
}

func TestNotAppliedReasonSurvivesToStatus(t *testing.T) {
	s := &Server{cfg: Config{NodeID: "server-1"}}
	for _, err := range []error{raft.ErrNotLeader, ErrNoLeader, raft.ErrEnqueueTimeout} {
		if st := s.toStatus(err); !notApplied(st) || status.Code(st) != codes.Unavailable {
			t.Errorf("toStatus(%v) = %v: want UNAVAILABLE with NOT_APPLIED", err, st)
		}
	}
	for _, err := range []error{raft.ErrLeadershipLost, ErrApplyTimeout, raft.ErrRaftShutdown} {
		if st := s.toStatus(err); notApplied(st) {
			t.Errorf("toStatus(%v) = %v says NOT_APPLIED; the write may have been applied", err, st)
		}
	}
}

// A read may be retried on any UNAVAILABLE: it changes nothing.
func TestForwardRetriesReadsOnUnavailable(t *testing.T) {
	leader := &fakeLeader{answer: func(n int) error {
		if n == 1 {
			return status.Error(codes.Unavailable, "transport is closing")
		}
		return nil
	}}
	addr := startFakeLeader(t, leader)
	f := testForwarder(t, func() string { return addr })
	f.read = true
	resp, err := forwardStartPause(t, f)
	if err != nil || resp.GetOperation().GetOpId() != "op-1" || leader.callCount() != 2 {
		t.Fatalf("resp %v, err %v, %d calls; want a retried read", resp, err, leader.callCount())
	}
}

func TestCommitContextOutlivesTheClient(t *testing.T) {
	client, cancel := context.WithCancel(context.WithValue(context.Background(), ctxKey{}, "v"))
	cancel() // the client went away
	ctx, done := commitContext(client, time.Minute)
	defer done()
	if ctx.Err() != nil {
		t.Fatalf("commit context is done (%v) with the client's cancellation", ctx.Err())
	}
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > time.Minute {
		t.Errorf("commit context deadline %v, %v: want the apply timeout", dl, ok)
	}
	if ctx.Value(ctxKey{}) != "v" {
		t.Error("commit context lost the request's values")
	}
}

type ctxKey struct{}

// A leader's answer without a coordinator reason is tagged by what it
// says: only a broken call (UNAVAILABLE, UNKNOWN without any ErrorInfo)
// is OUTCOME_UNKNOWN for a write, a context's end is CANCELED, and a
// definitive refusal (a mixed-version leader's UNIMPLEMENTED or
// INVALID_ARGUMENT) keeps its code with the reason of its code.
func TestForwardTagsReasonlessLeaderErrors(t *testing.T) {
	foreign, err := status.New(codes.Unavailable, "proxy says no").WithDetails(&errdetails.ErrorInfo{Domain: "proxy.example", Reason: "UPSTREAM"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		answer error
		read   bool
		code   codes.Code
		reason string
	}{
		{"write unavailable", status.Error(codes.Unavailable, "transport is closing"), false, codes.Unavailable, "OUTCOME_UNKNOWN"},
		{"write unknown", status.Error(codes.Unknown, "stream reset"), false, codes.Unknown, "OUTCOME_UNKNOWN"},
		{"write deadline", status.Error(codes.DeadlineExceeded, "deadline"), false, codes.DeadlineExceeded, "CANCELED"},
		{"write unimplemented", status.Error(codes.Unimplemented, "unknown method StartPause"), false, codes.Unimplemented, "INTERNAL"},
		{"write invalid", status.Error(codes.InvalidArgument, "cluster: bad"), false, codes.InvalidArgument, "INVALID_ARGUMENT"},
		{"write foreign info", foreign.Err(), false, codes.Unavailable, "INTERNAL"},
		{"read unimplemented", status.Error(codes.Unimplemented, "unknown method"), true, codes.Unimplemented, "INTERNAL"},
		{"read not found", status.Error(codes.NotFound, "old leader"), true, codes.NotFound, "INTERNAL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			leader := &fakeLeader{answer: func(int) error { return tc.answer }}
			addr := startFakeLeader(t, leader)
			f := testForwarder(t, func() string { return addr })
			f.read = tc.read
			_, err := forwardStartPause(t, f)
			if status.Code(err) != tc.code || ReasonOf(err) != tc.reason {
				t.Errorf("err = %v reason %q; want %v %s", err, ReasonOf(err), tc.code, tc.reason)
			}
			if leader.callCount() != 1 {
				t.Errorf("leader got %d calls, want 1", leader.callCount())
			}
		})
	}
}

// A write that never left this server (no connection to the leader before
// the hold ran out) is NOT_APPLIED: it certainly changed nothing.
func TestForwardNotSentIsNotApplied(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	f := testForwarder(t, func() string { return deadAddr })
	f.hold = func(context.Context) time.Time { return time.Now() }
	_, err = forwardStartPause(t, f)
	if status.Code(err) != codes.Unavailable || !notApplied(err) {
		t.Fatalf("err = %v reason %q; want UNAVAILABLE NOT_APPLIED", err, ReasonOf(err))
	}
}
