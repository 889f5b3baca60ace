package client

import (
	"errors"

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
	return grpcx.InfoOf(err, pb.ErrorDomain).GetMetadata()
}

func asCallError(err error, ce **CallError) bool { return errors.As(err, ce) }
