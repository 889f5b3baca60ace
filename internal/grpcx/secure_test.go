package grpcx_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx"
	"github.com/stillpoint-dev/stillpoint/internal/tlsx/tlsxtest"
)

// serve runs a health service behind grpcx.NewSecureServer with setup and
// returns its address; calls records what the handler saw.
func serve(t *testing.T, setup grpcx.ServerSetup) (addr string, seen func() []string) {
	t.Helper()
	src, err := setup.TLS.Load()
	if err != nil {
		t.Fatal(err)
	}
	setup.Source = src
	var mu sync.Mutex
	var got []string
	setup.Authorize = func(ctx context.Context, c grpcx.Call) error {
		role, subject, ok := tlsx.RoleOf(ctx)
		mu.Lock()
		got = append(got, role+"/"+subject+"/"+map[bool]string{true: "ok", false: "anon"}[ok])
		mu.Unlock()
		return grpcx.RequireRoles("test server", tlsx.RoleServer)(ctx, c)
	}
	srv, err := grpcx.NewSecureServer(setup)
	if err != nil {
		t.Fatal(err)
	}
	healthpb.RegisterHealthServer(srv, health.NewServer())
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func check(t *testing.T, addr string, tl grpcx.TLS) error {
	t.Helper()
	cc, err := grpcx.NewClient(addr, tl)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(false))
	return err
}

func TestSecureServerVerifyIncomingOff(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	off := false
	tl := pki.TLS(tlsx.RoleAgent, "a1")
	tl.VerifyIncoming = &off
	var refused []string
	setup := grpcx.ServerSetup{Name: "test server", TLS: tl, OnRefused: func(_ context.Context, c grpcx.Call, err error) {
		refused = append(refused, c.Method+": "+status.Code(err).String())
	}}
	addr, seen := serve(t, setup)
	// No certificate: let through, anonymous.
	if err := check(t, addr, pki.CAOnly()); err != nil {
		t.Fatalf("no certificate with verify_incoming off: %v", err)
	}
	// A certificate that is presented is still verified and role-checked.
	err := check(t, addr, pki.TLS(tlsx.RoleClient, "alice"))
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || !strings.Contains(st.Message(), "alice") {
		t.Fatalf("client certificate: %v", err)
	}
	expired := pki.TLS(tlsx.RoleServer, "old", func(o *tlsx.LeafOptions) {
		o.NotBefore, o.NotAfter = time.Now().Add(-2*time.Hour), time.Now().Add(-time.Hour)
	})
	if st := status.Convert(check(t, addr, expired)); st.Code() != codes.Unauthenticated || !strings.Contains(st.Message(), "expired at") {
		t.Fatalf("expired server certificate: %v", st.Err())
	}
	if err := check(t, addr, pki.TLS(tlsx.RoleServer, "s1")); err != nil {
		t.Fatalf("server certificate: %v", err)
	}
	want := []string{"//anon", "client/alice/ok", "server/s1/ok"}
	if got := seen(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("authorizer saw %v, want %v", got, want)
	}
	if len(refused) != 2 || !strings.Contains(refused[0], "PermissionDenied") || !strings.Contains(refused[1], "Unauthenticated") {
		t.Fatalf("OnRefused saw %v", refused)
	}
}

func TestVerifyIncomingNeedsCA(t *testing.T) {
	pki := tlsxtest.New(t, "cluster CA")
	on := true
	tl := pki.TLS(tlsx.RoleServer, "s1")
	tl.CAFile, tl.VerifyIncoming = "", &on
	if _, err := tl.ServerConfig(); err == nil || !strings.Contains(err.Error(), "ca_file") {
		t.Fatalf("ServerConfig: %v", err)
	}
	src, err := tl.Load()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grpcx.NewSecureServer(grpcx.ServerSetup{TLS: tl, Source: src}); err == nil {
		t.Fatal("grpcx.NewSecureServer accepted verify_incoming without a CA")
	}
}
