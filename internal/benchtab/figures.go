package benchtab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// DefaultTolerance is the regression tolerance on a checked figure when
// neither the baseline file nor the figure names one: a ratio may grow
// (lower-is-better) or shrink (higher-is-better) by 25% before
// `make bench-check` fails.
const DefaultTolerance = 0.25

// Which way a figure improves.
const (
	LowerIsBetter  = "lower"
	HigherIsBetter = "higher"
)

// Figure is one number a benchmark measured. Only Check figures are
// compared by `make bench-check`: ratios measured within one run on one
// machine; absolute times are recorded beside them but differ between
// machines.
type Figure struct {
	Value float64 `json:"value"`
	// Unit: "ratio", "ns", "bytes", ...
	Unit string `json:"unit"`
	// Better is LowerIsBetter or HigherIsBetter.
	Better string `json:"better,omitempty"`
	// Check: bench-check compares this figure against the baseline.
	Check bool `json:"check,omitempty"`
	// Tolerance overrides the file's tolerance for this figure (0: none).
	Tolerance float64 `json:"tolerance,omitempty"`
	// LoadAvg is /proc/loadavg's first three fields when it was measured.
	LoadAvg string `json:"loadavg,omitempty"`
	// Note says what the figure is.
	Note string `json:"note,omitempty"`
}

// Figures is a set of named figures, as written by the benchmarks'
// -bench.figures flag and committed as bench/baseline.json.
type Figures struct {
	// Tolerance is the default relative tolerance of checked figures
	// (0: DefaultTolerance).
	Tolerance float64 `json:"tolerance,omitempty"`
	// Meta records where the figures were measured (machine, commit, date).
	Meta    map[string]string `json:"meta,omitempty"`
	Figures map[string]Figure `json:"figures"`
}

// Set records one figure, replacing an earlier one of the same name.
func (f *Figures) Set(name string, fig Figure) {
	if f.Figures == nil {
		f.Figures = map[string]Figure{}
	}
	f.Figures[name] = fig
}

// ReadFigures reads a figures file; a missing file is an empty set.
func ReadFigures(path string) (Figures, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Figures{Figures: map[string]Figure{}}, nil
	}
	if err != nil {
		return Figures{}, fmt.Errorf("benchtab: read figures: %w", err)
	}
	var f Figures
	if err := json.Unmarshal(b, &f); err != nil {
		return Figures{}, fmt.Errorf("benchtab: figures file %s: %w", path, err)
	}
	if f.Figures == nil {
		f.Figures = map[string]Figure{}
	}
	for name, fig := range f.Figures {
		if err := fig.validate(); err != nil {
			return Figures{}, fmt.Errorf("benchtab: figures file %s: figure %q: %w", path, name, err)
		}
	}
	if f.Tolerance < 0 {
		return Figures{}, fmt.Errorf("benchtab: figures file %s: tolerance %v is negative", path, f.Tolerance)
	}
	return f, nil
}

func (fig Figure) validate() error {
	if math.IsNaN(fig.Value) || math.IsInf(fig.Value, 0) {
		return fmt.Errorf("value %v is not a number", fig.Value)
	}
	if fig.Tolerance < 0 {
		return fmt.Errorf("tolerance %v is negative", fig.Tolerance)
	}
	if fig.Check && fig.Better != LowerIsBetter && fig.Better != HigherIsBetter {
		return fmt.Errorf("checked figure has better %q, want %q or %q", fig.Better, LowerIsBetter, HigherIsBetter)
	}
	return nil
}

// WriteFigures writes f as indented JSON (names sorted, so a committed
// baseline diffs cleanly).
func WriteFigures(path string, f Figures) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("benchtab: encode figures: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("benchtab: write figures: %w", err)
	}
	return nil
}

// MergeFigures adds figs to the figures file at path (created if missing):
// benchmarks run one after another, each adding its own figures.
func MergeFigures(path string, figs map[string]Figure) error {
	f, err := ReadFigures(path)
	if err != nil {
		return err
	}
	for name, fig := range figs {
		if err := fig.validate(); err != nil {
			return fmt.Errorf("benchtab: figure %q: %w", name, err)
		}
		f.Set(name, fig)
	}
	return WriteFigures(path, f)
}

