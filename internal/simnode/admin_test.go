package simnode

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/stillpoint-dev/stillpoint/proto/rpc"
)

// TestPause covers one Pause call at a time against a node whose in-flight
// transactions the case controls.
func TestPause(t *testing.T) {
	type env struct {
		n       *Node
		c       rpc.AdminClient
		release func() // releases the held transaction, if any
	}
	hold := func(t *testing.T, e *env) {
		rel, err := e.n.Hold(callCtx(t))
		if err != nil {
			t.Fatalf("Hold: %v", err)
		}
		e.release = rel
		t.Cleanup(rel)
	}
	cases := []struct {
		name       string
		mut        func(*Config)
		setup      func(t *testing.T, e *env)
		req        *rpc.PauseRequest
		during     func(t *testing.T, e *env) // while the Pause call runs
		wantCode   codes.Code
		wantReason string
		wantPaused bool
		minTook    time.Duration
	}{
		{
			name:       "drain success nothing in flight",
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(5000)},
			wantCode:   codes.OK,
			wantPaused: true,
		},
		{
			name:  "drain success after in-flight finishes",
			setup: hold,
			req:   &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)},
			during: func(t *testing.T, e *env) {
				waitFor(t, 10*time.Second, "gate closed", e.n.Paused)
				e.release()
			},
			wantCode:   codes.OK,
			wantPaused: true,
		},
		{
			name:       "drain timeout reopens the gate",
			setup:      hold,
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(50)},
			wantCode:   codes.FailedPrecondition,
			wantReason: ReasonTimedOut,
			wantPaused: false,
			minTook:    50 * time.Millisecond,
		},
		{
			name:       "unset wait uses the server default",
			mut:        func(c *Config) { c.DefaultMaxPauseWait = 80 * time.Millisecond },
			setup:      hold,
			req:        &rpc.PauseRequest{WaitOutstanding: true},
			wantCode:   codes.FailedPrecondition,
			wantReason: ReasonTimedOut,
			minTook:    80 * time.Millisecond,
		},
		{
			name:     "zero wait with waiting is invalid",
			req:      &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(0)},
			wantCode: codes.InvalidArgument,
		},
		{
			name:     "negative wait with waiting is invalid",
			req:      &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(-5)},
			wantCode: codes.InvalidArgument,
		},
		{
			name:       "no wait returns at once with work in flight",
			setup:      hold,
			req:        &rpc.PauseRequest{WaitOutstanding: false, MaxPauseWaitTime: ms(0)},
			wantCode:   codes.OK,
			wantPaused: true,
		},
		{
			name: "timeout while an earlier pause holds the gate",
			setup: func(t *testing.T, e *env) {
				hold(t, e)
				if _, err := e.c.Pause(callCtx(t), &rpc.PauseRequest{}); err != nil {
					t.Fatalf("first pause: %v", err)
				}
			},
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(50)},
			wantCode:   codes.FailedPrecondition,
			wantReason: ReasonTimedOutStillPaused,
			wantPaused: true,
		},
		{
			name:       "slow drain longer than the wait times out",
			mut:        func(c *Config) { c.DrainDelay = 300 * time.Millisecond },
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(30)},
			wantCode:   codes.FailedPrecondition,
			wantReason: ReasonTimedOut,
		},
		{
			name:       "slow drain within the wait succeeds after the delay",
			mut:        func(c *Config) { c.DrainDelay = 100 * time.Millisecond },
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)},
			wantCode:   codes.OK,
			wantPaused: true,
			minTook:    100 * time.Millisecond,
		},
		{
			name:       "v1 timeout has no ErrorInfo",
			mut:        func(c *Config) { c.V1 = true },
			setup:      hold,
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(30)},
			wantCode:   codes.FailedPrecondition,
			wantReason: "",
		},
		{
			name: "v1 timeout reopens the gate even under an earlier pause",
			mut:  func(c *Config) { c.V1 = true },
			setup: func(t *testing.T, e *env) {
				hold(t, e)
				if _, err := e.c.Pause(callCtx(t), &rpc.PauseRequest{}); err != nil {
					t.Fatalf("first pause: %v", err)
				}
			},
			req:        &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(30)},
			wantCode:   codes.FailedPrecondition,
			wantPaused: false,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := startNode(t, tc.mut)
			e := &env{n: n, c: dial(t, n), release: func() {}}
			if tc.setup != nil {
				tc.setup(t, e)
			}
			began := time.Now()
			ch := pauseAsync(callCtx(t), e.c, tc.req)
			if tc.during != nil {
				tc.during(t, e)
			}
			err := recv(t, ch, "Pause")
			took := time.Since(began)
			code, reason := codeReason(t, err)
			if code != tc.wantCode || reason != tc.wantReason {
				t.Fatalf("Pause: code %v reason %q (err %v), want %v %q", code, reason, err, tc.wantCode, tc.wantReason)
			}
			if took < tc.minTook {
				t.Errorf("Pause returned after %v, want at least %v", took, tc.minTook)
			}
			if got := n.Paused(); got != tc.wantPaused {
				t.Errorf("Paused() = %v after the call, want %v", got, tc.wantPaused)
			}
			if !n.cfg.V1 {
				resp, err := e.c.CheckPaused(callCtx(t), &emptypb.Empty{})
				if err != nil {
					t.Fatalf("CheckPaused: %v", err)
				}
				if resp.GetPaused() != tc.wantPaused {
					t.Errorf("CheckPaused = %v, want %v", resp.GetPaused(), tc.wantPaused)
				}
			}
		})
	}
}

