package clock

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
)

// Acceptance: two honest servers at +40 ms and a liar. In every one of
// 1,000 rounds the estimate's interval holds +40 ms and the liar is named
// falseticker.
func TestThousandRoundsWithLiar(t *testing.T) {
	// The honest servers state 100 µs of root dispersion: the host's wall
	// clock, read by both ends, wobbles by tens of µs from one read to the
	// next on a loaded sandbox (gVisor), which their nominal 1 µs precision
	// does not cover. The test is about the liar, 200 ms to 1 s away.
	honest := func(s *ntptest.Settings) { s.Offset = 40 * time.Millisecond; s.RootDispersion = 100 * time.Microsecond }
	a := startNTP(t, honest)
	b := startNTP(t, honest)
	liar := startNTP(t, func(s *ntptest.Settings) { s.Offset = 40 * time.Millisecond; s.Liar = true })
	s := newSampler(t, addrs(a, liar, b), nil)
	ctx := context.Background()
	for round := range 1000 {
		e := s.SampleOnce(ctx)
		if e.Status != Synchronized {
			t.Fatalf("round %d: status %v (%s)", round, e.Status, e.Reason)
		}
		if !containsOffset(e, 40*time.Millisecond) {
			t.Fatalf("round %d: interval %v ± %v does not hold +40ms; sources %+v", round, e.Offset, e.ErrorBound, e.Sources)
		}
		if got := e.Sources[1]; got.Verdict != Falseticker || got.Address != liar.Addr() || !strings.Contains(got.Reason, "outside the majority interval") {
			t.Fatalf("round %d: liar source = %+v, want a falseticker", round, got)
		}
		if e.Sources[0].Verdict != Selected || e.Sources[2].Verdict != Selected {
			t.Fatalf("round %d: honest sources %v, %v, want selected", round, e.Sources[0].Verdict, e.Sources[2].Verdict)
		}
	}
}

func TestNoMajorityIsUnsynchronized(t *testing.T) {
	tests := []struct {
		name    string
		offsets []time.Duration
		liars   int
	}{
		{"three disagreeing servers", []time.Duration{0, 500 * time.Millisecond, -500 * time.Millisecond}, 0},
		{"one honest, two liars", []time.Duration{0, 0, 0}, 2},
		{"two disagreeing servers", []time.Duration{0, 300 * time.Millisecond}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var servers []string
			for i, off := range tc.offsets {
				liar := i < tc.liars
				servers = append(servers, startNTP(t, func(s *ntptest.Settings) {
					s.Offset = off
					s.Liar = liar
					s.LiarMin = 500 * time.Millisecond // liars also disagree with each other, almost surely
				}).Addr())
			}
			e := newSampler(t, servers, nil).SampleOnce(context.Background())
			if e.Status != Unsynchronized || !strings.HasPrefix(e.Reason, "no majority") {
				t.Fatalf("status %v reason %q, want unsynchronized with reason \"no majority...\"", e.Status, e.Reason)
			}
			// Nobody is outvoted without a majority: no falsetickers.
			for _, src := range e.Sources {
				if src.Verdict != NoMajority || !strings.Contains(e.Reason, src.Address) {
					t.Errorf("source %s verdict %v (reason %q not naming it?)", src.Address, src.Verdict, e.Reason)
				}
			}
		})
	}
}

// A skewed local clock gets the correction for itself: local +40 ms
// against true servers gives an offset of about -40 ms.
func TestSkewedLocalClockGetsItsOwnCorrection(t *testing.T) {
	servers := addrs(startNTP(t, nil), startNTP(t, nil), startNTP(t, nil))
	for _, skew := range []time.Duration{40 * time.Millisecond, -250 * time.Millisecond, 3 * time.Second} {
		s := newSampler(t, servers, func(c *Config) { c.Clock = NewSkewed(skew) })
		e := s.SampleOnce(context.Background())
		if e.Status != Synchronized || !containsOffset(e, -skew) {
			t.Fatalf("local clock %+v: estimate %v ± %v (%v %s), want to hold %v", skew, e.Offset, e.ErrorBound, e.Status, e.Reason, -skew)
		}
	}
}