// Verdict is one checked baseline figure compared with a fresh run.
type Verdict struct {
	Name           string
	Baseline       Figure
	Fresh          float64
	Missing        bool // the fresh run has no such figure
	Tolerance      float64
	Limit          float64 // the worst fresh value that still passes
	Regressed      bool
	ChangePercent  float64 // (fresh − baseline) / baseline × 100
	baselineLoad   string
	freshLoad      string
	freshMeasured  bool
	baselineIsZero bool
}

// Failed reports whether this figure fails the check.
func (v Verdict) Failed() bool { return v.Missing || v.Regressed }

// Compare checks every Check figure of baseline against fresh: a figure
// missing from fresh fails, and so does one that moved the wrong way by
// more than its tolerance (the figure's, else the baseline file's, else
// DefaultTolerance), relative to the baseline value. A lower-is-better
// figure fails above baseline×(1+tol); a higher-is-better one below
// baseline×(1−tol). Figures only in fresh, or not checked, are ignored.
// Verdicts come sorted by name.
func Compare(baseline, fresh Figures) []Verdict {
	def := baseline.Tolerance
	if def == 0 {
		def = DefaultTolerance
	}
	var names []string
	for name, fig := range baseline.Figures {
		if fig.Check {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var out []Verdict
	for _, name := range names {
		base := baseline.Figures[name]
		tol := def
		if base.Tolerance > 0 {
			tol = base.Tolerance
		}
		v := Verdict{Name: name, Baseline: base, Tolerance: tol, baselineLoad: base.LoadAvg}
		if base.Better == HigherIsBetter {
			v.Limit = base.Value * (1 - tol)
		} else {
			v.Limit = base.Value * (1 + tol)
		}
		got, ok := fresh.Figures[name]
		if !ok {
			v.Missing = true
			out = append(out, v)
			continue
		}
		v.Fresh, v.freshLoad, v.freshMeasured = got.Value, got.LoadAvg, true
		if base.Value != 0 {
			v.ChangePercent = (got.Value - base.Value) / math.Abs(base.Value) * 100
		} else {
			v.baselineIsZero = true
		}
		if base.Better == HigherIsBetter {
			v.Regressed = got.Value < v.Limit
		} else {
			v.Regressed = got.Value > v.Limit
		}
		out = append(out, v)
	}
	return out
}

// FprintVerdicts writes one line per verdict and returns how many failed.
func FprintVerdicts(w io.Writer, verdicts []Verdict) (failed int, err error) {
	t := &Table{
		Title:   "bench-check: fresh ratio figures against the committed baseline",
		Columns: []string{"figure", "better", "baseline", "fresh", "change", "limit", "verdict", "loadavg (baseline | fresh)"},
	}
	for _, v := range verdicts {
		fresh, change, verdict := "-", "-", "ok"
		if v.freshMeasured {
			fresh = fmt.Sprintf("%.4g", v.Fresh)
			if !v.baselineIsZero {
				change = fmt.Sprintf("%+.1f%%", v.ChangePercent)
			}
		}
		switch {
		case v.Missing:
			verdict = "FAIL: missing from the fresh run"
			failed++
		case v.Regressed:
			verdict = fmt.Sprintf("FAIL: regressed beyond %.0f%%", v.Tolerance*100)
			failed++
		}
		better := v.Baseline.Better
		if better == "" {
			better = LowerIsBetter
		}
		if err := t.AddRow(v.Name, better, fmt.Sprintf("%.4g", v.Baseline.Value), fresh, change,
			fmt.Sprintf("%.4g", v.Limit), verdict, strings.TrimSpace(v.baselineLoad+" | "+v.freshLoad)); err != nil {
			return failed, err
		}
	}
	return failed, t.Fprint(w)
}

// Rebase records a fresh run's figures in a baseline (`benchcheck -write`):
// each fresh figure replaces the baseline's of the same name but keeps the
// baseline figure's own tolerance when it has one (a tolerance widened in
// the baseline stays widened); figures only in the baseline stay as they are.
func (f *Figures) Rebase(fresh Figures) {
	for name, fig := range fresh.Figures {
		if old, ok := f.Figures[name]; ok && old.Tolerance != 0 {
			fig.Tolerance = old.Tolerance
		}
		f.Set(name, fig)
	}
}
