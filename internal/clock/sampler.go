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
	latest   Estimate
	latestAt Reading // when latest was assembled, for jump detection

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
func (s *Sampler) SampleOnce(ctx context.Context) Estimate {
	e, at := s.round(ctx, false)
	s.install(e, at)
	return s.copyOf(e)
}

// Current is the latest estimate, re-evaluated now: disrupted if the wall
// clock has jumped against the monotonic clock since it was taken (smaller
// moves widen its bound), stale if it is older than StaleAfterPolls poll
// intervals. Before the first round it is unsynchronized.
func (s *Sampler) Current() Estimate {
	s.mu.Lock()
	e, at, have := s.latest, s.latestAt, s.have
	s.mu.Unlock()
	if !have {
		return Estimate{Status: Unsynchronized, Reason: "no sampling round has completed yet", MaxDriftPPM: s.cfg.MaxDriftPPM}
	}
	return s.evaluate(s.copyOf(e), at, ReadClock(s.cfg.Clock))
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

func (s *Sampler) install(e Estimate, at Reading) {
	s.mu.Lock()
	prev, had := s.latest, s.have
	s.latest, s.latestAt, s.have = e, at, true
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

// evaluate re-judges estimate e, assembled at reading at, as of reading now.
func (s *Sampler) evaluate(e Estimate, at, now Reading) Estimate {
	jump := wallJump(at, now)
	if jump.Abs() > s.cfg.JumpThreshold {
		e.Status = Disrupted
		e.Reason = fmt.Sprintf("wall clock jumped %s against the monotonic clock since the sample at %s (threshold %v)",
			fmtSigned(jump.Round(time.Microsecond)), e.AsOf.UTC().Format(time.RFC3339Nano), s.cfg.JumpThreshold)
		return e
	}
	// A move below the threshold is still a move: widen the bound by it.
	e.ErrorBound += jump.Abs()
	if e.Status == Synchronized {
		staleAfter := time.Duration(s.cfg.StaleAfterPolls) * s.cfg.PollInterval
		if age := now.Mono - at.Mono; age > staleAfter {
			e.Status = Stale
			e.Reason = fmt.Sprintf("no fresh sample for %v (more than %d poll intervals of %v)",
				age.Round(time.Millisecond), s.cfg.StaleAfterPolls, s.cfg.PollInterval)
		}
	}
	return e
}

func (s *Sampler) copyOf(e Estimate) Estimate {
	e.Sources = slices.Clone(e.Sources)
	return e
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
