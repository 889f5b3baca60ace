package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/stillpoint-dev/stillpoint/internal/clock"
	"github.com/stillpoint-dev/stillpoint/internal/ntptest"
)

func init() {
	subcommands = append(subcommands, newClockCmd, newNTPTestCmd)
}

// exitNotSynchronized is the exit status of `clock probe` when the
// estimate is not synchronized: the command ran and the answer is no.
const exitNotSynchronized = exitNotCompleted

func newClockCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "clock",
		Short: "Measure this host's clock against NTP servers",
		Long: `Measure this host's clock the way an agent does: sample NTP servers, select
the majority with the intersection algorithm and print the offset with its
certified error bound.`,
		Example: `  stillpoint clock probe --server 0.pool.ntp.org:123 --server 1.pool.ntp.org:123 --server 2.pool.ntp.org:123`,
		Args:    cobra.NoArgs,
	}
	cmd.AddCommand(newClockProbeCmd())
	return cmd
}

type probeFlags struct {
	servers       []string
	output        string
	timeout       time.Duration
	maxDriftPPM   float64
	maxDispersion time.Duration
	localSkew     time.Duration
}

func newClockProbeCmd() *cobra.Command {
	f := probeFlags{}
	def := clock.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Run one sampling round and print the certified clock estimate",
		Long: `Query every NTP server once (concurrently), select with the intersection
(Marzullo) algorithm requiring a majority of the servers, and print the
estimate — like 'chronyc tracking' and 'chronyc sources' together:

  offset       what to add to this host's clock to get true time
  error bound  true time is within offset ± bound (RTT/2 + root delay/2 +
               root dispersion + precision of the agreeing servers,
               intersected); it grows by --max-drift-ppm with age
  status       synchronized, or unsynchronized with the reason (no majority,
               servers not synchronized yet, kiss-of-death, unreachable)

then one row per server with its offset, round-trip time, stratum, bound and
verdict: selected, falseticker (outside the majority interval), no-majority
(answered, but no majority agrees, so nobody is outvoted), not-synchronized
(leap 3 / stratum 0: the server has no time yet, e.g. a starting chronyd),
unreachable (no reply: no figures at all) or invalid (bad packet, impossible
reply T3−T2 > T4−T1, kiss-of-death, bad stratum, dispersion above
--max-dispersion), with the reason. -o json gives per server the root delay,
root dispersion, precision and RTT the bound is made of.

Exit status: 0 when the estimate is synchronized, 3 when it is not (the
estimate is still printed), 2 on a usage error, 1 when it cannot run.`,
		Example: `  stillpoint clock probe --server 0.pool.ntp.org:123 --server 1.pool.ntp.org:123 --server 2.pool.ntp.org:123
  stillpoint clock probe --server 127.0.0.1:12301 --server 127.0.0.1:12302 --server 127.0.0.1:12303 -o json

  # against local test servers (see 'stillpoint ntptest --help'):
  stillpoint ntptest --listen 127.0.0.1:12301 --offset 40ms &
  stillpoint ntptest --listen 127.0.0.1:12302 --offset 40ms &
  stillpoint ntptest --listen 127.0.0.1:12303 --liar &
  stillpoint clock probe --server 127.0.0.1:12301 --server 127.0.0.1:12302 --server 127.0.0.1:12303`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runProbe(cmd.Context(), cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.servers, "server", def.Servers, "NTP server as host:port (repeat; 3 or more for a meaningful majority)")
	fl.StringVarP(&f.output, "output", "o", "text", "output format: text or json")
	fl.DurationVar(&f.timeout, "timeout", def.Timeout, "how long to wait for each server's reply")
	fl.Float64Var(&f.maxDriftPPM, "max-drift-ppm", def.MaxDriftPPM, "rate at which the error bound grows with age, in parts per million")
	fl.DurationVar(&f.maxDispersion, "max-dispersion", def.MaxDispersion, "servers reporting more root dispersion are invalid")
	fl.DurationVar(&f.localSkew, "local-skew", 0, "pretend this host's clock is off by this much (demo: +40ms gives an offset of about -40ms)")
	return cmd
}

