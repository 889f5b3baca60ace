package enumname_test

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

func TestOfNamedValues(t *testing.T) {
	for _, tc := range []struct {
		e    protoreflect.Enum
		want string
	}{
		{pb.OperationState_OPERATION_STATE_COMPLETED, "completed"},
		{pb.OperationState_OPERATION_STATE_UNSPECIFIED, "unspecified"},
		{pb.NodeOutcome_NODE_OUTCOME_DRAIN_TIMED_OUT, "drain_timed_out"},
		{pb.ClockStatus_CLOCK_STATUS_UNSYNCHRONIZED, "unsynchronized"},
		{pb.MemberStatus_MEMBER_STATUS_SUSPECT, "suspect"},
		{pb.SourceVerdict_SOURCE_VERDICT_NO_MAJORITY, "no_majority"},
		{pb.MemberRecordStatus_MEMBER_RECORD_STATUS_FAILED, "failed"},
		{pb.PausedState_PAUSED_STATE_UNKNOWN, "unknown"},
		{pb.PausedState_PAUSED_STATE_PAUSED, "paused"},
		{pb.OperationState(99), "99"},
		{pb.NodeOutcome(-3), "-3"},
	} {
		if got := enumname.Of(tc.e); got != tc.want {
			t.Errorf("Of(%s %d) = %q, want %q", tc.e.Descriptor().Name(), tc.e.Number(), got, tc.want)
		}
	}
}

// TestOfEveryEnum walks every enum of proto/stillpoint/v1: each value carries
// the derived prefix, and Of equals the hand-written
// strings.ToLower(strings.TrimPrefix(v.String(), prefix)) it replaces, for
// every declared number and one undeclared.
func TestOfEveryEnum(t *testing.T) {
	n := 0
	protoregistry.GlobalTypes.RangeEnums(func(et protoreflect.EnumType) bool {
		d := et.Descriptor()
		if d.ParentFile().Package() != "stillpoint.v1" {
			return true
		}
		n++
		prefix := enumname.Prefix(d)
		vals := d.Values()
		maxNum := protoreflect.EnumNumber(0)
		for i := range vals.Len() {
			v := vals.Get(i)
			if !strings.HasPrefix(string(v.Name()), prefix) {
				t.Errorf("%s value %s lacks the derived prefix %q", d.FullName(), v.Name(), prefix)
			}
			e := et.New(v.Number())
			want := strings.ToLower(strings.TrimPrefix(e.(interface{ String() string }).String(), prefix))
			if got := enumname.Of(e); got != want || got == "" {
				t.Errorf("Of(%s) = %q, want %q", v.Name(), got, want)
			}
			maxNum = max(maxNum, v.Number())
		}
		undeclared := et.New(maxNum + 1)
		if got, want := enumname.Of(undeclared), strconv.Itoa(int(maxNum+1)); got != want {
			t.Errorf("Of(%s %d) = %q, want %q", d.FullName(), maxNum+1, got, want)
		}
		return true
	})
	if n < 8 {
		t.Fatalf("walked %d enums of stillpoint.v1, want at least 8 (is the package registered?)", n)
	}
}

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		d    protoreflect.EnumDescriptor
		want string
	}{
		{pb.OperationState(0).Descriptor(), "OPERATION_STATE_"},
		{pb.MemberRecordStatus(0).Descriptor(), "MEMBER_RECORD_STATUS_"},
		{pb.PausedState(0).Descriptor(), "PAUSED_STATE_"},
	} {
		if got := enumname.Prefix(tc.d); got != tc.want {
			t.Errorf("Prefix(%s) = %q, want %q", tc.d.Name(), got, tc.want)
		}
	}
}
