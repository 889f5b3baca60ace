package main

import (
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func reasonErr(t *testing.T, code codes.Code, reason pb.ErrorReason, md map[string]string) error {
	t.Helper()
	st, err := status.New(code, "message text the CLI must not read").WithDetails(&errdetails.ErrorInfo{Domain: pb.ErrorDomain, Reason: reason.Reason(), Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

// The CLI's hints come from the reason and its metadata, never from the
// message: each names the figure, the nodes or the op and the command to
// run next.
func TestReasonHint(t *testing.T) {
	for _, tc := range []struct {
		reason pb.ErrorReason
		md     map[string]string
		want   []string
	}{
		{pb.ErrorReason_ERROR_REASON_CLUSTER_LOCKED, map[string]string{"cluster": "ledger", "op_id": "op-7"},
			[]string{"held by op op-7", "`stillpoint ops show op-7`", "`stillpoint unpause --op op-7`"}},
		{pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_DRIFT, map[string]string{"cluster": "ledger", "nodes": "a,b", "figure_ns": "500000000", "bound_ns": "100000000"},
			[]string{"500ms", "100ms", "a, b", "`stillpoint drift --cluster ledger`"}},
		{pb.ErrorReason_ERROR_REASON_PAUSE_REFUSED_CLOCK, map[string]string{"cluster": "ledger", "nodes": "b", "figure_ns": "80000000", "bound_ns": "50000000"},
			[]string{"80ms", "50ms", "nodes b"}},
		{pb.ErrorReason_ERROR_REASON_ROSTER_MEMBER_ABSENT, map[string]string{"nodes": "ledger-3"}, []string{"ledger-3", "`stillpoint members remove NODE`"}},
		{pb.ErrorReason_ERROR_REASON_PERMISSION_DENIED_ROLE, map[string]string{"role": "read", "needed_role": "operate"}, []string{"role read", "--role operate"}},
	} {
		got := reasonHint(reasonErr(t, codes.FailedPrecondition, tc.reason, tc.md))
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: hint %q lacks %q", tc.reason.Reason(), got, w)
			}
		}
		if strings.Contains(got, "message text") {
			t.Errorf("%s: hint %q repeats the message", tc.reason.Reason(), got)
		}
	}
	if got := reasonHint(status.Error(codes.FailedPrecondition, "cluster ledger is held by operation op-1")); got != "" {
		t.Errorf("a status without a reason got hint %q", got)
	}
}
