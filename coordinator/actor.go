package coordinator

import (
	"context"

	"google.golang.org/grpc/metadata"
)

// isForwarded reports whether another server forwarded this request. The
// caller it carries is trusted only from a server (auth.go
// forwardTrusted; with mTLS, tls.go requires a server certificate).
func isForwarded(ctx context.Context) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	return len(md.Get(forwardedHeader)) > 0
}
