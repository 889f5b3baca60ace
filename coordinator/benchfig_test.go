package coordinator_test

import (
	"flag"
	"testing"

	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
)

var (
	// benchFigures is where `make bench-check` and `make bench-baseline`
	// collect every benchmark's figures (benchtab.Figures JSON, merged).
	benchFigures = flag.String("bench.figures", "", "merge this run's figures (ratios checked by make bench-check, absolute times beside them) into this JSON file")
	// benchMarkdown prints the summary tables as Markdown, ready to paste
	// into BENCHMARKS.md.
	benchMarkdown = flag.Bool("bench.markdown", false, "print the benchmarks' summary tables as Markdown")
)

// recordFigures merges figs into the -bench.figures file, if one is set.
func recordFigures(b *testing.B, figs map[string]benchtab.Figure) {
	b.Helper()
	if *benchFigures == "" || len(figs) == 0 {
		return
	}
	if err := benchtab.MergeFigures(*benchFigures, figs); err != nil {
		b.Errorf("recording figures: %v", err)
	}
}

// ratioFigure is a checked lower-is-better ratio measured under load.
func ratioFigure(v float64, load, note string) benchtab.Figure {
	return benchtab.Figure{Value: v, Unit: "ratio", Better: benchtab.LowerIsBetter, Check: true, LoadAvg: load, Note: note}
}

// nsFigure is an absolute time, recorded but not checked.
func nsFigure(v float64, load, note string) benchtab.Figure {
	return benchtab.Figure{Value: v, Unit: "ns", Better: benchtab.LowerIsBetter, LoadAvg: load, Note: note}
}
