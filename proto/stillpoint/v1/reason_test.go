package stillpointv1

import "testing"

func TestErrorReasonRoundTrip(t *testing.T) {
	for n := range ErrorReason_name {
		r := ErrorReason(n)
		if r == ErrorReason_ERROR_REASON_UNSPECIFIED {
			if r.Reason() != "" {
				t.Errorf("UNSPECIFIED.Reason() = %q, want empty", r.Reason())
			}
			continue
		}
		s := r.Reason()
		if s == "" || s == r.String() {
			t.Errorf("%v.Reason() = %q: want the name without ERROR_REASON_", r, s)
		}
		if got := ParseErrorReason(s); got != r {
			t.Errorf("ParseErrorReason(%q) = %v, want %v", s, got, r)
		}
	}
	if got := ParseErrorReason("NO_SUCH_REASON"); got != ErrorReason_ERROR_REASON_UNSPECIFIED {
		t.Errorf("unknown reason parsed as %v", got)
	}
	if got := ErrorReason(9999).Reason(); got != "" {
		t.Errorf("undeclared number gave %q", got)
	}
	if ErrorReason_ERROR_REASON_CLUSTER_LOCKED.Reason() != "CLUSTER_LOCKED" {
		t.Errorf("CLUSTER_LOCKED spelled %q", ErrorReason_ERROR_REASON_CLUSTER_LOCKED.Reason())
	}
}
