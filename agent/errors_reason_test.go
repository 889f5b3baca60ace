package agent

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Every AgentService error carries an agent ErrorInfo (errors.proto's
// AgentErrorReason promise): the request's context ending, an error of no
// class, and Keyring before gossip has started included.
func TestEveryAgentErrorHasAReason(t *testing.T) {
	for _, tc := range []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{context.Canceled, codes.Canceled, ReasonCanceled},
		{fmt.Errorf("pause: %w", context.DeadlineExceeded), codes.DeadlineExceeded, ReasonCanceled},
		{errors.New("a bug"), codes.Internal, ReasonInternal},
		{fmt.Errorf("x: %w", ErrStopping), codes.Unavailable, ReasonStopping},
	} {
		got := toStatus("n1", tc.err)
		if status.Code(got) != tc.code || ReasonOf(got) != tc.reason {
			t.Errorf("toStatus(%v) = %v reason %q; want %v %q", tc.err, got, ReasonOf(got), tc.code, tc.reason)
		}
		if pb.ParseAgentErrorReason(ReasonOf(got)).Reason() != ReasonOf(got) {
			t.Errorf("reason %q is not in the AgentErrorReason catalog", ReasonOf(got))
		}
	}
	svc := &service{a: &Agent{cfg: Config{NodeName: "n1"}}}
	_, err := svc.Keyring(context.Background(), &pb.AgentServiceKeyringRequest{})
	if status.Code(err) != codes.Unavailable || ReasonOf(err) != ReasonNotReady {
		t.Errorf("Keyring before gossip: %v reason %q; want UNAVAILABLE %q", err, ReasonOf(err), ReasonNotReady)
	}
}
