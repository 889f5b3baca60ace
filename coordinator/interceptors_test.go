package coordinator

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// A panic in a unary or stream handler is INTERNAL with reason INTERNAL,
// logged at error level with method, op id and stack; the next call is
// served.
func TestRecoverPanics(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := &Server{cfg: Config{NodeID: "s1"}, log: zap.New(core)}
	info := &grpc.UnaryServerInfo{FullMethod: "/x/ForceUnpause"}
	_, err := s.recoverUnary(context.Background(), &pb.ForceUnpauseRequest{OpId: "op-9"}, info, func(context.Context, any) (any, error) { panic("boom") })
	if status.Code(err) != codes.Internal || ReasonOf(err) != "INTERNAL" || ErrorInfoOf(err).GetMetadata()["op_id"] != "op-9" {
		t.Fatalf("unary panic: %v (%v)", err, ErrorInfoOf(err))
	}
	resp, err := s.recoverUnary(context.Background(), nil, info, func(context.Context, any) (any, error) { return "ok", nil })
	if err != nil || resp != "ok" {
		t.Fatalf("call after a panic: %v %v", resp, err)
	}
	err = s.recoverStream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/WatchOperation"}, func(any, grpc.ServerStream) error { panic(errors.New("stream boom")) })
	if status.Code(err) != codes.Internal || ReasonOf(err) != "INTERNAL" {
		t.Fatalf("stream panic: %v", err)
	}
	entries := logs.FilterMessageSnippet("panic in a gRPC handler").All()
	if len(entries) != 2 {
		t.Fatalf("logged %d panics, want 2", len(entries))
	}
	f := entries[0].ContextMap()
	if f["method"] != "/x/ForceUnpause" || f["op_id"] != "op-9" || f["stack"] == "" {
		t.Errorf("panic log fields %v", f)
	}
}

// The safety net names the server on every error, keeps other details,
// leaves a forwarded leader's server, and gives a reasonless status the
// reason of its code — logged and reported as a bug unless the caller is
// gone.
func TestEnsureReason(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := &Server{cfg: Config{NodeID: "s1"}, log: zap.New(core)}
	var reported []string
	hook := func(method string, _ error) { reported = append(reported, method) }
	prev := missingReasonHook.Swap(&hook)
	defer missingReasonHook.Store(prev)
	ctx := context.Background()

	err := s.ensureReason(ctx, "/m/A", badRequest([]string{"hold_ms -1 is outside 0..10", "cluster is required"}))
	st := status.Convert(err)
	info := ErrorInfoOf(err)
	if info.GetReason() != "INVALID_ARGUMENT" || info.GetMetadata()["server"] != "s1" || info.GetMetadata()["field"] != "hold_ms" || len(st.Details()) != 2 {
		t.Fatalf("reasoned error: %v details %v", info, st.Details())
	}
	if br, ok := st.Details()[1].(*errdetails.BadRequest); !ok || len(br.GetFieldViolations()) != 2 || br.GetFieldViolations()[1].GetField() != "cluster" {
		t.Errorf("BadRequest detail lost: %v", st.Details())
	}
	led := apiError(codes.NotFound, pb.ErrorReason_ERROR_REASON_OPERATION_NOT_FOUND, map[string]string{"server": "leader-2", "op_id": "op-1"}, "no")
	if got := s.ensureReason(ctx, "/m/B", led); ErrorInfoOf(got).GetMetadata()["server"] != "leader-2" {
		t.Errorf("leader's server replaced: %v", ErrorInfoOf(got))
	}
	if len(reported) != 0 || logs.Len() != 0 {
		t.Fatalf("reasoned errors reported as missing: %v", reported)
	}

	err = s.ensureReason(ctx, "/m/C", status.Error(codes.NotFound, "forgot"))
	if status.Code(err) != codes.NotFound || ReasonOf(err) != "INTERNAL" || status.Convert(err).Message() != "forgot" {
		t.Errorf("reasonless NotFound: %v %q", err, ReasonOf(err))
	}
	if err := s.ensureReason(ctx, "/m/D", errors.New("plain")); status.Code(err) != codes.Unknown || ReasonOf(err) != "INTERNAL" {
		t.Errorf("plain error: %v %q", err, ReasonOf(err))
	}
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.ensureReason(gone, "/m/E", status.Error(codes.Canceled, "context canceled")); ReasonOf(err) != "CANCELED" {
		t.Errorf("caller gone: %q", ReasonOf(err))
	}
	if len(reported) != 2 || reported[0] != "/m/C" || reported[1] != "/m/D" || logs.FilterMessageSnippet("without a reason").Len() != 2 {
		t.Errorf("reported %v, logged %d; want /m/C and /m/D", reported, logs.Len())
	}
}

