package scalaradmin

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClassOf covers the whole classification table, including answers the
// simulated node never gives (INVALID_ARGUMENT is refused by the client
// before it is sent; foreign domains; unknown reasons).
func TestClassOf(t *testing.T) {
	withInfo := func(code codes.Code, domain, reason string) error {
		st, err := status.New(code, "server says so").WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	bare := func(code codes.Code) error { return status.Error(code, "server says so") }
	cases := []struct {
		name       string
		err        error
		want       error
		wantReason string
	}{
		{"aborted pause in progress", withInfo(codes.Aborted, ErrorDomain, ReasonPauseInProgress), ErrRetryable, ReasonPauseInProgress},
		{"aborted gate open", withInfo(codes.Aborted, ErrorDomain, ReasonGateOpen), ErrRetryable, ReasonGateOpen},
		{"aborted without reason", bare(codes.Aborted), ErrFailed, ""},
		{"aborted foreign domain", withInfo(codes.Aborted, "example.com", ReasonGateOpen), ErrFailed, ""},
		{"timed out", withInfo(codes.FailedPrecondition, ErrorDomain, ReasonTimedOut), ErrDrainTimedOut, ReasonTimedOut},
		{"failed precondition without reason", bare(codes.FailedPrecondition), ErrDrainTimedOut, ""},
		{"still paused", withInfo(codes.FailedPrecondition, ErrorDomain, ReasonTimedOutStillPaused), ErrStillPaused, ReasonTimedOutStillPaused},
		{"failed precondition unknown reason", withInfo(codes.FailedPrecondition, ErrorDomain, "SOMETHING_NEW"), ErrFailed, "SOMETHING_NEW"},
		{"invalid argument", bare(codes.InvalidArgument), ErrInvalidArgument, ""},
		{"unavailable", bare(codes.Unavailable), ErrUnreachable, ""},
		{"deadline exceeded", bare(codes.DeadlineExceeded), ErrUnreachable, ""},
		{"unimplemented", bare(codes.Unimplemented), ErrUnimplemented, ""},
		{"internal", bare(codes.Internal), ErrFailed, ""},
		{"permission denied", bare(codes.PermissionDenied), ErrFailed, ""},
		{"context deadline", fmt.Errorf("dial: %w", context.DeadlineExceeded), ErrUnreachable, ""},
		{"context canceled", context.Canceled, ErrFailed, ""},
		{"plain error", errors.New("boom"), ErrFailed, ""},
	}
	c := &Client{cfg: Config{Address: "10.0.0.1:50053"}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := c.classify("Pause", tc.err)
			assertClass(t, err, tc.want)
			if got := Reason(err); got != tc.wantReason {
				t.Errorf("Reason = %q, want %q", got, tc.wantReason)
			}
		})
	}
	if c.classify("Pause", nil) != nil {
		t.Fatal("classify(nil) != nil")
	}
}
