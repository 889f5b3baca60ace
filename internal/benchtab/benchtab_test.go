package benchtab

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, x := range v {
		out[i] = time.Duration(x) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(100-i) * time.Millisecond // descending: must sort
	}
	tests := []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
		wantErr bool
	}{
		{name: "one sample is every percentile", samples: ms(7), p: 99, want: 7 * time.Millisecond},
		{name: "p50 of odd count is the median", samples: ms(5, 1, 3), p: 50, want: 3 * time.Millisecond},
		{name: "p50 of even count is the lower middle", samples: ms(4, 1, 3, 2), p: 50, want: 2 * time.Millisecond},
		{name: "p99 of 25 is the maximum", samples: ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25), p: 99, want: 25 * time.Millisecond},
		{name: "p99 of 100 is the 99th", samples: hundred, p: 99, want: 99 * time.Millisecond},
		{name: "p100 is the maximum", samples: hundred, p: 100, want: 100 * time.Millisecond},
		{name: "tiny p is the minimum", samples: hundred, p: 0.001, want: time.Millisecond},
		{name: "no samples", samples: nil, p: 50, wantErr: true},
		{name: "p zero", samples: ms(1), p: 0, wantErr: true},
		{name: "p above 100", samples: ms(1), p: 101, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := append([]time.Duration(nil), tc.samples...)
			got, err := Percentile(tc.samples, tc.p)
			if (err != nil) != tc.wantErr {
				t.Fatalf("Percentile(%v, %v) error = %v, wantErr %v", tc.samples, tc.p, err, tc.wantErr)
			}
			if got != tc.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tc.samples, tc.p, got, tc.want)
			}
			for i := range before {
				if before[i] != tc.samples[i] {
					t.Fatalf("Percentile reordered its input: %v, was %v", tc.samples, before)
				}
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	s, err := Summarize(ms(9, 1, 5, 3, 7))
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{N: 5, P50: 5 * time.Millisecond, P99: 9 * time.Millisecond, Max: 9 * time.Millisecond}
	if s != want {
		t.Errorf("Summarize = %+v, want %+v", s, want)
	}
	if _, err := Summarize(nil); !errors.Is(err, ErrNoSamples) {
		t.Errorf("Summarize(nil) error = %v, want ErrNoSamples", err)
	}
}

func TestDur(t *testing.T) {
	tests := []struct {
		in   time.Duration
		want string
	}{
		{0, "0"},
		{1499 * time.Nanosecond, "1µs"},
		{1500 * time.Nanosecond, "2µs"},
		{999 * time.Microsecond, "999µs"},
		{1234567 * time.Nanosecond, "1.23ms"},
		{-2 * time.Millisecond, "-2.00ms"},
		{1500 * time.Millisecond, "1.5s"},
		{75 * time.Second, "1m15s"},
	}
	for _, tc := range tests {
		if got := Dur(tc.in); got != tc.want {
			t.Errorf("Dur(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTableAlignsColumns(t *testing.T) {
	tab := &Table{Title: "fan-out", Columns: []string{"agents", "p50", "max ε"}, Notes: []string{"note: one"}}
	if err := tab.AddRow("3", "1.20ms", "50µs"); err != nil {
		t.Fatal(err)
	}
	if err := tab.AddRow("100", "12.00ms", "5µs"); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := tab.Fprint(&b); err != nil {
		t.Fatal(err)
	}
	want := "" +
		"fan-out\n" +
		"agents      p50  max ε\n" +
		"------  -------  -----\n" +
		"3        1.20ms   50µs\n" +
		"100     12.00ms    5µs\n" +
		"note: one\n"
	if got := b.String(); got != want {
		t.Errorf("table:\n%s\nwant:\n%s", got, want)
	}
	if tab.Rows() != 2 {
		t.Errorf("Rows() = %d, want 2", tab.Rows())
	}
}

func TestTableRejectsRaggedRow(t *testing.T) {
	tab := &Table{Title: "t", Columns: []string{"a", "b"}}
	err := tab.AddRow("only one")
	if err == nil || !strings.Contains(err.Error(), "1 cells, want 2") {
		t.Fatalf("AddRow with 1 of 2 cells: error = %v", err)
	}
	if tab.Rows() != 0 {
		t.Errorf("a rejected row was kept")
	}
}
