package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// flakyCoordinator answers StartPause with errs in turn, then with the op
// of the request id it first saw.
type flakyCoordinator struct {
	pb.CoordinatorServiceClient
	errs []error
	ids  []string
}

func (f *flakyCoordinator) StartPause(_ context.Context, req *pb.StartPauseRequest, _ ...grpc.CallOption) (*pb.StartPauseResponse, error) {
	f.ids = append(f.ids, req.GetRequestId())
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &pb.StartPauseResponse{Operation: &pb.Operation{OpId: "op-of-" + f.ids[0]}}, nil
}

func TestStartPauseRetriesWithTheSameRequestID(t *testing.T) {
	f := &flakyCoordinator{errs: []error{
		status.Error(codes.Unavailable, "forwarded by server-2 to leader server-1: transport is closing"),
		status.Error(codes.Unknown, "server server-1 lost leadership while committing"),
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := newRequestID()
	resp, err := startPause(ctx, f, &pb.StartPauseRequest{Cluster: "ledger", RequestId: id})
	if err != nil || resp.GetOperation().GetOpId() != "op-of-"+id {
		t.Fatalf("resp %v, err %v", resp, err)
	}
	if len(f.ids) != 3 || f.ids[1] != id || f.ids[2] != id {
		t.Errorf("attempts carried request ids %v, want %s three times", f.ids, id)
	}
	// A refusal is final.
	f = &flakyCoordinator{errs: []error{status.Error(codes.FailedPrecondition, "cluster ledger is held by operation op-9")}}
	if _, err := startPause(ctx, f, &pb.StartPauseRequest{Cluster: "ledger", RequestId: newRequestID()}); status.Code(err) != codes.FailedPrecondition || len(f.ids) != 1 {
		t.Errorf("refusal: err %v after %d attempts, want FailedPrecondition after 1", err, len(f.ids))
	}
	if a, b := newRequestID(), newRequestID(); a == b || len(a) > 128 {
		t.Errorf("request ids %q, %q: want unique, at most 128 bytes", a, b)
	}
}

func TestStartPauseGivesUpAfterAFewAttempts(t *testing.T) {
	var errs []error
	for range 10 {
		errs = append(errs, status.Error(codes.Unavailable, "connection refused"))
	}
	f := &flakyCoordinator{errs: errs}
	_, err := startPause(context.Background(), f, &pb.StartPauseRequest{Cluster: "ledger", RequestId: newRequestID()})
	if status.Code(err) != codes.Unavailable || len(f.ids) != startPauseAttempts {
		t.Errorf("err %v after %d attempts, want UNAVAILABLE after %d", err, len(f.ids), startPauseAttempts)
	}
}
