package main

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// notifyBuffer is a buffer written by a process while a test waits for
// what it contains.
type notifyBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	written chan struct{}
}

func newNotifyBuffer() *notifyBuffer { return &notifyBuffer{written: make(chan struct{}, 1)} }

func (s *notifyBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, err := s.b.Write(p)
	select {
	case s.written <- struct{}{}:
	default:
	}
	return n, err
}

func (s *notifyBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the buffer contains want.
func (s *notifyBuffer) waitFor(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for !strings.Contains(s.String(), want) {
		select {
		case <-s.written:
		case <-deadline.C:
			t.Fatalf("no %q within %v:\n%s", want, within, s.String())
		}
	}
}

// buildBinary builds this command into dir/.bin/stillpoint.
func buildBinary(t *testing.T, dir string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, ".bin", "stillpoint"), ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
}

// devProcess is `stillpoint dev` running as its own process.
type devProcess struct {
	cmd         *exec.Cmd
	out, errOut *notifyBuffer
	exited      chan error
	banner      string
}

// startDev runs the built binary in dir with args and waits for its banner.
func startDev(t *testing.T, dir string, args ...string) *devProcess {
	t.Helper()
	cmd := exec.Command(".bin/stillpoint", append([]string{"dev"}, args...)...)
	cmd.Dir = dir
	p := &devProcess{cmd: cmd, out: newNotifyBuffer(), errOut: newNotifyBuffer(), exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.out, p.errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.exited
		}
	})
	p.out.waitFor(t, "Ctrl-C stops the cluster.", 2*time.Minute)
	p.banner = p.out.String()
	return p
}

