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
