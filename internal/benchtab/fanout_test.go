package benchtab

import (
	"strings"
	"testing"
	"time"
)

const milli = time.Millisecond

func sampleRun() FanoutRun {
	return FanoutRun{
		Agents: 30, Startup: 1500 * milli, Margin: milli, MinWindow: milli,
		Coordinator: []PauseSample{
			{OpID: "op-a", Fanout: 10 * milli, AcceptedToAcked: 11 * milli, Hold: 9 * milli, MaxBound: 2 * milli, Need: 5 * milli},
			{OpID: "op-b", Fanout: 20 * milli, AcceptedToAcked: 21 * milli, Hold: 10 * milli, MaxBound: 3 * milli, Need: 7 * milli},
			// A hold below 2·max ε + margin must show in the count.
			{OpID: "op-c", Fanout: 30 * milli, AcceptedToAcked: 31 * milli, Hold: 6 * milli, MaxBound: 3 * milli, Need: 7 * milli},
		},
		Sequential: []time.Duration{40 * milli, 60 * milli, 80 * milli},
	}
}

// section returns the table of out titled title, up to the blank line
// that ends it.
func section(t *testing.T, out, title string) string {
	t.Helper()
	i := strings.Index(out, title)
	if i < 0 {
		t.Fatalf("no table %q in:\n%s", title, out)
	}
	out = out[i:]
	if j := strings.Index(out, "\n\n"); j >= 0 {
		out = out[:j]
	}
	return out
}

// row returns the fields of the row of table title whose first cell is
// agents, or nil.
func row(t *testing.T, out, title, agents string) []string {
	t.Helper()
	for _, line := range strings.Split(section(t, out, title), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == agents {
			return f
		}
	}
	return nil
}

func TestFanoutReportFigures(t *testing.T) {
	failed := FanoutRun{Agents: 100} // startup failed: no samples
	var b strings.Builder
	if err := (FanoutReport{Runs: []FanoutRun{sampleRun(), failed}, Notes: []string{"extra note"}}).Fprint(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	tests := []struct {
		name, title, agents string
		want                []string
	}{
		{
			name: "fan-out row", title: "Pause fan-out", agents: "30",
			// agents startup pauses fan-out p50 p99 accepted p50 p99 seq p50 p99 ratio
			want: []string{"30", "1.5s", "3", "20.00ms", "30.00ms", "21.00ms", "31.00ms", "60.00ms", "80.00ms", "3.0×"},
		},
		{
			name: "failed run prints dashes", title: "Pause fan-out", agents: "100",
			want: []string{"100", "-", "0", "-", "-", "-", "-", "-", "-", "-"},
		},
		{
			name: "hold row", title: "Hold chosen", agents: "30",
			// agents pauses ε p50 ε max need p50 need max hold p50 hold max covered extra(min .. max)
			want: []string{"30", "3", "3.00ms", "3.00ms", "7.00ms", "7.00ms", "9.00ms", "10.00ms", "2/3", "-1.00ms", "..", "4.00ms"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := row(t, out, tc.title, tc.agents)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("row\n got %v\nwant %v", got, tc.want)
			}
		})
	}
	if strings.Contains(out, "one row each") {
		t.Errorf("per-pause table printed without PerPause")
	}
	if !strings.Contains(out, "extra note") || !strings.Contains(out, "min_window 1.00ms") {
		t.Errorf("notes missing:\n%s", out)
	}
	if got := row(t, out, "Hold chosen", "100"); got != nil {
		t.Errorf("the hold table has a row for a run without coordinator pauses: %v", got)
	}
}

func TestFanoutReportPerPause(t *testing.T) {
	var b strings.Builder
	if err := (FanoutReport{Runs: []FanoutRun{sampleRun()}, PerPause: true}).Fprint(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, op := range []string{"op-a", "op-b", "op-c"} {
		if !strings.Contains(out, op) {
			t.Errorf("per-pause table lacks %s:\n%s", op, out)
		}
	}
	if got := strings.Fields(out[strings.Index(out, "op-c"):])[:6]; strings.Join(got, " ") != "op-c 30.00ms 31.00ms 3.00ms 7.00ms 6.00ms" {
		t.Errorf("op-c row = %v", got)
	}
}

func TestFanoutReportEmptyPrintsNothing(t *testing.T) {
	var b strings.Builder
	if err := (FanoutReport{}).Fprint(&b); err != nil || b.Len() != 0 {
		t.Fatalf("empty report wrote %q, %v", b.String(), err)
	}
}
