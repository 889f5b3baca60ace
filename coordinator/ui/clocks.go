package ui

import (
	"sort"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/enumname"
	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
	pb "github.com/stillpoint-dev/stillpoint/proto/stillpoint/v1"
)

// Clock chart layout (SVG user units).
const (
	chartWidth  = 960.0
	labelWidth  = 200.0
	plotX0      = labelWidth + 20
	plotX1      = chartWidth - 30
	rowHeight   = 30.0
	chartTop    = 34.0
	axisHeight  = 36.0
	symlogLinNs = int64(10 * time.Microsecond)
)

// ClockRow is one node on a cluster's clock chart: its offset as a point,
// the ± bound around it as a bar, and the ± ε_max it may reach as a track.
type ClockRow struct {
	Node                 string
	Y                    float64
	PointX, BarX0, BarX1 float64
	LimX0, LimX1         float64
	// Class is "ok", "warn" (admissible but near a limit) or "bad" (not
	// admissible).
	Class        string
	Status       string
	Synchronized bool
	Admissible   bool
	Reasons      []string
	Offset       string
	Bound        string
	BoundOverMax bool
	Falsetickers uint32
	LeapPending  bool
	SampleAge    string
	MetaAge      string
	Stale        bool
}

// ClockChart is one cluster's clocks as drawn: nodes around zero on a
// symmetric log axis, the median of the synchronized offsets, and the band
// median ± max_drift/2 that admission allows each offset in.
type ClockChart struct {
	Cluster          string
	Width, Height    float64
	PlotX0, PlotX1   float64
	AxisY            float64
	ZeroX            float64
	HasMedian        bool
	MedianX          float64
	DriftX0, DriftX1 float64
	// The band is where admission lets every synchronized offset lie:
	// [highest - max_drift, lowest + max_drift] (all inside exactly when
	// the spread is within max_drift); when the spread is over, median ±
	// max_drift/2, outside which admission names the nodes (BandOver).
	BandOver       bool
	BandLo, BandHi string
	BandTitle      string
	Ticks          []Tick
	Rows           []ClockRow
	Median         string
	Spread         string
	SpreadOver     bool
	MaxDrift       string
	EpsMax         string
	Problems       []string
}

