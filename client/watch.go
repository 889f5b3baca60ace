package client

import (
	"context"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// resumeWait is the pause before a broken stream is reopened.
const resumeWait = 200 * time.Millisecond

// Ended reports whether an operation in state s has ended (completed,
// aborted or invalid).
func Ended(s pb.OperationState) bool {
	switch s {
	case pb.OperationState_OPERATION_STATE_COMPLETED, pb.OperationState_OPERATION_STATE_ABORTED, pb.OperationState_OPERATION_STATE_INVALID:
		return true
	}
	return false
}

// WatchOperation follows operation opID until it ends and returns its final
// record. fn (which may be nil) is called with every new record, in order;
// an error from fn ends the watch with that error.
//
// A stream that breaks (a disconnect, the server going away) is reopened,
// on the next server when the one in use is down, until ctx ends. Records
// the callback has seen are not repeated, and a record older than the last
// one (a lagging replica's) is skipped, so fn never sees the op go
// backwards. The watch ends with an error when the first stream reaches no
// server (Unreached), or a server answers NOT_FOUND, INVALID_ARGUMENT,
// UNAUTHENTICATED or PERMISSION_DENIED; with ctx's error when ctx ends.
// The last record seen is returned with any error.
func (c *Client) WatchOperation(ctx context.Context, opID string, fn func(*pb.Operation) error) (*pb.Operation, error) {
	var last *pb.Operation
	heard := false
	for {
		stream, err := c.CoordinatorServiceClient.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
		if err == nil {
			for {
				resp, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				heard = true
				op := resp.GetOperation()
				if last != nil && (proto.Equal(op, last) || compareProgress(op, last) < 0) {
					continue
				}
				last = op
				if fn != nil {
					if ferr := fn(op); ferr != nil {
						return last, ferr
					}
				}
				if Ended(op.GetState()) {
					return last, nil
				}
			}
		}
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		if (!heard && Unreached(err)) || watchRefused(err) {
			return last, err
		}
		c.log.Info("operation watch broke; reopening", zap.String("op_id", opID), zap.Stringer("code", status.Code(err)), zap.Error(err))
		if !sleep(ctx, resumeWait) {
			return last, ctx.Err()
		}
	}
}

// watchRefused reports whether a watch's error is the server's answer
// rather than a broken stream.
func watchRefused(err error) bool {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented:
		return true
	}
	return false
}

// compareProgress orders two records of one operation by how far on they
// are: its state, then its epoch and leaders (takeovers), then the targets'
// and hooks' recorded steps. -1 when a is behind b.
func compareProgress(a, b *pb.Operation) int {
	ka, kb := progressKey(a), progressKey(b)
	for i := range ka {
		switch {
		case ka[i] < kb[i]:
			return -1
		case ka[i] > kb[i]:
			return 1
		}
	}
	return 0
}

func progressKey(op *pb.Operation) [4]int64 {
	rank := int64(op.GetState())
	if Ended(op.GetState()) {
		rank = 100 // an end follows every running state
	}
	var steps int64
	for _, t := range op.GetTargets() {
		for _, done := range []bool{t.GetPauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED, t.GetAckedAt() != nil,
			t.GetUnpauseSentAt() != nil, t.GetUnpauseOutcome() != pb.NodeOutcome_NODE_OUTCOME_UNSPECIFIED} {
			if done {
				steps++
			}
		}
	}
	for _, h := range op.GetBackup().GetHooks() {
		steps += int64(h.GetState())
	}
	return [4]int64{rank, int64(op.GetEpoch()), int64(len(op.GetLeaders())), steps}
}

// Pause starts a pause (StartPause, safe to retry: see the package
// documentation) and follows it to its end (WatchOperation, with progress
// as fn). It returns the final record: op.GetState() says whether it
// completed, op.GetWindow().GetRestorePoint() is the restore point.
func (c *Client) Pause(ctx context.Context, req *pb.StartPauseRequest, progress func(*pb.Operation) error) (*pb.Operation, error) {
	resp, err := c.StartPause(ctx, req)
	if err != nil {
		return nil, err
	}
	op := resp.GetOperation()
	if Ended(op.GetState()) {
		return op, nil
	}
	return c.WatchOperation(ctx, op.GetOpId(), progress)
}

// WatchAlarms streams the alarms (WatchAlarmsResponse: the initial set,
// then every change) to fn until ctx ends or fn fails. A stream that
// breaks is reopened, on the next server when the one in use is down; the
// new stream starts with the initial set again. It ends with an error when
// the first stream reaches no server (Unreached) or a server refuses it
// (UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED); with ctx's error
// when ctx ends.
func (c *Client) WatchAlarms(ctx context.Context, req *pb.WatchAlarmsRequest, fn func(*pb.WatchAlarmsResponse) error) error {
	heard := false
	for {
		stream, err := c.CoordinatorServiceClient.WatchAlarms(ctx, req)
		if err == nil {
			for {
				resp, rerr := stream.Recv()
				if rerr != nil {
					err = rerr
					break
				}
				heard = true
				if ferr := fn(resp); ferr != nil {
					return ferr
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if (!heard && Unreached(err)) || watchRefused(err) {
			return err
		}
		c.log.Info("alarm watch broke; reopening", zap.Stringer("code", status.Code(err)), zap.Error(err))
		if !sleep(ctx, resumeWait) {
			return ctx.Err()
		}
	}
}

// sleep waits d; false when ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
