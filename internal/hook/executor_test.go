package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// The tests run real processes: /bin/sh scripts written to t.TempDir.

func sh(name, script string, timeout time.Duration) Definition {
	return Definition{Name: name, Command: "/bin/sh", Args: []string{"-c", script}, Timeout: timeout}
}

func testExecutor() *Executor {
	return &Executor{KillGrace: 300 * time.Millisecond}
}

func TestRunExitCodes(t *testing.T) {
	cases := []struct {
		name   string
		script string
		state  pb.HookState
		code   int32
		msg    string
	}{
		{"success", "echo done", pb.HookState_HOOK_STATE_SUCCEEDED, 0, ""},
		{"exit 2", "exit 2", pb.HookState_HOOK_STATE_FAILED, 2, `hook "pg-dump" exited 2`},
		{"exit with output", "echo starting; echo 'pg_dump: error: connection refused' >&2; exit 1",
			pb.HookState_HOOK_STATE_FAILED, 1, `hook "pg-dump" exited 1: pg_dump: error: connection refused`},
		{"killed by a signal", "kill -KILL $$", pb.HookState_HOOK_STATE_FAILED, -1, `hook "pg-dump" killed by signal 9 (killed)`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			run := testExecutor().Run(context.Background(), sh("pg-dump", tc.script, 10*time.Second), nil)
			if run.GetState() != tc.state || run.GetExitCode() != tc.code || run.GetMessage() != tc.msg {
				t.Fatalf("run = %v exit %d %q, want %v exit %d %q", run.GetState(), run.GetExitCode(), run.GetMessage(), tc.state, tc.code, tc.msg)
			}
		})
	}
}

func TestRunLabelAndNotFound(t *testing.T) {
	e := testExecutor()
	e.Label = "agent ledger-1"
	run := e.Run(context.Background(), Definition{Name: "x", Command: "nosuch-stillpoint-hook", Timeout: time.Second}, nil)
	want := `agent ledger-1: hook "x": exec: "nosuch-stillpoint-hook": executable file not found in $PATH`
	if run.GetState() != pb.HookState_HOOK_STATE_FAILED || run.GetMessage() != want || run.GetExitCode() != -1 {
		t.Fatalf("run = %v exit %d %q, want FAILED exit -1 %q", run.GetState(), run.GetExitCode(), run.GetMessage(), want)
	}
	if run.GetStartedAt() == nil || run.GetEndedAt() == nil {
		t.Fatalf("a run that could not start still has start and end times: %v", run)
	}
}

// TestLookPathUsesHookPath: a bare command name is looked up on the PATH
// the hook gets (its definition's env may set one), not the runner's.
func TestLookPathUsesHookPath(t *testing.T) {
	dir := t.TempDir()
	script := filepath.Join(dir, "my-backup")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho from-my-path\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	def := Definition{Name: "b", Command: "my-backup", Timeout: 10 * time.Second, Env: map[string]string{"PATH": dir + ":/usr/bin:/bin"}}
	run := testExecutor().Run(context.Background(), def, nil)
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || string(run.GetOutputTail()) != "from-my-path\n" {
		t.Fatalf("run = %v %q output %q", run.GetState(), run.GetMessage(), run.GetOutputTail())
	}
	def.Env["PATH"] = "relative/dir:" + "/usr/bin"
	if run := testExecutor().Run(context.Background(), def, nil); run.GetState() != pb.HookState_HOOK_STATE_FAILED {
		t.Fatalf("not on PATH: %v %q", run.GetState(), run.GetMessage())
	}
}

// waitFile waits until path holds a line (a pid a script wrote), or the
// process ends first.
func waitPid(t *testing.T, path string, p *Process) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(path); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil {
				t.Fatalf("pid file %s: %v", path, err)
			}
			return pid
		}
		select {
		case <-p.Done():
			t.Fatalf("hook ended before writing %s: %v", path, p.Result())
		case <-time.After(5 * time.Millisecond):
		}
	}
	t.Fatalf("no pid in %s after 30s", path)
	return 0
}

// alive reports whether pid is a live process (not gone, not a zombie).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || (b[i+2] != 'Z' && b[i+2] != 'X')
}

