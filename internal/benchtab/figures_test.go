package benchtab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ratio(v float64) Figure {
	return Figure{Value: v, Unit: "ratio", Better: LowerIsBetter, Check: true}
}

func TestCompare(t *testing.T) {
	higher := Figure{Value: 10, Unit: "ratio", Better: HigherIsBetter, Check: true}
	tests := []struct {
		name       string
		baseline   Figures
		fresh      Figures
		wantFailed []string // names of failing verdicts
		wantCount  int      // verdicts expected
	}{
		{
			name:      "equal passes",
			baseline:  Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			fresh:     Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			wantCount: 1,
		},
		{
			name:      "worse within the default 25% passes",
			baseline:  Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			fresh:     Figures{Figures: map[string]Figure{"p1": ratio(0.0124)}},
			wantCount: 1,
		},
		{
			name:       "worse beyond the default 25% fails",
			baseline:   Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			fresh:      Figures{Figures: map[string]Figure{"p1": ratio(0.0126)}},
			wantFailed: []string{"p1"},
			wantCount:  1,
		},
		{
			name:      "much better passes",
			baseline:  Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			fresh:     Figures{Figures: map[string]Figure{"p1": ratio(0.001)}},
			wantCount: 1,
		},
		{
			name:       "missing from the fresh run fails",
			baseline:   Figures{Figures: map[string]Figure{"p1": ratio(0.01), "p2": ratio(0.5)}},
			fresh:      Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			wantFailed: []string{"p2"},
			wantCount:  2,
		},
		{
			name:       "file tolerance replaces the default",
			baseline:   Figures{Tolerance: 0.1, Figures: map[string]Figure{"p1": ratio(1)}},
			fresh:      Figures{Figures: map[string]Figure{"p1": ratio(1.15)}},
			wantFailed: []string{"p1"},
			wantCount:  1,
		},
		{
			name:      "figure tolerance replaces the file's",
			baseline:  Figures{Tolerance: 0.1, Figures: map[string]Figure{"p1": {Value: 1, Better: LowerIsBetter, Check: true, Tolerance: 0.5}}},
			fresh:     Figures{Figures: map[string]Figure{"p1": ratio(1.4)}},
			wantCount: 1,
		},
		{
			name:       "higher-is-better falling beyond tolerance fails",
			baseline:   Figures{Figures: map[string]Figure{"seq/par": higher}},
			fresh:      Figures{Figures: map[string]Figure{"seq/par": {Value: 7.4}}},
			wantFailed: []string{"seq/par"},
			wantCount:  1,
		},
		{
			name:      "higher-is-better falling within tolerance passes",
			baseline:  Figures{Figures: map[string]Figure{"seq/par": higher}},
			fresh:     Figures{Figures: map[string]Figure{"seq/par": {Value: 7.6}}},
			wantCount: 1,
		},
		{
			name: "unchecked figures are not compared, even when missing",
			baseline: Figures{Figures: map[string]Figure{
				"p1.abs": {Value: 1e6, Unit: "ns"},
				"p1":     ratio(0.01),
			}},
			fresh:     Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			wantCount: 1,
		},
		{
			name:      "figures only in the fresh run are ignored",
			baseline:  Figures{Figures: map[string]Figure{"p1": ratio(0.01)}},
			fresh:     Figures{Figures: map[string]Figure{"p1": ratio(0.01), "new": ratio(100)}},
			wantCount: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			verdicts := Compare(tt.baseline, tt.fresh)
			if len(verdicts) != tt.wantCount {
				t.Fatalf("%d verdicts, want %d: %+v", len(verdicts), tt.wantCount, verdicts)
			}
			var failed []string
			for _, v := range verdicts {
				if v.Failed() {
					failed = append(failed, v.Name)
				}
			}
			if strings.Join(failed, ",") != strings.Join(tt.wantFailed, ",") {
				t.Fatalf("failed %v, want %v (verdicts %+v)", failed, tt.wantFailed, verdicts)
			}
			var out strings.Builder
			n, err := FprintVerdicts(&out, verdicts)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(tt.wantFailed) {
				t.Fatalf("FprintVerdicts counted %d failures, want %d:\n%s", n, len(tt.wantFailed), out.String())
			}
			for _, name := range tt.wantFailed {
				if !strings.Contains(out.String(), name) || !strings.Contains(out.String(), "FAIL") {
					t.Fatalf("report does not name failing %s:\n%s", name, out.String())
				}
			}
		})
	}
}

