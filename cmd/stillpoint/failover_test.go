package main

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/coordinator"
)

// TestCLIFailsOverToTheNextServer: with one of three servers killed and
// put first, the CLI given all three addresses (flag or STILLPOINT_ADDR)
// still works.
func TestCLIFailsOverToTheNextServer(t *testing.T) {
	c := membersCluster(t)
	dead := c.Server(0).GRPCAddr()
	c.Kill(0)
	c.WaitForLeader(t)
	addrs := strings.Join([]string{dead, c.Server(1).GRPCAddr(), c.Server(2).GRPCAddr()}, ",")
	out, err := runCoordCLI(t, "members", "--addr", addrs)
	if err != nil {
		t.Fatalf("members --addr %s with %s dead: %v", addrs, dead, err)
	}
	if !strings.Contains(out, "ledger-2") {
		t.Fatalf("members printed:\n%s", out)
	}
	if _, err := runCoordCLI(t, "ops", "list", "--addr", addrs); err != nil {
		t.Fatalf("ops list --addr %s with %s dead: %v", addrs, dead, err)
	}
	t.Setenv("STILLPOINT_ADDR", addrs)
	if _, err := runCoordCLI(t, "members"); err != nil {
		t.Fatalf("members with STILLPOINT_ADDR=%s and %s dead: %v", addrs, dead, err)
	}
}

// TestCLIFailsOverOnNotApplied: a server that answers UNAVAILABLE with
// reason NOT_APPLIED (nothing changed) is skipped for the next; any other
// answer is the answer.
func TestCLIFailsOverOnNotApplied(t *testing.T) {
	notApplied := serveRefusing(t, withInfo(status.New(codes.Unavailable, "no leader"), coordinator.ReasonNotApplied))
	notFound := serveRefusing(t, status.Error(codes.NotFound, "no such thing"))
	_, err := runCoordCLI(t, "members", "--addr", notApplied+","+notFound)
	if err == nil || !strings.Contains(err.Error(), "no such thing") {
		t.Fatalf("want the second server's NotFound, got %v", err)
	}
	// Every server not applying: the error names them all and says retry.
	other := serveRefusing(t, withInfo(status.New(codes.Unavailable, "no leader"), coordinator.ReasonNotApplied))
	_, err = runCoordCLI(t, "members", "--addr", notApplied+", "+other)
	if err == nil || !strings.Contains(err.Error(), "nothing changed") || !strings.Contains(err.Error(), notApplied) || !strings.Contains(err.Error(), other) {
		t.Fatalf("all not applied: %v", err)
	}
	// A NotFound is an answer: no failover past it.
	_, err = runCoordCLI(t, "members", "--addr", notFound+","+notApplied)
	if err == nil || !strings.Contains(err.Error(), "no such thing") {
		t.Fatalf("want the first server's NotFound, got %v", err)
	}
}

// TestCLINamesEveryUnreachableServer: no server reachable, the error names
// each address tried.
func TestCLINamesEveryUnreachableServer(t *testing.T) {
	_, err := runCoordCLI(t, "members", "--addr", "127.0.0.1:1,127.0.0.1:2", "--timeout", "2s")
	if err == nil || !strings.Contains(err.Error(), "cannot reach a coordinator server at") ||
		!strings.Contains(err.Error(), "127.0.0.1:1") || !strings.Contains(err.Error(), "127.0.0.1:2") {
		t.Fatalf("unreachable: %v", err)
	}
	if code := exitCode(err); code != exitFailed {
		t.Fatalf("exit %d, want %d", code, exitFailed)
	}
	_, err = runCoordCLI(t, "members", "--addr", "127.0.0.1:1,,")
	if err == nil || exitCode(err) != exitUsage {
		t.Fatalf("empty address in --addr: %v (exit %d)", err, exitCode(err))
	}
}
