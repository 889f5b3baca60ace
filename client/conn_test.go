package client

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// scripted is a gRPC coordinator that answers ListMembers and StartPause
// with errs in turn, then serves them (StartPause: the op of the first
// request id it saw), recording every request.
type scripted struct {
	pb.UnimplementedCoordinatorServiceServer
	mu   sync.Mutex
	errs []error
	ids  []string // request ids of the StartPause calls
	list int      // ListMembers calls
}

func (s *scripted) next() error {
	if len(s.errs) == 0 {
		return nil
	}
	err := s.errs[0]
	s.errs = s.errs[1:]
	return err
}

func (s *scripted) ListMembers(context.Context, *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.list++
	if err := s.next(); err != nil {
		return nil, err
	}
	return &pb.ListMembersResponse{}, nil
}

func (s *scripted) StartPause(_ context.Context, req *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, req.GetRequestId())
	if err := s.next(); err != nil {
		return nil, err
	}
	return &pb.StartPauseResponse{Operation: &pb.Operation{OpId: "op-of-" + s.ids[0], RequestId: s.ids[0]}}, nil
}

func (s *scripted) calls() (list int, ids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.list, append([]string(nil), s.ids...)
}

// serve starts s on loopback and returns its address.
func serve(t *testing.T, s *scripted) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, s)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// deadAddr is a loopback address nothing listens on.
func deadAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

func withReason(code codes.Code, msg string, r pb.ErrorReason, kv ...string) error {
	info := &errdetails.ErrorInfo{Domain: pb.ErrorDomain, Reason: r.Reason()}
	for i := 0; i+1 < len(kv); i += 2 {
		if info.Metadata == nil {
			info.Metadata = map[string]string{}
		}
		info.Metadata[kv[i]] = kv[i+1]
	}
	st, err := status.New(code, msg).WithDetails(info)
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func dial(t *testing.T, addrs ...string) *Client {
	t.Helper()
	c, err := Dial(Options{Addrs: addrs, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// A call moves past a server that is down and one that answers NOT_APPLIED
// to the one that serves it, and the next call starts there (the leader
// follower).
func TestCallMovesOnWhenCertainlyNotApplied(t *testing.T) {
	notApplied := &scripted{errs: []error{withReason(codes.Unavailable, "no leader", pb.ErrorReason_ERROR_REASON_NOT_APPLIED)}}
	serving := &scripted{}
	c := dial(t, deadAddr(t), serve(t, notApplied), serve(t, serving))
	ctx := testCtx(t)
	if _, err := c.ListMembers(ctx, &pb.ListMembersRequest{}); err != nil {
		t.Fatalf("ListMembers: %v", err)
	}
	if _, err := c.ListMembers(ctx, &pb.ListMembersRequest{}); err != nil {
		t.Fatalf("second ListMembers: %v", err)
	}
	if n, _ := notApplied.calls(); n != 1 {
		t.Errorf("the not-applied server got %d calls, want 1 (the second call starts at the server that served)", n)
	}
	if n, _ := serving.calls(); n != 2 {
		t.Errorf("the serving server got %d calls, want 2", n)
	}
}

// A call that reached a server whose outcome is unknown (UNAVAILABLE
// without a reason) is not sent again, unless it carries a request id.
func TestCallWithUnknownOutcomeIsItsAnswer(t *testing.T) {
	first := &scripted{errs: []error{status.Error(codes.Unavailable, "transport is closing")}}
	second := &scripted{}
	c := dial(t, serve(t, first), serve(t, second))
	_, err := c.ListMembers(testCtx(t), &pb.ListMembersRequest{})
	if status.Code(err) != codes.Unavailable || Unreached(err) {
		t.Fatalf("ListMembers: %v (unreached %v), want the first server's UNAVAILABLE", err, Unreached(err))
	}
	if n, _ := second.calls(); n != 0 {
		t.Errorf("the second server got %d calls; a request that may have been applied went to it", n)
	}
	var ce *CallError
	if !asCallError(err, &ce) || len(ce.Attempts) != 1 || !ce.Attempts[0].Sent {
		t.Errorf("CallError %+v: want one sent attempt", ce)
	}
}

// StartPause is retried on an unknown outcome with the request id the
// client generated, and returns the op of the first attempt; a refusal is
// final; the attempts are bounded.
func TestStartPauseRetriesWithTheSameRequestID(t *testing.T) {
	s := &scripted{errs: []error{
		status.Error(codes.Unavailable, "forwarded by server-2 to leader server-1: transport is closing"),
		withReason(codes.Unknown, "server server-1 lost leadership while committing", pb.ErrorReason_ERROR_REASON_OUTCOME_UNKNOWN),
		status.Error(codes.DeadlineExceeded, "not committed within the apply timeout"),
	}}
	c := dial(t, serve(t, s))
	ctx := testCtx(t)
	req := &pb.StartPauseRequest{Cluster: "ledger"}
	resp, err := c.StartPause(ctx, req)
	if err != nil {
		t.Fatalf("StartPause: %v", err)
	}
	_, ids := s.calls()
	if len(ids) != 4 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] || ids[3] != ids[0] {
		t.Fatalf("attempts carried request ids %q, want one generated id four times", ids)
	}
	if resp.GetOperation().GetOpId() != "op-of-"+ids[0] || req.GetRequestId() != "" {
		t.Errorf("op %s for id %s; the caller's request got id %q (want it untouched)", resp.GetOperation().GetOpId(), ids[0], req.GetRequestId())
	}

	s = &scripted{errs: []error{withReason(codes.FailedPrecondition, "cluster ledger is held by op-9", pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED, "op_id", "op-9")}}
	c = dial(t, serve(t, s))
	_, err = c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: "mine"})
	if _, ids := s.calls(); status.Code(err) != codes.FailedPrecondition || ReasonOf(err) != pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED || len(ids) != 1 || ids[0] != "mine" {
		t.Errorf("refusal: %v (reason %v) after attempts %q, want FAILED_PRECONDITION CLUSTER_LOCKED after one attempt with id mine", err, ReasonOf(err), ids)
	}
	if md := MetadataOf(err); md["op_id"] != "op-9" {
		t.Errorf("refusal metadata %v, want op_id op-9", md)
	}

	var errs []error
	for range 10 {
		errs = append(errs, status.Error(codes.Unavailable, "connection reset"))
	}
	s = &scripted{errs: errs}
	c = dial(t, serve(t, s))
	_, err = c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger"})
	if _, ids := s.calls(); status.Code(err) != codes.Unavailable || len(ids) != DefaultRounds {
		t.Errorf("%v after %d attempts, want UNAVAILABLE after %d", err, len(ids), DefaultRounds)
	}
	if a, b := NewRequestID(), NewRequestID(); a == b || len(a) > 128 {
		t.Errorf("request ids %q, %q: want unique, at most 128 bytes", a, b)
	}
}

// No server reachable: the error says so (Unreached) and names each.
func TestUnreachedNamesEveryServer(t *testing.T) {
	a, b := deadAddr(t), deadAddr(t)
	c := dial(t, a, b)
	_, err := c.ListMembers(testCtx(t), &pb.ListMembersRequest{})
	if !Unreached(err) || status.Code(err) != codes.Unavailable {
		t.Fatalf("%v: want unreached UNAVAILABLE", err)
	}
	if !strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), b) {
		t.Errorf("%v: want both %s and %s named", err, a, b)
	}
	// A server's own answer is never "unreached".
	s := serve(t, &scripted{errs: []error{status.Error(codes.NotFound, "no such thing")}})
	if _, err := dial(t, s).ListMembers(testCtx(t), &pb.ListMembersRequest{}); Unreached(err) || status.Code(err) != codes.NotFound {
		t.Errorf("%v: want NOT_FOUND, reached", err)
	}
}

