package e2e

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stillpoint-dev/stillpoint/internal/timefmt"
)

// renderTable prints one row per restore: the restore point with its
// uncertainty and the hold (β-shrunk window vs the raw one), the
// recovery_target_time each server got in its own zone, how the restore
// went (the last commit replayed, relative to the target) and the
// invariant.
func renderTable(targets []target, results []restoreResult) string {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintf(w, "target\trestore point (UTC)\tuncertainty\thold\tβ shrink (raw→window)\tA recovery_target_time (%s)\tB recovery_target_time (%s)\trestore\tinvariant\n", zoneA, zoneB)
	for i, tg := range targets {
		r := results[i]
		unc, hold, shrink := "-", "-", "-"
		if tg.op != nil {
			win := tg.op.GetWindow()
			unc = timefmt.PlusMinus(time.Duration(win.GetUncertaintyNs()))
			hold = timefmt.Duration(time.Duration(tg.op.GetHoldNs()))
			rawStart, rawEnd := rawWindow(tg.op)
			shrink = timefmt.Duration(rawEnd.Sub(rawStart)) + "→" + timefmt.Duration(time.Duration(win.GetWidthNs()))
		} else {
			unc = fmt.Sprintf("load, ~%d in gap", tg.inGap)
		}
		restore := "failed"
		if r.reports != nil {
			restore = "promoted, last commit " + relative(r.lastA, tg.at) + " / " + relative(r.lastB, tg.at)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", tg.label, timefmt.UTC(tg.at), unc, hold, shrink, tg.litA, tg.litB, restore, r.summary(tg))
	}
	_ = w.Flush()
	return b.String()
}

// relative renders a replayed commit time against the target: "−1.234ms".
func relative(last, at time.Time) string {
	if last.IsZero() {
		return "none"
	}
	return timefmt.Duration(last.Sub(at))
}