// Every failure mode yields the right verdict and a reason naming the
// server: alone among two honest servers the estimate stays synchronized;
// two broken servers of three leave no majority.
func TestFailureModes(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*ntptest.Settings)
		verdict Verdict
		reason  string
	}{
		{"leap indicator 3", func(s *ntptest.Settings) { s.Leap = ntptest.LeapNotInSync }, NotSynchronized, "server not synchronized yet: leap indicator 3"},
		{"kiss-of-death RATE", func(s *ntptest.Settings) { s.KissCode = "RATE" }, Invalid, "kiss-of-death RATE"},
		{"kiss-of-death DENY", func(s *ntptest.Settings) { s.KissCode = "DENY" }, Invalid, "kiss-of-death DENY"},
		{"kiss-of-death RSTR", func(s *ntptest.Settings) { s.KissCode = "RSTR" }, Invalid, "kiss-of-death RSTR"},
		{"stratum 0", func(s *ntptest.Settings) { s.Stratum = 0 }, NotSynchronized, "server not synchronized yet (stratum 0, leap 0, no reference id)"},
		{"starting chronyd: leap 3, stratum 0", func(s *ntptest.Settings) { s.Stratum = 0; s.Leap = ntptest.LeapNotInSync }, NotSynchronized, "server not synchronized yet (stratum 0, leap 3, no reference id)"},
		{"impossible reply", func(s *ntptest.Settings) { s.BadPacket = ntptest.BadPacketImpossible }, Invalid, "impossible reply: server processing time T3−T2"},
		{"stratum 16", func(s *ntptest.Settings) { s.Stratum = 16 }, Invalid, "unusable stratum 16"},
		{"timeout", func(s *ntptest.Settings) { s.Drop = true }, Unreachable, "unreachable: no reply within 300ms"},
		{"short packet", func(s *ntptest.Settings) { s.BadPacket = ntptest.BadPacketShort }, Invalid, "bad packet"},
		{"wrong origin", func(s *ntptest.Settings) { s.BadPacket = ntptest.BadPacketWrongOrigin }, Invalid, "bad packet"},
		{"wrong mode", func(s *ntptest.Settings) { s.BadPacket = ntptest.BadPacketWrongMode }, Invalid, "bad packet"},
		{"zero transmit", func(s *ntptest.Settings) { s.BadPacket = ntptest.BadPacketZeroTransmit }, Invalid, "bad packet"},
		{"dispersion above our maximum", func(s *ntptest.Settings) { s.RootDispersion = 2 * time.Second }, Invalid, "root dispersion too large"},
	}
	fast := func(c *Config) { c.Timeout = 300 * time.Millisecond }
	for _, tc := range tests {
		t.Run(tc.name+"/one of three", func(t *testing.T) {
			bad := startNTP(t, tc.set)
			s := newSampler(t, addrs(startNTP(t, nil), bad, startNTP(t, nil)), fast)
			e := s.SampleOnce(context.Background())
			if e.Status != Synchronized {
				t.Fatalf("status %v (%s), want synchronized with one broken server of three", e.Status, e.Reason)
			}
			if src := e.Sources[1]; src.Verdict != tc.verdict || !strings.Contains(src.Reason, tc.reason) {
				t.Fatalf("broken source %+v, want verdict %v reason containing %q", src, tc.verdict, tc.reason)
			}
		})
		t.Run(tc.name+"/two of three", func(t *testing.T) {
			bad1, bad2 := startNTP(t, tc.set), startNTP(t, tc.set)
			s := newSampler(t, addrs(bad1, startNTP(t, nil), bad2), fast)
			e := s.SampleOnce(context.Background())
			if e.Status != Unsynchronized || !strings.HasPrefix(e.Reason, "no majority") {
				t.Fatalf("status %v reason %q, want unsynchronized, no majority", e.Status, e.Reason)
			}
			for _, addr := range []string{bad1.Addr(), bad2.Addr()} {
				if !strings.Contains(e.Reason, addr+": "+tc.reason) {
					t.Errorf("reason %q does not name %s with %q", e.Reason, addr, tc.reason)
				}
			}
		})
	}
}