// waitGone waits until pid is dead (a killed process dies asynchronously).
func waitGone(t *testing.T, pid int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("%s (pid %d) still alive 10s after the hook ended", what, pid)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestTimeoutKillsProcessGroup: at its timeout the hook's whole process
// group dies, including a grandchild; one that ignores SIGTERM gets
// SIGKILL after the grace.
func TestTimeoutKillsProcessGroup(t *testing.T) {
	for _, ignoreTerm := range []bool{false, true} {
		t.Run(fmt.Sprintf("ignore SIGTERM=%v", ignoreTerm), func(t *testing.T) {
			dir := t.TempDir()
			pidFile := filepath.Join(dir, "grandchild.pid")
			trap := ""
			if ignoreTerm {
				trap = "trap '' TERM; "
			}
			// The grandchild is a background sleep; the hook waits on it.
			script := trap + "sleep 600 & echo $! > " + pidFile + "; wait"
			const timeout = 2 * time.Second
			e := testExecutor()
			p := e.Start(context.Background(), sh("pg-dump", script, timeout), nil)
			grandchild := waitPid(t, pidFile, p)
			if !alive(grandchild) {
				t.Fatalf("grandchild %d not running before the timeout", grandchild)
			}
			<-p.Done()
			run := p.Result()
			want := `hook "pg-dump" timed out after 2s (process group killed)`
			if run.GetState() != pb.HookState_HOOK_STATE_TIMED_OUT || run.GetMessage() != want {
				t.Fatalf("run = %v %q, want TIMED_OUT %q", run.GetState(), run.GetMessage(), want)
			}
			d := time.Duration(run.GetDurationNs())
			if d < timeout {
				t.Errorf("duration %s shorter than the timeout %s", d, timeout)
			}
			if ignoreTerm && d < timeout+e.KillGrace {
				t.Errorf("duration %s: a hook ignoring SIGTERM should live through the grace (%s + %s)", d, timeout, e.KillGrace)
			}
			waitGone(t, grandchild, "grandchild")
		})
	}
}

// TestCancelKillsProcessGroup: ctx ending (agent shutdown) kills the
// group; the run is FAILED, saying it was cancelled.
func TestCancelKillsProcessGroup(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "grandchild.pid")
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	p := testExecutor().Start(ctx, sh("snap", "sleep 600 & echo $! > "+pidFile+"; wait", time.Hour), nil)
	grandchild := waitPid(t, pidFile, p)
	if got := p.Result(); got.GetState() != pb.HookState_HOOK_STATE_RUNNING || got.GetStartedAt() == nil {
		t.Fatalf("while running: %v", got)
	}
	cancel(errors.New("agent ledger-1 stopping"))
	<-p.Done()
	run := p.Result()
	if run.GetState() != pb.HookState_HOOK_STATE_FAILED ||
		!strings.HasPrefix(run.GetMessage(), `hook "snap" cancelled after `) ||
		!strings.HasSuffix(run.GetMessage(), "(process group killed): agent ledger-1 stopping") {
		t.Fatalf("run = %v %q", run.GetState(), run.GetMessage())
	}
	waitGone(t, grandchild, "grandchild")

	// A context already ended: nothing starts.
	run = testExecutor().Run(ctx, sh("snap", "touch "+filepath.Join(dir, "ran"), time.Hour), nil)
	if run.GetState() != pb.HookState_HOOK_STATE_FAILED || !strings.Contains(run.GetMessage(), "not started") {
		t.Fatalf("run under an ended context = %v %q", run.GetState(), run.GetMessage())
	}
	if _, err := os.Stat(filepath.Join(dir, "ran")); err == nil {
		t.Fatal("the hook ran under an ended context")
	}
}