// Health and reflection are not CoordinatorService: the safety net leaves
// their errors alone. A health probe of an unknown service name is plain
// NOT_FOUND, not a "bug at its site" with the coordinator's INTERNAL.
func TestSafetyNetLeavesHealthAlone(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := &Server{cfg: Config{NodeID: "s1"}, log: zap.New(core)}
	var reported []string
	hook := func(method string, _ error) { reported = append(reported, method) }
	prev := missingReasonHook.Swap(&hook)
	defer missingReasonHook.Store(prev)

	unary, stream := s.interceptorOptions()
	srv := grpc.NewServer(grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...))
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	cc, err := grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cc.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"})
	if status.Code(err) != codes.NotFound || ErrorInfoOf(err) != nil || len(status.Convert(err).Details()) != 0 {
		t.Errorf("Health/Check of an unknown service: %v, details %v; want plain NOT_FOUND", err, status.Convert(err).Details())
	}
	if len(reported) != 0 || logs.Len() != 0 {
		t.Errorf("health NOT_FOUND reported as a missing reason: %v (%d logs)", reported, logs.Len())
	}
	// A CoordinatorService method is still covered.
	_, err = s.reasonUnary(ctx, nil, &grpc.UnaryServerInfo{FullMethod: "/stillpoint.v1.CoordinatorService/GetOperation"},
		func(context.Context, any) (any, error) { return nil, status.Error(codes.NotFound, "forgot") })
	if ReasonOf(err) != "INTERNAL" || len(reported) != 1 {
		t.Errorf("CoordinatorService error without a reason: %q, reported %v", ReasonOf(err), reported)
	}
}

// A reason this build does not know (a newer server's, forwarded) is kept
// as it is, not dropped to "".
func TestEnsureReasonKeepsUnknownReason(t *testing.T) {
	s := &Server{cfg: Config{NodeID: "s1"}, log: zap.NewNop()}
	st, err := status.New(codes.FailedPrecondition, "newer").WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: "SOME_FUTURE_REASON", Metadata: map[string]string{"cluster": "ledger"}})
	if err != nil {
		t.Fatal(err)
	}
	got := ErrorInfoOf(s.ensureReason(context.Background(), "/stillpoint.v1.CoordinatorService/StartPause", st.Err()))
	if got.GetReason() != "SOME_FUTURE_REASON" || got.GetMetadata()["server"] != "s1" || got.GetMetadata()["cluster"] != "ledger" {
		t.Errorf("ErrorInfo = %v; want SOME_FUTURE_REASON with server s1 and cluster ledger", got)
	}
}

// The client's INTERNAL does not carry the panic value (it may hold
// secrets or internals); the log does. Its metadata keys are the
// catalog's.
func TestPanicValueStaysInTheLog(t *testing.T) {
	core, logs := observer.New(zap.ErrorLevel)
	s := &Server{cfg: Config{NodeID: "s1"}, log: zap.New(core)}
	_, err := s.recoverUnary(context.Background(), &pb.ForceUnpauseRequest{OpId: "op-9"}, &grpc.UnaryServerInfo{FullMethod: "/x/ForceUnpause"},
		func(context.Context, any) (any, error) { panic("secret-token-abc") })
	if strings.Contains(status.Convert(err).Message(), "secret-token-abc") {
		t.Errorf("panic value sent to the client: %q", status.Convert(err).Message())
	}
	for k := range ErrorInfoOf(err).GetMetadata() {
		if k != "op_id" && k != "server" {
			t.Errorf("metadata key %q is not in errors.proto's key list", k)
		}
	}
	if e := logs.FilterMessageSnippet("panic in a gRPC handler").All(); len(e) != 1 || e[0].ContextMap()["panic"] != "secret-token-abc" {
		t.Errorf("panic value not logged: %v", e)
	}
}

// A forgotten UNAUTHENTICATED gets the token reason (tokens are what the
// API checks in handlers); the TLS layer's refusals keep the certificate
// reasons.
func TestUnauthenticatedReasons(t *testing.T) {
	if r := reasonForCode(codes.Unauthenticated); r != pb.ErrorReason_ERROR_REASON_UNAUTHENTICATED_TOKEN {
		t.Errorf("reasonForCode(Unauthenticated) = %v", r)
	}
	if r := ReasonOf(annotateRefusal(status.Error(codes.Unauthenticated, "no client certificate"))); r != "UNAUTHENTICATED_CERTIFICATE" {
		t.Errorf("TLS refusal reason %q", r)
	}
	if r := ReasonOf(annotateRefusal(status.Error(codes.PermissionDenied, "agent certificate"))); r != "PERMISSION_DENIED_CERTIFICATE" {
		t.Errorf("TLS role refusal reason %q", r)
	}
}
