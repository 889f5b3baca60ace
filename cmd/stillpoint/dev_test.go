package main

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
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

// `stillpoint dev` as a user runs it, the built binary in its own process
// (so every logger's output is seen, grpc's included): the banner shows
// the binary as it was typed, and Ctrl-C stops everything in order with
// one line saying so and no ERROR line.
func TestDevCommandBannerAndCtrlC(t *testing.T) {
	dir := t.TempDir()
	buildBinary(t, dir)
	cmd := exec.Command(".bin/stillpoint", "dev", "--api", "127.0.0.1:0")
	cmd.Dir = dir
	out, errOut := newNotifyBuffer(), newNotifyBuffer()
	cmd.Stdout, cmd.Stderr = out, errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	out.waitFor(t, "Ctrl-C stops the cluster.", 2*time.Minute)
	banner := out.String()
	for _, w := range []string{"  .bin/stillpoint members --addr 127.0.0.1:", "  .bin/stillpoint pause --cluster ledger --addr"} {
		if !strings.Contains(banner, w) {
			t.Errorf("banner lacks %q:\n%s", w, banner)
		}
	}

	// What a loaded box logs while the cluster runs is not the point;
	// what follows Ctrl-C is.
	logsBefore := len(errOut.String())
	interrupted := time.Now()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after Ctrl-C: %v, want status 0", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("dev did not stop within a minute of SIGINT:\n%s\n%s", out.String(), errOut.String())
	}
	after := strings.TrimPrefix(out.String(), banner)
	if lines := strings.Split(strings.TrimSpace(after), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "stopped") {
		t.Errorf("after Ctrl-C, want one line saying it stopped; got:\n%s", after)
	}
	if bad := errorLinesSince(errOut.String()[logsBefore:], interrupted); len(bad) > 0 || strings.Contains(after, "ERROR") {
		t.Errorf("ERROR lines after Ctrl-C:\n%s", strings.Join(bad, "\n"))
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
