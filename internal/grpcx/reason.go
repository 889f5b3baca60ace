package grpcx

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// InfoOf returns the first ErrorInfo detail of err whose domain is domain,
// or nil when err carries none (or is not a gRPC status error).
func InfoOf(err error, domain string) *errdetails.ErrorInfo {
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == domain {
			return info
		}
	}
	return nil
}

// ReasonOf returns the reason of the first ErrorInfo detail of err whose
// domain is domain, or "" when err carries none.
func ReasonOf(err error, domain string) string {
	return InfoOf(err, domain).GetReason()
}
