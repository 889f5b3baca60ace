package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap/zaptest"

	"github.com/stillpoint-dev/stillpoint/internal/hook"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// hookFixture is a hook runner over a real core (fencing, persisted
// epoch) with /bin/sh hooks in a temp dir.
type hookFixture struct {
	dir  string
	core *core
	r    *hookRunner
}

func newHookFixture(t *testing.T, defs []hook.Definition) *hookFixture {
	t.Helper()
	f := &hookFixture{dir: t.TempDir()}
	f.core = newTestCore(t, f.dir, &fakeAdmin{}, nil)
	f.r = newHookRunner("n1", defs, &hook.Executor{Stamp: f.core.stampNow, Label: "agent n1", KillGrace: 200 * time.Millisecond},
		f.core.fenceHook, zaptest.NewLogger(t), nil)
	f.r.ended, f.r.started = f.core.opEnded, f.core.hookStarted
	f.core.setOnEnded(f.r.endOp)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = f.r.shutdown(ctx)
	})
	return f
}

func shHook(name, script string, timeout time.Duration) hook.Definition {
	return hook.Definition{Name: name, Command: "/bin/sh", Args: []string{"-c", script}, Timeout: timeout}
}

func hookReq(op, step, name string, epoch uint64) *pb.RunHookRequest {
	return &pb.RunHookRequest{OpId: op, StepId: step, Hook: name, Epoch: epoch, Env: map[string]string{"STILLPOINT_PLAN": "nightly"}}
}

func (f *hookFixture) call(t *testing.T, req *pb.RunHookRequest, within time.Duration) (*pb.HookRun, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	resp, err := f.r.RunHook(ctx, req)
	return resp.GetRun(), err
}

// lines counts the lines of a file (how many times a hook ran).
func lines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestRunHookRunsWithAgentVariables(t *testing.T) {
	f := newHookFixture(t, []hook.Definition{{Name: "env", Command: "/usr/bin/env", Timeout: 10 * time.Second}})
	run, err := f.call(t, hookReq("op-1", "ledger-databases/0", "env", 3), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || run.GetStepId() != "ledger-databases/0" ||
		run.GetRef().GetAgent() != "n1" || run.GetRef().GetHook() != "env" {
		t.Fatalf("run = %v", run)
	}
	env := string(run.GetOutputTail())
	for _, kv := range []string{"STILLPOINT_OP_ID=op-1\n", "STILLPOINT_STEP_ID=ledger-databases/0\n", "STILLPOINT_HOOK=env\n",
		"STILLPOINT_NODE=n1\n", "STILLPOINT_PLAN=nightly\n"} {
		if !strings.Contains(env, kv) {
			t.Errorf("hook environment lacks %q:\n%s", kv, env)
		}
	}
	if run.GetStartedAt().GetEstimate().GetStatus() != pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
		t.Errorf("started_at not read under the agent's estimate: %v", run.GetStartedAt())
	}
}

func TestRunHookRefusals(t *testing.T) {
	f := newHookFixture(t, []hook.Definition{shHook("pg-dump", "true", time.Minute), shHook("snapshot", "true", time.Minute)})
	if _, err := f.call(t, hookReq("op-0", "s", "pg-dump", 5), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	mut := func(m func(*pb.RunHookRequest)) *pb.RunHookRequest {
		r := hookReq("op-1", "g/0", "pg-dump", 5)
		m(r)
		return r
	}
	cases := []struct {
		name string
		req  *pb.RunHookRequest
		err  error
		msg  string
	}{
		{"no op id", mut(func(r *pb.RunHookRequest) { r.OpId = "" }), ErrInvalidRequest, "op_id is required"},
		{"no step id", mut(func(r *pb.RunHookRequest) { r.StepId = "" }), ErrInvalidRequest, "step_id is required"},
		{"no hook", mut(func(r *pb.RunHookRequest) { r.Hook = "" }), ErrInvalidRequest, "hook is required (the name of a hook in the agent's config; it has pg-dump, snapshot)"},
		{"env outside STILLPOINT_", mut(func(r *pb.RunHookRequest) { r.Env["LD_PRELOAD"] = "/tmp/x.so" }), ErrInvalidRequest,
			`env "LD_PRELOAD": only variables named STILLPOINT_* may be passed to a hook`},
		{"op id contradicted", mut(func(r *pb.RunHookRequest) { r.Env["STILLPOINT_OP_ID"] = "other" }), ErrInvalidRequest,
			`env STILLPOINT_OP_ID="other" contradicts the request ("op-1")`},
		{"unknown hook", mut(func(r *pb.RunHookRequest) { r.Hook = "rm-rf" }), ErrNoSuchHook,
			`agent n1 has no hook named "rm-rf" (it has pg-dump, snapshot)`},
		{"stale epoch", mut(func(r *pb.RunHookRequest) { r.Epoch = 4 }), ErrStaleEpoch,
			"carries epoch 4, lower than the highest epoch seen 5"},
		{"another hook under a taken step", hookReq("op-0", "s", "snapshot", 5), ErrStepTaken,
			`op op-0 step s already ran hook "pg-dump"; refusing hook "snapshot" under the same step`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.call(t, tc.req, 10*time.Second)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("error %v, want %v containing %q", err, tc.err, tc.msg)
			}
		})
	}
}

