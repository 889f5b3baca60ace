package window

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The property: whenever Compute returns a window, every instant of it —
// widened by the target clock bound β on both sides — lies inside EVERY
// node's true paused interval [P_i, U_i], however the clocks were skewed and
// however the estimates erred within their bounds.

const (
	propCases = 1_000_000
	propSeed1 = 0x5717_1700
	propSeed2 = 0xD06_F00D
	century   = 100 * 365 * 24 * time.Hour
)

// truth is one node's true timeline, in nanoseconds from the generator's
// base: paused-and-drained from P, unpaused at U.
type truth struct{ P, U int64 }

// propCase is one generated scenario.
type propCase struct {
	base    time.Time
	targets []Target
	truths  []truth
	opts    Options
	// tags for coverage accounting
	hugeSkew, equalBounds bool
}

// generator draws scenarios from a seeded RNG. Every draw mixes exact edge
// values (zero, ±ε, equal bounds, zero-width holds) with random ones so
// boundaries are hit. It works in int64 nanoseconds from a base instant and
// builds a time.Time only for each reading, to stay fast under -race.
type generator struct {
	rng  *rand.Rand
	base time.Time
}

func newGenerator() *generator {
	return &generator{
		rng:  rand.New(rand.NewPCG(propSeed1, propSeed2)),
		base: time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC),
	}
}

const (
	nsµs = int64(time.Microsecond)
	nsms = int64(time.Millisecond)
)

// upTo is a uniform value in [0, d].
func (g *generator) upTo(d int64) int64 {
	if d <= 0 {
		return 0
	}
	return g.rng.Int64N(d + 1)
}

// signed is a uniform value in [−d, d].
func (g *generator) signed(d int64) int64 { return g.upTo(2*d) - d }

// bound draws an error bound for the case's bound mode.
func (g *generator) bound(mode int, shared int64) int64 {
	switch mode {
	case 0:
		return 0
	case 1:
		return shared
	case 2:
		return g.upTo(2 * nsms)
	default:
		return g.upTo(50 * nsms)
	}
}

// estimateError draws e with |e| ≤ eps from two mode bits: exactly +eps,
// exactly −eps, 0, or uniform.
func (g *generator) estimateError(bits uint64, eps int64) int64 {
	switch bits & 3 {
	case 0:
		return eps
	case 1:
		return -eps
	case 2:
		return 0
	default:
		return g.signed(eps)
	}
}

// readDelay is how long after P (or before U) the agent read its clock:
// zero or up to 2ms, by one mode bit.
func (g *generator) readDelay(bit uint64) int64 {
	if bit&1 == 0 {
		return 0
	}
	return g.upTo(2 * nsms)
}

// reading is what an agent whose clock runs skew ahead of true time reports
// when it reads its clock at true instant at (ns from base), under an
// estimate with error e and bound eps: local = at + skew, θ = −skew + e.
func reading(base time.Time, at, skew, e, eps int64) Reading {
	return Reading{Local: base.Add(time.Duration(at + skew)), Offset: time.Duration(e - skew), Bound: time.Duration(eps)}
}

func (g *generator) next(c *propCase) {
	modes := g.rng.Uint64()
	take := func(bits uint) uint64 { v := modes & (1<<bits - 1); modes >>= bits; return v }
	n := 1 + int(take(8))%6
	tight := take(4) == 0 // 1/16: hold exactly 2β (+0..2ns), estimates at the worst edge
	boundMode := int(take(2))
	skewMode := take(2)
	jitterP := int64(take(1)) * nsms
	jitterU := int64(take(1)) * nsms
	var hold int64
	switch take(2) {
	case 0:
	case 1:
		hold = g.upTo(10 * nsµs)
	case 2:
		hold = g.upTo(5 * nsms)
	default:
		hold = g.upTo(100 * nsms)
	}
	shared := g.upTo(2 * nsms)
	start := g.signed(24 * int64(time.Hour))
	c.base = g.base
	c.hugeSkew = skewMode == 3
	c.equalBounds = boundMode <= 1
	var minWidth, beta int64
	switch take(2) {
	case 1:
		minWidth = nsms
	case 2:
		minWidth = g.upTo(2 * nsms)
	}
	if take(2) == 0 {
		beta = g.upTo(nsms)
	}
	disjoint := -1
	if take(3) == 0 {
		disjoint = int(take(8)) % n
	}
	if tight {
		jitterP, jitterU, disjoint = 0, 0, -1
		beta = g.upTo(nsms)
		hold = 2*beta + g.upTo(2)
		minWidth = g.upTo(2)
	}
	c.opts = Options{MinWidth: time.Duration(minWidth), TargetClockBound: time.Duration(beta)}
	c.targets, c.truths = c.targets[:0], c.truths[:0]
	for i := range n {
		p := start + g.upTo(jitterP)
		u := start + hold + g.upTo(jitterU)
		if i == disjoint {
			shift := g.signed(2*hold + 10*nsms)
			p, u = p+shift, u+shift
		}
		if u <= p {
			u = p + 1 + g.upTo(nsµs)
		}
		var skew int64
		switch skewMode {
		case 1:
			skew = g.signed(nsms)
		case 2:
			skew = g.signed(10 * int64(time.Second))
		case 3:
			skew = g.signed(int64(century))
		}
		nodeBits := g.rng.Uint64()
		epsA, epsU := g.bound(boundMode, shared), g.bound(boundMode, shared)
		eA, eU := g.estimateError(nodeBits, epsA), g.estimateError(nodeBits>>2, epsU)
		dA, dU := g.readDelay(nodeBits>>4), g.readDelay(nodeBits>>5)
		// The clock may drift (or be re-estimated) between the two readings.
		skewU := skew + g.signed(nsµs)
		if tight {
			eA, eU, dA, dU, skewU = -epsA, epsU, 0, 0, skew
		}
		c.truths = append(c.truths, truth{P: p, U: u})
		c.targets = append(c.targets, Target{
			Node:    nodeNames[i],
			Ack:     reading(c.base, p+dA, skew, eA, epsA),
			Unpause: reading(c.base, u-dU, skewU, eU, epsU),
		})
	}
}

