package main

import (
	"context"
	"net"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// refusingCoordinator answers ListMembers with err.
type refusingCoordinator struct {
	pb.UnimplementedCoordinatorServiceServer
	err error
}

func (r *refusingCoordinator) ListMembers(context.Context, *pb.ListMembersRequest) (*pb.ListMembersResponse, error) {
	return nil, r.err
}

// serveRefusing starts a gRPC server on loopback answering with err.
func serveRefusing(t *testing.T, err error) string {
	t.Helper()
	lis, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, &refusingCoordinator{err: err})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func withInfo(st *status.Status, reason string) error {
	d, err := st.WithDetails(&errdetails.ErrorInfo{Domain: coordinator.ErrorDomain, Reason: reason})
	if err != nil {
		panic(err)
	}
	return d.Err()
}

// The CLI tells "cannot reach the server you named" from errors the server
// sent, by the connection's state and the error's code and ErrorInfo, never
// by the message text: a server that could not reach its leader says
// "dialing" too.
func TestRPCErrorsByCodeAndReason(t *testing.T) {
	leaderDown := "forwarded by server-2 to leader server-1 (10.0.0.1:7400): connection error: desc = \"transport: Error while dialing: dial tcp 10.0.0.1:7400: connect: connection refused\""
	tests := []struct {
		name   string
		err    error
		want   []string
		reject []string
	}{
		{"not applied", withInfo(status.New(codes.Unavailable, leaderDown), coordinator.ReasonNotApplied),
			[]string{"list members", "nothing changed", "retry", "10.0.0.1:7400"}, []string{"cannot reach a coordinator server"}},
		{"unavailable from the server", status.Error(codes.Unavailable, "server server-2 is shutting down (raft is already shutdown); error while dialing: retry on another server"),
			[]string{"list members", "shutting down"}, []string{"cannot reach a coordinator server"}},
		{"not found", status.Error(codes.NotFound, "no such thing"), []string{"NotFound", "no such thing"}, []string{"cannot reach"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveRefusing(t, tc.err)
			_, err := runCoordCLI(t, "members", "--addr", addr)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			for _, r := range tc.reject {
				if strings.Contains(err.Error(), r) {
					t.Errorf("error says %q: %v", r, err)
				}
			}
			if code := exitCode(err); code != exitFailed {
				t.Errorf("exit %d, want %d", code, exitFailed)
			}
		})
	}
	// A server that is not there is "cannot reach", whatever grpc's text.
	_, err := runCoordCLI(t, "members", "--addr", "127.0.0.1:1", "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach a coordinator server at 127.0.0.1:1") {
		t.Fatalf("unreachable: %v", err)
	}
}

// A watch whose server is not there fails at once, instead of retrying
// silently until --wait runs out (ops watch: exit 130) or forever (alarms
// watch: exit 0 when interrupted).
func TestWatchOfUnreachableServerFails(t *testing.T) {
	for _, args := range [][]string{
		{"ops", "watch", "op-1", "--wait", "20s"},
		{"alarms", "watch"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, _, errOut := runMain(t, append(args, "--addr", "127.0.0.1:1")...)
			if code != exitFailed || !strings.Contains(errOut, "cannot reach a coordinator server at 127.0.0.1:1") {
				t.Fatalf("exit %d, stderr %q; want %d and 'cannot reach'", code, errOut, exitFailed)
			}
		})
	}
}