// TestRunHookRaisesMaxEpoch: a newer epoch on RunHook is persisted like on
// any other call, fencing the older leader's later requests (also after a
// restart).
func TestRunHookRaisesMaxEpoch(t *testing.T) {
	f := newHookFixture(t, []hook.Definition{shHook("snap", "true", time.Minute)})
	if _, err := f.call(t, hookReq("op-1", "s", "snap", 9), 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := f.core.Pause(context.Background(), pauseReq("old-leader", 8, 10_000)); !errors.Is(err, ErrStaleEpoch) {
		t.Fatalf("pause at epoch 8 after a hook at 9: %v, want ErrStaleEpoch", err)
	}
	restarted := newTestCore(t, f.dir, &fakeAdmin{}, nil)
	if got := restarted.snapshot(false).maxEpoch; got != 9 {
		t.Fatalf("max epoch after restart %d, want 9", got)
	}
}

// TestRunHookAtMostOnce: a repeated call attaches to the running hook (a
// call whose deadline passes first gets RUNNING and the hook keeps
// running), then returns the ended run; the hook ran once.
func TestRunHookAtMostOnce(t *testing.T) {
	dir := t.TempDir()
	count, gate := filepath.Join(dir, "count"), filepath.Join(dir, "go")
	script := "echo ran >> " + count + "; while [ ! -e " + gate + " ]; do sleep 0.01; done; echo done"
	f := newHookFixture(t, []hook.Definition{shHook("snap", script, time.Minute)})

	run, err := f.call(t, hookReq("op-1", "g/0", "snap", 1), 300*time.Millisecond)
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	if run.GetState() != pb.HookState_HOOK_STATE_RUNNING || run.GetStartedAt() == nil || run.GetStepId() != "g/0" {
		t.Fatalf("first call past its deadline: %v, want RUNNING with started_at", run)
	}
	// The call's context is gone; the hook is not.
	run, err = f.call(t, hookReq("op-1", "g/0", "snap", 1), 300*time.Millisecond)
	if err != nil || run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("second call: %v %v, want RUNNING", run.GetState(), err)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	run, err = f.call(t, hookReq("op-1", "g/0", "snap", 1), 30*time.Second)
	if err != nil || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || string(run.GetOutputTail()) != "done\n" {
		t.Fatalf("attached call: %v %v", run, err)
	}
	again, err := f.call(t, hookReq("op-1", "g/0", "snap", 1), 30*time.Second)
	if err != nil || again.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED ||
		again.GetEndedAt().GetLocalTime().AsTime() != run.GetEndedAt().GetLocalTime().AsTime() {
		t.Fatalf("repeated call after the end: %v %v, want the same ended run", again, err)
	}
	if n := lines(t, count); n != 1 {
		t.Fatalf("hook ran %d times, want 1", n)
	}
	// Another step of the same op is another run.
	if run, err := f.call(t, hookReq("op-1", "g/1", "snap", 1), 30*time.Second); err != nil || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("second step: %v %v", run, err)
	}
	if n := lines(t, count); n != 2 {
		t.Fatalf("hook ran %d times after a second step, want 2", n)
	}
}

