package clock

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
)

// A local clock 80 ms slow, three servers, then every server goes silent.
// The failed round must keep the good estimate (+80 ms), aging at the max
// drift, until it goes stale — never replace it with offset 0 ± ~0.
func TestFailedRoundKeepsLastGoodEstimate(t *testing.T) {
	clk := NewManual(time.Now())
	off := func(s *ntptest.Settings) { s.Offset = 80 * time.Millisecond }
	servers := []*ntptest.Server{startNTPOn(t, clk, off), startNTPOn(t, clk, off), startNTPOn(t, clk, off)}
	s := newSampler(t, addrs(servers...), func(c *Config) {
		c.Clock = clk
		c.PollInterval = time.Second
		c.StaleAfterPolls = 4
		c.Timeout = 200 * time.Millisecond
	})
	ctx := context.Background()
	good := s.SampleOnce(ctx)
	if good.Status != Synchronized || !containsOffset(good, 80*time.Millisecond) {
		t.Fatalf("first round: %v %v ± %v (%s)", good.Status, good.Offset, good.ErrorBound, good.Reason)
	}
	for _, srv := range servers {
		if err := srv.Update(func(s *ntptest.Settings) { s.Drop = true }); err != nil {
			t.Fatal(err)
		}
	}
	for round := 1; round <= 3; round++ {
		clk.Advance(time.Second)
		e := s.SampleOnce(ctx)
		if e.Status != Synchronized || e.Offset != good.Offset || e.ErrorBound != good.ErrorBound {
			t.Fatalf("after failed round %d: %v offset %v ± %v (%s), want the good estimate %v ± %v kept",
				round, e.Status, e.Offset, e.ErrorBound, e.Reason, good.Offset, good.ErrorBound)
		}
		now := clk.Now()
		if want := good.ErrorBound + drift(e.Age(now), DefaultMaxDriftPPM); e.BoundAt(now) != want || e.Age(now) < time.Duration(round)*time.Second {
			t.Fatalf("round %d: age %v bound %v, want aged by max drift to %v", round, e.Age(now), e.BoundAt(now), want)
		}
		if e.FailedRounds != round || !strings.Contains(e.LastFailure, "all 3 servers unreachable") {
			t.Fatalf("round %d: failed rounds %d, last failure %q", round, e.FailedRounds, e.LastFailure)
		}
		for _, src := range e.Sources {
			if src.Verdict != Unreachable || src.Answered {
				t.Fatalf("round %d: source %+v, want the failed round's unreachable verdict shown", round, src)
			}
		}
	}
	clk.Advance(time.Second + time.Millisecond) // 4 polls and a bit: stale
	e := s.Current()
	if e.Status != Stale || !strings.Contains(e.Reason, "no fresh sample") || !strings.Contains(e.Reason, "3 rounds failed since") ||
		!strings.Contains(e.Reason, "unreachable") {
		t.Fatalf("past 4 polls: %v %q, want stale naming the failed rounds", e.Status, e.Reason)
	}
	e = s.SampleOnce(ctx)
	if e.Status != Unsynchronized || !strings.Contains(e.Reason, "all 3 servers unreachable") {
		t.Fatalf("failed round once stale: %v %q, want unsynchronized", e.Status, e.Reason)
	}
	for _, srv := range servers {
		if err := srv.Update(func(s *ntptest.Settings) { s.Drop = false }); err != nil {
			t.Fatal(err)
		}
	}
	if e := s.SampleOnce(ctx); e.Status != Synchronized || e.FailedRounds != 0 || e.Age(clk.Now()) != 0 {
		t.Fatalf("servers back: %v failed %d age %v", e.Status, e.FailedRounds, e.Age(clk.Now()))
	}
}

