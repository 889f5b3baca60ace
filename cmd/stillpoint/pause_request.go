package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// newRequestID names one intended pause, so that a retried StartPause
// returns the op its first attempt started.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}

// StartPause attempts and the wait between them: the servers already wait
// for a leader, so a few quick retries cover a reply lost in a leader
// change without keeping a CLI pointed at a dead address waiting long.
const (
	startPauseAttempts     = 5
	startPauseRetryBackoff = 200 * time.Millisecond
)

// startPause sends req (which carries a request id) and retries it with
// retryStart. The request id makes a retry of a recorded request return its
// op instead of starting a second one.
func startPause(ctx context.Context, c pb.CoordinatorServiceClient, req *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	return retryStart(ctx, func(ctx context.Context) (*pb.StartPauseResponse, error) { return c.StartPause(ctx, req) })
}

// retryStart calls start (a request carrying a request id) and retries,
// within ctx and startPauseAttempts, while the answer leaves it unknown
// whether the request was recorded (UNAVAILABLE: no leader, the leader
// changed; UNKNOWN: leadership lost while committing).
func retryStart[Resp any](ctx context.Context, start func(context.Context) (Resp, error)) (Resp, error) {
	for attempt := 1; ; attempt++ {
		resp, err := start(ctx)
		switch status.Code(err) {
		case codes.Unavailable, codes.Unknown:
		default:
			return resp, err
		}
		if attempt == startPauseAttempts {
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(startPauseRetryBackoff):
		}
	}
}