// TestRunHookForgetsOldOps: ended runs of only the last maxOps ops are
// kept; an op whose hook still runs is never forgotten.
func TestRunHookForgetsOldOps(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	gate := filepath.Join(dir, "go")
	f := newHookFixture(t, []hook.Definition{
		shHook("snap", "echo $STILLPOINT_OP_ID >> "+count, time.Minute),
		shHook("slow", "while [ ! -e "+gate+" ]; do sleep 0.01; done", time.Minute),
	})
	f.r.maxOps = 2
	if run, _ := f.call(t, hookReq("op-slow", "s", "slow", 1), 200*time.Millisecond); run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("slow hook: %v", run)
	}
	for _, op := range []string{"op-a", "op-b", "op-c"} {
		if run, err := f.call(t, hookReq(op, "s", "snap", 1), 30*time.Second); err != nil || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
			t.Fatalf("%s: %v %v", op, run, err)
		}
	}
	if _, ok := f.r.run("op-slow", "s"); !ok {
		t.Fatal("the op with a running hook was forgotten")
	}
	if _, ok := f.r.run("op-a", "s"); ok {
		t.Fatal("op-a still remembered with maxOps 2")
	}
	if _, ok := f.r.run("op-c", "s"); !ok {
		t.Fatal("op-c, the newest, forgotten")
	}
	_, _ = f.call(t, hookReq("op-c", "s", "snap", 1), 30*time.Second)
	if n := lines(t, count); n != 3 {
		t.Fatalf("hook ran %d times, want 3 (op-c's step remembered)", n)
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestRunHookShutdownKillsRunningHooks: the agent stopping kills a running
// hook's process group; the run ends FAILED saying why; new calls are
// refused.
func TestRunHookShutdownKillsRunningHooks(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	f := newHookFixture(t, []hook.Definition{shHook("snap", "sleep 600 & echo $! > "+pidFile+"; wait", time.Hour)})
	if run, _ := f.call(t, hookReq("op-1", "s", "snap", 1), 300*time.Millisecond); run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("run: %v", run)
	}
	var pid int
	waitFor(t, 30*time.Second, "the hook's child pid", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil || !strings.HasSuffix(string(b), "\n") {
			return false
		}
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return true
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.r.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	run, ok := f.r.run("op-1", "s")
	if !ok || run.GetState() != pb.HookState_HOOK_STATE_FAILED || !strings.Contains(run.GetMessage(), "(process group killed): agent n1 stopping") {
		t.Fatalf("run after shutdown: %v", run)
	}
	waitFor(t, 10*time.Second, "the hook's child to die", func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		i := strings.LastIndexByte(string(b), ')')
		return i > 0 && i+2 < len(b) && (b[i+2] == 'Z' || b[i+2] == 'X')
	})
	if _, err := f.call(t, hookReq("op-2", "s", "snap", 1), 10*time.Second); !errors.Is(err, ErrStopping) {
		t.Fatalf("call after shutdown: %v, want ErrStopping", err)
	}
}

func TestHookMetrics(t *testing.T) {
	a := &Agent{cfg: validConfig()}
	a.cfg.Hooks = []hook.Definition{shHook("snap", "true", time.Minute)}
	m := newMetrics(a)
	reg := prometheus.NewRegistry() // the hook series only (the rest read a started agent)
	reg.MustRegister(m.hookRuns)
	// value is the hook run counter's value for (hook, state), -1 if absent.
	value := func(name, state string) float64 {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() != MetricHookRuns {
				continue
			}
			for _, mt := range f.GetMetric() {
				l := map[string]string{}
				for _, lp := range mt.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				if l["hook"] == name && l["state"] == state && l["node"] == "ledger-1" {
					return mt.GetCounter().GetValue()
				}
			}
		}
		return -1
	}
	if got := value("snap", "timed_out"); got != 0 {
		t.Fatalf("timed_out series %v before any run, want 0 (present)", got)
	}
	m.observeHook("snap", &pb.HookRun{State: pb.HookState_HOOK_STATE_FAILED, DurationNs: int64(2 * time.Second)})
	if got := value("snap", "failed"); got != 1 {
		t.Fatalf("failed runs %v, want 1", got)
	}
}

// TestRunHookRefusesDuringHookAfterItsOpEnded: a RunHook for a during
// group of an op this agent has already unpaused (it arrived late: the
// leader ended the hold, by unpause --op or the maximum hold, while the
// call was in flight) must not start the hook on the running node; after
// and delete hooks of the ended op still run.
func TestRunHookRefusesDuringHookAfterItsOpEnded(t *testing.T) {
	f := newHookFixture(t, []hook.Definition{shHook("snap", `echo x >> "$OUT"`, time.Minute)})
	out := filepath.Join(f.dir, "ran")
	f.r.defs["snap"] = hook.Definition{Name: "snap", Command: "/bin/sh", Args: []string{"-c", `echo x >> "` + out + `"`}, Timeout: time.Minute}
	if _, err := f.core.Pause(context.Background(), pauseReq("op-1", 3, 10_000)); err != nil {
		t.Fatal(err)
	}
	req := func(step, group string) *pb.RunHookRequest {
		r := hookReq("op-1", step, "snap", 3)
		r.Env["STILLPOINT_HOOK_GROUP"] = group
		return r
	}
	if run, err := f.call(t, req("ledger/0", "ledger"), 10*time.Second); err != nil || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("during hook while paused: %v, %v", run, err)
	}
	if _, err := f.core.Unpause(context.Background(), &pb.UnpauseRequest{OpId: "op-1", Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	_, err := f.call(t, req("ledger/1", "ledger"), 10*time.Second)
	if !errors.Is(err, ErrOpEnded) || !strings.Contains(err.Error(), "op op-1 ended on agent n1") {
		t.Fatalf("during hook after the op ended: %v, want ErrOpEnded", err)
	}
	if n := lines(t, out); n != 1 {
		t.Fatalf("hook ran %d times, want 1 (the late during hook must not start)", n)
	}
	// The step that ran before the end is still returned.
	if run, err := f.call(t, req("ledger/0", "ledger"), 10*time.Second); err != nil || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("ended step asked again: %v, %v", run, err)
	}
	for _, g := range []string{"after", "delete"} {
		if run, err := f.call(t, req(g+"/0", g), 10*time.Second); err != nil || run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
			t.Fatalf("%s hook of the ended op: %v, %v", g, run, err)
		}
	}
	if n := lines(t, out); n != 3 {
		t.Fatalf("hook ran %d times, want 3", n)
	}
}