// TestConcurrentPauses: a second pause while one drains waits its turn
// (PauseWaitTurn) or is refused ABORTED/PAUSE_IN_PROGRESS; an unpause during
// a drain aborts it with GATE_OPEN.
func TestConcurrentPauses(t *testing.T) {
	t.Run("serialized: second pause runs after the first drained", func(t *testing.T) {
		n := startNode(t, nil)
		c := dial(t, n)
		release, err := n.Hold(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		first := pauseAsync(callCtx(t), c, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)})
		waitFor(t, 10*time.Second, "first pause draining", func() bool { return n.gate.calls.Load() == 1 })
		// The second pause's own wait is short: had it run concurrently
		// with the first, it would time out on the held transaction.
		second := pauseAsync(callCtx(t), c, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(40)})
		waitFor(t, 10*time.Second, "second pause queued", func() bool { return n.gate.calls.Load() == 2 })
		queued := time.Now()
		waitFor(t, 10*time.Second, "well past the second pause's wait", func() bool { return time.Since(queued) > 200*time.Millisecond })
		select {
		case err := <-second:
			t.Fatalf("second pause returned (%v) while the first was still draining", err)
		default:
		}
		release()
		if err := recv(t, first, "first pause"); err != nil {
			t.Fatalf("first pause: %v", err)
		}
		if err := recv(t, second, "second pause"); err != nil {
			t.Fatalf("second pause: %v", err)
		}
		if !n.Paused() {
			t.Fatal("node not paused after both pauses")
		}
	})
	t.Run("abort: second pause refused with PAUSE_IN_PROGRESS", func(t *testing.T) {
		n := startNode(t, func(c *Config) { c.PauseConflict = PauseAbortInProgress })
		c := dial(t, n)
		release, err := n.Hold(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		first := pauseAsync(callCtx(t), c, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)})
		waitFor(t, 10*time.Second, "first pause draining", func() bool { return n.gate.calls.Load() == 1 })
		_, err = c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)})
		if code, reason := codeReason(t, err); code != codes.Aborted || reason != ReasonPauseInProgress {
			t.Fatalf("second pause: %v %q (%v), want ABORTED %s", code, reason, err, ReasonPauseInProgress)
		}
		release()
		if err := recv(t, first, "first pause"); err != nil {
			t.Fatalf("first pause: %v", err)
		}
	})
	t.Run("unpause during a drain aborts it with GATE_OPEN", func(t *testing.T) {
		n := startNode(t, nil)
		c := dial(t, n)
		release, err := n.Hold(callCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		first := pauseAsync(callCtx(t), c, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)})
		waitFor(t, 10*time.Second, "pause draining", func() bool { return n.gate.calls.Load() == 1 })
		if _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); err != nil {
			t.Fatal(err)
		}
		err = recv(t, first, "pause")
		if code, reason := codeReason(t, err); code != codes.Aborted || reason != ReasonGateOpen {
			t.Fatalf("pause: %v %q (%v), want ABORTED %s", code, reason, err, ReasonGateOpen)
		}
		if n.Paused() {
			t.Fatal("node paused after unpause")
		}
	})
}

// TestUnpauseIdempotent: unpausing an open gate succeeds and changes nothing.
func TestUnpauseIdempotent(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n)
	for i := range 2 {
		if _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); err != nil {
			t.Fatalf("unpause %d: %v", i, err)
		}
	}
	if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(5000)}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); err != nil {
			t.Fatalf("unpause %d: %v", i, err)
		}
		if n.Paused() {
			t.Fatalf("paused after unpause %d", i)
		}
	}
}