func runProbe(ctx context.Context, w io.Writer, f probeFlags) error {
	if f.output == outputTable {
		f.output = "text" // the coordinator commands' name for it
	}
	if f.output != "text" && f.output != "json" {
		return usagef("--output %q: want text or json", f.output)
	}
	if ctx == nil {
		ctx = context.Background()
	}
	cfg := clock.DefaultConfig()
	cfg.Servers = f.servers
	cfg.Timeout = f.timeout
	cfg.MaxDriftPPM = f.maxDriftPPM
	cfg.MaxDispersion = f.maxDispersion
	if f.localSkew != 0 {
		cfg.Clock = clock.NewSkewed(f.localSkew)
	}
	s, err := clock.NewSampler(cfg)
	if err != nil {
		return err
	}
	e := s.SampleOnce(ctx)
	if f.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		err = enc.Encode(newProbeReport(e))
	} else {
		err = printProbe(w, e)
	}
	if err != nil {
		return err
	}
	if e.Status != clock.Synchronized {
		return exitError{code: exitNotSynchronized}
	}
	return nil
}

// probeReport is the JSON form of an estimate.
type probeReport struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
	// OffsetMs and ErrorBoundMs are absent when there is no estimate
	// (unsynchronized, disrupted): never a certified-looking 0 ± 0.
	OffsetMs     *float64 `json:"offset_ms,omitempty"`
	ErrorBoundMs *float64 `json:"error_bound_ms,omitempty"`
	MaxDriftPPM  float64  `json:"max_drift_ppm"`
	// SlewPPM: the host kernel's slew rate (adjtimex) the bound also
	// grows at; Kernel is the reading (absent where it cannot be read).
	SlewPPM     float64       `json:"slew_ppm"`
	Kernel      *probeKernel  `json:"kernel,omitempty"`
	SampledAt   string        `json:"sampled_at,omitempty"`
	LeapPending bool          `json:"leap_pending"`
	Sources     []probeSource `json:"sources"`
}

type probeKernel struct {
	FreqPPM         float64 `json:"freq_ppm"`
	TickUS          int64   `json:"tick_us"`
	NominalTickUS   int64   `json:"nominal_tick_us"`
	PendingOffsetMs float64 `json:"pending_offset_ms"`
	Status          string  `json:"status"`
	Unsynchronized  bool    `json:"unsynchronized"`
}

// probeSource is one server. The figures are pointers: a server that did
// not answer has none at all (absent, not 0).
type probeSource struct {
	Address          string   `json:"address"`
	Verdict          string   `json:"verdict"`
	Reason           string   `json:"reason"`
	OffsetMs         *float64 `json:"offset_ms,omitempty"`
	RTTMs            *float64 `json:"rtt_ms,omitempty"`
	Stratum          *uint8   `json:"stratum,omitempty"`
	Leap             *uint8   `json:"leap,omitempty"`
	RootDelayMs      *float64 `json:"root_delay_ms,omitempty"`
	RootDispersionMs *float64 `json:"root_dispersion_ms,omitempty"`
	PrecisionMs      *float64 `json:"precision_ms,omitempty"`
	ErrorBoundMs     *float64 `json:"error_bound_ms,omitempty"`
}

