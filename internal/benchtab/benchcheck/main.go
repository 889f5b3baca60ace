// Command benchcheck compares the ratio figures of a fresh benchmark run
// against the committed baseline (`make bench-check`), or promotes a fresh
// run to the baseline (`make bench-baseline`).
//
//	benchcheck -baseline bench/baseline.json -fresh /tmp/fresh.json
//	benchcheck -baseline bench/baseline.json -fresh /tmp/fresh.json -write
//
// It exits 1 when a checked figure is missing from the fresh run or moved
// the wrong way by more than its tolerance, 2 on bad input.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/stillpoint-dev/stillpoint/internal/benchtab"
)

func main() {
	baseline := flag.String("baseline", "bench/baseline.json", "committed baseline figures")
	fresh := flag.String("fresh", "", "figures of a fresh run (the benchmarks' -bench.figures file)")
	write := flag.Bool("write", false, "replace the baseline's measured figures with the fresh run's (a baseline figure keeps its own tolerance; the fresh figures' check marks are taken as they are)")
	var meta metaFlags
	flag.Var(&meta, "meta", "key=value recorded in the baseline's meta with -write (repeatable)")
	flag.Parse()
	if *fresh == "" {
		fmt.Fprintln(os.Stderr, "benchcheck: -fresh is required (the -bench.figures file of a fresh run)")
		os.Exit(2)
	}
	f, err := benchtab.ReadFigures(*fresh)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcheck:", err)
		os.Exit(2)
	}
	if len(f.Figures) == 0 {
		fmt.Fprintf(os.Stderr, "benchcheck: %s holds no figures: did the benchmarks run with -bench.figures=%s?\n", *fresh, *fresh)
		os.Exit(2)
	}
	base, err := benchtab.ReadFigures(*baseline)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcheck:", err)
		os.Exit(2)
	}
	if *write {
		if base.Meta == nil {
			base.Meta = map[string]string{}
		}
		for k, v := range meta {
			base.Meta[k] = v
		}
		if base.Tolerance == 0 {
			base.Tolerance = benchtab.DefaultTolerance
		}
		base.Rebase(f)
		if err := benchtab.WriteFigures(*baseline, base); err != nil {
			fmt.Fprintln(os.Stderr, "benchcheck:", err)
			os.Exit(2)
		}
		fmt.Printf("benchcheck: %d figures from %s written to %s\n", len(f.Figures), *fresh, *baseline)
		return
	}
	verdicts := benchtab.Compare(base, f)
	if len(verdicts) == 0 {
		fmt.Fprintf(os.Stderr, "benchcheck: %s has no checked figures: run `make bench-baseline` first\n", *baseline)
		os.Exit(2)
	}
	failed, err := benchtab.FprintVerdicts(os.Stdout, verdicts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchcheck:", err)
		os.Exit(2)
	}
	if failed > 0 {
		fmt.Printf("bench-check: %d of %d checked figures failed\n", failed, len(verdicts))
		os.Exit(1)
	}
	fmt.Printf("bench-check: all %d checked figures within tolerance\n", len(verdicts))
}

// metaFlags collects repeated -meta key=value flags.
type metaFlags map[string]string

func (m *metaFlags) String() string { return fmt.Sprint(map[string]string(*m)) }

func (m *metaFlags) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("-meta %q: want key=value", s)
	}
	if *m == nil {
		*m = metaFlags{}
	}
	(*m)[k] = v
	return nil
}