// TestBlockVersusReject: a paused Ledger blocks new transactions until the
// unpause; a paused ScalarDB node rejects them with UNAVAILABLE.
func TestBlockVersusReject(t *testing.T) {
	cases := []struct {
		mode Mode
	}{{Ledger}, {ScalarDB}}
	for _, tc := range cases {
		t.Run(tc.mode.String(), func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.Mode = tc.mode })
			c := dial(t, n)
			if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(5000)}); err != nil {
				t.Fatal(err)
			}
			ran := make(chan time.Time, 1)
			res := make(chan error, 1)
			go func() {
				res <- n.Transact(callCtx(t), func(context.Context) error { ran <- time.Now(); return nil })
			}()
			if tc.mode == ScalarDB {
				err := recv(t, res, "Transact")
				if !errorsIsUnavailable(err) {
					t.Fatalf("Transact on paused ScalarDB: %v, want ErrUnavailable", err)
				}
				if len(ran) != 0 {
					t.Fatal("transaction body ran on a paused ScalarDB node")
				}
				return
			}
			// Ledger: a bounded attempt times out instead of running.
			short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			if err := n.Transact(short, func(context.Context) error { t.Error("ran while paused"); return nil }); err == nil {
				t.Fatal("bounded Transact on a paused Ledger returned nil")
			}
			unpausedAt := time.Now()
			if _, err := c.Unpause(callCtx(t), &emptypb.Empty{}); err != nil {
				t.Fatal(err)
			}
			if err := recv(t, res, "Transact"); err != nil {
				t.Fatalf("blocked Transact after unpause: %v", err)
			}
			if at := <-ran; at.Before(unpausedAt) {
				t.Fatalf("transaction ran at %v, before the unpause at %v", at, unpausedAt)
			}
		})
	}
}

// TestVersions: v1 serves Stats (JSON) and lacks CheckPaused; v2 the reverse.
func TestVersions(t *testing.T) {
	for _, v1 := range []bool{true, false} {
		name := map[bool]string{true: "v1", false: "v2"}[v1]
		t.Run(name, func(t *testing.T) {
			n := startNode(t, func(c *Config) { c.V1 = v1 })
			c := dial(t, n)
			if _, err := c.Pause(callCtx(t), &rpc.PauseRequest{}); err != nil {
				t.Fatal(err)
			}
			cp, cpErr := c.CheckPaused(callCtx(t), &emptypb.Empty{})
			st, stErr := c.Stats(callCtx(t), &emptypb.Empty{})
			if v1 {
				if code, _ := codeReason(t, cpErr); code != codes.Unimplemented {
					t.Fatalf("v1 CheckPaused: %v, want UNIMPLEMENTED", cpErr)
				}
				if stErr != nil {
					t.Fatalf("v1 Stats: %v", stErr)
				}
				var got statsJSON
				if err := json.Unmarshal([]byte(st.GetStats()), &got); err != nil {
					t.Fatalf("v1 Stats is not JSON: %v (%q)", err, st.GetStats())
				}
				if !got.Paused || got.NodeID != n.ID() {
					t.Fatalf("v1 Stats = %+v, want paused node %s", got, n.ID())
				}
				return
			}
			if cpErr != nil || !cp.GetPaused() {
				t.Fatalf("v2 CheckPaused = %v, %v; want paused", cp, cpErr)
			}
			if code, _ := codeReason(t, stErr); code != codes.Unimplemented {
				t.Fatalf("v2 Stats: %v, want UNIMPLEMENTED", stErr)
			}
		})
	}
}

// TestRestart: a restarted node is back on the same address, unpaused, with
// no memory of the pause; a pause draining across the restart fails.
func TestRestart(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n)
	addr := n.Addr()
	release, err := n.Hold(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	draining := pauseAsync(callCtx(t), c, &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(15000)})
	waitFor(t, 10*time.Second, "pause draining", func() bool { return n.gate.calls.Load() == 1 })
	if err := n.Restart(callCtx(t)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if code, _ := codeReason(t, recv(t, draining, "draining pause")); code != codes.Unavailable {
		t.Fatalf("pause across restart: code %v, want UNAVAILABLE", code)
	}
	if n.Addr() != addr {
		t.Fatalf("restarted on %s, want %s", n.Addr(), addr)
	}
	release()
	// The restart killed the client's connection: wait for the reconnect.
	if err := afterReconnect(t, func() error {
		_, err := c.Pause(callCtx(t), &rpc.PauseRequest{WaitOutstanding: true, MaxPauseWaitTime: ms(5000)})
		return err
	}); err != nil {
		t.Fatalf("pause after restart: %v", err)
	}
	if err := n.Restart(callCtx(t)); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	var resp *rpc.CheckPausedResponse
	if err := afterReconnect(t, func() (err error) {
		resp, err = c.CheckPaused(callCtx(t), &emptypb.Empty{})
		return err
	}); err != nil {
		t.Fatalf("CheckPaused after restart: %v", err)
	}
	if resp.GetPaused() {
		t.Fatal("node came back paused after restart")
	}
	for i, iv := range n.PausedIntervals() {
		if iv.End.IsZero() {
			t.Fatalf("interval %d still open after restart", i)
		}
	}
}