func newProbeReport(e clock.Estimate) probeReport {
	r := probeReport{
		Status:      e.Status.String(),
		Reason:      e.Reason,
		MaxDriftPPM: e.MaxDriftPPM,
		SlewPPM:     e.SlewPPM,
		LeapPending: e.LeapPending,
		Sources:     []probeSource{},
	}
	if e.Status == clock.Synchronized || e.Status == clock.Stale {
		off, bound := msf(e.Offset), msf(e.ErrorBound)
		r.OffsetMs, r.ErrorBoundMs = &off, &bound
	}
	if k := e.Kernel; k != nil {
		r.Kernel = &probeKernel{FreqPPM: k.FreqPPM, TickUS: k.TickUS, NominalTickUS: k.NominalTickUS,
			PendingOffsetMs: msf(k.PendingOffset), Status: fmt.Sprintf("%#x", k.Status), Unsynchronized: k.Unsynchronized()}
	}
	if !e.AsOf.IsZero() {
		r.SampledAt = e.AsOf.UTC().Format(time.RFC3339Nano)
	}
	for _, s := range e.Sources {
		ps := probeSource{Address: s.Address, Verdict: s.Verdict.String(), Reason: s.Reason}
		if s.Answered {
			ms := func(d time.Duration) *float64 { v := msf(d); return &v }
			stratum, leap := s.Stratum, s.Leap
			ps.OffsetMs, ps.RTTMs, ps.ErrorBoundMs = ms(s.Offset), ms(s.RTT), ms(s.ErrorBound)
			ps.RootDelayMs, ps.RootDispersionMs, ps.PrecisionMs = ms(s.RootDelay), ms(s.RootDispersion), ms(s.Precision)
			ps.Stratum, ps.Leap = &stratum, &leap
		}
		r.Sources = append(r.Sources, ps)
	}
	return r
}

func msf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func printProbe(w io.Writer, e clock.Estimate) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Status        : %s\n", e.Status)
	if e.Reason != "" {
		fmt.Fprintf(&b, "Reason        : %s\n", e.Reason)
	}
	if e.Status == clock.Synchronized {
		slow := "slow"
		if e.Offset < 0 {
			slow = "fast"
		}
		fmt.Fprintf(&b, "Offset        : %+.3f ms (this host's clock is %.3f ms %s)\n", msf(e.Offset), msf(e.Offset.Abs()), slow)
		fmt.Fprintf(&b, "Error bound   : ±%.3f ms (grows %g ppm with age: max drift %g + kernel slew %g)\n", msf(e.ErrorBound), e.RatePPM(), e.MaxDriftPPM, e.SlewPPM)
		fmt.Fprintf(&b, "True offset in: [%+.3f ms, %+.3f ms]\n", msf(e.Offset-e.ErrorBound), msf(e.Offset+e.ErrorBound))
		leap := "no"
		if e.LeapPending {
			leap = "yes"
		}
		fmt.Fprintf(&b, "Leap pending  : %s\n", leap)
	}
	if !e.AsOf.IsZero() {
		fmt.Fprintf(&b, "Sampled at    : %s\n", e.AsOf.UTC().Format(time.RFC3339Nano))
	}
	counts := map[clock.Verdict]int{}
	for _, s := range e.Sources {
		counts[s.Verdict]++
	}
	if k := e.Kernel; k != nil {
		fmt.Fprintf(&b, "Kernel        : %s\n", k)
	}
	fmt.Fprintf(&b, "Sources       : %d (%d selected, %d falseticker, %d no majority, %d not synchronized, %d unreachable, %d invalid)\n\n",
		len(e.Sources), counts[clock.Selected], counts[clock.Falseticker], counts[clock.NoMajority], counts[clock.NotSynchronized], counts[clock.Unreachable], counts[clock.Invalid])
	if _, err := io.WriteString(w, b.String()); err != nil {
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tVERDICT\tOFFSET(ms)\tRTT(ms)\tSTRATUM\tROOT DELAY(ms)\tROOT DISP(ms)\tBOUND(ms)\tREASON")
	for _, s := range e.Sources {
		if !s.Answered {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t%s\n", s.Address, s.Verdict, s.Reason)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%+.3f\t%.3f\t%d\t%.3f\t%.3f\t%.3f\t%s\n",
			s.Address, s.Verdict, msf(s.Offset), msf(s.RTT), s.Stratum, msf(s.RootDelay), msf(s.RootDispersion), msf(s.ErrorBound), s.Reason)
	}
	return tw.Flush()
}

type ntptestFlags struct {
	listen         string
	offset         time.Duration
	stratum        uint8
	rootDelay      time.Duration
	rootDispersion time.Duration
	precision      int8
	leap           uint8
	kiss           string
	latency        time.Duration
	drop           bool
	badPacket      string
	liar           bool
}

