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

// startPauseRetryBackoff is the wait between StartPause attempts.
const startPauseRetryBackoff = 200 * time.Millisecond

// startPause sends req (which carries a request id) and retries, within
// ctx, while the answer leaves it unknown whether the pause was recorded
// (UNAVAILABLE: no leader, the leader changed; UNKNOWN: leadership lost
// while committing). The request id makes a retry of a recorded request
// return its op instead of starting a second one.
func startPause(ctx context.Context, c pb.CoordinatorServiceClient, req *pb.StartPauseRequest) (*pb.StartPauseResponse, error) {
	for {
		resp, err := c.StartPause(ctx, req)
		switch status.Code(err) {
		case codes.Unavailable, codes.Unknown:
		default:
			return resp, err
		}
		select {
		case <-ctx.Done():
			return resp, err
		case <-time.After(startPauseRetryBackoff):
		}
	}
}