var nodeNames = []string{"ledger-1", "ledger-2", "ledger-3", "auditor-1", "auditor-2", "auditor-3"}

// violation is the first node whose true paused interval does not contain
// [start−β, end+β], or −1.
func violation(c *propCase, start, end time.Time) int {
	beta := int64(c.opts.TargetClockBound)
	lo, hi := int64(start.Sub(c.base))-beta, int64(end.Sub(c.base))+beta
	for i, tr := range c.truths {
		if lo < tr.P || hi > tr.U {
			return i
		}
	}
	return -1
}

// accepts applies Compute's validity rule to an edge pair.
func accepts(start, end time.Time, opts Options) bool {
	w := end.Sub(start)
	return w > 0 && w >= opts.MinWidth
}

// A mutant computes window edges some other way; unsound ones must be caught.
type mutant struct {
	name  string
	edges func(ts []Target, opts Options) (start, end time.Time)
}

// edgesWith folds the targets with the given per-target edge functions.
func edgesWith(ts []Target, s, e func(Target) time.Time, pickStart func(a, b time.Time) bool) (time.Time, time.Time) {
	start, end := s(ts[0]), e(ts[0])
	for _, t := range ts[1:] {
		if v := s(t); pickStart(v, start) {
			start = v
		}
		if v := e(t); v.Before(end) {
			end = v
		}
	}
	return start, end
}

func after(a, b time.Time) bool  { return a.After(b) }
func before(a, b time.Time) bool { return a.Before(b) }

func center(r Reading) time.Time { return r.Local.Add(r.Offset) }

var unsoundMutants = []mutant{
	{"bounds ignored", func(ts []Target, o Options) (time.Time, time.Time) {
		s, e := edgesWith(ts, func(t Target) time.Time { return center(t.Ack) }, func(t Target) time.Time { return center(t.Unpause) }, after)
		return s.Add(o.TargetClockBound), e.Add(-o.TargetClockBound)
	}},
	{"bound signs flipped", func(ts []Target, o Options) (time.Time, time.Time) {
		s, e := edgesWith(ts, Target.ackEarliest, Target.unpauseLatest, after)
		return s.Add(o.TargetClockBound), e.Add(-o.TargetClockBound)
	}},
	{"target clock bound ignored", func(ts []Target, o Options) (time.Time, time.Time) {
		return edgesWith(ts, Target.ackLatest, Target.unpauseEarliest, after)
	}},
	{"start from the earliest ack", func(ts []Target, o Options) (time.Time, time.Time) {
		s, e := edgesWith(ts, Target.ackLatest, Target.unpauseEarliest, before)
		return s.Add(o.TargetClockBound), e.Add(-o.TargetClockBound)
	}},
}

func (t Target) ackLatest() time.Time       { return t.Ack.Latest() }
func (t Target) ackEarliest() time.Time     { return t.Ack.Earliest() }
func (t Target) unpauseLatest() time.Time   { return t.Unpause.Latest() }
func (t Target) unpauseEarliest() time.Time { return t.Unpause.Earliest() }

// coverage counts what the generated cases exercised, so a generator that
// drifts into trivial cases fails the test instead of passing vacuously.
type coverage struct {
	valid, invalid, zeroWidth, singleValid, hugeSkewValid, equalBoundsValid, betaValid int
	touchStart, touchEnd, atMinWidth                                                   int
}