func newNTPTestCmd() *cobra.Command {
	f := ntptestFlags{}
	def := ntptest.DefaultSettings()
	cmd := &cobra.Command{
		Use:   "ntptest",
		Short: "Run a test NTP server (offset, liar, kiss-of-death, ...) for demos and tests",
		Long: `Serve NTP (RFC 5905, v3/v4 server mode) on UDP with a clock that is
--offset away from this host's clock, and optionally misbehaving: a liar
(random offsets of 200 ms to 1 s either way, a falseticker), kiss-of-death,
leap indicator 3, stratum 0 or 16, added latency, dropped replies or malformed
packets. Runs until interrupted (Ctrl-C). Not for production use.`,
		Example: `  stillpoint ntptest --listen 127.0.0.1:12301 --offset 40ms
  stillpoint ntptest --listen 127.0.0.1:12303 --liar
  stillpoint ntptest --listen 127.0.0.1:12304 --kiss RATE
  stillpoint ntptest --listen 127.0.0.1:12305 --bad-packet short`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runNTPTest(ctx, cmd.OutOrStdout(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:12300", "UDP address to serve on (port 0 picks a free one)")
	fl.DurationVar(&f.offset, "offset", 0, "offset of the served clock from this host's clock")
	fl.Uint8Var(&f.stratum, "stratum", def.Stratum, "stratum (1-15 valid; 0 and 16 are refused by clients)")
	fl.DurationVar(&f.rootDelay, "root-delay", def.RootDelay, "root delay to report")
	fl.DurationVar(&f.rootDispersion, "root-dispersion", def.RootDispersion, "root dispersion to report")
	fl.Int8Var(&f.precision, "precision", def.Precision, "precision as log2 seconds (-20 is about 1 µs)")
	fl.Uint8Var(&f.leap, "leap", 0, "leap indicator: 0 none, 1 add, 2 delete, 3 not synchronized")
	fl.StringVar(&f.kiss, "kiss", "", "answer every request with this kiss-of-death code (RATE, DENY, RSTR)")
	fl.DurationVar(&f.latency, "latency", 0, "delay every reply by this much (on the request path)")
	fl.BoolVar(&f.drop, "drop", false, "never reply (clients time out)")
	fl.StringVar(&f.badPacket, "bad-packet", "none", "send malformed replies: none, short, wrong-origin, wrong-mode, zero-transmit, impossible (T3−T2 > T4−T1)")
	fl.BoolVar(&f.liar, "liar", false, "answer with a random offset of 200 ms to 1 s either way (a falseticker)")
	return cmd
}

func runNTPTest(ctx context.Context, w io.Writer, f ntptestFlags) error {
	bp, err := ntptest.ParseBadPacket(f.badPacket)
	if err != nil {
		return err
	}
	cfg := ntptest.DefaultConfig()
	cfg.Addr = f.listen
	st := &cfg.Settings
	st.Offset, st.Stratum, st.RootDelay, st.RootDispersion = f.offset, f.stratum, f.rootDelay, f.rootDispersion
	st.Precision, st.Leap, st.KissCode, st.Latency = f.precision, f.leap, f.kiss, f.latency
	st.Drop, st.BadPacket, st.Liar = f.drop, bp, f.liar
	srv, err := ntptest.Start(cfg)
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()
	if _, err := fmt.Fprintf(w, "ntptest serving NTP on %s (offset %v, stratum %d, leap %d, liar %v, kiss %q, drop %v, bad-packet %s); Ctrl-C to stop\n",
		srv.Addr(), st.Offset, st.Stratum, st.Leap, st.Liar, st.KissCode, st.Drop, st.BadPacket); err != nil {
		return err
	}
	<-ctx.Done()
	// Close first: it waits for the replies in flight, so the counts
	// include a reply the client already has.
	closeErr := srv.Close()
	_, err = fmt.Fprintf(w, "ntptest %s: %d requests, %d replies\n", srv.Addr(), srv.Requests(), srv.Replies())
	return errors.Join(err, closeErr)
}