func TestMergeAndReadFigures(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures.json")
	if err := MergeFigures(path, map[string]Figure{"a": ratio(1)}); err != nil {
		t.Fatal(err)
	}
	if err := MergeFigures(path, map[string]Figure{"b": ratio(2), "a": ratio(3)}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFigures(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Figures) != 2 || f.Figures["a"].Value != 3 || f.Figures["b"].Value != 2 {
		t.Fatalf("merged figures %+v, want a=3 b=2", f.Figures)
	}
	if f, err := ReadFigures(filepath.Join(t.TempDir(), "none.json")); err != nil || len(f.Figures) != 0 {
		t.Fatalf("missing file: %+v, %v; want an empty set", f, err)
	}
}

func TestReadFiguresRejectsBadInput(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"not JSON", "{", "figures file"},
		{"checked figure without a direction", `{"figures":{"p1":{"value":1,"check":true}}}`, `figure "p1": checked figure has better ""`},
		{"negative figure tolerance", `{"figures":{"p2":{"value":1,"tolerance":-0.1}}}`, `figure "p2": tolerance -0.1 is negative`},
		{"negative file tolerance", `{"tolerance":-1,"figures":{}}`, "tolerance -1 is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "figures.json")
			if err := os.WriteFile(path, []byte(tt.body), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadFigures(path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ReadFigures(%s) = %v, want an error containing %q", tt.body, err, tt.want)
			}
		})
	}
	if err := MergeFigures(filepath.Join(t.TempDir(), "f.json"), map[string]Figure{"x": {Value: 1, Check: true}}); err == nil {
		t.Fatal("MergeFigures accepted a checked figure without a direction")
	}
}

func TestFprintMarkdown(t *testing.T) {
	tab := &Table{Title: "T", Columns: []string{"agents", "p50"}, Notes: []string{"n1"}}
	if err := tab.AddRow("3", "1|2"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tab.FprintMarkdown(&b); err != nil {
		t.Fatal(err)
	}
	want := "**T**\n\n| agents | p50 |\n| --- | ---: |\n| 3 | 1\\|2 |\n\n- n1\n"
	if b.String() != want {
		t.Fatalf("markdown:\n%q\nwant\n%q", b.String(), want)
	}
}

// TestRebaseKeepsTheBaselineTolerance: re-writing the baseline takes the
// fresh values but keeps a tolerance the baseline set on a figure (someone
// widened it on purpose); a figure without one takes the fresh run's.
func TestRebaseKeepsTheBaselineTolerance(t *testing.T) {
	widened := ratio(1.2)
	widened.Tolerance = 1.0
	base := Figures{Tolerance: 0.3, Meta: map[string]string{"commit": "old"}, Figures: map[string]Figure{
		"widened": widened,
		"plain":   ratio(2),
		"gone":    ratio(3), // not in the fresh run: kept as it was
	}}
	freshWidened := ratio(1.4)
	freshWidened.Tolerance = 0.5
	freshPlain := ratio(2.5)
	freshPlain.Tolerance = 0.4
	fresh := Figures{Figures: map[string]Figure{"widened": freshWidened, "plain": freshPlain, "new": ratio(7)}}

	base.Rebase(fresh)

	want := map[string]Figure{"gone": ratio(3), "new": ratio(7)}
	want["widened"] = Figure{Value: 1.4, Unit: "ratio", Better: LowerIsBetter, Check: true, Tolerance: 1.0}
	want["plain"] = Figure{Value: 2.5, Unit: "ratio", Better: LowerIsBetter, Check: true, Tolerance: 0.4}
	if len(base.Figures) != len(want) {
		t.Fatalf("rebased figures %v, want %v", base.Figures, want)
	}
	for name, w := range want {
		if got := base.Figures[name]; got != w {
			t.Errorf("figure %q = %+v, want %+v", name, got, w)
		}
	}
	if base.Tolerance != 0.3 || base.Meta["commit"] != "old" {
		t.Errorf("file tolerance %v meta %v changed", base.Tolerance, base.Meta)
	}
}