func TestAllUnreachable(t *testing.T) {
	servers := addrs(startNTP(t, func(s *ntptest.Settings) { s.Drop = true }), startNTP(t, func(s *ntptest.Settings) { s.Drop = true }))
	e := newSampler(t, servers, func(c *Config) { c.Timeout = 200 * time.Millisecond }).SampleOnce(context.Background())
	if e.Status != Unsynchronized || !strings.HasPrefix(e.Reason, "all 2 servers unreachable") {
		t.Fatalf("status %v reason %q", e.Status, e.Reason)
	}
	for _, a := range servers {
		if !strings.Contains(e.Reason, a) {
			t.Errorf("reason %q does not name %s", e.Reason, a)
		}
	}
}

func TestLeapPendingNeedsMajorityOfSelected(t *testing.T) {
	leap := func(s *ntptest.Settings) { s.Leap = ntptest.LeapAdd }
	tests := []struct {
		name string
		sets []func(*ntptest.Settings)
		want bool
	}{
		{"none", []func(*ntptest.Settings){nil, nil, nil}, false},
		{"one of three", []func(*ntptest.Settings){leap, nil, nil}, false},
		{"two of three", []func(*ntptest.Settings){leap, leap, nil}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var servers []string
			for _, f := range tc.sets {
				servers = append(servers, startNTP(t, f).Addr())
			}
			e := newSampler(t, servers, nil).SampleOnce(context.Background())
			if e.Status != Synchronized || e.LeapPending != tc.want {
				t.Fatalf("status %v leap pending %v, want synchronized and %v", e.Status, e.LeapPending, tc.want)
			}
		})
	}
}

// Acceptance: a 1 s wall-clock jump against the monotonic clock yields
// disrupted; small moves widen the bound; a new round recovers.
func TestWallClockJump(t *testing.T) {
	servers := addrs(startNTP(t, nil), startNTP(t, nil), startNTP(t, nil))
	tests := []struct {
		name     string
		jump     time.Duration
		want     Status
		minWiden time.Duration
	}{
		{"forward 1s", time.Second, Disrupted, 0},
		{"backward 1s", -time.Second, Disrupted, 0},
		{"1ms widens the bound", time.Millisecond, Synchronized, time.Millisecond - time.Microsecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clk := NewSkewed(0)
			s := newSampler(t, servers, func(c *Config) { c.Clock = clk; c.PollInterval = time.Hour })
			e := s.SampleOnce(context.Background())
			if e.Status != Synchronized {
				t.Fatalf("before the jump: %v (%s)", e.Status, e.Reason)
			}
			if cur := s.Current(); cur.Status != Synchronized || cur.ErrorBound-e.ErrorBound > 100*time.Microsecond {
				t.Fatalf("Current before the jump: %v bound %v (round said %v)", cur.Status, cur.ErrorBound, e.ErrorBound)
			}
			clk.Jump(tc.jump)
			cur := s.Current()
			if cur.Status != tc.want {
				t.Fatalf("after a %v jump: status %v (%s), want %v", tc.jump, cur.Status, cur.Reason, tc.want)
			}
			if tc.want == Disrupted && !strings.Contains(cur.Reason, "wall clock jumped") {
				t.Fatalf("reason %q", cur.Reason)
			}
			if tc.want != Disrupted && cur.ErrorBound-e.ErrorBound < tc.minWiden {
				t.Fatalf("bound %v after the jump, was %v: want widened by at least %v", cur.ErrorBound, e.ErrorBound, tc.minWiden)
			}
			again := s.SampleOnce(context.Background())
			if again.Status != Synchronized || !containsOffset(again, -tc.jump) {
				t.Fatalf("round after the jump: %v %v ± %v, want synchronized holding %v", again.Status, again.Offset, again.ErrorBound, -tc.jump)
			}
			if s.Current().Status != Synchronized {
				t.Fatalf("Current after the new round: %v", s.Current().Status)
			}
		})
	}
}

