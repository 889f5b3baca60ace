package main

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// heldOp waits until the dev cluster holds an op and returns its id.
func heldOp(t *testing.T, cl pb.CoordinatorServiceClient, done <-chan error) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			t.Fatalf("pause --until-unpaused returned before any unpause: %v", err)
		default:
		}
		resp, err := cl.ListOperations(context.Background(), &pb.ListOperationsRequest{})
		if err == nil {
			for _, op := range resp.GetOperations() {
				if op.GetState() == pb.OperationState_OPERATION_STATE_HOLDING {
					return op.GetOpId()
				}
			}
		}
		time.Sleep(20 * time.Millisecond) // polling the coordinator
	}
	t.Fatal("no op held within 30s")
	return ""
}

// pause --until-unpaused holds until unpause ends the hold: the op
// completes with its restore point (exit 0 for both); unpause --abort ends
// one ABORTED (exit 3 for both).
func TestPauseUntilUnpausedThenUnpause(t *testing.T) {
	c := startDevCluster(t, nil)
	addr := "--addr=" + c.APIAddr()
	cl, err := c.Client(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, abort := range []bool{false, true} {
		var out, progress string
		done := make(chan error, 1)
		go func() {
			var err error
			out, progress, err = runCLI3(t, "pause", "--cluster", "ledger", "--until-unpaused", addr)
			done <- err
		}()
		opID := heldOp(t, cl, done)
		show, _, err := runCLI3(t, "ops", "show", opID, addr)
		if err != nil || !strings.Contains(show, "Hold ends") || !strings.Contains(show, "until unpaused, at most 1h") {
			t.Fatalf("ops show of a held op: %v\n%s", err, show)
		}
		if !abort {
			// The scenario: the operator takes snapshots, then ends the hold.
			// Ended before the minimum the clocks require (2·ε + margin, which
			// grows with a loaded box's bounds), the op is rightly INVALID;
			// the subject here is the normal end, so outlast that minimum.
			got, err := cl.GetOperation(context.Background(), &pb.GetOperationRequest{OpId: opID})
			if err != nil {
				t.Fatal(err)
			}
			<-time.After(2*time.Duration(got.GetOperation().GetHoldNs()) + 500*time.Millisecond)
		}
		args := []string{"unpause", "--op", opID, "--reason", "snapshots taken", addr}
		if abort {
			args = append(args, "--abort")
		}
		uout, ustderr, uerr := runCLI3(t, args...)
		perr := <-done
		var ee exitError
		if !abort {
			if uerr != nil || !strings.Contains(uout, "completed") || !strings.Contains(uout, "Restore point") {
				t.Fatalf("unpause: %v %s\n%s", uerr, ustderr, uout)
			}
			if perr != nil || !strings.Contains(out, "State          completed") {
				t.Fatalf("pause --until-unpaused: %v\n%s\n%s", perr, out, progress)
			}
			if !strings.Contains(progress, "holding until") || !strings.Contains(progress, "at the latest") {
				t.Errorf("progress does not say when the hold ends:\n%s", progress)
			}
			continue
		}
		if !errors.As(uerr, &ee) || ee.code != exitNotCompleted || !strings.Contains(uout, "aborted") {
			t.Fatalf("unpause --abort: %v (want exit %d) %s\n%s", uerr, exitNotCompleted, ustderr, uout)
		}
		if !errors.As(perr, &ee) || ee.code != exitNotCompleted || !strings.Contains(out, "aborted") {
			t.Fatalf("pause --until-unpaused then --abort: %v (want exit %d)\n%s", perr, exitNotCompleted, out)
		}
	}
}

// pause --cluster ledger --cluster auditor: one operation, one restore
// point over both clusters' nodes.
func TestPauseTwoClusters(t *testing.T) {
	c := startDevCluster(t, nil)
	out, progress, err := runCLI3(t, "pause", "--cluster", "ledger", "--cluster", "auditor", "--addr", c.APIAddr())
	if err != nil {
		t.Fatalf("pause of two clusters: %v\n%s\n%s", err, out, progress)
	}
	for _, want := range []string{"State          completed", "Cluster        ledger, auditor (5 targets)", "auditor-2", "ledger-3", "Restore point"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	list, _, err := runCLI3(t, "ops", "list", "--cluster", "auditor", "--addr", c.APIAddr())
	if err != nil || !strings.Contains(list, "ledger,auditor") {
		t.Fatalf("ops list --cluster auditor: %v\n%s", err, list)
	}
}