// TestLeftoverProcessesKilled: a hook that exits leaving a background
// child in its group: the child is killed and the message says so.
func TestLeftoverProcessesKilled(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	run := testExecutor().Run(context.Background(), sh("snap", "sleep 600 & echo $! > "+pidFile, 30*time.Second), nil)
	want := `hook "snap" succeeded; it left processes running in its process group, killed`
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED || run.GetMessage() != want {
		t.Fatalf("run = %v %q, want SUCCEEDED %q", run.GetState(), run.GetMessage(), want)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	waitGone(t, pid, "background child")
}

// TestOutputKeepsLast64KiB: of 1 MiB written, exactly the last 64 KiB are
// kept and the run says earlier output was dropped.
func TestOutputKeepsLast64KiB(t *testing.T) {
	dir := t.TempDir()
	var big bytes.Buffer
	for i := 0; big.Len() < 1<<20; i++ {
		fmt.Fprintf(&big, "line %07d of the dump progress\n", i)
	}
	data := big.Bytes()[:1<<20]
	file := filepath.Join(dir, "big")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	run := testExecutor().Run(context.Background(), Definition{Name: "cat", Command: "/bin/cat", Args: []string{file}, Timeout: 30 * time.Second}, nil)
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("run = %v %q", run.GetState(), run.GetMessage())
	}
	if len(run.GetOutputTail()) != OutputTailBytes || !bytes.Equal(run.GetOutputTail(), data[len(data)-OutputTailBytes:]) {
		t.Fatalf("output tail: %d bytes, equal to the last 64 KiB: %v", len(run.GetOutputTail()), bytes.Equal(run.GetOutputTail(), data[len(data)-OutputTailBytes:]))
	}
	if !run.GetOutputTruncated() {
		t.Fatal("output_truncated not set after 1 MiB")
	}

	// Exactly the limit: kept whole, not truncated. Under it: as written.
	exact := filepath.Join(dir, "exact")
	if err := os.WriteFile(exact, data[:OutputTailBytes], 0o600); err != nil {
		t.Fatal(err)
	}
	run = testExecutor().Run(context.Background(), Definition{Name: "cat", Command: "/bin/cat", Args: []string{exact}, Timeout: 30 * time.Second}, nil)
	if !bytes.Equal(run.GetOutputTail(), data[:OutputTailBytes]) || run.GetOutputTruncated() {
		t.Fatalf("64 KiB exactly: %d bytes kept, truncated %v", len(run.GetOutputTail()), run.GetOutputTruncated())
	}
}

// TestOutputInterleaved: stdout and stderr share one pipe, in write order.
func TestOutputInterleaved(t *testing.T) {
	run := testExecutor().Run(context.Background(), sh("x", "echo one; echo two >&2; echo three", 10*time.Second), nil)
	if got := string(run.GetOutputTail()); got != "one\ntwo\nthree\n" || run.GetOutputTruncated() {
		t.Fatalf("output %q truncated %v", got, run.GetOutputTruncated())
	}
}

func TestTailWrites(t *testing.T) {
	var all []byte
	tl := newTail(10)
	for i, chunk := range []string{"abc", "defghij", "k", "lmnopqrstuvwxyz0123", "45"} {
		_, _ = tl.Write([]byte(chunk))
		all = append(all, chunk...)
		got, trunc := tl.snapshot()
		want := all
		if len(want) > 10 {
			want = want[len(want)-10:]
		}
		if string(got) != string(want) || trunc != (len(all) > 10) {
			t.Fatalf("after write %d: %q truncated %v, want %q %v", i, got, trunc, want, len(all) > 10)
		}
	}
}