// TestRunHookNotRunAgainAfterRestart: a step that started before the
// agent restarted (its hook killed at shutdown) is not started again when
// a leader asks for it once more with the same step id: the agent
// remembers the steps it started in its state file.
func TestRunHookNotRunAgainAfterRestart(t *testing.T) {
	f := newHookFixture(t, nil)
	out := filepath.Join(f.dir, "ran")
	def := hook.Definition{Name: "snap", Command: "/bin/sh", Args: []string{"-c", `echo x >> "` + out + `"; sleep 600`}, Timeout: time.Hour}
	f.r.defs["snap"] = def
	if run, _ := f.call(t, hookReq("op-1", "ledger/0", "snap", 1), 300*time.Millisecond); run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("run: %v", run)
	}
	waitFor(t, 30*time.Second, "the hook to start", func() bool { return lines(t, out) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.r.shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Restart: a new core over the same state dir, a new hook runner.
	restarted := newTestCore(t, f.dir, &fakeAdmin{}, nil)
	r := newHookRunner("n1", []hook.Definition{def}, &hook.Executor{Stamp: restarted.stampNow, Label: "agent n1", KillGrace: 200 * time.Millisecond},
		restarted.fenceHook, zaptest.NewLogger(t), nil)
	r.ended, r.started = restarted.opEnded, restarted.hookStarted
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = r.shutdown(ctx)
	})
	cctx, ccancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer ccancel()
	_, err := r.RunHook(cctx, hookReq("op-1", "ledger/0", "snap", 1))
	if !errors.Is(err, ErrStepTaken) || !strings.Contains(err.Error(), "started before agent n1 restarted") {
		t.Fatalf("step asked again after a restart: %v, want ErrStepTaken", err)
	}
	if n := lines(t, out); n != 1 {
		t.Fatalf("hook ran %d times, want once", n)
	}
	// Another step of the op still runs.
	if _, err := r.RunHook(cctx, hookReq("op-1", "ledger/1", "snap", 1)); err != nil {
		t.Fatal(err)
	}
	// A delete hook is not remembered: a new leader asks again from its
	// first attempt's step id, and a delete may run again.
	del := hookReq("op-1", "retention-delete.1", "snap", 1)
	del.Env["STILLPOINT_HOOK_GROUP"] = "delete"
	if _, err := r.RunHook(cctx, del); err != nil {
		t.Fatal(err)
	}
	if got := restarted.snapshot(false); got.maxEpoch != 1 {
		t.Fatalf("max epoch %d", got.maxEpoch)
	}
	for _, h := range restarted.p.HookSteps {
		if h.StepID == "retention-delete.1" {
			t.Fatalf("delete step remembered: %v", restarted.p.HookSteps)
		}
	}
}

// TestDuringHookKilledWhenItsOpEnds: a during hook still running when its
// op ends on this agent (unpause --op, the maximum hold, an expired lease)
// is killed: it must not go on running against a node that is no longer
// held (the leader has already recorded it failed).
func TestDuringHookKilledWhenItsOpEnds(t *testing.T) {
	f := newHookFixture(t, []hook.Definition{shHook("snap", "sleep 600", time.Hour)})
	if _, err := f.core.Pause(context.Background(), pauseReq("op-1", 3, 10_000)); err != nil {
		t.Fatal(err)
	}
	req := hookReq("op-1", "ledger/0", "snap", 3)
	req.Env["STILLPOINT_HOOK_GROUP"] = "ledger"
	if run, _ := f.call(t, req, 300*time.Millisecond); run.GetState() != pb.HookState_HOOK_STATE_RUNNING {
		t.Fatalf("run: %v", run)
	}
	if _, err := f.core.Unpause(context.Background(), &pb.UnpauseRequest{OpId: "op-1", Epoch: 3}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the during hook to be killed", func() bool {
		run, ok := f.r.run("op-1", "ledger/0")
		return ok && run.GetState() == pb.HookState_HOOK_STATE_FAILED
	})
	run, _ := f.r.run("op-1", "ledger/0")
	if !strings.Contains(run.GetMessage(), "op op-1 ended on agent n1") {
		t.Fatalf("killed run: %v", run)
	}
}
