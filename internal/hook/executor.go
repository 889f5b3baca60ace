package hook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// DefaultKillGrace is how long a hook's process group has between SIGTERM
// and SIGKILL when it times out or is cancelled.
const DefaultKillGrace = 5 * time.Second

// drainTimeout bounds reading the rest of a hook's output after its
// process group is gone: a process that left the group (setsid) may still
// hold the pipe open.
const drainTimeout = 2 * time.Second

// Executor runs hooks. The zero value works (system clock, no estimate,
// 5 s grace, 64 KiB of output).
//
// A hook is run directly (no shell) with:
//   - the working directory Definition.Dir (empty: the runner's own);
//   - the environment built by Environ: a minimal base (PATH, HOME, USER,
//     LOGNAME, LANG, LC_ALL, TZ, TMPDIR of the runner), Definition.Env, then
//     the caller's STILLPOINT_* variables; nothing else of the runner's
//     environment (its own STILLPOINT_* settings may hold secrets);
//   - stdin from /dev/null, stdout and stderr into one pipe (interleaved as
//     written), of which the last OutputLimit bytes are kept;
//   - its own process group: at its timeout, or when ctx ends, the whole
//     group gets SIGTERM, then SIGKILL after KillGrace. When the hook's
//     process exits, whatever it left running in its group is killed (and
//     the message says so).
type Executor struct {
	// Stamp reads the current wall time with the clock estimate in force
	// (an agent passes its sampler's reading). Nil: the system clock with
	// no estimate.
	Stamp func() *pb.StampedTime
	// Label names the runner at the start of every message, e.g.
	// "agent ledger-1"; empty: messages start with `hook "name"`.
	Label string
	// KillGrace is the wait between SIGTERM and SIGKILL (default
	// DefaultKillGrace).
	KillGrace time.Duration
	// OutputLimit is how many bytes of output are kept (default
	// OutputTailBytes).
	OutputLimit int
	// LookupEnv reads the runner's environment for the base variables
	// (default os.LookupEnv).
	LookupEnv func(string) (string, bool)
}

// Process is one hook run, started by Executor.Start.
type Process struct {
	e       *Executor
	def     Definition
	out     *tail
	started *pb.StampedTime
	mono    time.Time
	done    chan struct{}

	mu  sync.Mutex
	res *pb.HookRun // set once done
}

// Run runs def to its end (exit, timeout or ctx ending) and returns the
// run: SUCCEEDED, FAILED or TIMED_OUT, with exit code, times, output tail
// and a message naming the hook and why it failed. The caller fills in
// step_id, group and ref.
func (e *Executor) Run(ctx context.Context, def Definition, env map[string]string) *pb.HookRun {
	p := e.Start(ctx, def, env)
	<-p.Done()
	return p.Result()
}