// TestEnvironment: the hook sees the minimal base, its definition's env
// and the caller's STILLPOINT_* variables, and nothing else of the
// runner's environment.
func TestEnvironment(t *testing.T) {
	runner := map[string]string{
		"PATH": "/usr/bin:/bin", "HOME": "/var/lib/stillpoint", "LANG": "C.UTF-8",
		"AWS_SECRET_ACCESS_KEY":            "runner-secret",
		"STILLPOINT_GOSSIP_ENCRYPTION_KEY": "c2VjcmV0",
		"PGHOST":                           "from-runner",
	}
	e := testExecutor()
	e.LookupEnv = func(k string) (string, bool) { v, ok := runner[k]; return v, ok }
	def := Definition{Name: "env", Command: "/usr/bin/env", Timeout: 10 * time.Second,
		Env: map[string]string{"PGHOST": "db.internal", "PGUSER": "backup"}}
	run := e.Run(context.Background(), def, map[string]string{"STILLPOINT_OP_ID": "op-42", "STILLPOINT_PLAN": "nightly"})
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("run = %v %q", run.GetState(), run.GetMessage())
	}
	got := strings.Split(strings.TrimSpace(string(run.GetOutputTail())), "\n")
	sort.Strings(got)
	want := []string{"HOME=/var/lib/stillpoint", "LANG=C.UTF-8", "PATH=/usr/bin:/bin", "PGHOST=db.internal", "PGUSER=backup",
		"STILLPOINT_OP_ID=op-42", "STILLPOINT_PLAN=nightly"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("environment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// No PATH at all: the default.
	e.LookupEnv = func(string) (string, bool) { return "", false }
	run = e.Run(context.Background(), def, nil)
	if !strings.Contains(string(run.GetOutputTail()), "PATH="+DefaultPath+"\n") {
		t.Fatalf("without PATH: %q", run.GetOutputTail())
	}

	// A caller's variable outside STILLPOINT_*: refused, nothing runs.
	marker := filepath.Join(t.TempDir(), "ran")
	run = e.Run(context.Background(), sh("x", "touch "+marker, 10*time.Second), map[string]string{"STILLPOINT_OP_ID": "op", "LD_PRELOAD": "/tmp/evil.so"})
	if run.GetState() != pb.HookState_HOOK_STATE_FAILED || !strings.Contains(run.GetMessage(), `env "LD_PRELOAD": only variables named STILLPOINT_* may be passed`) {
		t.Fatalf("LD_PRELOAD from the caller: %v %q", run.GetState(), run.GetMessage())
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the hook ran with a refused variable")
	}
}

func TestWorkingDir(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := testExecutor().Run(context.Background(), Definition{Name: "pwd", Command: "/bin/sh", Args: []string{"-c", "pwd -P"}, Dir: dir, Timeout: 10 * time.Second}, nil)
	if got := strings.TrimSpace(string(run.GetOutputTail())); got != dir {
		t.Fatalf("working dir %q, want %q (%v %q)", got, dir, run.GetState(), run.GetMessage())
	}
	missing := filepath.Join(dir, "missing")
	run = testExecutor().Run(context.Background(), Definition{Name: "pwd", Command: "/bin/pwd", Dir: missing, Timeout: 10 * time.Second}, nil)
	if run.GetState() != pb.HookState_HOOK_STATE_FAILED || run.GetMessage() != (`hook "pwd": working directory: stat `+missing+`: no such file or directory`) {
		t.Fatalf("missing dir: %v %q", run.GetState(), run.GetMessage())
	}
}

// TestTimesFromStamp: start and end are read through the caller's stamp
// (with its estimate), the duration on the monotonic clock.
func TestTimesFromStamp(t *testing.T) {
	var calls atomic.Int64
	base := time.Date(2026, 12, 2, 3, 0, 0, 0, time.UTC)
	e := testExecutor()
	e.Stamp = func() *pb.StampedTime {
		n := calls.Add(1)
		return &pb.StampedTime{LocalTime: timestamppb.New(base.Add(time.Duration(n) * time.Second)),
			Estimate: &pb.ClockEstimate{OffsetNs: 7, Status: pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED}}
	}
	run := e.Run(context.Background(), sh("x", "sleep 0.05", 10*time.Second), nil)
	if run.GetState() != pb.HookState_HOOK_STATE_SUCCEEDED {
		t.Fatalf("run = %v %q", run.GetState(), run.GetMessage())
	}
	s, en := run.GetStartedAt(), run.GetEndedAt()
	if s.GetEstimate().GetOffsetNs() != 7 || en.GetEstimate().GetOffsetNs() != 7 {
		t.Fatalf("times lost their estimate: %v %v", s, en)
	}
	if !en.GetLocalTime().AsTime().After(s.GetLocalTime().AsTime()) {
		t.Fatalf("ended %v not after started %v", en.GetLocalTime().AsTime(), s.GetLocalTime().AsTime())
	}
	if d := time.Duration(run.GetDurationNs()); d < 50*time.Millisecond || d > 10*time.Second {
		t.Fatalf("duration %s, want the monotonic ~50ms (not the stamps' %s)", d, en.GetLocalTime().AsTime().Sub(s.GetLocalTime().AsTime()))
	}
}
