package agent_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/stillpoint-dev/stillpoint/agent"
	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// TestRunHookOverGRPC: a real agent serves RunHook for the hooks of its
// config (listed in Status), with gRPC codes for the refusals.
func TestRunHookOverGRPC(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	cfg := testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil)
	cfg.Hooks = []hook.Definition{
		{Name: "snapshot", Command: "/bin/sh", Args: []string{"-c", `echo "snapshot of $STILLPOINT_OP_ID"`}, Timeout: 30 * time.Second},
		{Name: "pg-dump", Command: "/bin/sh", Args: []string{"-c", "echo dump failed >&2; exit 3"}, Timeout: 30 * time.Second},
	}
	a := startAgent(t, cfg)
	waitSynchronized(t, a)
	c := client(t, a)

	st, err := c.Status(rpcCtx(t), &pb.StatusRequest{})
	if err != nil || strings.Join(st.GetState().GetHooks(), ",") != "snapshot,pg-dump" {
		t.Fatalf("status hooks = %v, %v", st.GetState().GetHooks(), err)
	}
	resp, err := c.RunHook(rpcCtx(t), &pb.RunHookRequest{OpId: "op-7", Epoch: 2, Hook: "snapshot", StepId: "ledger-databases/0",
		Env: map[string]string{"STILLPOINT_PLAN": "nightly"}})
	if err != nil {
		t.Fatal(err)
	}
	run := resp.GetRun()
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || string(run.GetOutputTail()) != "snapshot of op-7\n" ||
		run.GetStartedAt().GetEstimate().GetStatus() != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
		t.Fatalf("run = %v", run)
	}
	resp, err = c.RunHook(rpcCtx(t), &pb.RunHookRequest{OpId: "op-7", Epoch: 2, Hook: "pg-dump", StepId: "ledger-databases/1"})
	if err != nil || resp.GetRun().GetState() != pb.HookState_HOOK_STATE_FAILED || resp.GetRun().GetExitCode() != 3 ||
		resp.GetRun().GetMessage() != `agent n1: hook "pg-dump" exited 3: dump failed` {
		t.Fatalf("failing hook = %v, %v", resp.GetRun(), err)
	}

	for _, tc := range []struct {
		name   string
		req    *pb.RunHookRequest
		code   codes.Code
		reason string
		msg    string
	}{
		{"unknown hook", &pb.RunHookRequest{OpId: "op-7", Epoch: 2, Hook: "rm", StepId: "x"}, codes.NotFound, agent.ReasonNoSuchHook,
			`agent n1 has no hook named "rm" (it has snapshot, pg-dump)`},
		{"stale epoch", &pb.RunHookRequest{OpId: "op-7", Epoch: 1, Hook: "snapshot", StepId: "y"}, codes.FailedPrecondition, agent.ReasonStaleEpoch,
			"lower than the highest epoch seen 2"},
		{"foreign env", &pb.RunHookRequest{OpId: "op-7", Epoch: 2, Hook: "snapshot", StepId: "z", Env: map[string]string{"PATH": "/tmp"}},
			codes.InvalidArgument, agent.ReasonInvalid, `env "PATH": only variables named STILLPOINT_*`},
		{"step taken by another hook", &pb.RunHookRequest{OpId: "op-7", Epoch: 2, Hook: "pg-dump", StepId: "ledger-databases/0"},
			codes.AlreadyExists, agent.ReasonStepTaken, `already ran hook "snapshot"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.RunHook(rpcCtx(t), tc.req)
			if status.Code(err) != tc.code || agent.ReasonOf(err) != tc.reason || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v (reason %q), want %v %s containing %q", err, agent.ReasonOf(err), tc.code, tc.reason, tc.msg)
			}
		})
	}
}

// TestRunHookCallDeadlineLeavesHookRunning: a call whose deadline passes
// gets RUNNING (not DEADLINE_EXCEEDED), and the hook runs on; a later call
// returns its end.
func TestRunHookCallDeadlineLeavesHookRunning(t *testing.T) {
	ntp := startNTP(t, 3)
	sim := startSim(t, "n1", nil)
	dir := t.TempDir()
	cfg := testConfig("n1", sim.Addr(), t.TempDir(), ntp, nil)
	cfg.Hooks = []hook.Definition{{Name: "wait", Command: "/bin/sh", Args: []string{"-c", "while [ ! -e " + dir + "/go ]; do sleep 0.01; done; echo finished"}, Timeout: time.Minute}}
	a := startAgent(t, cfg)
	c := client(t, a)
	req := &pb.RunHookRequest{OpId: "op-1", Epoch: 1, Hook: "wait", StepId: "g/0"}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	resp, err := c.RunHook(ctx, req)
	cancel()
	if err != nil || resp.GetRun().GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("call past its deadline = %v, %v; want RUNNING", resp.GetRun(), err)
	}
	touch(t, dir+"/go")
	resp, err = c.RunHook(rpcCtx(t), req)
	if err != nil || resp.GetRun().GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || string(resp.GetRun().GetOutputTail()) != "finished\n" {
		t.Fatalf("later call = %v, %v", resp.GetRun(), err)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}
