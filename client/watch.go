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

// Ended reports whether an operation in state s has ended (completed,
// aborted or invalid): s.Ended().
func Ended(s pb.OperationState) bool { return s.Ended() }

// WatchOperation follows operation opID until it ends and returns its final
// record. fn (which may be nil) is called with every new record, in order;
// an error from fn ends the watch with that error.
//
// A stream that breaks (UNAVAILABLE: a disconnect, the server going away;
// or reason NOT_APPLIED; or CANCELED or DEADLINE_EXCEEDED while ctx is
// still live) is reopened, on the next server when the one in use is down,
// after Options.Backoff doubled at every break in a row up to 2s, until ctx
// ends. Records the callback has seen are not repeated, and a record older
// than the last one (a lagging replica's) is skipped, so fn never sees the
// op go backwards. The watch ends with an error when the first stream
// reaches no server (Unreached), or with any other error a stream ends
// with (the server's answer: NOT_FOUND, PERMISSION_DENIED, INTERNAL, ...);
// with ctx's error when ctx ends. Every stream is ended when the watch
// returns. The last record seen is returned with any error.
func (c *Client) WatchOperation(ctx context.Context, opID string, fn func(*pb.Operation) error) (*pb.Operation, error) {
	var last *pb.Operation
	err := c.follow(ctx, "operation", []zap.Field{zap.String("op_id", opID)}, func(ctx context.Context, heard func()) (bool, error) {
		stream, err := c.CoordinatorServiceClient.WatchOperation(ctx, &pb.WatchOperationRequest{OpId: opID})
		if err != nil {
			return false, err
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				return false, err
			}
			heard()
			op := resp.GetOperation()
			if last != nil && (proto.Equal(op, last) || compareProgress(op, last) < 0) {
				continue
			}
			last = op
			if fn != nil {
				if err := fn(op); err != nil {
					return true, err
				}
			}
			if Ended(op.GetState()) {
				return true, nil
			}
		}
	})
	return last, err
}

// follow runs one stream after another until one is done: stream opens a
// stream on the ctx it is given, reads it, calls heard for every message,
// and returns done (the watch is over, with err) or the error that broke
// the stream. Each stream's ctx is cancelled as soon as stream returns, so
// no stream outlives it. A broken stream is reopened, after a backoff
// (conn.wait: Options.Backoff doubled at every break in a row, up to 2s),
// only when reopenable; the first stream's Unreached error, any other
// error, and ctx's end end the watch.
func (c *Client) follow(ctx context.Context, what string, fields []zap.Field, stream func(ctx context.Context, heard func()) (done bool, err error)) error {
	everHeard := false
	for breaks := 1; ; breaks++ {
		heard := false
		sctx, cancel := context.WithCancel(ctx)
		done, err := stream(sctx, func() { heard = true })
		cancel()
		if done {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if (!everHeard && !heard && Unreached(err)) || !reopenable(err) {
			return err
		}
		everHeard = everHeard || heard
		if heard {
			breaks = 1 // the stream served: this break is the first in a row
		}
		c.log.Info(what+" watch broke; reopening", append(fields, zap.Stringer("code", status.Code(err)), zap.Error(err), zap.Int("breaks_in_a_row", breaks))...)
		if !c.conn.wait(ctx, breaks) {
			return ctx.Err()
		}
	}
}

// reopenable reports whether a watch stream's error (with the watch's ctx
// still live) is a broken link rather than the server's answer: UNAVAILABLE
// (a disconnect, a server going away), reason NOT_APPLIED, or CANCELED or
// DEADLINE_EXCEEDED (a proxy's or the server's end of the stream).
func reopenable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Canceled, codes.DeadlineExceeded:
		return true
	}
	return ReasonOf(err) == pb.ErrorReason_ERROR_REASON_NOT_APPLIED
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
// breaks is reopened by the rules of WatchOperation; the new stream starts
// with the initial set again. It ends with an error when the first stream
// reaches no server (Unreached) or a stream ends with the server's answer
// (UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED, INTERNAL, ...); with
// ctx's error when ctx ends. Every stream is ended when it returns.
func (c *Client) WatchAlarms(ctx context.Context, req *pb.WatchAlarmsRequest, fn func(*pb.WatchAlarmsResponse) error) error {
	return c.follow(ctx, "alarm", nil, func(ctx context.Context, heard func()) (bool, error) {
		stream, err := c.CoordinatorServiceClient.WatchAlarms(ctx, req)
		if err != nil {
			return false, err
		}
		for {
			resp, err := stream.Recv()
			if err != nil {
				return false, err
			}
			heard()
			if err := fn(resp); err != nil {
				return true, err
			}
		}
	})
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