func TestComputeSoundProperty(t *testing.T) {
	g := newGenerator()
	var c propCase
	var cov coverage
	caught := make([]int, len(unsoundMutants))
	firstCatch := make([]string, len(unsoundMutants))
	for k := range propCases {
		g.next(&c)
		for m, mu := range unsoundMutants {
			if caught[m] > 0 && k%16 != 0 {
				continue // already caught; keep sampling a sixteenth to report a rate
			}
			s, e := mu.edges(c.targets, c.opts)
			if accepts(s, e, c.opts) {
				if i := violation(&c, s, e); i >= 0 {
					if caught[m] == 0 {
						firstCatch[m] = describe(&c, i, s, e)
					}
					caught[m]++
				}
			}
		}
		w, err := Compute(c.targets, c.opts)
		if err != nil {
			iw, ok := err.(*InvalidWindowError)
			if !ok {
				t.Fatalf("case %d: Compute: %v", k, err)
			}
			cov.invalid++
			if iw.Window.Width == 0 {
				cov.zeroWidth++
			}
			continue
		}
		cov.valid++
		if i := violation(&c, w.Start, w.End); i >= 0 {
			t.Fatalf("case %d: Compute returned an unsound window:\n%s", k, describe(&c, i, w.Start, w.End))
		}
		if w.Width != w.End.Sub(w.Start) || w.Width <= 0 || w.Width < c.opts.MinWidth {
			t.Fatalf("case %d: width %v for [%v, %v], min %v", k, w.Width, w.Start, w.End, c.opts.MinWidth)
		}
		if w.RestorePoint.Before(w.Start) || w.RestorePoint.After(w.End) ||
			w.RestorePoint.Sub(w.Start) != w.Width/2 || w.End.Sub(w.RestorePoint) != w.Uncertainty {
			t.Fatalf("case %d: restore point %v ± %v not the mid-time of [%v, %v]", k, w.RestorePoint, w.Uncertainty, w.Start, w.End)
		}
		cov.count(&c, w)
	}
	t.Logf("%d cases: %+v", propCases, cov)
	for m, mu := range unsoundMutants {
		if caught[m] == 0 {
			t.Errorf("the checker found no counterexample for the unsound variant %q", mu.name)
			continue
		}
		t.Logf("unsound variant %q caught (%d times); first:\n%s", mu.name, caught[m], firstCatch[m])
	}
	cov.require(t)
}

func (cov *coverage) count(c *propCase, w Window) {
	beta := c.opts.TargetClockBound
	lo, hi := int64(w.Start.Sub(c.base)-beta), int64(w.End.Sub(c.base)+beta)
	for _, tr := range c.truths {
		if lo == tr.P {
			cov.touchStart++
		}
		if hi == tr.U {
			cov.touchEnd++
		}
	}
	if w.Width == c.opts.MinWidth {
		cov.atMinWidth++
	}
	if len(c.targets) == 1 {
		cov.singleValid++
	}
	if c.hugeSkew {
		cov.hugeSkewValid++
	}
	if c.equalBounds {
		cov.equalBoundsValid++
	}
	if beta > 0 {
		cov.betaValid++
	}
}

// require fails the test if the generator missed a class of cases.
func (cov *coverage) require(t *testing.T) {
	t.Helper()
	checks := []struct {
		what string
		got  int
		min  int
	}{
		{"valid windows", cov.valid, propCases / 10},
		{"invalid windows", cov.invalid, propCases / 10},
		{"exactly zero-width windows (rejected)", cov.zeroWidth, 100},
		{"valid single-target windows", cov.singleValid, 1000},
		{"valid windows under huge skews", cov.hugeSkewValid, 1000},
		{"valid windows with equal bounds", cov.equalBoundsValid, 1000},
		{"valid windows with a target clock bound", cov.betaValid, 1000},
		{"windows whose start touches a true pause instant exactly", cov.touchStart, 100},
		{"valid windows exactly MinWidth wide", cov.atMinWidth, 100},
		{"windows whose end touches a true unpause instant exactly", cov.touchEnd, 100},
	}
	for _, c := range checks {
		if c.got < c.min {
			t.Errorf("generator produced %d %s, want ≥ %d", c.got, c.what, c.min)
		}
	}
}

func describe(c *propCase, i int, start, end time.Time) string {
	tr, tg := c.truths[i], c.targets[i]
	p, u := c.base.Add(time.Duration(tr.P)), c.base.Add(time.Duration(tr.U))
	return "window [" + start.Format(time.RFC3339Nano) + ", " + end.Format(time.RFC3339Nano) + "] β " + c.opts.TargetClockBound.String() +
		"\nescapes " + tg.Node + "'s true pause [" + p.Format(time.RFC3339Nano) + ", " + u.Format(time.RFC3339Nano) + "]" +
		"\nack " + tg.Ack.Local.Format(time.RFC3339Nano) + " θ " + tg.Ack.Offset.String() + " ε " + tg.Ack.Bound.String() +
		"\nunpause " + tg.Unpause.Local.Format(time.RFC3339Nano) + " θ " + tg.Unpause.Offset.String() + " ε " + tg.Unpause.Bound.String()
}