// A round with no majority also keeps the good estimate.
func TestNoMajorityRoundKeepsLastGoodEstimate(t *testing.T) {
	clk := NewManual(time.Now())
	servers := []*ntptest.Server{startNTPOn(t, clk, nil), startNTPOn(t, clk, nil), startNTPOn(t, clk, nil)}
	s := newSampler(t, addrs(servers...), func(c *Config) { c.Clock = clk })
	ctx := context.Background()
	good := s.SampleOnce(ctx)
	if good.Status != Synchronized {
		t.Fatalf("first round: %v (%s)", good.Status, good.Reason)
	}
	for i, srv := range servers {
		if err := srv.Update(func(s *ntptest.Settings) { s.Offset = time.Duration(i) * time.Second }); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(time.Second)
	e := s.SampleOnce(ctx)
	if e.Status != Synchronized || e.Offset != good.Offset || !strings.HasPrefix(e.LastFailure, "no majority") {
		t.Fatalf("after a no-majority round: %v %v (%s; last failure %q), want the good estimate kept", e.Status, e.Offset, e.Reason, e.LastFailure)
	}
	for _, src := range e.Sources {
		if src.Verdict != NoMajority {
			t.Fatalf("source %s verdict %v, want no-majority", src.Address, src.Verdict)
		}
	}
}

// After a wall-clock jump the old offset no longer applies: a failed round
// must not bring the pre-jump estimate back, and it is never synchronized.
func TestDisruptedEstimateIsNotKept(t *testing.T) {
	clk := NewManual(time.Now())
	servers := []*ntptest.Server{startNTPOn(t, clk, nil), startNTPOn(t, clk, nil), startNTPOn(t, clk, nil)}
	s := newSampler(t, addrs(servers...), func(c *Config) { c.Clock = clk; c.Timeout = 200 * time.Millisecond })
	ctx := context.Background()
	if e := s.SampleOnce(ctx); e.Status != Synchronized {
		t.Fatalf("first round: %v", e.Status)
	}
	clk.Step(time.Second)
	if e := s.Current(); e.Status != Disrupted {
		t.Fatalf("after a 1s step: %v", e.Status)
	}
	for _, srv := range servers {
		if err := srv.Update(func(s *ntptest.Settings) { s.Drop = true }); err != nil {
			t.Fatal(err)
		}
	}
	if e := s.SampleOnce(ctx); e.Status == Synchronized {
		t.Fatalf("failed round after a step: synchronized at %v, want the pre-jump estimate dropped", e.Offset)
	}
}

// A step below the jump threshold inside a round moved the readings the
// samples were taken with: it is added to ε, so the interval holds the
// truth for the stepped clock.
func TestStepInsideRoundWidensBound(t *testing.T) {
	servers := addrs(startNTP(t, nil), startNTP(t, nil), startNTP(t, nil))
	const step = 2 * time.Millisecond // below the 5 ms threshold
	// Reads in a round: the start, one after each reply, the end (5th).
	clk := &jumpyClock{Skewed: NewSkewed(0), n: 5, by: step}
	s := newSampler(t, servers, func(c *Config) { c.Clock = clk; c.PollInterval = time.Hour })
	e := s.SampleOnce(context.Background())
	if e.Status != Synchronized {
		t.Fatalf("status %v (%s)", e.Status, e.Reason)
	}
	if !containsOffset(e, -step) || e.ErrorBound < step {
		t.Fatalf("estimate %v ± %v after a %v step inside the round: want a bound of at least the step holding %v", e.Offset, e.ErrorBound, step, -step)
	}
}

// A server that has not synchronized yet (a starting chronyd: leap 3,
// stratum 0, refid 0) is not a kiss-of-death: it is asked every round,
// never backed off, and used the round after it synchronizes.
func TestNotSynchronizedServerIsPolledAndUsedOnceSynced(t *testing.T) {
	clk := NewManual(time.Now())
	starting := startNTPOn(t, clk, func(s *ntptest.Settings) { s.Stratum = 0; s.Leap = ntptest.LeapNotInSync })
	s := newSampler(t, addrs(startNTPOn(t, clk, nil), starting, startNTPOn(t, clk, nil)), func(c *Config) { c.Clock = clk })
	ctx := context.Background()
	for round := range 4 {
		before := starting.Requests()
		e, at := s.round(ctx, true)
		s.install(e, at)
		if starting.Requests() == before {
			t.Fatalf("round %d: the starting server was not asked (backed off as a kiss-of-death?): %+v", round, e.Sources[1])
		}
		src := e.Sources[1]
		if src.Verdict != NotSynchronized || strings.Contains(src.Reason, "kiss") || !strings.Contains(src.Reason, "not synchronized yet") {
			t.Fatalf("round %d: source %+v, want not-synchronized (not kiss-of-death)", round, src)
		}
		clk.Advance(time.Second)
	}
	if err := starting.Update(func(s *ntptest.Settings) { s.Stratum = 4; s.Leap = ntptest.LeapNone }); err != nil {
		t.Fatal(err)
	}
	e, at := s.round(ctx, true)
	s.install(e, at)
	if e.Sources[1].Verdict != Selected {
		t.Fatalf("round after it synchronized: %+v, want selected", e.Sources[1])
	}
}

// An unreachable server has no offset at all.
func TestUnreachableSourceHasNoSample(t *testing.T) {
	down := startNTP(t, func(s *ntptest.Settings) { s.Drop = true })
	up := startNTP(t, func(s *ntptest.Settings) { s.RootDelay = 3 * time.Millisecond; s.RootDispersion = 2 * time.Millisecond })
	e := newSampler(t, addrs(up, down), func(c *Config) { c.Timeout = 200 * time.Millisecond }).SampleOnce(context.Background())
	if src := e.Sources[1]; src.Answered || src.Verdict != Unreachable {
		t.Fatalf("unreachable source %+v", src)
	}
	src := e.Sources[0]
	want := src.RTT/2 + src.RootDelay/2 + src.RootDispersion + src.Precision
	near := func(got, want time.Duration) bool { return (got - want).Abs() <= 16*time.Microsecond } // NTP short format: 2^-16 s
	if !src.Answered || !near(src.RootDelay, 3*time.Millisecond) || !near(src.RootDispersion, 2*time.Millisecond) || src.Precision <= 0 || src.ErrorBound != want {
		t.Fatalf("answering source %+v, want its root delay, dispersion, precision and bound %v", src, want)
	}
}

// Property: a local clock whose true offset drifts at up to max drift plus
// whatever the (injected) kernel slews, sampled by rounds that sometimes
// fail. Whenever the estimate in force says synchronized, its interval
// at that instant holds the true offset.
func TestPropertyAgedEstimateHoldsTruth(t *testing.T) {
	for seed := range uint64(200) {
		rng := rand.New(rand.NewPCG(seed, 7))
		clk := NewManual(time.Unix(1_900_000_000, 0))
		kern := &fakeKernel{}
		kern.set(KernelClock{TickUS: 10000, NominalTickUS: 10000})
		cfg := testConfig([]string{"127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"}, func(c *Config) {
			c.Clock = clk
			c.Kernel = kern
			c.PollInterval = 16 * time.Second
		})
		s, err := NewSampler(cfg)
		if err != nil {
			t.Fatal(err)
		}
		truth := time.Duration(rng.Int64N(int64(200*time.Millisecond))) - 100*time.Millisecond
		for step := range 60 {
			// Time passes; the oscillator drifts at up to 50 ppm, the
			// daemon slews at what the kernel says (read at least once
			// per interval, as Run does every second).
			slew := 0.0
			if rng.IntN(4) == 0 {
				slew = float64(rng.IntN(2000))
			}
			kern.set(KernelClock{FreqPPM: slew, TickUS: 10000, NominalTickUS: 10000})
			s.Current()
			dt := time.Duration(rng.Int64N(int64(20 * time.Second)))
			osc := (rng.Float64()*2 - 1) * DefaultMaxDriftPPM
			sign := []float64{-1, 1}[rng.IntN(2)]
			truth += time.Duration(float64(dt) * (osc + sign*slew) / 1e6)
			clk.Advance(dt)
			kern.set(KernelClock{TickUS: 10000, NominalTickUS: 10000})
			switch rng.IntN(3) {
			case 0: // a good round: θ ± b holding the truth
				b := time.Duration(rng.Int64N(int64(time.Millisecond))) + time.Microsecond
				e := Estimate{Status: Synchronized, MaxDriftPPM: DefaultMaxDriftPPM, ErrorBound: b, AsOf: clk.Now(),
					Offset: truth + time.Duration(rng.Int64N(int64(2*b)+1)) - b}
				s.install(e, ReadClock(clk))
			case 1: // a failed round
				s.install(Estimate{Status: Unsynchronized, MaxDriftPPM: DefaultMaxDriftPPM, AsOf: clk.Now(), Reason: "all 3 servers unreachable"}, ReadClock(clk))
			}
			e, at := s.CurrentAt()
			if e.Status != Synchronized {
				continue
			}
			if b := e.BoundAt(at.Wall); (truth - e.Offset).Abs() > b {
				t.Fatalf("seed %d step %d: truth %v outside %v ± %v (age %v, slew %v ppm, failed %d)",
					seed, step, truth, e.Offset, b, e.Age(at.Wall), e.SlewPPM, e.FailedRounds)
			}
		}
	}
}

type fakeKernel struct {
	mu  sync.Mutex
	k   KernelClock
	err error
}

func (f *fakeKernel) set(k KernelClock) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.k = k
}

func (f *fakeKernel) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeKernel) ReadKernel() (KernelClock, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.k, f.err
}
