package main

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/scalaradmin"
)

// TestSimnodeFlagValidation: bad flags fail before anything starts, with
// an error naming each offending flag.
func TestSimnodeFlagValidation(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{name: "unknown mode", args: []string{"--mode", "cassandra"}, want: []string{"--mode", `"cassandra"`}},
		{name: "listen without port", args: []string{"--listen", "127.0.0.1"}, want: []string{"--listen", "missing port"}},
		{name: "listen bad port", args: []string{"--listen", "127.0.0.1:70000"}, want: []string{"--listen", `port "70000"`}},
		{name: "listen hostname", args: []string{"--listen", "ledger.example:50053"}, want: []string{"--listen", "not an IP address"}},
		{name: "unknown store", args: []string{"--store", "sqlite"}, want: []string{"--store", `"sqlite"`}},
		{name: "postgres without DSNs", args: []string{"--store", "postgres"}, want: []string{"--dsn-a: empty", "--dsn-b: empty"}},
		{
			name: "malformed DSN",
			args: []string{"--store", "postgres", "--dsn-a", "postgres://u@127.0.0.1:port/a", "--dsn-b", "host=127.0.0.1 dbname=b"},
			want: []string{"--dsn-a: malformed PostgreSQL DSN"},
		},
		{name: "DSN with memory store", args: []string{"--dsn-a", "postgres://127.0.0.1/a"}, want: []string{"only used with --store postgres"}},
		{name: "no workers", args: []string{"--workers", "0"}, want: []string{"--workers 0"}},
		{name: "negative durations", args: []string{"--gap", "-1s", "--drain-delay", "-1s", "--verify-every", "-1s"},
			want: []string{"--gap -1s", "--drain-delay -1s", "--verify-every -1s"}},
		{name: "bad log level", args: []string{"--log-level", "loud"}, want: []string{"--log-level"}},
		{name: "TLS cert without key", args: []string{"--tls-cert", "/nonexistent/cert.pem"}, want: []string{"--tls-cert", "cert_file and key_file"}},
		{name: "TLS files missing", args: []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, want: []string{"--tls-cert", "/nonexistent/c.pem"}},
		{name: "unknown flag", args: []string{"--frobnicate"}, want: []string{"unknown flag: --frobnicate"}},
		{name: "stray argument", args: []string{"extra"}, want: []string{"unknown command"}},
		{
			name: "every problem at once",
			args: []string{"--mode", "x", "--listen", "nope", "--store", "postgres", "--dsn-b", "postgres://h:p/b"},
			want: []string{"--mode", "--listen", "--dsn-a", "--dsn-b"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := newRootCmd()
			var out bytes.Buffer
			root.SetOut(&out)
			root.SetErr(&out)
			root.SetArgs(append([]string{"simnode"}, tc.args...))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := root.ExecuteContext(ctx)
			if err == nil {
				t.Fatalf("simnode %v: no error", tc.args)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(out.String(), "serving rpc.Admin") {
				t.Fatal("node started despite bad flags")
			}
		})
	}
}

// simnodeOutput is a bytes.Buffer safe for the command goroutine and the test.
type simnodeOutput struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *simnodeOutput) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *simnodeOutput) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestSimnodeRuns starts the command on a free port, pauses and unpauses it
// over the wire, and stops it by cancelling its context.
func TestSimnodeRuns(t *testing.T) {
	root := newRootCmd()
	out := &simnodeOutput{}
	root.SetOut(out)
	root.SetErr(out)
	root.SetArgs([]string{"simnode", "--listen", "127.0.0.1:0", "--mode", "scalardb", "--verify-every", "0", "--log-level", "error"})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	re := regexp.MustCompile(`serving rpc.Admin on (127\.0\.0\.1:\d+)`)
	var addr string
	deadline := time.Now().Add(20 * time.Second)
	for addr == "" {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("simnode exited early: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("simnode did not report its address:\n%s", out.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cfg := scalaradmin.DefaultConfig()
	cfg.Address = addr
	c, err := scalaradmin.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	callCtx, callCancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer callCancel()
	if err := c.Pause(callCtx, true, 10*time.Second); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if st, err := c.CheckPaused(callCtx); err != nil || st != scalaradmin.Paused {
		t.Fatalf("CheckPaused = %v, %v", st, err)
	}
	if err := c.Unpause(callCtx); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("simnode returned %v after cancel", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("simnode did not stop after cancel")
	}
}
