package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// replayWatch answers the n-th WatchOperation with streams[n]: the records
// in order, then the stream's end (nil: the op ended; else the error).
type replayWatch struct {
	pb.UnimplementedCoordinatorServiceServer
	mu      sync.Mutex
	streams []watchScript
	opened  int
}

type watchScript struct {
	states []pb.OperationState
	end    error
}

func (r *replayWatch) WatchOperation(req *pb.WatchOperationRequest, s grpc.ServerStreamingServer[pb.WatchOperationResponse]) error {
	r.mu.Lock()
	sc := r.streams[min(r.opened, len(r.streams)-1)]
	r.opened++
	r.mu.Unlock()
	for _, st := range sc.states {
		if err := s.Send(&pb.WatchOperationResponse{Operation: &pb.Operation{OpId: req.GetOpId(), State: st}}); err != nil {
			return err
		}
	}
	return sc.end
}

// WatchAlarms sends one (empty) alarm set, then holds the stream open until
// the client ends it.
func (r *replayWatch) WatchAlarms(_ *pb.WatchAlarmsRequest, s grpc.ServerStreamingServer[pb.WatchAlarmsResponse]) error {
	r.mu.Lock()
	r.opened++
	r.mu.Unlock()
	if err := s.Send(&pb.WatchAlarmsResponse{}); err != nil {
		return err
	}
	<-s.Context().Done()
	return s.Context().Err()
}

func (r *replayWatch) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.opened
}

func serveWatch(t *testing.T, r *replayWatch) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pb.RegisterCoordinatorServiceServer(srv, r)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// A watch whose stream breaks is reopened; a lagging replica's older
// record and repeated records are not shown: the callback sees each state
// once, in order, and the watch ends with the final record.
func TestWatchOperationResumesAndNeverGoesBackwards(t *testing.T) {
	const (
		pending  = pb.OperationState_OPERATION_STATE_PENDING
		pausing  = pb.OperationState_OPERATION_STATE_PAUSING
		holding  = pb.OperationState_OPERATION_STATE_HOLDING
		complete = pb.OperationState_OPERATION_STATE_COMPLETED
	)
	r := &replayWatch{streams: []watchScript{
		{states: []pb.OperationState{pending, pausing, holding}, end: status.Error(codes.Unavailable, "server shutting down")},
		{states: []pb.OperationState{pausing, holding, holding, complete}}, // a lagging replica, then the end
	}}
	c := dial(t, serveWatch(t, r))
	var seen []pb.OperationState
	final, err := c.WatchOperation(testCtx(t), "op-1", func(op *pb.Operation) error {
		seen = append(seen, op.GetState())
		return nil
	})
	if err != nil || final.GetState() != complete {
		t.Fatalf("watch: %v, final %v", err, final.GetState())
	}
	want := []pb.OperationState{pending, pausing, holding, complete}
	if len(seen) != len(want) {
		t.Fatalf("callback saw %v, want %v", seen, want)
	}
	for i := range want {
		if seen[i] != want[i] {
			t.Fatalf("callback saw %v, want %v", seen, want)
		}
	}
	if n := r.count(); n != 2 {
		t.Errorf("%d streams opened, want 2 (one reopened after the break)", n)
	}

	// A refusal ends the watch at once.
	r = &replayWatch{streams: []watchScript{{end: status.Error(codes.NotFound, "operation op-2 not found")}}}
	c = dial(t, serveWatch(t, r))
	if _, err := c.WatchOperation(testCtx(t), "op-2", nil); status.Code(err) != codes.NotFound || r.count() != 1 {
		t.Errorf("watch of an unknown op: %v after %d streams, want NOT_FOUND after 1", err, r.count())
	}
}

// A watch that returns (the op ended, the callback failed) ends the stream
// it had open: many watches under one long-lived ctx leave no goroutine
// behind (grpc-go keeps one per open stream until its ctx ends).
func TestWatchesEndTheirStreams(t *testing.T) {
	const (
		holding  = pb.OperationState_OPERATION_STATE_HOLDING
		complete = pb.OperationState_OPERATION_STATE_COMPLETED
		n        = 40
	)
	r := &replayWatch{streams: []watchScript{{states: []pb.OperationState{holding, complete}}}}
	c := dial(t, serveWatch(t, r))
	ctx := testCtx(t) // outlives every watch, like context.Background() in a daemon
	if _, err := c.WatchOperation(ctx, "op-warm", nil); err != nil {
		t.Fatalf("warm-up watch: %v", err)
	}
	base := settledGoroutines(t)
	stop := errors.New("caller stops")
	for i := range n {
		if _, err := c.WatchOperation(ctx, "op-1", nil); err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		if _, err := c.WatchOperation(ctx, "op-2", func(*pb.Operation) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("watch %d with a failing callback: %v, want the callback's error", i, err)
		}
		if err := c.WatchAlarms(ctx, &pb.WatchAlarmsRequest{}, func(*pb.WatchAlarmsResponse) error { return stop }); !errors.Is(err, stop) {
			t.Fatalf("alarm watch %d: %v, want the callback's error", i, err)
		}
	}
	waitfor.Fatal(ctx, t, 10*time.Second, "goroutines back to the baseline", func() (bool, string) {
		runtime.GC()
		now := runtime.NumGoroutine()
		return now <= base+n/4, fmt.Sprintf("%d goroutines after %d watches, %d before", now, 3*n, base)
	})
}

// settledGoroutines is the goroutine count once it stops falling.
func settledGoroutines(t *testing.T) int {
	t.Helper()
	prev := runtime.NumGoroutine()
	stable := 0
	waitfor.Fatal(context.Background(), t, 10*time.Second, "goroutine count settles", func() (bool, string) {
		now := runtime.NumGoroutine()
		if now >= prev {
			stable++
		} else {
			stable = 0
		}
		prev = now
		return stable >= 5, fmt.Sprintf("%d goroutines", now)
	})
	return prev
}

// A stream error that is the server's answer, not a broken link (INTERNAL,
// RESOURCE_EXHAUSTED, FAILED_PRECONDITION, UNKNOWN), ends the watch at once
// with that error; UNAVAILABLE reopens.
func TestWatchOperationEndsOnAnAnswer(t *testing.T) {
	complete := pb.OperationState_OPERATION_STATE_COMPLETED
	for _, code := range []codes.Code{codes.Internal, codes.ResourceExhausted, codes.FailedPrecondition, codes.Unknown} {
		r := &replayWatch{streams: []watchScript{
			{end: status.Error(code, "the server's answer")},
			{states: []pb.OperationState{complete}},
		}}
		c := dial(t, serveWatch(t, r))
		if _, err := c.WatchOperation(testCtx(t), "op-1", nil); status.Code(err) != code || r.count() != 1 {
			t.Errorf("watch ending %v: %v after %d streams, want %v after 1", code, err, r.count(), code)
		}
	}
	r := &replayWatch{streams: []watchScript{
		{end: status.Error(codes.Unavailable, "server shutting down")},
		{end: withReason(codes.Unavailable, "no leader", pb.ErrorReason_ERROR_REASON_NOT_APPLIED)},
		{states: []pb.OperationState{complete}},
	}}
	c := dial(t, serveWatch(t, r))
	if op, err := c.WatchOperation(testCtx(t), "op-1", nil); err != nil || op.GetState() != complete || r.count() != 3 {
		t.Errorf("watch after two breaks: %v, %v after %d streams, want COMPLETED after 3", op.GetState(), err, r.count())
	}
}
