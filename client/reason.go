package client

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// ReasonOf is the ErrorReason a coordinator error carries (its
// google.rpc.ErrorInfo of domain pb.ErrorDomain), or
// ERROR_REASON_UNSPECIFIED for an error without one, or with a reason this
// client does not know (a newer server's). Switch on it and on
// status.Code(err), never on the message.
func ReasonOf(err error) pb.ErrorReason {
	return pb.ParseErrorReason(grpcx.ReasonOf(err, pb.ErrorDomain))
}

// MetadataOf is the metadata of a coordinator error's ErrorInfo: what the
// error is about, under the keys errors.proto lists ("cluster", "op_id",
// "node", "nodes", "figure_ns", "bound_ns", ...). nil when it has none.
func MetadataOf(err error) map[string]string {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == pb.ErrorDomain {
			return info.GetMetadata()
		}
	}
	return nil
}

func asCallError(err error, ce **CallError) bool { return errors.As(err, ce) }