// jumpyClock steps its wall clock on the n-th Read: in a round, the first
// Read is the start reading and later ones follow each reply.
type jumpyClock struct {
	*Skewed
	reads atomic.Int32
	n     int32
	by    time.Duration
}

func (c *jumpyClock) Read() Reading {
	if c.reads.Add(1) == c.n {
		c.Jump(c.by)
	}
	return c.Skewed.Read()
}

func TestJumpDuringRoundIsDisrupted(t *testing.T) {
	servers := addrs(startNTP(t, nil), startNTP(t, nil), startNTP(t, nil))
	clk := &jumpyClock{Skewed: NewSkewed(0), n: 2, by: time.Second}
	e := newSampler(t, servers, func(c *Config) { c.Clock = clk }).SampleOnce(context.Background())
	if e.Status != Disrupted || !strings.Contains(e.Reason, "during sampling") {
		t.Fatalf("status %v reason %q, want disrupted during sampling", e.Status, e.Reason)
	}
}

func TestStaleAfterPolls(t *testing.T) {
	// The servers read the same manual clock: every reply is
	// instantaneous (a server on the real clock would answer with more
	// processing time than the zero round trip the manual clock sees).
	clk := NewManual(time.Now())
	set := func(s *ntptest.Settings) { s.RootDispersion = 50 * time.Millisecond }
	servers := addrs(startNTPOn(t, clk, set), startNTPOn(t, clk, set), startNTPOn(t, clk, set))
	s := newSampler(t, servers, func(c *Config) { c.Clock = clk; c.PollInterval = time.Second; c.StaleAfterPolls = 3 })
	if cur := s.Current(); cur.Status != Unsynchronized || !strings.Contains(cur.Reason, "no sampling round") {
		t.Fatalf("before any round: %v %q", cur.Status, cur.Reason)
	}
	e := s.SampleOnce(context.Background())
	if e.Status != Synchronized {
		t.Fatalf("round: %v (%s)", e.Status, e.Reason)
	}
	steps := []struct {
		advance time.Duration
		want    Status
	}{
		{2 * time.Second, Synchronized},
		{time.Second, Synchronized}, // exactly 3 polls: not yet stale
		{time.Millisecond, Stale},
	}
	for _, st := range steps {
		clk.Advance(st.advance)
		cur := s.Current()
		if cur.Status != st.want {
			t.Fatalf("age %v: status %v (%s), want %v", cur.Age(clk.Now()), cur.Status, cur.Reason, st.want)
		}
		if want := e.ErrorBound + drift(cur.Age(clk.Now()), DefaultMaxDriftPPM); cur.BoundAt(clk.Now()) != want {
			t.Fatalf("age %v: BoundAt %v, want %v", cur.Age(clk.Now()), cur.BoundAt(clk.Now()), want)
		}
	}
	if cur := s.Current(); !strings.Contains(cur.Reason, "no fresh sample") {
		t.Fatalf("stale reason %q", cur.Reason)
	}
}

func TestBackoffOnUnreachableServer(t *testing.T) {
	clk := NewManual(time.Now())
	set := func(s *ntptest.Settings) { s.RootDispersion = 50 * time.Millisecond }
	down := startNTPOn(t, clk, func(s *ntptest.Settings) { s.Drop = true; s.RootDispersion = 50 * time.Millisecond })
	s := newSampler(t, addrs(startNTPOn(t, clk, set), down, startNTPOn(t, clk, set)), func(c *Config) {
		c.Clock = clk
		c.PollInterval = time.Second
		c.Timeout = 200 * time.Millisecond
		c.MaxBackoff = 4 * time.Second
	})
	ctx := context.Background()
	// Rounds one poll apart. After failure n the server is skipped for
	// 2^(n-1) - 1/2 polls (capped at 4): asked, asked, skip, asked, skip x3, asked ...
	steps := []struct {
		setDown bool // server comes back before this round
		queried bool
	}{
		{false, true}, {false, true}, {false, false}, {false, true},
		{false, false}, {false, false}, {false, false}, {false, true},
		{false, false}, {false, false}, {false, false}, // capped at 4 polls minus slack
		{true, true}, // comes back, answers
		{false, true}, {false, true},
	}
	for i, st := range steps {
		if st.setDown {
			if err := down.Update(func(s *ntptest.Settings) { s.Drop = false }); err != nil {
				t.Fatal(err)
			}
		}
		before := down.Requests()
		e, at := s.round(ctx, true)
		s.install(e, at)
		if got := down.Requests() > before; got != st.queried {
			t.Fatalf("round %d: server queried = %v, want %v (source %+v)", i, got, st.queried, e.Sources[1])
		}
		if !st.queried && !strings.Contains(e.Sources[1].Reason, "backing off") {
			t.Fatalf("round %d: skipped source reason %q", i, e.Sources[1].Reason)
		}
		if e.Status != Synchronized {
			t.Fatalf("round %d: %v (%s)", i, e.Status, e.Reason)
		}
		clk.Advance(time.Second)
	}
}