func TestOptionsNameTheBadField(t *testing.T) {
	tests := []struct {
		o    Options
		want string
	}{
		{Options{}, "Options.Addrs is empty"},
		{Options{Addrs: []string{"a:1", ""}}, "Options.Addrs[1] is empty"},
		{Options{Addrs: []string{"a:1"}, CertFile: "c.pem"}, "Options.CertFile"},
		{Options{Addrs: []string{"a:1"}, Timeout: -time.Second}, "Options.Timeout"},
		{Options{Addrs: []string{"a:1"}, CAFile: "/nonexistent/ca.pem"}, "/nonexistent/ca.pem"},
	}
	for _, tc := range tests {
		if _, err := Dial(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Dial(%+v): %v, want an error naming %q", tc.o, err, tc.want)
		}
	}
}

// A StartPause the client gave up on names the request id its attempts
// carried, so the caller can retry with it (and get the op the first
// attempts may have started); a caller's own id and the prefix option are
// kept.
func TestCallErrorCarriesTheRequestID(t *testing.T) {
	var errs []error
	for range DefaultRounds {
		errs = append(errs, status.Error(codes.Unavailable, "connection reset"))
	}
	s := &scripted{errs: errs}
	c, err := Dial(Options{Addrs: []string{serve(t, s)}, Backoff: time.Millisecond, RequestIDPrefix: "cli-"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	ctx := testCtx(t)
	_, err = c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger"})
	var ce *CallError
	if !asCallError(err, &ce) {
		t.Fatalf("StartPause: %v, want a *CallError", err)
	}
	_, ids := s.calls()
	if ce.RequestID == "" || !strings.HasPrefix(ce.RequestID, "cli-") || ids[0] != ce.RequestID {
		t.Fatalf("CallError.RequestID %q, attempts carried %q: want the generated cli- id", ce.RequestID, ids)
	}
	// The retry with that id is served, and is the same request.
	resp, err := c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: ce.RequestID})
	if err != nil || resp.GetOperation().GetRequestId() != ce.RequestID {
		t.Fatalf("retry: %v, op request id %q, want %q", err, resp.GetOperation().GetRequestId(), ce.RequestID)
	}

	s = &scripted{errs: []error{status.Error(codes.PermissionDenied, "no")}}
	c = dial(t, serve(t, s))
	_, err = c.StartPause(ctx, &pb.StartPauseRequest{Cluster: "ledger", RequestId: "mine"})
	if !asCallError(err, &ce) || ce.RequestID != "mine" {
		t.Errorf("refusal: %v, CallError %+v: want RequestID mine", err, ce)
	}
	_, err = c.ListMembers(ctx, &pb.ListMembersRequest{})
	if err != nil {
		t.Fatal(err)
	}
	s = &scripted{errs: []error{status.Error(codes.NotFound, "no")}}
	c = dial(t, serve(t, s))
	if _, err := c.ListMembers(ctx, &pb.ListMembersRequest{}); !asCallError(err, &ce) || ce.RequestID != "" {
		t.Errorf("ListMembers: %v, CallError %+v: want no request id", err, ce)
	}
	if _, err := Dial(Options{Addrs: []string{"a:1"}, RequestIDPrefix: strings.Repeat("x", 100)}); err == nil || !strings.Contains(err.Error(), "Options.RequestIDPrefix") {
		t.Errorf("a 100-byte prefix: %v, want an error naming Options.RequestIDPrefix", err)
	}
}
