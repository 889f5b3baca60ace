package clock

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Sampler keeps a certified estimate of the local clock's offset by polling
// NTP servers. Run polls in the background; SampleOnce runs one round.
type Sampler struct {
	cfg     Config
	log     *zap.Logger
	backoff *backoff

	mu       sync.Mutex
	have     bool
	latest   Estimate // in force: a good one is kept through failed rounds
	latestAt Reading  // when latest was assembled, for jump detection
	slew     slewTrack
	// failed counts rounds since latest that gave no estimate; lastFail
	// and lastSources are the latest such round's.
	failed      int
	lastFail    string
	lastSources []Source

	subMu sync.Mutex
	subs  map[chan Estimate]struct{}
}

// NewSampler validates cfg (filling a nil Clock and Logger) and returns a
// sampler that has not sampled yet.
func NewSampler(cfg Config) (*Sampler, error) {
	if cfg.Clock == nil {
		cfg.Clock = System
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 16 * cfg.PollInterval
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Servers = slices.Clone(cfg.Servers)
	return &Sampler{
		cfg:     cfg,
		log:     cfg.Logger.Named("clock"),
		backoff: newBackoff(cfg.PollInterval, cfg.MaxBackoff),
		subs:    map[chan Estimate]struct{}{},
	}, nil
}

// Now reads the local clock the estimates apply to.
func (s *Sampler) Now() time.Time { return s.cfg.Clock.Now() }

// Clock is the local clock the estimates apply to.
func (s *Sampler) Clock() Clock { return s.cfg.Clock }

// SampleOnce queries every server now (ignoring backoff), installs the
// result as the current estimate and returns it. It returns early, with
// the servers that had not answered marked unreachable, if ctx ends.
//
// What it returns is the estimate then in force: after a failed round
// (no majority, servers unreachable) that is the last good estimate, aged,
// until it goes stale — never a guess.
func (s *Sampler) SampleOnce(ctx context.Context) Estimate {
	e, at := s.round(ctx, false)
	s.install(e, at)
	return s.Current()
}

// Current is the latest estimate, re-evaluated now: disrupted if the wall
// clock has jumped against the monotonic clock since it was taken (smaller
// moves widen its bound), stale if it is older than StaleAfterPolls poll
// intervals. Before the first round it is unsynchronized.
//
// The bound is the one in force at the moment of the evaluation: grown at
// max drift, plus the kernel's slew rate integrated since the sample, plus
// every offset handed to the kernel to slew (see kernel.go).
func (s *Sampler) Current() Estimate {
	e, _ := s.CurrentAt()
	return e
}

// CurrentAt is Current together with the local reading it was evaluated
// at: a stamp read at now.Wall carries exactly this estimate and bound.
func (s *Sampler) CurrentAt() (Estimate, Reading) {
	k, kerr := s.readKernel()
	now := ReadClock(s.cfg.Clock)
	s.mu.Lock()
	if !s.have {
		s.mu.Unlock()
		return Estimate{Status: Unsynchronized, Reason: "no sampling round has completed yet", MaxDriftPPM: s.cfg.MaxDriftPPM}, now
	}
	if s.cfg.Kernel != nil {
		s.slew.observe(k, kerr, now)
	}
	e, at, slew := s.copyOf(s.latest), s.latestAt, s.slew
	failed, lastFail, lastSources := s.failed, s.lastFail, slices.Clone(s.lastSources)
	s.mu.Unlock()
	if failed > 0 {
		e.FailedRounds, e.LastFailure, e.Sources = failed, lastFail, lastSources
	}
	return s.evaluate(e, at, now, slew), now
}

// Stamp reads the local clock and pairs it with the estimate evaluated at
// that very reading.
func (s *Sampler) Stamp() (time.Time, Estimate) {
	e, now := s.CurrentAt()
	return now.Wall, e
}

func (s *Sampler) readKernel() (KernelClock, error) {
	if s.cfg.Kernel == nil {
		return KernelClock{}, nil
	}
	return s.cfg.Kernel.ReadKernel()
}

// Subscribe returns a channel that receives every new estimate (after each
// round, and when a jump is detected between rounds). It holds only the
// latest: a slow reader misses intermediate estimates, never blocks the
// sampler. Call cancel to stop.
func (s *Sampler) Subscribe() (updates <-chan Estimate, cancel func()) {
	ch := make(chan Estimate, 1)
	s.subMu.Lock()
	s.subs[ch] = struct{}{}
	s.subMu.Unlock()
	return ch, func() {
		s.subMu.Lock()
		delete(s.subs, ch)
		s.subMu.Unlock()
	}
}

// Run polls every PollInterval (jittered), honoring backoff, until ctx
// ends; between rounds it checks the clock for jumps about once a second.
func (s *Sampler) Run(ctx context.Context) {
	check := min(time.Second, s.cfg.PollInterval)
	ticker := time.NewTicker(check)
	defer ticker.Stop()
	for {
		e, at := s.round(ctx, true)
		if ctx.Err() != nil {
			return
		}
		s.install(e, at)
		s.publish(s.Current())
		timer := time.NewTimer(s.nextPoll())
		reported := false
	wait:
		for {
			select {
			case <-ctx.Done():
				timer.Stop()
				return
			case <-timer.C:
				break wait
			case <-ticker.C:
				if cur := s.Current(); cur.Status == Disrupted && !reported {
					reported = true
					s.log.Warn("clock disrupted", zap.String("reason", cur.Reason))
					s.publish(cur)
				}
			}
		}
	}
}

func (s *Sampler) nextPoll() time.Duration {
	j := s.cfg.Jitter * (2*rand.Float64() - 1)
	return time.Duration(float64(s.cfg.PollInterval) * (1 + j))
}

// install makes a round's result the estimate in force — unless the round
// failed (no majority, servers unreachable, a slew rate it cannot read)
// while a good estimate is still usable: then the good one stays in force,
// aging, and the failure is counted, until it goes stale (SPEC: a failed
// round never replaces a good estimate with a guess). A disrupted round
// (the wall clock jumped during it) always replaces it: the old offset no
// longer applies to this clock.
func (s *Sampler) install(e Estimate, at Reading) {
	k, kerr := s.readKernel()
	s.mu.Lock()
	prev, had := s.latest, s.have
	keep := false
	if e.Status == Unsynchronized && had && prev.Status == Synchronized {
		slew := s.slew
		if s.cfg.Kernel != nil {
			slew.observe(k, kerr, at)
		}
		keep = s.evaluate(s.copyOf(prev), s.latestAt, at, slew).Status == Synchronized
	}
	if keep {
		s.failed++
		s.lastFail, s.lastSources = e.Reason, slices.Clone(e.Sources)
		if s.cfg.Kernel != nil {
			s.slew.observe(k, kerr, at)
		}
		failed := s.failed
		s.mu.Unlock()
		s.log.Warn("sampling round failed; keeping the last good estimate, aging",
			zap.Int("failed_rounds", failed), zap.String("reason", e.Reason),
			zap.Time("sampled_at", prev.AsOf), zap.Float64("offset_ms", ms(prev.Offset)))
		return
	}
	s.latest, s.latestAt, s.have = e, at, true
	s.failed, s.lastFail, s.lastSources = 0, "", nil
	s.slew = slewTrack{}
	if s.cfg.Kernel != nil {
		s.slew = newSlewTrack(k, kerr, at)
	}
	s.mu.Unlock()
	s.logChange(prev, had, e)
}

func (s *Sampler) publish(e Estimate) {
	s.subMu.Lock()
	defer s.subMu.Unlock()
	for ch := range s.subs {
		select { // drop the unread older estimate: latest wins
		case <-ch:
		default:
		}
		ch <- s.copyOf(e)
	}
}

func (s *Sampler) logChange(prev Estimate, had bool, e Estimate) {
	fields := []zap.Field{
		zap.String("status", e.Status.String()),
		zap.Float64("offset_ms", ms(e.Offset)),
		zap.Float64("error_bound_ms", ms(e.ErrorBound)),
	}
	falsetickers := falsetickersOf(e)
	changed := !had || prev.Status != e.Status || !slices.Equal(falsetickers, falsetickersOf(prev))
	switch {
	case !changed:
		s.log.Debug("clock sampled", fields...)
	case e.Status == Synchronized && len(falsetickers) == 0:
		s.log.Info("clock synchronized", fields...)
	default:
		s.log.Warn("clock estimate changed", append(fields, zap.String("reason", e.Reason), zap.Strings("falsetickers", falsetickers))...)
	}
}

func falsetickersOf(e Estimate) []string {
	var out []string
	for _, src := range e.Sources {
		if src.Verdict == Falseticker {
			out = append(out, src.Address)
		}
	}
	return out
}

// evaluate re-judges estimate e, assembled at reading at, as of reading
// now, with what the kernel did to the clock since (slew).
func (s *Sampler) evaluate(e Estimate, at, now Reading, slew slewTrack) Estimate {
	if s.cfg.Kernel != nil && slew.reads > 0 {
		kc := slew.latest
		e.Kernel = &kc
		e.SlewPPM, e.SlewOffset, e.SlewAsOf = slew.rate, slew.offset(), slew.atWall
	}
	jump := wallJump(at, now)
	if jump.Abs() > s.cfg.JumpThreshold {
		e.Status = Disrupted
		e.Reason = fmt.Sprintf("wall clock jumped %s against the monotonic clock since the sample at %s (threshold %v)",
			fmtSigned(jump.Round(time.Microsecond)), e.AsOf.UTC().Format(time.RFC3339Nano), s.cfg.JumpThreshold)
		return e
	}
	if e.Status != Synchronized {
		return e // no bound to widen: an unsynchronized estimate has none
	}
	// A move below the threshold is still a move: widen the bound by it.
	e.ErrorBound += jump.Abs()
	if slew.err != nil {
		e.Status = Unsynchronized
		e.Reason = fmt.Sprintf("cannot tell how fast the host's time daemon is slewing the clock since the sample at %s: %v",
			e.AsOf.UTC().Format(time.RFC3339Nano), slew.err)
		return e
	}
	staleAfter := time.Duration(s.cfg.StaleAfterPolls) * s.cfg.PollInterval
	if age := now.Mono - at.Mono; age > staleAfter {
		e.Status = Stale
		e.Reason = fmt.Sprintf("no fresh sample for %v (more than %d poll intervals of %v)",
			age.Round(time.Millisecond), s.cfg.StaleAfterPolls, s.cfg.PollInterval)
		if e.FailedRounds > 0 {
			e.Reason += fmt.Sprintf("; %d rounds failed since, the latest: %s", e.FailedRounds, e.LastFailure)
		}
	}
	return e
}

func (s *Sampler) copyOf(e Estimate) Estimate {
	e.Sources = slices.Clone(e.Sources)
	return e
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
