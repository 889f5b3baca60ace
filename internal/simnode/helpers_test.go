package simnode

import (
	"context"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// startNode starts a node on 127.0.0.1:0 with the workload off; mut edits
// the config first. The node stops at test cleanup.
func startNode(t testing.TB, mut func(*Config)) *Node {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID = "sim-test"
	cfg.Listen = "127.0.0.1:0"
	if mut != nil {
		mut(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(n.Stop)
	return n
}

// dial returns a raw rpc.Admin client for n.
func dial(t testing.TB, n *Node) rpc.AdminClient {
	t.Helper()
	cc, err := grpcx.NewClient(n.Addr(), grpcx.TLS{})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return rpc.NewAdminClient(cc)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, within, what, waitfor.Bool(cond))
}

// ms returns a pointer to v (milliseconds).
func ms(v int64) *int64 { return &v }

// callCtx is a generous per-call deadline for a loaded 2-core box.
func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// codeReason splits a gRPC error into its code and ErrorInfo reason,
// checking the ErrorInfo domain.
func codeReason(t testing.TB, err error) (codes.Code, string) {
	t.Helper()
	st := status.Convert(err)
	reason := ""
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		if info.GetDomain() != ErrorDomain {
			t.Errorf("ErrorInfo domain %q, want %q", info.GetDomain(), ErrorDomain)
		}
		reason = info.GetReason()
	}
	return st.Code(), reason
}

// pauseAsync runs Pause in a goroutine and returns its result channel.
func pauseAsync(ctx context.Context, c rpc.AdminClient, req *rpc.PauseRequest) <-chan error {
	ch := make(chan error, 1)
	go func() {
		_, err := c.Pause(ctx, req)
		ch <- err
	}()
	return ch
}

// recv waits for one result.
func recv(t testing.TB, ch <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not return within 20s", what)
		return nil
	}
}

// afterReconnect retries call while it fails UNAVAILABLE: the first call on
// a connection the server killed (restart) fails before the client notices.
func afterReconnect(t testing.TB, call func() error) error {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := call()
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
}
