package grpcx

import (
	"errors"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestReasonOf(t *testing.T) {
	withInfo := func(domain, reason string) error {
		st, err := status.New(codes.Unavailable, "x").WithDetails(&errdetails.ErrorInfo{Domain: domain, Reason: reason})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"nil", nil, ""},
		{"not a status", errors.New("plain"), ""},
		{"no details", status.Error(codes.Unavailable, "x"), ""},
		{"same domain", withInfo("d.example", "NOT_APPLIED"), "NOT_APPLIED"},
		{"other domain", withInfo("other.example", "NOT_APPLIED"), ""},
	} {
		if got := ReasonOf(tc.err, "d.example"); got != tc.want {
			t.Errorf("%s: ReasonOf = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// InfoOf finds the ErrorInfo of the domain asked for among several details,
// with its metadata, and nothing for another domain.
func TestInfoOf(t *testing.T) {
	st, err := status.New(codes.FailedPrecondition, "x").WithDetails(
		&errdetails.ErrorInfo{Domain: "other.example", Reason: "OTHER"},
		&errdetails.ErrorInfo{Domain: "d.example", Reason: "CLUSTER_LOCKED", Metadata: map[string]string{"op_id": "op-9"}})
	if err != nil {
		t.Fatal(err)
	}
	info := InfoOf(st.Err(), "d.example")
	if info.GetReason() != "CLUSTER_LOCKED" || info.GetMetadata()["op_id"] != "op-9" {
		t.Errorf("InfoOf = %v, want CLUSTER_LOCKED with op_id op-9", info)
	}
	if info := InfoOf(st.Err(), "none.example"); info != nil {
		t.Errorf("InfoOf for an absent domain = %v, want nil", info)
	}
	if info := InfoOf(errors.New("plain"), "d.example"); info != nil {
		t.Errorf("InfoOf of a plain error = %v, want nil", info)
	}
}
