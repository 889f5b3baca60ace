// Package benchtab prints the summary tables of Stillpoint's benchmarks:
// nearest-rank percentiles over a fixed set of samples and plain
// column-aligned text, so `make bench` output reads without post-processing.
package benchtab

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// ErrNoSamples is returned for a percentile of an empty sample set.
var ErrNoSamples = errors.New("benchtab: no samples")

// Percentile returns the nearest-rank p-th percentile (0 < p ≤ 100) of
// samples: the smallest sample such that at least p% of the samples are
// less than or equal to it. samples is not modified.
func Percentile(samples []time.Duration, p float64) (time.Duration, error) {
	if len(samples) == 0 {
		return 0, ErrNoSamples
	}
	if !(p > 0 && p <= 100) {
		return 0, fmt.Errorf("benchtab: percentile %v is outside (0, 100]", p)
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[max(rank, 1)-1], nil
}

// Summary is the spread of one set of duration samples.
type Summary struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize returns the p50, p99 and maximum of samples.
func Summarize(samples []time.Duration) (Summary, error) {
	if len(samples) == 0 {
		return Summary{}, ErrNoSamples
	}
	p50, _ := Percentile(samples, 50)
	p99, _ := Percentile(samples, 99)
	return Summary{N: len(samples), P50: p50, P99: p99, Max: slices.Max(samples)}, nil
}

// Dur formats a duration for a table cell: microsecond resolution below a
// second, millisecond resolution above.
func Dur(d time.Duration) string {
	switch {
	case d == 0:
		return "0"
	case d < 0:
		return "-" + Dur(-d)
	case d < time.Millisecond:
		return fmt.Sprintf("%dµs", d.Round(time.Microsecond)/time.Microsecond)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
	default:
		return d.Round(time.Millisecond).String()
	}
}

// Table is a titled table of text cells, printed with aligned columns.
type Table struct {
	Title   string
	Columns []string
	// Notes are printed under the table, one per line.
	Notes []string
	rows  [][]string
}

// AddRow appends a row; it must have one cell per column.
func (t *Table) AddRow(cells ...string) error {
	if len(cells) != len(t.Columns) {
		return fmt.Errorf("benchtab: table %q: row has %d cells, want %d (%v)", t.Title, len(cells), len(t.Columns), t.Columns)
	}
	t.rows = append(t.rows, cells)
	return nil
}

// Rows is the number of rows added.
func (t *Table) Rows() int { return len(t.rows) }

// Fprint writes the table: the title, the header, a rule, the rows and the
// notes. The first column is left-aligned, the others right-aligned
// (they hold figures).
func (t *Table) Fprint(w io.Writer) error {
	width := make([]int, len(t.Columns))
	for i, c := range t.Columns {
		width[i] = cellWidth(c)
	}
	for _, r := range t.rows {
		for i, c := range r {
			width[i] = max(width[i], cellWidth(c))
		}
	}
	var b strings.Builder
	if t.Title != "" {
		b.WriteString(t.Title + "\n")
	}
	line := func(cells []string) {
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-cellWidth(c))
			if i > 0 {
				b.WriteString("  ")
			}
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString(pad + c)
			}
		}
		b.WriteString("\n")
	}
	line(t.Columns)
	rule := make([]string, len(t.Columns))
	for i := range rule {
		rule[i] = strings.Repeat("-", width[i])
	}
	line(rule)
	for _, r := range t.rows {
		line(r)
	}
	for _, n := range t.Notes {
		b.WriteString(n + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// cellWidth counts runes, so "µs" and "ε" take one column each.
func cellWidth(s string) int { return len([]rune(s)) }

// FprintMarkdown writes the table as GitHub-flavoured Markdown, ready to
// paste into BENCHMARKS.md: the title in bold, the table (figures
// right-aligned) and the notes as a list.
func (t *Table) FprintMarkdown(w io.Writer) error {
	var b strings.Builder
	if t.Title != "" {
		b.WriteString("**" + t.Title + "**\n\n")
	}
	row := func(cells []string) {
		b.WriteString("|")
		for _, c := range cells {
			b.WriteString(" " + strings.ReplaceAll(c, "|", "\\|") + " |")
		}
		b.WriteString("\n")
	}
	row(t.Columns)
	b.WriteString("|")
	for i := range t.Columns {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		row(r)
	}
	if len(t.Notes) > 0 {
		b.WriteString("\n")
		for _, n := range t.Notes {
			b.WriteString("- " + n + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Write prints t as plain aligned text, or as Markdown when markdown is set.
func (t *Table) Write(w io.Writer, markdown bool) error {
	if markdown {
		return t.FprintMarkdown(w)
	}
	return t.Fprint(w)
}

// LoadAvg returns the 1, 5 and 15 minute load averages from /proc/loadavg
// ("1.75 1.81 0.83"), or "unknown" where there is none.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