// `stillpoint dev --insecure` as a user runs it, the built binary in its
// own process (so every logger's output is seen, grpc's included): the
// banner shows the binary as it was typed and a line that points the CLI
// at it and unsets a secure run's certificates and token, and Ctrl-C stops
// everything in order with one line saying so and no ERROR line.
func TestDevCommandBannerAndCtrlC(t *testing.T) {
	dir := t.TempDir()
	buildBinary(t, dir)
	p := startDev(t, dir, "--insecure", "--api", "127.0.0.1:0")
	for _, w := range []string{
		"  unset STILLPOINT_CA STILLPOINT_CERT STILLPOINT_KEY STILLPOINT_TOKEN; export STILLPOINT_ADDR=127.0.0.1:",
		"Security: OFF for debugging: TLS, ACLs (no token needed), gossip encryption",
		"  .bin/stillpoint members\n", "  .bin/stillpoint pause --cluster ledger\n",
	} {
		if !strings.Contains(p.banner, w) {
			t.Errorf("banner lacks %q:\n%s", w, p.banner)
		}
	}

	// What a loaded box logs while the cluster runs is not the point;
	// what follows Ctrl-C is.
	logsBefore := len(p.errOut.String())
	interrupted := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.exited:
		if err != nil {
			t.Errorf("exit after Ctrl-C: %v, want status 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("dev did not stop within a minute of SIGINT:\n%s\n%s", p.out.String(), p.errOut.String())
	}
	after := strings.TrimPrefix(p.out.String(), p.banner)
	if lines := strings.Split(strings.TrimSpace(after), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "stopped") {
		t.Errorf("after Ctrl-C, want one line saying it stopped; got:\n%s", after)
	}
	if bad := errorLinesSince(p.errOut.String()[logsBefore:], interrupted); len(bad) > 0 || strings.Contains(after, "ERROR") {
		t.Errorf("ERROR lines after Ctrl-C:\n%s", strings.Join(bad, "\n"))
	}
}

// `stillpoint dev` with its defaults is secured (mTLS, ACLs, gossip
// encryption) and its banner's export line is all the CLI needs: the
// quickstart's commands work through it, the env file it names holds the
// same line, and a call without the token or without the client
// certificate is refused.
func TestDevSecureByDefaultQuickstart(t *testing.T) {
	dir := t.TempDir()
	buildBinary(t, dir)
	p := startDev(t, dir, "--api", "127.0.0.1:0")
	exportLine := ""
	envFile := ""
	for _, line := range strings.Split(p.banner, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "export ") && exportLine == "" {
			exportLine = l
		} else if strings.HasPrefix(l, "or: source ") {
			envFile = strings.TrimPrefix(l, "or: source ")
		}
	}
	if exportLine == "" || envFile == "" {
		t.Fatalf("no export line or env file in the banner:\n%s", p.banner)
	}
	if !strings.Contains(p.banner, "ACLs enforced (STILLPOINT_TOKEN is the bootstrap admin token") || !strings.Contains(p.banner, "gossip encrypted") {
		t.Errorf("banner does not say ACLs and gossip encryption are on:\n%s", p.banner)
	}
	if b, err := os.ReadFile(envFile); err != nil || strings.TrimSpace(string(b)) != exportLine {
		t.Errorf("env file %s: %q, %v; want the banner's line %q", envFile, b, err, exportLine)
	} else if fi, _ := os.Stat(envFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("env file %s holds the token with mode %v, want 0600", envFile, fi.Mode().Perm())
	}
	exports := map[string]string{}
	for _, kv := range strings.Fields(strings.TrimPrefix(exportLine, "export ")) {
		k, v, _ := strings.Cut(kv, "=")
		exports[k] = v
	}
	for _, k := range []string{"STILLPOINT_ADDR", "STILLPOINT_CA", "STILLPOINT_CERT", "STILLPOINT_KEY", "STILLPOINT_TOKEN"} {
		if exports[k] == "" {
			t.Fatalf("export line lacks %s: %q", k, exportLine)
		}
	}
	cli := func(drop []string, args ...string) (string, error) {
		cmd := exec.Command(".bin/stillpoint", args...)
		cmd.Dir = dir
		for _, e := range os.Environ() {
			if !strings.HasPrefix(e, "STILLPOINT_") {
				cmd.Env = append(cmd.Env, e)
			}
		}
		for k, v := range exports {
			if !slices.Contains(drop, k) {
				cmd.Env = append(cmd.Env, k+"="+v)
			}
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"members"}, "ledger-1"},
		{[]string{"pause", "--cluster", "ledger"}, "Restore point"},
		{[]string{"backup", "run", "--plan", "dev"}, "restore point"},
		{[]string{"ui"}, "http://127.0.0.1:"},
	} {
		out, err := cli(nil, tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("stillpoint %s through the export line: %v, want %q in:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	for _, tc := range []struct {
		drop []string
		want string
	}{
		{[]string{"STILLPOINT_TOKEN"}, "Unauthenticated: ListMembers needs a token with role read"},
		{[]string{"STILLPOINT_CERT", "STILLPOINT_KEY"}, "no client certificate"},
	} {
		out, err := cli(tc.drop, "members")
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("stillpoint members without %v: %v, want refused with %q:\n%s", tc.drop, err, tc.want, out)
		}
	}
}

// errorLinesSince returns the lines of logs that say ERROR, leaving out zap
// lines stamped before since.
func errorLinesSince(logs string, since time.Time) []string {
	var bad []string
	sc := bufio.NewScanner(strings.NewReader(logs))
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, "ERROR") {
			continue
		}
		stamp, _, _ := strings.Cut(line, "\t")
		if at, err := time.Parse(time.RFC3339Nano, stamp); err == nil && at.Before(since) {
			continue
		}
		bad = append(bad, line)
	}
	return bad
}

func TestInvokedAs(t *testing.T) {
	for arg0, want := range map[string]string{
		".bin/stillpoint":                       ".bin/stillpoint",
		"stillpoint":                            "stillpoint",
		"/usr/local/bin/stillpoint":             "/usr/local/bin/stillpoint",
		"/tmp/go-build1234/b001/exe/stillpoint": "go run ./cmd/stillpoint",
		"":                                      "stillpoint",
	} {
		if got := invokedAs(arg0); got != want {
			t.Errorf("invokedAs(%q) = %q, want %q", arg0, got, want)
		}
	}
}