// Start starts def and returns at once; the hook runs until it exits, its
// timeout passes, or ctx ends (which kills its process group). env holds
// the caller's variables, STILLPOINT_* only (anything else fails the run
// without starting it).
func (e *Executor) Start(ctx context.Context, def Definition, env map[string]string) *Process {
	p := &Process{e: e, def: def, out: newTail(e.outputLimit()), done: make(chan struct{})}
	p.started, p.mono = e.stamp(), time.Now()
	if err := ValidateRequestEnv(env); err != nil {
		p.finish(p.failed(p.msg(": %v", err)))
		return p
	}
	if err := ctx.Err(); err != nil {
		p.finish(p.failed(p.msg(" not started: %v", context.Cause(ctx))))
		return p
	}
	environ := Environ(e.LookupEnv, def.Env, env)
	path, err := lookPath(def.Command, envValue(environ, "PATH"))
	if err != nil {
		p.finish(p.failed(p.msg(": %v", err)))
		return p
	}
	if def.Dir != "" {
		if st, err := os.Stat(def.Dir); err != nil {
			p.finish(p.failed(p.msg(": working directory: %v", err)))
			return p
		} else if !st.IsDir() {
			p.finish(p.failed(p.msg(": working directory %s: not a directory", def.Dir)))
			return p
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		p.finish(p.failed(p.msg(": output pipe: %v", err)))
		return p
	}
	cmd := &exec.Cmd{
		Path:        path,
		Args:        append([]string{def.Command}, def.Args...),
		Env:         environ,
		Dir:         def.Dir,
		Stdout:      w,
		Stderr:      w,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	p.started, p.mono = e.stamp(), time.Now()
	if err := cmd.Start(); err != nil {
		_ = r.Close()
		_ = w.Close()
		p.finish(p.failed(p.msg(": %v", err)))
		return p
	}
	_ = w.Close() // the hook's processes hold the only write ends now
	go p.wait(ctx, cmd, r)
	return p
}

// Done is closed when the run has ended and Result is final.
func (p *Process) Done() <-chan struct{} { return p.done }

// Result is the final run once Done is closed; before that a RUNNING
// snapshot with the start time and the output so far.
func (p *Process) Result() *pb.HookRun {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.res != nil {
		return proto.Clone(p.res).(*pb.HookRun)
	}
	out, trunc := p.out.snapshot()
	return &pb.HookRun{
		State:           pb.HookState_HOOK_STATE_RUNNING,
		StartedAt:       proto.Clone(p.started).(*pb.StampedTime),
		DurationNs:      time.Since(p.mono).Nanoseconds(),
		OutputTail:      out,
		OutputTruncated: trunc,
	}
}

// endKind is why the executor stopped waiting for the hook by itself.
type endKind int

const (
	endExited endKind = iota
	endTimedOut
	endCancelled
)

func (p *Process) wait(ctx context.Context, cmd *exec.Cmd, r *os.File) {
	pgid := cmd.Process.Pid
	readDone := make(chan struct{})
	go func() {
		_, _ = io.Copy(p.out, r)
		close(readDone)
	}()
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()

	timer := time.NewTimer(p.def.Timeout)
	defer timer.Stop()
	var (
		why     = endExited
		waitErr error
	)
	select {
	case waitErr = <-waited:
	case <-timer.C:
		why = endTimedOut
		waitErr = p.killGroup(pgid, waited)
	case <-ctx.Done():
		why = endCancelled
		waitErr = p.killGroup(pgid, waited)
	}
	dur := time.Since(p.mono)
	ended := p.e.stamp()

	// The hook's process is gone; anything still in its group is a
	// leftover (a background child): kill it so nothing outlives the hook.
	leftovers := why == endExited && groupAlive(pgid)
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	_ = r.SetReadDeadline(time.Now().Add(drainTimeout))
	<-readDone
	_ = r.Close()

	run := &pb.HookRun{StartedAt: p.started, EndedAt: ended, DurationNs: dur.Nanoseconds(), ExitCode: -1}
	if ps := cmd.ProcessState; ps != nil {
		run.ExitCode = int32(ps.ExitCode())
	}
	out, trunc := p.out.snapshot()
	run.OutputTail, run.OutputTruncated = out, trunc
	var msg string
	switch {
	case why == endTimedOut:
		run.State = pb.HookState_HOOK_STATE_TIMED_OUT
		msg = p.msg(" timed out after %s (process group killed)", p.def.Timeout)
	case why == endCancelled:
		run.State = pb.HookState_HOOK_STATE_FAILED
		msg = p.msg(" cancelled after %s (process group killed): %v", dur.Round(time.Millisecond), context.Cause(ctx))
	case waitErr == nil:
		run.State = pb.HookState_HOOK_STATE_SUCCEEDED
	default:
		run.State = pb.HookState_HOOK_STATE_FAILED
		var ee *exec.ExitError
		switch {
		case errors.As(waitErr, &ee) && ee.Exited():
			msg = p.msg(" exited %d", ee.ExitCode())
		case errors.As(waitErr, &ee):
			msg = p.msg(" killed by %s", describeSignal(ee.ProcessState))
		default:
			msg = p.msg(": %v", waitErr)
		}
		if l := lastLine(out, 200); l != "" {
			msg += ": " + l
		}
	}
	if leftovers {
		if msg == "" {
			msg = p.msg(" succeeded")
		}
		msg += "; it left processes running in its process group, killed"
	}
	run.Message = msg
	p.finish(run)
}

// killGroup sends SIGTERM to the hook's process group, SIGKILL after the
// grace, and returns the hook process's wait result.
func (p *Process) killGroup(pgid int, waited <-chan error) error {
	select {
	case err := <-waited: // it ended on its own at the same moment
		return err
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(p.e.killGrace())
	defer t.Stop()
	select {
	case err := <-waited:
		return err
	case <-t.C:
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	return <-waited
}

func (p *Process) finish(run *pb.HookRun) {
	p.mu.Lock()
	p.res = run
	p.out = nil // the run holds its own copy; a remembered run costs only that
	p.mu.Unlock()
	close(p.done)
}

// failed is a run that never started.
func (p *Process) failed(msg string) *pb.HookRun {
	now := p.e.stamp()
	return &pb.HookRun{
		State: pb.HookState_HOOK_STATE_FAILED, ExitCode: -1,
		StartedAt: p.started, EndedAt: now, DurationNs: time.Since(p.mono).Nanoseconds(),
		Message: msg,
	}
}

// msg prefixes a message with the runner's label and the hook's name.
func (p *Process) msg(format string, args ...any) string {
	s := fmt.Sprintf("hook %q", p.def.Name) + fmt.Sprintf(format, args...)
	if p.e.Label != "" {
		s = p.e.Label + ": " + s
	}
	return s
}

func describeSignal(ps *os.ProcessState) string {
	if ps == nil {
		return "a signal"
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("signal %d (%s)", int(ws.Signal()), ws.Signal())
	}
	return ps.String()
}

func (e *Executor) stamp() *pb.StampedTime {
	if e.Stamp != nil {
		return e.Stamp()
	}
	return &pb.StampedTime{LocalTime: timestamppb.Now()}
}

func (e *Executor) killGrace() time.Duration {
	if e.KillGrace > 0 {
		return e.KillGrace
	}
	return DefaultKillGrace
}

func (e *Executor) outputLimit() int {
	if e.OutputLimit > 0 {
		return e.OutputLimit
	}
	return OutputTailBytes
}

// groupAlive reports whether a live (not zombie) process is in process
// group pgid. It reads /proc; without /proc, any member counts.
func groupAlive(pgid int) bool {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + ent.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and ')'.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			return true
		}
	}
	return false
}

func envValue(environ []string, key string) string {
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPath resolves a command name against the hook's own PATH (not the
// runner's), skipping relative PATH entries. A name with a slash is used
// as given (Validate requires it absolute).
func lookPath(name, path string) (string, error) {
	if strings.ContainsRune(name, '/') {
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" || !filepath.IsAbs(dir) {
			continue
		}
		f := filepath.Join(dir, name)
		if st, err := os.Stat(f); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return f, nil
		}
	}
	return "", &exec.Error{Name: name, Err: exec.ErrNotFound}
}