// Median is the median of offsets the way admission takes it (the mean of
// the two middle values for an even count); ok false for none.
func Median(offsets []time.Duration) (time.Duration, bool) {
	if len(offsets) == 0 {
		return 0, false
	}
	s := append([]time.Duration(nil), offsets...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	n := len(s)
	if n%2 == 1 {
		return s[n/2], true
	}
	return s[n/2-1] + (s[n/2]-s[n/2-1])/2, true
}

// ClockCharts lays out the drift report per cluster (clusters sorted).
func ClockCharts(d *pb.GetDriftResponse) []ClockChart {
	byCluster := map[string][]*pb.DriftEntry{}
	for _, e := range d.GetEntries() {
		c := e.GetMember().GetCluster()
		byCluster[c] = append(byCluster[c], e)
	}
	names := make([]string, 0, len(byCluster))
	for c := range byCluster {
		names = append(names, c)
	}
	sort.Strings(names)
	out := make([]ClockChart, 0, len(names))
	for _, c := range names {
		out = append(out, clockChart(c, byCluster[c], d.GetSpreadNs()[c], d.GetConfig()))
	}
	return out
}

func clockChart(cluster string, entries []*pb.DriftEntry, spreadNs int64, cfg *pb.RuntimeConfig) ClockChart {
	sort.Slice(entries, func(i, j int) bool { return entries[i].GetMember().GetName() < entries[j].GetMember().GetName() })
	maxDrift, epsMax := time.Duration(cfg.GetMaxDriftNs()), time.Duration(cfg.GetMaxErrorBoundNs())
	var synced []time.Duration
	extent := time.Duration(0)
	grow := func(d time.Duration) {
		if d < 0 {
			d = -d
		}
		if d > extent {
			extent = d
		}
	}
	for _, e := range entries {
		ck := e.GetMember().GetClock()
		if ck == nil {
			continue
		}
		off, b := time.Duration(ck.GetOffsetNs()), time.Duration(ck.GetErrorBoundNs())
		grow(off - b)
		grow(off + b)
		grow(off + epsMax)
		grow(off - epsMax)
		if ck.GetStatus() == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED {
			synced = append(synced, off)
		}
	}
	median, hasMedian := Median(synced)
	band := driftBand(synced, median, maxDrift)
	if hasMedian {
		grow(band.lo)
		grow(band.hi)
	}
	sc := NewSymLog(time.Duration(symlogLinNs), extent, plotX0, plotX1)
	ch := ClockChart{
		Cluster: cluster, Width: chartWidth, PlotX0: plotX0, PlotX1: plotX1,
		ZeroX: sc.X(0), Ticks: sc.Ticks(), HasMedian: hasMedian,
		Spread: timefmt.Duration(time.Duration(spreadNs)), SpreadOver: maxDrift > 0 && time.Duration(spreadNs) > maxDrift,
		MaxDrift: timefmt.Duration(maxDrift), EpsMax: timefmt.Duration(epsMax),
	}
	if hasMedian {
		ch.MedianX = sc.X(median)
		ch.DriftX0, ch.DriftX1 = sc.X(band.lo), sc.X(band.hi)
		ch.BandOver, ch.BandLo, ch.BandHi, ch.BandTitle = band.over, band.loLabel, band.hiLabel, band.title
		ch.Median = timefmt.Signed(median)
	}
	seenGeneral := map[string]bool{}
	for i, e := range entries {
		m := e.GetMember()
		ck := m.GetClock()
		off, b := time.Duration(ck.GetOffsetNs()), time.Duration(ck.GetErrorBoundNs())
		row := ClockRow{
			Node: m.GetName(), Y: chartTop + float64(i)*rowHeight + rowHeight/2,
			PointX: sc.X(off), BarX0: sc.X(off - b), BarX1: sc.X(off + b),
			LimX0: sc.X(off - epsMax), LimX1: sc.X(off + epsMax),
			Status:       enumname.Of(ck.GetStatus()),
			Synchronized: ck.GetStatus() == pb.ClockStatus_CLOCK_STATUS_SYNCHRONIZED,
			Admissible:   e.GetAdmissible(),
			Offset:       timefmt.Signed(off), Bound: timefmt.PlusMinus(b),
			BoundOverMax: epsMax > 0 && b > epsMax,
			Falsetickers: ck.GetFalsetickers(), LeapPending: ck.GetLeapPending(),
			SampleAge: timefmt.Duration(time.Duration(ck.GetAgeNs()).Round(time.Millisecond)),
			MetaAge:   timefmt.Duration(time.Duration(m.GetMetaAgeMs()) * time.Millisecond),
			Stale:     ck.GetStatus() == pb.ClockStatus_CLOCK_STATUS_STALE,
		}
		if ck == nil {
			row.Status = "unknown"
		}
		for _, r := range e.GetReasons() {
			if isGeneral(r, entries) {
				if !seenGeneral[r] {
					seenGeneral[r] = true
					ch.Problems = append(ch.Problems, r)
				}
				continue
			}
			row.Reasons = append(row.Reasons, r)
		}
		switch {
		case len(row.Reasons) > 0 || !row.Synchronized:
			row.Class = "bad"
		case !e.GetAdmissible():
			row.Class = "warn"
		case epsMax > 0 && b*5 > epsMax*4:
			row.Class = "warn"
		default:
			row.Class = "ok"
		}
		ch.Rows = append(ch.Rows, row)
	}
	ch.AxisY = chartTop + float64(len(entries))*rowHeight + 6
	ch.Height = ch.AxisY + axisHeight
	return ch
}

// isGeneral reports whether reason is a cluster-wide problem: GetDrift
// appends those to every entry's reasons.
func isGeneral(reason string, entries []*pb.DriftEntry) bool {
	if len(entries) < 2 {
		return false
	}
	for _, e := range entries {
		found := false
		for _, r := range e.GetReasons() {
			if r == reason {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// band is the drift band of a chart.
type band struct {
	lo, hi           time.Duration
	over             bool
	loLabel, hiLabel string
	title            string
}

// driftBand is where admission's offset-spread test lets the synchronized
// offsets lie: within max_drift of each other is [highest - max_drift,
// lowest + max_drift], which holds every offset exactly when the spread
// is within max_drift. Over it, median ± max_drift/2: admission names the
// nodes outside it.
func driftBand(offsets []time.Duration, median, maxDrift time.Duration) band {
	if len(offsets) == 0 {
		return band{}
	}
	lo, hi := offsets[0], offsets[0]
	for _, o := range offsets {
		lo, hi = min(lo, o), max(hi, o)
	}
	if maxDrift <= 0 || hi-lo <= maxDrift {
		return band{lo: hi - maxDrift, hi: lo + maxDrift, loLabel: "highest − max_drift", hiLabel: "lowest + max_drift",
			title: "admission: offsets within max_drift " + timefmt.Duration(maxDrift) + " of each other (spread " + timefmt.Duration(hi-lo) + ")"}
	}
	return band{lo: median - maxDrift/2, hi: median + maxDrift/2, over: true, loLabel: "median − max_drift/2", hiLabel: "median + max_drift/2",
		title: "offset spread " + timefmt.Duration(hi-lo) + " > max_drift " + timefmt.Duration(maxDrift) + ": admission refuses the nodes outside median ± max_drift/2"}
}