func TestSampleOnceHonorsContext(t *testing.T) {
	down := startNTP(t, func(s *ntptest.Settings) { s.Drop = true })
	s := newSampler(t, []string{down.Addr()}, func(c *Config) { c.Timeout = 30 * time.Second })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan Estimate, 1)
	go func() { done <- s.SampleOnce(ctx) }()
	waitFor(t, "the query to reach the server", 10*time.Second, func() bool { return down.Requests() > 0 })
	cancel()
	select {
	case e := <-done:
		if e.Status != Unsynchronized || !strings.Contains(e.Sources[0].Reason, "query abandoned") {
			t.Fatalf("status %v source %+v", e.Status, e.Sources[0])
		}
	case <-time.After(10 * time.Second):
		t.Fatal("SampleOnce ignored cancellation (server timeout is 30s)")
	}
	cancelled, stop := context.WithCancel(context.Background())
	stop()
	if e := s.SampleOnce(cancelled); e.Sources[0].Verdict != Unreachable {
		t.Fatalf("with a cancelled context: %+v", e.Sources[0])
	}
}

func TestRunPublishesRoundsAndJumps(t *testing.T) {
	servers := addrs(startNTP(t, nil), startNTP(t, nil), startNTP(t, nil))
	clk := NewSkewed(0)
	s := newSampler(t, servers, func(c *Config) { c.Clock = clk; c.PollInterval = 30 * time.Millisecond })
	updates, cancelSub := s.Subscribe()
	defer cancelSub()
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	defer func() { cancel(); <-stopped }()

	recv := func(what string, ok func(Estimate) bool) Estimate {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case e := <-updates:
				if ok(e) {
					return e
				}
			case <-deadline:
				t.Fatalf("no %s estimate published", what)
			}
		}
	}
	var rounds []time.Time
	for len(rounds) < 3 {
		e := recv("synchronized", func(e Estimate) bool { return e.Status == Synchronized })
		if len(rounds) > 0 && !e.AsOf.After(rounds[len(rounds)-1]) {
			continue // same round seen twice is impossible, but be strict about progress
		}
		rounds = append(rounds, e.AsOf)
	}
	cancel()
	<-stopped

	// Between rounds: a long poll interval, then a jump is published by
	// the once-a-second check.
	s2 := newSampler(t, servers, func(c *Config) { c.Clock = clk; c.PollInterval = time.Hour })
	updates2, cancel2 := s2.Subscribe()
	defer cancel2()
	ctx2, stop2 := context.WithCancel(context.Background())
	stopped2 := make(chan struct{})
	go func() { s2.Run(ctx2); close(stopped2) }()
	defer func() { stop2(); <-stopped2 }()
	updates = updates2
	recv("first synchronized", func(e Estimate) bool { return e.Status == Synchronized })
	clk.Jump(time.Second)
	e := recv("disrupted", func(e Estimate) bool { return e.Status == Disrupted })
	if !strings.Contains(e.Reason, "jumped +1s") && !strings.Contains(e.Reason, "jumped +999.99") { // the host's wall clock may wobble a µs
		t.Fatalf("reason %q", e.Reason)
	}
}
