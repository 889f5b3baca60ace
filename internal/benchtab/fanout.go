package benchtab

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
)

// PauseSample is one coordinator pause as the fan-out benchmark saw it.
type PauseSample struct {
	OpID string
	// Fanout is the operation's fanout_ns: first Pause sent → last target
	// acked.
	Fanout time.Duration
	// AcceptedToAcked runs from the leader's created_at stamp to the
	// latest target ack stamp.
	AcceptedToAcked time.Duration
	// Hold is the operation's hold_ns.
	Hold time.Duration
	// MaxBound is max ε over the targets' ack readings.
	MaxBound time.Duration
	// Need is 2·MaxBound + margin.
	Need time.Duration
}

// FanoutRun is one agent count's measurements.
type FanoutRun struct {
	Agents int
	// Startup is how long the cluster took to come up (0: unknown).
	Startup time.Duration
	// Margin, TargetClockBound and MinWindow are the runtime config the
	// pauses ran under.
	Margin, TargetClockBound, MinWindow time.Duration
	Coordinator                         []PauseSample
	// Sequential are the baseline's fan-out samples.
	Sequential []time.Duration
}

// FanoutReport is the summary `make bench` prints for the pause fan-out.
type FanoutReport struct {
	Runs []FanoutRun
	// PerPause adds a table with one row per coordinator pause.
	PerPause bool
	// Notes are printed under the fan-out table.
	Notes []string
	// Disk names where the agents' leases live, in the fan-out table's
	// title (e.g. "per-host tmpfs", "shared disk").
	Disk string
	// Markdown prints the tables as Markdown (Table.FprintMarkdown).
	Markdown bool
}

// Fprint writes the fan-out table, the hold table and, when PerPause, the
// per-pause table. Runs without samples print dashes.
func (r FanoutReport) Fprint(w io.Writer) error {
	if len(r.Runs) == 0 {
		return nil
	}
	tables, err := r.tables()
	if err != nil {
		return err
	}
	for _, t := range tables {
		if t.Rows() == 0 {
			continue
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
		if err := t.Write(w, r.Markdown); err != nil {
			return err
		}
	}
	return nil
}

func (r FanoutReport) tables() ([]*Table, error) {
	title := "Pause fan-out: 1 coordinator server, agents in-process, workload off (no drain)"
	if r.Disk != "" {
		title += ", leases on " + r.Disk
	}
	fan := &Table{
		Title: title,
		Columns: []string{"agents", "startup", "pauses", "fan-out p50", "p99", "accepted→acked p50", "p99",
			"sequential p50", "p99", "seq/fan-out p50"},
		Notes: append([]string{
			"fan-out: the coordinator's fanout_ns, first Pause sent → last target acked (targets in parallel)",
			"accepted→acked: the leader's created_at stamp (admitted) → latest target ack stamp, read before the agent persists and replies",
			"sequential: the same AgentService Pause calls (op id, epoch, lease, drain wait), one agent after another",
			"p99 is nearest-rank: over fewer than 100 pauses it is the slowest one",
		}, r.Notes...),
	}
	hold := &Table{
		Title: "Hold chosen vs measured clock error (per pause: hold_ns vs 2·max ε + margin)",
		Columns: []string{"agents", "pauses", "max ε p50", "max ε max", "2·max ε+margin p50", "max",
			"hold p50", "hold max", "hold ≥ 2·max ε+margin", "hold − (2·max ε+margin)"},
	}
	per := &Table{
		Title:   "Coordinator pauses, one row each",
		Columns: []string{"agents", "op", "fan-out", "accepted→acked", "max ε", "2·max ε+margin", "hold"},
	}
	for _, run := range r.Runs {
		if err := fan.AddRow(fanoutCells(run)...); err != nil {
			return nil, err
		}
		if len(run.Coordinator) == 0 {
			continue
		}
		if err := hold.AddRow(holdCells(run)...); err != nil {
			return nil, err
		}
		hold.Notes = []string{
			"max ε: the largest error bound among the targets' ack readings, the figure the coordinator holds for",
			fmt.Sprintf("margin %s; hold − (2·max ε+margin) is what the coordinator adds for the window itself (target_clock_bound %s on each side, min_window %s)",
				Dur(run.Margin), Dur(run.TargetClockBound), Dur(run.MinWindow)),
		}
		for _, s := range run.Coordinator {
			if err := per.AddRow(strconv.Itoa(run.Agents), s.OpID, Dur(s.Fanout), Dur(s.AcceptedToAcked), Dur(s.MaxBound), Dur(s.Need), Dur(s.Hold)); err != nil {
				return nil, err
			}
		}
	}
	if !r.PerPause {
		return []*Table{fan, hold}, nil
	}
	return []*Table{fan, hold, per}, nil
}

// spread formats p50 and p99 of samples, or dashes when there are none.
func spread(samples []time.Duration) (p50, p99 string) {
	s, err := Summarize(samples)
	if err != nil {
		return "-", "-"
	}
	return Dur(s.P50), Dur(s.P99)
}

func fanoutCells(run FanoutRun) []string {
	var fanout, accepted []time.Duration
	for _, s := range run.Coordinator {
		fanout, accepted = append(fanout, s.Fanout), append(accepted, s.AcceptedToAcked)
	}
	fp50, fp99 := spread(fanout)
	ap50, ap99 := spread(accepted)
	sp50, sp99 := spread(run.Sequential)
	pauses := strconv.Itoa(len(fanout))
	if len(run.Sequential) != len(fanout) {
		pauses += "/" + strconv.Itoa(len(run.Sequential))
	}
	ratio := "-"
	fs, ferr := Summarize(fanout)
	ss, serr := Summarize(run.Sequential)
	if ferr == nil && serr == nil && fs.P50 > 0 {
		ratio = fmt.Sprintf("%.1f×", float64(ss.P50)/float64(fs.P50))
	}
	startup := "-"
	if run.Startup > 0 {
		startup = Dur(run.Startup)
	}
	return []string{strconv.Itoa(run.Agents), startup, pauses, fp50, fp99, ap50, ap99, sp50, sp99, ratio}
}

func holdCells(run FanoutRun) []string {
	var bound, need, hold []time.Duration
	covered := 0
	minExtra, maxExtra := time.Duration(math.MaxInt64), time.Duration(math.MinInt64)
	for _, s := range run.Coordinator {
		bound, need, hold = append(bound, s.MaxBound), append(need, s.Need), append(hold, s.Hold)
		if s.Hold >= s.Need {
			covered++
		}
		minExtra, maxExtra = min(minExtra, s.Hold-s.Need), max(maxExtra, s.Hold-s.Need)
	}
	bs, _ := Summarize(bound)
	ns, _ := Summarize(need)
	hs, _ := Summarize(hold)
	extra := Dur(minExtra)
	if maxExtra != minExtra {
		extra += " .. " + Dur(maxExtra)
	}
	return []string{strconv.Itoa(run.Agents), strconv.Itoa(len(run.Coordinator)), Dur(bs.P50), Dur(bs.Max),
		Dur(ns.P50), Dur(ns.Max), Dur(hs.P50), Dur(hs.Max), fmt.Sprintf("%d/%d", covered, len(run.Coordinator)), extra}
}
