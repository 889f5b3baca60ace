package scalaradmin

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/grpcx"
	"github.com/stillpoint-dev/stillpoint/internal/simnode"
	"github.com/stillpoint-dev/stillpoint/internal/waitfor"
)

var sentinels = []error{ErrRetryable, ErrDrainTimedOut, ErrStillPaused, ErrInvalidArgument, ErrUnreachable, ErrUnimplemented, ErrFailed}

// assertClass checks err wraps want and no other sentinel.
func assertClass(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	for _, s := range sentinels {
		if got := errors.Is(err, s); got != (s == want) {
			t.Fatalf("errors.Is(%v, %q) = %v; want class %q only", err, s, got, want)
		}
	}
}

func startNode(t *testing.T, mut func(*simnode.Config)) *simnode.Node {
	t.Helper()
	cfg := simnode.DefaultConfig()
	cfg.ID = "ledger-test"
	cfg.Listen = "127.0.0.1:0"
	if mut != nil {
		mut(&cfg)
	}
	n, err := simnode.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Stop)
	return n
}

func newClient(t *testing.T, addr string, mut func(*Config)) *Client {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Address = addr
	if mut != nil {
		mut(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	waitfor.Fatal(context.Background(), t, 10*time.Second, what, waitfor.Bool(cond))
}

// TestPauseErrors drives a simulated node into each server answer and
// checks the client's class and reason.
func TestPauseErrors(t *testing.T) {
	hold := func(t *testing.T, n *simnode.Node, _ *Client) {
		release, err := n.Hold(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(release)
	}
	cases := []struct {
		name       string
		mut        func(*simnode.Config)
		setup      func(t *testing.T, n *simnode.Node, c *Client)
		wait       bool
		maxWait    time.Duration
		wantClass  error
		wantReason string
		wantPaused bool
	}{
		{name: "drained", wait: true, maxWait: 5 * time.Second, wantPaused: true},
		{name: "server default wait", wait: true, wantPaused: true},
		{name: "no wait", setup: hold, wantPaused: true},
		{name: "drain timed out", setup: hold, wait: true, maxWait: 40 * time.Millisecond,
			wantClass: ErrDrainTimedOut, wantReason: ReasonTimedOut},
		{name: "v1 drain timed out without reason", mut: func(c *simnode.Config) { c.V1 = true }, setup: hold,
			wait: true, maxWait: 40 * time.Millisecond, wantClass: ErrDrainTimedOut},
		{
			name: "still paused",
			setup: func(t *testing.T, n *simnode.Node, c *Client) {
				hold(t, n, c)
				if err := c.Pause(testCtx(t), false, 0); err != nil {
					t.Fatal(err)
				}
			},
			wait: true, maxWait: 40 * time.Millisecond,
			wantClass: ErrStillPaused, wantReason: ReasonTimedOutStillPaused, wantPaused: true,
		},
		{name: "negative wait rejected locally", wait: true, maxWait: -time.Second, wantClass: ErrInvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, tc.mut)
			c := newClient(t, n.Addr(), nil)
			if tc.setup != nil {
				tc.setup(t, n, c)
			}
			err := c.Pause(testCtx(t), tc.wait, tc.maxWait)
			assertClass(t, err, tc.wantClass)
			if got := Reason(err); got != tc.wantReason {
				t.Errorf("Reason = %q, want %q", got, tc.wantReason)
			}
			if err != nil && !strings.Contains(err.Error(), n.Addr()) {
				t.Errorf("error %q does not name the address %s", err, n.Addr())
			}
			if n.Paused() != tc.wantPaused {
				t.Errorf("node paused = %v, want %v", n.Paused(), tc.wantPaused)
			}
		})
	}
}

// TestRetryableReasons: PAUSE_IN_PROGRESS and GATE_OPEN are ErrRetryable.
func TestRetryableReasons(t *testing.T) {
	cases := []struct {
		name       string
		conflict   simnode.PauseConflict
		second     func(ctx context.Context, c *Client) error // runs while the first pause drains
		wantFirst  error
		wantReason string
	}{
		{
			name:     "pause in progress",
			conflict: simnode.PauseAbortInProgress,
			second: func(ctx context.Context, c *Client) error {
				err := c.Pause(ctx, true, 5*time.Second)
				if !errors.Is(err, ErrRetryable) || Reason(err) != ReasonPauseInProgress {
					return errors.New("second pause: " + errString(err))
				}
				return nil
			},
			wantFirst: nil,
		},
		{
			name:       "gate opened under the drain",
			second:     func(ctx context.Context, c *Client) error { return c.Unpause(ctx) },
			wantFirst:  ErrRetryable,
			wantReason: ReasonGateOpen,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, func(c *simnode.Config) { c.PauseConflict = tc.conflict })
			c := newClient(t, n.Addr(), nil)
			release, err := n.Hold(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			first := make(chan error, 1)
			go func() { first <- c.Pause(testCtx(t), true, 20*time.Second) }()
			waitFor(t, "first pause closed the gate", n.Paused)
			if err := tc.second(testCtx(t), c); err != nil {
				t.Fatal(err)
			}
			release()
			err = <-first
			assertClass(t, err, tc.wantFirst)
			if Reason(err) != tc.wantReason {
				t.Fatalf("first pause reason %q, want %q", Reason(err), tc.wantReason)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestVersions: CheckPaused on v1 is Unknown + ErrUnimplemented; Stats on
// v2 is ErrUnimplemented.
func TestVersions(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		n := startNode(t, nil)
		c := newClient(t, n.Addr(), nil)
		for _, want := range []PauseState{Unpaused, Paused} {
			if want == Paused {
				if err := c.Pause(testCtx(t), true, 5*time.Second); err != nil {
					t.Fatal(err)
				}
			}
			got, err := c.CheckPaused(testCtx(t))
			if err != nil || got != want {
				t.Fatalf("CheckPaused = %v, %v; want %v", got, err, want)
			}
		}
		if err := c.Unpause(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		if got, err := c.CheckPaused(testCtx(t)); err != nil || got != Unpaused {
			t.Fatalf("after Unpause: %v, %v", got, err)
		}
		_, err := c.Stats(testCtx(t))
		assertClass(t, err, ErrUnimplemented)
	})
	t.Run("v1", func(t *testing.T) {
		n := startNode(t, func(c *simnode.Config) { c.V1 = true })
		c := newClient(t, n.Addr(), nil)
		got, err := c.CheckPaused(testCtx(t))
		assertClass(t, err, ErrUnimplemented)
		if got != Unknown || !strings.Contains(err.Error(), "server is v1: no CheckPaused") {
			t.Fatalf("CheckPaused on v1 = %v, %v", got, err)
		}
		if err := c.Pause(testCtx(t), true, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		js, err := c.Stats(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		var stats struct {
			Paused bool `json:"paused"`
		}
		if err := json.Unmarshal([]byte(js), &stats); err != nil || !stats.Paused {
			t.Fatalf("Stats = %q (%v), want JSON with paused true", js, err)
		}
	})
}

// TestUnreachable: a closed port, a restart under a draining pause, and a
// caller deadline are all ErrUnreachable.
func TestUnreachable(t *testing.T) {
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		c := newClient(t, addr, nil)
		err = c.Unpause(testCtx(t))
		assertClass(t, err, ErrUnreachable)
		if !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "Unpause") {
			t.Fatalf("error %q does not name the call and %s", err, addr)
		}
	})
	t.Run("restart under a drain", func(t *testing.T) {
		n := startNode(t, nil)
		c := newClient(t, n.Addr(), nil)
		release, err := n.Hold(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		res := make(chan error, 1)
		go func() { res <- c.Pause(testCtx(t), true, 20*time.Second) }()
		waitFor(t, "gate closed", n.Paused)
		if err := n.Restart(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		assertClass(t, <-res, ErrUnreachable)
	})
	t.Run("caller deadline", func(t *testing.T) {
		n := startNode(t, nil)
		c := newClient(t, n.Addr(), nil)
		release, err := n.Hold(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err = c.Pause(ctx, true, 20*time.Second)
		assertClass(t, err, ErrUnreachable)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v does not wrap context.DeadlineExceeded", err)
		}
	})
}

// TestTLS: a TLS node whose certificate names only ledger-0.internal is
// reachable on 127.0.0.1 only with the server-name override.
func TestTLS(t *testing.T) {
	const name = "ledger-0.internal"
	pki := newPKI(t, name)
	n := startNode(t, func(c *simnode.Config) {
		c.TLS = grpcx.TLS{CertFile: pki.certFile, KeyFile: pki.keyFile}
	})
	cases := []struct {
		name      string
		tls       grpcx.TLS
		wantClass error
		wantMsg   string
	}{
		{name: "CA and server name", tls: grpcx.TLS{CAPEM: pki.caPEM, ServerName: name}},
		{name: "no server name override", tls: grpcx.TLS{CAPEM: pki.caPEM}, wantClass: ErrUnreachable, wantMsg: "certificate"},
		{name: "wrong server name", tls: grpcx.TLS{CAPEM: pki.caPEM, ServerName: "auditor-0.internal"}, wantClass: ErrUnreachable, wantMsg: "auditor-0.internal"},
		{name: "unknown CA", tls: grpcx.TLS{Enabled: true, ServerName: name}, wantClass: ErrUnreachable, wantMsg: "certificate"},
		{name: "plaintext client", wantClass: ErrUnreachable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, n.Addr(), func(cfg *Config) { cfg.TLS = tc.tls; cfg.CallTimeout = 5 * time.Second })
			state, err := c.CheckPaused(testCtx(t))
			assertClass(t, err, tc.wantClass)
			if tc.wantClass == nil && state != Unpaused {
				t.Fatalf("CheckPaused over TLS = %v", state)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("error %q lacks %q", err, tc.wantMsg)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		mut  func(*Config)
		want []string
	}{
		{name: "default", mut: func(*Config) {}},
		{name: "no address", mut: func(c *Config) { c.Address = "" }, want: []string{"empty address"}},
		{name: "no port", mut: func(c *Config) { c.Address = "ledger-0" }, want: []string{`"ledger-0"`}},
		{name: "port zero", mut: func(c *Config) { c.Address = "ledger-0:0" }, want: []string{`port "0"`}},
		{
			name: "every problem at once",
			mut: func(c *Config) {
				c.Address = "ledger-0:http"
				c.CallTimeout = 0
				c.TLS = grpcx.TLS{CAPEM: []byte("not pem")}
			},
			want: []string{`port "http"`, "call timeout 0s", "CA PEM"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tc.mut(&cfg)
			err := cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if _, err := New(cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if _, err := New(cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}
